//! The flags of `gmm_vi` (clap) and the checks clap cannot make.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use serde::Serialize;

use super::args::{at_least_one, positive};
use super::{AppError, DeviceArg};

/// The variational family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FamilyArg {
    /// Diagonal Gaussian q (ADVI's mean-field family).
    Meanfield,
    /// Gaussian q with a dense covariance.
    Fullrank,
}

impl FamilyArg {
    /// `mean-field` or `full-rank`, for titles.
    pub fn label(self) -> &'static str {
        match self {
            FamilyArg::Meanfield => "mean-field",
            FamilyArg::Fullrank => "full-rank",
        }
    }
}

/// Fit a Bayesian Gaussian mixture by ADVI and compare it with the truth it was simulated from
/// (or fit the points of a CSV file).
#[derive(Parser, Debug, Clone)]
#[command(name = "gmm_vi")]
pub struct Args {
    /// Variational family.
    #[arg(long, value_enum, default_value_t = FamilyArg::Meanfield)]
    pub family: FamilyArg,
    /// Number of mixture components K.
    #[arg(long, default_value_t = 3, value_parser = at_least_one)]
    pub k: usize,
    /// Number of simulated points N [default: 1000; with --data, the file's rows].
    #[arg(long, value_parser = at_least_one)]
    pub n: Option<usize>,
    /// Dimension D of the simulated points [default: 2; with --data, the file's columns].
    #[arg(long, value_parser = at_least_one)]
    pub d: Option<usize>,
    /// Draws of z per step (S).
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub samples: usize,
    /// The most optimisation steps per fit (the default stopping rule usually stops sooner).
    #[arg(long, default_value_t = 20_000, value_parser = at_least_one)]
    pub steps: usize,
    /// Adam's learning rate (constant, unless --lr-final is given).
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub lr: f64,
    /// Decay the learning rate geometrically from --lr to this value over the steps.
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    pub lr_final: Option<f64>,
    /// Seed of the simulated data and of the first fit (restart r uses seed + r).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fits from different starts; the one with the highest ELBO is kept.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub restarts: usize,
    /// Fit the points of this CSV file (one point a row, D numeric columns, header optional).
    #[arg(long, value_name = "FILE.csv")]
    pub data: Option<PathBuf>,
    /// Minibatch size B: each step sees B random points, the likelihood scaled by N / B (the final
    /// ELBO, on all points, then uses 200 draws).
    #[arg(long, value_parser = at_least_one)]
    pub batch: Option<usize>,
    /// Where to fit: `auto` is the GPU when built with `--features cuda` and one is there.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Folder for the plots (created if missing).
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// No plots.
    #[arg(long)]
    pub no_plot: bool,
}

impl Args {
    /// The learning rates must be positive numbers.
    pub fn check(&self) -> Result<(), AppError> {
        positive("--lr", self.lr).map_err(AppError::Input)?;
        if let Some(lr) = self.lr_final {
            positive("--lr-final", lr).map_err(AppError::Input)?;
        }
        Ok(())
    }
}
