//! Stochastic gradient ascent on the ELBO: Adam (no weight decay) or plain SGD, with a
//! learning-rate schedule.
//!
//! ```text
//! g_t = ∇_λ (−ELBO)
//! Adam: m_t = β₁ m + (1 − β₁) g_t,  v_t = β₂ v + (1 − β₂) g_t²,
//!       λ ← λ − η_t · m̂_t / (√v̂_t + ε̂),   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)
//! SGD:  λ ← λ − η_t g_t
//! Schedules: constant η_t = η;  exponential η_t = η · (η_final / η)^(t / T)
//! ```
//!
//! candle-nn's `AdamW` decays weights by 0.01 by default, which pulls μ and log σ to zero and biases
//! VI; this Adam has no weight decay.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::{Error, Result};

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

/// How the learning rate changes over the run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum LrSchedule {
    /// η_t = η.
    #[default]
    Constant,
    /// η_t = η · (final_lr / η)^(t / T): geometric decay from η to `final_lr` over the T steps.
    Exponential {
        /// The learning rate at the last step.
        final_lr: f64,
    },
}

impl LrSchedule {
    /// η_t at step `t` of `total`, from base rate `lr`.
    pub fn lr_at(&self, lr: f64, t: usize, total: usize) -> f64 {
        match *self {
            LrSchedule::Constant => lr,
            LrSchedule::Exponential { final_lr } => {
                let frac = if total > 1 { t as f64 / (total - 1) as f64 } else { 1.0 };
                lr * (final_lr / lr).powf(frac.min(1.0))
            }
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let LrSchedule::Exponential { final_lr } = *self {
            if !(final_lr > 0.0 && final_lr.is_finite()) {
                return Err(Error::config("final_lr", final_lr, "must be positive and finite"));
            }
        }
        Ok(())
    }
}

/// How a step of the location μ is measured.
///
/// ```text
/// Absolute:       Δμ_j = −η · d_j                d_j: Adam's m̂/(√v̂ + ε) (SGD: the gradient)
/// ScaleRelative:  Δμ_j = −η · σ_j · d_j          σ_j: q's current sd of coordinate j
/// ```
///
/// Adam moves every parameter by about η a step. For the log-scales that is a relative change,
/// whatever the posterior's scale; for the location it is η in the model's units, which crawls
/// when a posterior sd is 1e3 and jitters by many sds when one is 1e-3. `ScaleRelative` measures
/// the location's steps in q's sds, so one η suits every scale; it is slower than `Absolute` when
/// a tight posterior lies far from the start (each step moves about η sds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LocStep {
    /// η in the model's units (the usual optimiser step).
    #[default]
    Absolute,
    /// η times q's sd along each coordinate.
    ScaleRelative,
}

/// The optimiser's state: Adam's moment estimates and step count.
#[derive(Debug)]
pub struct OptimizerState {
    config: Optimizer,
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
}

impl OptimizerState {
    /// Fresh state for `vars`.
    pub fn new(config: Optimizer, vars: Vec<Var>) -> Result<Self> {
        config.validate()?;
        let zeros = |vars: &[Var]| vars.iter().map(|v| v.zeros_like()).collect::<candle_core::Result<Vec<_>>>();
        let (m, v) = match config {
            Optimizer::Adam { .. } => (zeros(&vars)?, zeros(&vars)?),
            Optimizer::Sgd { .. } => (vec![], vec![]),
        };
        Ok(OptimizerState { config, vars, m, v, t: 0 })
    }

