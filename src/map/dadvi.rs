//! Deterministic ADVI (DADVI; Giordano, Ingram & Broderick, JMLR 2024): the ELBO of a mean-field
//! Gaussian on M draws of ε fixed once, maximised by L-BFGS and finished by Newton steps on the
//! objective's Hessian to a Newton-decrement tolerance (newton.rs), with linear-response covariances
//! and standard errors for the choice of draws.
//!
//! ```text
//! η = (μ, ω),  σ = e^ω,  z_m = μ + σ ⊙ ε_m,  ε₁ … ε_M ~ N(0, I) drawn once (or in pairs ε, −ε)
//! ELBO_M(η) = 1/M Σ_m log p(x, z_m) + Σᵢ ωᵢ + D/2 (1 + log 2π)          maximised: η̂
//! ∇_μ ELBO_M = 1/M Σ_m ∇ log p(x, z_m),   ∇_ω ELBO_M = σ ⊙ 1/M Σ_m ∇ log p(x, z_m) ⊙ ε_m + 1
//! H = ∇²_η(−ELBO_M) at η̂                       (central differences of the gradient, symmetrised)
//! Cov_LR(z) = [H⁻¹]_μμ                         (linear response: d E_q[z] / d(perturbation))
//! Cov(η̂) ≈ H⁻¹ V H⁻¹ / U,  V = sample covariance of the U per-draw (per-pair) gradients at η̂
//! s.e.(ELBO_M) = sd of the U per-draw (per-pair) values of log p / √U
//! ```
//!
//! The start is the mean-field optimum of the Laplace approximation, μ = ẑ (the MAP) and
//! σᵢ = 1/√Hᵢᵢ with H = ∇²(−log p) at ẑ (for a Gaussian posterior, the optimum of the exact ELBO),
//! so that a posterior far from 0 or with sds far from 0.1 costs a MAP search in single draws
//! rather than a long run on M; where the MAP fails, μ = 0 (or `init_loc`) and σ = 0.1.
//!
//! Mean-field variances are too small when the posterior is correlated (they match the diagonal
//! of the precision, 1 / Λᵢᵢ); the linear-response covariance recovers the full covariance: for a
//! Gaussian posterior it equals Λ⁻¹ up to an O(1/M) error from the draws (exactly, with
//! antithetic pairs). The sandwich Cov(η̂) is the spread of η̂ over fresh choices of the M draws.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use super::bridge::{dtype_epsilon, log_joint_and_grad, short, Memo};
use super::hessian::{stencil, stencil_scaled, Hessian};
use super::lbfgs::{Lbfgs, Smooth};
use super::mode::Map;
use super::newton::{minimize, Curvature};
use super::{bad_start, coordinate_names, Reporting};
use crate::family::{FullRankGaussian, MeanFieldGaussian, ScaleLink};
use crate::latent::Start;
use crate::model::latents_of;
use crate::model::LogJoint;
use crate::noise::{Noise, Stream};
use crate::report::{Fit, Method};
use crate::special::HALF_LN_2PI;
use crate::summary::Draws;
use crate::{Error, Result};

/// Settings of a deterministic-ADVI fit; [`Dadvi::fit`] runs it.
///
/// ```
/// use elbo::map::Dadvi;
/// use elbo::prelude::*;
/// // a correlated Gaussian target: log p(z) = −½ zᵀ Λ z with Λ = [[2, 1], [1, 1]], Λ⁻¹ = [[1, −1], [−1, 2]]
/// let model = elbo::from_fn(2, |z: &Tensor| {
///     let lambda = Tensor::new(&[[2.0f64, 1.0], [1.0, 1.0]], z.device())?;
///     (z.matmul(&lambda)? * z)?.sum(1)? * -0.5
/// });
/// let fit = Dadvi::new().draws(30).antithetic(true).fit(&model)?;
/// // linear response recovers Λ⁻¹ (exactly, for a Gaussian target and antithetic draws) ...
/// let lr = fit.linear_response_covariance().unwrap();
/// assert!((lr[0] - 1.0).abs() < 1e-6 && (lr[1] + 1.0).abs() < 1e-6 && (lr[3] - 2.0).abs() < 1e-6);
/// // ... where the mean-field variances are near 1 / Λᵢᵢ = 0.5 and 1, too small
/// let var = fit.fit().covariance()?.to_vec2::<f64>()?;
/// assert!(var[0][0] < 0.8 && var[1][1] < 1.6);
/// println!("{fit}");
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Dadvi {
    draws: usize,
    antithetic: bool,
    lbfgs: Lbfgs,
    start: Start,
    init_map: Option<Map>,
    init_at_mode: bool,
    init_scale: f64,
    linear_response: bool,
    reporting: Reporting,
}

