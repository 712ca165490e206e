//! The verdict on a fitted q ([`Verdict`], whose doc has the rule), and what to do next
//! ([`Advice`]).
//!
//! The verdict bounds the error that matters, how far q's marginal means and sds are from the
//! posterior's, by its direct PSIS estimate (`moments.rs`), for every coordinate of z and every
//! constrained element, while importance sampling can check q at all (k̂ < 0.7, Vehtari et al.
//! 2024); it gives each estimate 2 standard errors of slack, more when k̂ > ½
//! ([`Diagnostics::slack`]): there the weights have no variance, the reported errors are too
//! small and the estimates lean towards q. So "good" and "usable" are upper confidence bounds.
//! "Good" also needs k̂ small (< 0.5, and < 0.7 by 2 of its standard errors).
//!
//! How often it errs, on synthetic targets (`tests/diagnose/verdict.rs`, `verdict_rates_over_50_seeds`)
//! and on the development posteriors (`examples/posteriors.rs`): benches/README.md, "The verdict".
//!
//! The run's stop reason does not change the verdict, which measures q itself, converged or not
//! (a q checked to be within 0.1 sd is good even if the stopping rule never fired); it changes
//! the advice: a run that stopped at its step limit or time budget is told to take more steps
//! before anything else ([`crate::Fit::advice`]).

use std::fmt;

use super::psis::Diagnostics;

/// Standard errors of slack on every estimate the verdict bounds (more for the moments when
/// k̂ > ½, [`Diagnostics::slack`]).
const Z: f64 = 2.0;
/// k̂ below which importance sampling can check q (Vehtari et al. 2024).
const K_TRUSTED: f64 = 0.7;
/// k̂ below which q is a good importance proposal (Yao et al. 2018).
const K_GOOD: f64 = 0.5;
/// A good q: means within this many posterior sds, sds within this fraction of the posterior's.
const GOOD: f64 = 0.1;
/// A usable q: means within this many posterior sds, sds within this fraction.
const USABLE: f64 = 0.3;

/// How far q can be trusted ([`Diagnostics::verdict`]):
///
/// ```text
/// z       = 2 · S^max(k̂ − ½, 0)                                    (Diagnostics::slack)
/// good    = k̂ < 0.5, k̂ + 2 se(k̂) < 0.7, every |shift| + z se ≤ 0.1, every |ratio − 1| + z se ≤ 0.1
/// usable  = k̂ < 0.7,                    every |shift| + z se ≤ 0.3, every |ratio − 1| + z se ≤ 0.3
/// else unreliable
/// ```
///
/// with shift = q's mean error in posterior sds and ratio = q's sd over the posterior's, for
/// every coordinate of the unconstrained z and every constrained element, from the
/// PSIS-reweighted draws ([`Moments`](super::psis::Moments)) of S draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Means within 0.1 posterior sd and sds within 10 %, confirmed by importance sampling.
    Good,
    /// Means within 0.3 posterior sd and sds within 30 %.
    Usable,
    /// Neither could be confirmed: q is off, or importance sampling cannot check it.
    Unreliable,
}

impl Verdict {
    /// Yao et al.'s verdict from k̂ alone: good below 0.5, usable below 0.7. It misses a q whose
    /// mean is off (k̂ is small for a shifted Gaussian); a fit's verdict is [`Diagnostics::verdict`].
    pub fn from_k_hat(k_hat: f64) -> Self {
        if k_hat < K_GOOD {
            Verdict::Good
        } else if k_hat < K_TRUSTED {
            Verdict::Usable
        } else {
            Verdict::Unreliable
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Good => "good: q's means and sds are within 0.1 sd and 10 % of the posterior's",
            Verdict::Usable => "usable: q's means and sds are within 0.3 sd and 30 %; check important expectations",
            Verdict::Unreliable => "do not trust q: it is off, or its tails are too light to check it",
        })
    }
}

