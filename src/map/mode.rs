//! The posterior mode (MAP) by L-BFGS in the unconstrained space, reported by name in the
//! constrained space.
//!
//! ```text
//! ẑ = argmin_z −log p(x, z),   log p(x, z) = log p(x, f(z)) + log|det J_f(z)|
//! x̂ = f(ẑ)                     (each latent's value at the mode, by name)
//! ```
//!
//! The mode is that of the unconstrained density, Jacobians included, which is the point a
//! Laplace approximation in z needs. For a constrained latent it differs from the mode of the
//! constrained density: for τ ~ Gamma(a, b) with τ = eᶻ, the mode in z has τ̂ = a / b, not
//! (a − 1) / b. At the mode the Hessian of −log p is checked to be positive definite (2D more
//! gradient evaluations, in one batch), so that a posterior that is flat along some direction
//! fails with that direction named instead of returning an arbitrary point. With that Hessian H
//! the answer must also have a Newton decrement λ²/2 = ½ ∇fᵀH⁻¹∇f of at most `tol_decrement`
//! nats (λ: the distance to the mode in posterior sds), which damped Newton steps reach when
//! L-BFGS stopped short or above it (`newton.rs`): a test that, unlike ‖∇f‖ ≤ tol_grad, means the
//! same on a posterior whose sds are 10⁴ as on one whose sds are 10⁻⁴.

use std::cell::Cell;
use std::fmt;
use std::time::{Duration, Instant};

use candle_core::{DType, Device};

use super::bridge::{log_joint_and_grad, short, NegLogJoint};
use super::hessian::{stencil, stencil_scaled, Hessian};
use super::lbfgs::{search, Lbfgs, Leash, Smooth};
use super::newton::{minimize, Convergence, Curvature};
use super::{bad_start, coordinate_names, FLAT_POSTERIOR};
use crate::latent::Latents;
use crate::latent::Start;
use crate::model::latents_of;
use crate::model::LogJoint;
use crate::summary::Draws;
use crate::{Error, Result};

/// Settings of a MAP search; [`Map::fit`] runs it.
///
/// ```
/// use elbo::map::Map;
/// use elbo::dist::{Distribution, Gamma, Poisson};
/// use elbo::prelude::*;
///
/// // yᵢ ~ Poisson(λ), λ ~ Gamma(2, 0.5): the posterior is Gamma(2 + Σy, 0.5 + n) = Gamma(25, 6.5)
/// let y = Tensor::new(&[3.0f64, 5.0, 2.0, 4.0, 6.0, 3.0], &Device::Cpu)?.unsqueeze(0)?;
/// let model = Latents::new().positive("lambda", [1]).model(|v| {
///     let lambda = v.get("lambda")?;
///     Gamma::new(2.0, 0.5)?.log_prob(lambda)?.sum(1)? + Poisson::new(lambda.log()?)?.log_prob(&y)?.sum(1)?
/// });
/// let map = Map::new().fit(&model)?;
/// // the mode of log λ's density is at λ = 25 / 6.5 (the Jacobian adds log λ)
/// assert!((map.get("lambda").unwrap() - 25.0 / 6.5).abs() < 1e-6);
/// println!("{map}");
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Map {
    lbfgs: Lbfgs,
    dtype: DType,
    device: Device,
    start: Start,
    curvature_check: bool,
}

impl Default for Map {
    fn default() -> Self {
        Map::new()
    }
}

impl Map {
    /// The defaults: L-BFGS ([`Lbfgs::default`]: up to 1,000 iterations to a gradient norm of
    /// 10⁻⁶, memory 10) from z = 0, in F64 on the CPU, with the curvature check at the mode and
    /// Newton steps to a decrement λ²/2 of 10⁻¹⁰ nats.
    /// F64, not ADVI's F32: line searches and finite differences need its precision.
    pub fn new() -> Self {
        Map {
            lbfgs: Lbfgs::default(),
            dtype: DType::F64,
            device: Device::Cpu,
            start: Start::default(),
            curvature_check: true,
        }
    }

    /// All L-BFGS settings at once.
    pub fn lbfgs(mut self, lbfgs: Lbfgs) -> Self {
        self.lbfgs = lbfgs;
        self
    }

    /// The most L-BFGS iterations.
    pub fn max_iters(mut self, n: usize) -> Self {
        self.lbfgs.max_iters = n;
        self
    }

    /// Converged when ‖∇ log p(x, z)‖₂ is at most `tol` (positive).
    pub fn tol_grad(mut self, tol: f64) -> Self {
        self.lbfgs.tol_grad = tol;
        self
    }

