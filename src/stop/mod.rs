//! The stopping-rule slot: a rule watches the run and returns "go on" or a reason to stop.
//!
//! - [`StopRule::Stationary`], the default with a constant step size: the iterates become
//!   stationary (split-R̂), q becomes their average, and the run stops once the average's Monte
//!   Carlo standard error is small (see `stationary.rs` for the formulas). It is more than a
//!   rule: it also averages the iterates, and with `halving` it halves the step size between
//!   phases;
//! - [`StopRule::Stan`]: Stan's relative-tolerance rule on the ELBO;
//! - [`StopRule::MaxSteps`]: every step up to the limit (the default with a decaying schedule);
//! - a user's own [`Rule`], given to [`crate::Advi::stop_when`]: it sees each step's
//!   [`Context`] and never changes a step.
//!
//! The step limit (`Advi::steps`) and a wall-time budget (`Advi::max_time`) stop any run.
//!
//! A user's own rule: stop once the ELBO estimate of a single step reaches a target.
//!
//! ```
//! use elbo::stop::{Context, Rule};
//! use elbo::prelude::*;
//!
//! #[derive(Clone, Debug)]
//! struct ElboAbove(f64);
//! impl Rule for ElboAbove {
//!     fn name(&self) -> &'static str { "ELBO above a target" }
//!     fn observe(&mut self, cx: &Context<'_>) -> elbo::Result<Option<StopReason>> {
//!         Ok(match cx.elbo {
//!             Some(elbo) if elbo > self.0 => Some(StopReason::Custom { rule: self.name(), value: elbo }),
//!             _ => None,
//!         })
//!     }
//! }
//!
//! // log p(z) = −½ ‖z − 3‖² − log 2π, normalised: the ELBO is 0 at q = p, about −12 at the start
//! let model = elbo::from_fn(2, |z: &Tensor| ((z - 3.0)?.sqr()?.sum(1)? * -0.5)? - (2.0 * std::f64::consts::PI).ln());
//! let fit = Advi::new(MeanField).dtype(DType::F64).lr(0.05).seed(2).stop_when(ElboAbove(-1.0)).fit(&model)?;
//! assert!(matches!(fit.stop_reason(), StopReason::Custom { value, .. } if value > -1.0));
//! assert!(fit.iterations() < 10_000);
//! # Ok::<(), elbo::Error>(())
//! ```

mod chain;
mod reason;
mod stan;
mod stationary;

pub use reason::StopReason;

pub(crate) use stan::StanRule;
pub(crate) use stationary::{Decision, StationaryRule};

use crate::family::VariationalFamily;
use crate::{Error, Result};

/// What a rule sees after each step.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// Steps taken or skipped so far (this one included).
    pub iteration: usize,
    /// The step limit of the run.
    pub max_steps: usize,
    /// This step's ELBO estimate, or `None` when the step was skipped (not finite).
    pub elbo: Option<f64>,
    /// Every step's ELBO estimate so far (NaN for skipped steps).
    pub trace: &'a [f64],
    /// q after the step; `None` for an amortised fit (`elbo_models::VaeTrainer`), whose q(z | x)
    /// is an encoder rather than one distribution.
    pub q: Option<&'a dyn VariationalFamily>,
}

/// The stopping-rule slot: after each step, "go on" (`None`) or a reason to stop. A rule only
/// watches: it changes no step. It must be `Clone`, so that each fit starts from the rule as
/// given.
pub trait Rule: std::fmt::Debug + Send + RuleClone {
    /// A short name for reports.
    fn name(&self) -> &'static str;

    /// Sees the run after a step and decides.
    fn observe(&mut self, cx: &Context<'_>) -> Result<Option<StopReason>>;

    /// q was moved back to earlier parameters (after a run of non-finite steps) at `iteration`:
    /// what the rule learnt since then no longer holds. The default forgets nothing.
    fn restart(&mut self, iteration: usize) {
        let _ = iteration;
    }
}

/// A fresh copy of a rule in a box (implemented for every `Clone` rule).
pub trait RuleClone {
    /// The copy.
    fn clone_rule(&self) -> Box<dyn Rule>;
}

impl<T: Rule + Clone + 'static> RuleClone for T {
    fn clone_rule(&self) -> Box<dyn Rule> {
        Box::new(self.clone())
    }
}

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
    /// Stan's rule or a user's.
    Rule(Box<dyn Rule>),
    /// The stationarity rule with its iterate averaging and halving.
    Stationary(Box<StationaryRule>),
}

impl StopState {
    pub(crate) fn new(rule: StopRule, max_steps: usize) -> Self {
        match rule {
            StopRule::MaxSteps => StopState::MaxSteps,
            StopRule::Stan { eval, tol } => StopState::Rule(Box::new(StanRule::new(eval, tol, max_steps))),
            StopRule::Stationary { rhat, tol, halving } => {
                StopState::Stationary(Box::new(StationaryRule::new(rhat, tol, halving, 0)))
            }
        }
    }
}
