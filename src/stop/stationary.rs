//! The default rule: stationary iterates, averaged until the average is precise (Dhaka et al.
//! 2020; Welandawe et al. 2022).
//!
//! With a constant step size the iterates λ_t of the optimiser do not converge to the optimum λ*;
//! they become a stationary Markov chain around it. Their average converges, and its Monte Carlo
//! standard error (MCSE) is known from the chain, so the run can stop once it is small.
//!
//! ```text
//! watched:    θ_t = (μ_t, log σ_t), the means and log marginal sds of q after step t (for a
//!             family that is not Gaussian: its parameters, with log σ = 0)
//! batches:    means θ̄_b of b consecutive steps (b = 50, doubled by merging whenever 128 are kept)
//! window:     the longest run of the latest batches, from a start at a multiple of 4 batches in the
//!             first half, at least 32 batches long, in which every coordinate j is stationary:
//!             split-R̂_j < `rhat` over 4 chunks
//! average:    λ̄ = the mean of every parameter over the steps from the window's start (q becomes λ̄)
//! MCSE_j:     sd(θ̄_b,j) / √ESS_j / u_j over the window's batch means, u_j = exp(mean log σ_j)
//!             for a mean (errors in units of q's sd) and 1 for a log sd (relative errors)
//! stop:       max_j MCSE_j < tol
//! halving:    (optional, Welandawe et al. 2022) a constant step's stationary bias shrinks with
//!             η, so it is gone once halving η no longer moves the average. Each phase runs
//!             until a window is found; its average θ̄ is compared with the last phase's θ̄':
//!             max_j |θ̄_j − θ̄'_j| / u_j < 3 tol ⇒ the last phase: average to MCSE < tol, stop;
//!             else halve η and start a new phase. A phase with no window in 128 batches
//!             (too large a step to settle) is halved too; at most 10 halvings
//! ```

use super::chain::{ess, mean, sd, split_rhat};
use crate::family::VariationalFamily;
use crate::linalg::to_f64_vec;
use crate::Result;

/// Steps per batch at the start.
const BATCH: usize = 50;
/// Batches kept before neighbours are merged.
const MAX_BATCHES: usize = 128;
/// The fewest batches in a window.
const MIN_BATCHES: usize = 32;
/// Batches per group: parameter sums are kept per group, and windows start at a group boundary.
const GROUP: usize = 4;
/// Chunks of a window taken as chains by split-R̂.
const CHAINS: usize = 4;
/// The most step-size halvings of one run.
const MAX_HALVINGS: usize = 10;

/// What the rule decided after a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Decision {
    /// Go on.
    Continue,
    /// The average is precise (and, when halving, no longer moves): stop.
    Stop(Window),
    /// Halving: the average settled but moved since the last phase (or the phase could not
    /// settle): halve η and start a new phase.
    Halve,
}

/// The stationary part of the run found at the last check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Window {
    /// The step at which the window begins (steps before it are the transient).
    pub(crate) since: usize,
    /// The largest MCSE of the average (see the module doc for units).
    pub(crate) mcse: f64,
    first_group: usize,
}

/// Running sums since the last boundary: steps, watched coordinates, parameters.
#[derive(Debug)]
struct Partial<T> {
    steps: usize,
    sums: Vec<T>,
}

/// The state of the stationarity rule between steps.
#[derive(Debug)]
pub(crate) struct StationaryRule {
    rhat: f64,
    tol: f64,
    halving: bool,
    /// The watched averages of the last phase, before the last halving.
    previous: Option<Vec<f64>>,
    halvings: usize,
    /// Halving is over: this phase runs to the MCSE tolerance.
    last_phase: bool,
    /// Steps per full batch.
    batch: usize,
    /// The iteration at which the first batch began.
    start: usize,
    /// Steps seen since `start`.
    steps: usize,
    /// The mean of the watched coordinates over each full batch.
    means: Vec<Vec<f64>>,
    /// The sum of q's parameters over each full group of batches (host values, row-major).
    groups: Vec<Vec<Vec<f64>>>,
    batch_partial: Option<Partial<f64>>,
    group_partial: Option<Partial<Vec<f64>>>,
    window: Option<Window>,
}