    /// With the curvature check: converged when the Newton decrement's half λ²/2 = ½ ∇fᵀH⁻¹∇f,
    /// H the finite-difference Hessian of f = −log p, is at most `tol` nats (positive). For a
    /// posterior that is Gaussian near its mode, λ is the distance to the mode in posterior sds.
    pub fn tol_decrement(mut self, tol: f64) -> Self {
        self.lbfgs.tol_decrement = tol;
        self
    }

    /// The dtype of the z handed to the model (its tensors must have the same).
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// The device of the z handed to the model.
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// The unconstrained starting point (length D); default 0.
    pub fn init_loc(mut self, loc: Vec<f64>) -> Self {
        self.start.loc = Some(loc);
        self
    }

    /// The starting value of latent `name` in the constrained space, as in
    /// [`crate::Advi::init_value`].
    pub fn init_value(mut self, name: &str, values: impl AsRef<[f64]>) -> Self {
        self.start.value(name, values.as_ref());
        self
    }

    /// Whether to check at the mode that the Hessian of −log p is positive definite (default on;
    /// 2D gradient evaluations in one batch). Off, a posterior that is flat along a direction
    /// returns some point on the flat set.
    pub fn curvature_check(mut self, on: bool) -> Self {
        self.curvature_check = on;
        self
    }

    /// Finds the mode. With the curvature check (the default), L-BFGS's answer is checked, and
    /// finished when it stopped short, by damped Newton steps with the finite-difference Hessian
    /// until the Newton decrement λ²/2 is at most `tol_decrement` nats ([`Lbfgs`]); without it,
    /// L-BFGS alone must reach the gradient tolerance. Fails with [`crate::Error::NotConverged`]
    /// when neither gets there (the message says why: no finite mode, too few iterations,
    /// rounding), and with [`crate::Error::NotPositiveDefinite`] when the posterior is flat or
    /// curves the wrong way along some direction at the point found (the direction is named).
    pub fn fit<M: LogJoint + ?Sized>(&self, model: &M) -> Result<MapFit> {
        self.lbfgs.validate()?;
        let start_time = Instant::now();
        let x0 = self.start.point(model)?;
        let latents = latents_of(model);
        let names = coordinate_names(&latents);
        let bridge = NegLogJoint::new(model).dtype(self.dtype).device(self.device.clone());
        bridge.value_and_gradient(&x0).map_err(bad_start)?;
        let method = "MAP (L-BFGS on −log p(x, z))";
        let (found, hessian, hessian_evaluations) = if self.curvature_check {
            let eps = bridge.epsilon();
            let d = x0.len();
            let evaluations = Cell::new(0);
            let mut hessian_at = |x: &[f64], previous: Option<&Curvature>| -> Result<Curvature> {
                let differentiate = |(h, points): (Vec<f64>, Vec<f64>)| -> Result<Hessian> {
                    evaluations.set(evaluations.get() + 2 * d);
                    let (_, grads) = log_joint_and_grad(model, &points, d, self.dtype, &self.device)?;
                    let neg: Vec<f64> = grads.iter().map(|g| -g).collect();
                    Ok(Hessian::from_stencil(&h, &neg, eps))
                };
                let what = format!("the Hessian of −log p(x, z) at the point reached, z = {}", short(x));
                let far = |sd: &[f64]| sd.iter().any(|s| !(0.25..=4.0).contains(s));
                // steps on the posterior's own scale when it is far from 1: the previous Hessian's,
                // or a first one's
                let mut hessian = match previous.map(Curvature::sd) {
                    Some(sd) if far(&sd) => differentiate(stencil_scaled(x, &sd, eps))?,
                    _ => differentiate(stencil(x, eps))?,
                };
                let mut inverse = hessian.inverse(&what, &names, FLAT_POSTERIOR)?;
                let sd: Vec<f64> = (0..d).map(|i| inverse[i * d + i].sqrt()).collect();
                if previous.is_none() && far(&sd) {
                    hessian = differentiate(stencil_scaled(x, &sd, eps))?;
                    inverse = hessian.inverse(&what, &names, FLAT_POSTERIOR)?;
                }
                Ok(Curvature { hessian, inverse })
            };
            let (found, finished) = minimize(&bridge, x0, &self.lbfgs, method, &names, true, &mut hessian_at)?;
            let finished = finished.ok_or_else(|| Error::ModelOutput {
                problem: "has no Hessian at the MAP (internal: the curvature check did not run)".into(),
            })?;
            let Curvature { hessian, inverse } = finished.curvature;
            (found, Some((hessian.h, inverse)), evaluations.get())
        } else {
            match search(&bridge, x0, &self.lbfgs, method, &names, None, Leash::default())? {
                (found, None) => (found, None, 0),
                (_, Some(short)) => return Err(short.error),
            }
        };
        let point = candle_core::Tensor::from_slice(&found.x, (1, found.x.len()), &Device::Cpu)?;
        let values = Draws::from_unconstrained(&latents, &point)?;
        Ok(MapFit {
            loc: found.x,
            log_joint: -found.value,
            convergence: found.convergence,
            hessian,
            hessian_evaluations,
            names: values.names().to_vec(),
            values: values.row(0).to_vec(),
            latents,
            trace: found.trace.iter().map(|f| -f).collect(),
            elapsed: start_time.elapsed(),
        })
    }

