//! The fused Gaussian-mixture log-likelihood on the CPU: values and responsibility sums in one
//! pass over the points in blocks.
//!
//! ```text
//! ℓ_ik = c_k − ‖x_i − μ_k‖² / (2σ_k²),   c_k = ln w_k − D ln σ_k − (D/2) ln 2π
//! value = Σ_i (m_i + ln Σ_k e^(ℓ_ik − m_i)),   m_i = max_k ℓ_ik
//! r_ik = e^(ℓ_ik − m_i) / Σ_k e^(ℓ_ik − m_i)
//! ∂/∂ln w_k = Σ_i r_ik,   ∂/∂μ_k = Σ_i r_ik (x_i − μ_k) / σ_k²,   ∂/∂ln σ_k = Σ_i r_ik ‖x_i − μ_k‖² / σ_k² − D Σ_i r_ik
//! ```
//!
//! A block's coordinates are gathered (all points, or a minibatch's rows), transposed and converted
//! to f64 once, then kept in cache for all S draws; per block and draw, one component at a time so
//! that each loop vectorises. e^x and ln t are [`super::simd`]'s polynomials, so the per-point work
//! runs in 4-wide AVX2 registers where the CPU has them, with the bits of the portable path. Sums
//! are accumulated in f64 in both dtypes (f32 results are rounded once at the end). ‖x_i − μ_k‖² is
//! computed as such, not as ‖x‖² − 2x·μ + ‖μ‖², so it does not cancel.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Shape, Tensor, WithDType};

use super::kept_gradient::{scale_rows, KeptGradient};
use super::simd::{exp, ln_positive, F4};

/// The points on the host, row-major [N, D], in the data's dtype.
#[derive(Debug)]
pub(crate) enum MixtureData {
    /// f32 points.
    F32(Vec<f32>),
    /// f64 points.
    F64(Vec<f64>),
}

/// Σ_i logsumexp_k ℓ_ik for each draw of (`log_w` [S, K], `mu` [S, K, D], `log_sigma` [S, K]) (f32
/// or f64 on the CPU, of the data's dtype) over the `d`-dimensional points `data`, or their `rows`,
/// as one op whose backward pass scales the gradients its forward pass kept; `log_norm` is
/// D · ½ ln 2π.
pub(crate) fn log_likelihood(
    log_w: &Tensor,
    mu: &Tensor,
    log_sigma: &Tensor,
    data: Arc<MixtureData>,
    d: usize,
    log_norm: f64,
    rows: Option<Vec<u32>>,
) -> candle_core::Result<Tensor> {
    let op = MixtureOp { data, d, log_norm, rows, gradients: KeptGradient::new("mixture_log_likelihood") };
    log_w.contiguous()?.apply_op3(&mu.contiguous()?, &log_sigma.contiguous()?, op)
}

/// The fused op on (log w [S, K], μ [S, K, D], log σ [S, K]); the gradients that its forward pass
/// computes are kept for its backward pass (one op value per call, so they belong to these inputs).
struct MixtureOp {
    data: Arc<MixtureData>,
    d: usize,
    /// D · ½ ln 2π.
    log_norm: f64,
    /// The minibatch's rows (None: every point, in order).
    rows: Option<Vec<u32>>,
    gradients: KeptGradient<Gradients>,
}

/// The gradients of each draw's log-likelihood, f64, laid out as the inputs.
struct Gradients {
    log_w: Vec<f64>,
    mu: Vec<f64>,
    log_sigma: Vec<f64>,
}

/// Points per block: a block's coordinates (D × 256 f64) and its buffers ((2K + 3) × 256 f64) stay
/// in cache across the draws and components.
const BLOCK: usize = 256;

/// Per draw and component, in f64: c = ln w − D ln σ − (D/2) ln 2π, h = 1/(2σ²), the precision
/// 1/σ², and the means.
struct Params {
    k: usize,
    d: usize,
    c: Vec<f64>,
    half_precision: Vec<f64>,
    precision: Vec<f64>,
    mu: Vec<f64>,
}

