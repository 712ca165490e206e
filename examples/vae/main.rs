//! Trains the variational autoencoder of Kingma & Welling (2013) on MNIST-format images
//! (Fashion-MNIST by default) and shows what it learnt: per-epoch ELBO, KL per latent dimension and
//! active units, the importance-weighted test log-likelihood, and pictures.
//!
//! ```text
//! sudo apt-get install dataset-fashion-mnist                 # the data, once
//! cargo run --release --example vae                          # 784–400–20, 10 epochs, CPU
//! cargo run --release --example vae -- --latent 2 --epochs 20 --json out/vae.json
//! cargo run --release --example vae -- --data DIR            # any MNIST-format folder
//! cargo run --release --example vae --features cuda          # on the GPU if there is one
//! cargo run --release --example vae -- --device cpu           # the CPU even in a cuda build
//! ```
//!
//! Everything happens in `app.rs` (`app::run`), which the tests call in-process.

use std::process::ExitCode;

use clap::Parser;

mod app;

// glibc's malloc is bimodal for candle's per-op tensors (see benches/README.md), mimalloc is not.
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
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
