//! nes2000-nes: 7-point party identification in the 2000 National Election Study, regressed on
//! ideology, race, age group, education, gender and income.
//!
//! ```text
//! transformed data:  a₂ᵢ = 1[age_i = 2],  a₃ᵢ = 1[age_i = 3],  a₄ᵢ = 1[age_i = 4]   (group 1: baseline)
//! partyid7_i ~ N(β₁ + β₂ ideo_i + β₃ race_i + β₄ a₂ᵢ + β₅ a₃ᵢ + β₆ a₄ᵢ + β₇ educ_i + β₈ gender_i
//!                + β₉ income_i, σ²),   i = 1 … N = 476
//! p(β) ∝ 1 on ℝ⁹,  p(σ) ∝ 1 on (0, ∞)               (no prior statement: Stan's flat improper prior)
//! unconstrained: β as is, σ = eˢ (log-Jacobian s, added by elbo)                    D = 10
//! ```
//!
//! The fields are `real_ideo`, `race_adj`, `age_discrete`, `educ1`, `gender` and `income`; `year`
//! is in the file but not in the model. The latents are `beta` `[9]` and `sigma`.
//!
//! What makes it hard: the largest dimension of the set; the uncentred predictors correlate the
//! intercept with most slopes (|corr| up to ≈ 0.6), and the three age dummies with each other
//! (≈ 0.66–0.78).

use candle_core::Tensor;
use elbo::{Error, Latents, Model, Result, Values};

use super::data::Data;
use super::regression::NormalRegression;

/// The party-identification regression (module doc); latents `beta` `[9]` and `sigma` (positive).
#[derive(Clone, Debug)]
pub struct Nes {
    regression: NormalRegression,
    latents: Latents,
}

impl Nes {
    /// The model for posteriordb's `nes2000` data (`N`, `partyid7`, `real_ideo`, `race_adj`,
    /// `age_discrete` ∈ {1, 2, 3, 4}, `educ1`, `gender`, `income`).
    pub fn new(data: &Data) -> Result<Self> {
        let n = data.int("N")?;
        let age = data.reals("age_discrete", n)?;
        if let Some(i) = age.iter().position(|a| ![1.0, 2.0, 3.0, 4.0].contains(a)) {
            return Err(Error::DataFile {
                path: data.origin().to_string(),
                problem: format!("field `age_discrete`: element {i} ({}) is not an age group 1, 2, 3 or 4", age[i]),
            });
        }
        let dummy = |group: f64| age.iter().map(|&a| f64::from(u8::from(a == group))).collect::<Vec<f64>>();
        let columns = [
            vec![1.0; n],
            data.reals("real_ideo", n)?,
            data.reals("race_adj", n)?,
            dummy(2.0),
            dummy(3.0),
            dummy(4.0),
            data.reals("educ1", n)?,
            data.reals("gender", n)?,
            data.reals("income", n)?,
        ];
        let regression = NormalRegression::new(&columns, data.reals("partyid7", n)?)?;
        Ok(Nes { regression, latents: Latents::new().real("beta", [9]).positive("sigma", ()) })
    }
}

impl Model for Nes {
    fn latents(&self) -> &Latents {
        &self.latents
    }

    fn log_density(&self, v: &Values<'_>) -> candle_core::Result<Tensor> {
        // flat priors on β and σ: the likelihood alone
        self.regression.log_likelihood(v.get("beta")?, v.get("sigma")?)
    }
}
