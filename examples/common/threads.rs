//! candle's thread count for a program of small matrix products, set by the program itself.
//!
//! candle 0.11 reads `RAYON_NUM_THREADS` at every CPU matrix product and, when it is unset, counts
//! the cores each time (it reads /proc/cpuinfo); it also sizes its pool for large element-wise ops
//! from it. A library cannot write the environment soundly once threads run, so `elbo` never
//! does; a program can, first thing in `main` (benches/README.md, "Process settings").

/// Sets `RAYON_NUM_THREADS=1` unless the user has set it. Call it first in `main`, before any
/// thread starts.
pub fn one_candle_thread() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
}
