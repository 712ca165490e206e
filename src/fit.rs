//! The report of a fit: why and when it stopped, the ELBO trace, the final ELBO with its Monte
//! Carlo standard error, PSIS diagnostics (k̂, log-evidence estimate), wall time, and the fitted q
//! with its mean, covariance and draws.
//!
//! ```text
//! ELBO ≈ 1/n Σᵢ [log p(x, zᵢ) − log q(zᵢ)],   zᵢ ~ q fresh,   s.e. = sd(log p − log q) / √n
//! ```

use std::fmt;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};

use crate::advi::LrSearchReport;
use crate::diagnose::Diagnostics;
use crate::family::VariationalFamily;
use crate::latent::Latents;
use crate::linalg::to_f64_vec;
use crate::map::Convergence;
use crate::model::LogJoint;
use crate::noise::{Noise, Stream};
use crate::objective::evaluate;
use crate::optim::{LocStep, Optimizer};
use crate::summary::{Draws, Summary};
use crate::Result;

/// How many draws of q the summary stored in every [`Fit`] is computed from.
pub const SUMMARY_DRAWS: usize = 1_000;

/// Why a fit stopped.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum StopReason {
    /// It ran the number of steps it was given.
    MaxSteps,
    /// The wall-time budget (`Advi::max_time`) was spent.
    WallTime,
    /// Stan's rule: the mean or the median relative ELBO change fell below the tolerance.
    Stan {
        /// "mean" or "median".
        statistic: &'static str,
        /// Its value when the rule fired.
        value: f64,
    },
    /// The iterates were stationary from step `since` on, and the Monte Carlo standard error of
    /// their average, which q is, fell below the tolerance.
    Stationary {
        /// The first step of the averaged, stationary window.
        since: usize,
        /// The largest MCSE of the average: means in units of q's sd, sds relative.
        mcse: f64,
    },
    /// L-BFGS converged (MAP, Laplace, deterministic ADVI): the gradient norm is within its
    /// tolerance, or f can decrease no further in floating point.
    LbfgsConverged,
    /// A user's own rule ([`crate::stop::Rule`]) stopped the run.
    Custom {
        /// The rule's name.
        rule: &'static str,
        /// The statistic it decided on.
        value: f64,
    },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::MaxSteps => write!(f, "reached the maximum number of steps"),
            StopReason::WallTime => write!(f, "spent its wall-time budget"),
            StopReason::Stan { statistic, value } => {
                write!(f, "Stan's rule: the {statistic} relative ELBO change {value:.2e} is below the tolerance")
            }
            StopReason::Stationary { since, mcse } => write!(
                f,
                "converged: the iterates were stationary from step {since} (split-R̂) and the Monte Carlo \
                 error of their average is {mcse:.3} sd"
            ),
            StopReason::LbfgsConverged => write!(f, "L-BFGS converged"),
            StopReason::Custom { rule, value } => {
                write!(f, "the rule `{rule}` stopped the run (statistic {value:.4e})")
            }
        }
    }
}

/// A fitted variational family and how the fit went.
#[derive(Clone, Debug)]
pub struct Fit<Q> {
    pub(crate) q: Q,
    pub(crate) family: &'static str,
    pub(crate) objective: &'static str,
    pub(crate) optimizer: Optimizer,
    pub(crate) stop_reason: StopReason,
    pub(crate) iterations: usize,
    pub(crate) skipped: usize,
    pub(crate) trace: Vec<f64>,
    pub(crate) elbo: f64,
    pub(crate) elbo_se: f64,
    pub(crate) elbo_draws: usize,
    pub(crate) elbo_nonfinite: usize,
    pub(crate) diagnostics: Option<Diagnostics>,
    pub(crate) elapsed: Duration,
    pub(crate) seed: u64,
    pub(crate) latents: Latents,
    pub(crate) summary: Summary,
    pub(crate) halvings: usize,
    pub(crate) averaged: Option<Averaged>,
    pub(crate) rule_halvings: usize,
    pub(crate) final_lr: f64,
    pub(crate) lr_search: Option<LrSearchReport>,
    pub(crate) method: Method,
}

