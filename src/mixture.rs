//! The fused log-likelihood of an isotropic Gaussian mixture, with the gradient for the weights,
//! means and scales only (never the data).
//!
//! ```text
//! inputs, one row per draw s:  a = log w [S, K],  μ [S, K, D],  b = log σ [S, K];   x: [N, D], data
//! ℓ_ik = a_k − D b_k − (D/2) ln 2π − ‖x_i − μ_k‖² / (2σ_k²)      = ln w_k + ln N(x_i | μ_k, σ_k² I)
//! log p(x | w, μ, σ) = Σ_i logsumexp_k ℓ_ik                                                  → [S]
//! r_ik = exp(ℓ_ik − logsumexp_k ℓ_ik)          (the responsibilities: Σ_k r_ik = 1)
//! ∂/∂a_k = Σ_i r_ik
//! ∂/∂μ_k = Σ_i r_ik (x_i − μ_k) / σ_k²
//! ∂/∂b_k = Σ_i r_ik (‖x_i − μ_k‖² / σ_k² − D)
//! ```
//!
//! The weights and scales come in as logarithms because that makes the gradients the plainest
//! sums of responsibilities (no division by w or σ, and no constraint to check: every real a and b
//! is valid). The weights need not be normalised: the value is Σ_i ln Σ_k w_k N(x_i | μ_k, σ_k² I)
//! for whatever w is given. A model with a simplex `w` and a positive `sigma` passes `w.log()` and
//! `sigma.log()` (two small [S, K] ops; candle's autodiff carries the gradient on to w and σ).
//!
//! On the CPU in f32 and f64 the likelihood is one custom op that reads the data once per call, in
//! blocks of 256 points (gathered, transposed and converted to f64 once, then kept in cache for all
//! S draws): per block and draw, the K squared distances, ℓ, the log-sum-exp and the
//! responsibilities of each point, then the three sums above, all in one pass. The gradient is
//! computed in the forward pass and kept for the backward pass, which only scales it by the
//! incoming gradient. e^x and ln t are branch-free polynomials (`crate::simd`, a few ulps in f64)
//! so that the per-point work runs in 4-wide AVX2 registers where the CPU has them, with the bits of
//! the portable path. Sums are accumulated in f64 in both dtypes (f32 results are rounded once at
//! the end). ‖x_i − μ_k‖² is computed as such, not as ‖x‖² − 2x·μ + ‖μ‖², so it does not cancel.
//! A minibatch ([`MixtureLikelihood::log_likelihood_rows`]) gathers its rows in the same pass.
//!
//! On every other device and dtype the likelihood is the same formula as a composition of candle
//! ops (‖x − μ‖² through one batched matmul), differentiated by autodiff.

use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor, WithDType, D};

use crate::simd::{exp, ln_positive, F4};
use crate::special::HALF_LN_2PI;
use crate::{Error, Result};

/// The data of an isotropic Gaussian mixture and its log-likelihood as a function of the log
/// weights, means and log scales of each draw (formulas in the module doc).
///
/// ```
/// use elbo::mixture::MixtureLikelihood;
/// use candle_core::{Device, Tensor, Var};
///
/// // two points in D = 1, one component with w = 1, μ = 0, σ = 1
/// let x = Tensor::new(&[[0.0f64], [2.0]], &Device::Cpu)?;
/// let lik = MixtureLikelihood::new(&x)?;
/// let log_w = Tensor::new(&[[0.0f64]], &Device::Cpu)?;
/// let mu = Var::new(&[[[0.0f64]]], &Device::Cpu)?;
/// let log_sigma = Tensor::new(&[[0.0f64]], &Device::Cpu)?;
/// let lp = lik.log_likelihood(&log_w, mu.as_tensor(), &log_sigma)?;
/// // ln N(0 | 0, 1) + ln N(2 | 0, 1) = −ln 2π − 2
/// let expected = -(2.0 * std::f64::consts::PI).ln() - 2.0;
/// assert!((lp.to_vec1::<f64>()?[0] - expected).abs() < 1e-14);
/// // ∂/∂μ = Σ_i (x_i − μ) / σ² = 2
/// let grads = lp.sum_all()?.backward()?;
/// let g = grads.get(mu.as_tensor()).unwrap().flatten_all()?.to_vec1::<f64>()?;
/// assert!((g[0] - 2.0).abs() < 1e-14);
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MixtureLikelihood {
    /// The points, `[N, D]`, contiguous.
    x: Tensor,
    /// ‖x_i‖², `[N]` (for the composition).
    x_sq: Tensor,
    /// The points on the host, row-major, for the fused op (CPU f32/f64 data only).
    host: Option<Arc<HostData>>,
}

