//! The decoder p_θ(x | z), and the Bernoulli likelihood on logits that image models use.
//!
//! ```text
//! Decoder:     (x [B, P], z [B, D])  ↦  log p_θ(x_b | z_b)  [B]
//! Bernoulli on logits l = f_θ(z), for grey levels x ∈ [0, 1]:
//!   log p(x | l) = Σ_p [x_p · l_p − softplus(l_p)]  = Σ_p [x_p log σ(l_p) + (1 − x_p) log σ(−l_p)]
//!   ∂/∂l_p = x_p − σ(l_p)
//! ```
//!
//! softplus(l) = max(l, 0) + ln(1 + e^(−|l|)) is finite for every finite l, so the likelihood never
//! takes the log of a probability that rounded to 0. On grey levels (not just 0/1) it is the
//! "continuous Bernoulli without its normaliser", as in the classic VAE examples: comparable
//! across toolkits, not a normalised density.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor, D};

use crate::special::softplus;
use crate::Result;

/// p_θ(x | z): the log-likelihood of each datum given its latent draw.
pub trait Decoder {
    /// log p_θ(x_b | z_b) for each row b: `x` is `[B, ...]`, `z` is `[B, D]`, the result `[B]`.
    fn log_likelihood(&self, x: &Tensor, z: &Tensor) -> candle_core::Result<Tensor>;
}

impl<F> Decoder for F
where
    F: Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
{
    fn log_likelihood(&self, x: &Tensor, z: &Tensor) -> candle_core::Result<Tensor> {
        self(x, z)
    }
}

/// Σ_p [x_p · l_p − softplus(l_p)] over the last axis: the Bernoulli log-likelihood of `x` in
/// [0, 1] under logits `logits` (same shape `[..., P]`), giving `[...]`.
///
/// On the CPU in f32/f64 it is one fused op (value and gradient in one pass over the pixels);
/// elsewhere a composition of candle ops. The gradient flows to `logits` only (x is data).
pub fn bernoulli_logit_log_likelihood(x: &Tensor, logits: &Tensor) -> Result<Tensor> {
    if x.dims() != logits.dims() {
        return Err(crate::Error::DimensionMismatch {
            what: format!("Bernoulli likelihood: data of shape {:?} for logits", x.dims()),
            expected: logits.elem_count(),
            got: x.elem_count(),
        });
    }
    let per_pixel = match (logits.device(), logits.dtype()) {
        (Device::Cpu, DType::F32 | DType::F64) if x.dtype() == logits.dtype() => {
            logits.apply_op2(&x.detach(), BernoulliLogit)?
        }
        _ => ((x * logits)? - softplus(logits)?)?,
    };
    Ok(per_pixel.sum(D::Minus1)?)
}

/// softplus on the host in the stable form.
#[inline]
fn softplus_f32(l: f32) -> f32 {
    l.max(0.0) + (-l.abs()).exp().ln_1p()
}

#[inline]
fn softplus_f64(l: f64) -> f64 {
    l.max(0.0) + (-l.abs()).exp().ln_1p()
}

/// x · l − softplus(l) elementwise, with the gradient (x − σ(l)) with respect to l.
#[derive(Clone, Copy)]
struct BernoulliLogit;

impl CustomOp2 for BernoulliLogit {
    fn name(&self) -> &'static str {
        "bernoulli_logit"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        use candle_core::cpu_backend::binary_map;
        let shape = l1.shape().clone();
        let out = match (s1, s2) {
            (CpuStorage::F32(l), CpuStorage::F32(x)) => {
                CpuStorage::F32(binary_map(l1, l2, l, x, |l, x| x * l - softplus_f32(l)))
            }
            (CpuStorage::F64(l), CpuStorage::F64(x)) => {
                CpuStorage::F64(binary_map(l1, l2, l, x, |l, x| x * l - softplus_f64(l)))
            }
            _ => bail!(
                "bernoulli_logit: logits and data must both be f32 or both f64, got {:?} and {:?}",
                s1.dtype(),
                s2.dtype()
            ),
        };
        Ok((out, shape))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        x: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let d = (x - candle_nn::ops::sigmoid(logits)?)?;
        Ok((Some(grad.mul(&d)?), None))
    }
}