/// The iterates that q averages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Averaged {
    /// The first step averaged.
    pub since: usize,
    /// How many steps were averaged.
    pub steps: usize,
    /// The largest Monte Carlo standard error of the average: means in units of q's sd, sds
    /// relative.
    pub mcse: f64,
}

impl<Q: VariationalFamily> Fit<Q> {
    /// The fitted q.
    pub fn q(&self) -> &Q {
        &self.q
    }

    /// The mean of q, `[D]`.
    pub fn mean(&self) -> Result<Tensor> {
        self.q.loc()
    }

    /// The covariance of q, `[D, D]`: exact for a Gaussian family, else the sample covariance of
    /// [`SUMMARY_DRAWS`] draws.
    pub fn covariance(&self) -> Result<Tensor> {
        if let Some(gaussian) = self.q.gaussian() {
            return gaussian.covariance();
        }
        let z = self.sample(SUMMARY_DRAWS)?;
        let centred = z.broadcast_sub(&z.mean_keepdim(0)?)?;
        Ok((centred.t()?.matmul(&centred)? / (SUMMARY_DRAWS - 1) as f64)?)
    }

    /// `n` draws from q, `[n, D]`. They come from the fit's seed, so the same fit gives the same
    /// draws; use [`Fit::sample_seeded`] for other ones.
    pub fn sample(&self, n: usize) -> Result<Tensor> {
        self.sample_seeded(n, self.seed)
    }

    /// `n` draws in the constrained space, by element name (see [`Draws`] for CSV and JSON
    /// export); from the fit's seed, like [`Fit::sample`].
    pub fn draws(&self, n: usize) -> Result<Draws> {
        Draws::from_unconstrained(&self.latents, &self.sample(n)?)
    }

    /// `n` draws from q from the given seed, `[n, D]`.
    pub fn sample_seeded(&self, n: usize, seed: u64) -> Result<Tensor> {
        let eps = Noise::new(seed, Stream::Draws).standard_normal(n, self.q.dim(), self.q.dtype(), &self.q.device())?;
        Ok(self.q.rsample(&eps)?.detach())
    }
}

impl<Q> Fit<Q> {
    /// Mean, sd and 5/50/95 % quantiles of every constrained element by name, from
    /// [`SUMMARY_DRAWS`] draws of q (`fit.draws(n)?.summary()` for more). A model without named
    /// latents has one block `z` of real numbers.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The named latents behind z (a single real block `z` for a plain [`crate::LogJoint`]).
    pub fn latents(&self) -> &Latents {
        &self.latents
    }

    /// The final ELBO, estimated on fresh draws.
    pub fn elbo(&self) -> f64 {
        self.elbo
    }

    /// The Monte Carlo standard error of [`Fit::elbo`].
    pub fn elbo_se(&self) -> f64 {
        self.elbo_se
    }

    /// How many of the fresh draws behind [`Fit::elbo`] gave a non-finite log p (then the ELBO is
    /// not finite either).
    pub fn elbo_nonfinite_draws(&self) -> usize {
        self.elbo_nonfinite
    }

    /// PSIS diagnostics on the final draws (none if turned off with `.diagnostics(false)`).
    pub fn diagnostics(&self) -> Option<&Diagnostics> {
        self.diagnostics.as_ref()
    }

    /// The Pareto k̂ of the importance ratios p(x, z) / q(z) (NaN if diagnostics were off).
    pub fn k_hat(&self) -> f64 {
        self.diagnostics.as_ref().map_or(f64::NAN, |d| d.k_hat)
    }

    /// The ELBO estimate of every step (NaN where a step was skipped); for deterministic ADVI the
    /// ELBO on the fixed draws after every L-BFGS iteration, for Laplace log p(x, z) along the
    /// search for the mode.
    pub fn trace(&self) -> &[f64] {
        &self.trace
    }

    /// How q was computed: stochastic ADVI, Laplace at the MAP, or deterministic ADVI.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Why the fit stopped.
    pub fn stop_reason(&self) -> StopReason {
        self.stop_reason
    }

