//! `elbo`: black-box variational inference on candle tensors.
//!
//! A model is its log joint density log p(x, z) ([`LogJoint`]); `elbo` fits a Gaussian q(z; λ),
//! mean-field or full-rank, to the posterior p(z | x) by stochastic ascent of the evidence lower
//! bound with reparameterisation gradients:
//!
//! ```text
//! ELBO(λ) = E_q[log p(x, z)] + H(q)  ≤  log p(x),     z = μ + L ε,  ε ~ N(0, I)
//! log p(x) − ELBO(λ) = KL(q(z; λ) ‖ p(z | x))
//! ```
//!
//! ```
//! use elbo::prelude::*;
//!
//! /// Posterior of a normal mean: y_i ~ N(θ, 1), θ ~ N(0, 1), so θ | y ~ N(Σy/(n+1), 1/(n+1)).
//! struct NormalMean { y: Tensor }
//! impl LogJoint for NormalMean {
//!     fn dim(&self) -> usize { 1 }
//!     fn log_joint(&self, z: &Tensor) -> candle_core::Result<Tensor> {
//!         let prior = (z.sqr()? * -0.5)?.squeeze(1)?;                       // [S]
//!         let resid = self.y.unsqueeze(0)?.broadcast_sub(z)?;               // [S, n]
//!         prior + (resid.sqr()? * -0.5)?.sum(1)?
//!     }
//! }
//! let y = Tensor::new(&[1.2f64, 0.8, 1.5, 0.9], &Device::Cpu)?;
//! let fit = Advi::new(FullRank).dtype(DType::F64).samples(4).steps(3_000).lr(0.02).seed(42)
//!     .fit(&NormalMean { y })?;
//! let mean = fit.mean()?.to_vec1::<f64>()?[0];
//! assert!((mean - 4.4 / 5.0).abs() < 0.05);
//! println!("{fit}");
//! # Ok::<(), elbo::Error>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod advi;
pub mod amortized;
pub mod average;
pub mod dist;
pub mod error;
pub mod family;
#[allow(unsafe_code)] // SIMD intrinsics: the one module allowed to use them
pub(crate) mod kernels;
pub mod latent;
pub mod likelihood;
pub mod linalg;
pub mod map;
pub mod model;
pub mod noise;
pub mod objective;
pub mod observe;
pub mod optim;
pub mod report;
pub mod runtime;
pub mod special;
pub mod stop;
pub mod summary;

pub use advi::{Advi, LrSearch, Step, SviState};
pub use error::{Error, Result};
pub use family::{
    Family, FamilyGradient, FullRank, FullRankGaussian, Gaussian, MeanField, MeanFieldGaussian, ScaleLink,
    VariationalFamily,
};
pub use latent::{Latents, Values};
pub use likelihood::{glm, mixture};
pub use model::{from_fn, FnModel, LogJoint, Model};
pub use objective::{Estimator, Objective};
pub use optim::{LocStep, LrSchedule, Optimizer};
pub use report::psis as diagnose;
pub use report::{Averaged, Fit, Method, Report, Stochastic};
pub use stop::StopReason;
pub use stop::StopRule;
pub use summary::{Draws, Summary};

/// Everything a typical program needs, with candle's `Tensor`, `Device` and `DType`.
pub mod prelude {
    pub use crate::{
        from_fn, Advi, Estimator, Family, Fit, FullRank, Gaussian, Latents, LogJoint, LrSchedule, MeanField, Model,
        Optimizer, ScaleLink, Step, StopReason, StopRule, Values, VariationalFamily,
    };
    pub use candle_core::{DType, Device, Tensor};
}

/// The README's code blocks, compiled and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
