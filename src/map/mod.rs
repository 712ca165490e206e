//! Deterministic answers through argmin's L-BFGS: the posterior mode (MAP), the Laplace
//! approximation at it, and deterministic ADVI (DADVI, Giordano, Ingram & Broderick 2024) with
//! linear-response covariances.
//!
//! ```text
//! MAP:      ẑ = argmin_z −log p(x, z)                 z unconstrained; log p includes log|det J|
//!           converged when ½ ∇ᵀH⁻¹∇ ≤ tol_decrement nats (the Newton decrement; or ‖∇‖ ≤ tol_grad)
//! Laplace:  q(z) = N(ẑ, H⁻¹),   H = ∇²_z(−log p(x, z)) at ẑ   (central differences of ∇ log p)
//! DADVI:    η̂ = argmax_η ELBO_M(η),   η = (μ, log σ),   ε₁ … ε_M ~ N(0, I) drawn once
//!           ELBO_M(η) = 1/M Σ_m log p(x, μ + σ ⊙ ε_m) + Σᵢ log σᵢ + D/2 (1 + log 2π)
//!           Cov_LR(z) = [H_η⁻¹]_μμ,   H_η = ∇²_η(−ELBO_M) at η̂          (linear response)
//!           Cov(η̂) ≈ H_η⁻¹ V H_η⁻¹ / M,  V = sample covariance of the per-draw gradients (sandwich)
//! ```
//!
//! L-BFGS (lbfgs.rs) gets close; where a finite-difference Hessian is at hand (hessian.rs), damped
//! Newton steps (newton.rs) check and finish its answer on the Newton decrement, a test free of the
//! posterior's scale, and [`Convergence`] records how the run ended. [`NegLogJoint`] is the bridge
//! from any [`crate::LogJoint`] (plain, or a [`crate::Model`] with constrained latents) to argmin's
//! `CostFunction` and `Gradient`. [`Map`] finds the mode and
//! reports it by name in the constrained space; [`Laplace`] and [`Dadvi`] return the same
//! [`crate::Fit`] as stochastic ADVI (report, summaries by name, draws, k̂), with the method named.

mod bridge;
mod dadvi;
mod hessian;
mod laplace;
mod lbfgs;
mod mode;
mod newton;

pub use bridge::NegLogJoint;
pub use dadvi::{Dadvi, DadviFit, DadviStart};
pub use laplace::Laplace;
pub use lbfgs::Lbfgs;
pub(crate) use lbfgs::{minimize_on_path, Point};
pub use mode::{Map, MapFit};
pub use newton::Convergence;

use std::time::Duration;

use candle_core::{DType, Device};

use crate::family::VariationalFamily;
use crate::latent::{Bijector, Latents};
use crate::model::LogJoint;
use crate::report::{Evaluation, Fit, Method, Run};
use crate::stop::StopReason;
use crate::{Error, Result};

/// The name of every unconstrained coordinate of z: a real latent's element names (`mu`,
/// `theta[3]`), and `u(tau)`, `u(w)[0]`, … for the coordinates behind a constrained latent.
pub(crate) fn coordinate_names(latents: &Latents) -> Vec<String> {
    latents
        .blocks()
        .iter()
        .flat_map(|b| match (b.bijector(), b.unconstrained_len()) {
            (Bijector::Real, _) => b.element_names(),
            (_, 1) => vec![format!("u({})", b.name())],
            (_, n) => (0..n).map(|k| format!("u({})[{k}]", b.name())).collect(),
        })
        .collect()
}