    /// The stationary iterates that q averages (None: q is the last iterate).
    pub fn averaged(&self) -> Option<Averaged> {
        self.averaged
    }

    /// How many times the stopping rule halved the step size ([`crate::StopRule::Stationary`]
    /// with `halving`).
    pub fn rule_halvings(&self) -> usize {
        self.rule_halvings
    }

    /// The step size of the last step (after any halving and schedule); NaN for the L-BFGS
    /// methods of [`crate::map`].
    pub fn final_lr(&self) -> f64 {
        self.final_lr
    }

    /// The step-size search before the fit, if one ran ([`crate::Advi::lr_search`]).
    pub fn lr_search(&self) -> Option<&LrSearchReport> {
        self.lr_search.as_ref()
    }

    /// Steps run, skipped ones included.
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// Steps skipped because the ELBO or its gradient was not finite.
    pub fn skipped_steps(&self) -> usize {
        self.skipped
    }

    /// How many times a run of non-finite steps was answered by restoring the last good
    /// parameters and halving the step size.
    pub fn step_size_halvings(&self) -> usize {
        self.halvings
    }

    /// Wall time spent in the steps (the final ELBO estimate excluded).
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

/// The report of a fit without its summary table; see [`Fit::report`].
#[derive(Debug)]
pub struct Report<'a, Q>(&'a Fit<Q>);

impl<Q> fmt::Display for Report<'_, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write_report(f)
    }
}

impl<Q> Fit<Q> {
    /// The printed report (family, stop reason, ELBO ± s.e., k̂, log-evidence estimate, time)
    /// without the summary table that `Display` adds, for programs that print their own table.
    pub fn report(&self) -> Report<'_, Q> {
        Report(self)
    }

    fn write_report(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let estimator = self.objective;
        let optimizer = match self.optimizer {
            Optimizer::Adam { lr, .. } => format!("Adam (lr {lr})"),
            Optimizer::Sgd { lr } => format!("SGD (lr {lr})"),
        };
        let secs = self.elapsed.as_secs_f64();
        let per_step = if self.iterations > 0 { secs * 1e6 / self.iterations as f64 } else { 0.0 };
        match &self.method {
            Method::Advi => {
                writeln!(f, "ADVI: {}, {estimator}, {optimizer}", self.family)?;
                if let Some(search) = &self.lr_search {
                    let tried: Vec<String> = search
                        .tried
                        .iter()
                        .map(|(lr, kind, elbo)| {
                            let kind = match kind {
                                LocStep::Absolute => "",
                                LocStep::ScaleRelative => " rel.",
                            };
                            match elbo {
                                Some(e) => format!("{lr}{kind}: {e:.4}"),
                                None => format!("{lr}{kind}: diverged"),
                            }
                        })
                        .collect();
                    writeln!(
                        f,
                        "  step size  {}{} from a search (ELBO after the trial; initial {:.4}): {}",
                        search.chosen,
                        if search.loc_step == LocStep::ScaleRelative {
                            ", location steps relative to q's sds"
                        } else {
                            ""
                        },
                        search.initial_elbo,
                        tried.join(", ")
                    )?;
                }
                writeln!(f, "  stopped    after {} iterations: {}", self.iterations, self.stop_reason)?;
                if self.rule_halvings > 0 {
                    writeln!(
                        f,
                        "  step size  halved {} times until the average stopped moving: η = {:.3e} at the end",
                        self.rule_halvings, self.final_lr
                    )?;
                }
                if let Some(a) = self.averaged {
                    writeln!(
                        f,
                        "  q          the average of the {} iterates from step {} (Monte Carlo error {:.3} sd)",
                        a.steps, a.since, a.mcse
                    )?;
                }
            }
            method => method.write_header(f, self.family)?,
        }
        write!(
            f,
            "  ELBO       {:.4} ± {:.4} (Monte Carlo s.e., {} fresh draws)",
            self.elbo, self.elbo_se, self.elbo_draws
        )?;
        if self.elbo_nonfinite > 0 {
            write!(f, "; {} of them gave a non-finite log p", self.elbo_nonfinite)?;
        }
        writeln!(f)?;
        if let Some(d) = &self.diagnostics {
            writeln!(f, "  k̂          {:.2}: {}", d.k_hat, d.verdict())?;
            writeln!(
                f,
                "  log p(x)   {:.4} ± {:.4} (PSIS importance-sampling estimate; ≥ ELBO up to error)",
                d.log_evidence, d.log_evidence_se
            )?;
        }
        match self.method {
            Method::Advi => write!(
                f,
                "  time       {secs:.3} s ({per_step:.1} µs/step); {} non-finite steps skipped",
                self.skipped
            )?,
            _ => write!(f, "  time       {secs:.3} s")?,
        }
        if self.halvings > 0 {
            write!(
                f,
                "\n  recovered  {} times from runs of non-finite steps: last good parameters restored, step size \
                 halved (now × {})",
                self.halvings,
                0.5f64.powi(self.halvings as i32)
            )?;
        }
        Ok(())
    }
}

