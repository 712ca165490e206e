//! One Pathfinder path: L-BFGS on −log p from a start, a Gaussian at every iterate, and the one
//! with the largest ELBO.
//!
//! ```text
//! x₀ → x₁ → … → x_L                         L-BFGS on f = −log p(x, z), every iterate kept
//! q_l = N(μ_l, Σ_l)                          from the pairs up to l (approx.rs)
//! ELBO_l ≈ 1/K Σ_k [log p(x, z_k) − log q_l(z_k)],  z_k ~ q_l   (K fresh draws per iterate)
//! the path's answer: q_l*, l* = argmax ELBO_l  (iterates whose Σ is not positive definite or
//!                                               whose draws give no finite ELBO are passed over)
//! ```

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor};

use super::approx::{History, LowRankGaussian};
use crate::linalg::to_f64_vec;
use crate::map::{minimize_on_path, Lbfgs, NegLogJoint, Point};
use crate::model::LogJoint;
use crate::noise::Noise;
use crate::objective::evaluate;
use crate::{Error, Result};

/// What one path found: its best Gaussian and how it got there.
#[derive(Clone, Debug)]
pub(crate) struct PathResult {
    pub gaussian: LowRankGaussian,
    pub record: PathRecord,
}

/// How one path went, for the report.
#[derive(Clone, Debug, PartialEq)]
pub struct PathRecord {
    /// The L-BFGS iterations on the path.
    pub iterations: usize,
    /// Gradient evaluations of log p(x, z) on the path (L-BFGS and its line searches).
    pub gradient_evaluations: usize,
    /// Evaluations of log p(x, z) without gradient behind the ELBO estimates.
    pub elbo_evaluations: usize,
    /// The iterate whose Gaussian was chosen (0 is the start).
    pub chosen: usize,
    /// That Gaussian's ELBO estimate.
    pub elbo: f64,
    /// Why L-BFGS stopped early, when it did not converge (the path is used all the same).
    pub lbfgs_note: Option<String>,
}

/// The settings of one path.
pub(crate) struct PathSettings<'a> {
    pub lbfgs: &'a Lbfgs,
    pub memory: usize,
    pub draws: usize,
    pub dtype: DType,
    pub device: &'a Device,
    pub names: &'a [String],
}

/// Runs one path from `x0`; fails only when no iterate gives a Gaussian with a finite ELBO.
pub(crate) fn run_path<M: LogJoint + ?Sized>(
    model: &M,
    x0: Vec<f64>,
    settings: &PathSettings<'_>,
    noise: &mut Noise,
) -> Result<PathResult> {
    let d = x0.len();
    let bridge = NegLogJoint::new(model).dtype(settings.dtype).device(settings.device.clone());
    let path: Arc<Mutex<Vec<Point>>> = Arc::new(Mutex::new(Vec::new()));
    let outcome = minimize_on_path(
        &bridge,
        x0,
        settings.lbfgs,
        "Pathfinder (L-BFGS on −log p(x, z))",
        settings.names,
        Some(path.clone()),
    );
    let lbfgs_note = match &outcome {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    let points = path.lock().map(|p| p.clone()).unwrap_or_default();
    if points.is_empty() {
        return Err(outcome.err().unwrap_or_else(|| Error::ModelOutput { problem: "gave no L-BFGS iterate".into() }));
    }
    let gradient_evaluations = bridge.evaluations();
    let mut history = History::new(d, settings.memory);
    let mut best: Option<(usize, f64, LowRankGaussian)> = None;
    let mut elbo_evaluations = 0;
    for l in 1..points.len() {
        let ((x_prev, _, g_prev), (x, _, g)) = (&points[l - 1], &points[l]);
        history.push(x_prev, g_prev, x, g);
        let Some(gaussian) = history.gaussian(x, g) else { continue };
        let elbo = elbo(model, &gaussian, settings, noise)?;
        elbo_evaluations += settings.draws;
        if elbo.is_finite() && best.as_ref().is_none_or(|(_, b, _)| elbo > *b) {
            best = Some((l, elbo, gaussian));
        }
    }
    let Some((chosen, elbo, gaussian)) = best else {
        let why = lbfgs_note.map(|n| format!(": {n}")).unwrap_or_default();
        return Err(Error::ModelOutput {
            problem: format!(
                "gave no Gaussian with a finite ELBO along the {} L-BFGS iterates of a Pathfinder path{why}",
                points.len()
            ),
        });
    };
    let record =
        PathRecord { iterations: points.len() - 1, gradient_evaluations, elbo_evaluations, chosen, elbo, lbfgs_note };
    Ok(PathResult { gaussian, record })
}

/// The ELBO of `q` from `settings.draws` fresh draws (−∞ when a draw's log p is not finite).
fn elbo<M: LogJoint + ?Sized>(
    model: &M,
    q: &LowRankGaussian,
    settings: &PathSettings<'_>,
    noise: &mut Noise,
) -> Result<f64> {
    let (k, d) = (settings.draws, q.dim());
    let u = noise.standard_normal_host(k, d, DType::F64)?;
    let (mut z, mut log_q) = (Vec::with_capacity(k * d), Vec::with_capacity(k));
    for row in u.chunks(d) {
        let (zk, lq) = q.draw(row);
        z.extend(zk);
        log_q.push(lq);
    }
    let z = Tensor::from_vec(z, (k, d), &Device::Cpu)?.to_dtype(settings.dtype)?.to_device(settings.device)?;
    let log_p = match evaluate(model, &z) {
        Ok(lp) => to_f64_vec(&lp)?,
        // a draw the model cannot evaluate (outside its support) makes this Gaussian unusable
        Err(Error::ModelOutput { .. }) => return Ok(f64::NEG_INFINITY),
        Err(e) => return Err(e),
    };
    let total: f64 = log_p.iter().zip(&log_q).map(|(p, q)| p - q).sum();
    Ok(if total.is_nan() { f64::NEG_INFINITY } else { total / k as f64 })
}