impl Default for Dadvi {
    fn default() -> Self {
        Dadvi::new()
    }
}

impl Dadvi {
    /// The defaults: M = 30 independent draws (the paper's choice), L-BFGS ([`Lbfgs::default`]),
    /// μ = 0 and σ = 0.1 at the start, linear response on, F64 on the CPU, seed 0, and 4,000 fresh
    /// draws for the reported ELBO and k̂.
    ///
    /// (μ = 0 and σ = 0.1 are the fallback: the fit first tries to start at the posterior mode with
    /// σᵢ = 1/√Hᵢᵢ, [`Dadvi::init_at_mode`].)
    pub fn new() -> Self {
        Dadvi {
            draws: 30,
            antithetic: false,
            lbfgs: Lbfgs::default(),
            start: Start::default(),
            init_map: None,
            init_at_mode: true,
            init_scale: 0.1,
            linear_response: true,
            reporting: Reporting::new(),
        }
    }

    /// M, the number of fixed draws of ε (at least 2; even and at least 4 with antithetic pairs).
    pub fn draws(mut self, m: usize) -> Self {
        self.draws = m;
        self
    }

    /// Draw ε in antithetic pairs (ε, −ε), M / 2 of each: then ELBO_M is exact for a quadratic
    /// log p, so the means and linear-response covariances of a Gaussian posterior carry no error
    /// from the draws, and odd-order errors cancel in general (default off: independent draws, as
    /// in the paper).
    pub fn antithetic(mut self, on: bool) -> Self {
        self.antithetic = on;
        self
    }

