//! The optimiser's state in a fit: the parameters, the update rule with its memory, and the step
//! count. Where the memory lives ([`Storage`]) is chosen once, when the state is made: by default
//! on the host (f64) for parameters on the CPU, where the engine's gradients arrive (in closed
//! form, or read back from autodiff), and as tensors beside the parameters on other devices; on
//! request in the parameters' dtype, updated in place on the CPU (a network's many weights). A
//! step whose gradients come in another form converts the gradients, never the memory.
//!
//! ```text
//! λ ← rule(λ, g, η_t)        storage: Host (f64 vectors) | Tensors | InPlace (CPU, λ's dtype)
//! ```

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::gradient::{Gradient, HostVec};
use super::{Optimizer, Storage, UpdateRule};
use crate::linalg::{host_tensor, to_f64_vec};
use crate::{Error, Result};

/// The parameters with their update rule and its memory.
#[derive(Debug)]
pub struct OptimizerState {
    vars: Vec<Var>,
    rule: Box<dyn UpdateRule>,
    storage: Storage,
    t: i32,
}

impl OptimizerState {
    /// Fresh state for `vars` with a built-in optimiser, the memory on the host when every
    /// variable is on the CPU and as tensors otherwise.
    pub fn new(config: Optimizer, vars: Vec<Var>) -> Result<Self> {
        config.validate()?;
        Self::with_rule(config.rule(), vars)
    }

    /// Fresh state for `vars` with any update rule (storage as in [`OptimizerState::new`]).
    pub fn with_rule(rule: Box<dyn UpdateRule>, vars: Vec<Var>) -> Result<Self> {
        let storage = Storage::for_vars(&vars);
        Self::with_rule_in(rule, vars, storage)
    }

    /// Fresh state for `vars` with a built-in optimiser, the memory in `storage`
    /// ([`Storage::InPlace`] needs F32 or F64 variables on the CPU).
    pub fn with_storage(config: Optimizer, vars: Vec<Var>, storage: Storage) -> Result<Self> {
        config.validate()?;
        Self::with_rule_in(config.rule(), vars, storage)
    }

    /// Fresh state for `vars` with any update rule, the memory in `storage`.
    pub fn with_rule_in(mut rule: Box<dyn UpdateRule>, vars: Vec<Var>, storage: Storage) -> Result<Self> {
        if storage == Storage::InPlace {
            if let Some(v) = vars.iter().find(|v| !v.device().is_cpu() || !v.dtype().is_float()) {
                return Err(Error::config(
                    "storage",
                    format!("InPlace for a {:?} parameter on {:?}", v.dtype(), v.device().location()),
                    "in-place storage needs floating-point parameters on the CPU",
                ));
            }
        }
        rule.start(&vars, storage)?;
        Ok(OptimizerState { vars, rule, storage, t: 0 })
    }

