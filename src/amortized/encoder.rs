//! The amortised Gaussian family: an encoder network maps each datum to its q(z | x).
//!
//! ```text
//! encoder(x) = [μ_φ(x), log σ²_φ(x)]          x: [B, ...]  →  [B, 2D]
//! q_φ(z | x_b) = N(μ_φ(x_b), diag σ²_φ(x_b))
//! ```
//!
//! The encoder is any candle-nn [`Module`]: a `candle_nn::seq()` of layers, a struct of your own, a
//! closure wrapped in `candle_nn::func`. Its last layer must have 2D outputs; the first D are the
//! means, the last D the log-variances (unconstrained, so any linear head will do).

use candle_core::{Module, Tensor};

use super::DiagGaussian;
use crate::{Error, Result};

/// q_φ(z | x) = N(μ_φ(x), diag σ²_φ(x)) from an encoder whose output is `[B, 2D]` = [μ, log σ²].
#[derive(Clone, Debug)]
pub struct AmortizedGaussian<E> {
    encoder: E,
    latent_dim: usize,
}

impl<E: Module> AmortizedGaussian<E> {
    /// The family whose encoder is `encoder`, for latents of dimension `latent_dim` ≥ 1.
    pub fn new(encoder: E, latent_dim: usize) -> Result<Self> {
        if latent_dim == 0 {
            return Err(Error::config("latent_dim", 0, "the latent dimension must be at least 1"));
        }
        Ok(AmortizedGaussian { encoder, latent_dim })
    }

    /// D, the latent dimension.
    pub fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    /// The encoder network.
    pub fn encoder(&self) -> &E {
        &self.encoder
    }

    /// q(z | x_b) for every row of the batch `x` (`[B, ...]`), differentiable in the encoder's
    /// weights. Errors if the encoder does not give `[B, 2D]`.
    pub fn posterior(&self, x: &Tensor) -> Result<DiagGaussian> {
        let out = self.encoder.forward(x)?;
        let d = self.latent_dim;
        let b = x.dims().first().copied().unwrap_or(0);
        if out.dims() != [b, 2 * d] {
            return Err(Error::ModelOutput {
                problem: format!(
                    "encoder gave shape {:?} for a batch of {b}; an amortised Gaussian with latent \
                     dimension {d} needs [{b}, {}] = [μ, log σ²]",
                    out.dims(),
                    2 * d
                ),
            });
        }
        DiagGaussian::new(out.narrow(1, 0, d)?, out.narrow(1, d, d)?)
    }
}
