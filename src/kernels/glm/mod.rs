//! The fused GLM log-likelihood on the CPU: value and gradient for the coefficients in one pass
//! over Xᵀ in blocks of points.
//!
//! ```text
//! z_s = (w_s, b_s) or w_s,   η_si = Σ_d X_id w_sd + b_s,   r_si = ∂ℓ/∂η (y_i, η_si)
//! value_s = Σ_i ℓ(y_i, η_si) + C,    ∂/∂w_s = Xᵀ r_s,   ∂/∂b_s = Σ_i r_si
//! Bernoulli-logit:  ℓ = y η − softplus(η),  r = y − σ(η);   softplus(η) = max(η, 0) + ln(1 + e^(−|η|))
//! Normal-identity:  ℓ = −½ (y − η)²/σ²,      r = (y − η)/σ²
//! Poisson-log:      ℓ = y η − e^η,           r = y − e^η
//! prior (optional): + Σ_k −½ z_sk²/τ² + C_τ,  gradient − z_s/τ²
//! ```
//!
//! Xᵀ is read in blocks of 256 points, which stay in cache for all S draws: per block and draw η,
//! the values and r, then Xᵀ r. e^x and ln(1 + t) are [`super::simd`]'s polynomials, so the pass
//! runs in AVX2 registers, or AVX-512 ones with the `avx512` feature on a CPU that has them: the same
//! operations in the same order on each path, so the same bits (sums run in eight lanes on all of
//! them). Sums are accumulated in f64 in both dtypes (f32 results are rounded once at the end).

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, WithDType};

use super::kept_gradient::KeptGradient;
use super::simd::{self, exp, log1p_unit};

/// The response distribution and link of the fused op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Response {
    /// ℓ = y η − softplus(η).
    BernoulliLogit,
    /// ℓ = −½ (y − η)²/sd² (less the constants).
    NormalIdentity {
        /// The noise standard deviation.
        sd: f64,
    },
    /// ℓ = y η − e^η (less the constants).
    PoissonLog,
}

/// Xᵀ (row-major [D, N]) and y on the host, in the data's dtype.
#[derive(Debug)]
pub(crate) enum GlmData {
    /// f32 data.
    F32 {
        /// Xᵀ, [D, N].
        x_t: Vec<f32>,
        /// y, [N].
        y: Vec<f32>,
    },
    /// f64 data.
    F64 {
        /// Xᵀ, [D, N].
        x_t: Vec<f64>,
        /// y, [N].
        y: Vec<f64>,
    },
}

/// i.i.d. N(0, 1/precision) priors on the coefficients: Σ_k −½ precision z_k² + constant.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NormalPrior {
    /// 1/sd².
    pub(crate) precision: f64,
    /// −k (ln sd + ½ ln 2π) for k coefficients.
    pub(crate) constant: f64,
}

/// Σ_i ℓ(y_i, η_si) + `constant` (plus the prior, if any) for each row z_s of `z` `[S, k]` (f32 or
/// f64 on the CPU, of the data's dtype), as one op whose backward pass scales the gradient its
/// forward pass kept.
pub(crate) fn log_likelihood(
    z: &Tensor,
    response: Response,
    constant: f64,
    prior: Option<NormalPrior>,
    data: Arc<GlmData>,
) -> candle_core::Result<Tensor> {
    z.contiguous()?.apply_op1(GlmOp { response, constant, prior, data, gradients: KeptGradient::new("GLM") })
}

/// The fused op on z [S, dim]; the gradients [S, dim] (f64) that its forward pass computes are
/// kept for its backward pass (one op value per call of `log_likelihood`, so they belong to this z).
struct GlmOp {
    response: Response,
    constant: f64,
    prior: Option<NormalPrior>,
    data: Arc<GlmData>,
    gradients: KeptGradient,
}

/// Points per block: a block of Xᵀ (D rows of `BLOCK` values) stays in cache from η to Xᵀ r, and
/// across the draws.
const BLOCK: usize = 256;

/// Which instructions [`all`] runs on (a const parameter: the AVX paths are only entered from the
/// functions that enable them).
const PORTABLE: u8 = 0;
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const AVX2: u8 = 1;
#[cfg_attr(not(all(target_arch = "x86_64", feature = "avx512")), allow(dead_code))]
const AVX512: u8 = 2;