impl Params {
    /// From the op's inputs: `log_w` and `log_sigma` [S, K], `mu` [S, K, D], row-major, for K
    /// components in D dimensions; `log_norm` = D · ½ ln 2π.
    fn new<T: WithDType>(k: usize, d: usize, log_norm: f64, log_w: &[T], mu: &[T], log_sigma: &[T]) -> Self {
        let df = d as f64;
        let precision: Vec<f64> = log_sigma.iter().map(|b| (-2.0 * b.to_f64()).exp()).collect();
        let c = log_w.iter().zip(log_sigma).map(|(a, b)| a.to_f64() - df * b.to_f64() - log_norm).collect();
        Params {
            k,
            d,
            c,
            half_precision: precision.iter().map(|p| 0.5 * p).collect(),
            precision,
            mu: mu.iter().map(|m| m.to_f64()).collect(),
        }
    }
}

/// The sums the gradients are made of, per draw and component: Σ_i r_ik [S, K],
/// Σ_i r_ik (x_i − μ_k) [S, K, D] and Σ_i r_ik ‖x_i − μ_k‖² [S, K].
struct Sums {
    resp: Vec<f64>,
    shift: Vec<f64>,
    dist: Vec<f64>,
}

/// r_i = e_i · inv_i in place; returns (Σ_i r_i, Σ_i r_i q_i). The sums run in eight lanes (two
/// [`F4`] accumulators, so that consecutive additions do not wait for each other).
#[inline(always)]
fn responsibilities(e: &mut [f64], inv: &[f64], q: &[f64]) -> (f64, f64) {
    let zero = F4::splat(0.0);
    let (mut r0, mut r1, mut q0, mut q1) = (zero, zero, zero, zero);
    let done = e.len() / 8 * 8;
    for ((e8, i8), q8) in e.chunks_exact_mut(8).zip(inv.chunks_exact(8)).zip(q.chunks_exact(8)) {
        let a = F4::load(&e8[..4]) * F4::load(&i8[..4]);
        let b = F4::load(&e8[4..]) * F4::load(&i8[4..]);
        e8[..4].copy_from_slice(&a.0);
        e8[4..].copy_from_slice(&b.0);
        r0 += a;
        r1 += b;
        q0 += a * F4::load(&q8[..4]);
        q1 += b * F4::load(&q8[4..]);
    }
    let (mut tail_r, mut tail_q) = (0.0, 0.0);
    for ((ei, &ii), &qi) in e[done..].iter_mut().zip(&inv[done..]).zip(&q[done..]) {
        let r = *ei * ii;
        *ei = r;
        tail_r += r;
        tail_q += r * qi;
    }
    ((r0 + r1).total() + tail_r, (q0 + q1).total() + tail_q)
}

/// Σ_i r_i (x_i − μ), in eight lanes.
#[inline(always)]
fn dot_shift(r: &[f64], x: &[f64], mu: f64) -> f64 {
    let (mut a0, mut a1) = (F4::splat(0.0), F4::splat(0.0));
    let m = F4::splat(mu);
    let (rc, xc) = (r.chunks_exact(8), x.chunks_exact(8));
    let tail: f64 = rc.remainder().iter().zip(xc.remainder()).map(|(&a, &b)| a * (b - mu)).sum();
    for (r8, x8) in rc.zip(xc) {
        a0 += F4::load(&r8[..4]) * (F4::load(&x8[..4]) - m);
        a1 += F4::load(&r8[4..]) * (F4::load(&x8[4..]) - m);
    }
    (a0 + a1).total() + tail
}

/// Σ_i (m_i + ln t_i), replacing each t_i by 1/t_i; `ln` is scratch.
#[inline(always)]
fn log_sum_and_invert(m: &[f64], t: &mut [f64], ln: &mut [f64]) -> f64 {
    for (l, ti) in ln.iter_mut().zip(t.iter_mut()) {
        *l = ln_positive(*ti);
        *ti = 1.0 / *ti;
    }
    let (mut a0, mut a1) = (F4::splat(0.0), F4::splat(0.0));
    let (mc, lc) = (m.chunks_exact(8), ln.chunks_exact(8));
    let tail: f64 = mc.remainder().iter().zip(lc.remainder()).map(|(&a, &b)| a + b).sum();
    for (m8, l8) in mc.zip(lc) {
        a0 += F4::load(&m8[..4]) + F4::load(&l8[..4]);
        a1 += F4::load(&m8[4..]) + F4::load(&l8[4..]);
    }
    (a0 + a1).total() + tail
}

