//! Pathfinder (Zhang, Carpenter, Gelman & Vehtari 2022): Gaussians along L-BFGS paths, the best by
//! ELBO; a method of its own and the default start of stochastic ADVI.
//!
//! ```text
//! for each of P paths (the first from the start, the others from it + U(−r, r)ᴰ):
//!     L-BFGS on −log p(x, z);  at every iterate x_l the Gaussian N(x_l − Σ_l ∇f(x_l), Σ_l),
//!     Σ_l the diagonal-plus-low-rank inverse-Hessian estimate of the last J steps
//!     ELBO_l from K fresh draws;  the path's answer: the Gaussian with the largest ELBO_l
//! the answer: the paths' best Gaussian by ELBO; a path that fails is reported and dropped
//! the report (Pathfinder::fit): the moments of importance-weighted draws from the paths'
//! Gaussians within 3 nats of the best ELBO (moments.rs), or the best Gaussian where the weights
//! are too uneven
//! ```
//!
//! A path costs its L-BFGS run (tens to hundreds of gradient evaluations) and K evaluations of
//! log p without gradient per iterate, a small fraction of stochastic ADVI's thousands of
//! gradient steps; its Gaussian is in the posterior's own units whatever their scale.
//!
//! - `approx.rs`: the Gaussian at one iterate;
//! - `path.rs`: one path;
//! - `moments.rs`: the reported Gaussian, with the moments of importance-weighted draws where their
//!   weights can be trusted.

mod approx;
mod moments;
mod path;

pub(crate) use approx::LowRankGaussian;
pub use moments::Resampling;
pub use path::PathRecord;

use std::time::Instant;

use candle_core::{DType, Device};

use crate::family::{FullRankGaussian, ScaleLink};
use crate::latent::Start;
use crate::map::{bad_start, coordinate_names, Lbfgs, NegLogJoint, Reporting};
use crate::model::{latents_of, LogJoint};
use crate::noise::{Noise, Stream};
use crate::report::{Fit, Method};
use crate::{Error, Result};
use path::{run_path, PathSettings};

/// Settings of Pathfinder; [`Pathfinder::fit`] returns a [`Fit`] of a [`FullRankGaussian`] (the
/// best path's Gaussian), so summaries, draws and k̂ work as after ADVI.
///
/// ```
/// use elbo::prelude::*;
/// use elbo::Pathfinder;
/// // a correlated Gaussian posterior with sds 1e-3 and 1e3: Pathfinder's Gaussian is close to it
/// let model = elbo::from_fn(2, |z: &Tensor| {
///     let scale = Tensor::new(&[1e-3f64, 1e3], z.device())?;
///     let u = z.broadcast_sub(&Tensor::new(&[1.0f64, -2.0], z.device())?)?.broadcast_div(&scale)?;
///     let (a, b) = (u.narrow(1, 0, 1)?.squeeze(1)?, u.narrow(1, 1, 1)?.squeeze(1)?);
///     // correlation 0.9
///     ((a.sqr()? + b.sqr()? - ((a * b)? * 1.8)?)? * (-0.5 / (1.0 - 0.81)))
/// });
/// let fit = Pathfinder::new().fit(&model)?;
/// let mean = fit.mean()?.to_vec1::<f64>()?;
/// assert!((mean[0] - 1.0).abs() < 0.02 * 1e-3 && (mean[1] + 2.0).abs() < 0.02 * 1e3); // 0.02 sd
/// println!("{fit}");
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Pathfinder {
    paths: usize,
    draws: usize,
    memory: usize,
    jitter: f64,
    lbfgs: Lbfgs,
    start: Start,
    reporting: Reporting,
}

impl Default for Pathfinder {
    fn default() -> Self {
        Pathfinder::new()
    }
}

/// What the paths found: the best Gaussian and every path's record (or its error).
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub gaussian: LowRankGaussian,
    /// Every path's Gaussian with its ELBO, of the paths that did not fail.
    pub gaussians: Vec<(LowRankGaussian, f64)>,
    /// Per path, in order: its record, or why it failed.
    pub paths: Vec<std::result::Result<PathRecord, String>>,
    /// The path whose Gaussian was chosen.
    pub best: usize,
}

/// How far below the best path's ELBO another path's Gaussian may be and still join the proposal
/// of the importance-weighted draws (nats).
const CLOSE_ELBO: f64 = 3.0;

