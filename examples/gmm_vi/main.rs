//! Fits a Bayesian Gaussian mixture by ADVI and shows what happened: a progress bar, the fitted
//! weights, means and scales next to the truth, and two plots.
//!
//! ```text
//! cargo run --release --example gmm_vi                          # simulated, K = 3, D = 2, N = 1000
//! cargo run --release --example gmm_vi -- --family fullrank --restarts 4 --json out/gmm.json
//! cargo run --release --example gmm_vi -- --data points.csv --k 4   # your own points
//! cargo run --release --example gmm_vi --features cuda          # on the GPU if there is one
//! ```
//!
//! Everything happens in `app.rs` (`app::run`), which the tests call in-process; `app.rs` says
//! which file holds which part.

use std::process::ExitCode;

mod app;
#[path = "../common/entry.rs"]
mod entry;
#[path = "../common/threads.rs"]
mod threads;

// glibc's malloc is bimodal for candle's per-op tensors (see benches/README.md), mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

impl entry::Finished for app::Report {
    fn notes(&self) -> &[String] {
        &self.notes
    }
    fn print(&self) {
        print!("{self}");
    }
}

fn main() -> ExitCode {
    threads::one_candle_thread();
    entry::main(app::run)
}
