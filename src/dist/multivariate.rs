//! The multivariate normal distribution, parameterised by the Cholesky factor of its covariance.
//!
//! ```text
//! MultivariateNormal(μ, L):  log p(x) = −½ ‖z‖² − Σᵢ ln Lᵢᵢ − (D/2) ln 2π,   L z = x − μ
//! Σ = L Lᵀ,  ln det Σ = 2 Σᵢ ln Lᵢᵢ
//! ```
//! x, μ ∈ ℝᴰ; L is lower triangular with a positive diagonal. z = L⁻¹(x − μ) is found by forward
//! substitution written in tensor ops (candle has no triangular solve), so the gradient flows to
//! x, μ and L:
//!
//! ```text
//! z_j = r_j / L_jj,   r ← r − L[·, j] z_j   for the rows below j,   j = 1..D,   starting from r = x − μ
//! ```
//! That is D steps of a handful of ops on the batch, O(D²) work per batch element and a graph
//! that grows linearly in D: fine for moderate D (tens to a few hundred).

use candle_core::{bail, Result, Tensor, D};

use super::{check_param, check_value, diagonal, last_dim, Distribution, Param, Rule};
use crate::special::HALF_LN_2PI;

/// The D-dimensional normal distribution N(μ, L Lᵀ) with mean `loc` = μ, a tensor `[..., D]`
/// (or a scalar, the same in every coordinate), and the lower Cholesky factor of the covariance
/// `scale_tril` = L, a tensor `[..., D, D]` (or a scalar s > 0, meaning L = s·I):
///
/// ```text
/// log p(x) = −½ (x − μ)ᵀ Σ⁻¹ (x − μ) − ½ ln det Σ − (D/2) ln 2π,    Σ = L Lᵀ
///          = −½ ‖L⁻¹(x − μ)‖² − Σᵢ ln Lᵢᵢ − (D/2) ln 2π
/// ```
///
/// The value is `[..., D]`; batch axes of x, μ and L broadcast, and the result has their
/// broadcast batch shape. Entries of L above the diagonal are never read. The diagonal is not
/// checked: a non-positive Lᵢᵢ gives NaN (from ln Lᵢᵢ) or ±∞.
#[derive(Clone, Debug)]
pub struct MultivariateNormal {
    loc: Param,
    scale_tril: Param,
}

impl MultivariateNormal {
    /// N(loc, scale_tril · scale_trilᵀ). Errors if a scalar `loc` is not finite, a scalar
    /// `scale_tril` is not > 0, a tensor `loc` has no axis, or a tensor `scale_tril` is not
    /// `[..., D, D]`.
    pub fn new(loc: impl Into<Param>, scale_tril: impl Into<Param>) -> Result<Self> {
        let (loc, scale_tril) = (loc.into(), scale_tril.into());
        check_param("MultivariateNormal", "loc", &loc, Rule::Finite)?;
        check_param("MultivariateNormal", "scale_tril", &scale_tril, Rule::Positive)?;
        let mut dim = None;
        if let Param::Tensor(t) = &loc {
            dim = Some(last_dim("MultivariateNormal", "`loc`", t)?);
        }
        if let Param::Tensor(l) = &scale_tril {
            let dims = l.dims();
            let n = dims.len();
            if n < 2 || dims[n - 1] != dims[n - 2] {
                bail!("MultivariateNormal: `scale_tril` must be [..., D, D], got shape {:?}", l.shape());
            }
            if let Some(d) = dim.filter(|&d| d != dims[n - 1]) {
                bail!("MultivariateNormal: `loc` has D = {d} but `scale_tril` is {}×{}", dims[n - 1], dims[n - 1]);
            }
        }
        Ok(MultivariateNormal { loc, scale_tril })
    }
}

impl Distribution for MultivariateNormal {
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        check_value("MultivariateNormal", x, &[("loc", &self.loc), ("scale_tril", &self.scale_tril)])?;
        let d = last_dim("MultivariateNormal", "the value", x)?;
        let expected = match (&self.loc, &self.scale_tril) {
            (_, Param::Tensor(l)) => Some(l.dim(D::Minus1)?),
            (Param::Tensor(m), _) => Some(m.dim(D::Minus1)?),
            _ => None,
        };
        if d == 0 {
            bail!("MultivariateNormal: the value has D = 0 coordinates");
        }
        if let Some(e) = expected.filter(|&e| e != d) {
            bail!("MultivariateNormal: the value has D = {d} but the distribution has D = {e}");
        }
        let r = Param::from(x).sub(&self.loc)?.tensor()?;
        let const_term = -(d as f64) * HALF_LN_2PI;
        match &self.scale_tril {
            Param::Scalar(s) => {
                // L = s·I: ‖z‖² = ‖r‖²/s², Σ ln Lᵢᵢ = D ln s
                let maha = r.sqr()?.sum(D::Minus1)?;
                maha.affine(-0.5 / (s * s), const_term - d as f64 * s.ln())
            }
            Param::Tensor(l) => {
                let diag = diagonal(l, d)?; // [..., D]
                let z = forward_substitution(l, &diag, &r, d)?;
                let maha = z.sqr()?.sum(D::Minus1)?;
                let log_det = diag.log()?.sum(D::Minus1)?;
                maha.affine(-0.5, const_term)?.broadcast_sub(&log_det)
            }
        }
    }
}

/// z = L⁻¹ r for lower-triangular L `[..., D, D]` (diagonal `diag` `[..., D]`) and r `[..., D]`,
/// column by column, reading only the diagonal and the entries below it.
fn forward_substitution(l: &Tensor, diag: &Tensor, r: &Tensor, d: usize) -> Result<Tensor> {
    let rows = l.rank() - 2;
    let mut zs = Vec::with_capacity(d);
    let mut rest = r.clone(); // r_j, …, r_D after eliminating z_1, …, z_{j−1}
    for j in 0..d {
        let zj = rest.narrow(D::Minus1, 0, 1)?.broadcast_div(&diag.narrow(D::Minus1, j, 1)?)?; // [..., 1]
        if j + 1 < d {
            let below = l.narrow(rows, j + 1, d - j - 1)?.narrow(D::Minus1, j, 1)?.squeeze(D::Minus1)?; // [..., D−j−1]
            rest = rest.narrow(D::Minus1, 1, d - j - 1)?.broadcast_sub(&below.broadcast_mul(&zj)?)?;
        }
        zs.push(zj);
    }
    // every z_j has the broadcast batch shape of r and L (z_1 already meets both)
    Tensor::cat(&zs, D::Minus1)
}