/// A direction by its largest components, e.g. `0.707 × a − 0.707 × b`, signed so that the
/// largest is positive.
pub(crate) fn describe_direction(v: &[f64], names: &[String]) -> String {
    const SHOW: usize = 6;
    let len = lbfgs::norm(v);
    if len == 0.0 || !len.is_finite() {
        return "(none)".into();
    }
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[b].abs().total_cmp(&v[a].abs()));
    let sign = if v[order[0]] < 0.0 { -1.0 } else { 1.0 };
    let top = v[order[0]].abs();
    let shown: Vec<usize> = order.iter().copied().take_while(|&i| v[i].abs() >= 0.05 * top).take(SHOW).collect();
    let mut text = String::new();
    for (k, &i) in shown.iter().enumerate() {
        let c = sign * v[i] / len;
        let name = names.get(i).cloned().unwrap_or_else(|| format!("z[{i}]"));
        match (k, c < 0.0) {
            (0, _) => text.push_str(&format!("{c:.3} × {name}")),
            (_, true) => text.push_str(&format!(" − {:.3} × {name}", -c)),
            (_, false) => text.push_str(&format!(" + {c:.3} × {name}")),
        }
    }
    let rest = v.len() - shown.len();
    if rest > 0 {
        text.push_str(&format!(" (+ {rest} smaller components)"));
    }
    text
}

/// The settings of the final report of a [`Fit`]: fresh draws for the ELBO and k̂, and the seed.
#[derive(Clone, Debug)]
pub(crate) struct Reporting {
    pub seed: u64,
    pub elbo_draws: usize,
    pub diagnostics: bool,
    pub dtype: DType,
    pub device: Device,
}

impl Reporting {
    pub(crate) fn new() -> Self {
        Reporting {
            seed: 0,
            elbo_draws: crate::report::EVALUATION_DRAWS,
            diagnostics: true,
            dtype: DType::F64,
            device: Device::Cpu,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.elbo_draws < 2 {
            return Err(Error::config(
                "elbo_draws",
                self.elbo_draws,
                "at least 2 draws are needed for a standard error",
            ));
        }
        if !matches!(self.dtype, DType::F32 | DType::F64) {
            return Err(Error::config("dtype", format!("{:?}", self.dtype), "use DType::F32 or DType::F64"));
        }
        Ok(())
    }

    /// The [`Fit`] of q: ELBO ± s.e. and PSIS k̂ on fresh draws, the summary by name, as ADVI's.
    pub(crate) fn fit<Q: VariationalFamily, M: LogJoint + ?Sized>(
        &self,
        q: Q,
        model: &M,
        method: Method,
        iterations: usize,
        trace: Vec<f64>,
        elapsed: Duration,
    ) -> Result<Fit<Q>> {
        let evaluation = Evaluation {
            draws: self.elbo_draws,
            diagnostics: self.diagnostics,
            seed: self.seed,
            dtype: self.dtype,
            device: self.device.clone(),
        };
        let stop_reason = match &method {
            Method::Laplace { lbfgs: c, .. } | Method::Dadvi { lbfgs: c, .. } if c.rounding_floor => {
                StopReason::LbfgsRoundingFloor { grad_norm: c.grad_norm, tol_grad: c.tol_grad }
            }
            Method::Pathfinder { paths, .. } => StopReason::PathsEnded {
                converged: paths.iter().flatten().filter(|p| p.lbfgs_note.is_none()).count(),
                paths: paths.len(),
            },
            _ => StopReason::LbfgsConverged,
        };
        let run = Run { method, stop_reason, iterations, trace, elapsed, stochastic: None };
        evaluation.report(q, model, run)
    }
}

/// What a Hessian of −log p that is not positive definite means, and what to do.
pub(crate) const FLAT_POSTERIOR: &str = "The posterior is flat (improper) or curves the wrong way along that \
     direction, so there is no finite, unique mode: give the latents along it a proper prior, or remove the \
     redundancy between them.";

/// [`Error::NonFiniteInit`] for a start where log p or its gradient is not finite.
pub(crate) fn bad_start(e: Error) -> Error {
    match e {
        Error::ModelOutput { problem } if problem.starts_with("returned") || problem.starts_with("has a non") => {
            Error::NonFiniteInit { detail: format!("the model's log_joint {problem}, the starting point") }
        }
        other => other,
    }
}
