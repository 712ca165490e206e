//! KL warm-up (KL annealing, Bowman et al. 2016; Sønderby et al. 2016): the weight β of the KL term
//! rises linearly from 0 to 1 over the first epochs, so the decoder learns to use z before the KL
//! pulls q(z | x) to the prior, which reduces posterior collapse.
//!
//! ```text
//! β(t) = min(1, t / T)      t: epochs done (fractional within an epoch), T: warm-up epochs
//! T = 0: β = 1 throughout (no warm-up)
//! ```

use crate::{Error, Result};

/// The β schedule of the KL term: linear from 0 to 1 over `epochs` epochs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KlWarmup {
    epochs: f64,
}

impl KlWarmup {
    /// Linear warm-up over `epochs` epochs (finite, ≥ 0; 0 means none).
    pub fn new(epochs: f64) -> Result<Self> {
        if !(epochs >= 0.0 && epochs.is_finite()) {
            return Err(Error::config("warmup_epochs", epochs, "the warm-up length must be finite and ≥ 0"));
        }
        Ok(KlWarmup { epochs })
    }

    /// No warm-up: β = 1 from the start.
    pub fn none() -> Self {
        KlWarmup { epochs: 0.0 }
    }

    /// The warm-up length T in epochs.
    pub fn epochs(&self) -> f64 {
        self.epochs
    }

    /// β at `epoch` (0-based) after `step` of `steps_per_epoch` steps in it: min(1, t / T) with
    /// t = epoch + step / steps_per_epoch.
    pub fn beta(&self, epoch: usize, step: usize, steps_per_epoch: usize) -> f64 {
        if self.epochs == 0.0 {
            return 1.0;
        }
        let t = epoch as f64 + step as f64 / steps_per_epoch.max(1) as f64;
        (t / self.epochs).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_rises_linearly_then_stays_at_one() {
        let w = KlWarmup::new(2.0).unwrap();
        assert_eq!(w.beta(0, 0, 100), 0.0);
        assert_eq!(w.beta(0, 50, 100), 0.25);
        assert_eq!(w.beta(1, 0, 100), 0.5);
        assert_eq!(w.beta(2, 0, 100), 1.0);
        assert_eq!(w.beta(7, 3, 100), 1.0);
        assert_eq!(KlWarmup::none().beta(0, 0, 10), 1.0);
        assert!(KlWarmup::new(-1.0).is_err() && KlWarmup::new(f64::NAN).is_err());
    }
}
