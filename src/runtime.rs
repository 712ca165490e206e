//! Process settings that candle 0.11 needs for speed on VI-sized problems.
//!
//! For VI, where a step is a few small matrix products, one thread is fastest (benches/README.md,
//! "Process settings"). [`default_threads`], which the first fit calls, builds rayon's global pool
//! with one thread unless the user has set `RAYON_NUM_THREADS` (set it yourself, e.g.
//! `RAYON_NUM_THREADS=4`, for models with large matrix products). It never writes the environment:
//! a library cannot do that soundly while other threads may read it.
//!
//! candle itself reads the environment, not rayon's pool, for two thread counts: each CPU matrix
//! product asks `RAYON_NUM_THREADS` for its split (when it is unset, candle counts the cores on every
//! product), and its pool for large element-wise ops (≥ 64 Ki elements) takes `CANDLE_NUM_THREADS`
//! or else `RAYON_NUM_THREADS` once, at the first such op. A program that wants candle on one thread
//! throughout exports `RAYON_NUM_THREADS=1` (or sets it at the top of `main`, before any thread
//! starts, as the benches do); with one rayon thread and the variable unset, large products still
//! run on one thread, handed to the pool's worker, and large element-wise ops use every core.
//!
//! The allocator is a binary's choice, not a library's: glibc's malloc is bimodal on candle's per-op
//! tensors (benches/README.md, "Process settings"), so the examples and benches install mimalloc
//! (`#[global_allocator] static A: mimalloc::MiMalloc = mimalloc::MiMalloc;`).
//!
//! [`in_matmul_pool`] runs a step of large matrix products on a thread of rayon's pool, so that its
//! products fork from inside the pool rather than from the caller's thread (the VAE's step on two
//! threads: benches/README.md, "VAE per-epoch time, third pass").
//!
//! [`cuda_or_cpu`] picks the device of a program: the first CUDA GPU when `elbo` is built with the
//! `cuda` feature and a GPU answers, else the CPU, with one line saying why.

use std::sync::Once;

use candle_core::Device;

static THREADS: Once = Once::new();

/// Builds rayon's global pool with one thread, once per process, unless the user has set
/// `RAYON_NUM_THREADS` or the pool already exists (then that size stands). Reads the environment,
/// never writes it.
pub fn default_threads() {
    THREADS.call_once(|| {
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            // an error means the global pool was built already: its size stands
            let _ = rayon::ThreadPoolBuilder::new().num_threads(1).build_global();
        }
    });
}

/// Runs `f` on a thread of rayon's global pool, the pool that candle's CPU matrix products split
/// over when `RAYON_NUM_THREADS` > 1, and returns its result (a panic in `f` is passed on).
///
/// Called from outside the pool, every product hands its halves to the pool's threads and puts the
/// caller to sleep until they finish: two thread wake-ups a product, and while the caller works
/// alone (element-wise ops, Adam) the idle workers spin on the same cores. Run from a worker, a
/// product keeps one half and the other worker steals the other: on the Fashion-MNIST VAE with two
/// threads, a faster step with a tenth of the context switches (benches/README.md, "VAE per-epoch
/// time, third pass"), and the same results bit for bit (the products split the same way).
///
/// With one thread (or off the CPU, where there is no product to split) `f` runs here.
pub fn in_matmul_pool<R: Send>(device: &Device, f: impl FnOnce() -> R + Send) -> R {
    if device.is_cpu() && rayon::current_num_threads() > 1 {
        rayon::scope(|_| f())
    } else {
        f()
    }
}

/// The first CUDA GPU if `elbo` was built with the `cuda` feature and one can be opened, else the
/// CPU. With the feature, a fallback comes with one line for the user, e.g.
/// `CUDA unavailable (DriverError(CUDA_ERROR_NO_DEVICE, ...)): running on the CPU`; without it, there
/// is nothing to say.
///
/// A binary built with `cuda` needs `libcuda.so.1` (the NVIDIA driver) to start at all; on a
/// machine without a GPU, the link-only stub of `scripts/build-cuda.sh` lets it start and fall back
/// here (README, "CUDA").
pub fn cuda_or_cpu() -> (Device, Option<String>) {
    if !cfg!(feature = "cuda") {
        return (Device::Cpu, None);
    }
    match Device::new_cuda(0) {
        Ok(device) => (device, None),
        Err(e) => {
            // candle's error text carries a backtrace when RUST_BACKTRACE is set: keep the first line
            let why = e.to_string();
            let why = why.lines().next().unwrap_or("no reason given");
            (Device::Cpu, Some(format!("CUDA unavailable ({why}): running on the CPU")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `f` runs and its value comes back, on the pool or here.
    #[test]
    fn in_matmul_pool_returns_the_value() {
        let here = std::thread::current().id();
        let (value, there) = in_matmul_pool(&Device::Cpu, || (6 * 7, std::thread::current().id()));
        assert_eq!(value, 42);
        // on a worker exactly when the pool has more than one thread
        assert_eq!(there != here, rayon::current_num_threads() > 1);
    }

    #[test]
    fn cuda_or_cpu_falls_back_to_the_cpu_with_a_reason() {
        let (device, note) = cuda_or_cpu();
        if !cfg!(feature = "cuda") {
            // the default build: the CPU, silently
            assert!(device.is_cpu() && note.is_none(), "{device:?}, {note:?}");
            return;
        }
        match (&device, &note) {
            // a cuda build without a usable GPU: the CPU and one line that says so
            (Device::Cpu, Some(note)) => {
                assert!(note.starts_with("CUDA unavailable (") && note.ends_with("): running on the CPU"), "{note}");
                assert!(!note.contains('\n'), "{note}");
            }
            // a cuda build on a GPU host
            (Device::Cuda(_), None) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
