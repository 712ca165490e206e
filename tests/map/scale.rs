//! MAP, Laplace and DADVI on smooth, proper posteriors whose scales are far from 1.
//!
//! - 1-D N(1, s²) for s from 10⁻⁶ to 10⁴ (curvature 10¹² to 10⁻⁸), from z = 0, 10⁶ to 10⁻⁴ sds
//!   away: the mode is 1 and the Laplace sd is s. The Newton step at the mode (`polish`) on a
//!   quadratic lands on the mode up to the rounding of z (ε |z| ≈ 2·10⁻¹⁶, within 10⁻⁶ s for every
//!   s here), and the central-difference Hessian of a quadratic has no truncation error, so the sd
//!   is right to rounding; the tolerances, 10⁻⁶ s and 10⁻³ relative, leave a wide margin.
//! - A conjugate regression on one covariate around 2,000 (x = 2000 + U(−1, 1)), intercept and
//!   slope: the posterior correlation is −0.99999 and the Hessian's condition number about 10¹³,
//!   at posterior sds of order 1, 10⁻³ and 10³ (the data and noise scaled together). Exact answers
//!   from `ExactPosterior`.
//! - A 2-D Gaussian with sds 10⁻⁷ and 1 (condition number 10¹⁴): Laplace accepts the Hessian and
//!   gets both sds.

use crate::common::host;
use elbo::map::{Dadvi, Laplace, Map};
use elbo::prelude::*;
use elbo::Method;
use elbo::StopReason;
use elbo_models::{ExactPosterior, LinearRegression};

/// log N(z; m, diag(s²)) up to a constant, z `[K, D]`.
fn gaussian(m: Vec<f64>, s: Vec<f64>) -> impl LogJoint {
    let d = m.len();
    let (m, inv) = (m, s.iter().map(|s| 1.0 / s).collect::<Vec<_>>());
    elbo::from_fn(d, move |z: &Tensor| {
        let m = Tensor::from_slice(&m, (1, d), z.device())?.to_dtype(z.dtype())?;
        let inv = Tensor::from_slice(&inv, (1, d), z.device())?.to_dtype(z.dtype())?;
        z.broadcast_sub(&m)?.broadcast_mul(&inv)?.sqr()?.sum(1)? * -0.5
    })
}

#[test]
fn map_and_laplace_of_a_normal_at_any_scale() {
    for s in [1e-6, 1e-4, 1e-2, 1.0, 1e2, 1e4] {
        let model = gaussian(vec![1.0], vec![s]);
        let map = Map::new().fit(&model).unwrap_or_else(|e| panic!("s = {s:e}: {e}"));
        let c = map.convergence();
        println!("s = {s:e}: {} iterations, {} evaluations, ‖∇‖ {:.2e}", c.iterations, c.evaluations, c.grad_norm);
        let z = map.loc()[0];
        assert!((z - 1.0).abs() <= 1e-6 * s, "s = {s:e}: mode {z}");
        let fit = Laplace::new().fit(&model).unwrap_or_else(|e| panic!("s = {s:e}: {e}"));
        let mean = host(&fit.mean().unwrap())[0];
        let sd = host(&fit.covariance().unwrap())[0].sqrt();
        assert!((mean - 1.0).abs() <= 1e-6 * s, "s = {s:e}: Laplace mean {mean}");
        assert!((sd / s - 1.0).abs() <= 1e-3, "s = {s:e}: Laplace sd {sd}");
    }
}

/// y = 1 + 2x + ε over x = 2000 + U(−1, 1), N = 50, prior sd 30 (posterior correlation −0.99999),
/// with y, the noise sd and the prior sd
/// multiplied by `scale` (so the posterior is `scale` × that of `scale` = 1).
fn regression(scale: f64) -> (LinearRegression, ExactPosterior) {
    let n = 50;
    // deterministic low-discrepancy draws: u uniform on (−1, 1), e with mean 0 and variance 1
    let frac = |v: f64| v - v.floor();
    let u: Vec<f64> = (0..n).map(|i| 2.0 * frac(0.5 + i as f64 * 0.618_033_988_75) - 1.0).collect();
    let e: Vec<f64> = (0..n).map(|i| 3f64.sqrt() * (2.0 * frac(0.25 + i as f64 * 0.754_877_666_2) - 1.0)).collect();
    let design: Vec<f64> = u.iter().flat_map(|u| [1.0, 2000.0 + u]).collect();
    let y: Vec<f64> = (0..n).map(|i| scale * (1.0 + 2.0 * (2000.0 + u[i]) + e[i])).collect();
    let x = Tensor::from_vec(design, (n, 2), &Device::Cpu).unwrap();
    let y = Tensor::from_vec(y, n, &Device::Cpu).unwrap();
    let model = LinearRegression::new(&x, &y, 30.0 * scale, scale).unwrap();
    let exact = model.exact_posterior().unwrap();
    (model, exact)
}

