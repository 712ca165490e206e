//! The objective slot: what the stochastic step maximises, from S reparameterised draws
//! z_s = T_λ(ε_s) of q.
//!
//! ```text
//! Entropy (closed form):        ELBO ≈ 1/S Σ_s log p(x, z_s) + H(q)
//! Sticking the landing (STL):   ELBO ≈ 1/S Σ_s [log p(x, z_s) − log q_⊥(z_s)]
//! ```
//!
//! Both are unbiased for the ELBO and have the same expected gradient. STL (Roeder, Wu & Duvenaud
//! 2017) drops the score term by holding λ fixed in log q (⊥ = stop-gradient), so its gradient is
//! exactly zero for every draw when q equals the posterior: less noise near the optimum.
//!
//! An [`Objective`] turns the draws' log p(x, z_s), and q's entropy or the draws' log q, into an
//! estimate and a weight a_s for each draw. The engine's gradient is then
//!
//! ```text
//! ∂f/∂λ = Σ_s a_s [∇_z log p(x, z_s) − 𝟙{LogQ} ∇_z log q_⊥(z_s)] · ∂z_s/∂λ  +  𝟙{Entropy} ∇_λ H(q)
//! ```
//!
//! (the path derivative: λ is held fixed inside log q). Entropy and STL weigh every draw by 1/S;
//! an importance-weighted bound would weigh them by the normalised weights, a Rényi bound by their
//! powers. The built-in objectives are the [`Estimator`] variants; a user's own implements the
//! trait and is passed to [`crate::Advi::objective`].

mod estimator;

pub(crate) use estimator::no_entropy;
pub use estimator::{ElboEstimate, Estimator};

use candle_core::Tensor;

use crate::model::LogJoint;
use crate::{Error, Result};

/// Which term of q an objective uses besides the draws' log p.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QTerm {
    /// The entropy H(q) in closed form, differentiated in λ (the family must have one).
    Entropy,
    /// log q(z_s) of each draw with λ held fixed: only its path through z_s is differentiated.
    LogQ,
}

/// q's part of the estimate for the current draws, as [`Objective::q_term`] asked.
#[derive(Clone, Copy, Debug)]
pub enum QValues<'a> {
    /// H(q).
    Entropy(f64),
    /// log q(z_s) for each draw, `[S]`.
    LogQ(&'a [f64]),
}

/// One step's estimate and the weight a_s of each draw's pathwise gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// The objective's value (an ELBO estimate for the built-in ones; higher is better).
    pub value: f64,
    /// a_s for each draw, `[S]` (1/S for Entropy and STL).
    pub weights: Vec<f64>,
}

/// The objective slot: what a step maximises, in terms of the draws' log p(x, z_s) and q's term.
///
/// A minimal sketch of a user's objective, the STL estimate computed by hand:
///
/// ```
/// use elbo::objective::{Estimate, Objective, QTerm, QValues};
/// use elbo::prelude::*;
///
/// #[derive(Debug)]
/// struct MyStl;
/// impl Objective for MyStl {
///     fn name(&self) -> &'static str { "my STL" }
///     fn q_term(&self) -> QTerm { QTerm::LogQ }
///     fn estimate(&self, log_joint: &[f64], q: QValues<'_>) -> Estimate {
///         let QValues::LogQ(log_q) = q else { unreachable!("asked for log q") };
///         let s = log_joint.len() as f64;
///         let value = log_joint.iter().zip(log_q).map(|(p, q)| p - q).sum::<f64>() / s;
///         Estimate { value, weights: vec![1.0 / s; log_joint.len()] }
///     }
/// }
/// let model = elbo::from_fn(2, |z: &Tensor| z.sqr()?.sum(1)? * -0.5);
/// let fit = Advi::new(MeanField).dtype(DType::F64).objective(MyStl).steps(500).seed(3).fit(&model)?;
/// assert!(fit.mean()?.to_vec1::<f64>()?.iter().all(|m| m.abs() < 0.2));
/// # Ok::<(), elbo::Error>(())
/// ```
pub trait Objective: std::fmt::Debug + Send + Sync {
    /// A short name for reports, e.g. "entropy-form ELBO".
    fn name(&self) -> &'static str;

    /// Which term of q [`Objective::estimate`] needs.
    fn q_term(&self) -> QTerm;

    /// The estimate and the draws' weights from log p(x, z_s) (`[S]`) and q's term.
    fn estimate(&self, log_joint: &[f64], q: QValues<'_>) -> Estimate;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    /// Weighs one draw too few.
    #[derive(Debug)]
    struct Short;

    impl Objective for Short {
        fn name(&self) -> &'static str {
            "short"
        }
        fn q_term(&self) -> QTerm {
            QTerm::Entropy
        }
        fn estimate(&self, log_joint: &[f64], _q: QValues<'_>) -> Estimate {
            Estimate { value: log_joint[0], weights: vec![1.0; log_joint.len() - 1] }
        }
    }

    #[test]
    fn an_objective_that_does_not_weigh_every_draw_is_a_clear_error() {
        let model = crate::from_fn(2, |z: &Tensor| z.sqr()?.sum(1)? * -0.5);
        let e = Advi::new(MeanField).dtype(DType::F64).samples(3).objective(Short).fit(&model).unwrap_err();
        assert!(matches!(&e, Error::InvalidConfig { name: "objective", .. }), "{e:?}");
        assert!(e.to_string().contains("S = 3"), "{e}");
    }
}