impl StationaryRule {
    pub(crate) fn new(rhat: f64, tol: f64, halving: bool, start: usize) -> Self {
        StationaryRule {
            rhat,
            tol,
            halving,
            previous: None,
            halvings: 0,
            last_phase: false,
            batch: BATCH,
            start,
            steps: 0,
            means: Vec::new(),
            groups: Vec::new(),
            batch_partial: None,
            group_partial: None,
            window: None,
        }
    }

    /// Forgets every iterate so far (after q was moved back by a recovery from non-finite steps,
    /// or after a halving); what earlier phases averaged and the halvings are kept.
    pub(crate) fn restart(&mut self, iteration: usize) {
        let (previous, halvings, last_phase) = (self.previous.take(), self.halvings, self.last_phase);
        *self = StationaryRule {
            previous,
            halvings,
            last_phase,
            ..StationaryRule::new(self.rhat, self.tol, self.halving, iteration)
        };
    }

    /// How many times the rule halved the step size.
    pub(crate) fn halvings(&self) -> usize {
        self.halvings
    }

    /// The latest stationary window, if one was found.
    pub(crate) fn window(&self) -> Option<Window> {
        self.window
    }

    /// Sees q after one step (the `iteration`-th) and decides.
    pub(crate) fn observe<Q: VariationalFamily>(&mut self, q: &Q, iteration: usize) -> Result<Decision> {
        // Host reads only (no tensor ops) where q has a host form.
        let params = q.params().iter().map(|(_, v)| to_f64_vec(v.as_tensor())).collect::<Result<Vec<_>>>()?;
        // a Gaussian's means and log sds; for another family every parameter as a "mean" whose
        // "log sd" is 0, so that its errors are measured in its own units
        let watched = match (q.host_gaussian()?, q.gaussian()) {
            (Some(host), _) => [host.loc().to_vec(), host.marginal_sd().iter().map(|s| s.ln()).collect()].concat(),
            (None, Some(g)) => [to_f64_vec(&g.loc()?)?, to_f64_vec(&g.marginal_log_sd()?)?].concat(),
            (None, None) => {
                let flat = params.concat();
                let zeros = vec![0.0; flat.len()];
                [flat, zeros].concat()
            }
        };
        self.steps += 1;
        self.group_partial = Some(match self.group_partial.take() {
            None => Partial { steps: 1, sums: params },
            Some(mut p) => {
                p.sums.iter_mut().zip(&params).for_each(|(s, x)| add_into(s, x));
                Partial { steps: p.steps + 1, sums: p.sums }
            }
        });
        let batch = match self.batch_partial.take() {
            None => Partial { steps: 1, sums: watched },
            Some(mut p) => {
                p.sums.iter_mut().zip(&watched).for_each(|(s, x)| *s += x);
                Partial { steps: p.steps + 1, sums: p.sums }
            }
        };
        if batch.steps < self.batch {
            self.batch_partial = Some(batch);
            return Ok(Decision::Continue);
        }
        self.means.push(batch.sums.iter().map(|s| s / batch.steps as f64).collect());
        if self.means.len().is_multiple_of(GROUP) {
            self.groups.push(self.group_partial.take().map(|p| p.sums).unwrap_or_default());
        }
        if self.means.len() == MAX_BATCHES {
            self.merge();
        }
        self.window = self.find_window();
        if self.halving && !self.last_phase && self.halvings < MAX_HALVINGS {
            match self.window {
                Some(window) => {
                    let average = self.watched_average(window);
                    let settled = self.previous.as_ref().is_some_and(|previous| self.agree(&average, previous));
                    if !settled {
                        self.previous = Some(average);
                        return Ok(self.halve(iteration));
                    }
                    self.last_phase = true;
                }
                None if self.batch > BATCH => return Ok(self.halve(iteration)), // 128 batches, no window
                None => return Ok(Decision::Continue),
            }
        }
        match self.window.filter(|w| w.mcse < self.tol) {
            Some(window) => Ok(Decision::Stop(window)),
            None => Ok(Decision::Continue),
        }
    }

    fn halve(&mut self, iteration: usize) -> Decision {
        self.halvings += 1;
        self.restart(iteration);
        Decision::Halve
    }

    /// Whether two phases' watched averages agree within 3 tol (means in q's sds).
    fn agree(&self, average: &[f64], previous: &[f64]) -> bool {
        let dim = average.len() / 2;
        (0..2 * dim).all(|j| {
            let unit = if j < dim { average[dim + j].exp() } else { 1.0 };
            (average[j] - previous[j]).abs() / unit < 3.0 * self.tol
        })
    }