/// Scratch buffers for one block: the coordinates transposed (x[j · BLOCK + i], D rows, in f64),
/// the squared distances and ℓ (then e^(ℓ − m), then r) per component (K rows each), the per-point
/// maximum m, the sum Σ_k e^(ℓ − m) (then its inverse) and its logarithm.
struct Scratch {
    x: Vec<f64>,
    sq: Vec<f64>,
    e: Vec<f64>,
    m: Vec<f64>,
    tot: Vec<f64>,
    ln: Vec<f64>,
}

/// One block of `len` points (in `w.x`) for draw `s`: returns the block's Σ_i logsumexp_k ℓ_ik and
/// adds its responsibility sums to `sums`. Loops over the points, one component at a time, so that
/// each vectorises: ‖x − μ_k‖² and ℓ_k; m = max_k ℓ_k; e^(ℓ_k − m) and their sum t; m + ln t and
/// 1/t; r_k = e^(ℓ_k − m)/t and the sums.
#[inline(always)]
fn mixture_block(p: &Params, s: usize, len: usize, w: &mut Scratch, sums: &mut Sums) -> f64 {
    let (k, d) = (p.k, p.d);
    let mu = &p.mu[s * k * d..(s + 1) * k * d];
    for c in 0..k {
        let sq = &mut w.sq[c * BLOCK..c * BLOCK + len];
        sq.fill(0.0);
        for j in 0..d {
            let mj = mu[c * d + j];
            for (q, &x) in sq.iter_mut().zip(&w.x[j * BLOCK..j * BLOCK + len]) {
                let t = x - mj;
                *q += t * t;
            }
        }
        let (cc, h) = (p.c[s * k + c], p.half_precision[s * k + c]);
        for (l, &q) in w.e[c * BLOCK..c * BLOCK + len].iter_mut().zip(sq.iter()) {
            *l = cc - h * q;
        }
    }
    let (m, tot) = (&mut w.m[..len], &mut w.tot[..len]);
    m.copy_from_slice(&w.e[..len]);
    for c in 1..k {
        for (mi, &l) in m.iter_mut().zip(&w.e[c * BLOCK..c * BLOCK + len]) {
            *mi = mi.max(l);
        }
    }
    tot.fill(0.0);
    for c in 0..k {
        for ((l, t), &mi) in w.e[c * BLOCK..c * BLOCK + len].iter_mut().zip(tot.iter_mut()).zip(m.iter()) {
            let v = exp(*l - mi);
            *l = v;
            *t += v;
        }
    }
    let value = log_sum_and_invert(m, tot, &mut w.ln[..len]);
    for c in 0..k {
        let r = &mut w.e[c * BLOCK..c * BLOCK + len];
        let (resp, dist) = responsibilities(r, tot, &w.sq[c * BLOCK..c * BLOCK + len]);
        sums.resp[s * k + c] += resp;
        sums.dist[s * k + c] += dist;
        for j in 0..d {
            sums.shift[(s * k + c) * d + j] += dot_shift(r, &w.x[j * BLOCK..j * BLOCK + len], mu[c * d + j]);
        }
    }
    value
}

/// The log-likelihood of every draw into `values` [S] and the responsibility sums into `sums`: one
/// pass over the points (`x` row-major [N, D], or its `rows`) in blocks.
#[inline(always)]
fn mixture_all<T: WithDType>(x: &[T], rows: Option<&[u32]>, p: &Params, values: &mut [f64], sums: &mut Sums) {
    let (k, d) = (p.k, p.d);
    let n = rows.map_or(x.len() / d, <[u32]>::len);
    let mut w = Scratch {
        x: vec![0.0; d * BLOCK],
        sq: vec![0.0; k * BLOCK],
        e: vec![0.0; k * BLOCK],
        m: vec![0.0; BLOCK],
        tot: vec![0.0; BLOCK],
        ln: vec![0.0; BLOCK],
    };
    for i0 in (0..n).step_by(BLOCK) {
        let len = BLOCK.min(n - i0);
        for i in 0..len {
            let row = rows.map_or(i0 + i, |r| r[i0 + i] as usize);
            for (j, &v) in x[row * d..(row + 1) * d].iter().enumerate() {
                w.x[j * BLOCK + i] = v.to_f64();
            }
        }
        for (s, v) in values.iter_mut().enumerate() {
            *v += mixture_block(p, s, len, &mut w, sums);
        }
    }
}

