//! The per-datum diagonal Gaussian q(z | x) = N(μ, diag σ²) that an encoder gives, for a batch.
//!
//! ```text
//! σ = exp(½ log σ²)                       (the encoder outputs log σ², any real number)
//! z = μ + σ ⊙ ε,  ε ~ N(0, I)
//! log q(z) = Σ_d [−½ ((z_d − μ_d)/σ_d)² − ½ log σ²_d − ½ log 2π]
//! H(q)     = Σ_d ½ (1 + log 2π + log σ²_d)
//! KL(q ‖ N(0, I)) = Σ_d ½ (μ_d² + σ²_d − 1 − log σ²_d)
//! log N(z; 0, I)  = Σ_d [−½ z_d² − ½ log 2π]
//! ```
//!
//! Shapes: μ and log σ² are `[B, D]` (B data, D latent dimensions). Draws z may carry leading
//! sample axes, `[..., B, D]`; densities sum over the last axis.

use candle_core::{Tensor, D};

use crate::special::HALF_LN_2PI;
use crate::{Error, Result};

/// q(z | x_b) = N(μ_b, diag σ²_b) for each datum b of a batch, differentiable in μ and log σ².
#[derive(Clone, Debug)]
pub struct DiagGaussian {
    loc: Tensor,
    log_var: Tensor,
}

impl DiagGaussian {
    /// From the means `loc` and log-variances `log_var`, both `[B, D]` of one float dtype.
    pub fn new(loc: Tensor, log_var: Tensor) -> Result<Self> {
        let (b, d) = loc.dims2().map_err(|_| Error::ModelOutput {
            problem: format!("gave a loc of shape {:?}; an amortised Gaussian needs [B, D]", loc.dims()),
        })?;
        if log_var.dims() != [b, d] {
            return Err(Error::ModelOutput {
                problem: format!("gave log σ² of shape {:?}, but loc has shape [{b}, {d}]", log_var.dims()),
            });
        }
        if loc.dtype() != log_var.dtype() || !loc.dtype().is_float() {
            return Err(Error::config(
                "dtype",
                format!("loc {:?}, log σ² {:?}", loc.dtype(), log_var.dtype()),
                "loc and log σ² must share one float dtype",
            ));
        }
        Ok(DiagGaussian { loc, log_var })
    }

    /// B, the number of data.
    pub fn batch(&self) -> usize {
        self.loc.dims()[0]
    }

    /// D, the latent dimension.
    pub fn dim(&self) -> usize {
        self.loc.dims()[1]
    }

    /// μ, `[B, D]`.
    pub fn loc(&self) -> &Tensor {
        &self.loc
    }

    /// log σ², `[B, D]`.
    pub fn log_var(&self) -> &Tensor {
        &self.log_var
    }

    /// σ = exp(½ log σ²), `[B, D]`.
    pub fn scale(&self) -> Result<Tensor> {
        Ok((&self.log_var * 0.5)?.exp()?)
    }

    /// z = μ + σ ⊙ ε for noise `eps` of shape `[B, D]` or `[S, B, D]` (the result has its shape).
    pub fn rsample(&self, eps: &Tensor) -> Result<Tensor> {
        self.check_draws("eps", eps)?;
        Ok(eps.broadcast_mul(&self.scale()?)?.broadcast_add(&self.loc)?)
    }

    /// log q(z | x_b) for draws `z` of shape `[B, D]` or `[S, B, D]`, giving `[B]` or `[S, B]`.
    pub fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        self.check_draws("z", z)?;
        let u = z.broadcast_sub(&self.loc)?.broadcast_mul(&(&self.log_var * -0.5)?.exp()?)?;
        let per_dim = (u.sqr()? * -0.5)?.broadcast_sub(&(&self.log_var * 0.5)?)?;
        Ok((per_dim.sum(D::Minus1)? - self.dim() as f64 * HALF_LN_2PI)?)
    }

    /// The entropy H(q(z | x_b)) in closed form, `[B]`.
    pub fn entropy(&self) -> Result<Tensor> {
        let d = self.dim() as f64;
        Ok(((self.log_var.sum(D::Minus1)? * 0.5)? + d * (0.5 + HALF_LN_2PI))?)
    }

    /// KL(q(z_d | x_b) ‖ N(0, 1)) for each datum and dimension, `[B, D]`.
    pub fn kl_standard_normal_per_dim(&self) -> Result<Tensor> {
        let t = ((self.loc.sqr()? + self.log_var.exp()?)? - &self.log_var)?;
        Ok(((t - 1.0)? * 0.5)?)
    }

    /// KL(q(z | x_b) ‖ N(0, I)) in closed form, `[B]`.
    pub fn kl_standard_normal(&self) -> Result<Tensor> {
        Ok(self.kl_standard_normal_per_dim()?.sum(D::Minus1)?)
    }

    /// Checks that draws are `[B, D]` or `[S, B, D]` for this batch.
    fn check_draws(&self, what: &str, z: &Tensor) -> Result<()> {
        let dims = z.dims();
        let (b, d) = (self.batch(), self.dim());
        let ok = match dims {
            [b2, d2] => (*b2, *d2) == (b, d),
            [_, b2, d2] => (*b2, *d2) == (b, d),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::DimensionMismatch {
                what: format!("{what} of shape {dims:?} (want [{b}, {d}] or [S, {b}, {d}])"),
                expected: d,
                got: dims.last().copied().unwrap_or(0),
            })
        }
    }
}

/// log N(z; 0, I) summed over the last axis: `[..., D]` → `[...]`.
pub fn standard_normal_log_prob(z: &Tensor) -> Result<Tensor> {
    let d = z.dims().last().copied().unwrap_or(0) as f64;
    Ok(((z.sqr()?.sum(D::Minus1)? * -0.5)? - d * HALF_LN_2PI)?)
}
