//! What each method records of its run, beside the q it found: stochastic ascent's record
//! ([`Stochastic`]: objective, optimiser, skipped steps, recoveries, averaging, the step-size
//! search), and which method it was with its own numbers ([`Method`]: L-BFGS's convergence,
//! the Hessian's cost, DADVI's fixed draws).

use std::fmt;

use crate::optim::LocStep;
use crate::pathfinder::{PathRecord, Resampling};
use crate::stop::StopReason;

/// Stochastic ascent's record of its run ([`crate::Advi`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Stochastic {
    /// The objective's name.
    pub objective: &'static str,
    /// The update rule and its base step size, e.g. "Adam (lr 0.01)".
    pub optimizer: String,
    /// Steps skipped because the ELBO or its gradient was not finite.
    pub skipped: usize,
    /// Recoveries from runs of non-finite steps (last good parameters restored, step size halved).
    pub halvings: usize,
    /// The stationary iterates that q averages (None: q is the last iterate).
    pub averaged: Option<Averaged>,
    /// Halvings of the step size by the stopping rule ([`crate::StopRule::Stationary`] with
    /// `halving`).
    pub rule_halvings: usize,
    /// The step size of the last step (after any halving and schedule).
    pub final_lr: f64,
    /// The step-size search before the fit, if one ran.
    pub lr_search: Option<LrSearchReport>,
    /// Where q started, and in which coordinates the steps ran.
    pub start: StartRecord,
    /// When the run reached its step cap before the stationary rule decided: the largest split-R̂
    /// of q's means and log sds over the latest half of the iterates, how far they were from
    /// stationary (1 is stationary; the rule asks for less than 1.1 over at least 1,600 steps).
    pub rhat_at_cap: Option<f64>,
}

/// Where a stochastic fit started ([`crate::Advi::init_pathfinder`]).
#[derive(Clone, Debug, PartialEq)]
pub enum StartRecord {
    /// At a point (`init_loc`, `init_value`, `init_map`) with scale `init_scale`, or from a q
    /// given to [`crate::Advi::init_from`]; steps in the model's coordinates.
    Point,
    /// At Pathfinder's Gaussian, with the steps in its whitened coordinates.
    Pathfinder {
        /// Its ELBO estimate along the path.
        elbo: f64,
        /// Gradient evaluations of log p(x, z) over its paths.
        gradient_evaluations: usize,
        /// Paths run, and how many failed.
        paths: usize,
        /// Paths that failed.
        failed: usize,
    },
    /// Pathfinder failed (every path), so the fit started at the point instead; why.
    PathfinderFailed(String),
}

impl fmt::Display for StartRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartRecord::Point => write!(f, "at the initial point, steps in the model's coordinates"),
            StartRecord::Pathfinder { elbo, gradient_evaluations, paths, failed } => write!(
                f,
                "at Pathfinder's Gaussian (ELBO {elbo:.4}; {paths} paths, {failed} failed; {gradient_evaluations} \
                 gradient evaluations), steps in its whitened coordinates"
            ),
            StartRecord::PathfinderFailed(why) => {
                write!(f, "at the initial point, steps in the model's coordinates: Pathfinder failed ({why})")
            }
        }
    }
}