    /// The mean of the watched coordinates over the window's batches.
    fn watched_average(&self, window: Window) -> Vec<f64> {
        let batches = &self.means[window.first_group * GROUP..];
        (0..batches[0].len()).map(|j| batches.iter().map(|m| m[j]).sum::<f64>() / batches.len() as f64).collect()
    }

    /// q's parameters averaged over every step from the window's start, in `q.params()` order
    /// (host values, row-major).
    pub(crate) fn average(&self) -> Option<(usize, Vec<Vec<f64>>)> {
        let w = self.window?;
        let mut parts = self.groups[w.first_group..].iter().chain(self.group_partial.iter().map(|p| &p.sums));
        let mut total = parts.next()?.clone();
        for sums in parts {
            total.iter_mut().zip(sums).for_each(|(t, s)| add_into(t, s));
        }
        let n = self.steps - (w.since - self.start);
        total.iter_mut().flatten().for_each(|t| *t /= n as f64);
        Some((n, total))
    }

    /// For a run that ends before a window is found: q's parameters averaged over the latest
    /// half of the steps seen (whole groups), with the first step averaged, the number of steps,
    /// and the largest split-R̂ of the watched coordinates over those batches (NaN with too few).
    pub(crate) fn latest_half(&self) -> Option<(usize, usize, Vec<Vec<f64>>, f64)> {
        let first = self.groups.len() / 2;
        let mut parts = self.groups[first..].iter().chain(self.group_partial.iter().map(|p| &p.sums));
        let mut total = parts.next()?.clone();
        for sums in parts {
            total.iter_mut().zip(sums).for_each(|(t, s)| add_into(t, s));
        }
        let skipped = first * GROUP * self.batch;
        let n = self.steps.checked_sub(skipped).filter(|&n| n > 0)?;
        total.iter_mut().flatten().for_each(|t| *t /= n as f64);
        let batches = &self.means[(first * GROUP).min(self.means.len())..];
        let rhat = if batches.len() >= 2 * CHAINS {
            (0..batches[0].len())
                .map(|j| split_rhat(&batches.iter().map(|m| m[j]).collect::<Vec<_>>(), CHAINS))
                .fold(f64::NAN, f64::max)
        } else {
            f64::NAN
        };
        Some((self.start + skipped, n, total, rhat))
    }

    /// Halves the number of batches and groups by merging neighbours, so memory stays bounded.
    fn merge(&mut self) {
        let means = std::mem::take(&mut self.means);
        self.means = means.chunks(2).map(|p| p[0].iter().zip(&p[1]).map(|(a, b)| 0.5 * (a + b)).collect()).collect();
        let groups = std::mem::take(&mut self.groups);
        self.groups = groups
            .chunks_exact(2)
            .map(|p| {
                let mut sum = p[0].clone();
                sum.iter_mut().zip(&p[1]).for_each(|(a, b)| add_into(a, b));
                sum
            })
            .collect();
        self.batch *= 2;
    }

    /// The longest stationary window: the earliest group boundary in the first half of the batches
    /// from which every watched coordinate is stationary.
    fn find_window(&self) -> Option<Window> {
        let len = self.means.len();
        let dim = self.means[0].len() / 2;
        let starts = (0..=len / 2).step_by(GROUP).filter(|s| len - s >= MIN_BATCHES);
        for first in starts {
            let series = |j: usize| -> Vec<f64> { self.means[first..].iter().map(|m| m[j]).collect() };
            let units: Vec<f64> =
                (0..2 * dim).map(|j| if j < dim { mean(&series(dim + j)).exp() } else { 1.0 }).collect();
            let stationary = (0..2 * dim).all(|j| {
                let x = series(j);
                split_rhat(&x, CHAINS) < self.rhat
            });
            if stationary {
                let mcse = (0..2 * dim)
                    .map(|j| {
                        let x = series(j);
                        sd(&x) / ess(&x).sqrt() / units[j]
                    })
                    .fold(0.0, f64::max);
                return Some(Window { since: self.start + first * self.batch, mcse, first_group: first / GROUP });
            }
        }
        None
    }
}

/// a += b, element-wise.
fn add_into(a: &mut [f64], b: &[f64]) {
    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
}
