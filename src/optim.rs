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
use candle_core::{DType, Tensor, Var};

use crate::linalg::{host_tensor, to_f64_vec};
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
///
/// Where the moments live is chosen once, when the state is made: in f64 on the host for
/// parameters on the CPU (the engine's gradients arrive there, in closed form or read back from
/// autodiff), as tensors beside the parameters on other devices. A step whose gradients come in
/// the other form converts the gradients, never the moments.
#[derive(Debug)]
pub struct OptimizerState {
    config: Optimizer,
    vars: Vec<Var>,
    moments: Moments,
    t: i32,
}

/// A variable's values on the host, row-major.
type HostVec = Vec<f64>;

/// Adam's first and second moments, one entry per variable (empty for SGD).
#[derive(Debug)]
enum Moments {
    Tensors { m: Vec<Tensor>, v: Vec<Tensor> },
    Host { m: Vec<HostVec>, v: Vec<HostVec> },
}

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
            Gradient::Tensors(gs) => {
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
    fn into_host(self, vars: &[Var]) -> Result<Vec<HostVec>> {
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
    fn into_tensors(self, vars: &[Var]) -> Result<Vec<Option<Tensor>>> {
        match self {
            Gradient::Tensors(gs) => Ok(gs),
            Gradient::Host(gs) => gs.into_iter().zip(vars).map(|(g, var)| Ok(Some(host_tensor(g, var)?))).collect(),
        }
    }
}

impl OptimizerState {
    /// Fresh state for `vars`, with the moments on the host when every variable is on the CPU and
    /// as tensors otherwise.
    pub fn new(config: Optimizer, vars: Vec<Var>) -> Result<Self> {
        let on_host = vars.iter().all(|v| v.device().is_cpu());
        Self::with_storage(config, vars, on_host)
    }

    /// Fresh state with the moments on the host (`on_host`) or as tensors.
    fn with_storage(config: Optimizer, vars: Vec<Var>, on_host: bool) -> Result<Self> {
        config.validate()?;
        let n = match config {
            Optimizer::Adam { .. } => vars.len(),
            Optimizer::Sgd { .. } => 0,
        };
        let moments = if on_host {
            let zeros = || vars.iter().take(n).map(|v| vec![0.0; v.elem_count()]).collect();
            Moments::Host { m: zeros(), v: zeros() }
        } else {
            let zeros = || vars.iter().take(n).map(|v| v.zeros_like()).collect::<candle_core::Result<Vec<_>>>();
            Moments::Tensors { m: zeros()?, v: zeros()? }
        };
        Ok(OptimizerState { config, vars, moments, t: 0 })
    }

    /// One descent step on the loss whose gradients are `grads`, with learning rate `lr`.
    /// A variable without a gradient is left as it is (on the host: moved by a zero gradient).
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        let grads = Gradient::Tensors(self.vars.iter().map(|v| grads.get(v.as_tensor()).map(Tensor::detach)).collect());
        self.update(None, grads, lr, None)
    }

    /// The same step from host gradients: `values` are the variables' current values and `grads`
    /// the loss's gradients (one vector per variable, row-major); `scale` multiplies the update of
    /// variable `i` element-wise (for [`LocStep::ScaleRelative`]).
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
        if matches!(self.moments, Moments::Host { .. }) {
            let values = match values {
                Some(values) => values,
                None => self.vars.iter().map(|v| to_f64_vec(v.as_tensor())).collect::<Result<_>>()?,
            };
            let grads = grads.into_host(&self.vars)?;
            self.update_host(values, &grads, lr, scale)
        } else {
            let grads = grads.into_tensors(&self.vars)?;
            let scale = match scale {
                Some((i, s)) => Some((i, host_tensor(s.to_vec(), &self.vars[i])?)),
                None => None,
            };
            self.update_tensors(&grads, lr, scale.as_ref().map(|(i, s)| (*i, s)))
        }
    }

    /// The update with tensor moments.
    fn update_tensors(&mut self, grads: &[Option<Tensor>], lr: f64, scale: Option<(usize, &Tensor)>) -> Result<()> {
        let scaled = |i: usize, update: Tensor| -> Result<Tensor> {
            match scale {
                Some((j, s)) if j == i => Ok((update * s)?),
                _ => Ok(update),
            }
        };
        let Moments::Tensors { m: ms, v: vs } = &mut self.moments else { unreachable!("tensor moments") };
        match self.config {
            Optimizer::Sgd { .. } => {
                for (i, (var, g)) in self.vars.iter().zip(grads).enumerate() {
                    if let Some(g) = g {
                        var.set(&(var.as_tensor() - scaled(i, (g * lr)?)?)?)?;
                    }
                }
            }
            Optimizer::Adam { beta1, beta2, eps, .. } => {
                let (step_size, eps_hat) = adam_factors(lr, beta1, beta2, eps, self.t);
                for (i, (((var, m), v), g)) in self.vars.iter().zip(ms).zip(vs).zip(grads).enumerate() {
                    let Some(g) = g else { continue };
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

    /// The update with host moments, in f64; the new values are written to the variables.
    /// Moments that fall below f64's normal range are flushed to zero (subnormal arithmetic is
    /// slow).
    fn update_host(
        &mut self,
        mut values: Vec<HostVec>,
        grads: &[HostVec],
        lr: f64,
        scale: Option<(usize, &[f64])>,
    ) -> Result<()> {
        let factor = |i: usize| match scale {
            Some((j, s)) if j == i => Some(s),
            _ => None,
        };
        let Moments::Host { m: ms, v: vs } = &mut self.moments else { unreachable!("host moments") };
        match self.config {
            Optimizer::Sgd { .. } => {
                for (i, (x, g)) in values.iter_mut().zip(grads).enumerate() {
                    match factor(i) {
                        None => x.iter_mut().zip(g).for_each(|(x, g)| *x -= g * lr),
                        Some(f) => x.iter_mut().zip(g).zip(f).for_each(|((x, g), f)| *x -= g * lr * f),
                    }
                }
            }
            Optimizer::Adam { beta1, beta2, eps, .. } => {
                let (step_size, eps_hat) = adam_factors(lr, beta1, beta2, eps, self.t);
                for (i, (((x, g), m), v)) in values.iter_mut().zip(grads).zip(ms).zip(vs).enumerate() {
                    // One pass for the moments, one for the update: both loops vectorise.
                    for ((m, v), &g) in m.iter_mut().zip(v.iter_mut()).zip(g) {
                        let mk = *m * beta1 + g * (1.0 - beta1);
                        let vk = *v * beta2 + g * g * (1.0 - beta2);
                        *m = if mk.abs() < f64::MIN_POSITIVE { 0.0 } else { mk };
                        *v = if vk < f64::MIN_POSITIVE { 0.0 } else { vk };
                    }
                    let update = |m: f64, v: f64| m * step_size / (v.sqrt() + eps_hat);
                    match factor(i) {
                        None => x.iter_mut().zip(m.iter()).zip(v.iter()).for_each(|((x, &m), &v)| *x -= update(m, v)),
                        Some(f) => x
                            .iter_mut()
                            .zip(m.iter())
                            .zip(v.iter())
                            .zip(f)
                            .for_each(|(((x, &m), &v), f)| *x -= update(m, v) * f),
                    }
                }
            }
        }
        for (var, x) in self.vars.iter().zip(values) {
            var.set(&host_tensor(x, var)?)?;
        }
        Ok(())
    }

    /// Forgets Adam's moments and step count (after q's parameters were moved back).
    pub fn reset(&mut self) -> Result<()> {
        match &mut self.moments {
            Moments::Tensors { m, v } => {
                for m in m.iter_mut().chain(v.iter_mut()) {
                    *m = m.zeros_like()?;
                }
            }
            Moments::Host { m, v } => m.iter_mut().chain(v.iter_mut()).for_each(|m| m.fill(0.0)),
        }
        self.t = 0;
        Ok(())
    }

    /// The number of steps taken.
    pub fn steps_taken(&self) -> usize {
        self.t as usize
    }
}

/// Adam's bias corrections folded into the step: λ −= η m̂ / (√v̂ + ε) ⇔ λ −= (η √c₂ / c₁) · m /
/// (√v + ε √c₂), with c₁ = 1 − β₁ᵗ and c₂ = 1 − β₂ᵗ; returns (η √c₂ / c₁, ε √c₂).
fn adam_factors(lr: f64, beta1: f64, beta2: f64, eps: f64, t: i32) -> (f64, f64) {
    let c1 = 1.0 - beta1.powi(t);
    let c2 = 1.0 - beta2.powi(t);
    (lr * c2.sqrt() / c1, eps * c2.sqrt())
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
        let mut opt = OptimizerState::with_storage(Optimizer::adam(0.05), vec![var.clone()], false).unwrap();
        for _ in 0..2_000 {
            let lam = var.as_tensor();
            let loss = (lam.exp().unwrap() - (lam * &c).unwrap()).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            assert!(grads.get(lam).unwrap().track_op(), "the test needs a gradient with graph history");
            opt.step(&grads, 0.05).unwrap();
            let Moments::Tensors { m, v } = &opt.moments else { panic!("a tensor step keeps tensor moments") };
            assert!(m.iter().chain(v).all(|t| !t.track_op()), "a moment tracks the graph");
        }
        let got = var.as_tensor().to_vec1::<f64>().unwrap();
        assert!(got[0].abs() < 1e-3 && (got[1] - 2f64.ln()).abs() < 1e-3, "{got:?}");
        assert_eq!(opt.steps_taken(), 2_000);
    }

    /// The host step is the tensor step in f64, also when tensor gradients arrive mid-run; and a
    /// moment whose gradient went to zero decays to exactly 0 instead of through subnormals.
    #[test]
    fn host_adam_follows_tensor_adam() {
        let c = [1.0f64, 2.0, 0.5];
        let loss_grad = |lam: &[f64], t: usize| -> Vec<f64> {
            // the last coordinate's gradient stops after 50 steps
            lam.iter().zip(c).enumerate().map(|(i, (l, c))| if i == 2 && t >= 50 { 0.0 } else { l.exp() - c }).collect()
        };
        let a = Var::zeros(3, DType::F64, &Device::Cpu).unwrap();
        let b = Var::zeros(3, DType::F64, &Device::Cpu).unwrap();
        let mut tensor_opt = OptimizerState::with_storage(Optimizer::adam(0.05), vec![a.clone()], false).unwrap();
        let mut host_opt = OptimizerState::new(Optimizer::adam(0.05), vec![b.clone()]).unwrap();
        for t in 0..8_000 {
            let lam = a.as_tensor().to_vec1::<f64>().unwrap();
            let g = Tensor::new(loss_grad(&lam, t).as_slice(), &Device::Cpu).unwrap();
            let mut grads = a.as_tensor().sum_all().unwrap().backward().unwrap();
            grads.insert(a.as_tensor(), g);
            tensor_opt.step(&grads, 0.05).unwrap();
            let lam = b.as_tensor().to_vec1::<f64>().unwrap();
            let g = loss_grad(&lam, t);
            if (200..210).contains(&t) {
                // a few steps from tensor gradients in between: they are read to the host moments
                let mut grads = b.as_tensor().sum_all().unwrap().backward().unwrap();
                grads.insert(b.as_tensor(), Tensor::new(g.as_slice(), &Device::Cpu).unwrap());
                host_opt.step(&grads, 0.05).unwrap();
            } else {
                host_opt.step_host(vec![lam], &[g], 0.05, None).unwrap();
            }
        }
        let (x, y) = (a.as_tensor().to_vec1::<f64>().unwrap(), b.as_tensor().to_vec1::<f64>().unwrap());
        for (x, y) in x.iter().zip(&y) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
        assert!(y[0].abs() < 1e-3 && (y[1] - 2f64.ln()).abs() < 1e-3, "{y:?}");
        let Moments::Host { m, .. } = &host_opt.moments else { panic!("host steps keep host moments") };
        assert_eq!(m[0][2], 0.0, "0.9^7950 underflows: flushed to zero, not subnormal");
        assert_eq!(tensor_opt.steps_taken(), host_opt.steps_taken());
    }

    #[test]
    fn exponential_schedule_runs_from_lr_to_final_lr() {
        let s = LrSchedule::Exponential { final_lr: 1e-4 };
        assert_eq!(s.lr_at(1e-2, 0, 101), 1e-2);
        assert!((s.lr_at(1e-2, 50, 101) - 1e-3).abs() < 1e-15);
        assert!((s.lr_at(1e-2, 100, 101) - 1e-4).abs() < 1e-17);
    }
}