/// (sd of the intercept, sd of the slope, their correlation) of a 2×2 covariance.
fn sds_and_correlation(cov: &[f64]) -> (f64, f64, f64) {
    let (a, b) = (cov[0].sqrt(), cov[3].sqrt());
    (a, b, cov[1] / (a * b))
}

fn check_regression(scale: f64, dadvi: bool) {
    let (model, exact) = regression(scale);
    let (sa, sb, rho) = sds_and_correlation(&exact.cov);
    println!("scale {scale:e}: exact sds {sa:.3e}, {sb:.3e}, correlation {rho:.7}");
    assert!(rho < -0.9999, "the test needs a strongly correlated posterior: {rho}");
    let sd = [sa, sb];

    let map = Map::new().fit(&model).unwrap_or_else(|e| panic!("scale {scale:e}: MAP: {e}"));
    let c = map.convergence();
    println!("  MAP: {} iterations, {} evaluations, ‖∇‖ {:.2e}", c.iterations, c.evaluations, c.grad_norm);
    for (i, sd) in sd.iter().enumerate() {
        let off = (map.loc()[i] - exact.mean[i]).abs() / sd;
        assert!(off < 1e-3, "scale {scale:e}: MAP coordinate {i} is {off:.2e} sd from the exact mean");
    }

    let fit = Laplace::new().fit(&model).unwrap_or_else(|e| panic!("scale {scale:e}: Laplace: {e}"));
    let (la, lb, lrho) = sds_and_correlation(&host(&fit.covariance().unwrap()));
    println!("  Laplace: sds {la:.6e}, {lb:.6e}, correlation {lrho:.9}");
    assert!((la / sa - 1.0).abs() < 1e-2 && (lb / sb - 1.0).abs() < 1e-2, "scale {scale:e}: Laplace sds {la}, {lb}");
    // the correlation to 10⁻² of its distance from −1, the part that carries information
    assert!(((1.0 + lrho) / (1.0 + rho) - 1.0).abs() < 1e-2, "scale {scale:e}: Laplace correlation {lrho} vs {rho}");

    if !dadvi {
        return;
    }
    let dadvi = Dadvi::new().fit(&model).unwrap_or_else(|e| panic!("scale {scale:e}: DADVI: {e}"));
    let mean = host(&dadvi.fit().mean().unwrap());
    if let Method::Dadvi { lbfgs, .. } = dadvi.fit().method() {
        println!("  DADVI: {lbfgs}");
        // the stop reason says which: converged (within a tolerance: the gradient norm's, or the
        // Newton decrement's) or the rounding floor (within neither)
        match dadvi.fit().stop_reason() {
            StopReason::LbfgsConverged => assert!(
                lbfgs.met_tolerance() && !lbfgs.rounding_floor,
                "scale {scale:e}: called converged at ‖∇‖ {:.2e} > {:.0e}, λ²/2 {:?} > {:.0e}",
                lbfgs.grad_norm,
                lbfgs.tol_grad,
                lbfgs.decrement,
                lbfgs.tol_decrement
            ),
            StopReason::LbfgsRoundingFloor { grad_norm, tol_grad } => assert!(
                lbfgs.rounding_floor
                    && !lbfgs.met_tolerance()
                    && grad_norm == lbfgs.grad_norm
                    && tol_grad == lbfgs.tol_grad
            ),
            other => panic!("scale {scale:e}: DADVI stopped for {other:?}"),
        }
    }
    for (i, sd) in sd.iter().enumerate() {
        let off = (mean[i] - exact.mean[i]).abs() / sd;
        assert!(off < 0.1, "scale {scale:e}: DADVI mean {i} is {off:.2e} sd from the exact mean");
    }
}

#[test]
fn regression_on_covariates_around_2000() {
    check_regression(1.0, true);
}

#[test]
fn regression_on_covariates_around_2000_with_small_sds() {
    check_regression(1e-3, false);
}

/// From DADVI's default start (σ = 0.1, 10⁴ sds of the slope away) L-BFGS on log σ, whose
/// curvature grows as σ², uses up its restarts; damped Newton steps on the objective's Hessian
/// then finish the run.
#[test]
fn dadvi_on_the_regression_with_small_sds() {
    check_regression(1e-3, true);
}

#[test]
fn regression_on_covariates_around_2000_with_large_sds() {
    check_regression(1e3, true);
}

#[test]
fn laplace_accepts_a_condition_number_of_1e14() {
    let model = gaussian(vec![1.0, 1.0], vec![1e-7, 1.0]);
    let fit = Laplace::new().fit(&model).unwrap_or_else(|e| panic!("{e}"));
    let cov = host(&fit.covariance().unwrap());
    let sd = [cov[0].sqrt(), cov[3].sqrt()];
    println!("Laplace sds {:.6e}, {:.6e}", sd[0], sd[1]);
    assert!((sd[0] / 1e-7 - 1.0).abs() < 1e-3 && (sd[1] - 1.0).abs() < 1e-3, "{sd:?}");
}