/// What to try next when a fit is not good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Advice {
    /// Some draws of q gave a non-finite log p (or log q): the model is wrong or q has mass where
    /// it is undefined.
    CheckModel,
    /// The run stopped at its step limit or time budget before the stopping rule decided.
    MoreSteps,
    /// Only the Monte Carlo error of the check keeps the verdict from the better one: evaluate on
    /// more draws (`elbo_draws`).
    MoreDraws,
    /// q is a mean-field Gaussian and is off: its sds are too narrow or its tails too light, as
    /// when the posterior is correlated.
    FullRank,
    /// q's family cannot take the posterior's shape (skew, heavy tails, funnels).
    FlowOrReparameterise,
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Advice::CheckModel => "check the model: log p is not finite at some draws of q",
            Advice::MoreSteps => "more steps: the run stopped at its limit before the stopping rule decided",
            Advice::MoreDraws => {
                "more evaluation draws (`elbo_draws`): Monte Carlo error alone withholds a better verdict"
            }
            Advice::FullRank => "a full-rank family: a mean-field q misses the posterior's correlations or spread",
            Advice::FlowOrReparameterise => {
                "a normalising flow or a reparameterisation: the posterior is not Gaussian enough for q"
            }
        })
    }
}

/// Whether the moments, unconstrained and constrained, are within `bound` (mean shift and sd
/// fraction alike) at `z` standard errors; without moments (ratios alone), yes.
fn within(d: &Diagnostics, bound: f64, z: f64) -> bool {
    [&d.moments, &d.constrained].iter().all(|m| m.as_ref().is_none_or(|m| m.within(bound, bound, z)))
}

impl Diagnostics {
    /// Whether importance sampling can check q at all: k̂ < 0.7 (Vehtari et al. 2024). The
    /// reweighted moments and the KL estimate mean something only then.
    pub fn trusted(&self) -> bool {
        self.k_hat < K_TRUSTED
    }

    /// How many of their reported standard errors the verdict allows the reweighted moments:
    /// 2, times S^(k̂ − ½) when k̂ > ½. The reported errors are the central limit theorem's,
    /// S^(−½); once the weights' variance is infinite (k > ½) the error of an importance-sampling
    /// mean shrinks only like S^(−(1 − k)), the stable law's of tail index 1/k, and the estimates
    /// lean towards q's own moments.
    pub fn slack(&self) -> f64 {
        Z * (self.draws as f64).powf((self.k_hat - K_GOOD).max(0.0))
    }

    /// The verdict on q from k̂, its spread and the reweighted moments ([`Verdict`]'s rule);
    /// from log ratios alone ([`Diagnostics::from_log_ratios`]) it rests on k̂ and its spread.
    pub fn verdict(&self) -> Verdict {
        let z = self.slack();
        if !self.trusted() {
            Verdict::Unreliable
        } else if self.k_hat < K_GOOD && self.k_hat + Z * self.k_hat_se < K_TRUSTED && within(self, GOOD, z) {
            Verdict::Good
        } else if within(self, USABLE, z) {
            Verdict::Usable
        } else {
            Verdict::Unreliable
        }
    }

