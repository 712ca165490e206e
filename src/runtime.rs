//! Process settings that candle 0.11 needs for speed on VI-sized problems.
//!
//! candle asks `num_cpus` for the core count on every CPU matmul when `RAYON_NUM_THREADS` is unset
//! (about 40 µs each, `../shared/CANDLE_NOTES.md` §7), and splits large element-wise ops over a
//! spin-wait thread pool that is erratic on shared machines. For VI, where a step is a few small
//! matmuls, one thread is fastest (1.2× over unset on a whole step, `benches/README.md`). The first
//! fit therefore sets `RAYON_NUM_THREADS=1` unless the user has set it; set it yourself (e.g.
//! `RAYON_NUM_THREADS=4`) for models with large matrix products.
//!
//! candle sizes that pool once, at its first large element-wise op (≥ 64 Ki elements), so a
//! program that builds big tensors before its first fit must call [`default_threads`] first: on
//! the 100,000-point Gaussian mixture a step took 54 ms with the two-thread pool and 25 ms with one
//! thread (`benches/README.md`). The models of `elbo-models` call it in their constructors.
//!
//! The allocator is a binary's choice, not a library's: glibc's malloc is bimodal on candle's per-op
//! tensors (some runs 2× slower, `benches/README.md`), so the examples and benches install mimalloc
//! (`#[global_allocator] static A: mimalloc::MiMalloc = mimalloc::MiMalloc;`).
//!
//! [`in_matmul_pool`] runs a step of large matrix products on a thread of that pool, so that its
//! products fork from inside the pool rather than from the caller's thread (the VAE's step: 16 %
//! faster on two threads, `benches/README.md`).
//!
//! [`cuda_or_cpu`] picks the device of a program: the first CUDA GPU when `elbo` is built with the
//! `cuda` feature and a GPU answers, else the CPU, with one line saying why.

use std::sync::Once;

use candle_core::Device;

static THREADS: Once = Once::new();

/// Sets `RAYON_NUM_THREADS=1` once per process if the user has not set it.
pub fn default_threads() {
    THREADS.call_once(|| {
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            std::env::set_var("RAYON_NUM_THREADS", "1");
        }
    });
}

/// Runs `f` on a thread of rayon's global pool, the pool that candle's CPU matrix products split
/// over when `RAYON_NUM_THREADS` > 1, and returns its result (a panic in `f` is passed on).
///
/// Called from outside the pool, every product hands its halves to the pool's threads and puts the
/// caller to sleep until they finish: two thread wake-ups a product, and while the caller works
/// alone (element-wise ops, Adam) the idle workers spin on the same cores. Run from a worker, a
/// product keeps one half and the other worker steals the other. On the Fashion-MNIST VAE with two
/// threads that took a step from 4.6–4.8 to 4.0 ms, with a tenth of the context switches, and the same
/// results bit for bit (the products split the same way).
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
