//! The fused Bernoulli log-likelihood on logits, on the CPU: the value of each row in one pass,
//! and the gradient in another.
//!
//! ```text
//! forward:   y_row = Σ_p [x_p l_p − softplus(l_p)],   softplus(l) = max(l, 0) + ln(1 + e^(−|l|))
//! backward:  ∂L/∂l_p = g_row · (x_p − σ(l_p)),   σ(l) = 1/(1 + t) (l ≥ 0) or t/(1 + t),  t = e^(−|l|)
//! ```
//!
//! In f32, e^x and ln(1 + t) are [`super::simd`]'s f32 polynomials, run in 8-wide AVX2 registers
//! where the CPU has them with the bits of the portable path; in f64, libm's. Row sums run in eight
//! lanes.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::simd::{exp_nonpositive_f32, log1p_unit_f32};

/// Σ_p [x_p · l_p − softplus(l_p)] over the last axis of `logits` and `x` (one shape `[..., P]`,
/// both f32 or both f64, on the CPU; `x` is data), as one op with its backward pass.
pub(crate) fn log_likelihood(x: &Tensor, logits: &Tensor) -> candle_core::Result<Tensor> {
    logits.contiguous()?.apply_op2(&x.detach().contiguous()?, BernoulliLogit)
}

/// x · l − softplus(l) in f32, with softplus(l) = max(l, 0) + ln(1 + e^(−|l|)).
#[inline(always)]
fn bernoulli_f32(l: f32, x: f32) -> f32 {
    x * l - (l.max(0.0) + log1p_unit_f32(exp_nonpositive_f32(-l.abs())))
}

/// x − σ(l) in f32, with σ(l) = 1/(1 + t) for l ≥ 0 and t/(1 + t) for l < 0, t = e^(−|l|).
#[inline(always)]
fn bernoulli_grad_f32(l: f32, x: f32) -> f32 {
    let t = exp_nonpositive_f32(-l.abs());
    let num = if l >= 0.0 { 1.0 } else { t };
    x - num / (1.0 + t)
}

#[inline]
fn bernoulli_f64(l: f64, x: f64) -> f64 {
    x * l - (l.max(0.0) + (-l.abs()).exp().ln_1p())
}

#[inline]
fn bernoulli_grad_f64(l: f64, x: f64) -> f64 {
    let t = (-l.abs()).exp();
    x - if l >= 0.0 { 1.0 / (1.0 + t) } else { t / (1.0 + t) }
}

/// Σ over each row of f(l, x) (contiguous storages; rows of length `p`), accumulated in 8 lanes
/// so that the loop vectorises. Plain loops, not `map`/`collect`: an iterator adapter's `fold` is
/// a function of its own that is not inlined into the AVX2 caller, and so runs without AVX2.
#[inline(always)]
fn row_sums<T, F>(l: &[T], x: &[T], p: usize, f: F) -> Vec<T>
where
    T: Copy + Default + std::ops::Add<Output = T>,
    F: Fn(T, T) -> T + Copy,
{
    let mut sums = Vec::with_capacity(l.len() / p);
    for (lr, xr) in l.chunks_exact(p).zip(x.chunks_exact(p)) {
        let mut acc = [T::default(); 8];
        let (lc, xc) = (lr.chunks_exact(8), xr.chunks_exact(8));
        let (lt, xt) = (lc.remainder(), xc.remainder());
        for (l8, x8) in lc.zip(xc) {
            for i in 0..8 {
                acc[i] = acc[i] + f(l8[i], x8[i]);
            }
        }
        let mut total = T::default();
        for (&l, &x) in lt.iter().zip(xt) {
            total = total + f(l, x);
        }
        for a in acc {
            total = total + a;
        }
        sums.push(total);
    }
    sums
}

/// The contiguous slice of a storage's layout, or an error.
fn contiguous<'a, T>(name: &str, v: &'a [T], l: &Layout) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("{name}: expects contiguous tensors"),
    }
}

/// Σ_p [x_p · l_p − softplus(l_p)] over the last axis (arguments: logits l, data x; contiguous),
/// with the gradient g_row · (x − σ(l)) with respect to l.
#[derive(Clone, Copy)]
struct BernoulliLogit;

impl CustomOp2 for BernoulliLogit {
    fn name(&self) -> &'static str {
        "bernoulli_logit"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l1.shape().dims();
        let p = dims[dims.len() - 1].max(1);
        let out = match (s1, s2) {
            (CpuStorage::F32(l), CpuStorage::F32(x)) => {
                let (l, x) = (contiguous(self.name(), l, l1)?, contiguous(self.name(), x, l2)?);
                CpuStorage::F32(wide::bernoulli_rows(l, x, p))
            }
            (CpuStorage::F64(l), CpuStorage::F64(x)) => {
                let (l, x) = (contiguous(self.name(), l, l1)?, contiguous(self.name(), x, l2)?);
                CpuStorage::F64(row_sums(l, x, p, bernoulli_f64))
            }
            _ => bail!(
                "bernoulli_logit: logits and data must both be f32 or both f64, got {:?} and {:?}",
                s1.dtype(),
                s2.dtype()
            ),
        };
        Ok((out, Shape::from(&dims[..dims.len() - 1])))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        x: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let d = logits.apply_op3_no_bwd(x, &grad.contiguous()?, &BernoulliLogitGrad)?;
        Ok((Some(d), None))
    }
}

