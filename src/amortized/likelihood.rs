//! The decoder p_θ(x | z), and the Bernoulli likelihood on logits that image models use.
//!
//! ```text
//! Decoder:     (x [B, P], z [B, D])  ↦  log p_θ(x_b | z_b)  [B]
//! Bernoulli on logits l = f_θ(z), for grey levels x ∈ [0, 1]:
//!   log p(x | l) = Σ_p [x_p · l_p − softplus(l_p)]  = Σ_p [x_p log σ(l_p) + (1 − x_p) log σ(−l_p)]
//!   ∂/∂l_p = x_p − σ(l_p)
//! ```
//!
//! softplus(l) = max(l, 0) + ln(1 + e^(−|l|)) is finite for every finite l, so the likelihood never
//! takes the log of a probability that rounded to 0. On grey levels (not just 0/1) it is the
//! "continuous Bernoulli without its normaliser", as in the classic VAE examples: comparable
//! across toolkits, not a normalised density.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Shape, Tensor, D};

use crate::special::softplus;
use crate::Result;

/// p_θ(x | z): the log-likelihood of each datum given its latent draw.
pub trait Decoder {
    /// log p_θ(x_b | z_b) for each row b: `x` is `[B, ...]`, `z` is `[B, D]`, the result `[B]`.
    fn log_likelihood(&self, x: &Tensor, z: &Tensor) -> candle_core::Result<Tensor>;
}

impl<F> Decoder for F
where
    F: Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
{
    fn log_likelihood(&self, x: &Tensor, z: &Tensor) -> candle_core::Result<Tensor> {
        self(x, z)
    }
}

/// Σ_p [x_p · l_p − softplus(l_p)] over the last axis: the Bernoulli log-likelihood of `x` in
/// [0, 1] under logits `logits` (same shape `[..., P]`), giving `[...]`.
///
/// On the CPU in f32/f64 it is one fused op (value and gradient in one pass over the pixels);
/// elsewhere a composition of candle ops. The gradient flows to `logits` only (x is data).
pub fn bernoulli_logit_log_likelihood(x: &Tensor, logits: &Tensor) -> Result<Tensor> {
    if x.dims() != logits.dims() || logits.rank() == 0 {
        return Err(crate::Error::DimensionMismatch {
            what: format!("Bernoulli likelihood: data of shape {:?} for logits of shape {:?}", x.dims(), logits.dims()),
            expected: logits.elem_count(),
            got: x.elem_count(),
        });
    }
    let fused = matches!(logits.device(), Device::Cpu)
        && matches!(logits.dtype(), DType::F32 | DType::F64)
        && x.dtype() == logits.dtype();
    if fused {
        Ok(logits.contiguous()?.apply_op2(&x.detach().contiguous()?, BernoulliLogit)?)
    } else {
        Ok(bernoulli_composite(&x.detach(), logits)?)
    }
}

/// The same likelihood as candle ops (the path off the CPU, e.g. on CUDA).
fn bernoulli_composite(x: &Tensor, logits: &Tensor) -> candle_core::Result<Tensor> {
    ((x * logits)? - softplus(logits)?)?.sum(D::Minus1)
}

/// e^x for x ≤ 0 in f32, branch-free so that loops over it vectorise (Cephes' expf: x = n ln 2 + r,
/// |r| ≤ ½ ln 2, e^r by a polynomial, 2ⁿ from the exponent bits); relative error ≲ 2e-7.
/// Inputs below −87 give e^(−87) (≈ 1.6e-38) instead of a subnormal.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding and subtracting it rounds to an integer
    let x = x.clamp(-87.0, 0.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    er * f32::from_bits((((n as i32) + 127) << 23) as u32)
}

/// ln(1 + t) for t ∈ [0, 1] in f32, branch-free: 2 atanh(s) with s = t / (2 + t) ≤ ⅓ as an odd
/// series to s¹⁷ (truncation < 2e-9 relative), so small t keep full relative accuracy.
#[inline(always)]
fn log1p_unit(t: f32) -> f32 {
    let s = t / (2.0 + t);
    let s2 = s * s;
    let mut p = 1.0 / 17.0f32;
    for c in [1.0 / 15.0, 1.0 / 13.0, 1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0] {
        p = p * s2 + c;
    }
    2.0 * s * p
}

/// x · l − softplus(l) in f32, with softplus(l) = max(l, 0) + ln(1 + e^(−|l|)).
#[inline(always)]
fn bernoulli_f32(l: f32, x: f32) -> f32 {
    x * l - (l.max(0.0) + log1p_unit(exp_nonpositive(-l.abs())))
}

/// x − σ(l) in f32, with σ(l) = 1/(1 + t) for l ≥ 0 and t/(1 + t) for l < 0, t = e^(−|l|).
#[inline(always)]
fn bernoulli_grad_f32(l: f32, x: f32) -> f32 {
    let t = exp_nonpositive(-l.abs());
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

/// The f32 kernels in 8-wide AVX2 registers where the CPU has them (they are bound by division:
/// 2× over the baseline's SSE2). Element by element the arithmetic is the same on both paths, and
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

    /// The fused op and the composition of candle ops used off the CPU agree in value and in the
    /// gradient with respect to the logits, in f32 and f64.
    #[test]
    fn fused_op_matches_the_composite_path() {
        let dev = Device::Cpu;
        let l: Vec<f64> = (0..4 * 37).map(|i| (i as f64 * 0.37).sin() * 30.0).collect();
        let x: Vec<f64> = (0..4 * 37).map(|i| (i % 7) as f64 / 6.0).collect();
        for (dtype, tol) in [(DType::F64, 1e-13), (DType::F32, 2e-6)] {
            let logits = candle_core::Var::from_tensor(
                &Tensor::from_vec(l.clone(), (4, 37), &dev).unwrap().to_dtype(dtype).unwrap(),
            )
            .unwrap();
            let data = Tensor::from_vec(x.clone(), (4, 37), &dev).unwrap().to_dtype(dtype).unwrap();
            let run = |f: &dyn Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>| {
                let y = f(&data, logits.as_tensor()).unwrap();
                // weight the rows differently so that the gradient's row scaling is checked too
                let w = Tensor::new(&[1.0f64, -2.0, 0.5, 3.0], &dev).unwrap().to_dtype(dtype).unwrap();
                let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
                let host =
                    |t: &Tensor| t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
                (host(&y), host(g.get(logits.as_tensor()).unwrap()))
            };
            let (yf, gf) = run(&|x, l| bernoulli_logit_log_likelihood(x, l).map_err(candle_core::Error::wrap));
            let (yc, gc) = run(&bernoulli_composite);
            for (a, b) in yf.iter().zip(&yc) {
                assert!((a - b).abs() <= tol * b.abs().max(1.0), "{dtype:?} value: fused {a}, composite {b}");
            }
            for (a, b) in gf.iter().zip(&gc) {
                assert!((a - b).abs() <= tol * b.abs().max(1.0), "{dtype:?} gradient: fused {a}, composite {b}");
            }
        }
    }

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