    /// What to try next, when q is not good (see [`Advice`]).
    pub fn advice(&self) -> Option<Advice> {
        let verdict = self.verdict();
        if self.nonfinite > 0 {
            return Some(Advice::CheckModel);
        }
        let noise_only = self.trusted()
            && match verdict {
                Verdict::Good => false,
                Verdict::Usable => self.k_hat < K_GOOD && within(self, GOOD, 0.0),
                Verdict::Unreliable => within(self, USABLE, 0.0),
            };
        match verdict {
            Verdict::Good => None,
            _ if noise_only => Some(Advice::MoreDraws),
            _ if self.mean_field => Some(Advice::FullRank),
            _ => Some(Advice::FlowOrReparameterise),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::psis::Moments;

    /// Diagnostics with k̂ ± se and one coordinate's mean shift ± se and sd ratio ± se.
    fn diagnostics(k: (f64, f64), shift: (f64, f64), ratio: (f64, f64)) -> Diagnostics {
        Diagnostics {
            k_hat: k.0,
            k_hat_se: k.1,
            log_evidence: 0.0,
            log_evidence_se: 0.0,
            kl: 0.0,
            kl_se: 0.0,
            ess: 4_000.0,
            draws: 4_000,
            nonfinite: 0,
            moments: Some(Moments {
                mean: vec![0.0],
                sd: vec![1.0],
                mean_shift: vec![shift.0],
                mean_shift_se: vec![shift.1],
                sd_ratio: vec![ratio.0],
                sd_ratio_se: vec![ratio.1],
            }),
            constrained: None,
            mean_field: false,
        }
    }

    #[test]
    fn the_bounds_count_two_standard_errors() {
        let v = |k, shift, ratio| diagnostics(k, shift, ratio).verdict();
        assert_eq!(v((0.2, 0.1), (0.05, 0.02), (1.0, 0.0)), Verdict::Good);
        // 0.07 + 2 × 0.02 > 0.1: not surely within 0.1 sd
        assert_eq!(v((0.2, 0.1), (0.07, 0.02), (1.0, 0.0)), Verdict::Usable);
        assert_eq!(v((0.2, 0.1), (0.0, 0.0), (0.93, 0.02)), Verdict::Usable);
        assert_eq!(v((0.2, 0.1), (-0.25, 0.02), (1.0, 0.0)), Verdict::Usable);
        assert_eq!(v((0.2, 0.1), (0.27, 0.02), (1.0, 0.0)), Verdict::Unreliable);
        assert_eq!(v((0.2, 0.1), (0.0, 0.0), (1.25, 0.03)), Verdict::Unreliable);
        // good needs k̂ small by its spread too; usable only k̂ < 0.7
        assert_eq!(v((0.45, 0.13), (0.0, 0.0), (1.0, 0.0)), Verdict::Usable);
        assert_eq!(v((0.72, 0.1), (0.0, 0.0), (1.0, 0.0)), Verdict::Unreliable);
        // at k̂ = 0.6 the slack is 2 · 4000^0.1 = 4.6 standard errors: 0.2 + 4.6 × 0.03 > 0.3
        assert_eq!(v((0.3, 0.1), (0.2, 0.03), (1.0, 0.0)), Verdict::Usable);
        assert_eq!(v((0.6, 0.1), (0.2, 0.03), (1.0, 0.0)), Verdict::Unreliable);
        // good also needs k̂ < 0.5
        assert_eq!(v((0.5, 0.05), (0.0, 0.0), (1.0, 0.0)), Verdict::Usable);
        assert_eq!(v((f64::NAN, 0.1), (0.0, 0.0), (1.0, 0.0)), Verdict::Unreliable);
        assert_eq!(v((0.2, 0.1), (f64::NAN, 0.0), (1.0, 0.0)), Verdict::Unreliable);
    }

    #[test]
    fn advice_names_the_cause() {
        let mut d = diagnostics((0.2, 0.1), (0.07, 0.02), (1.0, 0.0));
        assert_eq!(d.advice(), Some(Advice::MoreDraws), "usable only for want of draws");
        d = diagnostics((0.2, 0.1), (0.2, 0.01), (1.0, 0.0));
        assert_eq!(d.advice(), Some(Advice::FlowOrReparameterise));
        d.mean_field = true;
        assert_eq!(d.advice(), Some(Advice::FullRank));
        d.nonfinite = 3;
        assert_eq!(d.advice(), Some(Advice::CheckModel));
        assert_eq!(diagnostics((0.2, 0.1), (0.0, 0.01), (1.0, 0.01)).advice(), None);
    }

    #[test]
    fn from_k_hat_keeps_yao_s_thresholds() {
        assert_eq!(Verdict::from_k_hat(0.49), Verdict::Good);
        assert_eq!(Verdict::from_k_hat(0.69), Verdict::Usable);
        assert_eq!(Verdict::from_k_hat(f64::INFINITY), Verdict::Unreliable);
    }
}
