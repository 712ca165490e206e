//! One candle op for a log density whose value and gradient a closure computes draw by draw.
//!
//! ```text
//! z: [S, k]  (f32 or f64, on the CPU);   f(z_s, g_s) = log p(z_s), writing g_s = ∂ log p/∂z_s
//! forward:   y_s = f(z_s)  (in f64, rounded once to z's dtype),  G_s = g_s kept
//! backward:  ∂L/∂z_s = (∂L/∂y_s) · G_s
//! ```

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Shape, Tensor, WithDType};

use super::kept_gradient::KeptGradient;

/// f(z_s, g_s) of every row of `z` `[S, k]` as one op (`name` in its errors): `[S]`, with the
/// gradients f wrote kept for the backward pass.
pub(crate) fn per_draw<F>(name: &'static str, z: &Tensor, f: F) -> candle_core::Result<Tensor>
where
    F: Fn(&[f64], &mut [f64]) -> f64 + Send + Sync + 'static,
{
    z.contiguous()?.apply_op1(PerDrawOp { name, f, gradients: KeptGradient::new(name) })
}

/// The op: the closure and the gradients of its last forward pass (one op value per call).
struct PerDrawOp<F> {
    name: &'static str,
    f: F,
    gradients: KeptGradient,
}

impl<F: Fn(&[f64], &mut [f64]) -> f64> PerDrawOp<F> {
    /// The value of each draw [S] and the gradients [S, k] (f64), each row converted to f64 first.
    fn forward<T: WithDType>(&self, z: &[T], k: usize) -> (Vec<T>, Vec<f64>) {
        let mut grads = vec![0.0f64; z.len()];
        let mut zs = vec![0.0f64; k];
        let values = z
            .chunks_exact(k)
            .zip(grads.chunks_exact_mut(k))
            .map(|(row, g)| {
                for (a, &b) in zs.iter_mut().zip(row) {
                    *a = b.to_f64();
                }
                T::from_f64((self.f)(&zs, g))
            })
            .collect();
        (values, grads)
    }
}

impl<F: Fn(&[f64], &mut [f64]) -> f64 + Send + Sync> CustomOp1 for PerDrawOp<F> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (s, k) = layout.shape().dims2()?;
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("{}: expects a contiguous z", self.name);
        };
        let (out, gradients) = match storage {
            CpuStorage::F64(z) => {
                let (v, g) = self.forward(&z[start..end], k);
                (CpuStorage::F64(v), g)
            }
            CpuStorage::F32(z) => {
                let (v, g) = self.forward(&z[start..end], k);
                (CpuStorage::F32(v), g)
            }
            other => bail!("{}: z of dtype {:?} (f32 or f64 only)", self.name, other.dtype()),
        };
        self.gradients.keep(gradients)?;
        Ok((out, Shape::from(s)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        self.gradients.backward(arg, grad).map(Some)
    }
}