    /// The seed of the fixed draws (and of the fresh draws of the report).
    pub fn seed(mut self, seed: u64) -> Self {
        self.reporting.seed = seed;
        self
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

    /// Converged when ‖∇_η ELBO_M‖₂ is at most `tol`.
    pub fn tol_grad(mut self, tol: f64) -> Self {
        self.lbfgs.tol_grad = tol;
        self
    }

    /// Where the objective's Hessian H is computed (linear response, or a Newton finish):
    /// converged when the Newton decrement's half ½ ∇ᵀH⁻¹∇ of −ELBO_M is at most `tol` nats.
    pub fn tol_decrement(mut self, tol: f64) -> Self {
        self.lbfgs.tol_decrement = tol;
        self
    }

    /// The initial mean (unconstrained, length D); default 0.
    pub fn init_loc(mut self, loc: Vec<f64>) -> Self {
        self.start.loc = Some(loc);
        self
    }

    /// The initial mean of latent `name`, by its constrained value (as [`crate::Advi::init_value`]).
    pub fn init_value(mut self, name: &str, values: impl AsRef<[f64]>) -> Self {
        self.start.value(name, values.as_ref());
        self
    }

    /// Start at the MAP found by `map` (from `init_loc` / `init_value`), with σᵢ = 1/√Hᵢᵢ from its
    /// Hessian (`init_scale` if `map` has no curvature check); its failure is the fit's.
    pub fn init_map(mut self, map: Map) -> Self {
        self.init_map = Some(map);
        self
    }

    /// Whether to start at the posterior mode found by [`Map::new`] from `init_loc` / `init_value`,
    /// with σᵢ = 1/√Hᵢᵢ, H the Hessian of −log p there: the mean-field optimum of a Gaussian
    /// posterior, so that a posterior far from z = 0 or with sds far from 0.1 costs one MAP
    /// search, in single draws, instead of a long L-BFGS run on M (default on). If the search fails
    /// (no finite mode, a flat direction), the fit starts at the point with σ = `init_scale`
    /// instead, and [`DadviFit::start`] says why. Off: that point start.
    pub fn init_at_mode(mut self, on: bool) -> Self {
        self.init_at_mode = on;
        self
    }

    /// The initial σ of every coordinate when the fit does not start at the mode (positive; default
    /// 0.1).
    pub fn init_scale(mut self, scale: f64) -> Self {
        self.init_scale = scale;
        self
    }

    /// Whether to compute the Hessian of the objective at the optimum, for the linear-response
    /// covariances and the standard errors of the means (default on; 4D gradient evaluations of
    /// M draws each, in batches).
    pub fn linear_response(mut self, on: bool) -> Self {
        self.linear_response = on;
        self
    }

    /// How many fresh draws estimate the reported ELBO and k̂ (at least 2).
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

    fn validate(&self) -> Result<()> {
        self.reporting.validate()?;
        self.lbfgs.validate()?;
        if self.draws < 2 {
            return Err(Error::config("draws", self.draws, "at least 2 draws are needed for a standard error"));
        }
        if self.antithetic && (self.draws < 4 || self.draws % 2 == 1) {
            return Err(Error::config(
                "draws",
                self.draws,
                "antithetic pairs need an even number of draws, at least 4",
            ));
        }
        if !(self.init_scale > 0.0 && self.init_scale.is_finite()) {
            return Err(Error::config("init_scale", self.init_scale, "the initial scale must be positive and finite"));
        }
        Ok(())
    }

    /// Fixes the draws, maximises ELBO_M with L-BFGS (finished by damped Newton steps with the
    /// objective's finite-difference Hessian when L-BFGS stops short, and checked on that Hessian's
    /// Newton decrement with linear response on), and reports. Fails with [`Error::NotConverged`]
    /// when no tolerance is reached, and with [`Error::NotPositiveDefinite`] when (with linear
    /// response on) the objective is flat along a direction at the optimum.
    pub fn fit<M: LogJoint + ?Sized>(&self, model: &M) -> Result<DadviFit> {
        self.validate()?;
        let started = Instant::now();
        let (dtype, device) = (self.reporting.dtype, self.reporting.device.clone());
        let (loc, scale, start) = self.starting_point(model, dtype, &device)?;
        let d = loc.len();
        let (m, seed) = (self.draws, self.reporting.seed);
        let mut noise = Noise::new(seed, Stream::Optimise);
        let eps = if self.antithetic {
            let half = crate::linalg::to_f64_vec(&noise.standard_normal(m / 2, d, DType::F64, &Device::Cpu)?)?;
            half.iter().copied().chain(half.iter().map(|e| -e)).collect()
        } else {
            crate::linalg::to_f64_vec(&noise.standard_normal(m, d, DType::F64, &Device::Cpu)?)?
        };
        let objective = Objective { model, eps, m, d, dtype, device, memo: Memo::default(), last: RefCell::new(None) };
        let eta0: Vec<f64> = loc.iter().copied().chain(scale.iter().map(|s| s.ln())).collect();
        objective.value_and_gradient(&eta0).map_err(bad_start)?;
        let names = coordinate_names(&latents_of(model));
        let eta_names: Vec<String> =
            names.iter().map(|n| format!("μ({n})")).chain(names.iter().map(|n| format!("log σ({n})"))).collect();
        let method_name = "DADVI (L-BFGS on −ELBO_M)";
        // the objective's Hessian checks the answer with linear response on, and finishes a run
        // that stopped short in any case
        let hessian_evaluations = Cell::new(0);
        let mut hessian_at = |eta: &[f64], _: Option<&Curvature>| -> Result<Curvature> {
            hessian_evaluations.set(hessian_evaluations.get() + 4 * d);
            let (hessian, inverse) = objective.hessian(eta, &eta_names)?;
            Ok(Curvature { hessian, inverse })
        };
        let check = self.linear_response;
        let (mut found, finished) =
            minimize(&objective, eta0, &self.lbfgs, method_name, &eta_names, check, &mut hessian_at)?;
        let hessian_evaluations = hessian_evaluations.get();
        let inverse = finished.filter(|_| check).map(|f| f.curvature.inverse);
        let eta = found.x;
        let before = objective.evaluations();
        objective.value_and_gradient(&eta)?; // usually the last point: then nothing is evaluated
        found.convergence.evaluations += objective.evaluations() - before;
        let (log_p, grads) = objective.per_draw(&eta)?;
        let units = objective.units(&eta, &log_p, &grads, self.antithetic);
        let entropy = eta[d..].iter().sum::<f64>() + d as f64 * (0.5 + HALF_LN_2PI);
        let elbo = -found.value + d as f64 * (0.5 + HALF_LN_2PI);
        let (_, se) = crate::report::mean_se(&units.iter().map(|u| u.0 + entropy).collect::<Vec<_>>());
        let linear_response = inverse.map(|inverse| LinearResponse::new(&inverse, &units, d));
        let sigma: Vec<f64> = eta[d..].iter().map(|w| w.exp()).collect();
        let q = MeanFieldGaussian::new(&eta[..d], &sigma, ScaleLink::Log, dtype, &objective.device)?;
        let c = found.convergence;
        let method = Method::Dadvi {
            draws: m,
            antithetic: self.antithetic,
            lbfgs: c.clone(),
            hessian_evaluations,
            elbo,
            elbo_se: se,
        };
        let trace = found.trace.iter().map(|f| -f + d as f64 * (0.5 + HALF_LN_2PI)).collect();
        let fit = self.reporting.fit(q, model, method, c.iterations, trace, started.elapsed())?;
        Ok(DadviFit { fit, names, eps: objective.eps, elbo, elbo_se: se, linear_response, start })
    }

    /// μ and σ at the start, and where that is: the mode found by [`Dadvi::init_map`]'s search
    /// (or [`Map::new`]'s, from `init_loc` / `init_value`), σᵢ = 1/√Hᵢᵢ from its Hessian; if that
    /// search fails and was not asked for by name, the point itself, σ = `init_scale`.
    fn starting_point<M: LogJoint + ?Sized>(
        &self,
        model: &M,
        dtype: DType,
        device: &Device,
    ) -> Result<(Vec<f64>, Vec<f64>, DadviStart)> {
        let loc = self.start.point(model)?;
        let scale = vec![self.init_scale; loc.len()];
        let map = match (&self.init_map, self.init_at_mode) {
            (Some(map), _) => map.clone(),
            (None, true) => Map::new(),
            (None, false) => return Ok((loc, scale, DadviStart::Point { map_failed: None })),
        };
        match map.dtype(dtype).device(device.clone()).init_loc(loc.clone()).fit(model) {
            Ok(mode) => {
                let d = loc.len();
                let scale = match mode.hessian() {
                    Some(h) => (0..d).map(|i| 1.0 / h[i * d + i].sqrt()).collect(),
                    None => scale,
                };
                let c = mode.convergence();
                let start =
                    DadviStart::Mode { evaluations: c.evaluations, hessian_evaluations: mode.hessian_evaluations() };
                Ok((mode.loc().to_vec(), scale, start))
            }
            Err(e) if self.init_map.is_none() => {
                Ok((loc, scale, DadviStart::Point { map_failed: Some(e.to_string()) }))
            }
            Err(e) => Err(e),
        }
    }
}

impl fmt::Display for DadviStart {
    /// `at the mode, σᵢ = 1/√Hᵢᵢ (MAP search: 25 gradient evaluations of log p + 8 for Hessians, one
    /// draw each)`, or `at the point, σ = init_scale (the MAP search failed: …)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DadviStart::Mode { evaluations, hessian_evaluations } => write!(
                f,
                "at the mode, σᵢ = 1/√Hᵢᵢ (MAP search: {evaluations} gradient evaluations of log p + \
                 {hessian_evaluations} for Hessians, one draw each)"
            ),
            DadviStart::Point { map_failed: None } => write!(f, "at the point, σ = init_scale"),
            DadviStart::Point { map_failed: Some(why) } => {
                write!(f, "at the point, σ = init_scale (the MAP search failed: {why})")
            }
        }
    }
}