/// The eight lanes of a sum, added as ((0 + 1) + (2 + 3)) + ((4 + 5) + (6 + 7)) on every path.
#[inline(always)]
fn lanes_total(a: [f64; 8]) -> f64 {
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

/// Σ_i a_i b_i in eight f64 lanes (so that the loop vectorises).
#[inline(always)]
fn dot<T: WithDType>(a: &[T], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = dot_tail(ac.remainder(), bc.remainder());
    for (a8, b8) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += a8[i].to_f64() * b8[i];
        }
    }
    lanes_total(acc) + tail
}

/// [`dot`] of each of R rows with `b`, in two AVX2 registers a row (lanes 0–3 and 4–7; LLVM
/// compiles the portable loop to 128-bit halves with unpacks). The rows share each load of `b`,
/// and their R sums are R independent chains of additions (four rows at a time against one:
/// benches/README.md, "Fused GLMs and the tiny models"). Each row's lanes, products and sums are
/// [`dot`]'s, so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dots_avx2<T: WithDType, const R: usize>(rows: [&[T]; R], b: &[f64]) -> [f64; R] {
    use std::arch::x86_64::*;
    let full = b.len() - b.len() % 8;
    let mut acc = [[_mm256_setzero_pd(); 2]; R];
    let load = |v: &[T]| _mm256_setr_pd(v[0].to_f64(), v[1].to_f64(), v[2].to_f64(), v[3].to_f64());
    for i in (0..full).step_by(8) {
        // SAFETY (the loads and stores here): the slices hold four f64s; unaligned access is allowed.
        let (b_lo, b_hi) = unsafe { (_mm256_loadu_pd(b[i..].as_ptr()), _mm256_loadu_pd(b[i + 4..].as_ptr())) };
        for (a, acc) in rows.iter().zip(acc.iter_mut()) {
            acc[0] = _mm256_add_pd(acc[0], _mm256_mul_pd(load(&a[i..i + 4]), b_lo));
            acc[1] = _mm256_add_pd(acc[1], _mm256_mul_pd(load(&a[i + 4..i + 8]), b_hi));
        }
    }
    let mut sums = [0.0f64; R];
    for (q, sum) in sums.iter_mut().enumerate() {
        let mut lanes = [0.0f64; 8];
        unsafe {
            _mm256_storeu_pd(lanes.as_mut_ptr(), acc[q][0]);
            _mm256_storeu_pd(lanes[4..].as_mut_ptr(), acc[q][1]);
        }
        *sum = lanes_total(lanes) + dot_tail(&rows[q][full..], &b[full..]);
    }
    sums
}

/// The remainder of [`dot`]: Σ a_i b_i one at a time.
#[inline(always)]
fn dot_tail<T: WithDType>(a: &[T], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x.to_f64() * y).sum()
}

/// Eight values of `v` as f64 in an AVX-512 register.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[inline]
#[target_feature(enable = "avx512f")]
fn load8<T: WithDType>(v: &[T]) -> std::arch::x86_64::__m512d {
    use std::arch::x86_64::*;
    let v = &v[..8];
    // SAFETY: `v` holds eight values, of the type that DTYPE names; unaligned loads are allowed.
    unsafe {
        match T::DTYPE {
            DType::F64 => _mm512_loadu_pd(v.as_ptr().cast::<f64>()),
            DType::F32 => _mm512_cvtps_pd(_mm256_loadu_ps(v.as_ptr().cast::<f32>())),
            _ => {
                let x = [0, 1, 2, 3, 4, 5, 6, 7].map(|i| v[i].to_f64());
                _mm512_loadu_pd(x.as_ptr())
            }
        }
    }
}

