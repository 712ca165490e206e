//! Helpers shared by elbo's integration tests: each test binary (`tests/<module>/main.rs`) takes them
//! in with `#[path = "../common/mod.rs"] mod common;`.
#![allow(dead_code)]

use elbo::linalg::to_f64_vec;
use elbo::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

/// Host values of a tensor as f64, row-major.
pub fn host(t: &Tensor) -> Vec<f64> {
    to_f64_vec(t).expect("tensor to host")
}

/// Bit patterns of every parameter of q, for bit-identity checks.
pub fn param_bits<Q: VariationalFamily>(q: &Q) -> Vec<u64> {
    q.params().iter().flat_map(|(_, v)| host(v.as_tensor())).map(f64::to_bits).collect()
}

/// KL(N(m1, S1) ‖ N(m2, S2)) in closed form, with S2⁻¹ given as `prec2`.
pub fn kl_gaussians(m1: &[f64], s1: &[f64], m2: &[f64], s2: &[f64], prec2: &[f64]) -> f64 {
    let d = m1.len();
    let trace: f64 =
        (0..d).flat_map(|i| (0..d).map(move |j| (i, j))).map(|(i, j)| prec2[i * d + j] * s1[j * d + i]).sum();
    let diff: Vec<f64> = (0..d).map(|i| m2[i] - m1[i]).collect();
    let quad: f64 =
        (0..d).flat_map(|i| (0..d).map(move |j| (i, j))).map(|(i, j)| diff[i] * prec2[i * d + j] * diff[j]).sum();
    let ld1 = elbo::linalg::spd_log_det(s1, d).unwrap();
    let ld2 = elbo::linalg::spd_log_det(s2, d).unwrap();
    0.5 * (trace + quad - d as f64 + ld2 - ld1)
}

/// log N(z; m, Σ) for Σ = L Lᵀ (L row-major, lower triangular), as an f64 model on the CPU.
pub fn gaussian_target(m: Vec<f64>, l: &[f64]) -> impl LogJoint {
    let d = m.len();
    let cov: Vec<f64> = (0..d * d).map(|k| (0..d).map(|j| l[(k / d) * d + j] * l[(k % d) * d + j]).sum()).collect();
    let precision = Tensor::from_vec(elbo::linalg::spd_inverse(&cov, d).unwrap(), (d, d), &Device::Cpu).unwrap();
    let log_norm =
        -0.5 * elbo::linalg::spd_log_det(&cov, d).unwrap() - d as f64 * 0.5 * (2.0 * std::f64::consts::PI).ln();
    let m = Tensor::from_vec(m, d, &Device::Cpu).unwrap();
    elbo::from_fn(d, move |z: &Tensor| {
        let diff = z.broadcast_sub(&m)?;
        ((diff.matmul(&precision)? * &diff)?.sum(1)? * -0.5)? + log_norm
    })
}

/// N images of 8×8 grey levels: one horizontal and one vertical bar (positions drawn at random) at
/// grey 0.9 on a background of 0.05, plus U(0, 0.05) noise; `[N, 64]`. The same images as
/// `bars` in `models/tests/models/vae.rs` (the VAE's own tests, in the models crate).
pub fn bars(n: usize, seed: u64, dtype: DType) -> Tensor {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let mut v = Vec::with_capacity(n * 64);
    for _ in 0..n {
        let (r, c) = (rng.random_range(0..8), rng.random_range(0..8));
        for i in 0..8 {
            for j in 0..8 {
                let on = i == r || j == c;
                v.push(if on { 0.9 } else { 0.05 } + rng.random_range(0.0..0.05));
            }
        }
    }
    Tensor::from_vec(v, (n, 64), &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}
