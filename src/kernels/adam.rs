//! Adam's update as one in-place pass over a CPU parameter, its moments in the parameter's dtype:
//! the storage [`crate::optim::Storage::InPlace`] of [`crate::optim::Adam`].
//!
//! ```text
//! m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,
//! λ ← λ − (η̂ m) / (√v + ε̂),   η̂ = η √(1 − β₂ᵗ)/(1 − β₁ᵗ),  ε̂ = ε √(1 − β₂ᵗ)   (= λ − η m̂ / (√v̂ + ε))
//! subnormals: m, v → 0 where β₁ m, β₂ v < smallest normal;  g (1 − β₁), g² (1 − β₂), η̂ m likewise
//! ```
//!
//! The formula and the order of operations per element are the host path's
//! (`crate::optim::adam`), so in f64 the two give the same bits wherever no term is subnormal; the
//! point is one loop over memory instead of a dozen tensor ops each allocating a parameter-sized
//! tensor, or a conversion to f64 and back. The subnormal policy is Adam's one policy (see
//! `crate::optim::adam`): no moment is left subnormal, and no term that would be subnormal is formed
//! — the terms are compared with thresholds on their inputs instead, because forming a subnormal
//! product is what costs a microcode assist.

use std::cell::RefCell;

use candle_core::{bail, CpuStorage, DType, InplaceOp2, Layout, Storage, Tensor};

/// Adam's first and second moments of one parameter, in its dtype.
#[derive(Clone)]
pub(crate) enum Moments {
    F32(Vec<f32>, Vec<f32>),
    F64(Vec<f64>, Vec<f64>),
}

impl std::fmt::Debug for Moments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Moments::F32(m, _) => write!(f, "Moments::F32({} entries)", m.len()),
            Moments::F64(m, _) => write!(f, "Moments::F64({} entries)", m.len()),
        }
    }
}

impl Moments {
    /// Zero moments for `n` entries of `dtype` (None: not F32 or F64).
    pub(crate) fn zeros(dtype: DType, n: usize) -> Option<Self> {
        match dtype {
            DType::F32 => Some(Moments::F32(vec![0.0; n], vec![0.0; n])),
            DType::F64 => Some(Moments::F64(vec![0.0; n], vec![0.0; n])),
            _ => None,
        }
    }

    /// Back to zero.
    pub(crate) fn reset(&mut self) {
        match self {
            Moments::F32(m, v) => m.iter_mut().chain(v.iter_mut()).for_each(|x| *x = 0.0),
            Moments::F64(m, v) => m.iter_mut().chain(v.iter_mut()).for_each(|x| *x = 0.0),
        }
    }
}

/// One step's constants: the decay rates, η̂ and ε̂.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    pub(crate) beta1: f64,
    pub(crate) beta2: f64,
    pub(crate) step_size: f64,
    pub(crate) eps_hat: f64,
}

/// Moves `param` (a contiguous CPU tensor of F32 or F64) in place by Adam's step for `grad` (same
/// shape and dtype), updating `moments`.
pub(crate) fn update(param: &Tensor, grad: &Tensor, moments: &mut Moments, step: Step) -> candle_core::Result<()> {
    let grad = grad.contiguous()?;
    param.inplace_op2(&grad, &Kernel { moments: RefCell::new(moments), step })
}

/// Whether every entry of a contiguous CPU tensor of F32 or F64 is finite (None: another kind of
/// tensor). One read of the memory, no allocation.
pub(crate) fn all_finite(t: &Tensor) -> Option<bool> {
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout.contiguous_offsets()?;
    // ±∞ and NaN are the values whose exponent bits are all ones; an integer OR over the
    // comparisons vectorises (a float sum would run one add at a time).
    const EXP32: u32 = 0x7f80_0000;
    const EXP64: u64 = 0x7ff0_0000_0000_0000;
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => {
            Some(v[start..end].iter().fold(0u32, |a, x| a | u32::from(x.to_bits() & EXP32 == EXP32)) == 0)
        }
        Storage::Cpu(CpuStorage::F64(v)) => {
            Some(v[start..end].iter().fold(0u64, |a, x| a | u64::from(x.to_bits() & EXP64 == EXP64)) == 0)
        }
        _ => None,
    }
}

/// The update of one parameter (destination) from its gradient (source).
struct Kernel<'a> {
    moments: RefCell<&'a mut Moments>,
    step: Step,
}