/// [`dots_avx2`] in one AVX-512 register a row, the same bits.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[target_feature(enable = "avx512f")]
fn dots_avx512<T: WithDType, const R: usize>(rows: [&[T]; R], b: &[f64]) -> [f64; R] {
    use std::arch::x86_64::*;
    let full = b.len() - b.len() % 8;
    let mut acc = [_mm512_setzero_pd(); R];
    for i in (0..full).step_by(8) {
        let bv = load8(&b[i..i + 8]);
        for (a, acc) in rows.iter().zip(acc.iter_mut()) {
            *acc = _mm512_add_pd(*acc, _mm512_mul_pd(load8(&a[i..i + 8]), bv));
        }
    }
    let mut sums = [0.0f64; R];
    for (q, sum) in sums.iter_mut().enumerate() {
        let mut lanes = [0.0f64; 8];
        // SAFETY: `lanes` holds eight f64s; unaligned stores are allowed.
        unsafe { _mm512_storeu_pd(lanes.as_mut_ptr(), acc[q]) };
        *sum = lanes_total(lanes) + dot_tail(&rows[q][full..], &b[full..]);
    }
    sums
}

/// η += Σ_j w_j x_j for the block's points in groups of 16, summed over the coefficients in four
/// AVX2 registers (the portable loop keeps η in memory and reloads it for every coefficient); the
/// same additions in the same order, so the same bits. Returns how many points it did.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn eta_avx2<T: WithDType>(x_t: &[T], n: usize, i0: usize, w: &[T], eta: &mut [f64]) -> usize {
    use std::arch::x86_64::*;
    let full = eta.len() - eta.len() % 16;
    let load = |row: &[T]| _mm256_setr_pd(row[0].to_f64(), row[1].to_f64(), row[2].to_f64(), row[3].to_f64());
    for p in (0..full).step_by(16) {
        let mut acc = [0, 4, 8, 12].map(|q| _mm256_setr_pd(eta[p + q], eta[p + q + 1], eta[p + q + 2], eta[p + q + 3]));
        for (j, &wj) in w.iter().enumerate() {
            let wj = _mm256_set1_pd(wj.to_f64());
            let row = &x_t[j * n + i0 + p..j * n + i0 + p + 16];
            for (q, a) in acc.iter_mut().enumerate() {
                *a = _mm256_add_pd(*a, _mm256_mul_pd(wj, load(&row[4 * q..4 * q + 4])));
            }
        }
        for (q, a) in acc.iter().enumerate() {
            // SAFETY: the slice holds four f64s; unaligned stores are allowed.
            unsafe { _mm256_storeu_pd(eta[p + 4 * q..p + 4 * q + 4].as_mut_ptr(), *a) };
        }
    }
    full
}

/// [`eta_avx2`] in AVX-512 registers: groups of 32 points in four of them; the same bits.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[target_feature(enable = "avx512f")]
fn eta_avx512<T: WithDType>(x_t: &[T], n: usize, i0: usize, w: &[T], eta: &mut [f64]) -> usize {
    use std::arch::x86_64::*;
    let full = eta.len() - eta.len() % 32;
    for p in (0..full).step_by(32) {
        let mut acc = [0, 8, 16, 24].map(|q| load8(&eta[p + q..p + q + 8]));
        for (j, &wj) in w.iter().enumerate() {
            let wj = _mm512_set1_pd(wj.to_f64());
            let row = &x_t[j * n + i0 + p..j * n + i0 + p + 32];
            for (q, a) in acc.iter_mut().enumerate() {
                *a = _mm512_add_pd(*a, _mm512_mul_pd(wj, load8(&row[8 * q..8 * q + 8])));
            }
        }
        for (q, a) in acc.iter().enumerate() {
            // SAFETY: the slice holds eight f64s; unaligned stores are allowed.
            unsafe { _mm512_storeu_pd(eta[p + 8 * q..p + 8 * q + 8].as_mut_ptr(), *a) };
        }
    }
    full
}

/// One data point's term of the log-likelihood without its constant, and its derivative in η.
trait Term: Copy {
    /// (ℓ(y, η) less the terms in y alone, r = ∂ℓ/∂η).
    fn term(self, eta: f64, y: f64) -> (f64, f64);

    /// [`pass`] in AVX2 registers, with the same bits; by default the portable loop (compiled
    /// inside the AVX2 function, which vectorises what LLVM can).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn pass_avx2<T: WithDType>(self, eta: &[f64], y: &[T], r: &mut [f64]) -> f64 {
        pass(self, eta, y, r)
    }

    /// [`pass`] in AVX-512 registers, with the same bits; by default the portable loop.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    #[inline(always)]
    unsafe fn pass_avx512<T: WithDType>(self, eta: &[f64], y: &[T], r: &mut [f64]) -> f64 {
        pass(self, eta, y, r)
    }
}

