//! The fits of `gmm_vi`: R fits from different k-means++ starts (restart r with seed + r), under
//! one progress bar (`elbo::observe::Progress` for R runs), each summarised on the host; the one
//! with the highest ELBO is kept.

use std::time::Instant;

use elbo::observe::{Observer, Progress};
use elbo::prelude::*;
use elbo_models::GaussianMixture;

use super::report::element_name;
use super::{AppError, Args, FamilyArg, Mixture};

/// Steps averaged for the smoothed ELBO of the trace plot.
pub const SMOOTH: usize = 100;

/// The summary of one fit, on the host.
pub struct Fitted {
    /// The seed of its start and of its draws.
    pub seed: u64,
    /// The fit report (elbo's `Fit` display, without its unmatched summary table).
    pub text: String,
    /// The final ELBO on fresh draws.
    pub elbo: f64,
    /// Its Monte Carlo standard error.
    pub elbo_se: f64,
    /// Pareto k̂ of the importance ratios.
    pub k_hat: f64,
    /// Why it stopped.
    pub stop_reason: String,
    /// Steps run.
    pub iterations: usize,
    /// Steps skipped because of non-finite values.
    pub skipped: usize,
    /// Time per step, microseconds.
    pub us_per_step: f64,
    /// Every step's ELBO estimate.
    pub trace: Vec<f64>,
    /// Posterior means, in the fitted component order.
    pub mean: Mixture,
    /// Posterior standard deviations, in the fitted component order.
    pub sd: Mixture,
}

/// Every fit, in the order they ran, with the one kept.
pub struct Fits {
    /// The R fits.
    pub fits: Vec<Fitted>,
    /// The index of the kept one (the highest ELBO).
    pub best: usize,
    /// Wall time of all fits (steps and final ELBO estimates), seconds.
    pub seconds: f64,
}

impl Fits {
    /// The kept fit.
    pub fn kept(&self) -> &Fitted {
        &self.fits[self.best]
    }
}

/// Runs the `args.restarts` fits, under one bar on a terminal unless `--quiet`.
pub fn fit_all(gmm: &GaussianMixture, args: &Args, device: &Device) -> Result<Fits, AppError> {
    // one bar on stdout for every fit's steps (drawn only on a terminal)
    let mut bar = (!args.quiet).then(|| Progress::runs(args.restarts, args.steps).stdout());
    let start = Instant::now();
    let mut fits = Vec::with_capacity(args.restarts);
    for r in 0..args.restarts {
        let seed = args.seed.wrapping_add(r as u64);
        let mut observers: Vec<&mut dyn Observer> = bar.iter_mut().map(|b| b as &mut dyn Observer).collect();
        let fitted = match args.family {
            FamilyArg::Meanfield => fit_one(MeanField, gmm, args, device, seed, &mut observers)?,
            FamilyArg::Fullrank => fit_one(FullRank, gmm, args, device, seed, &mut observers)?,
        };
        fits.push(fitted);
    }
    let seconds = start.elapsed().as_secs_f64();
    let best =
        (0..fits.len()).max_by(|&a, &b| nan_lowest(fits[a].elbo).total_cmp(&nan_lowest(fits[b].elbo))).unwrap_or(0);
    Ok(Fits { fits, best, seconds })
}

/// NaN sorts below every number (a fit whose ELBO is NaN is never kept over a finite one).
fn nan_lowest(x: f64) -> f64 {
    if x.is_nan() {
        f64::NEG_INFINITY
    } else {
        x
    }
}

/// One fit from the k-means++ start of `seed`, seen by `observers` (the bar).
fn fit_one<F: Family>(
    family: F,
    gmm: &GaussianMixture,
    args: &Args,
    device: &Device,
    seed: u64,
    observers: &mut [&mut dyn Observer],
) -> Result<Fitted, AppError> {
    let mut advi = Advi::new(family)
        .dtype(DType::F64)
        .device(device.clone())
        .samples(args.samples)
        .steps(args.steps)
        .lr(args.lr)
        .seed(seed)
        .init_value("mu", gmm.initial_means(seed));
    if let Some(final_lr) = args.lr_final {
        advi = advi.lr_schedule(LrSchedule::Exponential { final_lr });
    }
    if let Some(b) = args.batch {
        // the final ELBO is evaluated on all N points: 200 draws instead of 1,000 keep that from
        // dwarfing the minibatch fit on large data (s.e. √5 × larger)
        advi = advi.batch(b).elbo_draws(200);
    }
    let fit = advi.fit_with(gmm, observers)?;
    let (k, d) = (gmm.k(), gmm.d());
    let summary = fit.summary();
    let get = |name: &str, index: &[usize], size: usize| -> Result<(f64, f64), AppError> {
        let full = element_name(name, index, size);
        summary
            .get(&full)
            .map(|row| (row.mean, row.sd))
            .ok_or_else(|| AppError::Output(format!("the fit's summary has no element `{full}`")))
    };
    let mut mean = Mixture { weights: vec![], means: vec![], scales: vec![] };
    let mut sd = mean.clone();
    for c in 0..k {
        let (m, s) = get("w", &[c], k)?;
        mean.weights.push(m);
        sd.weights.push(s);
        let mut mu = Vec::with_capacity(d);
        let mut mu_sd = Vec::with_capacity(d);
        for j in 0..d {
            let (m, s) = get("mu", &[c, j], k * d)?;
            mu.push(m);
            mu_sd.push(s);
        }
        mean.means.push(mu);
        sd.means.push(mu_sd);
        let (m, s) = get("sigma", &[c], k)?;
        mean.scales.push(m);
        sd.scales.push(s);
    }
    // without the summary table, which is in the fitted order: the example prints a matched one
    let text = fit.report().to_string();
    Ok(Fitted {
        seed,
        text,
        elbo: fit.elbo(),
        elbo_se: fit.elbo_se(),
        k_hat: fit.k_hat(),
        stop_reason: fit.stop_reason().to_string(),
        iterations: fit.iterations(),
        skipped: fit.skipped_steps(),
        us_per_step: fit.elapsed().as_secs_f64() * 1e6 / fit.iterations().max(1) as f64,
        trace: fit.trace().to_vec(),
        mean,
        sd,
    })
}
