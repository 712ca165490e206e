//! kidiq-kidscore_interaction: a child's test score on the mother's IQ, whether she finished high
//! school, and their interaction.
//!
//! ```text
//! kid_score_i ~ N(β₁ + β₂ hs_i + β₃ iq_i + β₄ hs_i · iq_i, σ²),   i = 1 … N = 434
//! p(β) ∝ 1 on ℝ⁴ (flat improper),   σ ~ HalfCauchy(0, 2.5):  ln 2 − ln π − ln 2.5 − ln(1 + (σ/2.5)²)
//! unconstrained: β as is, σ = eˢ (log-Jacobian s, added by elbo)                    D = 5
//! ```
//!
//! hs_i = `mom_hs` ∈ {0, 1}, iq_i = `mom_iq`; the interaction hs_i · iq_i is computed once from the
//! data. `mom_hs_new` and `mom_iq_new` are in the file but not in the model. The latents are `beta`
//! `[4]` and `sigma`.
//!
//! What makes it hard: mother's IQ (≈ 100) is not centred, so the intercept and the IQ slope, and
//! the high-school effect and the interaction, are correlated ≈ −0.99 in pairs, with sds from
//! about 15 (β₁, β₂) down to 0.15 (β₃, β₄).

use candle_core::Tensor;
use elbo::dist::{Distribution, HalfCauchy};
use elbo::{Latents, Model, Result, Values};

use super::data::Data;
use super::regression::NormalRegression;

/// The kid-score interaction regression (module doc); latents `beta` `[4]` and `sigma` (positive).
#[derive(Clone, Debug)]
pub struct Kidiq {
    regression: NormalRegression,
    latents: Latents,
}

impl Kidiq {
    /// The model for posteriordb's `kidiq` data (`N`, `kid_score`, `mom_hs`, `mom_iq`).
    pub fn new(data: &Data) -> Result<Self> {
        let n = data.int("N")?;
        let score = data.reals("kid_score", n)?;
        let hs = data.reals("mom_hs", n)?;
        let iq = data.reals("mom_iq", n)?;
        let inter = hs.iter().zip(&iq).map(|(h, q)| h * q).collect();
        let regression = NormalRegression::new(&[vec![1.0; n], hs, iq, inter], score)?;
        Ok(Kidiq { regression, latents: Latents::new().real("beta", [4]).positive("sigma", ()) })
    }
}

impl Model for Kidiq {
    fn latents(&self) -> &Latents {
        &self.latents
    }

    fn log_density(&self, v: &Values<'_>) -> candle_core::Result<Tensor> {
        let sigma = v.get("sigma")?;
        let prior = HalfCauchy::new(2.5)?.log_prob(sigma)?; // β: flat, nothing to add
        prior + self.regression.log_likelihood(v.get("beta")?, sigma)?
    }
}
