//! The step-size search at the start of a fit (Stan's `adapt` phase, Kucukelbir et al. 2017).
//!
//! ```text
//! for each kind of location step (absolute, relative to q's sds), for η in the grid, largest first:
//!     from the initial q, take `steps` steps with step size η; q̄ = the average of the second
//!     half's iterates (what the fit would return, without the jitter of the last one)
//!     ELBO(η) = 1/n Σᵢ [log p(x, zᵢ) − log q̄(zᵢ)] on n fresh draws zᵢ ~ q̄
//!     η diverged if a step was not finite or ELBO(η) is not finite
//!     stop searching once ELBO(η) falls below the best so far (smaller η only crawl)
//! the fit runs with the smallest η (and its kind) whose ELBO is within 2 s.e. of the highest;
//! that ELBO must beat the initial q's
//! ```
//!
//! Stan's grid is η ∈ {100, 10, 1, 0.1, 0.01}. Stan runs 50 steps of each and scores the last
//! iterate. Here each trial runs 100 steps and is scored on their average, so a large η cannot
//! win on one lucky iterate. Stan's step sizes multiply an adaptive per-coordinate scaling, as
//! Adam's do here, so the grid carries over. A diverging η costs only its own trial. The search
//! tries both kinds of location step ([`LocStep`]).
//!
//! A 100-step trial cannot see a step size's long-run bias: η = 1 can score as well as 0.1 and
//! still leave q's sds at half the target's. So after a search the default stopping rule halves
//! η whenever the average has settled, until halving no longer moves it
//! ([`crate::StopRule::Stationary`] with `halving`). With both kinds of location step, a target
//! whose scales are 1e3 and 1e-3 together is fitted (benches/README.md).

use candle_core::Tensor;

use super::{Advi, Step};
use crate::family::{Family, VariationalFamily};
use crate::model::LogJoint;
use crate::optim::LocStep;
use crate::report::{log_ratios, mean_se, LrSearchReport};
use crate::stop::StopRule;
use crate::{Error, Result};

/// The ELBO of a q and its standard error, on fresh draws.
type ElboOf<'a, Q> = dyn Fn(&Q) -> Result<(f64, f64)> + 'a;

/// The grid and the budget of the step-size search.
#[derive(Clone, Debug, PartialEq)]
pub struct LrSearch {
    /// The step sizes to try, largest first.
    pub grid: Vec<f64>,
    /// Steps in each trial.
    pub steps: usize,
    /// Fresh draws for each trial's ELBO.
    pub draws: usize,
    /// The kinds of location step to try.
    pub loc_steps: Vec<LocStep>,
}

impl Default for LrSearch {
    /// Stan's grid η ∈ {100, 10, 1, 0.1, 0.01}; 100 steps each, ELBO on 100 draws; both kinds of
    /// location step.
    fn default() -> Self {
        LrSearch {
            grid: vec![100.0, 10.0, 1.0, 0.1, 0.01],
            steps: 100,
            draws: 100,
            loc_steps: vec![LocStep::Absolute, LocStep::ScaleRelative],
        }
    }
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
        if self.loc_steps.is_empty() {
            return Err(Error::config("lr_search", "loc_steps: []", "name at least one kind of location step"));
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

    /// One trial: `steps` steps of `advi` from the initial q; the ELBO of the average of the
    /// second half's iterates, or None if a step or the ELBO was not finite.
    fn trial<F: Family, M: LogJoint + ?Sized>(
        &self,
        advi: &Advi<F>,
        model: &M,
        elbo_of: &ElboOf<F::Q>,
    ) -> Result<Option<(f64, f64)>> {
        let trial = advi.clone().stop(StopRule::MaxSteps).steps(self.steps).max_consecutive_nonfinite(1);
        let mut state = trial.init(model)?;
        let mut sums: Option<Vec<Tensor>> = None;
        for t in 0..self.steps {
            match trial.step(&mut state, model) {
                Ok(Step::Taken { .. }) => {}
                Ok(Step::Skipped { .. }) | Err(Error::NonFinite { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
            if 2 * t >= self.steps {
                let params = state.q.params().into_iter().map(|(_, v)| v.as_tensor().detach());
                sums = Some(match sums {
                    None => params.collect(),
                    Some(s) => s.iter().zip(params).map(|(a, b)| a + b).collect::<candle_core::Result<_>>()?,
                });
            }
        }
        let n = self.steps - self.steps / 2;
        for ((_, var), sum) in state.q.params().iter().zip(sums.iter().flatten()) {
            var.set(&(sum / n as f64)?)?;
        }
        Ok(Some(elbo_of(&state.q)?).filter(|(e, se)| e.is_finite() && se.is_finite()))
    }

    /// Runs the trials of `advi` on `model` and picks the step size.
    pub(crate) fn run<F: Family, M: LogJoint + ?Sized>(&self, advi: &Advi<F>, model: &M) -> Result<LrSearchReport> {
        self.validate()?;
        let elbo_of = |q: &F::Q| -> Result<(f64, f64)> {
            let ratios = log_ratios(q, model, self.draws, advi.seed_value(), advi.dtype_value(), &advi.device_value())?;
            Ok(mean_se(&ratios))
        };
        let start = advi.init(model)?;
        // from Pathfinder's start q may already be at the optimum: a step size then only has to
        // keep the ELBO, within the trials' Monte Carlo error
        let at_optimum = start.whitening.is_some();
        let (initial_elbo, initial_se) = elbo_of(&start.q)?;
        let mut trials = Vec::new();
        for &loc_step in &self.loc_steps {
            let mut best_of_kind: Option<f64> = None;
            for &lr in &self.grid {
                let elbo = self.trial(&advi.clone().lr(lr).loc_step(loc_step), model, &elbo_of)?;
                trials.push((lr, loc_step, elbo));
                let Some((e, _)) = elbo else { continue };
                if best_of_kind.is_some_and(|b| e < b) {
                    break; // smaller steps only crawl further behind
                }
                best_of_kind = Some(e);
            }
        }
        // the smallest step within 2 s.e. of the best ELBO: a larger one is no faster that the
        // trial can tell, and its stationary jitter and bias are larger
        let best = trials.iter().filter_map(|&(_, _, e)| e).max_by(|a, b| a.0.total_cmp(&b.0));
        let chosen = best.and_then(|(top, se)| {
            trials
                .iter()
                .filter(|(_, _, e)| e.is_some_and(|(e, e_se)| e >= top - 2.0 * (se * se + e_se * e_se).sqrt()))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .copied()
        });
        let tried: Vec<(f64, LocStep, Option<f64>)> =
            trials.iter().map(|&(lr, k, e)| (lr, k, e.map(|e| e.0))).collect();
        match chosen {
            Some((chosen, loc_step, Some((elbo, se))))
                if elbo > initial_elbo || (at_optimum && elbo > initial_elbo - 2.0 * se.hypot(initial_se)) =>
            {
                Ok(LrSearchReport { chosen, loc_step, tried, initial_elbo })
            }
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
