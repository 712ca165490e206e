//! Stochastic ADVI with its defaults and nothing tuned (`Advi::new(FullRank).dtype(DType::F64)`)
//! on posteriors whose scales are far from 1, against their exact answers: every mean within 0.1
//! posterior sd and every sd within 10 % (issue 21's goal), for three seeds.
//!
//! The targets are linear regressions with an unknown noise scale and the prior p(β, σ) ∝ 1/σ,
//! whose posterior is known in closed form (ν = N − P, s² the residual variance at β̂):
//!
//! ```text
//! β | y ~ t_ν(β̂, s² (XᵀX)⁻¹):   E β = β̂,   Cov β = ν / (ν − 2) · s² (XᵀX)⁻¹
//! σ² | y ~ ν s² / χ²_ν:        E log σ = ½ (log(ν s²) − ψ(ν/2) − log 2),   sd log σ = ½ √ψ′(ν/2)
//! ```
//!
//! With ν ≈ 200 the marginals are within about 1 % of Gaussian, so the best Gaussian in the
//! unconstrained (β, log σ) meets the goal with room to spare; q is compared there.
//! - coefficient sds about 10⁻³ (covariates of sd 70, noise 1): the issue's first row;
//! - coefficient sds about 10³ (covariates of sd 7·10⁻⁵);
//! - an intercept and one covariate around 2,000: intercept–slope correlation −0.9999.

use crate::common::host;
use elbo::prelude::*;
use elbo::report::StartRecord;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use rand_distr::{Distribution, StandardNormal};

/// y ~ N(X β, σ²), p(β, σ) ∝ 1/σ; latents `beta` [P] and `sigma` (positive).
struct Regression {
    x: Tensor,
    y: Tensor,
    latents: Latents,
}

impl Model for Regression {
    fn latents(&self) -> &Latents {
        &self.latents
    }

    fn log_density(&self, v: &Values) -> candle_core::Result<Tensor> {
        let (beta, sigma) = (v.get("beta")?, v.get("sigma")?); // [S, P], [S, 1]
        let n = self.y.dim(0)? as f64;
        let resid = self.y.unsqueeze(0)?.broadcast_sub(&beta.matmul(&self.x.t()?)?)?; // [S, N]
        let log_sigma = sigma.log()?.squeeze(1)?;
        let sq = resid.sqr()?.sum(1)?.broadcast_div(&sigma.sqr()?.squeeze(1)?)?;
        // Σ log N(y | Xβ, σ) − log σ, up to a constant
        (sq * -0.5)? - (log_sigma * (n + 1.0))?
    }
}

/// The exact posterior moments of (β, log σ).
struct Exact {
    mean: Vec<f64>,
    sd: Vec<f64>,
}

fn digamma(x: f64) -> f64 {
    // the asymptotic series, exact to rounding for x > 50
    assert!(x > 50.0);
    x.ln() - 1.0 / (2.0 * x) - 1.0 / (12.0 * x.powi(2)) + 1.0 / (120.0 * x.powi(4)) - 1.0 / (252.0 * x.powi(6))
}

fn regression(design: Vec<f64>, y: Vec<f64>, p: usize) -> (Regression, Exact) {
    let n = y.len();
    let xtx: Vec<f64> =
        (0..p * p).map(|k| (0..n).map(|i| design[i * p + k / p] * design[i * p + k % p]).sum()).collect();
    let xty: Vec<f64> = (0..p).map(|j| (0..n).map(|i| design[i * p + j] * y[i]).sum()).collect();
    let inv = elbo::linalg::spd_inverse(&xtx, p).unwrap();
    let beta: Vec<f64> = (0..p).map(|i| (0..p).map(|j| inv[i * p + j] * xty[j]).sum()).collect();
    let rss: f64 = (0..n).map(|i| (y[i] - (0..p).map(|j| design[i * p + j] * beta[j]).sum::<f64>()).powi(2)).sum();
    let nu = (n - p) as f64;
    let s2 = rss / nu;
    let mut mean = beta;
    let mut sd: Vec<f64> = (0..p).map(|i| (nu / (nu - 2.0) * s2 * inv[i * p + i]).sqrt()).collect();
    mean.push(0.5 * ((nu * s2).ln() - digamma(nu / 2.0) - 2f64.ln()));
    sd.push(0.5 * elbo::special::trigamma_f64(nu / 2.0).sqrt());
    let model = Regression {
        x: Tensor::from_vec(design, (n, p), &Device::Cpu).unwrap(),
        y: Tensor::from_vec(y, n, &Device::Cpu).unwrap(),
        latents: Latents::new().real("beta", [p]).positive("sigma", [1]),
    };
    (model, Exact { mean, sd })
}

