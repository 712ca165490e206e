//! The one place a [`Fit`] is made: q's final ELBO with its Monte Carlo standard error and PSIS
//! diagnostics on fresh draws, and the summary of its draws by name.
//!
//! ```text
//! log wᵢ = log p(x, zᵢ) − log q(zᵢ),  zᵢ ~ q fresh (i = 1..n)
//! ELBO ≈ mean(log w),  s.e. = sd(log w) / √n;  k̂, log p̂(x) from PSIS on log w
//! ```

use std::time::Duration;

use candle_core::{DType, Device};

use super::psis::Diagnostics;
use super::{Fit, Method, Stochastic, SUMMARY_DRAWS};
use crate::family::VariationalFamily;
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
        Ok(Fit {
            family: q.name(),
            q,
            elbo,
            elbo_se,
            elbo_draws: self.draws,
            elbo_nonfinite: ratios.iter().filter(|x| !x.is_finite()).count(),
            diagnostics: self.diagnostics.then(|| Diagnostics::from_log_ratios(&ratios)),
            seed: self.seed,
            latents,
            summary,
            run,
        })
    }
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
