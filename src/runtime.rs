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

use std::sync::Once;

static THREADS: Once = Once::new();

/// Sets `RAYON_NUM_THREADS=1` once per process if the user has not set it.
pub fn default_threads() {
    THREADS.call_once(|| {
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            std::env::set_var("RAYON_NUM_THREADS", "1");
        }
    });
}
