//! Fused log-likelihoods of generalised linear models, with the gradient for the coefficients only.
//!
//! ```text
//! z = (w_1, …, w_D, b)   one row per draw, z: [S, D + 1]   (z = w, [S, D], without an intercept)
//! η_si = Σ_d X_id w_sd + b_s                         (X: [N, D], y: [N], data)
//! log p(y | η_s) = Σ_i ℓ(y_i, η_si)                  → [S]
//! ∂/∂w_s = Xᵀ r_s,   ∂/∂b_s = Σ_i r_si,   r_si = ∂ℓ/∂η (y_i, η_si)
//!
//! Bernoulli-logit:   ℓ = y η − softplus(η),                     r = y − σ(η)
//! Normal-identity:   ℓ = −½ (y − η)²/σ² − ln σ − ½ ln 2π,       r = (y − η)/σ²
//! Poisson-log:       ℓ = y η − e^η − ln y!,                      r = y − e^η
//! ```
//!
//! [`GlmLikelihood::log_joint_normal_prior`] adds i.i.d. priors z_k ~ N(0, τ²) in the same op (value
//! Σ_k −½ z_k²/τ² − ln τ − ½ ln 2π, gradient −z/τ²): the log joint of a Bayesian GLM.
//!
//! softplus(η) = max(η, 0) + ln(1 + e^(−|η|)) is finite for every finite η. The constants (the
//! Normal's −N (ln σ + ½ ln 2π), the Poisson's −Σ ln y_i!) are summed once, on the host, when the
//! likelihood is made. Poisson: e^η overflows f64 for η > ln(f64::MAX) ≈ 709.78 (f32 results: the
//! value leaves f32's range already for e^η > 3.4e38, η ≈ 88.7); then, as with libm's `exp`, the
//! value is −∞ and the gradient not finite, which an ADVI step reports as a non-finite log joint
//! and skips. η below −708 is taken as −708 inside e^η (e^(−708) ≈ 3e-308 instead of a subnormal).
//!
//! On the CPU in f32 and f64 the likelihood is one custom op (`src/kernels/glm.rs`) that reads Xᵀ
//! once, in blocks of 256 points (which stay in cache for all S draws): per block η, the value and
//! r, then Xᵀ r. The gradient is computed in the forward pass and kept for the backward pass, which
//! only scales it by the incoming gradient (so a forward pass without a backward one does the
//! gradient's work for nothing). candle's autodiff through `z.matmul(Xᵀ)` would also compute the
//! gradient with respect to the design matrix (a second [S, N] × [N, D] product and an [N, D]
//! buffer) that nobody uses; here there is none. e^x and ln(1 + t) are branch-free polynomials
//! (`src/kernels/simd.rs`, accurate to a few ulps in f64) so that the pass over the data points runs
//! in AVX2 registers, or AVX-512 ones with the `avx512` feature on a CPU that has them: the same
//! operations in the same order on each path, so the same bits (sums run in eight lanes on all of
//! them). Sums are accumulated in f64 in both dtypes (f32 results are rounded once at the end). On
//! every other device and dtype the likelihood is the same formula as a composition of candle ops
//! ([`crate::special::softplus`]), differentiated by autodiff.

use std::sync::Arc;

use candle_core::{bail, DType, Device, Tensor, D};

use crate::kernels::glm::{self as kernel, GlmData, NormalPrior, Response};
use crate::special::{softplus, HALF_LN_2PI};
use crate::{Error, Result};

/// The response distribution and link of a [`GlmLikelihood`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Glm {
    /// y ∈ {0, 1} (or [0, 1]) with P(y = 1) = σ(η): log p = y η − softplus(η).
    BernoulliLogit,
    /// y ∈ ℝ with y ~ N(η, sd²), sd > 0 known: log p = −½ ((y − η)/sd)² − ln sd − ½ ln 2π.
    NormalIdentity {
        /// The noise standard deviation σ.
        sd: f64,
    },
    /// y ∈ {0, 1, 2, …} with y ~ Poisson(e^η): log p = y η − e^η − ln y!.
    PoissonLog,
}

