//! Student's t distribution with location and scale.
//!
//! ```text
//! StudentT(ν, μ, σ):  log p(x) = ln Γ((ν+1)/2) − ln Γ(ν/2) − ½ ln(νπ) − ln σ
//!                                − (ν+1)/2 · ln(1 + ((x − μ)/σ)² / ν)                 x ∈ ℝ
//! ```
//! ν > 0 is the number of degrees of freedom, μ the location, σ > 0 the scale. ν = 1 is the
//! Cauchy distribution; as ν → ∞ it tends to N(μ, σ²).

use candle_core::{Result, Tensor};

use super::{check_param, check_value, Distribution, Param, Rule, LN_PI};

/// Student's t distribution with `df` = ν > 0 degrees of freedom, location `loc` = μ and scale
/// `scale` = σ > 0:
///
/// ```text
/// log p(x) = ln Γ((ν+1)/2) − ln Γ(ν/2) − ½ ln(νπ) − ln σ − (ν+1)/2 · ln(1 + ((x − μ)/σ)² / ν)
/// ```
///
/// A tensor `df` needs ln Γ of a tensor, so it is CPU-only (see [`crate::special::lgamma`]).
/// For very large ν (≳ 1e7) the difference of the two ln Γ terms loses precision; use a
/// [`super::Normal`] there.
#[derive(Clone, Debug)]
pub struct StudentT {
    df: Param,
    loc: Param,
    scale: Param,
}

impl StudentT {
    /// StudentT(df, loc, scale). Errors if a scalar `df` or `scale` is not > 0, or a scalar `loc`
    /// is not finite.
    pub fn new(df: impl Into<Param>, loc: impl Into<Param>, scale: impl Into<Param>) -> Result<Self> {
        let (df, loc, scale) = (df.into(), loc.into(), scale.into());
        check_param("StudentT", "df", &df, Rule::Positive)?;
        check_param("StudentT", "loc", &loc, Rule::Finite)?;
        check_param("StudentT", "scale", &scale, Rule::Positive)?;
        Ok(StudentT { df, loc, scale })
    }
}

impl Distribution for StudentT {
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        check_value("StudentT", x, &[("df", &self.df), ("loc", &self.loc), ("scale", &self.scale)])?;
        let nu = &self.df;
        let z = Param::from(x).sub(&self.loc)?.div(&self.scale)?;
        let kernel = z.sqr()?.div(nu)?.log1p()?.mul(&nu.affine(-0.5, -0.5)?)?;
        // ln Γ((ν+1)/2) − ln Γ(ν/2) − ½ ln ν − ½ ln π − ln σ, all on the host for scalar ν and σ
        let norm = nu.affine(0.5, 0.5)?.lgamma()?.sub(&nu.affine(0.5, 0.0)?.lgamma()?)?;
        let norm = norm.sub(&nu.ln()?.affine(0.5, 0.5 * LN_PI)?)?.sub(&self.scale.ln()?)?;
        kernel.add(&norm)?.tensor()
    }
}
