//! Batched log-densities on candle tensors, differentiable in the value and in every parameter.
//!
//! ```text
//! log_prob(x)[b] = log p(x[b] | θ[b])     b ranges over the broadcast batch shape of x and θ
//! ```
//!
//! A distribution is built from parameters that are each either a host scalar or a tensor
//! ([`Param`]), and [`Distribution::log_prob`] returns the elementwise log density (or log mass)
//! with the broadcast shape of the value and the tensor parameters. Broadcasting is numpy's,
//! aligned from the right: a `[S, 1]` parameter and a `[1, N]` value give `[S, N]`. Multivariate
//! distributions reduce their event axes (the last axis, or the last two for a matrix).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use elbo::dist::{Distribution, Gamma, Normal};
//!
//! let x = Tensor::new(&[0.5f64, 1.0, 2.0], &Device::Cpu)?;
//! let lp = Normal::new(0.0, 1.0)?.log_prob(&x)?;                      // [3]
//! let rate = Tensor::new(&[[1.0f64], [2.0]], &Device::Cpu)?;           // [2, 1]
//! let lp2 = Gamma::new(2.0, &rate)?.log_prob(&x.unsqueeze(0)?)?;      // [2, 3]
//! assert_eq!(lp.dims(), &[3]);
//! assert_eq!(lp2.dims(), &[2, 3]);
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! Conventions:
//! - Normalising constants are kept: every log density equals statrs's `ln_pdf`/`ln_pmf` on the
//!   support (the tests check this in `f32` and `f64`).
//! - Scalar parameters cost nothing extra: they enter as `affine` ops and host constants (ln Γ of
//!   a scalar shape is computed on the host in `f64`). A scalar parameter out of its range
//!   (a scale ≤ 0, a non-finite location, low ≥ high, …) makes the constructor return a
//!   [`candle_core::Error::Msg`] naming the distribution and the parameter.
//! - Tensor parameters are not checked (reading them would cost a device sync and they are often
//!   latent): out of range they give NaN or ±∞. They must be floating point and have the value's
//!   dtype and device; there is no dtype promotion.
//! - Values are not checked against the support either. What comes out there is documented on
//!   each distribution; it is never a panic.
//! - Distributions that need ln Γ of a *tensor* (Gamma, InverseGamma, Beta, Dirichlet, StudentT
//!   and LKJ with tensor shape parameters; Binomial and Poisson always) are CPU-only until the
//!   special functions have CUDA kernels; see [`crate::special`].

use candle_core::{bail, Result, Shape, Tensor};

use crate::special;

mod beta;
mod cauchy;
mod discrete;
mod gamma;
mod lkj;
mod multivariate;
mod normal;
mod student_t;
mod uniform;

pub use beta::{Beta, Dirichlet};
pub use cauchy::{Cauchy, HalfCauchy};
pub use discrete::{Bernoulli, Binomial, Categorical, Poisson};
pub use gamma::{Exponential, Gamma, InverseGamma};
pub use lkj::LkjCholesky;
pub use multivariate::MultivariateNormal;
pub use normal::{HalfNormal, LogNormal, Normal};
pub use student_t::StudentT;
pub use uniform::Uniform;

/// ln 2.
const LN_2: f64 = std::f64::consts::LN_2;
/// ln π.
const LN_PI: f64 = 1.144_729_885_849_400_2;

/// A log density (or log mass) on tensors.
pub trait Distribution {
    /// The elementwise log density of `x`, with the broadcast shape of `x` and the parameters
    /// (event axes of multivariate distributions reduced).
    fn log_prob(&self, x: &Tensor) -> Result<Tensor>;
}

/// A distribution parameter: a host scalar, or a tensor that broadcasts against the value.
#[derive(Clone, Debug)]
pub enum Param {
    /// One value for every element, applied with cheap `affine` ops.
    Scalar(f64),
    /// A tensor of parameters (possibly latent: gradients flow into it).
    Tensor(Tensor),
}

impl From<f64> for Param {
    fn from(v: f64) -> Self {
        Param::Scalar(v)
    }
}

impl From<Tensor> for Param {
    fn from(t: Tensor) -> Self {
        Param::Tensor(t)
    }
}

impl From<&Tensor> for Param {
    fn from(t: &Tensor) -> Self {
        Param::Tensor(t.clone())
    }
}

