#!/usr/bin/env bash
# Check that the `--features cuda` build compiles and that its CPU fallback works on a machine with
# no GPU: builds the examples with scripts/build-cuda.sh, then runs gmm_vi with the link-only libcuda
# stub on the loader path (as libcuda.so.1). The binary must start, print
#     CUDA unavailable (...): running on the CPU
# and finish its fit on the CPU with exit status 0. With Fashion-MNIST installed, the vae example is
# checked the same way (one short epoch). The library's unit tests also run in the cuda build.
#
# Usage: scripts/check-cuda-fallback.sh   (from scratch 9-16 minutes on 2 cores, then about a minute)
#
# Not run by .ci/run: CI starts from a clean checkout without caches, and the cuda build alone takes
# about as long as the rest of CI together (README.md, "CUDA"). It is a maintainer's command.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-cuda.sh
eval "$(scripts/build-cuda.sh --print-env)"

# The stub under the name the loader looks for, in a folder of its own (never on a GPU host).
stub_dir=$(mktemp -d)
trap 'rm -rf "$stub_dir"' EXIT
ln -s "$CUDA_HOME/lib/stubs/libcuda.so" "$stub_dir/libcuda.so.1"
export LD_LIBRARY_PATH="$CUDA_HOME/lib:$stub_dir"
unset RUST_BACKTRACE

status=0
# check NAME COMMAND...: runs the command, shows its output, and checks the fallback line and rc 0.
check() {
  local name=$1 out rc=0
  shift
  out=$("$@" 2>&1) || rc=$?
  printf '%s\n' "$out" | sed "s/^/  $name | /"
  if [ "$rc" -ne 0 ]; then
    echo "FAIL $name: exit status $rc" >&2
    status=1
  elif ! printf '%s\n' "$out" | grep -qE '^CUDA unavailable \(.*\): running on the CPU$'; then
    echo "FAIL $name: no 'CUDA unavailable (...): running on the CPU' line" >&2
    status=1
  else
    echo "ok   $name: $(printf '%s\n' "$out" | grep -m1 '^CUDA unavailable')"
  fi
}

# The library's unit tests in the cuda build (runtime::tests checks the fallback and its message).
if cargo test --release --features cuda --target-dir target/cuda -j "${CARGO_JOBS:-2}" -p elbo --lib -q; then
  echo "ok   elbo unit tests in the cuda build"
else
  echo "FAIL elbo unit tests in the cuda build" >&2
  status=1
fi

bin=target/cuda/release/examples
check gmm_vi "$bin/gmm_vi" --quiet --no-plot --steps 200
if [ -d /usr/share/datasets/fashion-mnist ]; then
  check vae "$bin/vae" --quiet --no-plot --epochs 1 --train-n 2000 --test-n 500 --iw-k 0
else
  echo "skip vae: Fashion-MNIST is not installed (sudo apt-get install dataset-fashion-mnist)"
fi
exit $status