/// The update of each element, computed so that no operation's result is subnormal (below the
/// smallest normal float): every multiply that forms one takes a microcode assist.
/// - m and v are flushed to 0 where the next step's β₁ m or β₂ v would be below the smallest
///   normal: once a weight's gradient is (nearly) always 0, as for the pixels that are black in
///   every image, its m decays by β₁ per step into that range.
/// - g is taken as 0 where g (1 − β₁) would be subnormal, g² where g² (1 − β₂) would be: the
///   decoder's gradient for a nearly black pixel is ≈ e^l / B with its logit l falling far below
///   zero in the second epoch.
/// - m is taken as 0 in the step where η̂ m would be subnormal (|m| < smallest normal / η̂).
///
/// A gradient that small moves no weight (the step is η̂ m / (√v + ε̂) with ε̂ ≈ 1e-8), so nothing
/// is lost. Why (benches/README.md, "VAE per-epoch time, third pass") and this form's cost
/// ("The VAE's Adam in elbo::optim").
macro_rules! adam_loop {
    ($t:ty, $p:expr, $g:expr, $m:expr, $v:expr, $k:expr) => {{
        let k: Step = $k;
        let (b1, b2, step, eps) = (k.beta1 as $t, k.beta2 as $t, k.step_size as $t, k.eps_hat as $t);
        let tiny = <$t>::MIN_POSITIVE;
        // Each threshold applies to a factor before it is multiplied: the loop is vectorised, so
        // a choice made after a product would still form the subnormal product in its lane.
        let (g_tiny, g2_tiny) = (tiny / (1.0 - b1), (tiny / (1.0 - b2)).sqrt());
        let (m_keep, v_keep, m_step) = (tiny / b1, tiny / b2, tiny / step);
        for (((p, &g), m), v) in $p.iter_mut().zip($g).zip($m.iter_mut()).zip($v.iter_mut()) {
            let g2 = if g.abs() < g2_tiny { 0.0 } else { g };
            let g = if g.abs() < g_tiny { 0.0 } else { g };
            let mk = *m * b1 + g * (1.0 - b1);
            let vk = *v * b2 + g2 * g2 * (1.0 - b2);
            // kept only where next step's β m and β v will be normal
            *m = if mk.abs() < m_keep { 0.0 } else { mk };
            *v = if vk < v_keep { 0.0 } else { vk };
            let ms = if m.abs() < m_step { 0.0 } else { *m };
            *p -= ms * step / (v.sqrt() + eps);
        }
    }};
}

impl InplaceOp2 for Kernel<'_> {
    fn name(&self) -> &'static str {
        "adam"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
        let (Some((p0, p1)), Some((g0, g1))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            bail!("adam: parameters and gradients must be contiguous")
        };
        if p1 - p0 != g1 - g0 {
            bail!("adam: {} parameters but {} gradients", p1 - p0, g1 - g0)
        }
        let mut moments = self.moments.borrow_mut();
        match (s1, s2, &mut **moments) {
            (CpuStorage::F32(p), CpuStorage::F32(g), Moments::F32(m, v)) if m.len() == p1 - p0 => {
                update_f32(&mut p[p0..p1], &g[g0..g1], m, v, self.step)
            }
            (CpuStorage::F64(p), CpuStorage::F64(g), Moments::F64(m, v)) if m.len() == p1 - p0 => {
                adam_loop!(f64, p[p0..p1], &g[g0..g1], m, v, self.step)
            }
            _ => bail!("adam: parameter, gradient and moments must share one dtype and length"),
        }
        Ok(())
    }
}

/// The f32 update, in 8-wide AVX2 registers where the CPU has them (the loop is bound by `sqrt` and
/// division, so the width matters). Element by element the arithmetic is the same on both paths,
/// so the result is too, bit for bit.
fn update_f32(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: Step) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above); the function is safe code.
            unsafe { update_f32_avx2(p, g, m, v, k) };
            return;
        }
    }
    update_f32_portable(p, g, m, v, k);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn update_f32_avx2(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: Step) {
    update_f32_portable(p, g, m, v, k);
}