/// y η − softplus(η), and the residual y − σ(η), with t = e^(−|η|): softplus(η) = max(η, 0) +
/// ln(1 + t), σ(η) = 1/(1 + t) for η ≥ 0 and t/(1 + t) otherwise.
#[derive(Clone, Copy)]
struct Bernoulli;

impl Term for Bernoulli {
    #[inline(always)]
    fn term(self, eta: f64, y: f64) -> (f64, f64) {
        let t = exp(-eta.abs());
        let value = y * eta - (eta.max(0.0) + log1p_unit(t));
        let num = if eta >= 0.0 { 1.0 } else { t };
        (value, y - num / (1.0 + t))
    }

    /// The term in intrinsics: LLVM leaves the scalar version's polynomials and divisions in
    /// scalar and 128-bit code (objdump).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn pass_avx2<T: WithDType>(self, eta: &[f64], y: &[T], r: &mut [f64]) -> f64 {
        bernoulli_pass_avx2(eta, y, r)
    }

    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    #[inline(always)]
    unsafe fn pass_avx512<T: WithDType>(self, eta: &[f64], y: &[T], r: &mut [f64]) -> f64 {
        bernoulli_pass_avx512(eta, y, r)
    }
}

/// [`pass`] for [`Bernoulli`] in AVX2 registers, the same operations in the same order: points
/// in groups of eight, the values summed in two registers (lanes 0–3 and 4–7).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn bernoulli_pass_avx2<T: WithDType>(eta: &[f64], y: &[T], r: &mut [f64]) -> f64 {
    use std::arch::x86_64::*;
    let full = eta.len() - eta.len() % 8;
    let (zero, one) = (_mm256_setzero_pd(), _mm256_set1_pd(1.0));
    let mut acc = [zero; 2];
    for i in (0..full).step_by(8) {
        for (h, acc) in acc.iter_mut().enumerate() {
            let i = i + 4 * h;
            // SAFETY (the loads and stores): the slices hold four f64s; unaligned access is allowed.
            let e = unsafe { _mm256_loadu_pd(eta[i..i + 4].as_ptr()) };
            let yv = _mm256_setr_pd(y[i].to_f64(), y[i + 1].to_f64(), y[i + 2].to_f64(), y[i + 3].to_f64());
            let neg_abs = _mm256_or_pd(e, _mm256_set1_pd(-0.0));
            let t = simd::avx2::exp(neg_abs);
            let softplus = _mm256_add_pd(_mm256_max_pd(e, zero), simd::avx2::log1p_unit(t));
            *acc = _mm256_add_pd(*acc, _mm256_sub_pd(_mm256_mul_pd(yv, e), softplus));
            let num = _mm256_blendv_pd(t, one, _mm256_cmp_pd::<_CMP_GE_OQ>(e, zero));
            let residual = _mm256_sub_pd(yv, _mm256_div_pd(num, _mm256_add_pd(one, t)));
            unsafe { _mm256_storeu_pd(r[i..i + 4].as_mut_ptr(), residual) };
        }
    }
    let mut lanes = [0.0f64; 8];
    unsafe {
        _mm256_storeu_pd(lanes.as_mut_ptr(), acc[0]);
        _mm256_storeu_pd(lanes[4..].as_mut_ptr(), acc[1]);
    }
    lanes_total(lanes) + bernoulli_tail(eta, y, r, full)
}

/// [`pass`] for [`Bernoulli`] in AVX-512 registers, the same bits: 32 points at a time in four
/// registers whose polynomials interleave ([`simd::avx512`]), then 8 at a time.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[target_feature(enable = "avx512f")]
fn bernoulli_pass_avx512<T: WithDType>(eta: &[f64], y: &[T], r: &mut [f64]) -> f64 {
    use std::arch::x86_64::*;
    let mut acc = _mm512_setzero_pd();
    let (wide, full) = (eta.len() - eta.len() % 32, eta.len() - eta.len() % 8);
    for i in (0..wide).step_by(32) {
        acc = bernoulli_avx512::<T, 4>(&eta[i..i + 32], &y[i..i + 32], &mut r[i..i + 32], acc);
    }
    for i in (wide..full).step_by(8) {
        acc = bernoulli_avx512::<T, 1>(&eta[i..i + 8], &y[i..i + 8], &mut r[i..i + 8], acc);
    }
    let mut lanes = [0.0f64; 8];
    // SAFETY: `lanes` holds eight f64s; unaligned stores are allowed.
    unsafe { _mm512_storeu_pd(lanes.as_mut_ptr(), acc) };
    lanes_total(lanes) + bernoulli_tail(eta, y, r, full)
}