    /// The same search for a fit in `dtype` on `device`, without the curvature check: a starting
    /// point for a variational family needs no Hessian.
    pub(crate) fn as_start(&self, dtype: DType, device: &Device) -> Map {
        self.clone().dtype(dtype).device(device.clone()).curvature_check(false)
    }
}

impl<M: LogJoint + ?Sized> Smooth for NegLogJoint<'_, M> {
    fn value_and_gradient(&self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
        NegLogJoint::value_and_gradient(self, x)
    }
    fn evaluations(&self) -> usize {
        NegLogJoint::evaluations(self)
    }
    fn epsilon(&self) -> f64 {
        NegLogJoint::epsilon(self)
    }
}

/// The posterior mode: the point, its log density, its values by name, how L-BFGS got there.
#[derive(Clone, Debug)]
pub struct MapFit {
    loc: Vec<f64>,
    log_joint: f64,
    convergence: Convergence,
    /// (H, H⁻¹), row-major D×D.
    hessian: Option<(Vec<f64>, Vec<f64>)>,
    /// Gradient evaluations behind the finite-difference Hessians.
    hessian_evaluations: usize,
    names: Vec<String>,
    values: Vec<f64>,
    latents: Latents,
    trace: Vec<f64>,
    elapsed: Duration,
}

impl MapFit {
    /// ẑ, the mode in the unconstrained space (length D): a starting location for any
    /// variational family (`Advi::init_loc(map.loc().to_vec())`, or `Advi::init_map`).
    pub fn loc(&self) -> &[f64] {
        &self.loc
    }

    /// log p(x, ẑ) (Jacobians included).
    pub fn log_joint(&self) -> f64 {
        self.log_joint
    }

    /// The constrained value of element `name` at the mode (`tau`, `theta[3]`, `w[0]`: the names
    /// of [`MapFit::names`]), or `None` for a name the model does not have.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.names.iter().position(|n| n == name).map(|i| self.values[i])
    }

    /// The names of the constrained elements, in the order of [`MapFit::values`].
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The constrained values at the mode, one per name.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The named latents of the model (one real block `z` for a plain `LogJoint`).
    pub fn latents(&self) -> &Latents {
        &self.latents
    }

    /// H, the Hessian of −log p(x, z) at ẑ (row-major D×D, by central differences of the autodiff
    /// gradient, symmetrised), if the curvature check ran.
    pub fn hessian(&self) -> Option<&[f64]> {
        self.hessian.as_ref().map(|(h, _)| h.as_slice())
    }

    /// H⁻¹, the Laplace covariance, if the curvature check ran.
    pub(crate) fn inverse_hessian(&self) -> Option<&[f64]> {
        self.hessian.as_ref().map(|(_, inv)| inv.as_slice())
    }

    /// Gradient evaluations behind the finite-difference Hessians of the curvature check and the
    /// Newton steps (2D each, 4D for one whose steps follow the posterior's scale; 0 without
    /// the check).
    pub fn hessian_evaluations(&self) -> usize {
        self.hessian_evaluations
    }

    /// How the search went: L-BFGS iterations and Newton steps, gradient evaluations, the final
    /// gradient norm and Newton decrement, and which tolerance it met.
    pub fn convergence(&self) -> &Convergence {
        &self.convergence
    }

    /// log p(x, z) at the start and after every L-BFGS iteration and Newton step.
    pub fn trace(&self) -> &[f64] {
        &self.trace
    }

    /// Wall time of the search and the curvature check.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

impl fmt::Display for MapFit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.convergence;
        writeln!(f, "MAP (L-BFGS on −log p(x, z) in the unconstrained space)")?;
        writeln!(f, "  stopped    after {c}")?;
        writeln!(f, "  log p(x, ẑ) {:.6}", self.log_joint)?;
        writeln!(f, "  time       {:.3} s", self.elapsed.as_secs_f64())?;
        let width = self.names.iter().take(20).map(|n| n.chars().count()).max().unwrap_or(4).max(9);
        writeln!(f, "{:<width$}  {:>12}", "parameter", "mode")?;
        for (name, value) in self.names.iter().zip(&self.values).take(20) {
            writeln!(f, "{name:<width$}  {value:>12.6}")?;
        }
        if self.names.len() > 20 {
            writeln!(f, "… ({} more)", self.names.len() - 20)?;
        }
        Ok(())
    }
}