    /// Where the memory lives.
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// One descent step on the loss whose gradients are `grads`, with learning rate `lr`.
    /// A variable without a gradient is left as it is (on the host: moved by a zero gradient).
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        let grads = Gradient::Tensors(self.vars.iter().map(|v| grads.get(v.as_tensor()).map(Tensor::detach)).collect());
        self.update(None, grads, lr, None)
    }

    /// The same step from tensor gradients, one per variable in order (`None`: the loss does not
    /// depend on it); with [`Storage::InPlace`] they are read where they are, without a copy.
    pub fn step_tensors(&mut self, grads: Vec<Option<Tensor>>, lr: f64) -> Result<()> {
        if grads.len() != self.vars.len() {
            return Err(Error::config(
                "grads",
                grads.len(),
                format!("expected one per variable ({})", self.vars.len()),
            ));
        }
        self.update(None, Gradient::Tensors(grads), lr, None)
    }

    /// The same step from host gradients: `values` are the variables' current values and `grads`
    /// the loss's gradients (one vector per variable, row-major); `scale` multiplies the update of
    /// variable `i` element-wise (for [`super::LocStep::ScaleRelative`]).
    pub fn step_host(
        &mut self,
        values: Vec<Vec<f64>>,
        grads: &[Vec<f64>],
        lr: f64,
        scale: Option<(usize, &[f64])>,
    ) -> Result<()> {
        if values.len() != self.vars.len() || grads.len() != self.vars.len() {
            return Err(Error::config(
                "grads",
                grads.len(),
                format!("expected one per variable ({})", self.vars.len()),
            ));
        }
        self.update(Some(values), Gradient::Host(grads.to_vec()), lr, scale)
    }

    /// The engine's step: `values` are the variables' current host values when the caller has
    /// them (else they are read when needed), `scale` as in [`OptimizerState::step_host`].
    pub(crate) fn update(
        &mut self,
        values: Option<Vec<HostVec>>,
        grads: Gradient,
        lr: f64,
        scale: Option<(usize, &[f64])>,
    ) -> Result<()> {
        self.t += 1;
        match self.storage {
            Storage::Host => {
                let mut values = match values {
                    Some(values) => values,
                    None => self.vars.iter().map(|v| to_f64_vec(v.as_tensor())).collect::<Result<_>>()?,
                };
                let grads = grads.into_host(&self.vars)?;
                self.rule.step_host(self.t, &mut values, &grads, lr, scale)?;
                for (var, x) in self.vars.iter().zip(values) {
                    var.set(&host_tensor(x, var)?)?;
                }
                Ok(())
            }
            Storage::Tensors => {
                let grads = grads.into_tensors(&self.vars)?;
                let scale = match scale {
                    Some((i, s)) => Some((i, host_tensor(s.to_vec(), &self.vars[i])?)),
                    None => None,
                };
                self.rule.step_tensors(self.t, &self.vars, &grads, lr, scale.as_ref().map(|(i, s)| (*i, s)))
            }
            Storage::InPlace => {
                if scale.is_some() {
                    return Err(Error::config(
                        "loc_step",
                        "ScaleRelative",
                        "scale-relative steps need host or tensor storage, not in-place",
                    ));
                }
                let grads = grads.into_tensors(&self.vars)?;
                self.rule.step_in_place(self.t, &self.vars, &grads, lr)
            }
        }
    }

    /// Forgets the rule's memory and the step count (after q's parameters were moved back).
    pub fn reset(&mut self) -> Result<()> {
        self.t = 0;
        self.rule.reset()
    }

    /// The number of steps taken.
    pub fn steps_taken(&self) -> usize {
        self.t as usize
    }

    /// The update rule's name, for reports.
    pub fn rule_name(&self) -> String {
        self.rule.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Host storage takes tensor gradients mid-run by reading them to the host: the same bits as
    /// host gradients throughout, and the same step count.
    #[test]
    fn tensor_gradients_into_host_storage_change_nothing() {
        let c = [1.0f64, 2.0, 0.5];
        let loss_grad = |lam: &[f64]| -> Vec<f64> { lam.iter().zip(c).map(|(l, c)| l.exp() - c).collect() };
        let (a, b) =
            (Var::zeros(3, DType::F64, &Device::Cpu).unwrap(), Var::zeros(3, DType::F64, &Device::Cpu).unwrap());
        let mut plain = OptimizerState::new(Optimizer::adam(0.05), vec![a.clone()]).unwrap();
        let mut mixed = OptimizerState::new(Optimizer::adam(0.05), vec![b.clone()]).unwrap();
        for t in 0..500 {
            let lam = a.as_tensor().to_vec1::<f64>().unwrap();
            plain.step_host(vec![lam.clone()], &[loss_grad(&lam)], 0.05, None).unwrap();
            let lam = b.as_tensor().to_vec1::<f64>().unwrap();
            let g = loss_grad(&lam);
            if (200..210).contains(&t) {
                let mut grads = b.as_tensor().sum_all().unwrap().backward().unwrap();
                grads.insert(b.as_tensor(), Tensor::new(g.as_slice(), &Device::Cpu).unwrap());
                mixed.step(&grads, 0.05).unwrap();
            } else {
                mixed.step_host(vec![lam], &[g], 0.05, None).unwrap();
            }
        }
        assert_eq!(a.as_tensor().to_vec1::<f64>().unwrap(), b.as_tensor().to_vec1::<f64>().unwrap());
        assert_eq!(plain.steps_taken(), mixed.steps_taken());
    }
}
