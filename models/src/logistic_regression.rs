//! Bayesian logistic regression.
//!
//! ```text
//! w_d ~ N(0, 1),  b ~ N(0, 1),  y_i ~ Bernoulli(σ(η_i)),  η_i = x_iᵀ w + b
//! log p(y | η) = Σ_i [y_i η_i − softplus(η_i)]
//! ```
//!
//! The latent vector is z = (w_1, …, w_D, b), length D + 1. The likelihood is
//! [`elbo::glm::GlmLikelihood`]'s fused Bernoulli-logit op on the CPU, with the N(0, 1) priors in
//! the same op (its backward computes the gradient for z only, never for X).

use candle_core::Tensor;
use elbo::glm::GlmLikelihood;
use elbo::{LogJoint, Result};

use crate::data::check_design;

/// y_i ~ Bernoulli(logit = x_iᵀ w + b) with standard normal priors on w and b.
///
/// ```
/// use elbo::prelude::*;
/// use elbo_models::LogisticRegression;
///
/// // one data point x = 0, y = 1: log p = log σ(b) + log N(w; 0, 1) + log N(b; 0, 1)
/// let x = Tensor::new(&[[0.0f64]], &Device::Cpu)?;
/// let y = Tensor::new(&[1.0f64], &Device::Cpu)?;
/// let model = LogisticRegression::new(&x, &y)?;
/// assert_eq!(model.dim(), 2); // w and b
/// let z = Tensor::new(&[[0.0f64, 0.0]], &Device::Cpu)?;
/// let lp = model.log_joint(&z)?.to_vec1::<f64>()?[0];
/// let want = (0.5f64).ln() - (2.0 * std::f64::consts::PI).ln();
/// assert!((lp - want).abs() < 1e-12);
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct LogisticRegression {
    likelihood: GlmLikelihood,
}

impl LogisticRegression {
    /// The model for design `x` `[N, D]` and labels `y` `[N]` in {0, 1} (one float dtype, one device).
    pub fn new(x: &Tensor, y: &Tensor) -> Result<Self> {
        elbo::runtime::default_threads(); // before the first large op sizes candle's thread pool
        check_design("LogisticRegression", x, y)?;
        Ok(LogisticRegression { likelihood: GlmLikelihood::bernoulli_logit(x, y)? })
    }
}

impl LogJoint for LogisticRegression {
    fn dim(&self) -> usize {
        self.likelihood.dim()
    }

    fn log_joint(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        self.likelihood.log_joint_normal_prior(z, 1.0)
    }
}