/// [`mixture_all`] in 4-wide AVX2 registers where the CPU has them. Element by element the
/// arithmetic is the same on both paths (no fused multiply-adds), so the results are too.
fn mixture_all_wide<T: WithDType>(x: &[T], rows: Option<&[u32]>, p: &Params, values: &mut [f64], sums: &mut Sums) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above); the function is safe code.
            return unsafe { mixture_all_avx2(x, rows, p, values, sums) };
        }
    }
    mixture_all(x, rows, p, values, sums)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn mixture_all_avx2<T: WithDType>(
    x: &[T],
    rows: Option<&[u32]>,
    p: &Params,
    values: &mut [f64],
    sums: &mut Sums,
) {
    mixture_all(x, rows, p, values, sums)
}

impl MixtureOp {
    /// The log-likelihood of each draw [S], and its gradients.
    fn forward<T: WithDType>(
        &self,
        s: usize,
        k: usize,
        log_w: &[T],
        mu: &[T],
        log_sigma: &[T],
        x: &[T],
    ) -> (Vec<T>, Gradients) {
        let d = self.d;
        let p = Params::new(k, d, self.log_norm, log_w, mu, log_sigma);
        let mut values = vec![0.0f64; s];
        let mut sums = Sums { resp: vec![0.0; s * k], shift: vec![0.0; s * k * d], dist: vec![0.0; s * k] };
        mixture_all_wide(x, self.rows.as_deref(), &p, &mut values, &mut sums);
        let Sums { resp, mut shift, dist } = sums;
        for (g, &prec) in shift.chunks_exact_mut(d).zip(&p.precision) {
            for v in g {
                *v *= prec;
            }
        }
        let log_sigma =
            dist.iter().zip(&resp).zip(&p.precision).map(|((&q, &r), &prec)| q * prec - d as f64 * r).collect();
        (values.into_iter().map(T::from_f64).collect(), Gradients { log_w: resp, mu: shift, log_sigma })
    }
}

/// The contiguous slice of a storage's values under `layout`.
fn contiguous<'a, T>(values: &'a [T], layout: &Layout, name: &str) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => bail!("mixture likelihood: expects a contiguous {name}"),
    }
}