/// The design matrix and response of a GLM, and its log-likelihood as a function of the
/// coefficients z = (w, b), or z = w for a model without an intercept (formulas in the module doc).
///
/// ```
/// use elbo::glm::GlmLikelihood;
/// use candle_core::{Device, Tensor};
///
/// // one point x = 0, y = 1: log p = log σ(b)
/// let x = Tensor::new(&[[0.0f64]], &Device::Cpu)?;
/// let y = Tensor::new(&[1.0f64], &Device::Cpu)?;
/// let lik = GlmLikelihood::bernoulli_logit(&x, &y)?;
/// let z = Tensor::new(&[[0.7f64, 0.0]], &Device::Cpu)?; // w = 0.7, b = 0
/// let lp = lik.log_likelihood(&z)?.to_vec1::<f64>()?[0];
/// assert!((lp - 0.5f64.ln()).abs() < 1e-15);
///
/// // y ~ N(x w, 2²) without an intercept: z = w alone
/// let x = Tensor::new(&[[1.0f64], [2.0]], &Device::Cpu)?;
/// let y = Tensor::new(&[1.0f64, 3.0], &Device::Cpu)?;
/// let lik = GlmLikelihood::normal_identity(&x, &y, 2.0)?.without_intercept();
/// assert_eq!(lik.dim(), 1);
/// let lp = lik.log_likelihood(&Tensor::new(&[[1.0f64]], &Device::Cpu)?)?.to_vec1::<f64>()?[0];
/// // residuals 0 and 1: −½ (1/2)² − 2 (ln 2 + ½ ln 2π)
/// let want = -0.125 - 2.0 * (2f64.ln() + 0.5 * (2.0 * std::f64::consts::PI).ln());
/// assert!((lp - want).abs() < 1e-14);
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GlmLikelihood {
    glm: Glm,
    /// Whether z ends with an intercept b.
    intercept: bool,
    /// Xᵀ, contiguous: [D, N].
    x_t: Tensor,
    y: Tensor,
    /// Σ_i of the terms of ℓ that depend on y_i only (module doc), in f64.
    constant: f64,
    /// Xᵀ and y on the host, for the fused op (CPU f32/f64 data only).
    host: Option<Arc<GlmData>>,
}

/// Checks a design matrix `x` `[N, D]` and responses `y` `[N]` for `model` (named in the errors):
/// N, D ≥ 1 and one float dtype for both; returns (N, D).
pub fn check_design(model: &str, x: &Tensor, y: &Tensor) -> Result<(usize, usize)> {
    let (n, d) = x.dims2().map_err(|_| Error::ModelOutput {
        problem: format!("{model}: the design matrix X must be 2-D [N, D]; it has shape {:?}", x.dims()),
    })?;
    if n == 0 || d == 0 {
        return Err(Error::EmptyData {
            what: format!("{model}: X has shape [{n}, {d}]; it needs at least one row and one column"),
        });
    }
    if y.dims() != [n] {
        return Err(Error::DimensionMismatch {
            what: format!("{model}: y (shape {:?})", y.dims()),
            expected: n,
            got: y.elem_count(),
        });
    }
    if x.dtype() != y.dtype() || !x.dtype().is_float() {
        return Err(Error::config(
            "dtype",
            format!("X {:?}, y {:?}", x.dtype(), y.dtype()),
            "X and y must share one float dtype",
        ));
    }
    Ok((n, d))
}

impl GlmLikelihood {
    /// The Bernoulli-logit likelihood for design `x` `[N, D]` and responses `y` `[N]` (in {0, 1},
    /// or in [0, 1]); both of one float dtype, on one device.
    pub fn bernoulli_logit(x: &Tensor, y: &Tensor) -> Result<Self> {
        Self::new(Glm::BernoulliLogit, x, y)
    }

    /// The Normal-identity likelihood y ~ N(η, sd²) for design `x` `[N, D]` and responses `y` `[N]`.
    pub fn normal_identity(x: &Tensor, y: &Tensor, sd: f64) -> Result<Self> {
        Self::new(Glm::NormalIdentity { sd }, x, y)
    }

    /// The Poisson-log likelihood y ~ Poisson(e^η) for design `x` `[N, D]` and counts `y` `[N]`
    /// (non-negative whole numbers, stored as floats).
    pub fn poisson_log(x: &Tensor, y: &Tensor) -> Result<Self> {
        Self::new(Glm::PoissonLog, x, y)
    }

