//! The step-size search at the start of a fit (Stan's `adapt` phase, Kucukelbir et al. 2017).
//!
//! ```text
//! for η in the grid, largest first:
//!     from the initial q, take `steps` steps with step size η;
//!     ELBO(η) = 1/n Σᵢ [log p(x, zᵢ) − log q(zᵢ)] on n fresh draws zᵢ ~ q
//!     η diverged if a step was not finite or ELBO(η) is not finite
//!     stop searching once ELBO(η) falls below the best so far (smaller η only crawl)
//! the fit runs with the η of the highest ELBO, which must beat the ELBO of the initial q
//! ```
//!
//! Stan's grid is η ∈ {100, 10, 1, 0.1, 0.01} over 50 steps each. Its step sizes multiply an
//! adaptive per-coordinate scaling, as Adam's do here, so the grid carries over; a diverging η
//! costs only its own trial.

use crate::family::Family;
use crate::model::LogJoint;
use crate::stop::StopRule;
use crate::svi::{log_ratios, mean_se, Advi, Step};
use crate::{Error, Result};

/// The grid and the budget of the step-size search.
#[derive(Clone, Debug, PartialEq)]
pub struct LrSearch {
    /// The step sizes to try, largest first.
    pub grid: Vec<f64>,
    /// Steps in each trial.
    pub steps: usize,
    /// Fresh draws for each trial's ELBO.
    pub draws: usize,
}

impl Default for LrSearch {
    /// Stan's: η ∈ {100, 10, 1, 0.1, 0.01}, 50 steps each, ELBO on 100 draws.
    fn default() -> Self {
        LrSearch { grid: vec![100.0, 10.0, 1.0, 0.1, 0.01], steps: 50, draws: 100 }
    }
}

/// What the search tried and chose.
#[derive(Clone, Debug, PartialEq)]
pub struct LrSearchReport {
    /// The step size the fit ran with.
    pub chosen: f64,
    /// Each step size tried, in order, with its ELBO after the trial (None: diverged).
    pub tried: Vec<(f64, Option<f64>)>,
    /// The ELBO of the initial q.
    pub initial_elbo: f64,
}

impl LrSearch {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.grid.is_empty() || self.grid.iter().any(|&lr| !(lr > 0.0 && lr.is_finite())) {
            return Err(Error::config(
                "lr_search",
                format!("{:?}", self.grid),
                "the grid needs positive, finite steps",
            ));
        }
        if self.steps == 0 || self.draws < 2 {
            return Err(Error::config(
                "lr_search",
                format!("steps {}, draws {}", self.steps, self.draws),
                "each trial needs at least 1 step and 2 draws",
            ));
        }
        Ok(())
    }

    /// Runs the trials of `advi` on `model` and picks the step size.
    pub(crate) fn run<F: Family, M: LogJoint + ?Sized>(&self, advi: &Advi<F>, model: &M) -> Result<LrSearchReport> {
        self.validate()?;
        let elbo_of = |q: &F::Q| -> Result<f64> {
            let ratios = log_ratios(q, model, self.draws, advi.seed_value(), advi.dtype_value(), &advi.device_value())?;
            Ok(mean_se(&ratios).0)
        };
        let initial_elbo = elbo_of(&advi.init(model)?.q)?;
        let mut tried = Vec::new();
        let mut best: Option<(f64, f64)> = None;
        for &lr in &self.grid {
            let trial = advi.clone().lr(lr).stop(StopRule::MaxSteps).steps(self.steps).max_consecutive_nonfinite(1);
            let mut state = trial.init(model)?;
            let mut diverged = false;
            for _ in 0..self.steps {
                match trial.step(&mut state, model) {
                    Ok(Step::Taken { .. }) => {}
                    Ok(Step::Skipped { .. }) | Err(Error::NonFinite { .. }) => {
                        diverged = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            let elbo = if diverged { None } else { Some(elbo_of(&state.q)?).filter(|e| e.is_finite()) };
            tried.push((lr, elbo));
            match (elbo, best) {
                (Some(e), Some((_, b))) if e < b => break,
                (Some(e), _) => best = Some((lr, e)),
                (None, _) => {}
            }
        }
        match best {
            Some((chosen, elbo)) if elbo > initial_elbo => Ok(LrSearchReport { chosen, tried, initial_elbo }),
            _ => Err(Error::config(
                "lr_search",
                format!("{:?}", self.grid),
                format!(
                    "no step size improved on the initial ELBO {initial_elbo:.4} within {} steps (tried: {tried:?}); \
                     try smaller step sizes, more steps, or a better initial location",
                    self.steps
                ),
            )),
        }
    }
}
