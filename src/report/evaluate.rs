//! The one place a [`Fit`] is made: q's final ELBO with its Monte Carlo standard error and PSIS
//! diagnostics on fresh draws, and the summary of its draws by name.
//!
//! ```text
//! log wᵢ = log p(x, zᵢ) − log q(zᵢ),  zᵢ ~ q fresh (i = 1..n)
//! ELBO ≈ mean(log w),  s.e. = sd(log w) / √n;  k̂, log p̂(x) from PSIS on log w
//! ```
//!
//! The reweighted moments need the draws zᵢ again once PSIS has smoothed the weights; they are
//! made again from the same noise, chunk by chunk, rather than held (S × D numbers), twice:
//! for the sums, then for the influences behind their Monte Carlo errors (`moments.rs`). The
//! moments of the constrained elements (σ = exp z, a simplex, …) come along with them: a q can
//! be off in a constrained element by more than in any coordinate of z (an ordered pair's
//! second element is the first plus the exponential of a coordinate).

use std::time::Duration;

use candle_core::{DType, Device};

use super::moments::Accumulator;
use super::psis::{normalised, psis, Diagnostics};
use super::{Fit, Method, Stochastic, SUMMARY_DRAWS};
use crate::family::{MeanFieldGaussian, VariationalFamily};
use crate::latent::{Bijector, Latents};
use crate::linalg::to_f64_vec;
use crate::model::{latents_of, LogJoint};
use crate::noise::{Noise, Stream};
use crate::objective::evaluate;
use crate::stop::StopReason;
use crate::summary::Draws;
use crate::Result;

/// How a fit's q is evaluated at the end.
#[derive(Clone, Debug)]
pub(crate) struct Evaluation {
    /// Fresh draws for the ELBO and PSIS (≥ 2).
    pub(crate) draws: usize,
    /// Whether PSIS runs on them.
    pub(crate) diagnostics: bool,
    pub(crate) seed: u64,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
}

/// How a method's run went, in the terms every method shares.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub(crate) method: Method,
    pub(crate) stop_reason: StopReason,
    pub(crate) iterations: usize,
    pub(crate) trace: Vec<f64>,
    pub(crate) elapsed: Duration,
    /// Stochastic ascent's own record (None for the L-BFGS methods).
    pub(crate) stochastic: Option<Stochastic>,
}

impl Evaluation {
    /// The report of `q` fitted to `model` by `run`.
    pub(crate) fn report<Q: VariationalFamily, M: LogJoint + ?Sized>(
        &self,
        q: Q,
        model: &M,
        run: Run,
    ) -> Result<Fit<Q>> {
        let ratios = log_ratios(&q, model, self.draws, self.seed, self.dtype, &self.device)?;
        let (elbo, elbo_se) = mean_se(&ratios);
        let latents = latents_of(model);
        let eps =
            Noise::new(self.seed, Stream::Draws).standard_normal(SUMMARY_DRAWS, q.dim(), self.dtype, &self.device)?;
        let summary = Draws::from_unconstrained(&latents, &q.rsample(&eps)?.detach())?.summary();
        let diagnostics = if self.diagnostics {
            Some(diagnose(&q, &latents, &ratios, self.seed, self.dtype, &self.device)?)
        } else {
            None
        };
        Ok(Fit {
            family: q.name(),
            q,
            elbo,
            elbo_se,
            elbo_draws: self.draws,
            elbo_nonfinite: ratios.iter().filter(|x| !x.is_finite()).count(),
            diagnostics,
            seed: self.seed,
            latents,
            summary,
            run,
        })
    }
}

/// The diagnostics of `q` against `model` on `draws` fresh draws from `seed`: k̂ with its spread,
/// the log evidence, KL(q ‖ p), the reweighted moments against q's own, and from them
/// [`Diagnostics::verdict`] and [`Diagnostics::advice`]; the same as a fit's diagnostics for the
/// same q, draws and seed. For a q made by hand, e.g. [`crate::FullRankGaussian::from_mean_cov`],
/// or one fitted elsewhere. `draws` must be at least 2; a fit uses [`crate::Advi::elbo_draws`]
/// of them, and [`super::EVALUATION_DRAWS`] are enough for a stable k̂.
///
/// ```
/// use elbo::prelude::*;
/// use elbo::diagnose::Verdict;
/// // the posterior N(1, 2²), and q = N(1, 2²) exactly
/// let model = elbo::from_fn(1, |z: &Tensor| ((z - 1.0)? / 2.0)?.sqr()?.sum(1)? * -0.5);
/// let q = elbo::FullRankGaussian::new(&[1.0], &[2.0], ScaleLink::Log, DType::F64, &Device::Cpu)?;
/// let d = elbo::report::assess(&q, &model, 4_000, 0)?;
/// assert_eq!(d.verdict(), Verdict::Good);
/// # Ok::<(), elbo::Error>(())
/// ```
pub fn assess<Q: VariationalFamily, M: LogJoint + ?Sized>(
    q: &Q,
    model: &M,
    draws: usize,
    seed: u64,
) -> Result<Diagnostics> {
    if draws < 2 {
        return Err(crate::Error::config("draws", draws, "at least 2 draws are needed for a standard error"));
    }
    let (dtype, device) = (q.dtype(), q.device());
    let ratios = log_ratios(q, model, draws, seed, dtype, &device)?;
    diagnose(q, &latents_of(model), &ratios, seed, dtype, &device)
}

