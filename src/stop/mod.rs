//! Stopping rules: they watch the run and decide when it is done; they never change a step.
//!
//! - [`StopRule::Stationary`], the default with a constant step size: the iterates become
//!   stationary (split-R̂), q becomes their average, and the run stops once the average's Monte
//!   Carlo standard error is small (see `stationary.rs` for the formulas);
//! - [`StopRule::Stan`]: Stan's relative-tolerance rule on the ELBO;
//! - [`StopRule::MaxSteps`]: every step up to the limit (the default with a decaying schedule).
//!
//! The step limit (`Advi::steps`) and a wall-time budget (`Advi::max_time`) stop any run.

mod chain;
mod stan;
mod stationary;

pub(crate) use stan::StanRule;
pub(crate) use stationary::{Decision, StationaryRule};

use crate::{Error, Result};

/// When a fit stops before its step limit.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum StopRule {
    /// Run every step up to the limit.
    MaxSteps,
    /// Stan's rule: every `eval` steps the relative change of the mean ELBO estimate; stop when
    /// the mean or the median of the recent changes is below `tol`. Known to be noisy.
    Stan {
        /// Steps between two checkpoints (Stan: 100).
        eval: usize,
        /// The relative tolerance (Stan's `tol_rel_obj`: 0.01).
        tol: f64,
    },
    /// Stationary iterates by split-R̂, averaged until the Monte Carlo standard error of the
    /// average is below `tol`; q is the average.
    Stationary {
        /// The split-R̂ below which a coordinate counts as stationary (1.1 is usual).
        rhat: f64,
        /// The largest MCSE of the average: means in units of q's sd, sds relative (0.02).
        tol: f64,
        /// Once the average is precise, halve the step size and go on until halving no longer
        /// moves the average (by 3 `tol`), which removes a large step's stationary bias; on by
        /// default after a step-size search.
        halving: bool,
    },
}

impl StopRule {
    /// Stan's defaults: eval = 100, tol = 0.01.
    pub fn stan() -> Self {
        StopRule::Stan { eval: 100, tol: 0.01 }
    }

    /// The stationarity rule with R̂ < 1.1 and MCSE < 0.02, without halving.
    pub fn stationary() -> Self {
        StopRule::Stationary { rhat: 1.1, tol: 0.02, halving: false }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let positive = |name: &str, value: f64| {
            if value > 0.0 && value.is_finite() {
                Ok(())
            } else {
                Err(Error::config("stop", format!("{self:?}"), format!("{name} must be positive and finite")))
            }
        };
        match *self {
            StopRule::MaxSteps => Ok(()),
            StopRule::Stan { eval, tol } => {
                if eval == 0 {
                    return Err(Error::config("stop", format!("{self:?}"), "eval must be at least 1"));
                }
                positive("tol", tol)
            }
            StopRule::Stationary { rhat, tol, .. } => {
                if !(rhat > 1.0 && rhat.is_finite()) {
                    return Err(Error::config("stop", format!("{self:?}"), "rhat must be above 1 and finite"));
                }
                positive("tol", tol)
            }
        }
    }
}

/// A rule's memory between steps.
#[derive(Debug)]
pub(crate) enum StopState {
    MaxSteps,
    Stan(StanRule),
    Stationary(StationaryRule),
}

impl StopState {
    pub(crate) fn new(rule: StopRule, max_steps: usize) -> Self {
        match rule {
            StopRule::MaxSteps => StopState::MaxSteps,
            StopRule::Stan { eval, tol } => StopState::Stan(StanRule::new(eval, tol, max_steps)),
            StopRule::Stationary { rhat, tol, halving } => {
                StopState::Stationary(StationaryRule::new(rhat, tol, halving, 0))
            }
        }
    }
}
