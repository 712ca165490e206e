//! Conjugate Bayesian linear regression with known noise.
//!
//! ```text
//! w_d ~ N(0, τ²),   y_i ~ N(x_iᵀ w, σ²)                      (τ = prior_sd, σ = noise_sd)
//! posterior:  w | y ~ N(m, Σ),  Σ⁻¹ = XᵀX / σ² + I / τ²,  m = Σ Xᵀ y / σ²
//! evidence:   log p(y) = log p(y, m) + D/2 · log 2π − ½ log det Σ⁻¹
//! ```
//!
//! There is no intercept (as in the peers' `linreg`): the likelihood is
//! [`elbo::glm::GlmLikelihood`]'s fused Normal-identity op without its intercept, so z = w, with the
//! prior in the same op ([`elbo::glm::GlmLikelihood::log_joint_normal_prior`]); its backward pass
//! computes the gradient for w only, never for X.

use candle_core::{DType, Device, Tensor};
use elbo::glm::GlmLikelihood;
use elbo::linalg::{self, to_f64_vec};
use elbo::special::HALF_LN_2PI;
use elbo::{LogJoint, Result};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::data::{check_design, check_sd};

/// y ~ N(X w, σ² I) with w ~ N(0, τ² I); the latent vector z is w (length D).
///
/// ```
/// use elbo::prelude::*;
/// use elbo_models::LinearRegression;
///
/// let (model, true_w) = LinearRegression::simulate(100, 3, 7)?; // F64 on the CPU
/// let exact = model.exact_posterior()?;
/// let fit = Advi::new(FullRank).dtype(DType::F64).samples(8).steps(3_000)
///     .lr_schedule(LrSchedule::Exponential { final_lr: 1e-4 }).fit(&model)?;
/// let mean = fit.mean()?.to_vec1::<f64>()?;
/// for i in 0..3 {
///     let sd = exact.cov[i * 3 + i].sqrt();
///     assert!((mean[i] - exact.mean[i]).abs() < 0.1 * sd);
/// }
/// // log p(y) − ELBO = KL(q ‖ posterior) ≥ 0, and small at the optimum
/// assert!(exact.log_evidence - fit.elbo() > -3.0 * fit.elbo_se());
/// assert!(exact.log_evidence - fit.elbo() < 0.05);
/// # let _ = true_w;
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct LinearRegression {
    x_t: Tensor,
    y: Tensor,
    prior_sd: f64,
    noise_sd: f64,
    likelihood: GlmLikelihood,
}

/// The exact Gaussian posterior N(mean, cov) and the log evidence log p(y).
#[derive(Clone, Debug)]
pub struct ExactPosterior {
    /// m, length D.
    pub mean: Vec<f64>,
    /// Σ, D×D row-major.
    pub cov: Vec<f64>,
    /// Σ⁻¹, D×D row-major.
    pub precision: Vec<f64>,
    /// log p(y).
    pub log_evidence: f64,
}

impl LinearRegression {
    /// The model for design `x` `[N, D]` and response `y` `[N]` (one float dtype, one device).
    pub fn new(x: &Tensor, y: &Tensor, prior_sd: f64, noise_sd: f64) -> Result<Self> {
        elbo::runtime::default_threads(); // before the first large op sizes candle's thread pool
        check_design("LinearRegression", x, y)?;
        check_sd("prior_sd", prior_sd)?;
        check_sd("noise_sd", noise_sd)?;
        let likelihood = GlmLikelihood::normal_identity(x, y, noise_sd)?.without_intercept();
        Ok(LinearRegression { x_t: x.t()?.contiguous()?, y: y.clone(), prior_sd, noise_sd, likelihood })
    }

    /// Simulated data: X ~ N(0, 1) `[n, d]`, true w ~ N(0, 1), y = X w + σ ε, with τ = 10, σ = 1,
    /// in F64 on the CPU. Returns the model and the true w.
    pub fn simulate(n: usize, d: usize, seed: u64) -> Result<(Self, Vec<f64>)> {
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
        let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
        let x: Vec<f64> = (0..n * d).map(|_| normal()).collect();
        let w: Vec<f64> = (0..d).map(|_| normal()).collect();
        let y: Vec<f64> = (0..n).map(|i| (0..d).map(|j| x[i * d + j] * w[j]).sum::<f64>() + normal()).collect();
        let x = Tensor::from_vec(x, (n, d), &Device::Cpu)?;
        let y = Tensor::from_vec(y, n, &Device::Cpu)?;
        Ok((LinearRegression::new(&x, &y, 10.0, 1.0)?, w))
    }

    /// The same model with its data in `dtype` on `device`.
    pub fn to(&self, dtype: DType, device: &Device) -> Result<Self> {
        let x = self.x_t.t()?.to_dtype(dtype)?.to_device(device)?;
        LinearRegression::new(&x, &self.y.to_dtype(dtype)?.to_device(device)?, self.prior_sd, self.noise_sd)
    }

    /// The exact posterior and log evidence, computed on the host in f64.
    pub fn exact_posterior(&self) -> Result<ExactPosterior> {
        let (d, n) = self.x_t.dims2()?;
        let xt = to_f64_vec(&self.x_t)?;
        let y = to_f64_vec(&self.y)?;
        let (s2, t2) = (self.noise_sd.powi(2), self.prior_sd.powi(2));
        let mut precision = vec![0.0; d * d];
        for a in 0..d {
            for b in 0..d {
                let dot: f64 = (0..n).map(|i| xt[a * n + i] * xt[b * n + i]).sum();
                precision[a * d + b] = dot / s2 + if a == b { 1.0 / t2 } else { 0.0 };
            }
        }
        let cov = linalg::spd_inverse(&precision, d)?;
        let xty: Vec<f64> = (0..d).map(|a| (0..n).map(|i| xt[a * n + i] * y[i]).sum::<f64>() / s2).collect();
        let mean: Vec<f64> = (0..d).map(|a| (0..d).map(|b| cov[a * d + b] * xty[b]).sum()).collect();
        let m =
            Tensor::from_slice(&mean, (1, d), &Device::Cpu)?.to_dtype(self.y.dtype())?.to_device(self.y.device())?;
        let log_joint_at_mean = to_f64_vec(&self.log_joint(&m)?)?[0];
        let log_evidence = log_joint_at_mean + d as f64 * HALF_LN_2PI - 0.5 * linalg::spd_log_det(&precision, d)?;
        Ok(ExactPosterior { mean, cov, precision, log_evidence })
    }
}

impl LogJoint for LinearRegression {
    fn dim(&self) -> usize {
        self.x_t.dim(0).unwrap_or(0)
    }

    fn log_joint(&self, w: &Tensor) -> candle_core::Result<Tensor> {
        self.likelihood.log_joint_normal_prior(w, self.prior_sd)
    }
}
