//! arma-arma11: an ARMA(1, 1) series, its likelihood from the recursive one-step residuals.
//!
//! ```text
//! ν₁ = μ + φ μ,                      e₁ = y₁ − ν₁            (the error before y₁ is taken as 0)
//! ν_t = μ + φ y_{t−1} + θ e_{t−1},   e_t = y_t − ν_t,        t = 2 … T = 200
//! e_t ~ N(0, σ²) for all t;   μ ~ N(0, 10²),  φ ~ N(0, 2²),  θ ~ N(0, 2²),  σ ~ HalfCauchy(0, 2.5)
//! unconstrained: μ, φ, θ as is, σ = eˢ (log-Jacobian s, added by elbo)      D = 4
//! ```
//!
//! No stationarity or invertibility bound on φ and θ. The recursion is linear in e: with
//! c₁ = y₁ − μ − φ μ and c_t = y_t − μ − φ y_{t−1},
//!
//! ```text
//! e_t = c_t − θ e_{t−1} = Σ_{j=0}^{t−1} (−θ)ʲ c_{t−j}
//! ```
//!
//! which is computed as a scan in ⌈log₂ T⌉ = 8 rounds on `[S, T]` tensors (round r adds
//! (−θ)^(2ʳ) times the partial sums shifted by 2ʳ), not T sequential steps: the same sums in
//! another order, differentiated by autodiff. The latents are `mu`, `phi`, `theta` and `sigma`.
//!
//! What makes it hard: the likelihood is a polynomial of degree T − 1 in θ, and φ sits near the
//! unit root (0.957 ± 0.023); the posterior itself is close to Gaussian, so this mostly tests the
//! recursion and its gradient.

use candle_core::Tensor;
use elbo::dist::{Distribution, HalfCauchy, Normal};
use elbo::special::HALF_LN_2PI;
use elbo::{Latents, Model, Result, Values};

use super::data::{Data, DataTensor};

/// The ARMA(1, 1) model (module doc); latents `mu`, `phi`, `theta` and `sigma` (positive).
#[derive(Clone, Debug)]
pub struct Arma {
    /// y, [1, T].
    y: DataTensor,
    /// (0, y₁, …, y_{T−1}), [1, T]: the previous observation (none before y₁).
    y_lag: DataTensor,
    /// (1, 0, …, 0), [1, T]: where ν₁ takes φ μ in place of φ y₀.
    first: DataTensor,
    t: usize,
    latents: Latents,
}

impl Arma {
    /// The model for posteriordb's `arma` data (`T` ≥ 1, `y`).
    pub fn new(data: &Data) -> Result<Self> {
        let t = data.int("T")?;
        let y = data.reals("y", t)?;
        if t == 0 {
            return Err(elbo::Error::EmptyData { what: format!("{}: T = 0 observations", data.origin()) });
        }
        let y_lag: Vec<f64> = std::iter::once(0.0).chain(y[..t - 1].iter().copied()).collect();
        let first: Vec<f64> = (0..t).map(|i| f64::from(u8::from(i == 0))).collect();
        Ok(Arma {
            y: DataTensor::new(y, &[1, t])?,
            y_lag: DataTensor::new(y_lag, &[1, t])?,
            first: DataTensor::new(first, &[1, t])?,
            t,
            latents: Latents::new().real("mu", ()).real("phi", ()).real("theta", ()).positive("sigma", ()),
        })
    }

    /// The residuals e `[S, T]` for μ, φ, θ `[S]` (module doc).
    fn residuals(&self, mu: &Tensor, phi: &Tensor, theta: &Tensor) -> candle_core::Result<Tensor> {
        let (mu, phi) = (mu.unsqueeze(1)?, phi.unsqueeze(1)?); // [S, 1]
        let prediction = (phi.broadcast_mul(&self.y_lag.like(&mu)?)?
            + (&phi * &mu)?.broadcast_mul(&self.first.like(&mu)?)?)?
        .broadcast_add(&mu)?;
        let mut e = self.y.like(&mu)?.broadcast_sub(&prediction)?; // c, [S, T]
        let mut power = theta.neg()?.unsqueeze(1)?; // (−θ)^shift, [S, 1]
        let mut shift = 1;
        while shift < self.t {
            let shifted = e.narrow(1, 0, self.t - shift)?.pad_with_zeros(1, shift, 0)?;
            e = (e + shifted.broadcast_mul(&power)?)?;
            power = power.sqr()?;
            shift *= 2;
        }
        Ok(e)
    }
}

impl Model for Arma {
    fn latents(&self) -> &Latents {
        &self.latents
    }

    fn log_density(&self, v: &Values<'_>) -> candle_core::Result<Tensor> {
        let (mu, phi, theta, sigma) = (v.get("mu")?, v.get("phi")?, v.get("theta")?, v.get("sigma")?);
        let prior = (((Normal::new(0.0, 10.0)?.log_prob(mu)? + Normal::new(0.0, 2.0)?.log_prob(phi)?)?
            + Normal::new(0.0, 2.0)?.log_prob(theta)?)?
            + HalfCauchy::new(2.5)?.log_prob(sigma)?)?;
        let t = self.t as f64;
        let squares = self.residuals(mu, phi, theta)?.sqr()?.sum(1)?;
        let likelihood = ((squares / sigma.sqr()?)?.affine(-0.5, -t * HALF_LN_2PI)? - (sigma.log()? * t)?)?;
        prior + likelihood
    }
}
