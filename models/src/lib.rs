//! `elbo-models`: ready models for the `elbo` toolkit, each a [`elbo::LogJoint`] (or an [`elbo::Model`]) with its data as
//! tensors. The priors match the peers' NumPyro models (benches/README.md), so ELBOs compare across
//! toolkits.
//!
//! - [`LinearRegression`]: conjugate Bayesian linear regression with known noise, with its exact
//!   posterior and log evidence;
//! - [`EightSchools`]: the non-centred hierarchical model of Rubin's eight schools, with a fused
//!   log joint;
//! - [`LogisticRegression`]: Bayesian logistic regression, w, b ~ N(0, 1);
//! - [`GaussianMixture`]: the Bayesian isotropic Gaussian mixture with the assignments summed out
//!   (an [`elbo::Model`] with named latents `w`, `mu`, `sigma`; supports minibatches);
//! - [`posteriordb`]: the development set of eight real posteriors from posteriordb, each an
//!   [`elbo::Model`] with its data and reference moments;
//! - [`Vae`]: the variational autoencoder with MLP encoder and decoder (amortised VI), trained by
//!   [`VaeTrainer`]; [`idx`] reads the MNIST-format image files it is usually fed.
#![deny(missing_docs)]

mod captured;
mod data;
pub mod dense;
mod eight_schools;
mod gaussian_mixture;
pub mod idx;
mod linear_regression;
mod logistic_regression;
pub mod posteriordb;
mod vae;

pub use eight_schools::EightSchools;
pub use gaussian_mixture::{GaussianMixture, GmmTruth};
pub use linear_regression::{ExactPosterior, LinearRegression};
pub use logistic_regression::LogisticRegression;
pub use vae::{Evaluation, StepStats, Vae, VaeConfig, VaeDecoder, VaeEncoder, VaeLikelihood, VaeTrainer};