/// The Bernoulli terms of 8 N points (`eta`, `y`; residuals into `r`), their values added to the
/// eight lanes of `acc` eight points after eight, in order.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[inline]
#[target_feature(enable = "avx512f")]
fn bernoulli_avx512<T: WithDType, const N: usize>(
    eta: &[f64],
    y: &[T],
    r: &mut [f64],
    mut acc: std::arch::x86_64::__m512d,
) -> std::arch::x86_64::__m512d {
    use std::arch::x86_64::*;
    let (zero, one) = (_mm512_setzero_pd(), _mm512_set1_pd(1.0));
    let sign = _mm512_set1_epi64(i64::MIN);
    let (mut e, mut neg_abs) = ([zero; N], [zero; N]);
    for k in 0..N {
        e[k] = load8(&eta[8 * k..8 * k + 8]);
        neg_abs[k] = _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(e[k]), sign));
    }
    let t = simd::avx512::exp(neg_abs);
    let log1p = simd::avx512::log1p_unit(t);
    for k in 0..N {
        let yv = load8(&y[8 * k..8 * k + 8]);
        let softplus = _mm512_add_pd(_mm512_max_pd(e[k], zero), log1p[k]);
        acc = _mm512_add_pd(acc, _mm512_sub_pd(_mm512_mul_pd(yv, e[k]), softplus));
        let num = _mm512_mask_blend_pd(_mm512_cmp_pd_mask::<_CMP_GE_OQ>(e[k], zero), t[k], one);
        let residual = _mm512_sub_pd(yv, _mm512_div_pd(num, _mm512_add_pd(one, t[k])));
        // SAFETY: the slice holds eight f64s; unaligned stores are allowed.
        unsafe { _mm512_storeu_pd(r[8 * k..8 * k + 8].as_mut_ptr(), residual) };
    }
    acc
}

/// The points from `from` on, one at a time (the wide passes' remainder, as [`pass`] does it).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn bernoulli_tail<T: WithDType>(eta: &[f64], y: &[T], r: &mut [f64], from: usize) -> f64 {
    let mut tail = 0.0;
    for i in from..eta.len() {
        let (v, ri) = Bernoulli.term(eta[i], y[i].to_f64());
        tail += v;
        r[i] = ri;
    }
    tail
}

/// −½ (y − η)² / σ², and (y − η) / σ².
#[derive(Clone, Copy)]
struct Normal {
    inv_var: f64,
}

impl Term for Normal {
    #[inline(always)]
    fn term(self, eta: f64, y: f64) -> (f64, f64) {
        let r = (y - eta) * self.inv_var;
        (-0.5 * (y - eta) * r, r)
    }
}

/// y η − e^η, and y − e^η.
#[derive(Clone, Copy)]
struct Poisson;

impl Term for Poisson {
    #[inline(always)]
    fn term(self, eta: f64, y: f64) -> (f64, f64) {
        let mean = exp(eta);
        (y * eta - mean, y - mean)
    }
}

/// Σ_i ℓ(y_i, η_i) for one draw (less the constants), writing r_i; in eight lanes.
#[inline(always)]
fn pass<T: WithDType, L: Term>(term: L, eta: &[f64], y: &[T], r: &mut [f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ec, yc, rc) = (eta.chunks_exact(8), y.chunks_exact(8), r.chunks_exact_mut(8));
    let (et, yt) = (ec.remainder(), yc.remainder());
    let mut tail = 0.0;
    for ((e8, y8), r8) in ec.zip(yc).zip(rc) {
        for j in 0..8 {
            let (v, rj) = term.term(e8[j], y8[j].to_f64());
            acc[j] += v;
            r8[j] = rj;
        }
    }
    let done = eta.len() - et.len();
    for (i, (&e, &yi)) in et.iter().zip(yt).enumerate() {
        let (v, rj) = term.term(e, yi.to_f64());
        tail += v;
        r[done + i] = rj;
    }
    lanes_total(acc) + tail
}

