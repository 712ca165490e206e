//! The default rule: stationary iterates, averaged until the average is precise (Dhaka et al.
//! 2020; Welandawe et al. 2022).
//!
//! With a constant step size the iterates λ_t of the optimiser do not converge to the optimum λ*;
//! they become a stationary Markov chain around it. Their average converges, and its Monte Carlo
//! standard error (MCSE) is known from the chain, so the run can stop once it is small.
//!
//! ```text
//! watched:    θ_t = (μ_t, log σ_t), the means and log marginal sds of q after step t
//! batches:    means θ̄_b of b consecutive steps (b = 50, doubled by merging whenever 128 are kept)
//! window:     the longest run of the latest batches, from a start at a multiple of 4 batches in the
//!             first half, at least 32 batches long, in which every coordinate j is stationary:
//!               split-R̂_j < `rhat` over 4 chunks, or the chunk means differ by < tol · u_j
//! average:    λ̄ = the mean of every parameter over the steps from the window's start (q becomes λ̄)
//! MCSE_j:     sd(θ̄_b,j) / √ESS_j / u_j over the window's batch means, u_j = exp(mean log σ_j)
//!             for a mean (errors in units of q's sd) and 1 for a log sd (relative errors)
//! stop:       max_j MCSE_j < tol
//! ```

use candle_core::Tensor;

use super::chain::{chunk_spread, ess, mean, sd, split_rhat};
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
    /// Steps per full batch.
    batch: usize,
    /// The iteration at which the first batch began.
    start: usize,
    /// Steps seen since `start`.
    steps: usize,
    /// The mean of the watched coordinates over each full batch.
    means: Vec<Vec<f64>>,
    /// The sum of q's parameters over each full group of batches.
    groups: Vec<Vec<Tensor>>,
    batch_partial: Option<Partial<f64>>,
    group_partial: Option<Partial<Tensor>>,
    window: Option<Window>,
}

impl StationaryRule {
    pub(crate) fn new(rhat: f64, tol: f64, start: usize) -> Self {
        StationaryRule {
            rhat,
            tol,
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

    /// Forgets every iterate so far (after q was moved back by a recovery from non-finite steps).
    pub(crate) fn restart(&mut self, iteration: usize) {
        *self = StationaryRule::new(self.rhat, self.tol, iteration);
    }

    /// The latest stationary window, if one was found.
    pub(crate) fn window(&self) -> Option<Window> {
        self.window
    }

    /// Sees q after one step; returns the window once its average is precise enough.
    pub(crate) fn observe<Q: VariationalFamily>(&mut self, q: &Q) -> Result<Option<Window>> {
        let watched = [to_f64_vec(&q.loc()?)?, to_f64_vec(&q.marginal_log_sd()?)?].concat();
        let params: Vec<Tensor> = q.params().iter().map(|(_, v)| v.as_tensor().detach()).collect();
        self.steps += 1;
        self.group_partial = Some(match self.group_partial.take() {
            None => Partial { steps: 1, sums: params },
            Some(p) => Partial {
                steps: p.steps + 1,
                sums: p.sums.iter().zip(&params).map(|(s, x)| s + x).collect::<candle_core::Result<_>>()?,
            },
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
            return Ok(None);
        }
        self.means.push(batch.sums.iter().map(|s| s / batch.steps as f64).collect());
        if self.means.len().is_multiple_of(GROUP) {
            self.groups.push(self.group_partial.take().map(|p| p.sums).unwrap_or_default());
        }
        if self.means.len() == MAX_BATCHES {
            self.merge()?;
        }
        self.window = self.find_window();
        Ok(self.window.filter(|w| w.mcse < self.tol))
    }

    /// q's parameters averaged over every step from the window's start, in `q.params()` order.
    pub(crate) fn average(&self) -> Result<Option<(usize, Vec<Tensor>)>> {
        let Some(w) = self.window else { return Ok(None) };
        let mut parts = self.groups[w.first_group..].iter().chain(self.group_partial.iter().map(|p| &p.sums));
        let Some(first) = parts.next() else { return Ok(None) };
        let mut total = first.clone();
        for sums in parts {
            for (t, s) in total.iter_mut().zip(sums) {
                *t = (&*t + s)?;
            }
        }
        let n = self.steps - (w.since - self.start);
        let mean = total.iter().map(|t| t / n as f64).collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Some((n, mean)))
    }

    /// Halves the number of batches and groups by merging neighbours, so memory stays bounded.
    fn merge(&mut self) -> Result<()> {
        let means = std::mem::take(&mut self.means);
        self.means = means.chunks(2).map(|p| p[0].iter().zip(&p[1]).map(|(a, b)| 0.5 * (a + b)).collect()).collect();
        let groups = std::mem::take(&mut self.groups);
        self.groups = groups
            .chunks(2)
            .map(|p| p[0].iter().zip(&p[1]).map(|(a, b)| a + b).collect::<candle_core::Result<Vec<_>>>())
            .collect::<candle_core::Result<Vec<_>>>()?;
        self.batch *= 2;
        Ok(())
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
                split_rhat(&x, CHAINS) < self.rhat || chunk_spread(&x, CHAINS) < self.tol * units[j]
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
