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
//! Everything happens in `app.rs` (`app::run`), which the tests call in-process.

use std::process::ExitCode;

use clap::Parser;

mod app;

// glibc's malloc is bimodal for candle's per-op tensors (2× slower steps in some runs; see
// benches/README.md), mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match app::Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // --help and --version are not errors
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match app::run(args) {
        Ok(report) => {
            for note in &report.notes {
                eprintln!("{note}");
            }
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
