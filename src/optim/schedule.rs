//! The step size over the run, and the units of the location's steps.
//!
//! ```text
//! constant:     η_t = η
//! exponential:  η_t = η · (η_final / η)^(t / (T − 1))
//! ```

use crate::{Error, Result};

/// How the learning rate changes over the run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum LrSchedule {
    /// η_t = η.
    #[default]
    Constant,
    /// η_t = η · (final_lr / η)^(t / T): geometric decay from η to `final_lr` over the T steps.
    Exponential {
        /// The learning rate at the last step.
        final_lr: f64,
    },
}

impl LrSchedule {
    /// η_t at step `t` of `total`, from base rate `lr`.
    pub fn lr_at(&self, lr: f64, t: usize, total: usize) -> f64 {
        match *self {
            LrSchedule::Constant => lr,
            LrSchedule::Exponential { final_lr } => {
                let frac = if total > 1 { t as f64 / (total - 1) as f64 } else { 1.0 };
                lr * (final_lr / lr).powf(frac.min(1.0))
            }
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let LrSchedule::Exponential { final_lr } = *self {
            if !(final_lr > 0.0 && final_lr.is_finite()) {
                return Err(Error::config("final_lr", final_lr, "must be positive and finite"));
            }
        }
        Ok(())
    }
}

/// How a step of the location μ is measured.
///
/// ```text
/// Absolute:       Δμ_j = −η · d_j                d_j: Adam's m̂/(√v̂ + ε) (SGD: the gradient)
/// ScaleRelative:  Δμ_j = −η · σ_j · d_j          σ_j: q's current sd of coordinate j
/// ```
///
/// Adam moves every parameter by about η a step. For the log-scales that is a relative change,
/// whatever the posterior's scale; for the location it is η in the model's units, which crawls
/// when a posterior sd is 1e3 and jitters by many sds when one is 1e-3. `ScaleRelative` measures
/// the location's steps in q's sds, so one η suits every scale; it is slower than `Absolute` when
/// a tight posterior lies far from the start (each step moves about η sds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LocStep {
    /// η in the model's units (the usual optimiser step).
    #[default]
    Absolute,
    /// η times q's sd along each coordinate.
    ScaleRelative,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_schedule_runs_from_lr_to_final_lr() {
        let s = LrSchedule::Exponential { final_lr: 1e-4 };
        assert_eq!(s.lr_at(1e-2, 0, 101), 1e-2);
        assert!((s.lr_at(1e-2, 50, 101) - 1e-3).abs() < 1e-15);
        assert!((s.lr_at(1e-2, 100, 101) - 1e-4).abs() < 1e-17);
    }
}
