//! low_dim_gauss_mix-low_dim_gauss_mix: a two-component mixture of univariate normals.
//!
//! ```text
//! p(y_n | μ, σ, θ) = θ N(y_n | μ₁, σ₁²) + (1 − θ) N(y_n | μ₂, σ₂²),   n = 1 … N = 1000
//! μ_k ~ N(0, 2²) (on μ₁ < μ₂),  σ_k ~ HalfNormal(2):  ln 2 + ln N(σ_k | 0, 2²),  θ ~ Beta(5, 5)
//! unconstrained: μ₁ = a, μ₂ = a + e^b (log-Jacobian b); σ_k = e^{s_k} (s_k); θ = σ(t)
//! (ln θ + ln(1 − θ))                                                                 D = 5
//! ```
//!
//! The ordering μ₁ < μ₂ identifies the components (no label switching). The likelihood is
//! [`elbo::mixture::MixtureLikelihood`] with D = 1 and the weights (θ, 1 − θ): on the CPU one fused
//! op with its gradient in closed form. The latents are `mu` (ordered `[2]`), `sigma` (positive
//! `[2]`) and `theta` (in (0, 1)).
//!
//! What makes it hard: three constraint types and a log-sum-exp per point. The components are well
//! apart (μ ≈ −2.73 and 2.87), so the posterior has one near-Gaussian mode, but a start with both
//! means on one side, or a large σ, can settle where one component covers all the data.

use candle_core::{DType, Device, Tensor};
use elbo::dist::{Beta, Distribution, HalfNormal, Normal};
use elbo::mixture::MixtureLikelihood;
use elbo::{Latents, Model, Result, Values};

use super::data::Data;

/// The two-component normal mixture (module doc); latents `mu` (ordered `[2]`), `sigma`
/// (positive `[2]`) and `theta` (in (0, 1)).
#[derive(Clone, Debug)]
pub struct GaussMix {
    /// The likelihood with the data in f64 and in f32 (it takes values of the data's dtype).
    likelihood_f64: MixtureLikelihood,
    likelihood_f32: MixtureLikelihood,
    latents: Latents,
}

impl GaussMix {
    /// The model for posteriordb's `low_dim_gauss_mix` data (`N`, `y`).
    pub fn new(data: &Data) -> Result<Self> {
        let n = data.int("N")?;
        let y = Tensor::from_vec(data.reals("y", n)?, (n, 1), &Device::Cpu)?;
        Ok(GaussMix {
            likelihood_f64: MixtureLikelihood::new(&y)?,
            likelihood_f32: MixtureLikelihood::new(&y.to_dtype(DType::F32)?)?,
            latents: Latents::new().ordered("mu", [2]).positive("sigma", [2]).interval("theta", (), 0.0, 1.0),
        })
    }

    /// Σ_n ln p(y_n | μ, σ, θ) for μ, σ `[S, 2]` and θ `[S]`, `[S]`.
    fn log_likelihood(&self, mu: &Tensor, sigma: &Tensor, theta: &Tensor) -> candle_core::Result<Tensor> {
        let s = mu.dim(0)?;
        let weights = Tensor::stack(&[theta, &theta.affine(-1.0, 1.0)?], 1)?; // (θ, 1 − θ), [S, 2]
        let (log_w, mu, log_sigma) = (weights.log()?, mu.reshape((s, 2, 1))?, sigma.log()?);
        let likelihood = match mu.dtype() {
            DType::F32 => &self.likelihood_f32,
            _ => &self.likelihood_f64,
        };
        if matches!(mu.device(), Device::Cpu) {
            likelihood.log_likelihood(&log_w, &mu, &log_sigma)
        } else {
            // the likelihood's data live on the CPU: a copy on the values' device
            let y = likelihood.x().to_device(mu.device())?;
            MixtureLikelihood::new(&y).map_err(candle_core::Error::wrap)?.log_likelihood(&log_w, &mu, &log_sigma)
        }
    }
}

impl Model for GaussMix {
    fn latents(&self) -> &Latents {
        &self.latents
    }

    fn log_density(&self, v: &Values<'_>) -> candle_core::Result<Tensor> {
        let (mu, sigma, theta) = (v.get("mu")?, v.get("sigma")?, v.get("theta")?);
        let prior = ((Normal::new(0.0, 2.0)?.log_prob(mu)?.sum(1)?
            + HalfNormal::new(2.0)?.log_prob(sigma)?.sum(1)?)?
            + Beta::new(5.0, 5.0)?.log_prob(theta)?)?;
        prior + self.log_likelihood(mu, sigma, theta)?
    }
}