/// g_row · (x − σ(l)) elementwise (arguments: logits l, data x, the gradient g of each row's sum).
struct BernoulliLogitGrad;

/// g_row · f(l, x) for each element of each row of length `p`.
#[inline(always)]
fn scaled_rows<T, F>(l: &[T], x: &[T], g: &[T], p: usize, f: F) -> Vec<T>
where
    T: Copy + std::ops::Mul<Output = T>,
    F: Fn(T, T) -> T + Copy,
{
    let mut out = l.to_vec(); // overwritten below; plain loops for the reason given at `row_sums`
    for ((or, xr), &gr) in out.chunks_exact_mut(p).zip(x.chunks_exact(p)).zip(g) {
        for (o, &x) in or.iter_mut().zip(xr) {
            *o = gr * f(*o, x);
        }
    }
    out
}

impl CustomOp3 for BernoulliLogitGrad {
    fn name(&self) -> &'static str {
        "bernoulli_logit_grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l1.shape().dims();
        let p = dims[dims.len() - 1].max(1);
        let name = self.name();
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(l), CpuStorage::F32(x), CpuStorage::F32(g)) => {
                let (l, x, g) = (contiguous(name, l, l1)?, contiguous(name, x, l2)?, contiguous(name, g, l3)?);
                CpuStorage::F32(wide::bernoulli_grad_rows(l, x, g, p))
            }
            (CpuStorage::F64(l), CpuStorage::F64(x), CpuStorage::F64(g)) => {
                let (l, x, g) = (contiguous(name, l, l1)?, contiguous(name, x, l2)?, contiguous(name, g, l3)?);
                CpuStorage::F64(scaled_rows(l, x, g, p, bernoulli_grad_f64))
            }
            _ => bail!("bernoulli_logit_grad: one dtype, f32 or f64"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// The f32 kernels in 8-wide AVX2 registers where the CPU has them (they are bound by division,
/// which AVX2 does eight lanes at a time). Element by element the arithmetic is the same on both paths, and
/// the 8-lane sums add in the same order, so the results are too, bit for bit.
mod wide {
    use super::{bernoulli_f32, bernoulli_grad_f32, row_sums, scaled_rows};

    /// Σ_row [x · l − softplus(l)].
    pub(super) fn bernoulli_rows(l: &[f32], x: &[f32], p: usize) -> Vec<f32> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above); the function is safe code.
                return unsafe { rows_avx2(l, x, p) };
            }
        }
        row_sums(l, x, p, bernoulli_f32)
    }

    /// g_row · (x − σ(l)).
    pub(super) fn bernoulli_grad_rows(l: &[f32], x: &[f32], g: &[f32], p: usize) -> Vec<f32> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above); the function is safe code.
                return unsafe { grad_rows_avx2(l, x, g, p) };
            }
        }
        scaled_rows(l, x, g, p, bernoulli_grad_f32)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn rows_avx2(l: &[f32], x: &[f32], p: usize) -> Vec<f32> {
        row_sums(l, x, p, bernoulli_f32)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn grad_rows_avx2(l: &[f32], x: &[f32], g: &[f32], p: usize) -> Vec<f32> {
        scaled_rows(l, x, g, p, bernoulli_grad_f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f32 kernels against the f64 ones, over logits from −100 to 100 and grey levels in [0, 1].
    #[test]
    fn fast_f32_kernels_match_f64() {
        let mut worst = (0.0f64, 0.0f64);
        for i in 0..=40_000 {
            let l32 = (-100.0 + i as f64 * 0.005) as f32;
            let l = l32 as f64;
            for x in [0.0, 0.3, 1.0] {
                let want = bernoulli_f64(l, x);
                let got = bernoulli_f32(l32, x as f32) as f64;
                // f32 rounding of x·l and of the difference: relative to the larger term
                let scale = (x * l).abs().max(want.abs()).max(1e-30);
                worst.0 = worst.0.max((got - want).abs() / scale);
                let gw = bernoulli_grad_f64(l, x);
                let gg = bernoulli_grad_f32(l32, x as f32) as f64;
                // x − σ(l) cancels where σ(l) ≈ x: relative to the larger of x and σ(l)
                let sigma = 1.0 / (1.0 + (-l).exp());
                worst.1 = worst.1.max((gg - gw).abs() / x.max(sigma).max(1e-30));
            }
        }
        assert!(worst.0 < 1e-6, "value: worst relative error {}", worst.0);
        assert!(worst.1 < 1e-6, "gradient: worst relative error {}", worst.1);
        // the wide (AVX2) path gives the portable one's bits
        let l: Vec<f32> = (0..3 * 100).map(|i| (i as f32 * 0.37).sin() * 40.0).collect();
        let x: Vec<f32> = (0..3 * 100).map(|i| (i % 7) as f32 / 6.0).collect();
        let g = [0.5f32, -1.0, 2.0];
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(wide::bernoulli_rows(&l, &x, 100)), bits(row_sums(&l, &x, 100, bernoulli_f32)));
        assert_eq!(
            bits(wide::bernoulli_grad_rows(&l, &x, &g, 100)),
            bits(scaled_rows(&l, &x, &g, 100, bernoulli_grad_f32))
        );
        // tiny tails keep their relative accuracy: softplus(−30) = e^(−30)
        let sp = -bernoulli_f32(-30.0, 0.0) as f64;
        assert!((sp / (-30f64).exp() - 1.0).abs() < 1e-6, "softplus(−30) = {sp}");
    }
}
