//! The gradient of a fused op's rows, computed in its forward pass and kept for the backward pass.
//!
//! ```text
//! forward:   y_s = f(x_s)  and  G_s = ∂f/∂x_s        (x: [S, ...], y: [S]; G kept, f64)
//! backward:  ∂L/∂x_s = (∂L/∂y_s) · G_s
//! ```
//!
//! The fused likelihoods (GLM, mixture, per-draw log densities) get G from the same pass over the
//! data as the value, so the backward pass only scales the kept rows.

use std::sync::Mutex;

use candle_core::{bail, DType, Tensor};

/// G from the last forward pass of an op named `name`: by default one f64 row per draw
/// (row-major `[S, k]`), or any other layout `G` an op with several inputs keeps.
#[derive(Debug)]
pub(crate) struct KeptGradient<G = Vec<f64>> {
    name: &'static str,
    kept: Mutex<Option<G>>,
}

impl<G> KeptGradient<G> {
    /// Nothing kept yet.
    pub(crate) fn new(name: &'static str) -> Self {
        KeptGradient { name, kept: Mutex::new(None) }
    }

    /// Keeps G from a forward pass, replacing the last one's.
    pub(crate) fn keep(&self, gradient: G) -> candle_core::Result<()> {
        *self.kept.lock().map_err(|_| candle_core::Error::Msg(format!("{}: poisoned lock", self.name)))? =
            Some(gradient);
        Ok(())
    }

    /// `f` of the kept G; an error if no forward pass has kept one.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&G) -> candle_core::Result<R>) -> candle_core::Result<R> {
        let guard = self.kept.lock().map_err(|_| candle_core::Error::Msg(format!("{}: poisoned lock", self.name)))?;
        let Some(gradient) = guard.as_ref() else {
            bail!("{}: backward before forward", self.name);
        };
        f(gradient)
    }
}

impl KeptGradient {
    /// ∂L/∂x for the op's input `arg` (`[S, k]`) from the incoming gradient `grad` (`[S]`): each kept
    /// row times its draw's incoming gradient, in `arg`'s dtype and device.
    pub(crate) fn backward(&self, arg: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        self.with(|rows| {
            let upstream: Vec<f64> = grad.to_dtype(DType::F64)?.to_vec1()?;
            scale_rows(rows, &upstream, arg)
        })
    }
}

/// `rows` (laid out as `arg`, `[S, ...]`, in f64) with each draw's block times `upstream[s]`, as a
/// tensor of `arg`'s shape, dtype and device.
pub(crate) fn scale_rows(rows: &[f64], upstream: &[f64], arg: &Tensor) -> candle_core::Result<Tensor> {
    let per = arg.elem_count() / upstream.len().max(1);
    let scaled: Vec<f64> = if per == 0 {
        Vec::new()
    } else {
        rows.chunks_exact(per).zip(upstream).flat_map(|(row, &u)| row.iter().map(move |&v| u * v)).collect()
    };
    Tensor::from_vec(scaled, arg.shape(), arg.device())?.to_dtype(arg.dtype())
}
