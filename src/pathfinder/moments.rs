//! Pathfinder's answer as one Gaussian: the moments of importance-weighted draws (the paper's
//! importance resampling, summarised by its mean and covariance), where the weights can be
//! trusted. The proposal is the mixture of the given Gaussians; `Pathfinder::fit` gives those of
//! the paths within 3 nats of the best ELBO, since a path far off only adds draws of negligible
//! weight and noise to the control variate below.
//!
//! ```text
//! z_i ~ q_p(i)                (⌈n / P⌉ draws from each of the P Gaussians)
//! log w_i = log p(x, z_i) − log (1/P Σ_p q_p(z_i))
//! w̃ = PSIS(log w);   E_w[f] = Σ w̃_i f(z_i) / Σ w̃_i,   Ē[f] = 1/n Σ f(z_i)
//! m = μ_q + (E_w[z] − Ē[z]),   C = Σ_q + (Cov_w[z] − Cov[z])     (μ_q, Σ_q the mixture's exact moments)
//! used when k̂ < 0.7, ESS = (Σ w̃)² / Σ w̃² ≥ 10 D and C is positive definite; else the best
//! path's Gaussian
//! ```
//!
//! The unweighted moments of the same draws are a control variate: where the weights are flat
//! (the paths' Gaussians are the posterior) the correction is exactly zero, and where they are
//! nearly so it carries little Monte Carlo noise.
//!
//! The best path's Gaussian maximises the ELBO among few candidates, each from 25 draws: its mean
//! sits near the mode and its sds follow the local curvature. The weighted moments estimate the
//! posterior's own, which is what a summary reports.

use candle_core::{DType, Device, Tensor};

use super::approx::LowRankGaussian;
use crate::linalg::{cholesky, to_f64_vec};
use crate::model::LogJoint;
use crate::noise::Noise;
use crate::objective::evaluate;
use crate::report::psis::psis;
use crate::Result;

/// How the weighted draws went.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resampling {
    /// The draws.
    pub draws: usize,
    /// PSIS k̂ of their weights.
    pub k_hat: f64,
    /// The weights' effective sample size.
    pub ess: f64,
    /// Whether q has their moments (else it is the best path's Gaussian).
    pub used: bool,
}

/// A mean and a covariance (row-major D × D).
pub(crate) type Moments = (Vec<f64>, Vec<f64>);