/// The points, row-major [N, D], in the data's dtype.
#[derive(Debug)]
enum HostData {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl MixtureLikelihood {
    /// The likelihood of the points `x` `[N, D]` (N, D ≥ 1; a float dtype).
    pub fn new(x: &Tensor) -> Result<Self> {
        let (n, d) = x.dims2().map_err(|_| Error::ModelOutput {
            problem: format!("mixture likelihood: the data must be 2-D [N, D]; they have shape {:?}", x.dims()),
        })?;
        if n == 0 || d == 0 {
            return Err(Error::EmptyData {
                what: format!("mixture likelihood: the data have shape [{n}, {d}]; they need a point and a coordinate"),
            });
        }
        if !x.dtype().is_float() {
            return Err(Error::config("dtype", format!("{:?}", x.dtype()), "the data must be of a float dtype"));
        }
        let x = x.detach().contiguous()?;
        let x_sq = x.sqr()?.sum(1)?;
        let host = match (x.device(), x.dtype()) {
            (Device::Cpu, DType::F64) => Some(HostData::F64(x.flatten_all()?.to_vec1()?)),
            (Device::Cpu, DType::F32) => Some(HostData::F32(x.flatten_all()?.to_vec1()?)),
            _ => None,
        };
        Ok(MixtureLikelihood { x, x_sq, host: host.map(Arc::new) })
    }

    /// N, the number of points.
    pub fn n(&self) -> usize {
        self.x.dims()[0]
    }

    /// D, the dimension of a point.
    pub fn d(&self) -> usize {
        self.x.dims()[1]
    }

    /// The points, `[N, D]`.
    pub fn x(&self) -> &Tensor {
        &self.x
    }

    /// Σ_i logsumexp_k ℓ_ik over all N points for each draw: `log_w` `[S, K]`, `mu` `[S, K, D]`,
    /// `log_sigma` `[S, K]`, all of the data's dtype, giving `[S]`.
    ///
    /// Differentiable with respect to the three inputs (never the data). On the CPU with f32 or
    /// f64, one fused op; otherwise a composition of candle ops (module doc).
    pub fn log_likelihood(&self, log_w: &Tensor, mu: &Tensor, log_sigma: &Tensor) -> candle_core::Result<Tensor> {
        self.apply(log_w, mu, log_sigma, None)
    }

    /// The same sum over the points `rows` only (integer indices `[B]`, each below N, repeats
    /// allowed; a minibatch), unscaled.
    pub fn log_likelihood_rows(
        &self,
        log_w: &Tensor,
        mu: &Tensor,
        log_sigma: &Tensor,
        rows: &Tensor,
    ) -> candle_core::Result<Tensor> {
        self.apply(log_w, mu, log_sigma, Some(rows))
    }

    fn apply(
        &self,
        log_w: &Tensor,
        mu: &Tensor,
        log_sigma: &Tensor,
        rows: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let d = self.d();
        let (s, k) = log_w.dims2().map_err(|_| {
            candle_core::Error::Msg(format!(
                "mixture likelihood: log_w must be [S, K]; it has shape {:?}",
                log_w.dims()
            ))
        })?;
        if k == 0 {
            bail!("mixture likelihood: log_w has no components (shape [{s}, 0])");
        }
        if mu.dims() != [s, k, d] {
            bail!("mixture likelihood: mu must be [S, K, D] = [{s}, {k}, {d}]; it has shape {:?}", mu.dims());
        }
        if log_sigma.dims() != [s, k] {
            bail!("mixture likelihood: log_sigma must be [S, K] = [{s}, {k}]; it has shape {:?}", log_sigma.dims());
        }
        let dtype = self.x.dtype();
        if [log_w, mu, log_sigma].iter().any(|t| t.dtype() != dtype) {
            bail!(
                "mixture likelihood: log_w {:?}, mu {:?}, log_sigma {:?}: each must be of the data's dtype {dtype:?}",
                log_w.dtype(),
                mu.dtype(),
                log_sigma.dtype()
            );
        }
        let on_cpu = [log_w, mu, log_sigma].iter().all(|t| matches!(t.device(), Device::Cpu));
        match &self.host {
            Some(host) if on_cpu => {
                let rows = match rows {
                    Some(r) => Some(self.host_rows(r)?),
                    None => None,
                };
                let op = MixtureOp { data: host.clone(), d, rows, gradients: Mutex::new(None) };
                log_w.contiguous()?.apply_op3(&mu.contiguous()?, &log_sigma.contiguous()?, op)
            }
            _ => match rows {
                None => composite(log_w, mu, log_sigma, &self.x, &self.x_sq),
                Some(r) => {
                    let r = r.to_device(self.x.device())?;
                    composite(log_w, mu, log_sigma, &self.x.index_select(&r, 0)?, &self.x_sq.index_select(&r, 0)?)
                }
            },
        }
    }

