//! Helpers shared by the integration tests.
#![allow(dead_code)]

use elbo::fit::to_f64_vec;
use elbo::prelude::*;

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
