//! The Gaussian linear-regression likelihood with an unknown scale, shared by the regressions of
//! the set (earnings, kidiq, arK, mesquite, nes2000).
//!
//! ```text
//! y_i ~ N(x_iᵀ β, σ²),  i = 1 … N            X: [N, P] (its first column is 1 for an intercept)
//! log p(y | β, σ) = −Σ_i (y_i − x_iᵀ β)² / (2σ²) − N ln σ − N · ½ ln 2π
//! ```
//!
//! The residuals are formed directly ([S, P] × [P, N] → [S, N]), not from the sufficient statistics
//! yᵀy − 2βᵀXᵀy + βᵀXᵀXβ: with uncentred predictors those cancel badly in f32.

use candle_core::Tensor;
use elbo::special::HALF_LN_2PI;
use elbo::{Error, Result};

use super::data::DataTensor;

/// y ~ N(X β, σ² I) for a fixed design X and response y.
#[derive(Clone, Debug)]
pub(crate) struct NormalRegression {
    /// Xᵀ, [P, N].
    x_t: DataTensor,
    /// y, [1, N].
    y: DataTensor,
    n: usize,
    p: usize,
}

impl NormalRegression {
    /// The regression of `y` (N values) on the columns of X, given as P columns of N values each.
    pub(crate) fn new(columns: &[Vec<f64>], y: Vec<f64>) -> Result<Self> {
        let (p, n) = (columns.len(), y.len());
        if p == 0 || n == 0 {
            return Err(Error::EmptyData { what: format!("a regression of {n} responses on {p} predictors") });
        }
        if let Some(c) = columns.iter().find(|c| c.len() != n) {
            return Err(Error::DimensionMismatch { what: "a predictor column".into(), expected: n, got: c.len() });
        }
        let x_t = DataTensor::new(columns.concat(), &[p, n])?;
        Ok(NormalRegression { x_t, y: DataTensor::new(y, &[1, n])?, n, p })
    }

    /// P, the number of coefficients.
    pub(crate) fn p(&self) -> usize {
        self.p
    }

    /// log p(y | β, σ) for β `[S, P]` and σ `[S]`, `[S]`.
    pub(crate) fn log_likelihood(&self, beta: &Tensor, sigma: &Tensor) -> candle_core::Result<Tensor> {
        let eta = beta.matmul(&self.x_t.like(beta)?)?; // [S, N]
        let squares = self.y.like(beta)?.broadcast_sub(&eta)?.sqr()?.sum(1)?; // [S]
        let n = self.n as f64;
        let scaled = (squares / sigma.sqr()?)?.affine(-0.5, -n * HALF_LN_2PI)?;
        scaled - (sigma.log()? * n)?
    }
}