/// N = 200 rows of P = 3 covariates of sd `x_sd`, coefficients `beta`, noise sd 1.
fn scaled_regression(x_sd: f64, beta: f64) -> (Regression, Exact) {
    let (n, p) = (200, 3);
    let mut rng = ChaCha12Rng::seed_from_u64(7);
    let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
    let design: Vec<f64> = (0..n * p).map(|_| x_sd * normal()).collect();
    let y: Vec<f64> = (0..n).map(|i| (0..p).map(|j| design[i * p + j] * beta).sum::<f64>() + normal()).collect();
    regression(design, y, p)
}

/// y = 1 + 2x + ε over x = 2000 + U(−1, 1), N = 200, noise sd 1.
fn regression_around_2000() -> (Regression, Exact) {
    let n = 200;
    let mut rng = ChaCha12Rng::seed_from_u64(11);
    let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
    let x: Vec<f64> = (0..n).map(|i| 2000.0 + 2.0 * ((i as f64 + 0.5) / n as f64) - 1.0).collect();
    let design: Vec<f64> = x.iter().flat_map(|x| [1.0, *x]).collect();
    let y: Vec<f64> = x.iter().map(|x| 1.0 + 2.0 * x + normal()).collect();
    regression(design, y, 2)
}

/// The default full-rank fit for seeds 0–2 meets the goal: means within 0.1 sd, sds within 10 %.
fn meets_the_goal(what: &str, model: &Regression, exact: &Exact) {
    let d = exact.mean.len();
    println!("{what}: exact means {:?}, sds {:?}", exact.mean, exact.sd);
    for seed in 0..3 {
        let fit = Advi::new(FullRank).dtype(DType::F64).seed(seed).fit(model).unwrap();
        let mean = host(&fit.mean().unwrap());
        let cov = host(&fit.covariance().unwrap());
        let z: Vec<f64> = (0..d).map(|i| (mean[i] - exact.mean[i]) / exact.sd[i]).collect();
        let ratio: Vec<f64> = (0..d).map(|i| cov[i * d + i].sqrt() / exact.sd[i]).collect();
        println!(
            "  seed {seed}: {} iterations ({}), Δmean/sd {z:.3?}, sd ratios {ratio:.3?}",
            fit.iterations(),
            fit.stop_reason()
        );
        assert!(z.iter().all(|z| z.abs() < 0.1), "{what}, seed {seed}: means off by {z:?} sd");
        assert!(ratio.iter().all(|r| (r - 1.0).abs() < 0.1), "{what}, seed {seed}: sd ratios {ratio:?}");
    }
}

#[test]
fn a_regression_with_coefficient_sds_of_1e_minus_3() {
    let (model, exact) = scaled_regression(70.0, 1.0);
    assert!(exact.sd[..3].iter().all(|s| (3e-4..3e-3).contains(s)), "{:?}", exact.sd);
    meets_the_goal("sds 1e-3", &model, &exact);
}

#[test]
fn a_regression_with_coefficient_sds_of_1e3() {
    let (model, exact) = scaled_regression(7e-5, 1e3);
    assert!(exact.sd[..3].iter().all(|s| (3e2..3e3).contains(s)), "{:?}", exact.sd);
    meets_the_goal("sds 1e3", &model, &exact);
}

#[test]
fn a_regression_on_covariates_around_2000() {
    let (model, exact) = regression_around_2000();
    meets_the_goal("covariates around 2,000", &model, &exact);
}

/// Where Pathfinder fails on every path (here made to by a zero iteration budget), the fit starts
/// at the point (0, scale 0.1) and its whitening adapts to q as it goes: the same goal, on all
/// three targets, and the report says why.
#[test]
fn without_pathfinder_the_adapting_whitening_reaches_the_goal() {
    let targets = [
        ("sds 1e-3", scaled_regression(70.0, 1.0)),
        ("sds 1e3", scaled_regression(7e-5, 1e3)),
        ("covariates around 2,000", regression_around_2000()),
    ];
    for (what, (model, exact)) in targets {
        let d = exact.mean.len();
        let broken = elbo::Pathfinder::new().max_iters(0);
        let fit = Advi::new(FullRank).dtype(DType::F64).init_pathfinder(Some(broken)).fit(&model).unwrap();
        let start = &fit.stochastic().unwrap().start;
        assert!(matches!(start, StartRecord::PathfinderFailed(why) if why.contains("every path failed")), "{start:?}");
        let mean = host(&fit.mean().unwrap());
        let cov = host(&fit.covariance().unwrap());
        let z: Vec<f64> = (0..d).map(|i| (mean[i] - exact.mean[i]) / exact.sd[i]).collect();
        let ratio: Vec<f64> = (0..d).map(|i| cov[i * d + i].sqrt() / exact.sd[i]).collect();
        println!(
            "{what}: {} iterations ({}), Δmean/sd {z:.3?}, sd ratios {ratio:.3?}",
            fit.iterations(),
            fit.stop_reason()
        );
        assert!(z.iter().all(|z| z.abs() < 0.1), "{what}: means off by {z:?} sd");
        assert!(ratio.iter().all(|r| (r - 1.0).abs() < 0.1), "{what}: sd ratios {ratio:?}");
    }
}