    /// The likelihood of `glm` for design `x` `[N, D]` and responses `y` `[N]`, with an intercept
    /// (z = (w, b); see [`GlmLikelihood::without_intercept`]).
    pub fn new(glm: Glm, x: &Tensor, y: &Tensor) -> Result<Self> {
        check_design("GLM", x, y)?;
        if !x.device().same_device(y.device()) {
            return Err(Error::config(
                "device",
                format!("{:?} and {:?}", x.device(), y.device()),
                "X and y must be on one device",
            ));
        }
        let x_t = x.detach().t()?.contiguous()?;
        let y = y.detach().contiguous()?;
        let constant = match glm {
            Glm::BernoulliLogit => 0.0,
            Glm::NormalIdentity { sd } => {
                if !(sd > 0.0 && sd.is_finite()) {
                    return Err(Error::config("sd", sd, "the Normal GLM's sd must be positive and finite"));
                }
                -(y.dim(0)? as f64) * (sd.ln() + HALF_LN_2PI)
            }
            Glm::PoissonLog => {
                let counts = y.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                if let Some((i, c)) = counts.iter().enumerate().find(|(_, &c)| !(c >= 0.0 && c.fract() == 0.0)) {
                    return Err(Error::config(
                        "y",
                        format!("y[{i}] = {c}"),
                        "Poisson counts must be non-negative whole numbers",
                    ));
                }
                -counts.iter().map(|&c| statrs::function::gamma::ln_gamma(c + 1.0)).sum::<f64>()
            }
        };
        let host = match (x.device(), x.dtype()) {
            (Device::Cpu, DType::F64) => Some(GlmData::F64 { x_t: x_t.flatten_all()?.to_vec1()?, y: y.to_vec1()? }),
            (Device::Cpu, DType::F32) => Some(GlmData::F32 { x_t: x_t.flatten_all()?.to_vec1()?, y: y.to_vec1()? }),
            _ => None,
        };
        Ok(GlmLikelihood { glm, intercept: true, x_t, y, constant, host: host.map(Arc::new) })
    }

    /// The same likelihood without the intercept: η = X w, and z = w `[S, D]` (as in a regression
    /// through the origin, or one whose design already has a column of ones).
    pub fn without_intercept(mut self) -> Self {
        self.intercept = false;
        self
    }

    /// The response distribution and link.
    pub fn glm(&self) -> Glm {
        self.glm
    }

    /// Whether z ends with an intercept b (the default) or is w alone.
    pub fn has_intercept(&self) -> bool {
        self.intercept
    }

    /// The number of coefficients: D + 1 (the weights, then the intercept), or D without one.
    pub fn dim(&self) -> usize {
        self.x_t.dims()[0] + usize::from(self.intercept)
    }

    /// log p(y | X w_s + b_s) for each row z_s = (w_s, b_s) (or w_s) of `z` `[S, dim]`, giving `[S]`.
    ///
    /// Differentiable with respect to `z` (never X or y). On the CPU, with `z` of the data's dtype
    /// (f32 or f64), one fused op; otherwise a composition of candle ops (module doc).
    pub fn log_likelihood(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        self.apply(z, None)
    }

    /// The log joint of the Bayesian GLM with i.i.d. normal priors z_k ~ N(0, prior_sd²) on every
    /// coefficient (the intercept included): log p(y | X w_s + b_s) + Σ_k log N(z_sk; 0, prior_sd²),
    /// `[S]`. In the same fused op on the CPU (the prior adds −½ Σ z²/prior_sd² − dim (ln prior_sd +
    /// ½ ln 2π) and −z/prior_sd² to the gradient), which saves the prior's own candle ops and
    /// backward nodes, a large part of a small model's step; otherwise a composition.
    pub fn log_joint_normal_prior(&self, z: &Tensor, prior_sd: f64) -> candle_core::Result<Tensor> {
        if !(prior_sd > 0.0 && prior_sd.is_finite()) {
            bail!("GLM log joint: the prior sd must be positive and finite, not {prior_sd}");
        }
        self.apply(z, Some(prior_sd))
    }

    /// The log-likelihood, plus the normal prior of sd `prior` if given.
    fn apply(&self, z: &Tensor, prior: Option<f64>) -> candle_core::Result<Tensor> {
        let (_, k) = z.dims2().map_err(|_| {
            candle_core::Error::Msg(format!(
                "GLM log-likelihood: z must be [S, {}]; it has shape {:?}",
                self.dim(),
                z.dims()
            ))
        })?;
        if k != self.dim() {
            bail!("GLM log-likelihood: z has {k} columns; the design needs {}", self.dim());
        }
        if z.dtype() != self.y.dtype() {
            bail!("GLM log-likelihood: z is {:?}, the data {:?}", z.dtype(), self.y.dtype());
        }
        let prior = prior.map(|sd| normal_prior(sd, k));
        match (&self.host, z.device()) {
            (Some(host), Device::Cpu) => {
                let response = match self.glm {
                    Glm::BernoulliLogit => Response::BernoulliLogit,
                    Glm::NormalIdentity { sd } => Response::NormalIdentity { sd },
                    Glm::PoissonLog => Response::PoissonLog,
                };
                kernel::log_likelihood(z, response, self.constant, prior, host.clone())
            }
            _ => self.composite(z, prior),
        }
    }

