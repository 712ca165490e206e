//! mesquite-logmesquite_logvash: log biomass of mesquite bushes on log canopy volume, area and
//! shape, log total height and the group.
//!
//! ```text
//! transformed data:  lw = ln weight,  lcv = ln(d₁ d₂ h_c),  lca = ln(d₁ d₂),  lcs = ln(d₁ / d₂),
//!                    lth = ln total_height                (d₁, d₂ the canopy diameters, h_c its height)
//! lw_i ~ N(β₁ + β₂ lcv_i + β₃ lca_i + β₄ lcs_i + β₅ lth_i + β₆ group_i, σ²),   i = 1 … N = 46
//! p(β) ∝ 1 on ℝ⁶,  p(σ) ∝ 1 on (0, ∞)               (no prior statement: Stan's flat improper prior)
//! unconstrained: β as is, σ = eˢ (log-Jacobian s, added by elbo)                    D = 7
//! ```
//!
//! `density` is in the file but not in the model. The latents are `beta` `[6]` and `sigma`.
//!
//! What makes it hard: 46 points for 7 parameters under flat priors, so the marginals are
//! Student-t-like and σ is right-skewed (skewness ≈ 0.6); the log predictors are collinear
//! (corr(β₂, β₃) ≈ −0.95).

use candle_core::Tensor;
use elbo::{Latents, Model, Result, Values};

use super::data::Data;
use super::regression::NormalRegression;

/// The log-mesquite regression (module doc); latents `beta` `[6]` and `sigma` (positive).
#[derive(Clone, Debug)]
pub struct Mesquite {
    regression: NormalRegression,
    latents: Latents,
}

impl Mesquite {
    /// The model for posteriordb's `mesquite` data (`N`, `weight`, `diam1`, `diam2`,
    /// `canopy_height`, `total_height`, `group`); the logarithms need positive measurements.
    pub fn new(data: &Data) -> Result<Self> {
        let n = data.int("N")?;
        let weight = data.positive_reals("weight", n)?;
        let d1 = data.positive_reals("diam1", n)?;
        let d2 = data.positive_reals("diam2", n)?;
        let canopy = data.positive_reals("canopy_height", n)?;
        let total = data.positive_reals("total_height", n)?;
        let group = data.reals("group", n)?;
        let each = |f: &dyn Fn(usize) -> f64| (0..n).map(f).collect::<Vec<f64>>();
        let columns = [
            vec![1.0; n],
            each(&|i| (d1[i] * d2[i] * canopy[i]).ln()),
            each(&|i| (d1[i] * d2[i]).ln()),
            each(&|i| (d1[i] / d2[i]).ln()),
            each(&|i| total[i].ln()),
            group,
        ];
        let regression = NormalRegression::new(&columns, each(&|i| weight[i].ln()))?;
        Ok(Mesquite { regression, latents: Latents::new().real("beta", [6]).positive("sigma", ()) })
    }
}

impl Model for Mesquite {
    fn latents(&self) -> &Latents {
        &self.latents
    }

    fn log_density(&self, v: &Values<'_>) -> candle_core::Result<Tensor> {
        // flat priors on β and σ: the likelihood alone
        self.regression.log_likelihood(v.get("beta")?, v.get("sigma")?)
    }
}