impl Param {
    /// The value of a scalar parameter, `None` for a tensor.
    pub fn as_scalar(&self) -> Option<f64> {
        match self {
            Param::Scalar(v) => Some(*v),
            Param::Tensor(_) => None,
        }
    }

    /// The tensor of a tensor parameter, `None` for a scalar.
    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self {
            Param::Scalar(_) => None,
            Param::Tensor(t) => Some(t),
        }
    }

    // ---- arithmetic on scalars and tensors, used to write each density once ----

    fn unary(&self, host: fn(f64) -> f64, op: fn(&Tensor) -> Result<Tensor>) -> Result<Param> {
        Ok(match self {
            Param::Scalar(v) => Param::Scalar(host(*v)),
            Param::Tensor(t) => Param::Tensor(op(t)?),
        })
    }

    fn binary(
        &self,
        rhs: &Param,
        host: fn(f64, f64) -> f64,
        tt: fn(&Tensor, &Tensor) -> Result<Tensor>,
        ts: fn(&Tensor, f64) -> Result<Tensor>,
        st: fn(f64, &Tensor) -> Result<Tensor>,
    ) -> Result<Param> {
        Ok(match (self, rhs) {
            (Param::Scalar(a), Param::Scalar(b)) => Param::Scalar(host(*a, *b)),
            (Param::Tensor(a), Param::Scalar(b)) => Param::Tensor(ts(a, *b)?),
            (Param::Scalar(a), Param::Tensor(b)) => Param::Tensor(st(*a, b)?),
            (Param::Tensor(a), Param::Tensor(b)) => Param::Tensor(tt(a, b)?),
        })
    }

    pub(crate) fn add(&self, rhs: &Param) -> Result<Param> {
        self.binary(rhs, |a, b| a + b, Tensor::broadcast_add, |t, s| t.affine(1.0, s), |s, t| t.affine(1.0, s))
    }

    pub(crate) fn sub(&self, rhs: &Param) -> Result<Param> {
        self.binary(rhs, |a, b| a - b, Tensor::broadcast_sub, |t, s| t.affine(1.0, -s), |s, t| t.affine(-1.0, s))
    }

    pub(crate) fn mul(&self, rhs: &Param) -> Result<Param> {
        self.binary(rhs, |a, b| a * b, Tensor::broadcast_mul, |t, s| t.affine(s, 0.0), |s, t| t.affine(s, 0.0))
    }

    pub(crate) fn div(&self, rhs: &Param) -> Result<Param> {
        self.binary(
            rhs,
            |a, b| a / b,
            Tensor::broadcast_div,
            |t, s| t.affine(1.0 / s, 0.0),
            |s, t| t.recip()?.affine(s, 0.0),
        )
    }

    /// m·self + a.
    pub(crate) fn affine(&self, m: f64, a: f64) -> Result<Param> {
        Ok(match self {
            Param::Scalar(v) => Param::Scalar(m * v + a),
            Param::Tensor(t) => Param::Tensor(t.affine(m, a)?),
        })
    }

    pub(crate) fn ln(&self) -> Result<Param> {
        self.unary(f64::ln, Tensor::log)
    }

    pub(crate) fn exp(&self) -> Result<Param> {
        self.unary(f64::exp, Tensor::exp)
    }

    pub(crate) fn sqr(&self) -> Result<Param> {
        self.unary(|v| v * v, Tensor::sqr)
    }

    pub(crate) fn log1p(&self) -> Result<Param> {
        self.unary(f64::ln_1p, special::log1p)
    }

    pub(crate) fn lgamma(&self) -> Result<Param> {
        self.unary(statrs::function::gamma::ln_gamma, special::lgamma)
    }

    pub(crate) fn softplus(&self) -> Result<Param> {
        self.unary(|v| v.max(0.0) + (-v.abs()).exp().ln_1p(), special::softplus)
    }

    /// coef · term(), where a scalar coefficient of exactly 0 drops the term (so that, e.g., the
    /// (α − 1) ln x of a Gamma(1, β) density is absent rather than 0 · (−∞) = NaN at x = 0).
    pub(crate) fn times(&self, term: impl FnOnce() -> Result<Param>) -> Result<Param> {
        match self {
            Param::Scalar(c) if *c == 0.0 => Ok(Param::Scalar(0.0)),
            _ => self.mul(&term()?),
        }
    }

    /// The tensor, or an error if the computation never met a tensor.
    pub(crate) fn tensor(self) -> Result<Tensor> {
        match self {
            Param::Tensor(t) => Ok(t),
            Param::Scalar(v) => bail!("internal error: a log density came out as the scalar {v}"),
        }
    }
}

