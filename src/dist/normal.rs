//! The normal distribution and the two that are built from it by a transform of the value.
//!
//! ```text
//! Normal(μ, σ):      log p(x) = −½ ((x − μ)/σ)² − ln σ − ½ ln 2π                 x ∈ ℝ
//! LogNormal(μ, σ):   log p(x) = −½ ((ln x − μ)/σ)² − ln σ − ln x − ½ ln 2π        x > 0
//! HalfNormal(σ):     log p(x) = ln 2 − ½ (x/σ)² − ln σ − ½ ln 2π                   x ≥ 0
//! ```
//! μ is the location, σ > 0 the scale (for the LogNormal, those of ln x).

use candle_core::{Result, Tensor};

use super::{check_param, check_value, Distribution, Param, Rule, LN_2};
use crate::special::HALF_LN_2PI;

/// −½ ((y − μ)/σ)² − ln σ − ½ ln 2π, the normal log density, on the Param algebra.
fn normal_lp(y: &Param, loc: &Param, scale: &Param) -> Result<Param> {
    let z = y.sub(loc)?.div(scale)?;
    z.sqr()?.affine(-0.5, -HALF_LN_2PI)?.sub(&scale.ln()?)
}

/// The normal distribution N(μ, σ²) with location `loc` = μ and scale `scale` = σ > 0:
///
/// ```text
/// log p(x) = −½ ((x − μ)/σ)² − ln σ − ½ ln 2π
/// ```
#[derive(Clone, Debug)]
pub struct Normal {
    loc: Param,
    scale: Param,
}

impl Normal {
    /// N(loc, scale²). Errors if a scalar `loc` is not finite or a scalar `scale` is not > 0.
    pub fn new(loc: impl Into<Param>, scale: impl Into<Param>) -> Result<Self> {
        let (loc, scale) = (loc.into(), scale.into());
        check_param("Normal", "loc", &loc, Rule::Finite)?;
        check_param("Normal", "scale", &scale, Rule::Positive)?;
        Ok(Normal { loc, scale })
    }
}

impl Distribution for Normal {
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        check_value("Normal", x, &[("loc", &self.loc), ("scale", &self.scale)])?;
        normal_lp(&x.into(), &self.loc, &self.scale)?.tensor()
    }
}

/// The log-normal distribution: ln x ~ N(μ, σ²), with `loc` = μ and `scale` = σ > 0:
///
/// ```text
/// log p(x) = −½ ((ln x − μ)/σ)² − ln σ − ln x − ½ ln 2π        x > 0
/// ```
///
/// Outside the support (x ≤ 0) the result is NaN (ln x is NaN for x < 0, and at x = 0 the
/// formula meets −∞ + ∞); statrs gives −∞ there.
#[derive(Clone, Debug)]
pub struct LogNormal {
    loc: Param,
    scale: Param,
}

impl LogNormal {
    /// ln x ~ N(loc, scale²). Errors if a scalar `loc` is not finite or a scalar `scale` is not > 0.
    pub fn new(loc: impl Into<Param>, scale: impl Into<Param>) -> Result<Self> {
        let (loc, scale) = (loc.into(), scale.into());
        check_param("LogNormal", "loc", &loc, Rule::Finite)?;
        check_param("LogNormal", "scale", &scale, Rule::Positive)?;
        Ok(LogNormal { loc, scale })
    }
}

impl Distribution for LogNormal {
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        check_value("LogNormal", x, &[("loc", &self.loc), ("scale", &self.scale)])?;
        let y = Param::Tensor(x.log()?);
        normal_lp(&y, &self.loc, &self.scale)?.sub(&y)?.tensor()
    }
}

/// The half-normal distribution, |z| for z ~ N(0, σ²), with `scale` = σ > 0:
///
/// ```text
/// log p(x) = ln 2 − ½ (x/σ)² − ln σ − ½ ln 2π        x ≥ 0
/// ```
///
/// Negative x is not masked: the formula is evaluated as written, which gives the density of |x|
/// (a finite value), not −∞.
#[derive(Clone, Debug)]
pub struct HalfNormal {
    scale: Param,
}

impl HalfNormal {
    /// |N(0, scale²)|. Errors if a scalar `scale` is not > 0.
    pub fn new(scale: impl Into<Param>) -> Result<Self> {
        let scale = scale.into();
        check_param("HalfNormal", "scale", &scale, Rule::Positive)?;
        Ok(HalfNormal { scale })
    }
}

impl Distribution for HalfNormal {
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        check_value("HalfNormal", x, &[("scale", &self.scale)])?;
        let z = Param::from(x).div(&self.scale)?;
        z.sqr()?.affine(-0.5, LN_2 - HALF_LN_2PI)?.sub(&self.scale.ln()?)?.tensor()
    }
}
