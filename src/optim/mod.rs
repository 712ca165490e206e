//! The optimiser slot: how q's parameters λ move given the loss's gradient g = ∇_λ(−ELBO), with
//! a step-size schedule.
//!
//! ```text
//! Adam: m_t = β₁ m + (1 − β₁) g_t,  v_t = β₂ v + (1 − β₂) g_t²,
//!       λ ← λ − η_t · m̂_t / (√v̂_t + ε),   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)
//! SGD:  λ ← λ − η_t g_t
//! Schedules: constant η_t = η;  exponential η_t = η · (η_final / η)^(t / T)
//! ```
//!
//! - [`Optimizer`]: the built-in rules and their settings, what [`crate::Advi::optimizer`] takes;
//! - [`UpdateRule`]: the slot itself, which [`Adam`] and [`Sgd`] implement and a user's own rule
//!   implements too ([`crate::Advi::update_rule`]);
//! - [`OptimizerState`]: the parameters with the rule and its memory, kept on the host, as
//!   tensors, or in the parameters' dtype updated in place on the CPU ([`Storage`], chosen once);
//! - [`LrSchedule`], [`LocStep`]: the step size over the run, and the units of the location's
//!   steps.
//!
//! A user's own rule, sign-SGD (λ ← λ − η sign(g)), in a fit:
//!
//! ```
//! use elbo::optim::UpdateRule;
//! use elbo::prelude::*;
//!
//! #[derive(Clone, Debug)]
//! struct SignSgd;
//! impl UpdateRule for SignSgd {
//!     fn name(&self) -> String { "sign-SGD".into() }
//!     fn start(&mut self, _vars: &[candle_core::Var], _storage: elbo::optim::Storage) -> elbo::Result<()> { Ok(()) }
//!     fn step_host(
//!         &mut self, _t: i32, values: &mut [Vec<f64>], grads: &[Vec<f64>], lr: f64, scale: Option<(usize, &[f64])>,
//!     ) -> elbo::Result<()> {
//!         for (i, (x, g)) in values.iter_mut().zip(grads).enumerate() {
//!             for (k, (x, g)) in x.iter_mut().zip(g).enumerate() {
//!                 let unit = match scale { Some((j, s)) if j == i => s[k], _ => 1.0 };
//!                 *x -= lr * unit * g.signum();
//!             }
//!         }
//!         Ok(())
//!     }
//!     fn reset(&mut self) -> elbo::Result<()> { Ok(()) }
//! }
//!
//! let model = elbo::from_fn(2, |z: &Tensor| (z - 1.5)?.sqr()?.sum(1)? * -0.5);
//! let fit = Advi::new(MeanField).dtype(DType::F64).update_rule(SignSgd).lr(0.01).seed(4).fit(&model)?;
//! assert!(fit.mean()?.to_vec1::<f64>()?.iter().all(|m| (m - 1.5).abs() < 0.2));
//! assert!(fit.to_string().contains("sign-SGD"));
//! # Ok::<(), elbo::Error>(())
//! ```

mod adam;
mod gradient;
mod schedule;
mod sgd;
mod state;

pub use adam::Adam;
pub use gradient::first_nonfinite;
pub(crate) use gradient::Gradient;
pub use schedule::{LocStep, LrSchedule};
pub use sgd::Sgd;
pub use state::OptimizerState;

use candle_core::{Tensor, Var};

use crate::linalg::{host_tensor, to_f64_vec};
use crate::{Error, Result};

/// Where an optimiser's memory lives and how a step reaches the parameters; chosen once, when
/// the [`OptimizerState`] is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Host vectors of f64: the parameters are read to the host, stepped there and written back
    /// (the engine's choice when every parameter is on the CPU: its gradients arrive there).
    Host,
    /// Tensors beside the parameters, stepped by tensor ops (the choice on other devices).
    Tensors,
    /// Vectors in the parameters' dtype, the parameters updated in place by one CPU pass each
    /// (F32 or F64 parameters on the CPU): for many parameters whose gradients are tensors, as a
    /// network's weights, where the host's f64 round trip would cost more than the step.
    InPlace,
}

impl Storage {
    /// The default for `vars`: [`Storage::Host`] when every one is on the CPU, else
    /// [`Storage::Tensors`].
    pub fn for_vars(vars: &[Var]) -> Self {
        if vars.iter().all(|v| v.device().is_cpu()) {
            Storage::Host
        } else {
            Storage::Tensors
        }
    }
}

/// The optimiser and its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// Adam (Kingma & Ba 2015) without weight decay.
    Adam {
        /// Learning rate η.
        lr: f64,
        /// Decay of the first-moment average.
        beta1: f64,
        /// Decay of the second-moment average.
        beta2: f64,
        /// Added to √v̂ to keep steps finite.
        eps: f64,
    },
    /// Plain stochastic gradient ascent.
    Sgd {
        /// Learning rate η.
        lr: f64,
    },
}

impl Default for Optimizer {
    fn default() -> Self {
        Optimizer::adam(0.01)
    }
}

impl Optimizer {
    /// Adam with learning rate `lr`, β = (0.9, 0.999), ε = 1e-8.
    pub fn adam(lr: f64) -> Self {
        Optimizer::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }

