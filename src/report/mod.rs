//! The report of a fit: why and when it stopped, the ELBO trace, the final ELBO with its Monte
//! Carlo standard error, PSIS diagnostics (k̂ with its spread, the reweighted moments against q's,
//! KL(q ‖ p), the log-evidence estimate), the verdict and what to do next, wall time, and the
//! fitted q with its mean, covariance and draws. [`assess`] gives the same diagnostics for any q.
//!
//! ```text
//! ELBO ≈ 1/n Σᵢ [log p(x, zᵢ) − log q(zᵢ)],   zᵢ ~ q fresh,   s.e. = sd(log p − log q) / √n
//! ```
//!
//! The report sits below the engines: every method (ADVI, Laplace, DADVI) makes its [`Fit`] in one
//! place (`evaluate.rs`), with its own record beside the shared numbers (`record.rs`), and this
//! module imports none of them.
//!
//! - `evaluate.rs`: the final ELBO ± s.e., PSIS and the summary; the one maker of a [`Fit`];
//! - `record.rs`: each method's record ([`Method`], [`Stochastic`], [`LrSearchReport`],
//!   [`Convergence`]);
//! - `psis.rs`: Pareto-smoothed importance sampling, k̂ with its spread, the [`psis::Diagnostics`];
//! - `moments.rs`: the PSIS-reweighted means and sds against q's own, with their Monte Carlo
//!   errors;
//! - `verdict.rs`: the verdict from all of them, and what to do next (with the run's stop
//!   reason).

mod evaluate;
mod moments;
pub mod psis;
mod record;
mod verdict;

pub use evaluate::assess;
pub(crate) use evaluate::{log_ratios, mean_se, Evaluation, Run};
pub use record::{Averaged, Convergence, LrSearchReport, Method, StartRecord, Stochastic};

use std::fmt;
use std::time::Duration;

use candle_core::Tensor;

use crate::family::VariationalFamily;
use crate::latent::Latents;
use crate::noise::{Noise, Stream};
use crate::stop::StopReason;
use crate::summary::{Draws, Summary};
use crate::Result;
use psis::{Advice, Diagnostics, Moments, Verdict, Worst};

/// How many draws of q the summary stored in every [`Fit`] is computed from.
pub const SUMMARY_DRAWS: usize = 1_000;

/// How many fresh draws of q the final ELBO and the diagnostics should rest on: k̂ spreads like
/// S^(−1/4) (its tail has 3 √S ratios), so doubling past 4,000 buys little stability for its
/// log p evaluations at the end of a fit (the spreads measured: benches/README.md, "The
/// verdict").
pub const EVALUATION_DRAWS: usize = 4_000;

/// A fitted variational family and how the fit went.
#[derive(Clone, Debug)]
pub struct Fit<Q> {
    q: Q,
    family: &'static str,
    elbo: f64,
    elbo_se: f64,
    elbo_draws: usize,
    elbo_nonfinite: usize,
    diagnostics: Option<Diagnostics>,
    seed: u64,
    latents: Latents,
    summary: Summary,
    /// The method, why and when it stopped, and its own record.
    run: Run,
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

    /// How far q can be trusted: [`Diagnostics::verdict`], from k̂, its spread and the
    /// PSIS-reweighted moments against q's (None if diagnostics were off).
    pub fn verdict(&self) -> Option<Verdict> {
        self.diagnostics.as_ref().map(Diagnostics::verdict)
    }

    /// What to try next when q is not good: more steps if the run stopped at its limit, else
    /// [`Diagnostics::advice`] (None when good, or if diagnostics were off).
    pub fn advice(&self) -> Option<Advice> {
        let d = self.diagnostics.as_ref()?;
        let at_limit = matches!(self.run.stop_reason, StopReason::MaxSteps | StopReason::WallTime);
        match d.advice() {
            Some(Advice::CheckModel) => Some(Advice::CheckModel),
            Some(_) if at_limit => Some(Advice::MoreSteps),
            other => other,
        }
    }

    /// The ELBO estimate of every step (NaN where a step was skipped); for deterministic ADVI the
    /// ELBO on the fixed draws after every L-BFGS iteration, for Laplace log p(x, z) along the
    /// search for the mode.
    pub fn trace(&self) -> &[f64] {
        &self.run.trace
    }

    /// How q was computed: stochastic ADVI, Laplace at the MAP, or deterministic ADVI.
    pub fn method(&self) -> &Method {
        &self.run.method
    }

    /// The seed of the fit: its draws and its final ELBO come from it.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Stochastic ascent's record of the run (None for the L-BFGS methods of [`crate::map`]).
    pub fn stochastic(&self) -> Option<&Stochastic> {
        self.run.stochastic.as_ref()
    }

    /// q, taken out of the report (for a warm start of another fit).
    pub fn into_q(self) -> Q {
        self.q
    }

    /// Adds the step-size search that chose this fit's step size to its record.
    pub(crate) fn set_lr_search(&mut self, search: LrSearchReport) {
        if let Some(st) = &mut self.run.stochastic {
            st.lr_search = Some(search);
        }
    }

    /// Why the fit stopped.
    pub fn stop_reason(&self) -> StopReason {
        self.run.stop_reason
    }

    /// The stationary iterates that q averages (None: q is the last iterate).
    pub fn averaged(&self) -> Option<Averaged> {
        self.run.stochastic.as_ref().and_then(|s| s.averaged)
    }

