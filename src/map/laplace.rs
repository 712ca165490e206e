//! The Laplace approximation: a Gaussian at the posterior mode with the inverse Hessian of
//! −log p as its covariance, returned as a full-rank q.
//!
//! ```text
//! q(z) = N(ẑ, H⁻¹),   ẑ = argmin_z −log p(x, z),   H = ∇²_z(−log p(x, z)) at ẑ
//! H[:, j] ≈ (∇ log p(ẑ − hⱼ eⱼ) − ∇ log p(ẑ + hⱼ eⱼ)) / (2 hⱼ),  symmetrised
//! ```
//!
//! Exact when the posterior in z is Gaussian (a conjugate linear regression); otherwise a local
//! approximation whose k̂ in the report says how far to trust it.

use std::time::Instant;

use candle_core::{DType, Device};

use super::mode::Map;
use super::Reporting;
use crate::family::{FullRankGaussian, ScaleLink};
use crate::model::LogJoint;
use crate::report::{Fit, Method};
use crate::{Error, Result};

/// Settings of a Laplace approximation; [`Laplace::fit`] returns a [`Fit`] of a
/// [`FullRankGaussian`], so summaries, draws and k̂ work as after ADVI.
///
/// ```
/// use elbo::map::Laplace;
/// use elbo::prelude::*;
/// // y_i ~ N(θ, 1), θ ~ N(0, 1): the posterior N(Σy / (n + 1), 1 / (n + 1)) is Gaussian, so
/// // Laplace is exact
/// let y = Tensor::new(&[1.2f64, 0.8, 1.5, 0.9], &Device::Cpu)?;
/// let model = elbo::from_fn(1, move |z: &Tensor| {
///     (z.sqr()? * -0.5)?.squeeze(1)? + (y.unsqueeze(0)?.broadcast_sub(z)?.sqr()? * -0.5)?.sum(1)?
/// });
/// let fit = Laplace::new().fit(&model)?;
/// let (mean, var) = (fit.mean()?.to_vec1::<f64>()?[0], fit.covariance()?.to_vec2::<f64>()?[0][0]);
/// assert!((mean - 4.4 / 5.0).abs() < 1e-9 && (var - 0.2).abs() < 1e-9);
/// println!("{fit}");
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Laplace {
    map: Map,
    reporting: Reporting,
}

impl Default for Laplace {
    fn default() -> Self {
        Laplace::new()
    }
}

impl Laplace {
    /// The defaults: [`Map::new`]'s search, F64 on the CPU, seed 0, 4,000 fresh draws for the
    /// ELBO and k̂.
    pub fn new() -> Self {
        Laplace { map: Map::new(), reporting: Reporting::new() }
    }

    /// The MAP search to run (its dtype and device are replaced by this fit's).
    pub fn map(mut self, map: Map) -> Self {
        self.map = map;
        self
    }

    /// The seed of the fresh draws behind the ELBO, k̂, summary and [`Fit::sample`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.reporting.seed = seed;
        self
    }

    /// How many fresh draws estimate the ELBO and k̂ (at least 2).
    pub fn elbo_draws(mut self, n: usize) -> Self {
        self.reporting.elbo_draws = n;
        self
    }

    /// Whether to compute the PSIS diagnostics (default on).
    pub fn diagnostics(mut self, on: bool) -> Self {
        self.reporting.diagnostics = on;
        self
    }

    /// The dtype of q and of the z handed to the model (default F64).
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.reporting.dtype = dtype;
        self
    }

    /// The device of q and of the z handed to the model.
    pub fn device(mut self, device: Device) -> Self {
        self.reporting.device = device;
        self
    }

    /// Finds the MAP, differentiates the gradient there, and reports N(ẑ, H⁻¹). Fails as
    /// [`Map::fit`] does, in particular with [`Error::NotPositiveDefinite`] naming the flattest
    /// direction when H is not positive definite.
    pub fn fit<M: LogJoint + ?Sized>(&self, model: &M) -> Result<Fit<FullRankGaussian>> {
        self.reporting.validate()?;
        let start = Instant::now();
        let (dtype, device) = (self.reporting.dtype, &self.reporting.device);
        let map = self.map.clone().dtype(dtype).device(device.clone()).curvature_check(true).fit(model)?;
        let cov = map.inverse_hessian().ok_or_else(|| Error::ModelOutput {
            problem: "has no Hessian at the MAP (internal: the curvature check did not run)".into(),
        })?;
        let d = map.loc().len();
        // H⁻¹ from the Cholesky solves is symmetric up to rounding; make it exactly so
        let cov: Vec<f64> = (0..d * d).map(|k| 0.5 * (cov[k] + cov[(k % d) * d + k / d])).collect();
        let q = FullRankGaussian::from_mean_cov(map.loc(), &cov, ScaleLink::Log, dtype, device)?;
        let c = map.convergence().clone();
        let method = Method::Laplace { lbfgs: c.clone(), hessian_evaluations: map.hessian_evaluations() };
        let trace = map.trace().to_vec();
        self.reporting.fit(q, model, method, c.iterations, trace, start.elapsed())
    }
}
