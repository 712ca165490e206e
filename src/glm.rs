//! Fused log-likelihoods of generalised linear models, with the gradient for the coefficients only.
//!
//! ```text
//! z = (w_1, …, w_D, b)   one row per draw, z: [S, D + 1]
//! η_si = Σ_d X_id w_sd + b_s                         (X: [N, D], y: [N], data)
//! Bernoulli-logit:   log p(y | η_s) = Σ_i [y_i η_si − softplus(η_si)]          → [S]
//! ∂/∂w_s = Xᵀ r_s,   ∂/∂b_s = Σ_i r_si,   r_si = y_i − σ(η_si)
//! ```
//!
//! softplus(η) = max(η, 0) + ln(1 + e^(−|η|)) is finite for every finite η. On the CPU in f32 and
//! f64 the likelihood is one custom op that reads Xᵀ once, in blocks of 256 points (which stay in
//! cache for all S draws): per block η, the value and r, then Xᵀ r. The gradient is computed in
//! the forward pass and kept for the backward pass, which only scales it by the incoming gradient
//! (so a forward pass without a backward one does the gradient's work for nothing). candle's
//! autodiff through `z.matmul(Xᵀ)` would also compute the gradient with respect to the design
//! matrix (a second [S, N] × [N, D] product and an [N, D] buffer) that nobody uses; here there is
//! none. e^(−|η|) and ln(1 + t) are branch-free polynomials (`crate::simd`, accurate to a few ulps in
//! f64) so that the pass over the data points runs in AVX2 registers. Sums are accumulated in f64 in both dtypes
//! (f32 results are rounded once at the end). On every other device and dtype the likelihood is
//! the same formula as a composition of candle ops ([`crate::special::softplus`]), differentiated
//! by autodiff.

use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor, WithDType, D};

use crate::simd::{exp_nonpositive, log1p_unit};
use crate::special::softplus;
use crate::{Error, Result};

/// The response distribution and link of a [`GlmLikelihood`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Glm {
    /// y ∈ {0, 1} (or [0, 1]) with P(y = 1) = σ(η): log p = y η − softplus(η).
    BernoulliLogit,
}

/// The design matrix and response of a GLM, and its log-likelihood as a function of the
/// coefficients z = (w, b) (formulas in the module doc).
///
/// ```
/// use elbo::glm::GlmLikelihood;
/// use candle_core::{Device, Tensor};
///
/// // one point x = 0, y = 1: log p = log σ(b)
/// let x = Tensor::new(&[[0.0f64]], &Device::Cpu)?;
/// let y = Tensor::new(&[1.0f64], &Device::Cpu)?;
/// let lik = GlmLikelihood::bernoulli_logit(&x, &y)?;
/// let z = Tensor::new(&[[0.7f64, 0.0]], &Device::Cpu)?; // w = 0.7, b = 0
/// let lp = lik.log_likelihood(&z)?.to_vec1::<f64>()?[0];
/// assert!((lp - 0.5f64.ln()).abs() < 1e-15);
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GlmLikelihood {
    glm: Glm,
    /// Xᵀ, contiguous: [D, N].
    x_t: Tensor,
    y: Tensor,
    /// Xᵀ and y on the host, for the fused op (CPU f32/f64 data only).
    host: Option<Arc<HostData>>,
}

/// Xᵀ (row-major [D, N]) and y, in the data's dtype.
#[derive(Debug)]
enum HostData {
    F32 { x_t: Vec<f32>, y: Vec<f32> },
    F64 { x_t: Vec<f64>, y: Vec<f64> },
}

