//! The Cauchy distribution and its half on [0, ∞).
//!
//! ```text
//! Cauchy(μ, σ):    log p(x) = −ln π − ln σ − ln(1 + ((x − μ)/σ)²)            x ∈ ℝ
//! HalfCauchy(σ):   log p(x) = ln 2 − ln π − ln σ − ln(1 + (x/σ)²)            x ≥ 0
//! ```
//! μ is the location (the median), σ > 0 the scale (the half-width at half-maximum).
//! ln(1 + u) is computed with the exact [`crate::special::log1p`].

use candle_core::{Result, Tensor};

use super::{check_param, check_value, Distribution, Param, Rule, LN_2, LN_PI};

/// −ln π − ln σ − ln(1 + ((y − μ)/σ)²).
fn cauchy_lp(y: &Param, loc: &Param, scale: &Param) -> Result<Param> {
    let z = y.sub(loc)?.div(scale)?;
    z.sqr()?.log1p()?.affine(-1.0, -LN_PI)?.sub(&scale.ln()?)
}

/// The Cauchy distribution with location `loc` = μ and scale `scale` = σ > 0:
///
/// ```text
/// log p(x) = −ln π − ln σ − ln(1 + ((x − μ)/σ)²)
/// ```
#[derive(Clone, Debug)]
pub struct Cauchy {
    loc: Param,
    scale: Param,
}

impl Cauchy {
    /// Cauchy(loc, scale). Errors if a scalar `loc` is not finite or a scalar `scale` is not > 0.
    pub fn new(loc: impl Into<Param>, scale: impl Into<Param>) -> Result<Self> {
        let (loc, scale) = (loc.into(), scale.into());
        check_param("Cauchy", "loc", &loc, Rule::Finite)?;
        check_param("Cauchy", "scale", &scale, Rule::Positive)?;
        Ok(Cauchy { loc, scale })
    }
}

impl Distribution for Cauchy {
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        check_value("Cauchy", x, &[("loc", &self.loc), ("scale", &self.scale)])?;
        cauchy_lp(&x.into(), &self.loc, &self.scale)?.tensor()
    }
}

/// The half-Cauchy distribution, |z| for z ~ Cauchy(0, σ), with `scale` = σ > 0 (a common prior
/// for scale parameters):
///
/// ```text
/// log p(x) = ln 2 − ln π − ln σ − ln(1 + (x/σ)²)        x ≥ 0
/// ```
///
/// Negative x is not masked: the formula is evaluated as written, which gives the density of |x|
/// (a finite value), not −∞.
#[derive(Clone, Debug)]
pub struct HalfCauchy {
    scale: Param,
}

impl HalfCauchy {
    /// |Cauchy(0, scale)|. Errors if a scalar `scale` is not > 0.
    pub fn new(scale: impl Into<Param>) -> Result<Self> {
        let scale = scale.into();
        check_param("HalfCauchy", "scale", &scale, Rule::Positive)?;
        Ok(HalfCauchy { scale })
    }
}

impl Distribution for HalfCauchy {
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        check_value("HalfCauchy", x, &[("scale", &self.scale)])?;
        let z = Param::from(x).div(&self.scale)?;
        z.sqr()?.log1p()?.affine(-1.0, LN_2 - LN_PI)?.sub(&self.scale.ln()?)?.tensor()
    }
}