    /// How many times the stopping rule halved the step size ([`crate::StopRule::Stationary`]
    /// with `halving`).
    pub fn rule_halvings(&self) -> usize {
        self.run.stochastic.as_ref().map_or(0, |s| s.rule_halvings)
    }

    /// The step size of the last step (after any halving and schedule); None for the L-BFGS
    /// methods of [`crate::map`].
    pub fn final_lr(&self) -> Option<f64> {
        self.run.stochastic.as_ref().map(|s| s.final_lr)
    }

    /// The step-size search before the fit, if one ran ([`crate::Advi::lr_search`]).
    pub fn lr_search(&self) -> Option<&LrSearchReport> {
        self.run.stochastic.as_ref().and_then(|s| s.lr_search.as_ref())
    }

    /// Steps run, skipped ones included.
    pub fn iterations(&self) -> usize {
        self.run.iterations
    }

    /// Steps skipped because the ELBO or its gradient was not finite.
    pub fn skipped_steps(&self) -> usize {
        self.run.stochastic.as_ref().map_or(0, |s| s.skipped)
    }

    /// How many times a run of non-finite steps was answered by restoring the last good
    /// parameters and halving the step size.
    pub fn step_size_halvings(&self) -> usize {
        self.run.stochastic.as_ref().map_or(0, |s| s.halvings)
    }

    /// Wall time spent in the steps (the final ELBO estimate excluded).
    pub fn elapsed(&self) -> Duration {
        self.run.elapsed
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
    /// The printed report (family, stop reason, ELBO ± s.e., k̂, the reweighted moments, KL and
    /// log-evidence estimates, the verdict and what to do next, time) without the summary table
    /// that `Display` adds, for programs that print their own table.
    pub fn report(&self) -> Report<'_, Q> {
        Report(self)
    }

    fn write_report(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let run = &self.run;
        match &run.stochastic {
            Some(st) => st.write_header(f, self.family, run.iterations, run.stop_reason)?,
            None => run.method.write_header(f, self.family)?,
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
            self.write_diagnostics(f, d)?;
        }
        let secs = run.elapsed.as_secs_f64();
        match &run.stochastic {
            Some(st) => st.write_time(f, secs, run.iterations),
            None => write!(f, "  time       {secs:.3} s"),
        }
    }
}

impl<Q> Fit<Q> {
    /// The diagnostics' lines of the report: k̂, the moments, KL, log p(x), verdict, advice.
    fn write_diagnostics(&self, f: &mut fmt::Formatter<'_>, d: &Diagnostics) -> fmt::Result {
        writeln!(
            f,
            "  k̂          {:.2} ± {:.2} (PSIS; effective sample size {:.0} of {})",
            d.k_hat, d.k_hat_se, d.ess, d.draws
        )?;
        if let Some(m) = &d.moments {
            // the worst of z's coordinates and the constrained elements, by the verdict's bound
            let z = d.slack();
            let elements = self.latents.element_names();
            let worst = |pick: &dyn Fn(&Moments) -> Worst, target: f64| {
                let far = |w: &Worst| Some(w.upper(target, z)).filter(|u| !u.is_nan()).unwrap_or(f64::INFINITY);
                let w = pick(m);
                match d.constrained.as_ref().map(pick) {
                    Some(x) if far(&x) > far(&w) => (x, elements[x.coordinate].clone()),
                    _ => (w, coordinate_name(&self.latents, w.coordinate)),
                }
            };
            let (shift, shift_at) = worst(&|m| m.worst_mean_shift(z), 0.0);
            let (ratio, ratio_at) = worst(&|m| m.worst_sd_ratio(z), 1.0);
            write!(f, "  moments    q against the PSIS-reweighted draws: ")?;
            write!(f, "mean off by {:.3} ± {:.3} sd ({shift_at}), ", shift.value, shift.se)?;
            write!(f, "sd × {:.3} ± {:.3} ({ratio_at})", ratio.value, ratio.se)?;
            if !d.trusted() {
                write!(f, "; not to be trusted, k̂ is too large")?;
            } else if d.k_hat > 0.5 {
                write!(f, "; at k̂ > 0.5 the verdict allows {:.1} of these errors, not 2", d.slack())?;
            }
            writeln!(f)?;
        }
        writeln!(f, "  KL(q‖p)    {:.4} ± {:.4} (log p̂(x) − ELBO)", d.kl, d.kl_se)?;
        writeln!(
            f,
            "  log p(x)   {:.4} ± {:.4} (PSIS importance-sampling estimate; ≥ ELBO up to error)",
            d.log_evidence, d.log_evidence_se
        )?;
        if let Some(v) = self.verdict() {
            writeln!(f, "  verdict    {v}")?;
        }
        if let Some(a) = self.advice() {
            write!(f, "  next       {a}")?;
            match d.advice() {
                Some(then) if then != a => writeln!(f, "; if that is not enough, {then}")?,
                _ => writeln!(f)?,
            }
        }
        Ok(())
    }
}

/// The name of unconstrained coordinate `j`: the element's name for a real block, else the
/// block's with the coordinate's index in it.
fn coordinate_name(latents: &Latents, j: usize) -> String {
    let Some(block) = latents.blocks().iter().find(|b| (b.offset()..b.offset() + b.unconstrained_len()).contains(&j))
    else {
        return format!("z[{j}]");
    };
    let k = j - block.offset();
    if *block.bijector() == crate::latent::Bijector::Real {
        block.element_names().swap_remove(k)
    } else {
        format!("{} (unconstrained coordinate {k})", block.name())
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
