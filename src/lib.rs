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
//!
//! # The map
//!
//! One step pipeline, and a slot (a small trait) for each thing that varies; layers run one way,
//! from the model up to the report.
//!
//! - **The model** ([`model`], [`latent`], [`dist`], [`special`], [`likelihood`]): [`LogJoint`]
//!   gives log p(x, z) for a batch of draws; [`Model`] adds named, constrained latents with their
//!   bijectors; [`dist`] has batched log densities, [`special`] differentiable special functions,
//!   [`likelihood`] fused likelihoods (GLMs, mixtures) with their candle composition.
//! - **The family slot** ([`family`]): the variational distribution q(z; λ), [`VariationalFamily`]
//!   (draws with log q, log q with λ fixed) made by a [`Family`]; a closed-form entropy, a
//!   closed-form gradient on the host and the [`Gaussian`] extras are capabilities.
//!   [`MeanField`] and [`FullRank`] are built in.
//! - **The objective slot** ([`objective`]): what a step maximises, [`Objective`], from the draws'
//!   log p and q's entropy or log q; [`Estimator`] has the entropy form and sticking the landing.
//! - **The optimiser slot** ([`optim`]): how λ moves, [`optim::UpdateRule`] (Adam, SGD), with a
//!   step-size schedule ([`LrSchedule`]) and the location's units ([`LocStep`]).
//! - **The stopping-rule slot** ([`stop`]): [`stop::Rule`] returns "go on" or a [`StopReason`];
//!   [`StopRule`] names the built-in ones (stationarity with iterate averaging, the default;
//!   Stan's; every step).
//! - **The averaging slot** ([`average`]): [`average::Averager`], q as the average of the
//!   iterates.
//! - **The observer slot** ([`observe`]): a progress bar, a trace log; observers change nothing.
//! - **The engines**: [`advi`] (stochastic ascent: the one step pipeline, the recovery from
//!   non-finite steps, the step-size search), [`map`] (MAP, Laplace and deterministic ADVI on
//!   L-BFGS), [`pathfinder`] (Gaussians along L-BFGS paths; ADVI's default start), [`amortized`] (q(z | x) from an encoder, the VAE's bounds).
//! - **The report** ([`report`]): the one place a [`Fit`] is made: the ELBO ± s.e. on fresh
//!   draws, PSIS k̂ and its verdict, the summary and draws by name ([`summary`]), each method's
//!   own record.
//! - **The rest**: [`runtime`] (threads and devices, without writing the environment), [`noise`]
//!   (seeded standard-normal streams), [`linalg`] (small host linear algebra), [`error`]; the
//!   SIMD kernels are crate-private, the one module allowed raw intrinsics (Cargo.toml's lints).
#![deny(missing_docs)]

pub mod advi;
pub mod amortized;
pub mod average;
pub mod dist;
pub mod error;
pub mod family;
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
pub mod pathfinder;
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
pub use pathfinder::Pathfinder;
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