/// One block of points [i0, i0 + len) (`y` is the block's slice) for one draw z = (w, b) or w:
/// returns the block's Σ ℓ and adds its Xᵀ r (and Σ r, with an intercept) to `grad` [z.len()].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<T: WithDType, L: Term, const ISA: u8>(
    term: L,
    x_t: &[T],
    n: usize,
    i0: usize,
    z: &[T],
    y: &[T],
    eta: &mut [f64],
    r: &mut [f64],
    grad: &mut [f64],
) -> f64 {
    let (d, len) = (x_t.len() / n, y.len());
    let (eta, r) = (&mut eta[..len], &mut r[..len]);
    eta.fill(z.get(d).map_or(0.0, |b| b.to_f64()));
    // SAFETY (each AVX call below): ISA is AVX2 only in `all_avx2` and AVX512 only in
    // `all_avx512`, which run where the CPU has those instructions.
    let done = match ISA {
        #[cfg(target_arch = "x86_64")]
        AVX2 => unsafe { eta_avx2(x_t, n, i0, &z[..d], eta) },
        #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
        AVX512 => unsafe { eta_avx512(x_t, n, i0, &z[..d], eta) },
        _ => 0,
    };
    for (j, &wj) in z[..d].iter().enumerate() {
        let wj = wj.to_f64();
        for (e, &x) in eta[done..].iter_mut().zip(&x_t[j * n + i0 + done..j * n + i0 + len]) {
            *e += wj * x.to_f64();
        }
    }
    let value = match ISA {
        #[cfg(target_arch = "x86_64")]
        AVX2 => unsafe { term.pass_avx2(eta, y, r) },
        #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
        AVX512 => unsafe { term.pass_avx512(eta, y, r) },
        _ => pass(term, eta, y, r),
    };
    // Xᵀ r: on the wide paths four rows at a time, then one at a time
    let row = |j: usize| &x_t[j * n + i0..j * n + i0 + len];
    let mut j = 0;
    while j < d {
        let four = ISA != PORTABLE && j + 4 <= d;
        let sums: [f64; 4] = match (ISA, four) {
            #[cfg(target_arch = "x86_64")]
            (AVX2, true) => unsafe { dots_avx2([row(j), row(j + 1), row(j + 2), row(j + 3)], r) },
            #[cfg(target_arch = "x86_64")]
            (AVX2, false) => [unsafe { dots_avx2([row(j)], r) }[0], 0.0, 0.0, 0.0],
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            (AVX512, true) => unsafe { dots_avx512([row(j), row(j + 1), row(j + 2), row(j + 3)], r) },
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            (AVX512, false) => [unsafe { dots_avx512([row(j)], r) }[0], 0.0, 0.0, 0.0],
            _ => [dot(row(j), r), 0.0, 0.0, 0.0],
        };
        let rows = if four { 4 } else { 1 };
        for (g, s) in grad[j..j + rows].iter_mut().zip(sums) {
            *g += s;
        }
        j += rows;
    }
    if let Some(gb) = grad.get_mut(d) {
        let mut acc = [0.0f64; 4];
        let rc = r.chunks_exact(4);
        let tail: f64 = rc.remainder().iter().sum();
        for r4 in rc {
            for j in 0..4 {
                acc[j] += r4[j];
            }
        }
        *gb += (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail;
    }
    value
}

/// The log-likelihood (less the constants) of every draw (rows of `z`, [S, k], k = D + 1 with an
/// intercept, D without) into `values` [S], and the gradients into `grads` [S, k]: one pass over
/// Xᵀ in blocks of points.
#[inline(always)]
fn all<T: WithDType, L: Term, const ISA: u8>(
    term: L,
    x_t: &[T],
    y: &[T],
    z: &[T],
    values: &mut [f64],
    grads: &mut [f64],
) {
    let n = y.len();
    let k = grads.len() / values.len();
    let (mut eta, mut r) = ([0.0f64; BLOCK], [0.0f64; BLOCK]);
    for i0 in (0..n).step_by(BLOCK) {
        let yb = &y[i0..n.min(i0 + BLOCK)];
        for ((zs, v), g) in z.chunks_exact(k).zip(values.iter_mut()).zip(grads.chunks_exact_mut(k)) {
            *v += block::<T, L, ISA>(term, x_t, n, i0, zs, yb, &mut eta, &mut r, g);
        }
    }
}

/// [`all`] in 8-wide AVX-512 registers where the CPU has them (and the `avx512` feature is on),
/// else in 4-wide AVX2 ones, else portable. Element by element the arithmetic is the same on every
/// path (no fused multiply-adds), and sums run in the same eight lanes, so the results are too.
fn all_wide<T: WithDType, L: Term>(term: L, x_t: &[T], y: &[T], z: &[T], values: &mut [f64], grads: &mut [f64]) {
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above); the function is safe code.
            return unsafe { all_avx512(term, x_t, y, z, values, grads) };
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above); the function is safe code.
            return unsafe { all_avx2(term, x_t, y, z, values, grads) };
        }
    }
    all::<T, L, PORTABLE>(term, x_t, y, z, values, grads)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn all_avx2<T: WithDType, L: Term>(term: L, x_t: &[T], y: &[T], z: &[T], values: &mut [f64], grads: &mut [f64]) {
    all::<T, L, AVX2>(term, x_t, y, z, values, grads)
}