    /// The row indices on the host, each checked to be below N.
    fn host_rows(&self, rows: &Tensor) -> candle_core::Result<Vec<u32>> {
        let b = rows.dims1().map_err(|_| {
            candle_core::Error::Msg(format!(
                "mixture likelihood: rows must be 1-D [B]; they have shape {:?}",
                rows.dims()
            ))
        })?;
        if !rows.dtype().is_int() {
            bail!("mixture likelihood: rows must be integer indices; they are {:?}", rows.dtype());
        }
        let host: Vec<u32> = match rows.dtype() {
            DType::U32 => rows.to_vec1()?,
            DType::I64 => rows.to_vec1::<i64>()?.into_iter().map(|i| u32::try_from(i).unwrap_or(u32::MAX)).collect(),
            _ => rows.to_dtype(DType::U32)?.to_vec1()?,
        };
        let n = self.n();
        if let Some(bad) = host.iter().position(|&i| i as usize >= n) {
            bail!("mixture likelihood: row {} (index {bad} of {b}) is out of range for N = {n} points", host[bad]);
        }
        Ok(host)
    }
}

/// The log-likelihood as a composition of candle ops (the path off the CPU, and other dtypes):
/// ‖x − μ‖² = ‖x‖² − 2 x·μ + ‖μ‖² through one batched matmul, on [S, N, K].
fn composite(
    log_w: &Tensor,
    mu: &Tensor,
    log_sigma: &Tensor,
    x: &Tensor,
    x_sq: &Tensor,
) -> candle_core::Result<Tensor> {
    let d = x.dim(1)? as f64;
    let cross = x.broadcast_matmul(&mu.transpose(1, 2)?)?; // [S, N, K]
    let mu_sq = mu.sqr()?.sum(D::Minus1)?.unsqueeze(1)?; // [S, 1, K]
    let sq = (cross * -2.0)?.broadcast_add(&x_sq.unsqueeze(0)?.unsqueeze(2)?)?.broadcast_add(&mu_sq)?;
    let per_component = (log_w - (log_sigma * d)?)?.unsqueeze(1)?; // [S, 1, K]
    let half_precision = ((log_sigma * -2.0)?.exp()? * -0.5)?.unsqueeze(1)?; // −1/(2σ²), [S, 1, K]
    let log_n = (sq.broadcast_mul(&half_precision)?.broadcast_add(&per_component)? - d * HALF_LN_2PI)?;
    log_n.log_sum_exp(D::Minus1)?.sum(D::Minus1)
}

/// The fused op on (log w [S, K], μ [S, K, D], log σ [S, K]); the gradients that its forward pass
/// computes are kept for its backward pass (one op value per call, so they belong to these inputs).
struct MixtureOp {
    data: Arc<HostData>,
    d: usize,
    /// The minibatch's rows (None: every point, in order).
    rows: Option<Vec<u32>>,
    gradients: Mutex<Option<Gradients>>,
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
    /// components in D dimensions.
    fn new<T: WithDType>(k: usize, d: usize, log_w: &[T], mu: &[T], log_sigma: &[T]) -> Self {
        let df = d as f64;
        let precision: Vec<f64> = log_sigma.iter().map(|b| (-2.0 * b.to_f64()).exp()).collect();
        let c = log_w.iter().zip(log_sigma).map(|(a, b)| a.to_f64() - df * b.to_f64() - df * HALF_LN_2PI).collect();
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
        let p = Params::new(k, d, log_w, mu, log_sigma);
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
            (CpuStorage::F64(a), CpuStorage::F64(m), CpuStorage::F64(b), HostData::F64(x)) => {
                let (a, m, b) =
                    (contiguous(a, l1, "log_w")?, contiguous(m, l2, "mu")?, contiguous(b, l3, "log_sigma")?);
                let (v, g) = self.forward(s, k, a, m, b, x);
                (CpuStorage::F64(v), g)
            }
            (CpuStorage::F32(a), CpuStorage::F32(m), CpuStorage::F32(b), HostData::F32(x)) => {
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
        *self.gradients.lock().map_err(|_| candle_core::Error::Msg("mixture gradients: poisoned lock".into()))? =
            Some(gradients);
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
        let guard =
            self.gradients.lock().map_err(|_| candle_core::Error::Msg("mixture gradients: poisoned lock".into()))?;
        let Some(g) = guard.as_ref() else {
            bail!("{}: backward before forward", self.name());
        };
        let upstream: Vec<f64> = grad.to_dtype(DType::F64)?.to_vec1()?;
        let scaled = |values: &[f64], arg: &Tensor| -> candle_core::Result<Tensor> {
            let per = arg.elem_count() / upstream.len().max(1);
            let v: Vec<f64> = if per == 0 {
                Vec::new()
            } else {
                values.chunks_exact(per).zip(&upstream).flat_map(|(row, &u)| row.iter().map(move |&x| u * x)).collect()
            };
            Tensor::from_vec(v, arg.shape(), arg.device())?.to_dtype(arg.dtype())
        };
        Ok((Some(scaled(&g.log_w, log_w)?), Some(scaled(&g.mu, mu)?), Some(scaled(&g.log_sigma, log_sigma)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The composition (the path off the CPU) is the fused op's formula: values and gradients in
    /// f64, on all points and on rows.
    #[test]
    fn composition_matches_the_fused_op() {
        use candle_core::Var;
        let (n, d, k, s) = (37, 2, 3, 2);
        let dev = Device::Cpu;
        let x = Tensor::from_vec((0..n * d).map(|i| ((i as f64) * 0.61).sin() * 3.0).collect(), (n, d), &dev).unwrap();
        let lik = MixtureLikelihood::new(&x).unwrap();
        let a = Var::from_vec((0..s * k).map(|i| -1.0 - 0.2 * (i as f64).cos()).collect(), (s, k), &dev).unwrap();
        let m =
            Var::from_vec((0..s * k * d).map(|i| 2.0 * ((i as f64) * 0.7).cos()).collect(), (s, k, d), &dev).unwrap();
        let b = Var::from_vec((0..s * k).map(|i| 0.3 * (i as f64).sin()).collect(), (s, k), &dev).unwrap();
        let rows = Tensor::new(&[3u32, 0, 36, 3, 17], &dev).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let run = |f: &dyn Fn() -> candle_core::Result<Tensor>| {
            let out = f().unwrap();
            let g = out.sum_all().unwrap().backward().unwrap();
            let mut all = flat(&out);
            for v in [&a, &m, &b] {
                all.extend(flat(g.get(v.as_tensor()).unwrap()));
            }
            all
        };
        let (at, mt, bt) = (a.as_tensor(), m.as_tensor(), b.as_tensor());
        let pairs = [
            (run(&|| lik.log_likelihood(at, mt, bt)), run(&|| composite(at, mt, bt, &lik.x, &lik.x_sq))),
            (
                run(&|| lik.log_likelihood_rows(at, mt, bt, &rows)),
                run(&|| composite(at, mt, bt, &lik.x.index_select(&rows, 0)?, &lik.x_sq.index_select(&rows, 0)?)),
            ),
        ];
        for (fused, comp) in pairs {
            let scale = comp.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (p, q) in fused.iter().zip(&comp) {
                assert!((p - q).abs() <= 1e-12 * scale, "fused {p}, composition {q}");
            }
        }
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
        let p = Params::new(k, d, &a, &mu, &b);
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

        let op = MixtureOp { data: Arc::new(HostData::F64(x.clone())), d, rows: None, gradients: Mutex::new(None) };
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
