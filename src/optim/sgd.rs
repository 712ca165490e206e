//! Plain stochastic gradient descent on the loss (ascent on the ELBO).
//!
//! ```text
//! λ ← λ − η_t g_t
//! ```

use candle_core::{Tensor, Var};

use super::gradient::HostVec;
use super::{Storage, UpdateRule};
use crate::Result;

/// SGD: no memory between steps.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sgd;

impl UpdateRule for Sgd {
    fn name(&self) -> String {
        "SGD".into()
    }

    fn start(&mut self, _vars: &[Var], _storage: Storage) -> Result<()> {
        Ok(())
    }

    fn step_host(
        &mut self,
        _t: i32,
        values: &mut [HostVec],
        grads: &[HostVec],
        lr: f64,
        scale: Option<(usize, &[f64])>,
    ) -> Result<()> {
        for (i, (x, g)) in values.iter_mut().zip(grads).enumerate() {
            match scale {
                Some((j, f)) if j == i => x.iter_mut().zip(g).zip(f).for_each(|((x, g), f)| *x -= g * lr * f),
                _ => x.iter_mut().zip(g).for_each(|(x, g)| *x -= g * lr),
            }
        }
        Ok(())
    }

    fn step_tensors(
        &mut self,
        _t: i32,
        vars: &[Var],
        grads: &[Option<Tensor>],
        lr: f64,
        scale: Option<(usize, &Tensor)>,
    ) -> Result<()> {
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            let Some(g) = g else { continue };
            let mut update = (g * lr)?;
            if let Some((j, s)) = scale {
                if j == i {
                    update = (update * s)?;
                }
            }
            var.set(&(var.as_tensor() - update)?)?;
        }
        Ok(())
    }

    fn reset(&mut self) -> Result<()> {
        Ok(())
    }
}
