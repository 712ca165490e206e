//! earnings-earn_height: annual earnings in dollars regressed on height, on the raw scale.
//!
//! ```text
//! earn_i ~ N(β₁ + β₂ · height_i, σ²),   i = 1 … N = 1192
//! p(β) ∝ 1 on ℝ²,   p(σ) ∝ 1 on (0, ∞)            (no prior statement: Stan's flat improper prior)
//! log p(earn, β, σ) = −Σ_i (earn_i − β₁ − β₂ height_i)² / (2σ²) − N ln σ − N · ½ ln 2π
//! unconstrained: β as is, σ = eˢ (log-Jacobian s, added by elbo)                    D = 3
//! ```
//!
//! `male` is in the data file but not in the model. The latents are `beta` `[2]` (intercept,
//! slope) and `sigma`.
//!
//! What makes it hard: the scale. Earnings are in dollars and height (≈ 67 inches) is not
//! centred, so the posterior sds are about 9,700 (β₁), 144 (β₂) and 390 (σ) around means of
//! −61,000, 1,260 and 18,900, and corr(β₁, β₂) ≈ −0.998: a unit-scale start is hundreds of sds
//! from the posterior, and a mean-field q can hold neither the scales' spread nor the correlation.

use candle_core::Tensor;
use elbo::{Latents, Model, Result, Values};

use super::data::Data;
use super::regression::NormalRegression;

/// The earnings-on-height regression (module doc); latents `beta` `[2]` and `sigma` (positive).
#[derive(Clone, Debug)]
pub struct Earnings {
    regression: NormalRegression,
    latents: Latents,
}

impl Earnings {
    /// The model for posteriordb's `earnings` data (`N`, `earn`, `height`).
    pub fn new(data: &Data) -> Result<Self> {
        let n = data.int("N")?;
        let earn = data.reals("earn", n)?;
        let height = data.reals("height", n)?;
        let regression = NormalRegression::new(&[vec![1.0; n], height], earn)?;
        Ok(Earnings { regression, latents: Latents::new().real("beta", [2]).positive("sigma", ()) })
    }
}

impl Model for Earnings {
    fn latents(&self) -> &Latents {
        &self.latents
    }

    fn log_density(&self, v: &Values<'_>) -> candle_core::Result<Tensor> {
        // flat priors on β and σ: the likelihood alone
        self.regression.log_likelihood(v.get("beta")?, v.get("sigma")?)
    }
}