/// Checks a design matrix `x` `[N, D]` and responses `y` `[N]` for `model` (named in the errors):
/// N, D ≥ 1 and one float dtype for both; returns (N, D).
pub fn check_design(model: &str, x: &Tensor, y: &Tensor) -> Result<(usize, usize)> {
    let (n, d) = x.dims2().map_err(|_| Error::ModelOutput {
        problem: format!("{model}: the design matrix X must be 2-D [N, D]; it has shape {:?}", x.dims()),
    })?;
    if n == 0 || d == 0 {
        return Err(Error::EmptyData {
            what: format!("{model}: X has shape [{n}, {d}]; it needs at least one row and one column"),
        });
    }
    if y.dims() != [n] {
        return Err(Error::DimensionMismatch {
            what: format!("{model}: y (shape {:?})", y.dims()),
            expected: n,
            got: y.elem_count(),
        });
    }
    if x.dtype() != y.dtype() || !x.dtype().is_float() {
        return Err(Error::config(
            "dtype",
            format!("X {:?}, y {:?}", x.dtype(), y.dtype()),
            "X and y must share one float dtype",
        ));
    }
    Ok((n, d))
}

impl GlmLikelihood {
    /// The Bernoulli-logit likelihood for design `x` `[N, D]` and responses `y` `[N]` (in {0, 1},
    /// or in [0, 1]); both of one float dtype, on one device.
    pub fn bernoulli_logit(x: &Tensor, y: &Tensor) -> Result<Self> {
        Self::new(Glm::BernoulliLogit, x, y)
    }

    /// The likelihood of `glm` for design `x` `[N, D]` and responses `y` `[N]`.
    pub fn new(glm: Glm, x: &Tensor, y: &Tensor) -> Result<Self> {
        check_design("GLM", x, y)?;
        if !x.device().same_device(y.device()) {
            return Err(Error::config(
                "device",
                format!("{:?} and {:?}", x.device(), y.device()),
                "X and y must be on one device",
            ));
        }
        let x_t = x.detach().t()?.contiguous()?;
        let y = y.detach().contiguous()?;
        let host = match (x.device(), x.dtype()) {
            (Device::Cpu, DType::F64) => Some(HostData::F64 { x_t: x_t.flatten_all()?.to_vec1()?, y: y.to_vec1()? }),
            (Device::Cpu, DType::F32) => Some(HostData::F32 { x_t: x_t.flatten_all()?.to_vec1()?, y: y.to_vec1()? }),
            _ => None,
        };
        Ok(GlmLikelihood { glm, x_t, y, host: host.map(Arc::new) })
    }

    /// The response distribution and link.
    pub fn glm(&self) -> Glm {
        self.glm
    }

    /// The number of coefficients, D + 1 (the weights, then the intercept).
    pub fn dim(&self) -> usize {
        self.x_t.dims()[0] + 1
    }

    /// log p(y | X w_s + b_s) for each row z_s = (w_s, b_s) of `z` `[S, D + 1]`, giving `[S]`.
    ///
    /// Differentiable with respect to `z` (never X or y). On the CPU, with `z` of the data's dtype
    /// (f32 or f64), one fused op; otherwise a composition of candle ops (module doc).
    pub fn log_likelihood(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let (_, k) = z.dims2().map_err(|_| {
            candle_core::Error::Msg(format!("GLM log-likelihood: z must be [S, D + 1]; it has shape {:?}", z.dims()))
        })?;
        if k != self.dim() {
            bail!("GLM log-likelihood: z has {k} columns; the design has D + 1 = {}", self.dim());
        }
        if z.dtype() != self.y.dtype() {
            bail!("GLM log-likelihood: z is {:?}, the data {:?}", z.dtype(), self.y.dtype());
        }
        match (&self.host, z.device()) {
            (Some(host), Device::Cpu) => {
                z.contiguous()?.apply_op1(GlmOp { glm: self.glm, data: host.clone(), gradients: Mutex::new(None) })
            }
            _ => self.composite(z),
        }
    }

    /// The same log-likelihood as a composition of candle ops (the path off the CPU).
    fn composite(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let d = self.dim() - 1;
        let w = z.narrow(1, 0, d)?;
        let b = z.narrow(1, d, 1)?;
        let eta = w.matmul(&self.x_t)?.broadcast_add(&b)?; // [S, N]
        match self.glm {
            Glm::BernoulliLogit => (eta.broadcast_mul(&self.y.unsqueeze(0)?)? - softplus(&eta)?)?.sum(D::Minus1),
        }
    }
}

