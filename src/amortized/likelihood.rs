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

use candle_core::{DType, Device, Tensor, D};

use crate::kernels::bernoulli;
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
/// On the CPU in f32/f64 it is one fused op (`src/kernels/bernoulli.rs`: the value in one pass over
/// the pixels, the gradient in one more); elsewhere a composition of candle ops. The gradient flows to `logits` only (x is data).
pub fn bernoulli_logit_log_likelihood(x: &Tensor, logits: &Tensor) -> Result<Tensor> {
    if x.dims() != logits.dims() || logits.rank() == 0 {
        return Err(crate::Error::DimensionMismatch {
            what: format!("Bernoulli likelihood: data of shape {:?} for logits of shape {:?}", x.dims(), logits.dims()),
            expected: logits.elem_count(),
            got: x.elem_count(),
        });
    }
    let fused = matches!(logits.device(), Device::Cpu)
        && matches!(logits.dtype(), DType::F32 | DType::F64)
        && x.dtype() == logits.dtype();
    if fused {
        Ok(bernoulli::log_likelihood(x, logits)?)
    } else {
        Ok(bernoulli_composite(&x.detach(), logits)?)
    }
}

/// The same likelihood as candle ops (the path off the CPU, e.g. on CUDA).
fn bernoulli_composite(x: &Tensor, logits: &Tensor) -> candle_core::Result<Tensor> {
    ((x * logits)? - softplus(logits)?)?.sum(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused op and the composition of candle ops used off the CPU agree in value and in the
    /// gradient with respect to the logits, in f32 and f64.
    #[test]
    fn fused_op_matches_the_composite_path() {
        let dev = Device::Cpu;
        let l: Vec<f64> = (0..4 * 37).map(|i| (i as f64 * 0.37).sin() * 30.0).collect();
        let x: Vec<f64> = (0..4 * 37).map(|i| (i % 7) as f64 / 6.0).collect();
        for (dtype, tol) in [(DType::F64, 1e-13), (DType::F32, 2e-6)] {
            let logits = candle_core::Var::from_tensor(
                &Tensor::from_vec(l.clone(), (4, 37), &dev).unwrap().to_dtype(dtype).unwrap(),
            )
            .unwrap();
            let data = Tensor::from_vec(x.clone(), (4, 37), &dev).unwrap().to_dtype(dtype).unwrap();
            let run = |f: &dyn Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>| {
                let y = f(&data, logits.as_tensor()).unwrap();
                // weight the rows differently so that the gradient's row scaling is checked too
                let w = Tensor::new(&[1.0f64, -2.0, 0.5, 3.0], &dev).unwrap().to_dtype(dtype).unwrap();
                let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
                let host =
                    |t: &Tensor| t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
                (host(&y), host(g.get(logits.as_tensor()).unwrap()))
            };
            let (yf, gf) = run(&|x, l| bernoulli_logit_log_likelihood(x, l).map_err(candle_core::Error::wrap));
            let (yc, gc) = run(&bernoulli_composite);
            for (a, b) in yf.iter().zip(&yc) {
                assert!((a - b).abs() <= tol * b.abs().max(1.0), "{dtype:?} value: fused {a}, composite {b}");
            }
            for (a, b) in gf.iter().zip(&gc) {
                assert!((a - b).abs() <= tol * b.abs().max(1.0), "{dtype:?} gradient: fused {a}, composite {b}");
            }
        }
    }
}