    /// The same log-likelihood (plus the prior) as a composition of candle ops (the path off the CPU).
    fn composite(&self, z: &Tensor, prior: Option<NormalPrior>) -> candle_core::Result<Tensor> {
        let d = self.x_t.dims()[0];
        let mut eta = z.narrow(1, 0, d)?.matmul(&self.x_t)?; // [S, N]
        if self.intercept {
            eta = eta.broadcast_add(&z.narrow(1, d, 1)?)?;
        }
        let y = self.y.unsqueeze(0)?;
        let terms = match self.glm {
            Glm::BernoulliLogit => (eta.broadcast_mul(&y)? - softplus(&eta)?)?,
            Glm::NormalIdentity { sd } => (eta.broadcast_sub(&y)?.sqr()? * (-0.5 / (sd * sd)))?,
            Glm::PoissonLog => (eta.broadcast_mul(&y)? - eta.exp()?)?,
        };
        let likelihood = (terms.sum(D::Minus1)? + self.constant)?;
        match prior {
            Some(p) => likelihood + z.sqr()?.sum(D::Minus1)?.affine(-0.5 * p.precision, p.constant)?,
            None => Ok(likelihood),
        }
    }
}

/// i.i.d. N(0, sd²) priors on each of `k` coefficients: precision 1/sd², constant −k (ln sd + ½ ln 2π).
fn normal_prior(sd: f64, k: usize) -> NormalPrior {
    NormalPrior { precision: 1.0 / (sd * sd), constant: -(k as f64) * (sd.ln() + HALF_LN_2PI) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The composition (the path off the CPU, reached here directly) gives the fused op's values
    /// and gradients in f64 to rounding, for every GLM, with and without intercept and prior.
    #[test]
    fn composite_path_matches_the_fused_op() {
        let (n, d) = (37, 3);
        let x = Tensor::from_vec((0..n * d).map(|i| ((i as f64) * 0.61).sin() * 2.0).collect(), (n, d), &Device::Cpu)
            .unwrap();
        let z = Tensor::from_vec(
            (0..2 * (d + 1)).map(|i| ((i as f64) * 0.9).cos() * 0.7).collect(),
            (2, d + 1),
            &Device::Cpu,
        )
        .unwrap();
        let labels: Vec<f64> = (0..n).map(|i| (i % 2) as f64).collect();
        let reals: Vec<f64> = (0..n).map(|i| ((i as f64) * 1.3).cos() * 3.0).collect();
        let counts: Vec<f64> = (0..n).map(|i| (i % 4) as f64).collect();
        let glms = [(Glm::BernoulliLogit, labels), (Glm::NormalIdentity { sd: 0.8 }, reals), (Glm::PoissonLog, counts)];
        for (glm, y) in glms {
            let y = Tensor::from_vec(y, n, &Device::Cpu).unwrap();
            for intercept in [true, false] {
                let lik = GlmLikelihood::new(glm, &x, &y).unwrap();
                let lik = if intercept { lik } else { lik.without_intercept() };
                let z = z.narrow(1, 0, lik.dim()).unwrap().contiguous().unwrap();
                for prior_sd in [None, Some(2.0)] {
                    let run = |fused: bool| {
                        let v = candle_core::Var::from_tensor(&z).unwrap();
                        let out = if fused {
                            lik.apply(v.as_tensor(), prior_sd)
                        } else {
                            lik.composite(v.as_tensor(), prior_sd.map(|sd| normal_prior(sd, lik.dim())))
                        }
                        .unwrap();
                        let g = out.sum_all().unwrap().backward().unwrap();
                        let g = g.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
                        (out.to_vec1::<f64>().unwrap(), g)
                    };
                    let ((vf, gf), (vc, gc)) = (run(true), run(false));
                    for (a, b) in vf.iter().chain(&gf).zip(vc.iter().chain(&gc)) {
                        assert!(
                            (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                            "{glm:?}, intercept {intercept}, prior {prior_sd:?}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}