/// Where a DADVI fit started.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum DadviStart {
    /// At the posterior mode in z, σᵢ = 1/√Hᵢᵢ from the Hessian H of −log p there (the
    /// mean-field optimum for a Gaussian posterior), or `init_scale` for a MAP search without the
    /// curvature check.
    Mode {
        /// Evaluations of log p(x, z) and its gradient (one draw each) of the search.
        evaluations: usize,
        /// Gradient evaluations behind its Hessians.
        hessian_evaluations: usize,
    },
    /// At `init_loc` / `init_value` (default 0), σ = `init_scale`.
    Point {
        /// Why the default start at the mode could not be used (the MAP search's error), if it was
        /// tried.
        map_failed: Option<String>,
    },
}

/// η, with log p(x, z_m) `[M]` and ∇ log p(x, z_m) `[M, D]` at it.
type PerDraw = (Vec<f64>, Vec<f64>, Vec<f64>);

/// −ELBO_M(η) on the fixed draws, with its gradient from ∇_z log p of every draw.
struct Objective<'a, M: ?Sized> {
    model: &'a M,
    /// ε, row-major [M, D].
    eps: Vec<f64>,
    m: usize,
    d: usize,
    dtype: DType,
    device: Device,
    memo: Memo,
    /// The per-draw log p and ∇ log p of the last evaluation, with its η.
    last: RefCell<Option<PerDraw>>,
}

