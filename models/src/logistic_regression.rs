//! Bayesian logistic regression.
//!
//! ```text
//! w_d ~ N(0, 1),  b ~ N(0, 1),  y_i ~ Bernoulli(σ(η_i)),  η_i = x_iᵀ w + b
//! log p(y | η) = Σ_i [y_i η_i − softplus(η_i)]
//! ```
//!
//! The latent vector is z = (w_1, …, w_D, b), length D + 1.

use candle_core::{Tensor, D};
use elbo::special::{softplus, HALF_LN_2PI};
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
    x_t: Tensor,
    y: Tensor,
}

impl LogisticRegression {
    /// The model for design `x` `[N, D]` and labels `y` `[N]` in {0, 1} (one float dtype, one device).
    pub fn new(x: &Tensor, y: &Tensor) -> Result<Self> {
        elbo::runtime::default_threads(); // before the first large op sizes candle's thread pool
        check_design("LogisticRegression", x, y)?;
        Ok(LogisticRegression { x_t: x.t()?.contiguous()?, y: y.clone() })
    }
}

impl LogJoint for LogisticRegression {
    fn dim(&self) -> usize {
        self.x_t.dim(0).map(|d| d + 1).unwrap_or(0)
    }

    fn log_joint(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let d = self.x_t.dim(0)?;
        let w = z.narrow(1, 0, d)?;
        let b = z.narrow(1, d, 1)?;
        let eta = w.matmul(&self.x_t)?.broadcast_add(&b)?; // [S, N]
        let log_lik = (eta.broadcast_mul(&self.y.unsqueeze(0)?)? - softplus(&eta)?)?.sum(D::Minus1)?;
        let log_prior = ((z.sqr()?.sum(D::Minus1)? * -0.5)? - (d + 1) as f64 * HALF_LN_2PI)?;
        log_prior + log_lik
    }
}