impl CustomOp3 for MixtureOp {
    fn name(&self) -> &'static str {
        "mixture_log_likelihood"
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
        let (s, k) = l1.shape().dims2()?;
        let (out, gradients) = match (s1, s2, s3, &*self.data) {
            (CpuStorage::F64(a), CpuStorage::F64(m), CpuStorage::F64(b), MixtureData::F64(x)) => {
                let (a, m, b) =
                    (contiguous(a, l1, "log_w")?, contiguous(m, l2, "mu")?, contiguous(b, l3, "log_sigma")?);
                let (v, g) = self.forward(s, k, a, m, b, x);
                (CpuStorage::F64(v), g)
            }
            (CpuStorage::F32(a), CpuStorage::F32(m), CpuStorage::F32(b), MixtureData::F32(x)) => {
                let (a, m, b) =
                    (contiguous(a, l1, "log_w")?, contiguous(m, l2, "mu")?, contiguous(b, l3, "log_sigma")?);
                let (v, g) = self.forward(s, k, a, m, b, x);
                (CpuStorage::F32(v), g)
            }
            _ => bail!(
                "{}: inputs of dtypes {:?}, {:?}, {:?} do not match the data's",
                self.name(),
                s1.dtype(),
                s2.dtype(),
                s3.dtype()
            ),
        };
        self.gradients.keep(gradients)?;
        Ok((out, Shape::from(s)))
    }

    fn bwd(
        &self,
        log_w: &Tensor,
        mu: &Tensor,
        log_sigma: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.gradients.with(|g| {
            let upstream: Vec<f64> = grad.to_dtype(DType::F64)?.to_vec1()?;
            Ok((
                Some(scale_rows(&g.log_w, &upstream, log_w)?),
                Some(scale_rows(&g.mu, &upstream, mu)?),
                Some(scale_rows(&g.log_sigma, &upstream, log_sigma)?),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ½ ln 2π.
    const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

    /// Straight from the formulas with libm, unblocked: values [S] and gradients (log w, μ, log σ).
    fn reference(
        x: &[f64],
        d: usize,
        s: usize,
        k: usize,
        a: &[f64],
        mu: &[f64],
        b: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = x.len() / d;
        let (mut v, mut ga, mut gm, mut gb) = (vec![0.0; s], vec![0.0; s * k], vec![0.0; s * k * d], vec![0.0; s * k]);
        for si in 0..s {
            for i in 0..n {
                let xi = &x[i * d..(i + 1) * d];
                let sq: Vec<f64> = (0..k)
                    .map(|c| xi.iter().zip(&mu[(si * k + c) * d..]).map(|(p, q)| (p - q) * (p - q)).sum())
                    .collect();
                let l: Vec<f64> = (0..k)
                    .map(|c| {
                        let sigma2 = (2.0 * b[si * k + c]).exp();
                        a[si * k + c] - d as f64 * b[si * k + c] - d as f64 * HALF_LN_2PI - sq[c] / (2.0 * sigma2)
                    })
                    .collect();
                let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + l.iter().map(|li| (li - m).exp()).sum::<f64>().ln();
                v[si] += lse;
                for c in 0..k {
                    let r = (l[c] - lse).exp();
                    let prec = (-2.0 * b[si * k + c]).exp();
                    ga[si * k + c] += r;
                    gb[si * k + c] += r * (sq[c] * prec - d as f64);
                    for j in 0..d {
                        gm[(si * k + c) * d + j] += r * (xi[j] - mu[(si * k + c) * d + j]) * prec;
                    }
                }
            }
        }
        (v, ga, gm, gb)
    }

    /// The AVX2 path gives the portable one's bits, over several blocks and a partial one, with and
    /// without rows; both agree with the unblocked libm reference.
    #[test]
    fn wide_path_matches_the_portable_one_and_the_formulas() {
        let (n, d, k, s) = (2 * BLOCK + 91, 3, 4, 2);
        let x: Vec<f64> = (0..n * d).map(|i| ((i as f64) * 0.37).sin() * 3.0).collect();
        let a: Vec<f64> = (0..s * k).map(|i| -1.0 - 0.3 * ((i as f64) * 1.1).cos()).collect();
        let mu: Vec<f64> = (0..s * k * d).map(|i| 2.0 * ((i as f64) * 0.7).cos()).collect();
        let b: Vec<f64> = (0..s * k).map(|i| 0.4 * ((i as f64) * 0.9).sin()).collect();
        let p = Params::new(k, d, d as f64 * HALF_LN_2PI, &a, &mu, &b);
        let run = |wide: bool, rows: Option<&[u32]>| {
            let mut v = vec![0.0; s];
            let mut sums = Sums { resp: vec![0.0; s * k], shift: vec![0.0; s * k * d], dist: vec![0.0; s * k] };
            if wide {
                mixture_all_wide(&x, rows, &p, &mut v, &mut sums);
            } else {
                mixture_all(&x, rows, &p, &mut v, &mut sums);
            }
            [v, sums.resp, sums.shift, sums.dist].concat().iter().map(|f| f.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(run(true, None), run(false, None));
        let rows: Vec<u32> = (0..300).map(|i| ((i * 37) % n) as u32).collect();
        assert_eq!(run(true, Some(&rows)), run(false, Some(&rows)));
        // all rows in order is the full pass
        let all: Vec<u32> = (0..n as u32).collect();
        assert_eq!(run(true, Some(&all)), run(true, None));

        let op = MixtureOp {
            data: Arc::new(MixtureData::F64(x.clone())),
            d,
            log_norm: d as f64 * HALF_LN_2PI,
            rows: None,
            gradients: KeptGradient::new("mixture_log_likelihood"),
        };
        let (v, g) = op.forward(s, k, &a, &mu, &b, &x);
        let (rv, ra, rm, rb) = reference(&x, d, s, k, &a, &mu, &b);
        let scale = rv.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (p, q) in v
            .iter()
            .zip(&rv)
            .chain(g.log_w.iter().zip(&ra))
            .chain(g.mu.iter().zip(&rm))
            .chain(g.log_sigma.iter().zip(&rb))
        {
            assert!((p - q).abs() <= 1e-12 * scale, "{p} vs {q}");
        }
    }
}