impl<M: LogJoint + ?Sized> Objective<'_, M> {
    /// z_m = μ + σ ⊙ ε_m for every η of `etas` (row-major [K, 2D]) and draw: [K·M, D].
    fn points(&self, etas: &[f64]) -> Vec<f64> {
        let (d, m) = (self.d, self.m);
        let mut z = Vec::with_capacity(etas.len() / 2 * m);
        for eta in etas.chunks(2 * d) {
            let sigma: Vec<f64> = eta[d..].iter().map(|w| w.exp()).collect();
            for e in self.eps.chunks(d) {
                z.extend((0..d).map(|i| eta[i] + sigma[i] * e[i]));
            }
        }
        z
    }

    /// log p(x, z_m) `[M]` and ∇ log p(x, z_m) `[M, D]` at η (from the last evaluation if it was at η,
    /// as after [`Smooth::value_and_gradient`] at η).
    fn per_draw(&self, eta: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        if let Some((at, lp, g)) = &*self.last.borrow() {
            if at == eta {
                return Ok((lp.clone(), g.clone()));
            }
        }
        log_joint_and_grad(self.model, &self.points(eta), self.d, self.dtype, &self.device)
    }

    /// −ELBO_M (without its constant) and its gradient from the per-draw values.
    fn value_and_gradient_from(&self, eta: &[f64], log_p: &[f64], grads: &[f64]) -> Result<(f64, Vec<f64>)> {
        let (d, m) = (self.d, self.m as f64);
        if let Some(k) = log_p.iter().position(|v| !v.is_finite()) {
            return Err(Error::ModelOutput {
                problem: format!(
                    "returned {} at draw {k} of q, z = {}",
                    log_p[k],
                    short(&self.points(eta)[k * d..(k + 1) * d])
                ),
            });
        }
        if let Some(k) = grads.iter().position(|v| !v.is_finite()) {
            return Err(Error::ModelOutput {
                problem: format!("has a non-finite gradient in coordinate {} at draw {} of q", k % d, k / d),
            });
        }
        let value = -log_p.iter().sum::<f64>() / m - eta[d..].iter().sum::<f64>();
        let mut gradient = vec![0.0; 2 * d];
        for (g, e) in grads.chunks(d).zip(self.eps.chunks(d)) {
            for i in 0..d {
                gradient[i] -= g[i] / m;
                gradient[d + i] -= g[i] * e[i] / m;
            }
        }
        for i in 0..d {
            gradient[d + i] = gradient[d + i] * eta[d + i].exp() - 1.0;
        }
        Ok((value, gradient))
    }

    /// Per unit (draw, or antithetic pair): log p and the gradient of −(log p + Σω) in η at η̂.
    fn units(&self, eta: &[f64], log_p: &[f64], grads: &[f64], antithetic: bool) -> Vec<(f64, Vec<f64>)> {
        let d = self.d;
        let per_draw: Vec<(f64, Vec<f64>)> = (0..self.m)
            .map(|k| {
                let (g, e) = (&grads[k * d..(k + 1) * d], &self.eps[k * d..(k + 1) * d]);
                let mut u: Vec<f64> = g.iter().map(|x| -x).collect();
                u.extend((0..d).map(|i| -g[i] * e[i] * eta[d + i].exp() - 1.0));
                (log_p[k], u)
            })
            .collect();
        if !antithetic {
            return per_draw;
        }
        let half = self.m / 2;
        (0..half)
            .map(|k| {
                let (a, b) = (&per_draw[k], &per_draw[k + half]);
                (0.5 * (a.0 + b.0), a.1.iter().zip(&b.1).map(|(x, y)| 0.5 * (x + y)).collect())
            })
            .collect()
    }

    /// The Hessian of −ELBO_M at η by central differences, and its inverse.
    fn hessian(&self, eta: &[f64], names: &[String]) -> Result<(Hessian, Vec<f64>)> {
        let (d, n) = (self.d, eta.len());
        // steps on the scale of q (σ for μ, 1 for log σ) when its sds are far from 1
        let scale: Vec<f64> = eta[d..].iter().map(|w| w.exp()).chain(std::iter::repeat_n(1.0, d)).collect();
        let (h, points) = if scale.iter().any(|s| !(0.25..=4.0).contains(s)) {
            stencil_scaled(eta, &scale, dtype_epsilon(self.dtype))
        } else {
            stencil(eta, dtype_epsilon(self.dtype))
        };
        // a few stencil points per batch, so that a batch holds about 2²⁰ numbers of z
        let per_batch = ((1usize << 20) / (self.m * d).max(1)).max(1);
        let mut grads = Vec::with_capacity(2 * n * n);
        for batch in points.chunks(per_batch * n) {
            let (lp, g) = log_joint_and_grad(self.model, &self.points(batch), d, self.dtype, &self.device)?;
            for (k, eta_k) in batch.chunks(n).enumerate() {
                let rows = k * self.m..(k + 1) * self.m;
                let (_, grad) =
                    self.value_and_gradient_from(eta_k, &lp[rows.clone()], &g[rows.start * d..rows.end * d])?;
                grads.extend(grad);
            }
        }
        let hessian = Hessian::from_stencil(&h, &grads, dtype_epsilon(self.dtype));
        let inverse = hessian.inverse(
            &format!("the Hessian of the DADVI objective −ELBO_M(μ, log σ) at η = {}", short(eta)),
            names,
            "The objective is flat or curves the wrong way along that direction: the posterior may be improper \
             there (give those latents a proper prior), or the fixed draws too few to pin it down (more `.draws(…)`).",
        )?;
        Ok((hessian, inverse))
    }
}

