//! ELBO estimators from S reparameterised draws z_s = μ + L ε_s.
//!
//! ```text
//! Entropy (closed form):        ELBO ≈ 1/S Σ_s log p(x, z_s) + H(q)
//! Sticking the landing (STL):   ELBO ≈ 1/S Σ_s [log p(x, z_s) − log q_⊥(z_s)]
//! ```
//!
//! Both are unbiased for the ELBO and have the same expected gradient. STL (Roeder, Wu & Duvenaud
//! 2017) drops the score term by holding λ fixed in log q (⊥ = stop-gradient), so its gradient is
//! exactly zero for every draw when q equals the posterior: less noise near the optimum.

use candle_core::Tensor;

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

/// One ELBO estimate with everything the engine needs afterwards.
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
    /// The ELBO estimate from the noise `eps` (`[S, D]`) with every parameter of `q` differentiable.
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
        let elbo = match self {
            Estimator::Entropy => (log_joint.mean_all()? + q.entropy()?)?,
            Estimator::StickingTheLanding => (&log_joint - q.log_prob(&z)?)?.mean_all()?,
        };
        Ok(ElboEstimate { elbo, log_joint, z })
    }
}

/// A model's minibatch log joint on fixed rows, seen as a [`LogJoint`] so that [`evaluate`] checks
/// its contract too.
struct Minibatch<'a, M: ?Sized> {
    model: &'a M,
    rows: &'a Tensor,
}

impl<M: LogJoint + ?Sized> LogJoint for Minibatch<'_, M> {
    fn dim(&self) -> usize {
        self.model.dim()
    }
    fn log_joint(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        self.model.log_joint_minibatch(z, self.rows)
    }
}

/// [`evaluate`] on all the data, or with `rows` on the model's minibatch estimate.
pub(crate) fn evaluate_rows<M: LogJoint + ?Sized>(model: &M, z: &Tensor, rows: Option<&Tensor>) -> Result<Tensor> {
    match rows {
        None => evaluate(model, z),
        Some(rows) => evaluate(&Minibatch { model, rows }, z),
    }
}

/// Calls `log_joint` on `z` (`[S, D]`) and checks its contract: shape `[S]` and the dtype of `z`.
pub fn evaluate<M: LogJoint + ?Sized>(model: &M, z: &Tensor) -> Result<Tensor> {
    let (s, d) = z.dims2()?;
    // An `elbo` error raised inside the model (an undeclared latent name) comes out as itself.
    let out = model.log_joint(z).map_err(|e| match Error::from(e) {
        Error::Candle(e) => Error::ModelOutput {
            problem: format!(
                "failed on z of shape [{s}, {d}] and dtype {:?} on {:?}: {e}. If the model's data \
                 have another dtype or device, set the same with `.dtype(...)` / `.device(...)`.",
                z.dtype(),
                z.device().location()
            ),
        },
        ours => ours,
    })?;
    if out.dims() != [s] {
        return Err(Error::ModelOutput {
            problem: format!(
                "must return one value per draw, shape [{s}], for z of shape [{s}, {d}]; it returned \
                 shape {:?} (sum the log densities over every axis but the first)",
                out.dims()
            ),
        });
    }
    if out.dtype() != z.dtype() {
        return Err(Error::ModelOutput {
            problem: format!(
                "returned dtype {:?} for z of dtype {:?}; it must return the dtype of z",
                out.dtype(),
                z.dtype()
            ),
        });
    }
    Ok(out)
}