#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[target_feature(enable = "avx512f")]
unsafe fn all_avx512<T: WithDType, L: Term>(
    term: L,
    x_t: &[T],
    y: &[T],
    z: &[T],
    values: &mut [f64],
    grads: &mut [f64],
) {
    all::<T, L, AVX512>(term, x_t, y, z, values, grads)
}

impl GlmOp {
    /// The log-likelihood of each draw [S], and the gradient of each with respect to z [S, k].
    fn forward<T: WithDType>(&self, z: &[T], k: usize, x_t: &[T], y: &[T]) -> (Vec<T>, Vec<f64>) {
        let s = z.len() / k;
        let (mut values, mut grads) = (vec![0.0f64; s], vec![0.0f64; s * k]);
        match self.response {
            Response::BernoulliLogit => all_wide(Bernoulli, x_t, y, z, &mut values, &mut grads),
            Response::NormalIdentity { sd } => {
                all_wide(Normal { inv_var: 1.0 / (sd * sd) }, x_t, y, z, &mut values, &mut grads)
            }
            Response::PoissonLog => all_wide(Poisson, x_t, y, z, &mut values, &mut grads),
        }
        if let Some(prior) = self.prior {
            for ((zs, v), g) in z.chunks_exact(k).zip(&mut values).zip(grads.chunks_exact_mut(k)) {
                let mut sum_sq = 0.0;
                for (&zk, gk) in zs.iter().zip(g) {
                    let zk = zk.to_f64();
                    sum_sq += zk * zk;
                    *gk -= prior.precision * zk;
                }
                *v += -0.5 * prior.precision * sum_sq + prior.constant;
            }
        }
        (values.into_iter().map(|v| T::from_f64(v + self.constant)).collect(), grads)
    }
}

impl CustomOp1 for GlmOp {
    fn name(&self) -> &'static str {
        match self.response {
            Response::BernoulliLogit => "glm_bernoulli_logit",
            Response::NormalIdentity { .. } => "glm_normal_identity",
            Response::PoissonLog => "glm_poisson_log",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (s, k) = layout.shape().dims2()?;
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("{}: expects a contiguous z", self.name());
        };
        let (out, gradients) = match (storage, &*self.data) {
            (CpuStorage::F64(z), GlmData::F64 { x_t, y }) => {
                let (v, r) = self.forward(&z[start..end], k, x_t, y);
                (CpuStorage::F64(v), r)
            }
            (CpuStorage::F32(z), GlmData::F32 { x_t, y }) => {
                let (v, r) = self.forward(&z[start..end], k, x_t, y);
                (CpuStorage::F32(v), r)
            }
            (other, _) => bail!("{}: z of dtype {:?} does not match the data's", self.name(), other.dtype()),
        };
        self.gradients.keep(gradients)?;
        Ok((out, Shape::from(s)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        self.gradients.backward(arg, grad).map(Some)
    }
}

#[cfg(test)]
mod tests;
