//! The gradient of a fused op's rows, computed in its forward pass and kept for the backward pass.
//!
//! ```text
//! forward:   y_s = f(z_s)  and  G_s = ∂f/∂z_s        (z: [S, k], y: [S]; G kept, f64)
//! backward:  ∂L/∂z_s = (∂L/∂y_s) · G_s
//! ```
//!
//! The fused likelihoods ([`crate::glm`], `elbo_models::EightSchools`) get G from the same pass
//! over the data as the value, so the backward pass only scales the kept rows.

use std::sync::Mutex;

use candle_core::{bail, DType, Tensor};

/// G from the last forward pass of an op named `name`.
#[derive(Debug)]
pub struct KeptGradient {
    name: &'static str,
    rows: Mutex<Option<Vec<f64>>>,
}

impl KeptGradient {
    /// Nothing kept yet.
    pub fn new(name: &'static str) -> Self {
        KeptGradient { name, rows: Mutex::new(None) }
    }

    /// Keeps G (row-major [S, k]) from a forward pass, replacing the last one's.
    pub fn keep(&self, rows: Vec<f64>) -> candle_core::Result<()> {
        *self.rows.lock().map_err(|_| candle_core::Error::Msg(format!("{}: poisoned lock", self.name)))? = Some(rows);
        Ok(())
    }

    /// ∂L/∂z for the op's input `arg` (`[S, k]`) from the incoming gradient `grad` (`[S]`): each kept
    /// row times its draw's incoming gradient, in `arg`'s dtype and device.
    pub fn backward(&self, arg: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        let guard = self.rows.lock().map_err(|_| candle_core::Error::Msg(format!("{}: poisoned lock", self.name)))?;
        let Some(rows) = guard.as_ref() else {
            bail!("{}: backward before forward", self.name);
        };
        let g: Vec<f64> = grad.to_dtype(DType::F64)?.to_vec1()?;
        let k = arg.dim(1)?;
        let scaled: Vec<f64> =
            rows.chunks_exact(k).zip(&g).flat_map(|(row, &gs)| row.iter().map(move |&v| gs * v)).collect();
        Tensor::from_vec(scaled, arg.shape(), arg.device())?.to_dtype(arg.dtype())
    }
}
