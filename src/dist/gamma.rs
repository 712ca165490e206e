//! The gamma family on (0, ∞): Exponential, Gamma (shape–rate) and InverseGamma (shape–scale).
//!
//! ```text
//! Exponential(λ):      log p(x) = ln λ − λx                                          x ≥ 0
//! Gamma(α, β):         log p(x) = α ln β − ln Γ(α) + (α − 1) ln x − βx              x > 0
//! InverseGamma(α, β):  log p(x) = α ln β − ln Γ(α) − (α + 1) ln x − β/x             x > 0
//! ```
//! λ > 0 is a rate, α > 0 a shape, β > 0 the Gamma's rate and the InverseGamma's scale
//! (1/x ~ Gamma(α, β) when x ~ InverseGamma(α, β)).

use candle_core::{Result, Tensor};

use super::{check_param, check_value, Distribution, Param, Rule};

/// The exponential distribution with rate `rate` = λ > 0 (mean 1/λ):
///
/// ```text
/// log p(x) = ln λ − λx        x ≥ 0
/// ```
///
/// Negative x is not masked: the formula gives ln λ + λ|x| there, not −∞.
#[derive(Clone, Debug)]
pub struct Exponential {
    rate: Param,
}

impl Exponential {
    /// Exponential(rate). Errors if a scalar `rate` is not > 0.
    pub fn new(rate: impl Into<Param>) -> Result<Self> {
        let rate = rate.into();
        check_param("Exponential", "rate", &rate, Rule::Positive)?;
        Ok(Exponential { rate })
    }
}

impl Distribution for Exponential {
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        check_value("Exponential", x, &[("rate", &self.rate)])?;
        self.rate.ln()?.sub(&Param::from(x).mul(&self.rate)?)?.tensor()
    }
}

/// The gamma distribution with shape `shape` = α > 0 and rate `rate` = β > 0 (mean α/β):
///
/// ```text
/// log p(x) = α ln β − ln Γ(α) + (α − 1) ln x − βx        x > 0
/// ```
///
/// Outside the support: NaN for x < 0; at x = 0, −∞ for α > 1, +∞ for α < 1, and ln β for a
/// scalar α = 1 (the (α − 1) ln x term is dropped then; with a tensor α = 1 it is NaN).
/// A tensor `shape` is CPU-only (ln Γ of a tensor).
#[derive(Clone, Debug)]
pub struct Gamma {
    shape: Param,
    rate: Param,
}

impl Gamma {
    /// Gamma(shape, rate). Errors if a scalar `shape` or `rate` is not > 0.
    pub fn new(shape: impl Into<Param>, rate: impl Into<Param>) -> Result<Self> {
        let (shape, rate) = (shape.into(), rate.into());
        check_param("Gamma", "shape", &shape, Rule::Positive)?;
        check_param("Gamma", "rate", &rate, Rule::Positive)?;
        Ok(Gamma { shape, rate })
    }
}

impl Distribution for Gamma {
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        check_value("Gamma", x, &[("shape", &self.shape), ("rate", &self.rate)])?;
        let (a, b) = (&self.shape, &self.rate);
        let xp = Param::from(x);
        let norm = a.mul(&b.ln()?)?.sub(&a.lgamma()?)?;
        let log_term = a.affine(1.0, -1.0)?.times(|| xp.ln())?;
        norm.add(&log_term)?.sub(&xp.mul(b)?)?.tensor()
    }
}

/// The inverse-gamma distribution with shape `shape` = α > 0 and scale `scale` = β > 0:
///
/// ```text
/// log p(x) = α ln β − ln Γ(α) − (α + 1) ln x − β/x        x > 0
/// ```
///
/// Outside the support (x ≤ 0) the result is NaN (ln x of a negative number; at 0, +∞ − ∞);
/// statrs gives −∞ there. A tensor `shape` is CPU-only (ln Γ of a tensor).
#[derive(Clone, Debug)]
pub struct InverseGamma {
    shape: Param,
    scale: Param,
}

impl InverseGamma {
    /// InverseGamma(shape, scale). Errors if a scalar `shape` or `scale` is not > 0.
    pub fn new(shape: impl Into<Param>, scale: impl Into<Param>) -> Result<Self> {
        let (shape, scale) = (shape.into(), scale.into());
        check_param("InverseGamma", "shape", &shape, Rule::Positive)?;
        check_param("InverseGamma", "scale", &scale, Rule::Positive)?;
        Ok(InverseGamma { shape, scale })
    }
}

impl Distribution for InverseGamma {
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        check_value("InverseGamma", x, &[("shape", &self.shape), ("scale", &self.scale)])?;
        let (a, b) = (&self.shape, &self.scale);
        let xp = Param::from(x);
        let norm = a.mul(&b.ln()?)?.sub(&a.lgamma()?)?;
        let log_term = a.affine(1.0, 1.0)?.mul(&xp.ln()?)?;
        norm.sub(&log_term)?.sub(&b.div(&xp)?)?.tensor()
    }
}
