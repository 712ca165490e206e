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
//! On the CPU in f32 and f64 the likelihood is one custom op (`src/kernels/mixture.rs`) that reads
//! the data once per call, in blocks of 256 points (gathered, transposed and converted to f64 once,
//! then kept in cache for all S draws): per block and draw, the K squared distances, ℓ, the
//! log-sum-exp and the responsibilities of each point, then the three sums above, all in one pass.
//! The gradient is computed in the forward pass and kept for the backward pass, which only scales
//! it by the incoming gradient. e^x and ln t are branch-free polynomials (`src/kernels/simd.rs`, a
//! few ulps in f64) so that the per-point work runs in 4-wide AVX2 registers where the CPU has
//! them, with the bits of the portable path. Sums are accumulated in f64 in both dtypes (f32 results are rounded once at
//! the end). ‖x_i − μ_k‖² is computed as such, not as ‖x‖² − 2x·μ + ‖μ‖², so it does not cancel.
//! A minibatch ([`MixtureLikelihood::log_likelihood_rows`]) gathers its rows in the same pass.
//!
//! On every other device and dtype the likelihood is the same formula as a composition of candle
//! ops (‖x − μ‖² through one batched matmul), differentiated by autodiff.

use std::sync::Arc;

use candle_core::{bail, DType, Device, Tensor, D};

use crate::kernels::mixture::{self as kernel, MixtureData};
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
    host: Option<Arc<MixtureData>>,
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
            (Device::Cpu, DType::F64) => Some(MixtureData::F64(x.flatten_all()?.to_vec1()?)),
            (Device::Cpu, DType::F32) => Some(MixtureData::F32(x.flatten_all()?.to_vec1()?)),
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
                kernel::log_likelihood(log_w, mu, log_sigma, host.clone(), d, d as f64 * HALF_LN_2PI, rows)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