#[inline(always)]
fn update_f32_portable(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: Step) {
    adam_loop!(f32, p, g, m, v, k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{Optimizer, OptimizerState, Storage};
    use candle_core::{Device, Tensor, Var};

    /// The in-place update follows the host Adam (to f32 rounding) over 50 steps of a gradient
    /// that changes each step, in f64 it gives the host's bits, and the wide path gives the
    /// portable path's bits.
    #[test]
    fn matches_the_host_adam() {
        let dev = Device::Cpu;
        let start: Vec<f32> = (0..37).map(|i| (i as f32 * 0.3).cos()).collect();
        let a = Var::from_vec(start.clone(), 37, &dev).unwrap();
        let b = Var::from_vec(start.clone(), 37, &dev).unwrap();
        let mut in_place =
            OptimizerState::with_storage(Optimizer::adam(0.01), vec![a.clone()], Storage::InPlace).unwrap();
        let mut plain = OptimizerState::new(Optimizer::adam(0.01), vec![b.clone()]).unwrap();
        assert_eq!((in_place.storage(), plain.storage()), (Storage::InPlace, Storage::Host));
        let target = Tensor::from_vec((0..37).map(|i| i as f32 / 37.0).collect::<Vec<_>>(), 37, &dev).unwrap();
        for _ in 0..50 {
            let ga = (a.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (b.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
            in_place.step(&ga, 0.01).unwrap();
            plain.step(&gb, 0.01).unwrap();
        }
        let (a, b) = (a.as_tensor().to_vec1::<f32>().unwrap(), b.as_tensor().to_vec1::<f32>().unwrap());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "in place {x} vs host Adam {y}");
        }

        // f64: the host's formula, bit for bit
        let start: Vec<f64> = start.iter().map(|&x| x as f64).collect();
        let (a, b) = (Var::from_vec(start.clone(), 37, &dev).unwrap(), Var::from_vec(start, 37, &dev).unwrap());
        let mut in_place =
            OptimizerState::with_storage(Optimizer::adam(0.01), vec![a.clone()], Storage::InPlace).unwrap();
        let mut plain = OptimizerState::new(Optimizer::adam(0.01), vec![b.clone()]).unwrap();
        let target = target.to_dtype(DType::F64).unwrap();
        for _ in 0..50 {
            let ga = (a.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (b.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
            in_place.step(&ga, 0.01).unwrap();
            plain.step(&gb, 0.01).unwrap();
        }
        assert_eq!(a.as_tensor().to_vec1::<f64>().unwrap(), b.as_tensor().to_vec1::<f64>().unwrap());

        let k = Step { beta1: 0.9, beta2: 0.999, step_size: 0.01, eps_hat: 1e-8 };
        let g: Vec<f32> = (0..101).map(|i| (i as f32 * 0.7).sin() * 1e-3).collect();
        let (mut p1, mut p2) = (vec![0.5f32; 101], vec![0.5f32; 101]);
        let (mut m1, mut v1, mut m2, mut v2) =
            (vec![1e-3f32; 101], vec![1e-6f32; 101], vec![1e-3f32; 101], vec![1e-6f32; 101]);
        update_f32(&mut p1, &g, &mut m1, &mut v1, k);
        update_f32_portable(&mut p2, &g, &mut m2, &mut v2, k);
        assert_eq!(p1, p2);
        assert_eq!((m1, v1), (m2, v2));
    }

    /// Gradients too small to move a weight leave no subnormal moment and no step; a normal one
    /// beside them is updated as usual.
    #[test]
    fn tiny_gradients_are_taken_as_zero() {
        let k = Step { beta1: 0.9, beta2: 0.999, step_size: 1e-3, eps_hat: 1e-8 };
        // 1e-37 · (1 − β₁) and (1e-19)² · (1 − β₂) would be subnormal in f32
        let g = [1e-37f32, -1e-19, 1e-2];
        let (mut p, mut m, mut v) = (vec![0.5f32; 3], vec![0.0f32; 3], vec![0.0f32; 3]);
        update_f32(&mut p, &g, &mut m, &mut v, k);
        assert_eq!((p[0], m[0], v[0]), (0.5, 0.0, 0.0));
        assert_eq!(v[1], 0.0);
        assert!(m[1] < 0.0 && m[1].is_normal(), "m {}", m[1]);
        assert!(m[2] > 0.0 && v[2] > 0.0 && p[2] < 0.5);
        for x in m.iter().chain(&v).chain(&p) {
            assert!(*x == 0.0 || x.is_normal(), "{x} is subnormal");
        }
    }

    /// The finiteness scan sees NaN and ±∞ in a contiguous view, and declines other tensors.
    #[test]
    fn all_finite_scans_the_memory() {
        let t = Tensor::new(&[1.0f32, -2.0, 3.0, f32::NAN], &Device::Cpu).unwrap();
        assert_eq!(all_finite(&t), Some(false));
        assert_eq!(all_finite(&t.narrow(0, 0, 3).unwrap()), Some(true));
        let t = Tensor::new(&[f64::MAX, f64::NEG_INFINITY], &Device::Cpu).unwrap();
        assert_eq!(all_finite(&t.narrow(0, 0, 1).unwrap()), Some(true));
        assert_eq!(all_finite(&t), Some(false));
        assert_eq!(all_finite(&Tensor::new(&[1u32], &Device::Cpu).unwrap()), None);
    }
}
