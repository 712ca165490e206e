//! Stan's relative-tolerance rule on the ELBO (Kucukelbir et al. 2017, Stan's `advi`), for users
//! who know it.
//!
//! ```text
//! every `eval` steps:  Ē_t = mean of the ELBO estimates of those steps
//!                      r_t = |(Ē_t − Ē_{t−1}) / Ē_t|
//! stop when the mean or the median of the last max(2, ⌊0.1 · max_steps / eval⌋) values of r
//! falls below `tol`
//! ```
//!
//! Stan estimates Ē_t from fresh draws at each checkpoint; this rule averages the steps' own
//! estimates instead, which costs nothing. Either way the rule is known to be noisy: it can stop
//! while the ELBO still rises slowly, or never stop on a noisy ELBO.

use std::collections::VecDeque;

use super::{Context, Rule, StopReason};
use crate::Result;

/// The state of Stan's rule between steps.
#[derive(Clone, Debug)]
pub(crate) struct StanRule {
    eval: usize,
    tol: f64,
    size: usize,
    changes: VecDeque<f64>,
    last: Option<f64>,
    sum: f64,
    n: usize,
}

impl StanRule {
    pub(crate) fn new(eval: usize, tol: f64, max_steps: usize) -> Self {
        let size = ((0.1 * max_steps.min(1 << 30) as f64 / eval as f64) as usize).max(2);
        StanRule { eval, tol, size, changes: VecDeque::new(), last: None, sum: 0.0, n: 0 }
    }

    /// Sees one taken step's ELBO estimate; says which statistic fell below the tolerance, and
    /// its value, once one has.
    pub(crate) fn see_elbo(&mut self, elbo: f64) -> Option<(&'static str, f64)> {
        self.sum += elbo;
        self.n += 1;
        if self.n < self.eval {
            return None;
        }
        let current = self.sum / self.n as f64;
        (self.sum, self.n) = (0.0, 0);
        let previous = self.last.replace(current)?;
        let change = ((current - previous) / current).abs();
        if self.changes.len() == self.size {
            self.changes.pop_front();
        }
        self.changes.push_back(if change.is_finite() { change } else { f64::INFINITY });
        let mean = self.changes.iter().sum::<f64>() / self.changes.len() as f64;
        let mut sorted: Vec<f64> = self.changes.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        if mean < self.tol {
            Some(("mean", mean))
        } else if median < self.tol {
            Some(("median", median))
        } else {
            None
        }
    }
}

impl Rule for StanRule {
    fn name(&self) -> &'static str {
        "Stan's relative tolerance"
    }

    fn observe(&mut self, cx: &Context<'_>) -> Result<Option<StopReason>> {
        let Some(elbo) = cx.elbo else { return Ok(None) };
        Ok(self.see_elbo(elbo).map(|(statistic, value)| StopReason::Stan { statistic, value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_once_the_relative_change_is_small_and_not_before() {
        let mut rule = StanRule::new(10, 0.01, 1_000);
        // the ELBO rises from −1000 to −100 over 100 steps, then is flat with tiny wiggles
        let stopped = (0..400).find_map(|t| {
            let elbo = if t < 100 { -1000.0 + 9.0 * t as f64 } else { -100.0 + 0.01 * ((t % 7) as f64) };
            rule.see_elbo(elbo).map(|found| (t, found))
        });
        let (t, (_, value)) = stopped.expect("the rule stops");
        assert!(t > 100, "stopped at {t} while the ELBO was still rising");
        assert!(value < 0.01);
    }
}
