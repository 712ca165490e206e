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

mod app;
#[path = "../common/entry.rs"]
mod entry;

// glibc's malloc is bimodal for candle's per-op tensors (see benches/README.md), mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The run printed its figures as it went: only the notes are left.
impl entry::Finished for app::Report {
    fn notes(&self) -> &[String] {
        &self.notes
    }
}

fn main() -> ExitCode {
    entry::main(app::run)
}
