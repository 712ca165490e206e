//! Adam (Kingma & Ba 2015) without weight decay, its moments in one of three storages
//! ([`super::Storage`]): host vectors of f64, tensors beside the parameters, or vectors in the
//! parameters' dtype updated in place on the CPU (`crate::kernels::adam`).
//!
//! ```text
//! m_t = β₁ m + (1 − β₁) g_t,   v_t = β₂ v + (1 − β₂) g_t²
//! λ ← λ − η_t · m̂_t / (√v̂_t + ε),   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)
//!   = λ − (η_t √c₂ / c₁) · m / (√v + ε √c₂),   c₁ = 1 − β₁ᵗ,  c₂ = 1 − β₂ᵗ
//! ```
//!
//! candle-nn's `AdamW` decays weights by 0.01 by default, which pulls μ and log σ to zero and biases
//! VI; this Adam has no weight decay.
//!
//! Subnormals, one policy: no moment is kept below the normal range of its dtype (it is flushed
//! to zero: subnormal arithmetic is slow and such a moment moves nothing), and no term that
//! would fall there is formed. The host path (f64) and the in-place path compute each element
//! with the same formula in the same order; the in-place path, whose f32 reaches the subnormal
//! range in practice (a network's always-zero gradients, see `crate::kernels::adam`), also takes
//! the terms g (1 − β₁), g² (1 − β₂) and η̂ m as zero where they would be subnormal. On the host
//! those terms are subnormal only for gradients below 1e-154, and guarding them there is left
//! out so that seeded fits keep their bits. Tensor storage leaves subnormals to the device.

use candle_core::{Tensor, Var};

use super::gradient::HostVec;
use super::{Storage, UpdateRule};
use crate::kernels::adam as in_place;
use crate::{Error, Result};

/// Adam's settings and its moments.
#[derive(Clone, Debug)]
pub struct Adam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    moments: Moments,
}

/// The first and second moments, one entry per variable.
#[derive(Clone, Debug)]
enum Moments {
    /// Before the first [`UpdateRule::start`].
    Unstarted,
    Host {
        m: Vec<HostVec>,
        v: Vec<HostVec>,
    },
    Tensors {
        m: Vec<Tensor>,
        v: Vec<Tensor>,
    },
    /// In the parameters' dtype, for the in-place CPU update.
    InPlace(Vec<in_place::Moments>),
}

impl Adam {
    /// Adam with decay rates β₁, β₂ and ε (usually 0.9, 0.999, 1e-8).
    pub fn new(beta1: f64, beta2: f64, eps: f64) -> Self {
        Adam { beta1, beta2, eps, moments: Moments::Unstarted }
    }

    /// (η √c₂ / c₁, ε √c₂) at step `t`: the bias corrections folded into the step.
    fn factors(&self, lr: f64, t: i32) -> (f64, f64) {
        let c1 = 1.0 - self.beta1.powi(t);
        let c2 = 1.0 - self.beta2.powi(t);
        (lr * c2.sqrt() / c1, self.eps * c2.sqrt())
    }

    fn unstarted() -> Error {
        Error::config("optimizer", "Adam", "the moments were not started for these parameters (call start first)")
    }
}

impl UpdateRule for Adam {
    fn name(&self) -> String {
        "Adam".into()
    }