    /// Plain SGD with learning rate `lr`.
    pub fn sgd(lr: f64) -> Self {
        Optimizer::Sgd { lr }
    }

    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            Optimizer::Adam { lr, .. } | Optimizer::Sgd { lr } => lr,
        }
    }

    /// The same optimiser with base learning rate `lr`.
    pub fn with_lr(self, new: f64) -> Self {
        match self {
            Optimizer::Adam { beta1, beta2, eps, .. } => Optimizer::Adam { lr: new, beta1, beta2, eps },
            Optimizer::Sgd { .. } => Optimizer::Sgd { lr: new },
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let lr = self.lr();
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(Error::config("lr", lr, "the learning rate must be positive and finite"));
        }
        if let Optimizer::Adam { beta1, beta2, eps, .. } = *self {
            for (name, b) in [("beta1", beta1), ("beta2", beta2)] {
                if !(0.0..1.0).contains(&b) {
                    return Err(Error::config(name, b, "Adam's decay rates must lie in [0, 1)"));
                }
            }
            if !(eps > 0.0 && eps.is_finite()) {
                return Err(Error::config("eps", eps, "Adam's ε must be positive and finite"));
            }
        }
        Ok(())
    }
}

impl Optimizer {
    /// The update rule these settings make, with fresh memory.
    pub fn rule(&self) -> Box<dyn UpdateRule> {
        match *self {
            Optimizer::Adam { beta1, beta2, eps, .. } => Box::new(Adam::new(beta1, beta2, eps)),
            Optimizer::Sgd { .. } => Box::new(Sgd),
        }
    }
}

/// The optimiser slot: one descent step on the loss, given its gradient and the step size η_t
/// (from [`crate::Advi::lr`] and the schedule, halved by the engine's recoveries). The rule keeps
/// whatever memory it needs between steps; it must be `Clone`, so that each fit starts from the
/// rule as given.
pub trait UpdateRule: std::fmt::Debug + Send + UpdateRuleClone {
    /// A short name for reports, e.g. "Adam".
    fn name(&self) -> String;

    /// Prepares the memory for `vars` (zero moments, say) in `storage`: on the host
    /// ([`UpdateRule::step_host`] follows), as tensors beside them ([`UpdateRule::step_tensors`]),
    /// or in their dtype for in-place updates ([`UpdateRule::step_in_place`]).
    fn start(&mut self, vars: &[Var], storage: Storage) -> Result<()>;

    /// Step `t` (from 1) on host values, in place: `values[i]` moves along −`grads[i]` (both
    /// row-major); `scale`, when given, multiplies the update of variable `i` element-wise (the
    /// location's steps in q's sds, [`LocStep::ScaleRelative`]).
    fn step_host(
        &mut self,
        t: i32,
        values: &mut [Vec<f64>],
        grads: &[Vec<f64>],
        lr: f64,
        scale: Option<(usize, &[f64])>,
    ) -> Result<()>;

    /// The same step on tensors (parameters off the CPU); a variable without a gradient is left
    /// alone. The default reads the values and gradients to the host, runs
    /// [`UpdateRule::step_host`] and writes the values back.
    fn step_tensors(
        &mut self,
        t: i32,
        vars: &[Var],
        grads: &[Option<Tensor>],
        lr: f64,
        scale: Option<(usize, &Tensor)>,
    ) -> Result<()> {
        let mut values = vars.iter().map(|v| to_f64_vec(v.as_tensor())).collect::<Result<Vec<_>>>()?;
        let grads = grads
            .iter()
            .zip(&values)
            .map(|(g, x)| match g {
                Some(g) => to_f64_vec(g),
                None => Ok(vec![0.0; x.len()]),
            })
            .collect::<Result<Vec<_>>>()?;
        let scale = match scale {
            Some((i, s)) => Some((i, to_f64_vec(s)?)),
            None => None,
        };
        self.step_host(t, &mut values, &grads, lr, scale.as_ref().map(|(i, s)| (*i, s.as_slice())))?;
        for (var, x) in vars.iter().zip(values) {
            var.set(&host_tensor(x, var)?)?;
        }
        Ok(())
    }

    /// The step on CPU parameters updated in place ([`Storage::InPlace`]); a variable without a
    /// gradient is left alone. The default is [`UpdateRule::step_tensors`] (a rule with nothing
    /// faster to offer treats in-place storage as tensors).
    fn step_in_place(&mut self, t: i32, vars: &[Var], grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        self.step_tensors(t, vars, grads, lr, None)
    }

    /// Forgets the memory (q's parameters were moved back after a run of non-finite steps).
    fn reset(&mut self) -> Result<()>;
}

/// A fresh copy of an update rule in a box (implemented for every `Clone` rule).
pub trait UpdateRuleClone {
    /// The copy.
    fn clone_rule(&self) -> Box<dyn UpdateRule>;
}

impl<T: UpdateRule + Clone + 'static> UpdateRuleClone for T {
    fn clone_rule(&self) -> Box<dyn UpdateRule> {
        Box::new(self.clone())
    }
}
