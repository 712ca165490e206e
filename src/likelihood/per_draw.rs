//! A log density with a hand-written gradient, computed draw by draw, as one candle op.
//!
//! ```text
//! z: [S, k];   f(z_s, g_s) = log p(z_s), writing g_s = ∂ log p/∂z_s   (in f64)
//! per_draw(z) = (log p(z_1), …, log p(z_S))  [S],   backward: ∂L/∂z_s = (∂L/∂y_s) · g_s
//! ```
//!
//! For small models whose log joint would otherwise spend its time in the overhead of a dozen
//! candle ops (allocations and backward nodes each): the value and the gradient come from one loop,
//! and the backward pass only scales the gradient the forward pass kept.

use candle_core::{bail, DType, Device, Tensor};

use crate::kernels;

/// `f(z_s, g_s)` for every row z_s of `z` `[S, k]` as one differentiable candle op, giving `[S]`.
///
/// `f` gets each row converted to f64 and writes ∂ log p/∂z_s into `g_s` (k values, zeroed
/// before the call); its value is rounded once to `z`'s dtype. The gradient is kept from the
/// forward pass, so the backward pass costs one scaling. `z` must be on the CPU in f32 or f64 (an
/// error otherwise: off the CPU, compose candle ops instead); `name` names the op in errors.
///
/// ```
/// use candle_core::{Device, Tensor, Var};
///
/// // log N(z; 0, I) up to its constant: −½ Σ z², gradient −z
/// let z = Var::new(&[[1.0f64, 2.0], [0.5, -1.0]], &Device::Cpu)?;
/// let lp = elbo::likelihood::per_draw("normal", z.as_tensor(), |z, g| {
///     for (gk, &zk) in g.iter_mut().zip(z) {
///         *gk = -zk;
///     }
///     -0.5 * z.iter().map(|v| v * v).sum::<f64>()
/// })?;
/// assert_eq!(lp.to_vec1::<f64>()?, [-2.5, -0.625]);
/// let grads = lp.sum_all()?.backward()?;
/// assert_eq!(grads.get(z.as_tensor()).unwrap().to_vec2::<f64>()?, [[-1.0, -2.0], [-0.5, 1.0]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn per_draw<F>(name: &'static str, z: &Tensor, f: F) -> candle_core::Result<Tensor>
where
    F: Fn(&[f64], &mut [f64]) -> f64 + Send + Sync + 'static,
{
    z.dims2().map_err(|_| candle_core::Error::Msg(format!("{name}: z must be [S, k]; it has shape {:?}", z.dims())))?;
    if !matches!(z.device(), Device::Cpu) || !matches!(z.dtype(), DType::F32 | DType::F64) {
        bail!("{name}: the per-draw op runs on the CPU in f32 or f64, not {:?} on {:?}", z.dtype(), z.device());
    }
    kernels::per_draw::per_draw(name, z, f)
}