impl Stochastic {
    /// The report's first lines: the method, the step-size search, why it stopped, averaging.
    pub(crate) fn write_header(
        &self,
        f: &mut fmt::Formatter<'_>,
        family: &str,
        iterations: usize,
        stop_reason: StopReason,
    ) -> fmt::Result {
        writeln!(f, "ADVI: {family}, {}, {}", self.objective, self.optimizer)?;
        writeln!(f, "  started    {}", self.start)?;
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
                if search.loc_step == LocStep::ScaleRelative { ", location steps relative to q's sds" } else { "" },
                search.initial_elbo,
                tried.join(", ")
            )?;
        }
        writeln!(f, "  stopped    after {iterations} iterations: {stop_reason}")?;
        if self.rule_halvings > 0 {
            writeln!(
                f,
                "  step size  halved {} times until the average stopped moving: η = {:.3e} at the end",
                self.rule_halvings, self.final_lr
            )?;
        }
        if let Some(a) = self.averaged {
            write!(f, "  q          the average of the {} iterates from step {}", a.steps, a.since)?;
            if a.mcse.is_finite() {
                write!(f, " (Monte Carlo error {:.3} sd)", a.mcse)?;
            }
            writeln!(f)?;
        }
        if let Some(rhat) = self.rhat_at_cap {
            writeln!(
                f,
                "  at the cap the latest half of the iterates has split-R̂ {rhat:.2} (the rule asks for < 1.1 over at \
                 least 1,600 steps): q is their average or the last iterate, whichever has the larger ELBO{}",
                if rhat < 1.1 { "" } else { "; they were still moving, and more steps would move q" }
            )?;
        }
        Ok(())
    }

    /// The report's last lines: time per step, skipped steps, recoveries.
    pub(crate) fn write_time(&self, f: &mut fmt::Formatter<'_>, secs: f64, iterations: usize) -> fmt::Result {
        let per_step = if iterations > 0 { secs * 1e6 / iterations as f64 } else { 0.0 };
        write!(f, "  time       {secs:.3} s ({per_step:.1} µs/step); {} non-finite steps skipped", self.skipped)?;
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

/// The iterates that q averages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Averaged {
    /// The first step averaged.
    pub since: usize,
    /// How many steps were averaged.
    pub steps: usize,
    /// The largest Monte Carlo standard error of the average: means in units of q's sd, sds
    /// relative (from the stationary rule; NaN from an [`crate::average::Averager`], which has
    /// none, and for an average of iterates that were not stationary).
    pub mcse: f64,
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
    /// The best of the Gaussians along L-BFGS paths ([`crate::Pathfinder`]).
    Pathfinder {
        /// Every path in order: its record, or why it failed and was dropped.
        paths: Vec<std::result::Result<PathRecord, String>>,
        /// The path whose Gaussian q is (0-based).
        best: usize,
        /// Gradient evaluations of log p(x, z) over all the paths.
        gradient_evaluations: usize,
        /// The importance-weighted draws behind q's moments.
        resampling: Resampling,
    },
}

impl Method {
    pub(crate) fn write_header(&self, f: &mut fmt::Formatter<'_>, family: &str) -> fmt::Result {
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
            Method::Pathfinder { paths, best, gradient_evaluations, resampling: r } => {
                let failed = paths.iter().filter(|p| p.is_err()).count();
                writeln!(
                    f,
                    "Pathfinder: {family}, the best of {} paths ({failed} failed), {gradient_evaluations} gradient evaluations",
                    paths.len()
                )?;
                for (i, path) in paths.iter().enumerate() {
                    let mark = if i == *best { "*" } else { " " };
                    match path {
                        Ok(r) => writeln!(
                            f,
                            "  path {:<2}{mark} ELBO {:.4} at iterate {} of {}{}",
                            i + 1,
                            r.elbo,
                            r.chosen,
                            r.iterations,
                            if r.lbfgs_note.is_some() { " (L-BFGS did not converge)" } else { "" }
                        )?,
                        Err(e) => writeln!(f, "  path {:<2}  failed: {e}", i + 1)?,
                    }
                }
                if r.used {
                    writeln!(
                        f,
                        "  moments    of {} importance-weighted draws from the paths' Gaussians (k̂ {:.2}, ESS {:.0})",
                        r.draws, r.k_hat, r.ess
                    )
                } else {
                    writeln!(
                        f,
                        "  moments    of the best path's Gaussian: the weights of {} draws were too uneven (k̂ {:.2}, ESS {:.0})",
                        r.draws, r.k_hat, r.ess
                    )
                }
            }
        }
    }
}

/// What the search tried and chose.
#[derive(Clone, Debug, PartialEq)]
pub struct LrSearchReport {
    /// The step size the fit ran with.
    pub chosen: f64,
    /// The kind of location step the fit ran with.
    pub loc_step: LocStep,
    /// Each trial in order: its step size and kind, and its ELBO after the trial (None: diverged).
    pub tried: Vec<(f64, LocStep, Option<f64>)>,
    /// The ELBO of the initial q.
    pub initial_elbo: f64,
}

pub use crate::map::Convergence;
