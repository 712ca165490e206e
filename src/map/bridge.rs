//! The bridge from a model to argmin: −log p(x, z) and its gradient over a flat `Vec<f64>`, with
//! the gradient from candle's autodiff.
//!
//! ```text
//! cost(z)     = −log p(x, z)          z ∈ ℝᴰ, the unconstrained latent vector (Jacobians included)
//! gradient(z) = −∇_z log p(x, z)      one forward and one backward pass of the model's log_joint
//! ```
//!
//! argmin's line searches ask for the cost and then the gradient at the same point; the bridge keeps
//! the last evaluation, so each point costs one forward and one backward pass. The batched
//! [`log_joint_and_grad`] serves the Hessians and deterministic ADVI: the S rows of z go through the
//! model in one call, and since log p(x, z_s) depends on row s alone, the gradient of their sum
//! holds every row's gradient.

use std::cell::{Cell, RefCell};

use argmin::core::{CostFunction, Gradient};
use candle_core::{DType, Device, Tensor, Var};

use super::lbfgs::Point;
use crate::linalg::to_f64_vec;
use crate::model::LogJoint;
use crate::objective::evaluate;
use crate::{Error, Result};

/// −log p(x, z) of a model as an argmin problem: [`CostFunction`] and [`Gradient`] over
/// `Vec<f64>` (the unconstrained z), so any argmin solver can minimise it.
///
/// ```
/// use argmin::core::{CostFunction, Gradient};
/// use elbo::map::NegLogJoint;
/// use elbo::prelude::*;
/// // log p(z) = −½ ‖z − (1, −2)‖²
/// let model = elbo::from_fn(2, |z: &Tensor| {
///     z.broadcast_sub(&Tensor::new(&[1.0f64, -2.0], z.device())?)?.sqr()?.sum(1)? * -0.5
/// });
/// let bridge = NegLogJoint::new(&model);
/// let z = vec![0.0, 0.0];
/// assert_eq!(bridge.cost(&z).unwrap(), 2.5);
/// assert_eq!(bridge.gradient(&z).unwrap(), vec![-1.0, 2.0]);
/// assert_eq!(bridge.evaluations(), 1); // the gradient came with the cost
/// ```
#[derive(Debug)]
pub struct NegLogJoint<'a, M: ?Sized> {
    model: &'a M,
    dtype: DType,
    device: Device,
    memo: Memo,
}

impl<'a, M: LogJoint + ?Sized> NegLogJoint<'a, M> {
    /// The bridge for `model`, evaluated in F64 on the CPU (see [`NegLogJoint::dtype`]).
    pub fn new(model: &'a M) -> Self {
        NegLogJoint { model, dtype: DType::F64, device: Device::Cpu, memo: Memo::default() }
    }

    /// The dtype of the z handed to the model (its tensors must have the same).
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// The device of the z handed to the model.
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// D, the length of z.
    pub fn dim(&self) -> usize {
        self.model.dim()
    }

    /// The machine epsilon of the model's dtype.
    pub(crate) fn epsilon(&self) -> f64 {
        dtype_epsilon(self.dtype)
    }

    /// How many points have been evaluated (each one forward and one backward pass).
    pub fn evaluations(&self) -> usize {
        self.memo.evaluations.get()
    }

    /// −log p(x, z) and −∇_z log p(x, z) at `z` (length D). Fails with [`Error::ModelOutput`] when
    /// either is not finite, naming the point.
    pub fn value_and_gradient(&self, z: &[f64]) -> Result<(f64, Vec<f64>)> {
        let d = self.model.dim();
        if z.len() != d {
            return Err(Error::DimensionMismatch { what: "z".into(), expected: d, got: z.len() });
        }
        self.memo.get(z, || {
            let (lp, g) = log_joint_and_grad(self.model, z, d, self.dtype, &self.device)?;
            check_finite(lp[0], &g, z)?;
            Ok((-lp[0], g.iter().map(|x| -x).collect()))
        })
    }
}

impl<M: LogJoint + ?Sized> CostFunction for NegLogJoint<'_, M> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, z: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        Ok(self.value_and_gradient(z)?.0)
    }
}

