//! The averaging slot: q's parameters averaged over the iterates of a run (Polyak & Juditsky
//! 1992; Ruppert 1988), which removes most of a constant step size's jitter around the optimum.
//!
//! ```text
//! λ̄ = 1/(T − t₀ + 1) Σ_{t = t₀..T} λ_t      (the iterates from step t₀ on; q becomes λ̄)
//! ```
//!
//! The default stopping rule ([`crate::StopRule::Stationary`]) averages by itself, over the
//! stationary window it finds. With another rule, an [`Averager`] given to
//! [`crate::Advi::averager`] sees q's parameters after every taken step and gives the average
//! that replaces q at the end; [`IterateAverage`] is the built-in one.

use crate::Result;

/// An average of q's parameters, in `params()` order (host values, row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Average {
    /// The first step averaged.
    pub since: usize,
    /// How many steps were averaged.
    pub steps: usize,
    /// The averaged parameters.
    pub params: Vec<Vec<f64>>,
}

/// The averaging slot: sees q's parameters after every taken step and gives their average. It
/// must be `Clone`, so that each fit starts from the averager as given.
pub trait Averager: std::fmt::Debug + Send + AveragerClone {
    /// q's parameters after step `iteration` (counted from 1), in `params()` order.
    fn observe(&mut self, iteration: usize, params: &[Vec<f64>]) -> Result<()>;

    /// q was moved back to earlier parameters at `iteration` (a recovery from non-finite steps):
    /// the iterates since the last good point are gone.
    fn restart(&mut self, iteration: usize);

    /// The average that replaces q at the end, or `None` to keep the last iterate.
    fn average(&self) -> Option<Average>;
}

/// A fresh copy of an averager in a box (implemented for every `Clone` averager).
pub trait AveragerClone {
    /// The copy.
    fn clone_averager(&self) -> Box<dyn Averager>;
}

impl<T: Averager + Clone + 'static> AveragerClone for T {
    fn clone_averager(&self) -> Box<dyn Averager> {
        Box::new(self.clone())
    }
}

/// The mean of every iterate from step `from` on (from the restart, after a recovery).
///
/// ```
/// use elbo::average::IterateAverage;
/// use elbo::prelude::*;
/// // SGD on N(2, 1) with a constant step: the last iterate jitters, the average of the second
/// // half of the run does not
/// let model = elbo::from_fn(1, |z: &Tensor| (z - 2.0)?.sqr()?.sum(1)? * -0.5);
/// let advi = Advi::new(MeanField).dtype(DType::F64).optimizer(Optimizer::sgd(0.05)).steps(4_000)
///     .stop(StopRule::MaxSteps).seed(5);
/// let fit = advi.clone().averager(IterateAverage::from_step(2_000)).fit(&model)?;
/// let averaged = fit.averaged().expect("q is the average");
/// assert_eq!((averaged.since, averaged.steps), (2_000, 2_001));
/// assert!((fit.mean()?.to_vec1::<f64>()?[0] - 2.0).abs() < 0.05);
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct IterateAverage {
    from: usize,
    since: Option<usize>,
    steps: usize,
    sums: Vec<Vec<f64>>,
}

impl IterateAverage {
    /// Averages the iterates from step `from` on (0 or 1: every step).
    pub fn from_step(from: usize) -> Self {
        IterateAverage { from, since: None, steps: 0, sums: Vec::new() }
    }
}

impl Averager for IterateAverage {
    fn observe(&mut self, iteration: usize, params: &[Vec<f64>]) -> Result<()> {
        if iteration < self.from {
            return Ok(());
        }
        if self.since.is_none() {
            self.since = Some(iteration);
            self.sums = params.to_vec();
        } else {
            for (sum, p) in self.sums.iter_mut().zip(params) {
                sum.iter_mut().zip(p).for_each(|(s, x)| *s += x);
            }
        }
        self.steps += 1;
        Ok(())
    }

    fn restart(&mut self, iteration: usize) {
        *self = IterateAverage { from: self.from.max(iteration + 1), ..IterateAverage::from_step(self.from) };
    }

    fn average(&self) -> Option<Average> {
        let since = self.since?;
        let n = self.steps as f64;
        let params = self.sums.iter().map(|s| s.iter().map(|x| x / n).collect()).collect();
        Some(Average { since, steps: self.steps, params })
    }
}
