//! Gaussian targets N(m, L Lᵀ) given by their Cholesky factor, the q's built from them by hand,
//! and a skewed target with its best Gaussian in closed form, for the verdict's tests.

use elbo::diagnose::{Diagnostics, Verdict};
use elbo::prelude::*;
use elbo::FullRankGaussian;

/// The evaluation draws of every test (the default of every fit).
pub const DRAWS: usize = 4_000;

/// A Gaussian posterior N(m, Σ), Σ = L Lᵀ.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: &'static str,
    pub m: Vec<f64>,
    /// Row-major lower-triangular Cholesky factor of Σ.
    pub l: Vec<f64>,
}

impl Target {
    /// Marginal sds `sd` with correlation ρ^|i − j| (an AR(1) structure).
    pub fn ar1(name: &'static str, m: Vec<f64>, sd: &[f64], rho: f64) -> Self {
        let d = sd.len();
        let cov: Vec<f64> =
            (0..d * d).map(|k| sd[k / d] * sd[k % d] * rho.powi((k / d).abs_diff(k % d) as i32)).collect();
        Target { name, m, l: elbo::linalg::cholesky(&cov, d).unwrap() }
    }

    pub fn dim(&self) -> usize {
        self.m.len()
    }

    /// The marginal sd of coordinate j.
    pub fn sd(&self, j: usize) -> f64 {
        let d = self.dim();
        (0..d).map(|k| self.l[j * d + k].powi(2)).sum::<f64>().sqrt()
    }

    /// log N(z; m, L Lᵀ) through L⁻¹ (a triangular inverse stays accurate where Σ⁻¹ would not:
    /// sds of 1e-3 and 1e3 at correlation 0.99).
    pub fn model(&self) -> impl LogJoint {
        let d = self.dim();
        let mut l_inv_t = vec![0.0; d * d]; // (L⁻¹)ᵀ, so that diff · (L⁻¹)ᵀ = (L⁻¹ diff)ᵀ
        for j in 0..d {
            let mut col: Vec<f64> = (0..d).map(|i| if i == j { 1.0 } else { 0.0 }).collect();
            elbo::linalg::solve_lower(&self.l, d, &mut col);
            for i in 0..d {
                l_inv_t[j * d + i] = col[i];
            }
        }
        let log_norm: f64 =
            -(0..d).map(|i| self.l[i * d + i].ln()).sum::<f64>() - d as f64 * 0.5 * (2.0 * std::f64::consts::PI).ln();
        let l_inv_t = Tensor::from_vec(l_inv_t, (d, d), &Device::Cpu).unwrap();
        let m = Tensor::from_vec(self.m.clone(), d, &Device::Cpu).unwrap();
        elbo::from_fn(d, move |z: &Tensor| {
            let white = z.broadcast_sub(&m)?.matmul(&l_inv_t)?;
            (white.sqr()?.sum(1)? * -0.5)? + log_norm
        })
    }

    /// q = N(m + shift ⊙ sd, (diag(c) L)(diag(c) L)ᵀ): means moved by `shift[j]` posterior sds,
    /// marginal sds scaled by `scale[j]`, correlations kept.
    pub fn q(&self, shift: &[f64], scale: &[f64]) -> FullRankGaussian {
        let d = self.dim();
        let loc: Vec<f64> = (0..d).map(|j| self.m[j] + shift[j] * self.sd(j)).collect();
        let l: Vec<f64> = (0..d * d).map(|k| self.l[k] * scale[k / d]).collect();
        FullRankGaussian::new(&loc, &l, ScaleLink::Log, DType::F64, &Device::Cpu).unwrap()
    }

    /// The exact posterior as q.
    pub fn exact(&self) -> FullRankGaussian {
        self.q(&vec![0.0; self.dim()], &vec![1.0; self.dim()])
    }
}

/// The targets of the tests: D = 2, 5, 10; sds from 1e-3 to 1e3; correlation up to 0.99.
pub fn targets() -> Vec<Target> {
    let spread: Vec<f64> = (0..10).map(|j| 10f64.powf(-3.0 + 6.0 * j as f64 / 9.0)).collect();
    vec![
        Target::ar1("D=2, sds 1e-3 and 1e3, ρ = 0.99", vec![5.0, -3.0], &[1e-3, 1e3], 0.99),
        Target::ar1("D=5, sds 0.1–10, ρ = 0.5", vec![0.0, 1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 0.5, 10.0, 0.1], 0.5),
        Target::ar1("D=10, sds 1e-3–1e3, AR(1) ρ = 0.9", (0..10).map(|j| j as f64).collect(), &spread, 0.9),
        Target::ar1("D=10, unit sds, independent", vec![0.0; 10], &[1.0; 10], 0.0),
        Target::ar1("D=50, unit sds, independent", vec![0.0; 50], &[1.0; 50], 0.0),
    ]
}

/// The diagnostics of `q` against `target` for each seed.
pub fn assess_seeds<Q: VariationalFamily>(q: &Q, target: &Target, seeds: std::ops::Range<u64>) -> Vec<Diagnostics> {
    let model = target.model();
    seeds.map(|s| elbo::report::assess(q, &model, DRAWS, s).unwrap()).collect()
}

/// How many of the diagnostics give each verdict: [good, usable, unreliable].
pub fn tally(ds: &[Diagnostics]) -> [usize; 3] {
    let mut n = [0; 3];
    for d in ds {
        n[match d.verdict() {
            Verdict::Good => 0,
            Verdict::Usable => 1,
            Verdict::Unreliable => 2,
        }] += 1;
    }
    n
}

/// One coordinate standing out: `value` at `j`, `rest` elsewhere.
pub fn one(d: usize, j: usize, value: f64, rest: f64) -> Vec<f64> {
    (0..d).map(|k| if k == j { value } else { rest }).collect()
}

/// p(z) ∝ exp(a z − eᶻ), the log of a Gamma(a, 1) variable: skewed to the left, with an
/// exponential left tail. Its mean is ψ(a), its variance ψ′(a).
pub fn log_gamma(a: f64) -> impl LogJoint {
    elbo::from_fn(1, move |z: &Tensor| ((z * a)? - z.exp()?)?.sum(1))
}

/// The Gaussian closest to [`log_gamma`] in KL(q ‖ p): E_q[eᶻ] = a and s² a = 1 at the optimum,
/// so s = 1 / √a and m = ln a − s² / 2.
pub fn log_gamma_best_gaussian(a: f64) -> FullRankGaussian {
    let s = 1.0 / a.sqrt();
    FullRankGaussian::new(&[a.ln() - s * s / 2.0], &[s], ScaleLink::Log, DType::F64, &Device::Cpu).unwrap()
}