/// Makes `lp` a tensor with the broadcast shape of itself and `shape_of`: terms that do not depend
/// on the value (a Uniform density, a Beta(1, 1) density) still get the value's shape and a
/// (zero) gradient with respect to it.
pub(crate) fn finish(lp: Param, shape_of: &Tensor) -> Result<Tensor> {
    match lp {
        Param::Scalar(c) => shape_of.affine(0.0, c),
        Param::Tensor(t) => {
            if t.shape() == &t.shape().broadcast_shape_binary_op(shape_of.shape(), "log_prob")? {
                Ok(t)
            } else {
                t.broadcast_add(&shape_of.affine(0.0, 0.0)?)
            }
        }
    }
}

/// The rules a scalar parameter can be held to.
#[derive(Clone, Copy)]
pub(crate) enum Rule {
    /// any finite value
    Finite,
    /// finite and > 0
    Positive,
    /// finite and ≥ 0
    NonNegative,
}

impl Rule {
    fn holds(self, v: f64) -> bool {
        v.is_finite()
            && match self {
                Rule::Finite => true,
                Rule::Positive => v > 0.0,
                Rule::NonNegative => v >= 0.0,
            }
    }

    fn text(self) -> &'static str {
        match self {
            Rule::Finite => "finite",
            Rule::Positive => "finite and > 0",
            Rule::NonNegative => "finite and ≥ 0",
        }
    }
}

/// Checks a parameter when it is built: a scalar against `rule`, a tensor for a float dtype.
pub(crate) fn check_param(dist: &str, name: &str, p: &Param, rule: Rule) -> Result<()> {
    match p {
        Param::Scalar(v) if !rule.holds(*v) => {
            bail!("{dist}: parameter `{name}` must be {}, got {v}", rule.text())
        }
        Param::Scalar(_) => Ok(()),
        Param::Tensor(t) if !t.dtype().is_float() => {
            bail!("{dist}: parameter `{name}` must be a floating-point tensor, got dtype {:?}", t.dtype())
        }
        Param::Tensor(_) => Ok(()),
    }
}

/// Checks the value and the tensor parameters at `log_prob` time: a floating-point value, and
/// tensor parameters of the same dtype and device.
pub(crate) fn check_value(dist: &str, x: &Tensor, params: &[(&str, &Param)]) -> Result<()> {
    if !x.dtype().is_float() {
        bail!("{dist}: the value must be a floating-point tensor, got dtype {:?}", x.dtype());
    }
    for (name, p) in params {
        if let Param::Tensor(t) = p {
            if t.dtype() != x.dtype() {
                bail!("{dist}: parameter `{name}` has dtype {:?} but the value has dtype {:?}", t.dtype(), x.dtype());
            }
            if !t.device().same_device(x.device()) {
                bail!("{dist}: parameter `{name}` is on {:?} but the value is on {:?}", t.device(), x.device());
            }
        }
    }
    Ok(())
}

/// The size of the last axis of `t`, or an error naming what was expected.
pub(crate) fn last_dim(dist: &str, what: &str, t: &Tensor) -> Result<usize> {
    match t.dims().last() {
        Some(&k) => Ok(k),
        None => bail!("{dist}: {what} must have at least one axis (the event axis), got a scalar tensor"),
    }
}

/// The diagonal of the last two axes of `m` ([..., n, n] → [..., n]), differentiable.
pub(crate) fn diagonal(m: &Tensor, n: usize) -> Result<Tensor> {
    let idx: Vec<u32> = (0..n as u32).map(|i| i * (n as u32 + 1)).collect();
    let idx = Tensor::new(idx.as_slice(), m.device())?;
    m.flatten_from(m.rank() - 2)?.index_select(&idx, m.rank() - 2)
}

/// The broadcast of two shapes, or an error naming the distribution.
pub(crate) fn broadcast_shape(dist: &str, a: &Shape, b: &Shape) -> Result<Shape> {
    a.broadcast_shape_binary_op(b, "log_prob")
        .map_err(|_| candle_core::Error::Msg(format!("{dist}: batch shapes {a:?} and {b:?} do not broadcast")))
}