impl<M: LogJoint + ?Sized> Smooth for Objective<'_, M> {
    fn value_and_gradient(&self, eta: &[f64]) -> Result<(f64, Vec<f64>)> {
        self.memo.get(eta, || {
            let (log_p, grads) = log_joint_and_grad(self.model, &self.points(eta), self.d, self.dtype, &self.device)?;
            let out = self.value_and_gradient_from(eta, &log_p, &grads)?;
            *self.last.borrow_mut() = Some((eta.to_vec(), log_p, grads));
            Ok(out)
        })
    }
    fn evaluations(&self) -> usize {
        self.memo.evaluations.get()
    }
    fn epsilon(&self) -> f64 {
        dtype_epsilon(self.dtype)
    }
}

#[derive(Clone, Debug)]
struct LinearResponse {
    /// [H⁻¹]_μμ, row-major D×D.
    cov: Vec<f64>,
    /// Standard errors of μ̂ for the choice of draws.
    mean_se: Vec<f64>,
}

impl LinearResponse {
    /// [H⁻¹]_μμ from `inverse` = H⁻¹ (row-major 2D×2D), and the sandwich standard errors of μ̂ from
    /// the per-unit gradients: Cov(η̂) ≈ H⁻¹ V H⁻¹ / U.
    fn new(inverse: &[f64], units: &[(f64, Vec<f64>)], d: usize) -> Self {
        let n = 2 * d;
        let cov: Vec<f64> = (0..d * d).map(|k| inverse[(k / d) * n + k % d]).collect();
        let cov = (0..d * d).map(|k| 0.5 * (cov[k] + cov[(k % d) * d + k / d])).collect();
        let u = units.len() as f64;
        let mean: Vec<f64> = (0..n).map(|i| units.iter().map(|(_, g)| g[i]).sum::<f64>() / u).collect();
        let mut v = vec![0.0; n * n];
        for (_, g) in units {
            for i in 0..n {
                for j in 0..n {
                    v[i * n + j] += (g[i] - mean[i]) * (g[j] - mean[j]) / (u - 1.0);
                }
            }
        }
        let mean_se = (0..d)
            .map(|i| {
                let row = &inverse[i * n..(i + 1) * n]; // (H⁻¹)ᵢ·, and H⁻¹ is symmetric
                let var: f64 = (0..n).map(|a| (0..n).map(|b| row[a] * v[a * n + b] * row[b]).sum::<f64>()).sum();
                (var / u).max(0.0).sqrt()
            })
            .collect();
        LinearResponse { cov, mean_se }
    }
}

