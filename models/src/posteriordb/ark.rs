//! arK-arK: an autoregressive model of order K = 5, conditional on the first K observations.
//!
//! ```text
//! y_t ~ N(α + Σ_{k=1..K} β_k y_{t−k}, σ²),   t = K+1 … T    (T = 200: 195 terms)
//! α ~ N(0, 10²),  β_k ~ N(0, 10²),  σ ~ HalfCauchy(0, 2.5)
//! unconstrained: α, β as is, σ = eˢ (log-Jacobian s, added by elbo)      D = K + 2 = 7
//! ```
//!
//! The lagged series are the columns of a fixed design matrix, so the likelihood is a regression
//! of (y_{K+1} … y_T) on (1, y_{t−1}, …, y_{t−K}) with coefficients (α, β). There is no
//! stationarity constraint on β. The latents are `alpha`, `beta` `[K]` and `sigma`.
//!
//! What makes it hard: little. The lags of an autocorrelated series correlate the β_k (|corr| up
//! to 0.63) and the scales differ (sd ≈ 0.011 for α, 0.07–0.09 for β, 0.008 for σ), but the
//! posterior is close to Gaussian: the baseline that full-rank VI should get right.

use candle_core::Tensor;
use elbo::dist::{Distribution, HalfCauchy, Normal};
use elbo::{Error, Latents, Model, Result, Values};

use super::data::Data;
use super::regression::NormalRegression;

/// The AR(K) model (module doc); latents `alpha`, `beta` `[K]` and `sigma` (positive).
#[derive(Clone, Debug)]
pub struct Ark {
    regression: NormalRegression,
    latents: Latents,
}

impl Ark {
    /// The model for posteriordb's `arK` data (`K`, `T`, `y`), 1 ≤ K < T.
    pub fn new(data: &Data) -> Result<Self> {
        let (k, t) = (data.int("K")?, data.int("T")?);
        if k == 0 || k >= t {
            return Err(Error::DataFile {
                path: data.origin().to_string(),
                problem: format!("the lag order K = {k} must be between 1 and T − 1 = {}", t.saturating_sub(1)),
            });
        }
        let y = data.reals("y", t)?;
        let mut columns = vec![vec![1.0; t - k]];
        columns.extend((1..=k).map(|lag| (k..t).map(|i| y[i - lag]).collect()));
        let regression = NormalRegression::new(&columns, y[k..].to_vec())?;
        Ok(Ark { regression, latents: Latents::new().real("alpha", ()).real("beta", [k]).positive("sigma", ()) })
    }
}

impl Model for Ark {
    fn latents(&self) -> &Latents {
        &self.latents
    }

    fn log_density(&self, v: &Values<'_>) -> candle_core::Result<Tensor> {
        let (alpha, beta, sigma) = (v.get("alpha")?, v.get("beta")?, v.get("sigma")?);
        let coef = Tensor::cat(&[&alpha.unsqueeze(1)?, beta], 1)?; // (α, β₁ … β_K), [S, K + 1]
        debug_assert_eq!(coef.dim(1)?, self.regression.p());
        let prior = (Normal::new(0.0, 10.0)?.log_prob(&coef)?.sum(1)? + HalfCauchy::new(2.5)?.log_prob(sigma)?)?;
        prior + self.regression.log_likelihood(&coef, sigma)?
    }
}