    /// One descent step on the loss whose gradients are `grads`, with learning rate `lr`.
    /// A variable without a gradient is left as it is.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step_scaled(grads, lr, None)
    }

    /// [`OptimizerState::step`] with the update of variable `i` multiplied element-wise by a
    /// tensor of its shape (for [`LocStep::ScaleRelative`]).
    pub fn step_scaled(&mut self, grads: &GradStore, lr: f64, scale: Option<(usize, &Tensor)>) -> Result<()> {
        let scaled = |i: usize, update: Tensor| -> Result<Tensor> {
            match scale {
                Some((j, s)) if j == i => Ok((update * s)?),
                _ => Ok(update),
            }
        };
        self.t += 1;
        match self.config {
            Optimizer::Sgd { .. } => {
                for (i, var) in self.vars.iter().enumerate() {
                    if let Some(g) = grads.get(var.as_tensor()) {
                        var.set(&(var.as_tensor() - scaled(i, (g.detach() * lr)?)?)?)?;
                    }
                }
            }
            Optimizer::Adam { beta1, beta2, eps, .. } => {
                let c1 = 1.0 - beta1.powi(self.t);
                let c2 = 1.0 - beta2.powi(self.t);
                // λ −= η m̂ / (√v̂ + ε)  ⇔  λ −= (η √c2 / c1) · m / (√v + ε √c2)
                let step_size = lr * c2.sqrt() / c1;
                let eps_hat = eps * c2.sqrt();
                for (i, ((var, m), v)) in self.vars.iter().zip(&mut self.m).zip(&mut self.v).enumerate() {
                    let Some(g) = grads.get(var.as_tensor()) else { continue };
                    // Gradients carry graph history; the moments must not, or every step would
                    // chain onto the last (a leak, and a stack overflow when the chain is dropped).
                    let g = g.detach();
                    *m = ((&*m * beta1)? + (&g * (1.0 - beta1))?)?.detach();
                    *v = ((&*v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?.detach();
                    let denom = (v.sqrt()? + eps_hat)?;
                    let update = scaled(i, ((&*m * step_size)? / denom)?)?;
                    var.set(&(var.as_tensor() - update)?)?;
                }
            }
        }
        Ok(())
    }

    /// Forgets Adam's moments and step count (after q's parameters were moved back).
    pub fn reset(&mut self) -> Result<()> {
        for m in self.m.iter_mut().chain(self.v.iter_mut()) {
            *m = m.zeros_like()?;
        }
        self.t = 0;
        Ok(())
    }

    /// The number of steps taken.
    pub fn steps_taken(&self) -> usize {
        self.t as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Adam on f(λ) = Σ (e^λ − c λ), minimised at λ = log c. Its gradient e^λ − c is built from a
    /// var-derived node, so it carries graph history: the moments must not.
    #[test]
    fn adam_moments_are_detached_and_it_converges() {
        let c = Tensor::new(&[1.0f64, 2.0], &Device::Cpu).unwrap();
        let var = Var::zeros(2, DType::F64, &Device::Cpu).unwrap();
        let mut opt = OptimizerState::new(Optimizer::adam(0.05), vec![var.clone()]).unwrap();
        for _ in 0..2_000 {
            let lam = var.as_tensor();
            let loss = (lam.exp().unwrap() - (lam * &c).unwrap()).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            assert!(grads.get(lam).unwrap().track_op(), "the test needs a gradient with graph history");
            opt.step(&grads, 0.05).unwrap();
            assert!(opt.m.iter().chain(&opt.v).all(|t| !t.track_op()), "a moment tracks the graph");
        }
        let got = var.as_tensor().to_vec1::<f64>().unwrap();
        assert!(got[0].abs() < 1e-3 && (got[1] - 2f64.ln()).abs() < 1e-3, "{got:?}");
        assert_eq!(opt.steps_taken(), 2_000);
    }

    #[test]
    fn exponential_schedule_runs_from_lr_to_final_lr() {
        let s = LrSchedule::Exponential { final_lr: 1e-4 };
        assert_eq!(s.lr_at(1e-2, 0, 101), 1e-2);
        assert!((s.lr_at(1e-2, 50, 101) - 1e-3).abs() < 1e-15);
        assert!((s.lr_at(1e-2, 100, 101) - 1e-4).abs() < 1e-17);
    }
}