impl Found {
    /// The paths' Gaussians whose ELBO is within [`CLOSE_ELBO`] of the best: one mode's, whose
    /// mixture covers it better than one of them.
    pub(crate) fn close_to_best(&self) -> impl Iterator<Item = &LowRankGaussian> {
        let top = self.gaussians.iter().map(|(_, e)| *e).fold(f64::NEG_INFINITY, f64::max);
        self.gaussians.iter().filter(move |(_, e)| *e >= top - CLOSE_ELBO).map(|(g, _)| g)
    }

    /// Gradient evaluations over every path that ran to the end.
    pub(crate) fn gradient_evaluations(&self) -> usize {
        self.paths.iter().flatten().map(|r| r.gradient_evaluations).sum()
    }
}

impl Pathfinder {
    /// The defaults: 8 paths (twice Stan's 4, against posteriors with more than one mode:
    /// benches/README.md, "Right answers by default"), 25 draws for each iterate's ELBO, the last 6 steps in the
    /// inverse-Hessian estimate, jitter r = 2 for the starts of paths 2 to 8, L-BFGS with at most
    /// 1,000 iterations, F64 on the CPU, seed 0, and the report's 4,000 fresh draws.
    pub fn new() -> Self {
        Pathfinder {
            paths: 8,
            draws: 25,
            memory: 6,
            jitter: 2.0,
            lbfgs: Lbfgs { memory: 6, ..Lbfgs::default() },
            start: Start::default(),
            reporting: Reporting::new(),
        }
    }

    /// P, the number of paths (≥ 1).
    pub fn paths(mut self, p: usize) -> Self {
        self.paths = p;
        self
    }

    /// K, the fresh draws behind each iterate's ELBO estimate (≥ 1).
    pub fn draws(mut self, k: usize) -> Self {
        self.draws = k;
        self
    }

    /// J, how many recent L-BFGS steps shape each Gaussian's covariance (≥ 1); also L-BFGS's own
    /// memory.
    pub fn memory(mut self, j: usize) -> Self {
        self.memory = j;
        self.lbfgs.memory = j;
        self
    }

    /// r: paths after the first start at the start + U(−r, r) in every unconstrained coordinate
    /// (≥ 0; 0 starts them all at the same point).
    pub fn jitter(mut self, r: f64) -> Self {
        self.jitter = r;
        self
    }

    /// The most L-BFGS iterations of a path (default 1,000). A path that reaches it is used all
    /// the same.
    pub fn max_iters(mut self, n: usize) -> Self {
        self.lbfgs.max_iters = n;
        self
    }

    /// The start of the first path in the unconstrained space (length D); default 0.
    pub fn init_loc(mut self, loc: Vec<f64>) -> Self {
        self.start.loc = Some(loc);
        self
    }

    /// The start of latent `name` in the constrained space, as [`crate::Advi::init_value`].
    pub fn init_value(mut self, name: &str, values: impl AsRef<[f64]>) -> Self {
        self.start.value(name, values.as_ref());
        self
    }

    /// The seed of the jittered starts, the ELBO draws and the report's draws.
    pub fn seed(mut self, seed: u64) -> Self {
        self.reporting.seed = seed;
        self
    }

    /// How many fresh draws estimate the report's ELBO and k̂ (at least 2).
    pub fn elbo_draws(mut self, n: usize) -> Self {
        self.reporting.elbo_draws = n;
        self
    }

    /// Whether the report computes the PSIS diagnostics (default on).
    pub fn diagnostics(mut self, on: bool) -> Self {
        self.reporting.diagnostics = on;
        self
    }

