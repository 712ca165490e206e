#!/usr/bin/env bash
# Build elbo's examples with `--features cuda` on a machine WITHOUT a CUDA toolkit or GPU.
#
# The toolchain comes from NVIDIA's CUDA 13.0 wheels on PyPI (nvcc, nvvm, crt, cccl, runtime, nvrtc,
# cublas, curand), installed into a cache folder outside the repository, plus a generated link-only
# libcuda stub (the driver library is not on PyPI). The recipe and its measurements are in
# ../shared/CUDA_BUILD.md of the project. If you HAVE a CUDA toolkit, you do not need this script:
#     cargo run --release --example vae --features cuda
#
# Usage:
#     scripts/build-cuda.sh                  # builds the `vae` and `gmm_vi` examples (release)
#     scripts/build-cuda.sh [cargo args...]  # any other `cargo build` arguments instead
#     scripts/build-cuda.sh --print-env      # sets up the toolchain, prints `export` lines, builds nothing
#
# Output: target/cuda/release/examples/{vae,gmm_vi} (a separate target dir, so the CPU build stays warm).
# The binaries need libcuda.so.1 (the NVIDIA driver) and the CUDA 13 runtime libraries at run time; see
# README.md, section "CUDA". From scratch this takes 9-16 minutes on 2 cores (most of it compiling
# candle-kernels) and ~1.2 GiB in the cache; rebuilds are incremental.
#
# Environment:
#     ELBO_CUDA_CACHE   cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/elbo-cuda)
#     CUDA_COMPUTE_CAP  GPU compute capability to compile for (default 90: H100/H200; built as sm_90a,
#                       which runs only on 9.0 GPUs, so other GPU families need their own build)
#     CARGO_JOBS        cargo -j (default 2); CUDAFORGE_THREADS: nvcc jobs (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${ELBO_CUDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/elbo-cuda}
VENV="$CACHE/venv"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}

log() { echo "build-cuda: $*" >&2; }
for tool in python3 gcc cargo; do
  command -v "$tool" >/dev/null 2>&1 || { log "$tool is required"; exit 1; }
done

# 1. Toolchain from PyPI, pinned to 13.0.x: an R580 driver is CUDA 13.0 and JIT-compiles PTX only up
#    to ISA 9.0; nvcc >= 13.1 emits newer PTX, which that driver refuses.
if [ ! -f "$VENV/.elbo-cuda-13.0" ]; then
  log "installing the CUDA 13.0 wheels into $VENV (about 650 MiB to download)"
  mkdir -p "$CACHE"
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps \
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88 \
    nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
  touch "$VENV/.elbo-cuda-13.0"
fi
CUDA_HOME=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')/nvidia/cu13
export CUDA_HOME

# 2. The wheels ship only versioned .so files; the linker's -lcublas etc. need the unversioned names.
(
  cd "$CUDA_HOME/lib"
  for l in cublas cublasLt nvrtc cudart; do ln -sf "lib$l.so.13" "lib$l.so"; done
  ln -sf libcurand.so.10 libcurand.so
)

# 3. A link-only libcuda stub (SONAME libcuda.so.1) exporting every cu* entry point of CUDA 13.0's
#    cuda.h; each returns CUDA_ERROR_STUB_LIBRARY (34). It is named libcuda.so, not .so.1, so the
#    loader never picks it up by accident: on a GPU host the driver's libcuda.so.1 is used.
STUBS="$CUDA_HOME/lib/stubs"
mkdir -p "$STUBS"
if [ ! -f "$STUBS/libcuda.so" ]; then
  log "generating the link-only libcuda stub"
  gcc -E -P -I"$CUDA_HOME/include" "$CUDA_HOME/include/cuda.h" |
    grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d ' \t(' | sort -u |
    awk '{print "int " $1 "(void) { return 34; }"}' >"$STUBS/libcuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$STUBS/libcuda.so" "$STUBS/libcuda_stub.c"
fi

# 4. Build. cudarc's build script adds $CUDA_HOME/lib and $CUDA_HOME/lib/stubs to the link path.
export PATH="$CUDA_HOME/bin:$PATH"  # nvcc finds cicc and libdevice through its nvcc.profile
export CUDARC_CUDA_VERSION=13000    # pins the driver API to CUDA 13.0
export CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-2}

if [ "${1:-}" = "--print-env" ]; then
  printf 'export %s=%q\n' CUDA_HOME "$CUDA_HOME" PATH "$PATH" CUDA_COMPUTE_CAP "$CUDA_COMPUTE_CAP" \
    CUDARC_CUDA_VERSION "$CUDARC_CUDA_VERSION" CUDAFORGE_THREADS "$CUDAFORGE_THREADS"
  exit 0
fi

if [ $# -eq 0 ]; then
  set -- --example vae --example gmm_vi
fi
log "cargo build --release --features cuda --target-dir target/cuda $* (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP)"
cargo build --release --features cuda --target-dir target/cuda -j "${CARGO_JOBS:-2}" "$@"
