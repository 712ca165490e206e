//! The Beta distribution on (0, 1) and its multivariate generalisation, the Dirichlet on the
//! simplex.
//!
//! ```text
//! Beta(a, b):      log p(x) = (a − 1) ln x + (b − 1) ln(1 − x) − ln B(a, b)          0 < x < 1
//! Dirichlet(α):    log p(x) = Σₖ (αₖ − 1) ln xₖ + ln Γ(Σₖ αₖ) − Σₖ ln Γ(αₖ)          xₖ > 0, Σₖ xₖ = 1
//! ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b)
//! ```
//! a, b > 0 and the concentrations αₖ > 0, k = 1..K. ln(1 − x) is computed with the exact
//! [`crate::special::log1p`].

use candle_core::{bail, Result, Tensor, D};

use crate::special::lgamma;

use super::{check_param, check_value, finish, last_dim, Distribution, Param, Rule};

/// The beta distribution with concentrations `a` > 0 and `b` > 0 (mean a / (a + b)):
///
/// ```text
/// log p(x) = (a − 1) ln x + (b − 1) ln(1 − x) − ln Γ(a) − ln Γ(b) + ln Γ(a + b)        0 < x < 1
/// ```
///
/// Outside the support: NaN for x < 0 or x > 1. At x = 0 (and likewise x = 1 with b): −∞ for
/// a > 1, +∞ for a < 1, and for a scalar a = 1 the (a − 1) ln x term is dropped, so the value is
/// finite as in statrs. Tensor `a` or `b` are CPU-only (ln Γ of a tensor).
#[derive(Clone, Debug)]
pub struct Beta {
    a: Param,
    b: Param,
}

impl Beta {
    /// Beta(a, b). Errors if a scalar `a` or `b` is not > 0.
    pub fn new(a: impl Into<Param>, b: impl Into<Param>) -> Result<Self> {
        let (a, b) = (a.into(), b.into());
        check_param("Beta", "a", &a, Rule::Positive)?;
        check_param("Beta", "b", &b, Rule::Positive)?;
        Ok(Beta { a, b })
    }
}

impl Distribution for Beta {
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        check_value("Beta", x, &[("a", &self.a), ("b", &self.b)])?;
        let (a, b) = (&self.a, &self.b);
        let xp = Param::from(x);
        let left = a.affine(1.0, -1.0)?.times(|| xp.ln())?;
        let right = b.affine(1.0, -1.0)?.times(|| xp.affine(-1.0, 0.0)?.log1p())?;
        let ln_beta = a.lgamma()?.add(&b.lgamma()?)?.sub(&a.add(b)?.lgamma()?)?;
        finish(left.add(&right)?.sub(&ln_beta)?, x)
    }
}

/// The Dirichlet distribution on the (K − 1)-simplex with concentrations `concentration` = α,
/// a tensor `[..., K]` (or a scalar, for the symmetric Dirichlet with every αₖ equal):
///
/// ```text
/// log p(x) = Σₖ (αₖ − 1) ln xₖ + ln Γ(Σₖ αₖ) − Σₖ ln Γ(αₖ)
/// ```
///
/// The value is `[..., K]`; the result has the broadcast batch shape (the last axis reduced).
/// The simplex constraint is not checked: the formula is evaluated for any x (NaN where some
/// xₖ < 0). A tensor α is CPU-only (ln Γ of a tensor).
#[derive(Clone, Debug)]
pub struct Dirichlet {
    concentration: Param,
}

impl Dirichlet {
    /// Dirichlet(concentration). Errors if a scalar concentration is not > 0, or a tensor one is
    /// a scalar tensor (it needs the event axis K).
    pub fn new(concentration: impl Into<Param>) -> Result<Self> {
        let concentration = concentration.into();
        check_param("Dirichlet", "concentration", &concentration, Rule::Positive)?;
        if let Param::Tensor(t) = &concentration {
            last_dim("Dirichlet", "the concentration", t)?;
        }
        Ok(Dirichlet { concentration })
    }
}

impl Distribution for Dirichlet {
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        check_value("Dirichlet", x, &[("concentration", &self.concentration)])?;
        let k = last_dim("Dirichlet", "the value", x)?;
        let alpha = &self.concentration;
        let log_x = || Ok(Param::Tensor(x.log()?));
        let (kernel, norm) = match alpha {
            Param::Scalar(a) => {
                // symmetric: (α − 1) Σₖ ln xₖ + ln Γ(Kα) − K ln Γ(α)
                let kernel = match alpha.affine(1.0, -1.0)?.times(log_x)? {
                    Param::Tensor(t) => Param::Tensor(t.sum(D::Minus1)?),
                    // α = 1: the uniform density on the simplex, constant in x
                    _ => Param::Tensor(x.sum(D::Minus1)?.affine(0.0, 0.0)?),
                };
                let kf = k as f64;
                let norm = statrs::function::gamma::ln_gamma(kf * a) - kf * statrs::function::gamma::ln_gamma(*a);
                (kernel, Param::Scalar(norm))
            }
            Param::Tensor(t) => {
                if t.dim(D::Minus1)? != k {
                    bail!(
                        "Dirichlet: the value has K = {k} categories but the concentration has {}",
                        t.dim(D::Minus1)?
                    );
                }
                let kernel = alpha.affine(1.0, -1.0)?.mul(&log_x()?)?.tensor()?.sum(D::Minus1)?;
                let norm = lgamma(&t.sum(D::Minus1)?)?.sub(&lgamma(t)?.sum(D::Minus1)?)?;
                (Param::Tensor(kernel), Param::Tensor(norm))
            }
        };
        kernel.add(&norm)?.tensor()
    }
}