/// The fused op on z [S, D + 1]; the gradients [S, D + 1] (f64) that its forward pass computes are
/// kept for its backward pass (one op value per call of `log_likelihood`, so they belong to this z).
struct GlmOp {
    glm: Glm,
    data: Arc<HostData>,
    gradients: Mutex<Option<Vec<f64>>>,
}

/// Points per block: a block of Xᵀ (D rows of `BLOCK` values) stays in cache from η to Xᵀ r, and
/// across the draws.
const BLOCK: usize = 256;

/// Σ_i a_i b_i in four f64 lanes (so that the loop vectorises).
#[inline(always)]
fn dot<T: WithDType>(a: &[T], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ac, bc) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ac.remainder().iter().zip(bc.remainder()).map(|(&x, &y)| x.to_f64() * y).sum();
    for (a4, b4) in ac.zip(bc) {
        for i in 0..4 {
            acc[i] += a4[i].to_f64() * b4[i];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// y η − softplus(η), and the residual y − σ(η), for the Bernoulli-logit GLM, with t = e^(−|η|):
/// softplus(η) = max(η, 0) + ln(1 + t), σ(η) = 1/(1 + t) for η ≥ 0 and t/(1 + t) otherwise.
#[inline(always)]
fn bernoulli(eta: f64, y: f64) -> (f64, f64) {
    let t = exp_nonpositive(-eta.abs());
    let value = y * eta - (eta.max(0.0) + log1p_unit(t));
    let num = if eta >= 0.0 { 1.0 } else { t };
    (value, y - num / (1.0 + t))
}

/// Σ_i [y_i η_i − softplus(η_i)] for one draw, writing r_i = y_i − σ(η_i); in four lanes.
#[inline(always)]
fn bernoulli_pass<T: WithDType>(eta: &[f64], y: &[T], r: &mut [f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ec, yc, rc) = (eta.chunks_exact(4), y.chunks_exact(4), r.chunks_exact_mut(4));
    let (et, yt) = (ec.remainder(), yc.remainder());
    let mut tail = 0.0;
    for ((e4, y4), r4) in ec.zip(yc).zip(rc) {
        for j in 0..4 {
            let (v, rj) = bernoulli(e4[j], y4[j].to_f64());
            acc[j] += v;
            r4[j] = rj;
        }
    }
    let done = eta.len() - et.len();
    for (i, (&e, &yi)) in et.iter().zip(yt).enumerate() {
        let (v, rj) = bernoulli(e, yi.to_f64());
        tail += v;
        r[done + i] = rj;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// One block of points [i0, i0 + len) (`y` is the block's slice) for one draw z = (w, b): returns
/// the block's Σ [y η − softplus(η)] and adds its Xᵀ r and Σ r to `grad` [D + 1].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bernoulli_block<T: WithDType>(
    x_t: &[T],
    n: usize,
    i0: usize,
    z: &[T],
    y: &[T],
    eta: &mut [f64],
    r: &mut [f64],
    grad: &mut [f64],
) -> f64 {
    let (k, len) = (z.len(), y.len());
    let (eta, r) = (&mut eta[..len], &mut r[..len]);
    eta.fill(z[k - 1].to_f64());
    for (d, &wd) in z[..k - 1].iter().enumerate() {
        let wd = wd.to_f64();
        for (e, &x) in eta.iter_mut().zip(&x_t[d * n + i0..d * n + i0 + len]) {
            *e += wd * x.to_f64();
        }
    }
    let value = bernoulli_pass(eta, y, r);
    for (d, g) in grad[..k - 1].iter_mut().enumerate() {
        *g += dot(&x_t[d * n + i0..d * n + i0 + len], r);
    }
    let mut acc = [0.0f64; 4];
    let rc = r.chunks_exact(4);
    let tail: f64 = rc.remainder().iter().sum();
    for r4 in rc {
        for j in 0..4 {
            acc[j] += r4[j];
        }
    }
    grad[k - 1] += (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail;
    value
}

/// The Bernoulli-logit likelihood of every draw (rows of `z`, [S, D + 1]) into `values` [S], and
/// the gradients Xᵀ r_s, Σ r_s into `grads` [S, D + 1]: one pass over Xᵀ in blocks of points.
#[inline(always)]
fn bernoulli_all<T: WithDType>(x_t: &[T], y: &[T], z: &[T], values: &mut [f64], grads: &mut [f64]) {
    let n = y.len();
    let k = x_t.len() / n + 1;
    let (mut eta, mut r) = ([0.0f64; BLOCK], [0.0f64; BLOCK]);
    for i0 in (0..n).step_by(BLOCK) {
        let yb = &y[i0..n.min(i0 + BLOCK)];
        for ((zs, v), g) in z.chunks_exact(k).zip(values.iter_mut()).zip(grads.chunks_exact_mut(k)) {
            *v += bernoulli_block(x_t, n, i0, zs, yb, &mut eta, &mut r, g);
        }
    }
}

/// [`bernoulli_all`] in 4-wide AVX2 registers where the CPU has them. Element by element the
/// arithmetic is the same on both paths (no fused multiply-adds), so the results are too.
fn bernoulli_all_wide<T: WithDType>(x_t: &[T], y: &[T], z: &[T], values: &mut [f64], grads: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above); the function is safe code.
            return unsafe { bernoulli_all_avx2(x_t, y, z, values, grads) };
        }
    }
    bernoulli_all(x_t, y, z, values, grads)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn bernoulli_all_avx2<T: WithDType>(x_t: &[T], y: &[T], z: &[T], values: &mut [f64], grads: &mut [f64]) {
    bernoulli_all(x_t, y, z, values, grads)
}

impl GlmOp {
    /// The log-likelihood of each draw [S], and the gradient of each with respect to z [S, D + 1].
    fn forward<T: WithDType>(&self, z: &[T], x_t: &[T], y: &[T]) -> (Vec<T>, Vec<f64>) {
        let k = x_t.len() / y.len() + 1;
        let s = z.len() / k;
        let (mut values, mut grads) = (vec![0.0f64; s], vec![0.0f64; s * k]);
        match self.glm {
            Glm::BernoulliLogit => bernoulli_all_wide(x_t, y, z, &mut values, &mut grads),
        }
        (values.into_iter().map(T::from_f64).collect(), grads)
    }
}

impl CustomOp1 for GlmOp {
    fn name(&self) -> &'static str {
        match self.glm {
            Glm::BernoulliLogit => "glm_bernoulli_logit",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (s, _) = layout.shape().dims2()?;
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("{}: expects a contiguous z", self.name());
        };
        let (out, gradients) = match (storage, &*self.data) {
            (CpuStorage::F64(z), HostData::F64 { x_t, y }) => {
                let (v, r) = self.forward(&z[start..end], x_t, y);
                (CpuStorage::F64(v), r)
            }
            (CpuStorage::F32(z), HostData::F32 { x_t, y }) => {
                let (v, r) = self.forward(&z[start..end], x_t, y);
                (CpuStorage::F32(v), r)
            }
            (other, _) => bail!("{}: z of dtype {:?} does not match the data's", self.name(), other.dtype()),
        };
        *self.gradients.lock().map_err(|_| candle_core::Error::Msg("GLM gradients: poisoned lock".into()))? =
            Some(gradients);
        Ok((out, Shape::from(s)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let guard =
            self.gradients.lock().map_err(|_| candle_core::Error::Msg("GLM gradients: poisoned lock".into()))?;
        let Some(gradients) = guard.as_ref() else {
            bail!("{}: backward before forward", self.name());
        };
        let g: Vec<f64> = grad.to_dtype(DType::F64)?.to_vec1()?;
        let k = arg.dim(1)?;
        let scaled: Vec<f64> =
            gradients.chunks_exact(k).zip(&g).flat_map(|(row, &gs)| row.iter().map(move |&v| gs * v)).collect();
        Tensor::from_vec(scaled, arg.shape(), arg.device())?.to_dtype(arg.dtype()).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bernoulli_libm(eta: f64, y: f64) -> (f64, f64) {
        let value = y * eta - (eta.max(0.0) + (-eta.abs()).exp().ln_1p());
        (value, y - 1.0 / (1.0 + (-eta).exp()))
    }

    /// The polynomial e^x and ln(1 + t) against the standard library's, and the Bernoulli terms
    /// they make against the same terms from libm, over η from −60 to 60 and at the extremes.
    #[test]
    fn fast_kernels_match_libm() {
        let mut worst = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for i in 0..=120_000 {
            let x = -60.0 + i as f64 * 1e-3;
            let e = exp_nonpositive(-x.abs());
            worst.0 = worst.0.max((e / (-x.abs()).exp() - 1.0).abs());
            worst.1 = worst.1.max((log1p_unit(e) / e.ln_1p() - 1.0).abs());
            for y in [0.0, 1.0] {
                let (v, r) = bernoulli(x, y);
                let (vw, rw) = bernoulli_libm(x, y);
                worst.2 = worst.2.max((v - vw).abs() / vw.abs().max(x.abs()).max(1e-300));
                worst.3 = worst.3.max((r - rw).abs());
            }
        }
        assert!(worst.0 < 1e-15, "exp: worst relative error {}", worst.0);
        assert!(worst.1 < 1e-15, "ln(1 + t): worst relative error {}", worst.1);
        assert!(worst.2 < 1e-15, "value: worst relative error {}", worst.2);
        assert!(worst.3 < 1e-15, "residual: worst absolute error {}", worst.3);
        // tails keep their relative accuracy: softplus(−30) = ln(1 + e^(−30)), e^(−700)
        let sp = -bernoulli(-30.0, 0.0).0;
        assert!((sp / (-30f64).exp().ln_1p() - 1.0).abs() < 1e-15, "softplus(−30) = {sp}");
        assert!((exp_nonpositive(-700.0) / (-700f64).exp() - 1.0).abs() < 1e-14);
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(bernoulli(800.0, 1.0), (0.0, 0.0));
        assert_eq!(bernoulli(-800.0, 1.0), (-800.0, 1.0));
    }

    /// The AVX2 path gives the portable one's bits, over several blocks and a partial one; the
    /// gradient of the blocked pass is Xᵀ r, Σ r.
    #[test]
    fn wide_path_matches_the_portable_one() {
        let (n, d) = (2 * BLOCK + 91, 3);
        let x_t: Vec<f64> = (0..n * d).map(|i| ((i as f64) * 0.37).sin() * 3.0).collect();
        let y: Vec<f64> = (0..n).map(|i| (i % 2) as f64).collect();
        let z = [0.5, -1.5, 2.0, 0.25, -0.3, 0.1, 0.7, -2.0];
        let (mut v1, mut g1, mut v2, mut g2) = (vec![0.0; 2], vec![0.0; 8], vec![0.0; 2], vec![0.0; 8]);
        bernoulli_all_wide(&x_t, &y, &z, &mut v1, &mut g1);
        bernoulli_all(&x_t, &y, &z, &mut v2, &mut g2);
        assert_eq!(
            v1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            v2.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(
            g1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            g2.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // the same sums, unblocked, from libm's terms
        for (s, zs) in z.chunks_exact(d + 1).enumerate() {
            let (mut value, mut grad) = (0.0, vec![0.0; d + 1]);
            for i in 0..n {
                let eta = zs[d] + (0..d).map(|j| zs[j] * x_t[j * n + i]).sum::<f64>();
                let (v, r) = bernoulli_libm(eta, y[i]);
                value += v;
                for j in 0..d {
                    grad[j] += x_t[j * n + i] * r;
                }
                grad[d] += r;
            }
            assert!((v1[s] - value).abs() <= 1e-12 * value.abs(), "draw {s}: {} vs {value}", v1[s]);
            for j in 0..=d {
                assert!((g1[s * (d + 1) + j] - grad[j]).abs() <= 1e-12 * value.abs(), "draw {s}, coordinate {j}");
            }
        }
    }
}
