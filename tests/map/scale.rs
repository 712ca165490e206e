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
//! - posteriordb's earnings on the raw dollar scale, made exactly Gaussian: yᵢ ~ N(β₁ + β₂ hᵢ, σ²)
//!   with σ = 19,000 known, heights hᵢ ≈ 66 ± 4 and earnings in the tens of thousands, N = 1,000,
//!   and a prior sd of 10⁸ (flat next to sds of 10⁴): posterior sds ≈ 9,900 and 150, correlation
//!   −0.998, where a gradient norm of 10⁻⁶ means 10⁻² sd from the mode. Exact answers from
//!   `ExactPosterior`.
//! - The same data with σ a latent (flat priors on β and σ, as posteriordb's earnings): the
//!   Laplace approximation in closed form (the mode is OLS with σ̂² = RSS / (N − 1), the Hessian
//!   block-diagonal). L-BFGS alone used up its 20 restarts here at ‖∇‖ ≈ 8 · 10⁻⁴, as on earnings.

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

/// From the old default start (σ = 0.1, 10⁴ sds of the slope away) L-BFGS on log σ, whose
/// curvature grows as σ², uses up its restarts before Newton steps finish the run; the default
/// now starts at the mode with σᵢ = 1/√Hᵢᵢ, next to the optimum.
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

/// Earnings-like data: heights hᵢ = 66 + 4 uᵢ and yᵢ = −61,000 + 1,260 hᵢ + 19,000 eᵢ, with
/// low-discrepancy uᵢ and eᵢ of mean 0 and variance 1, N = 1,000.
fn earnings_data() -> (Vec<f64>, Vec<f64>) {
    let n = 1_000;
    let frac = |v: f64| v - v.floor();
    let u: Vec<f64> = (0..n).map(|i| 3f64.sqrt() * (2.0 * frac(0.5 + i as f64 * 0.618_033_988_75) - 1.0)).collect();
    let e: Vec<f64> = (0..n).map(|i| 3f64.sqrt() * (2.0 * frac(0.25 + i as f64 * 0.754_877_666_2) - 1.0)).collect();
    let height: Vec<f64> = u.iter().map(|u| 66.0 + 4.0 * u).collect();
    let y: Vec<f64> = (0..n).map(|i| -61_000.0 + 1_260.0 * height[i] + 19_000.0 * e[i]).collect();
    (height, y)
}

/// The earnings-like regression with σ = 19,000 known (module doc).
fn earnings_like() -> (LinearRegression, ExactPosterior) {
    let (height, y) = earnings_data();
    let n = y.len();
    let design: Vec<f64> = height.iter().flat_map(|h| [1.0, *h]).collect();
    let x = Tensor::from_vec(design, (n, 2), &Device::Cpu).unwrap();
    let y = Tensor::from_vec(y, n, &Device::Cpu).unwrap();
    let model = LinearRegression::new(&x, &y, 1e8, 19_000.0).unwrap();
    let exact = model.exact_posterior().unwrap();
    (model, exact)
}

#[test]
fn laplace_and_dadvi_on_an_earnings_like_regression_in_dollars() {
    let (model, exact) = earnings_like();
    let (sa, sb, rho) = sds_and_correlation(&exact.cov);
    println!("exact: means {:.1}, {:.2}; sds {sa:.1}, {sb:.2}; correlation {rho:.5}", exact.mean[0], exact.mean[1]);
    assert!(sa > 5e3 && sb > 100.0 && rho < -0.99, "the test needs earnings' scales: {sa}, {sb}, {rho}");
    let sd = [sa, sb];

    let fit = Laplace::new().fit(&model).unwrap_or_else(|e| panic!("Laplace: {e}"));
    let Method::Laplace { lbfgs, .. } = fit.method() else { panic!("not Laplace") };
    println!("  Laplace: {lbfgs}");
    assert_eq!(fit.stop_reason(), StopReason::LbfgsConverged);
    assert!(lbfgs.met_tolerance() && lbfgs.decrement.is_some_and(|d| d <= lbfgs.tol_decrement), "{lbfgs:?}");
    let mean = host(&fit.mean().unwrap());
    let (la, lb, lrho) = sds_and_correlation(&host(&fit.covariance().unwrap()));
    println!("  Laplace: means {:.3}, {:.5}; sds {la:.3}, {lb:.5}; correlation {lrho:.7}", mean[0], mean[1]);
    for i in 0..2 {
        let off = (mean[i] - exact.mean[i]).abs() / sd[i];
        assert!(off < 1e-3, "Laplace mean {i} is {off:.2e} sd from the exact mean");
    }
    assert!((la / sa - 1.0).abs() < 1e-2 && (lb / sb - 1.0).abs() < 1e-2, "Laplace sds {la}, {lb} vs {sa}, {sb}");

    let dadvi = Dadvi::new().fit(&model).unwrap_or_else(|e| panic!("DADVI: {e}"));
    let Method::Dadvi { lbfgs, .. } = dadvi.fit().method() else { panic!("not DADVI") };
    println!("  DADVI: {lbfgs}; started at {:?}", dadvi.start());
    assert_eq!(dadvi.fit().stop_reason(), StopReason::LbfgsConverged);
    assert!(lbfgs.met_tolerance(), "{lbfgs:?}");
    let mean = host(&dadvi.fit().mean().unwrap());
    for i in 0..2 {
        let off = (mean[i] - exact.mean[i]).abs() / sd[i];
        assert!(off < 0.1, "DADVI mean {i} is {off:.2e} sd from the exact mean");
    }
    // and from its old default start, μ = 0 and σ = 0.1, 10⁴ sds away, where L-BFGS stalls
    let from_point = Dadvi::new().init_at_mode(false).fit(&model).unwrap_or_else(|e| panic!("DADVI from 0: {e}"));
    let Method::Dadvi { lbfgs, .. } = from_point.fit().method() else { panic!("not DADVI") };
    println!("  DADVI from μ = 0, σ = 0.1: {lbfgs}");
    assert!(lbfgs.met_tolerance() && !lbfgs.rounding_floor, "{lbfgs:?}");
    let point_mean = host(&from_point.fit().mean().unwrap());
    for i in 0..2 {
        // the same optimum of the same draws, whichever the start
        let off = (point_mean[i] - mean[i]).abs() / sd[i];
        assert!(off < 1e-4, "DADVI from 0, mean {i}: {off:.2e} sd from the one started at the mode");
    }
}

