//! The built-in objectives: the entropy-form ELBO and sticking the landing (STL).
//!
//! ```text
//! Entropy:  f = 1/S Σ_s log p(x, z_s) + H(q),            a_s = 1/S
//! STL:      f = 1/S Σ_s [log p(x, z_s) − log q_⊥(z_s)],  a_s = 1/S
//! ```
//!
//! [`Estimator::estimate`] is the same estimate as one differentiable tensor (autodiff through
//! the family and the model), the reference the engine's gradient is tested against.

use candle_core::Tensor;

use super::{evaluate_rows, Estimate, Objective, QTerm, QValues};
use crate::family::VariationalFamily;
use crate::model::LogJoint;
use crate::{Error, Result};

/// Which Monte Carlo ELBO estimator drives the gradient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Estimator {
    /// Mean log joint over the draws plus the closed-form entropy.
    #[default]
    Entropy,
    /// Sticking the landing: mean of log p(x, z) − log q(z) with λ held fixed in log q.
    StickingTheLanding,
}

impl Objective for Estimator {
    fn name(&self) -> &'static str {
        match self {
            Estimator::Entropy => "entropy-form ELBO",
            Estimator::StickingTheLanding => "sticking-the-landing ELBO",
        }
    }

    fn q_term(&self) -> QTerm {
        match self {
            Estimator::Entropy => QTerm::Entropy,
            Estimator::StickingTheLanding => QTerm::LogQ,
        }
    }

    fn estimate(&self, log_joint: &[f64], q: QValues<'_>) -> Estimate {
        let s = log_joint.len();
        let mean_lp = log_joint.iter().sum::<f64>() / s as f64;
        let value = match q {
            QValues::Entropy(h) => mean_lp + h,
            QValues::LogQ(log_q) => mean_lp - log_q.iter().sum::<f64>() / s as f64,
        };
        Estimate { value, weights: vec![1.0 / s as f64; s] }
    }
}

/// One ELBO estimate as tensors.
#[derive(Debug)]
pub struct ElboEstimate {
    /// The estimate, a scalar differentiable in the family's parameters.
    pub elbo: Tensor,
    /// log p(x, z_s) for each draw, `[S]`.
    pub log_joint: Tensor,
    /// The draws z_s, `[S, D]`.
    pub z: Tensor,
}

impl Estimator {
    /// The ELBO estimate from the noise `eps` (`[S, D]`) as one tensor with every parameter of
    /// `q` differentiable (autodiff through the family and the model):
    /// the mean of log p(x, z_s) plus H(q), or the mean of log p(x, z_s) − log q_⊥(z_s).
    ///
    /// With `rows`, log p(x, z) is the model's minibatch estimate on those data points
    /// ([`LogJoint::log_joint_minibatch`]), so the ELBO estimate stays unbiased.
    pub fn estimate<Q, M>(self, q: &Q, model: &M, eps: &Tensor, rows: Option<&Tensor>) -> Result<ElboEstimate>
    where
        Q: VariationalFamily + ?Sized,
        M: LogJoint + ?Sized,
    {
        let z = q.rsample(eps)?;
        let log_joint = evaluate_rows(model, &z, rows)?;
        let elbo = match self.q_term() {
            QTerm::Entropy => {
                let Some(h) = q.closed_form_entropy()? else { return Err(no_entropy(q.name())) };
                (log_joint.mean_all()? + h)?
            }
            QTerm::LogQ => (&log_joint - q.log_prob(&z)?)?.mean_all()?,
        };
        Ok(ElboEstimate { elbo, log_joint, z })
    }
}

/// The error for an entropy-form objective on a family without a closed-form entropy.
pub(crate) fn no_entropy(family: &str) -> Error {
    Error::config(
        "estimator",
        "Entropy",
        format!(
            "the {family} has no closed-form entropy: use Estimator::StickingTheLanding (log q of the draws \
             instead)"
        ),
    )
}