/// PSIS on the log ratios of the draws of `Stream::Evaluate` from `seed` ([`log_ratios`] with
/// the same seed, dtype and device), and the reweighted moments of the same draws, made again,
/// unconstrained and (if any block has a constraint) constrained.
fn diagnose<Q: VariationalFamily>(
    q: &Q,
    latents: &Latents,
    ratios: &[f64],
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<Diagnostics> {
    let p = psis(ratios);
    let weights = normalised(&p.log_weights);
    let d = q.dim();
    let loc = q.loc()?;
    let constrained = latents.blocks().iter().any(|b| *b.bijector() != Bijector::Real);
    let mut acc = Accumulator::new(weights.clone(), to_f64_vec(&loc)?);
    let mut acc_x = match constrained {
        true => Some(Accumulator::new(weights, constrain(latents, &loc.unsqueeze(0)?)?)),
        false => None,
    };
    for second in [false, true] {
        let mut noise = Noise::new(seed, Stream::Evaluate);
        let chunk = ((1usize << 22) / d.max(1)).clamp(1, 256);
        let mut first = 0;
        while first < ratios.len() {
            let n = chunk.min(ratios.len() - first);
            let eps = noise.standard_normal(n, d, dtype, device)?;
            let z = q.rsample(&eps)?.detach();
            let x = match acc_x {
                Some(_) => constrain(latents, &z)?,
                None => Vec::new(),
            };
            let z = to_f64_vec(&z)?;
            for (acc, values) in std::iter::once((&mut acc, &z)).chain(acc_x.as_mut().map(|a| (a, &x))) {
                if second {
                    acc.add_influence(first, values);
                } else {
                    acc.add_sums(first, values);
                }
            }
            first += n;
        }
        if !second {
            acc.settle();
            acc_x.iter_mut().for_each(Accumulator::settle);
        }
    }
    // the family is known by its type: a Gaussian whose covariance happens to be diagonal is not
    // mean-field, and a full-rank family would not help it
    let mean_field = std::any::type_name::<Q>() == std::any::type_name::<MeanFieldGaussian>();
    let mut diagnostics = Diagnostics::new(ratios, &p, Some(acc.finish()), mean_field);
    diagnostics.constrained = acc_x.map(Accumulator::finish);
    Ok(diagnostics)
}

/// The constrained elements of draws `z` `[n, D]`, row-major `[n, K]` in the order of
/// [`Latents::element_names`].
fn constrain(latents: &Latents, z: &candle_core::Tensor) -> Result<Vec<f64>> {
    let draws = Draws::from_unconstrained(latents, z)?;
    Ok((0..draws.len()).flat_map(|i| draws.row(i).to_vec()).collect())
}

/// log p(x, zᵢ) − log q(zᵢ) for `draws` fresh draws zᵢ ~ q (the ELBO is their mean).
pub(crate) fn log_ratios<Q: VariationalFamily, M: LogJoint + ?Sized>(
    q: &Q,
    model: &M,
    draws: usize,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<Vec<f64>> {
    // up to 256 draws a call, fewer for big data sets: S · N ≤ 4 Mi keeps the model's [S, N, …]
    // intermediates within a few hundred MB (N = 100,000 gives 41 draws a call)
    let chunk = model.data_len().map_or(256, |n| (1usize << 22) / n.max(1)).clamp(1, 256);
    let mut noise = Noise::new(seed, Stream::Evaluate);
    let mut w = Vec::with_capacity(draws);
    while w.len() < draws {
        let n = chunk.min(draws - w.len());
        let eps = noise.standard_normal(n, q.dim(), dtype, device)?;
        let z = q.rsample(&eps)?.detach();
        let log_w = (evaluate(model, &z)? - q.log_prob_of_noise(&eps)?)?;
        w.extend(to_f64_vec(&log_w)?);
    }
    Ok(w)
}

/// Mean and Monte Carlo standard error.
pub(crate) fn mean_se(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}