impl<Q> fmt::Display for Fit<Q> {
    /// The report, then the summary table (its first 20 rows).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_report(f)?;
        let constrained = self.latents.blocks().iter().any(|b| *b.bijector() != crate::latent::Bijector::Real);
        let space = if constrained { ", mapped to the constrained space" } else { "" };
        writeln!(f, "\nposterior summary ({SUMMARY_DRAWS} draws of q{space}):")?;
        write!(f, "{:.20}", self.summary)
    }
}

/// How a fit was computed; its report names it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Method {
    /// Stochastic ascent of the ELBO ([`crate::Advi`]).
    Advi,
    /// A Gaussian at the MAP with covariance from the inverse Hessian of −log p(x, z)
    /// ([`crate::map::Laplace`]).
    Laplace {
        /// The L-BFGS run to the MAP.
        lbfgs: Convergence,
        /// Gradient evaluations behind the finite-difference Hessian (2D).
        hessian_evaluations: usize,
    },
    /// Deterministic ADVI on M fixed draws ([`crate::map::Dadvi`]).
    Dadvi {
        /// M, the number of fixed draws of ε.
        draws: usize,
        /// Whether the draws come in antithetic pairs (ε, −ε).
        antithetic: bool,
        /// The L-BFGS run; one evaluation is M draws of ∇ log p(x, z).
        lbfgs: Convergence,
        /// Gradient evaluations (of M draws each) behind the finite-difference Hessian of the
        /// objective (4D; 0 without linear response).
        hessian_evaluations: usize,
        /// The maximised ELBO on the fixed draws.
        elbo: f64,
        /// Its standard error for the choice of draws.
        elbo_se: f64,
    },
}

impl Method {
    fn write_header(&self, f: &mut fmt::Formatter<'_>, family: &str) -> fmt::Result {
        let lbfgs = |f: &mut fmt::Formatter<'_>, c: &Convergence, hessian: usize| {
            writeln!(f, "  stopped    after {c}")?;
            if hessian > 0 {
                writeln!(
                    f,
                    "  Hessian    by central differences of the gradient: {hessian} more gradient evaluations"
                )?;
            }
            Ok(())
        };
        match self {
            Method::Advi => Ok(()),
            Method::Laplace { lbfgs: c, hessian_evaluations } => {
                writeln!(f, "Laplace at the MAP: {family}, covariance = (Hessian of −log p(x, z))⁻¹")?;
                lbfgs(f, c, *hessian_evaluations)
            }
            Method::Dadvi { draws, antithetic, lbfgs: c, hessian_evaluations, elbo, elbo_se } => {
                let pairs = if *antithetic { " in antithetic pairs" } else { "" };
                writeln!(f, "DADVI: {family}, {draws} fixed draws{pairs}, L-BFGS")?;
                lbfgs(f, c, *hessian_evaluations)?;
                writeln!(f, "  ELBO       {elbo:.4} ± {elbo_se:.4} on the fixed draws (s.e. for the choice of draws)")
            }
        }
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