    fn start(&mut self, vars: &[Var], storage: Storage) -> Result<()> {
        self.moments = match storage {
            Storage::Host => {
                let zeros = || vars.iter().map(|v| vec![0.0; v.elem_count()]).collect();
                Moments::Host { m: zeros(), v: zeros() }
            }
            Storage::Tensors => {
                let zeros = || vars.iter().map(|v| v.zeros_like()).collect::<candle_core::Result<Vec<_>>>();
                Moments::Tensors { m: zeros()?, v: zeros()? }
            }
            Storage::InPlace => Moments::InPlace(
                vars.iter()
                    .map(|v| match in_place::Moments::zeros(v.dtype(), v.elem_count()) {
                        Some(m) if v.device().is_cpu() => Ok(m),
                        _ => Err(Error::config(
                            "storage",
                            format!("InPlace for a {:?} parameter on {:?}", v.dtype(), v.device().location()),
                            "in-place Adam needs F32 or F64 parameters on the CPU",
                        )),
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        Ok(())
    }

    fn step_host(
        &mut self,
        t: i32,
        values: &mut [HostVec],
        grads: &[HostVec],
        lr: f64,
        scale: Option<(usize, &[f64])>,
    ) -> Result<()> {
        let (beta1, beta2) = (self.beta1, self.beta2);
        let (step_size, eps_hat) = self.factors(lr, t);
        let Moments::Host { m: ms, v: vs } = &mut self.moments else { return Err(Self::unstarted()) };
        for (i, (((x, g), m), v)) in values.iter_mut().zip(grads).zip(ms).zip(vs).enumerate() {
            // One pass for the moments, one for the update: both loops vectorise.
            for ((m, v), &g) in m.iter_mut().zip(v.iter_mut()).zip(g) {
                let mk = *m * beta1 + g * (1.0 - beta1);
                let vk = *v * beta2 + g * g * (1.0 - beta2);
                *m = if mk.abs() < f64::MIN_POSITIVE { 0.0 } else { mk };
                *v = if vk < f64::MIN_POSITIVE { 0.0 } else { vk };
            }
            let update = |m: f64, v: f64| m * step_size / (v.sqrt() + eps_hat);
            match scale {
                Some((j, f)) if j == i => x
                    .iter_mut()
                    .zip(m.iter())
                    .zip(v.iter())
                    .zip(f)
                    .for_each(|(((x, &m), &v), f)| *x -= update(m, v) * f),
                _ => x.iter_mut().zip(m.iter()).zip(v.iter()).for_each(|((x, &m), &v)| *x -= update(m, v)),
            }
        }
        Ok(())
    }

    fn step_tensors(
        &mut self,
        t: i32,
        vars: &[Var],
        grads: &[Option<Tensor>],
        lr: f64,
        scale: Option<(usize, &Tensor)>,
    ) -> Result<()> {
        let (beta1, beta2) = (self.beta1, self.beta2);
        let (step_size, eps_hat) = self.factors(lr, t);
        let Moments::Tensors { m: ms, v: vs } = &mut self.moments else { return Err(Self::unstarted()) };
        for (i, (((var, m), v), g)) in vars.iter().zip(ms).zip(vs).zip(grads).enumerate() {
            let Some(g) = g else { continue };
            // Gradients carry graph history; the moments must not, or every step would chain
            // onto the last (a leak, and a stack overflow when the chain is dropped).
            let g = g.detach();
            *m = ((&*m * beta1)? + (&g * (1.0 - beta1))?)?.detach();
            *v = ((&*v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?.detach();
            let denom = (v.sqrt()? + eps_hat)?;
            let mut update = ((&*m * step_size)? / denom)?;
            if let Some((j, s)) = scale {
                if j == i {
                    update = (update * s)?;
                }
            }
            var.set(&(var.as_tensor() - update)?)?;
        }
        Ok(())
    }

    fn step_in_place(&mut self, t: i32, vars: &[Var], grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        let (beta1, beta2) = (self.beta1, self.beta2);
        let (step_size, eps_hat) = self.factors(lr, t);
        let Moments::InPlace(ms) = &mut self.moments else { return Err(Self::unstarted()) };
        let step = in_place::Step { beta1, beta2, step_size, eps_hat };
        for ((var, m), g) in vars.iter().zip(ms).zip(grads) {
            let Some(g) = g else { continue };
            in_place::update(var.as_tensor(), g, m, step)?;
        }
        Ok(())
    }

    fn reset(&mut self) -> Result<()> {
        match &mut self.moments {
            Moments::Unstarted => {}
            Moments::InPlace(ms) => ms.iter_mut().for_each(in_place::Moments::reset),
            Moments::Host { m, v } => m.iter_mut().chain(v.iter_mut()).for_each(|m| m.fill(0.0)),
            Moments::Tensors { m, v } => {
                for m in m.iter_mut().chain(v.iter_mut()) {
                    *m = m.zeros_like()?;
                }
            }
        }
        Ok(())
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
        let mut adam = Adam::new(0.9, 0.999, 1e-8);
        adam.start(std::slice::from_ref(&var), Storage::Tensors).unwrap();
        let mut steps = 0;
        for t in 1..=2_000 {
            let lam = var.as_tensor();
            let loss = (lam.exp().unwrap() - (lam * &c).unwrap()).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            assert!(grads.get(lam).unwrap().track_op(), "the test needs a gradient with graph history");
            adam.step_tensors(t, std::slice::from_ref(&var), &[grads.get(lam).cloned()], 0.05, None).unwrap();
            steps += 1;
            let Moments::Tensors { m, v } = &adam.moments else { panic!("a tensor step keeps tensor moments") };
            assert!(m.iter().chain(v).all(|t| !t.track_op()), "a moment tracks the graph");
        }
        let got = var.as_tensor().to_vec1::<f64>().unwrap();
        assert!(got[0].abs() < 1e-3 && (got[1] - 2f64.ln()).abs() < 1e-3, "{got:?}");
        assert_eq!(steps, 2_000);
    }

    /// The host step is the tensor step in f64; and a moment whose gradient went to zero decays
    /// to exactly 0 instead of through subnormals.
    #[test]
    fn host_adam_follows_tensor_adam() {
        let c = [1.0f64, 2.0, 0.5];
        let loss_grad = |lam: &[f64], t: i32| -> Vec<f64> {
            // the last coordinate's gradient stops after 50 steps
            lam.iter().zip(c).enumerate().map(|(i, (l, c))| if i == 2 && t >= 50 { 0.0 } else { l.exp() - c }).collect()
        };
        let a = Var::zeros(3, DType::F64, &Device::Cpu).unwrap();
        let (mut tensor_adam, mut host_adam) = (Adam::new(0.9, 0.999, 1e-8), Adam::new(0.9, 0.999, 1e-8));
        tensor_adam.start(std::slice::from_ref(&a), Storage::Tensors).unwrap();
        host_adam.start(std::slice::from_ref(&a), Storage::Host).unwrap();
        let mut y = vec![vec![0.0; 3]];
        for t in 0..8_000 {
            let lam = a.as_tensor().to_vec1::<f64>().unwrap();
            let g = Tensor::new(loss_grad(&lam, t).as_slice(), &Device::Cpu).unwrap();
            tensor_adam.step_tensors(t + 1, std::slice::from_ref(&a), &[Some(g)], 0.05, None).unwrap();
            let g = loss_grad(&y[0], t);
            host_adam.step_host(t + 1, &mut y, &[g], 0.05, None).unwrap();
        }
        let x = a.as_tensor().to_vec1::<f64>().unwrap();
        for (x, y) in x.iter().zip(&y[0]) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
        assert!(y[0][0].abs() < 1e-3 && (y[0][1] - 2f64.ln()).abs() < 1e-3, "{y:?}");
        let Moments::Host { m, .. } = &host_adam.moments else { panic!("host steps keep host moments") };
        assert_eq!(m[0][2], 0.0, "0.9^7950 underflows: flushed to zero, not subnormal");
    }
}
