//! A step's gradient of the loss (−ELBO), on the host or as tensors, with the guard and the
//! clipping that every step applies:
//!
//! ```text
//! guard:  skip the step if any gᵢ is not finite
//! clip:   g ← g · min(1, c / ‖g‖₂)
//! ```

use candle_core::{DType, Tensor, Var};

use crate::linalg::{host_tensor, to_f64_vec};
use crate::Result;

/// The first variable (by index) whose gradient has a non-finite entry, and those entries' flat
/// indices (at most 10); `None` for a variable the loss does not depend on. The guard of every
/// step, for callers that step an [`super::OptimizerState`] with tensor gradients.
pub fn first_nonfinite(gs: &[Option<Tensor>]) -> Result<Option<(usize, Vec<usize>)>> {
    let bad = |g: &[f64]| -> Vec<usize> { (0..g.len()).filter(|&i| !g[i].is_finite()).take(10).collect() };
    // Contiguous CPU tensors: one read of each, no allocation.
    let scans: Option<Vec<bool>> =
        gs.iter().map(|g| g.as_ref().map_or(Some(true), crate::kernels::adam::all_finite)).collect();
    if let Some(scans) = scans {
        return match scans.iter().position(|ok| !ok) {
            Some(i) => Ok(gs[i].as_ref().map(to_f64_vec).transpose()?.map(|g| (i, bad(&g)))),
            None => Ok(None),
        };
    }
    // One host read for all gradients: Σ |g| is finite iff every entry is.
    let present: Vec<&Tensor> = gs.iter().flatten().collect();
    let Some(first) = present.first() else { return Ok(None) };
    let mut total = Tensor::zeros((), DType::F64, first.device())?;
    for g in &present {
        total = (total + g.abs()?.sum_all()?.to_dtype(DType::F64)?)?;
    }
    if total.to_scalar::<f64>()?.is_finite() {
        return Ok(None);
    }
    for (i, g) in gs.iter().enumerate() {
        if let Some(g) = g {
            let values = to_f64_vec(g)?;
            if values.iter().any(|x| !x.is_finite()) {
                return Ok(Some((i, bad(&values))));
            }
        }
    }
    Ok(None)
}

/// A variable's values on the host, row-major.
pub(crate) type HostVec = Vec<f64>;

/// A step's gradient of the loss (−ELBO), one entry per variable in `params()` order.
#[derive(Debug)]
pub(crate) enum Gradient {
    /// Row-major f64 values on the host.
    Host(Vec<HostVec>),
    /// Tensors of the variables' shapes; `None` for a variable the loss does not depend on.
    Tensors(Vec<Option<Tensor>>),
}

impl Gradient {
    /// The first variable (by index) with a non-finite entry, and those entries' flat indices.
    pub(crate) fn first_nonfinite(&self) -> Result<Option<(usize, Vec<usize>)>> {
        let bad = |g: &[f64]| -> Vec<usize> { (0..g.len()).filter(|&i| !g[i].is_finite()).take(10).collect() };
        match self {
            Gradient::Host(gs) => {
                Ok(gs.iter().position(|g| g.iter().any(|x| !x.is_finite())).map(|i| (i, bad(&gs[i]))))
            }
            Gradient::Tensors(gs) => first_nonfinite(gs),
        }
    }

    /// The Euclidean norm over every entry of every variable.
    pub(crate) fn norm(&self) -> Result<f64> {
        match self {
            Gradient::Host(gs) => Ok(gs.iter().flatten().map(|g| g * g).sum::<f64>().sqrt()),
            Gradient::Tensors(gs) => {
                let mut sq = 0.0;
                for g in gs.iter().flatten() {
                    sq += g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                }
                Ok(sq.sqrt())
            }
        }
    }

    /// Every entry times `factor`.
    pub(crate) fn scale(&mut self, factor: f64) -> Result<()> {
        match self {
            Gradient::Host(gs) => gs.iter_mut().flatten().for_each(|g| *g *= factor),
            Gradient::Tensors(gs) => {
                for g in gs.iter_mut().flatten() {
                    *g = (g.detach() * factor)?;
                }
            }
        }
        Ok(())
    }

    /// The gradient on the host (variables without one get zeros).
    pub(super) fn into_host(self, vars: &[Var]) -> Result<Vec<HostVec>> {
        match self {
            Gradient::Host(gs) => Ok(gs),
            Gradient::Tensors(gs) => gs
                .into_iter()
                .zip(vars)
                .map(|(g, var)| match g {
                    Some(g) => to_f64_vec(&g),
                    None => Ok(vec![0.0; var.elem_count()]),
                })
                .collect(),
        }
    }

    /// The gradient as tensors of the variables' dtype and device.
    pub(super) fn into_tensors(self, vars: &[Var]) -> Result<Vec<Option<Tensor>>> {
        match self {
            Gradient::Tensors(gs) => Ok(gs),
            Gradient::Host(gs) => gs.into_iter().zip(vars).map(|(g, var)| Ok(Some(host_tensor(g, var)?))).collect(),
        }
    }
}