/// A deterministic-ADVI fit: the mean-field [`Fit`] (report, summaries, draws, k̂), the ELBO on the
/// fixed draws with its standard error, and the linear-response covariances.
#[derive(Clone, Debug)]
pub struct DadviFit {
    fit: Fit<MeanFieldGaussian>,
    names: Vec<String>,
    eps: Vec<f64>,
    elbo: f64,
    elbo_se: f64,
    linear_response: Option<LinearResponse>,
    start: DadviStart,
}

impl DadviFit {
    /// The mean-field fit: mean, covariance (the raw, under-dispersed mean-field variances),
    /// summary, draws, the ELBO on fresh draws and k̂.
    pub fn fit(&self) -> &Fit<MeanFieldGaussian> {
        &self.fit
    }

    /// The mean-field fit, by value.
    pub fn into_fit(self) -> Fit<MeanFieldGaussian> {
        self.fit
    }

    /// ε₁ … ε_M, the draws the objective was fixed on (row-major `[M, D]`; with antithetic pairs
    /// the second half is the first negated).
    pub fn fixed_draws(&self) -> &[f64] {
        &self.eps
    }

    /// Where the optimisation started: at the mode (and what the search cost), or at a point.
    pub fn start(&self) -> &DadviStart {
        &self.start
    }