impl<M: LogJoint + ?Sized> Gradient for NegLogJoint<'_, M> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, z: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        Ok(self.value_and_gradient(z)?.1)
    }
}

/// The last evaluation of a smooth function, and how many evaluations there were.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    last: RefCell<Option<Point>>,
    pub(crate) evaluations: Cell<usize>,
}

impl Memo {
    /// The value and gradient at `x`: the stored ones if `x` is the last point, else `eval()`'s.
    /// A point with a coordinate that is not finite is refused without an evaluation.
    pub(crate) fn get(&self, x: &[f64], eval: impl FnOnce() -> Result<(f64, Vec<f64>)>) -> Result<(f64, Vec<f64>)> {
        if let Some((at, f, g)) = &*self.last.borrow() {
            if at == x {
                return Ok((*f, g.clone()));
            }
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::ModelOutput {
                problem: format!("was asked for a point whose coordinate {i} is {} (the search diverged)", x[i]),
            });
        }
        self.evaluations.set(self.evaluations.get() + 1);
        let (f, g) = eval()?;
        *self.last.borrow_mut() = Some((x.to_vec(), f, g.clone()));
        Ok((f, g))
    }
}

/// The machine epsilon of F32 or F64 (of F64 for anything else).
pub(crate) fn dtype_epsilon(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => f64::from(f32::EPSILON),
        _ => f64::EPSILON,
    }
}

/// Fails with [`Error::ModelOutput`] if log p or its gradient at `z` is not finite.
fn check_finite(log_p: f64, grad: &[f64], z: &[f64]) -> Result<()> {
    if !log_p.is_finite() {
        return Err(Error::ModelOutput { problem: format!("returned {log_p} at z = {}", short(z)) });
    }
    let bad: Vec<usize> = (0..grad.len()).filter(|&i| !grad[i].is_finite()).take(8).collect();
    if !bad.is_empty() {
        return Err(Error::ModelOutput {
            problem: format!("has a non-finite gradient in coordinates {bad:?} at z = {} (log p = {log_p})", short(z)),
        });
    }
    Ok(())
}

/// The first few coordinates of a point, for messages.
pub(crate) fn short(z: &[f64]) -> String {
    const SHOW: usize = 8;
    let number =
        |x: f64| if x == 0.0 || (1e-3..1e6).contains(&x.abs()) { format!("{x:.4}") } else { format!("{x:.4e}") };
    let head: Vec<String> = z.iter().take(SHOW).map(|&x| number(x)).collect();
    let more = if z.len() > SHOW { format!(", … ({} more)", z.len() - SHOW) } else { String::new() };
    format!("[{}{more}]", head.join(", "))
}

/// How many rows of z one call of the model takes: up to 256, fewer for big data sets, so that the
/// model's [S, N, …] intermediates stay within a few hundred MB (S · N ≤ 4 Mi).
fn rows_per_call<M: LogJoint + ?Sized>(model: &M) -> usize {
    model.data_len().map_or(256, |n| (1usize << 22) / n.max(1)).clamp(1, 256)
}

/// log p(x, z_s) and ∇_z log p(x, z_s) for each row z_s of `z` (host f64, row-major `[S, d]`), from
/// batched calls of the model in `dtype` on `device`: values `[S]` and gradients `[S, d]`.
pub(crate) fn log_joint_and_grad<M: LogJoint + ?Sized>(
    model: &M,
    z: &[f64],
    d: usize,
    dtype: DType,
    device: &Device,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut values = Vec::with_capacity(z.len() / d.max(1));
    let mut grads = Vec::with_capacity(z.len());
    for block in z.chunks(rows_per_call(model) * d) {
        let s = block.len() / d;
        let t = Tensor::from_slice(block, (s, d), &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?;
        let var = Var::from_tensor(&t)?;
        let log_p = evaluate(model, var.as_tensor())?;
        let store = log_p.sum_all()?.backward()?;
        values.extend(to_f64_vec(&log_p)?);
        match store.get(var.as_tensor()) {
            Some(g) => grads.extend(to_f64_vec(g)?),
            None => grads.extend(std::iter::repeat_n(0.0, block.len())), // log p does not depend on z
        }
    }
    Ok((values, grads))
}
