//! The flags of `vae` (clap) and the checks clap cannot make.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use serde::Serialize;

use super::args::{at_least_one, positive};
use super::data::DEFAULT_DATA;
use super::{AppError, DeviceArg};

/// The decoder's likelihood.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LikelihoodArg {
    /// Bernoulli on logits, on grey levels in [0, 1].
    Bernoulli,
    /// Gaussian with a fixed standard deviation (--gaussian-scale).
    Gaussian,
}

/// Train a variational autoencoder on MNIST-format images (Fashion-MNIST by default).
#[derive(Parser, Debug, Clone)]
#[command(name = "vae")]
pub struct Args {
    /// Folder with train-images-idx3-ubyte[.gz] and t10k-images-idx3-ubyte[.gz].
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// Passes over the training images (0 with --load: evaluate only).
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Images per minibatch.
    #[arg(long, default_value_t = 128, value_parser = at_least_one)]
    pub batch: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub lr: f64,
    /// Latent dimension D (2 also draws the latent-space manifold).
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    pub latent: usize,
    /// Width of the hidden layer of the encoder and of the decoder.
    #[arg(long, default_value_t = 400, value_parser = at_least_one)]
    pub hidden: usize,
    /// Epochs over which the KL weight β rises linearly from 0 to 1 (0: β = 1 throughout).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub warmup_epochs: f64,
    /// Seed of the weights, the batches and the noise (a CPU run is reproducible bit for bit).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Importance samples K per image of the final test log-likelihood (0: skip it).
    #[arg(long, default_value_t = 100)]
    pub iw_k: usize,
    /// Test images in the importance-weighted estimate (the first ones).
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    pub iw_n: usize,
    /// The decoder's likelihood.
    #[arg(long, value_enum, default_value_t = LikelihoodArg::Bernoulli)]
    pub likelihood: LikelihoodArg,
    /// Standard deviation of the Gaussian decoder.
    #[arg(long, default_value_t = 0.1)]
    pub gaussian_scale: f64,
    /// Use only the first N training images.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub train_n: Option<usize>,
    /// Use only the first N test images.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub test_n: Option<usize>,
    /// Where to train: `auto` is the GPU when built with `--features cuda` and one is there.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// CPU threads for candle's matrix products [default: RAYON_NUM_THREADS if set, else all cores].
    #[arg(long, value_parser = at_least_one)]
    pub threads: Option<usize>,
    /// Start from the weights in this safetensors file (written by --save with the same sizes).
    #[arg(long, value_name = "FILE")]
    pub load: Option<PathBuf>,
    /// Write the trained weights to this safetensors file.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Folder for the pictures (created if missing).
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Write every figure printed as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// No progress bar and no per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
    /// No pictures.
    #[arg(long)]
    pub no_plot: bool,
}

impl Args {
    /// The checks clap cannot make: positive rates and scales, --epochs 0 only with --load.
    pub fn check(&self) -> Result<(), AppError> {
        positive("--lr", self.lr).map_err(AppError::Input)?;
        if !(self.warmup_epochs >= 0.0 && self.warmup_epochs.is_finite()) {
            return Err(AppError::Input(format!("--warmup-epochs {} must be a number ≥ 0", self.warmup_epochs)));
        }
        if self.likelihood == LikelihoodArg::Gaussian {
            positive("--gaussian-scale", self.gaussian_scale).map_err(AppError::Input)?;
        }
        if self.epochs == 0 && self.load.is_none() {
            return Err(AppError::Input(
                "--epochs 0 only makes sense with --load FILE (evaluate saved weights)".into(),
            ));
        }
        Ok(())
    }
}