    /// The dtype of q and of the z handed to the model (default F64).
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.reporting.dtype = dtype;
        self
    }

    /// The device of q and of the z handed to the model.
    pub fn device(mut self, device: Device) -> Self {
        self.reporting.device = device;
        self
    }

    /// The same search in `dtype` on `device` from the point `loc` (an ADVI fit's start).
    pub(crate) fn as_start(&self, loc: Vec<f64>, dtype: DType, device: &Device, seed: u64) -> Pathfinder {
        let mut p = self.clone().dtype(dtype).device(device.clone()).seed(seed);
        p.start = Start { loc: Some(loc), values: Vec::new() };
        p
    }

    fn validate(&self) -> Result<()> {
        if self.paths == 0 {
            return Err(Error::config("paths", 0, "Pathfinder needs at least one path"));
        }
        if self.draws == 0 {
            return Err(Error::config("draws", 0, "each iterate's ELBO needs at least one draw"));
        }
        if self.memory == 0 {
            return Err(Error::config("memory", 0, "the covariance needs at least one L-BFGS step"));
        }
        if !(self.jitter >= 0.0 && self.jitter.is_finite()) {
            return Err(Error::config("jitter", self.jitter, "the jitter must be finite and at least 0"));
        }
        self.lbfgs.validate()?;
        self.reporting.validate()
    }

    /// Runs every path and keeps the best Gaussian; fails only when every path fails (the error
    /// lists each path's).
    pub(crate) fn find<M: LogJoint + ?Sized>(&self, model: &M) -> Result<Found> {
        self.validate()?;
        let x0 = self.start.point(model)?;
        let (dtype, device) = (self.reporting.dtype, &self.reporting.device);
        NegLogJoint::new(model).dtype(dtype).device(device.clone()).value_and_gradient(&x0).map_err(bad_start)?;
        let names = coordinate_names(&latents_of(model));
        let settings =
            PathSettings { lbfgs: &self.lbfgs, memory: self.memory, draws: self.draws, dtype, device, names: &names };
        let mut noise = Noise::new(self.reporting.seed, Stream::Pathfinder);
        let mut paths = Vec::with_capacity(self.paths);
        let mut best: Option<(usize, LowRankGaussian, f64)> = None;
        let mut gaussians = Vec::new();
        for p in 0..self.paths {
            let start: Vec<f64> = if p == 0 {
                x0.clone()
            } else {
                let u = noise.uniform_host(x0.len(), -self.jitter, self.jitter);
                x0.iter().zip(u).map(|(x, u)| x + u).collect()
            };
            match run_path(model, start, &settings, &mut noise) {
                Ok(found) => {
                    if best.as_ref().is_none_or(|(_, _, elbo)| found.record.elbo > *elbo) {
                        best = Some((p, found.gaussian.clone(), found.record.elbo));
                    }
                    gaussians.push((found.gaussian, found.record.elbo));
                    paths.push(Ok(found.record));
                }
                Err(e) => paths.push(Err(e.to_string())),
            }
        }
        match best {
            Some((best, gaussian, _)) => Ok(Found { gaussian, gaussians, paths, best }),
            None => {
                let why: Vec<String> = paths
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| p.as_ref().err().map(|e| format!("path {}: {e}", i + 1)))
                    .collect();
                Err(Error::ModelOutput {
                    problem: format!("could not be fitted by Pathfinder: every path failed ({})", why.join("; ")),
                })
            }
        }
    }

    /// Runs the paths and reports a full-rank q (its covariance dense, D × D): the moments of
    /// importance-weighted draws (as many as the report's `elbo_draws`) from the mixture of the
    /// paths' Gaussians within 3 nats of the best ELBO, or the best path's Gaussian where the
    /// weights are too uneven to trust.
    pub fn fit<M: LogJoint + ?Sized>(&self, model: &M) -> Result<Fit<FullRankGaussian>> {
        let start = Instant::now();
        let found = self.find(model)?;
        let (dtype, device) = (self.reporting.dtype, &self.reporting.device);
        let mut noise = Noise::new(self.reporting.seed, Stream::Resample);
        let paths: Vec<&LowRankGaussian> = found.close_to_best().collect();
        let (moments, resampling) =
            moments::weighted_moments(model, &paths, self.reporting.elbo_draws, &mut noise, dtype, device)?;
        let (mean, cov) = moments.unwrap_or_else(|| (found.gaussian.mean.clone(), found.gaussian.covariance()));
        let q = FullRankGaussian::from_mean_cov(&mean, &cov, ScaleLink::Log, dtype, device)?;
        let iterations = found.paths.iter().flatten().map(|r| r.iterations).sum();
        let trace = found.paths.iter().flatten().map(|r| r.elbo).collect();
        let method = Method::Pathfinder {
            gradient_evaluations: found.gradient_evaluations(),
            best: found.best,
            paths: found.paths,
            resampling,
        };
        self.reporting.fit(q, model, method, iterations, trace, start.elapsed())
    }
}