/// earnings itself in shape: the same data with σ a latent too, flat priors on β and σ, σ = eˢ.
/// Then f = −log p = RSS(β) e⁻²ˢ / 2 + (N − 1) s + const (the Jacobian adds s), and the Laplace
/// approximation is known in closed form: the mode is β̂ = OLS, e²ˢ̂ = RSS(β̂) / (N − 1), and the
/// Hessian there is block-diagonal, XᵀX / σ̂² for β and 2 (N − 1) for s. The posterior of β is a
/// multivariate t centred on β̂, so β̂ is also its posterior mean. Returns the model, the mode
/// (β̂₁, β̂₂, ŝ) and the Laplace sds.
fn earnings_with_unknown_sigma() -> (impl LogJoint, Vec<f64>, Vec<f64>) {
    let (height, y) = earnings_data();
    let n = y.len() as f64;
    let (h_bar, y_bar) = (height.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = height.iter().map(|h| (h - h_bar).powi(2)).sum();
    let sxy: f64 = height.iter().zip(&y).map(|(h, y)| (h - h_bar) * (y - y_bar)).sum();
    let slope = sxy / sxx;
    let intercept = y_bar - slope * h_bar;
    let rss: f64 = height.iter().zip(&y).map(|(h, y)| (y - intercept - slope * h).powi(2)).sum();
    let s2 = rss / (n - 1.0);
    let mode = vec![intercept, slope, 0.5 * s2.ln()];
    let sd = vec![(s2 * (1.0 / n + h_bar * h_bar / sxx)).sqrt(), (s2 / sxx).sqrt(), (0.5 / (n - 1.0)).sqrt()];
    let columns: Vec<f64> = std::iter::repeat_n(1.0, y.len()).chain(height.iter().copied()).collect();
    let x_t = Tensor::from_vec(columns, (2, y.len()), &Device::Cpu).unwrap();
    let y = Tensor::from_vec(y.clone(), (1, y.len()), &Device::Cpu).unwrap();
    let model = Latents::new().real("beta", [2]).positive("sigma", ()).model(move |v| {
        let (beta, sigma) = (v.get("beta")?, v.get("sigma")?); // [S, 2], [S]
        let squares = y.broadcast_sub(&beta.matmul(&x_t)?)?.sqr()?.sum(1)?; // [S]
        (squares / sigma.sqr()?)?.affine(-0.5, 0.0)? - (sigma.log()? * n)?
    });
    (model, mode, sd)
}

#[test]
fn laplace_and_dadvi_on_earnings_with_its_scale_unknown() {
    let (model, mode, sd) = earnings_with_unknown_sigma();
    println!("Laplace in closed form: mode {mode:?}, sds {sd:?}");
    let fit = Laplace::new().fit(&model).unwrap_or_else(|e| panic!("Laplace: {e}"));
    let Method::Laplace { lbfgs, .. } = fit.method() else { panic!("not Laplace") };
    println!("  Laplace: {lbfgs}");
    assert_eq!(fit.stop_reason(), StopReason::LbfgsConverged);
    let mean = host(&fit.mean().unwrap());
    let cov = host(&fit.covariance().unwrap());
    for i in 0..3 {
        let off = (mean[i] - mode[i]).abs() / sd[i];
        let ratio = cov[i * 4].sqrt() / sd[i];
        println!("  coordinate {i}: {off:.2e} sd from the mode, sd ratio {ratio:.6}");
        assert!(off < 1e-3, "Laplace mean {i} is {off:.2e} sd from the mode");
        assert!((ratio - 1.0).abs() < 1e-2, "Laplace sd {i} is {ratio} × the closed form's");
    }
    let dadvi = Dadvi::new().fit(&model).unwrap_or_else(|e| panic!("DADVI: {e}"));
    let Method::Dadvi { lbfgs, .. } = dadvi.fit().method() else { panic!("not DADVI") };
    println!("  DADVI: {lbfgs}");
    assert_eq!(dadvi.fit().stop_reason(), StopReason::LbfgsConverged);
    let mean = host(&dadvi.fit().mean().unwrap());
    for i in 0..2 {
        let off = (mean[i] - mode[i]).abs() / sd[i];
        assert!(off < 0.1, "DADVI mean of β[{i}] is {off:.2e} sd from the posterior mean");
    }
}
