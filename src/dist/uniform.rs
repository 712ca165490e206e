//! The continuous uniform distribution on an interval.
//!
//! ```text
//! Uniform(a, b):  log p(x) = −ln(b − a)        a ≤ x ≤ b,  a < b
//! ```

use candle_core::{bail, Result, Tensor};

use super::{check_param, check_value, Distribution, Param, Rule};

/// The uniform distribution on [`low`, `high`] = [a, b]:
///
/// ```text
/// log p(x) = −ln(b − a)
/// ```
///
/// Values outside [a, b] are not masked: the result is −ln(b − a) there too (not −∞). Its
/// gradient with respect to x is 0; with respect to a and b it is ∓1/(b − a).
#[derive(Clone, Debug)]
pub struct Uniform {
    low: Param,
    high: Param,
}

impl Uniform {
    /// Uniform(low, high). Errors if a scalar bound is not finite, or both are scalars and
    /// `low` ≥ `high`.
    pub fn new(low: impl Into<Param>, high: impl Into<Param>) -> Result<Self> {
        let (low, high) = (low.into(), high.into());
        check_param("Uniform", "low", &low, Rule::Finite)?;
        check_param("Uniform", "high", &high, Rule::Finite)?;
        if let (Param::Scalar(a), Param::Scalar(b)) = (&low, &high) {
            if a >= b {
                bail!("Uniform: parameter `low` must be < `high`, got low = {a}, high = {b}");
            }
        }
        Ok(Uniform { low, high })
    }
}

impl Distribution for Uniform {
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        check_value("Uniform", x, &[("low", &self.low), ("high", &self.high)])?;
        // 0·x keeps the value's shape (and a zero gradient for it) in the result
        Param::from(x).affine(0.0, 0.0)?.sub(&self.high.sub(&self.low)?.ln()?)?.tensor()
    }
}