/// The weighted mean and covariance of `n` draws from the paths' Gaussians, with the record; the
/// moments are None when they cannot be trusted.
pub(crate) fn weighted_moments<M: LogJoint + ?Sized>(
    model: &M,
    gaussians: &[&LowRankGaussian],
    n: usize,
    noise: &mut Noise,
    dtype: DType,
    device: &Device,
) -> Result<(Option<Moments>, Resampling)> {
    let d = gaussians[0].dim();
    let p = gaussians.len();
    let each = n.div_ceil(p);
    let k_inv: Vec<Option<Vec<f64>>> = gaussians.iter().map(|g| g.k_inverse()).collect();
    let mut z = Vec::with_capacity(each * p * d);
    let mut log_q = Vec::with_capacity(each * p);
    for g in gaussians {
        let u = noise.standard_normal_host(each, d, DType::F64)?;
        for row in u.chunks(d) {
            let (zi, _) = g.draw(row);
            // log of the mixture's density, by log-sum-exp over the paths
            let logs: Vec<f64> = gaussians
                .iter()
                .zip(&k_inv)
                .map(|(h, k)| k.as_ref().map_or(f64::NEG_INFINITY, |k| h.log_density(&zi, k)))
                .collect();
            let top = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            log_q.push(top + logs.iter().map(|l| (l - top).exp()).sum::<f64>().ln() - (p as f64).ln());
            z.extend(zi);
        }
    }
    let total = each * p;
    let mut log_p = Vec::with_capacity(total);
    for chunk in z.chunks(256 * d) {
        let rows = chunk.len() / d;
        let t = Tensor::from_slice(chunk, (rows, d), &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?;
        match evaluate(model, &t) {
            Ok(lp) => log_p.extend(to_f64_vec(&lp)?),
            Err(crate::Error::ModelOutput { .. }) => log_p.extend(std::iter::repeat_n(f64::NEG_INFINITY, rows)),
            Err(e) => return Err(e),
        }
    }
    let log_w: Vec<f64> =
        log_p.iter().zip(&log_q).map(|(p, q)| if p.is_nan() { f64::NEG_INFINITY } else { p - q }).collect();
    let smoothed = psis(&log_w);
    let top = smoothed.log_weights.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> =
        smoothed.log_weights.iter().map(|l| if top.is_finite() { (l - top).exp() } else { 0.0 }).collect();
    let (sum, sum_sq) = (w.iter().sum::<f64>(), w.iter().map(|v| v * v).sum::<f64>());
    let ess = if sum_sq > 0.0 { sum * sum / sum_sq } else { 0.0 };
    let mut record = Resampling { draws: total, k_hat: smoothed.k_hat, ess, used: false };
    if !(smoothed.k_hat < 0.7 && ess >= 10.0 * d as f64 && sum.is_finite() && sum > 0.0) {
        return Ok((None, record));
    }
    let rows: Vec<&[f64]> = z.chunks(d).collect();
    let flat = vec![1.0; rows.len()];
    let (weighted_mean, weighted_cov) = moments_of(&rows, &w, d);
    let (plain_mean, plain_cov) = moments_of(&rows, &flat, d);
    let (mix_mean, mix_cov) = mixture_moments(gaussians);
    let mean: Vec<f64> = (0..d).map(|j| mix_mean[j] + weighted_mean[j] - plain_mean[j]).collect();
    let cov: Vec<f64> = (0..d * d).map(|k| mix_cov[k] + weighted_cov[k] - plain_cov[k]).collect();
    if cholesky(&cov, d).is_err() || mean.iter().any(|m| !m.is_finite()) {
        return Ok((None, record));
    }
    record.used = true;
    Ok((Some((mean, cov)), record))
}

/// The mean and covariance (row-major D × D, symmetric) of the rows under weights `w`.
fn moments_of(rows: &[&[f64]], w: &[f64], d: usize) -> Moments {
    let sum: f64 = w.iter().sum();
    let mean: Vec<f64> = (0..d).map(|j| rows.iter().zip(w).map(|(r, w)| w * r[j]).sum::<f64>() / sum).collect();
    let mut cov = vec![0.0; d * d];
    for (r, wi) in rows.iter().zip(w) {
        for i in 0..d {
            let di = wi * (r[i] - mean[i]);
            for j in 0..=i {
                cov[i * d + j] += di * (r[j] - mean[j]);
            }
        }
    }
    for i in 0..d {
        for j in 0..=i {
            let v = cov[i * d + j] / sum;
            cov[i * d + j] = v;
            cov[j * d + i] = v;
        }
    }
    (mean, cov)
}

/// The exact mean and covariance of the equal-weight mixture of the Gaussians:
/// μ = 1/P Σ μ_p,  Σ = 1/P Σ (Σ_p + μ_p μ_pᵀ) − μ μᵀ.
fn mixture_moments(gaussians: &[&LowRankGaussian]) -> Moments {
    let d = gaussians[0].dim();
    let p = gaussians.len() as f64;
    let mean: Vec<f64> = (0..d).map(|j| gaussians.iter().map(|g| g.mean[j]).sum::<f64>() / p).collect();
    let mut cov = vec![0.0; d * d];
    for g in gaussians {
        let c = g.covariance();
        for k in 0..d * d {
            cov[k] += (c[k] + g.mean[k / d] * g.mean[k % d]) / p;
        }
    }
    (0..d * d).for_each(|k| cov[k] -= mean[k / d] * mean[k % d]);
    (mean, cov)
}