    /// The maximised ELBO on the M fixed draws.
    pub fn elbo_on_draws(&self) -> f64 {
        self.elbo
    }

    /// The standard error of [`DadviFit::elbo_on_draws`] for the choice of draws.
    pub fn elbo_on_draws_se(&self) -> f64 {
        self.elbo_se
    }

    /// The standard errors of the means μ̂ (unconstrained, length D) for the choice of draws: how
    /// much μ̂ would move with another seed (the sandwich H⁻¹ V H⁻¹ / M). `None` with linear
    /// response off.
    pub fn mean_se(&self) -> Option<&[f64]> {
        self.linear_response.as_ref().map(|lr| lr.mean_se.as_slice())
    }

    /// The linear-response covariance of z (unconstrained, row-major D×D), [H⁻¹]_μμ. `None` with
    /// linear response off.
    pub fn linear_response_covariance(&self) -> Option<&[f64]> {
        self.linear_response.as_ref().map(|lr| lr.cov.as_slice())
    }

    /// N(μ̂, Cov_LR) as a full-rank q, for draws and summaries with the corrected covariances.
    pub fn linear_response_q(&self) -> Result<FullRankGaussian> {
        let cov = self.linear_response_covariance().ok_or_else(|| {
            Error::config("linear_response", false, "this fit has no linear-response covariance: turn it on")
        })?;
        let q = self.fit.q();
        let loc = crate::linalg::to_f64_vec(&crate::VariationalFamily::loc(q)?)?;
        FullRankGaussian::from_mean_cov(&loc, cov, ScaleLink::Log, crate::VariationalFamily::dtype(q), &Device::Cpu)
    }

    /// `n` draws from N(μ̂, Cov_LR), mapped to the constrained space by name (seeded like
    /// [`Fit::draws`]).
    pub fn linear_response_draws(&self, n: usize) -> Result<Draws> {
        let q = self.linear_response_q()?;
        let d = crate::VariationalFamily::dim(&q);
        let eps = Noise::new(self.fit.seed(), Stream::Draws).standard_normal(
            n,
            d,
            crate::VariationalFamily::dtype(&q),
            &Device::Cpu,
        )?;
        let z: Tensor = crate::VariationalFamily::rsample(&q, &eps)?.detach();
        Draws::from_unconstrained(self.fit.latents(), &z)
    }
}

impl fmt::Display for DadviFit {
    /// The fit's report and summary, where it started, then the means with their standard errors
    /// and the mean-field and linear-response sds of the unconstrained coordinates.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.fit)?;
        write!(f, "\nstart: {}", self.start)?;
        let Some(lr) = &self.linear_response else { return Ok(()) };
        let (Ok(loc), Ok(cov)) = (
            crate::VariationalFamily::loc(self.fit.q()).and_then(|t| crate::linalg::to_f64_vec(&t)),
            crate::Gaussian::covariance(self.fit.q()).and_then(|t| crate::linalg::to_f64_vec(&t)),
        ) else {
            return Ok(());
        };
        let d = loc.len();
        let width = self.names.iter().take(20).map(|n| n.chars().count()).max().unwrap_or(4).max(10);
        writeln!(f, "\nunconstrained z: mean ± s.e. for the choice of draws; mean-field and linear-response sd")?;
        writeln!(f, "{:<width$}  {:>10}  {:>9}  {:>9}  {:>9}", "coordinate", "mean", "s.e.", "sd MF", "sd LR")?;
        for i in 0..d.min(20) {
            writeln!(
                f,
                "{:<width$}  {:>10.4}  {:>9.2e}  {:>9.4}  {:>9.4}",
                self.names[i],
                loc[i],
                lr.mean_se[i],
                cov[i * d + i].sqrt(),
                lr.cov[i * d + i].sqrt()
            )?;
        }
        if d > 20 {
            writeln!(f, "… ({} more)", d - 20)?;
        }
        Ok(())
    }
}
