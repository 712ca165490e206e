//! MAP and Laplace against exact answers.
//!
//! - The conjugate linear regression (N = 200, D = 10) has a Gaussian posterior N(m, Σ): its mode is
//!   m, and the Laplace approximation at the mode is the posterior itself, so both are checked to
//!   rounding-level tolerances (L-BFGS stops at ‖∇‖ ≤ 10⁻⁶, i.e. |ẑ − m| ≲ 10⁻⁶ / λ_min(Σ⁻¹) ≈ 10⁻⁸;
//!   the Hessian of a quadratic has no truncation error, only rounding).
//! - A positive latent: the mode of the unconstrained density of u = log λ, Gamma(a, b) posterior,
//!   is λ = a / b (the Jacobian adds log λ); reported by name.
//! - Posteriors with no finite mode fail with errors that say so: a flat ridge (the data see only
//!   a + b) and a density that grows without bound (a flat prior on a positive scale).
//! - The bridge drives argmin's own L-BFGS, and its gradient is −∇ log p by finite differences.

use crate::common::host;
use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use elbo::dist::{Distribution, Gamma, Poisson};
use elbo::map::{Laplace, Map, NegLogJoint};
use elbo::prelude::*;
use elbo::{Error, Method};
use elbo_models::{ExactPosterior, LinearRegression};

fn linreg() -> (LinearRegression, ExactPosterior) {
    let (model, _) = LinearRegression::simulate(200, 10, 2026).unwrap();
    let exact = model.exact_posterior().unwrap();
    (model, exact)
}

#[test]
fn map_of_the_linear_regression_is_the_exact_posterior_mean() {
    let (model, exact) = linreg();
    let map = Map::new().fit(&model).unwrap();
    println!("{map}");
    for (i, (got, want)) in map.loc().iter().zip(&exact.mean).enumerate() {
        assert!((got - want).abs() < 1e-6, "w[{i}]: MAP {got} vs exact mean {want}");
        assert_eq!(map.get(&format!("z[{i}]")), Some(*got), "reported by name");
    }
    let c = map.convergence();
    assert!(c.grad_norm <= 1e-6 && c.iterations > 0 && c.evaluations >= c.iterations, "{c:?}");
    // the log density at the mode is log p(y, m)
    let at_mean = host(&model.log_joint(&Tensor::from_slice(&exact.mean, (1, 10), &Device::Cpu).unwrap()).unwrap())[0];
    assert!((map.log_joint() - at_mean).abs() < 1e-9 * at_mean.abs());
    // the Hessian of −log p is the posterior precision
    let h = map.hessian().unwrap();
    for (k, (got, want)) in h.iter().zip(&exact.precision).enumerate() {
        assert!((got - want).abs() < 1e-6 * want.abs().max(1.0), "H entry {k}: {got} vs {want}");
    }
}

#[test]
fn laplace_of_the_linear_regression_is_the_exact_posterior() {
    let (model, exact) = linreg();
    let d = 10;
    let fit = Laplace::new().seed(3).fit(&model).unwrap();
    println!("{fit}");
    let mean = host(&fit.mean().unwrap());
    let cov = host(&fit.covariance().unwrap());
    let sd = |i: usize| exact.cov[i * d + i].sqrt();
    let mut worst = (0.0f64, 0.0f64);
    for i in 0..d {
        let err = (mean[i] - exact.mean[i]).abs();
        assert!(err < 1e-6 && err / sd(i) < 1e-4, "mean {i}: {} vs {}", mean[i], exact.mean[i]);
        for j in 0..d {
            // covariance entries relative to the scale sd_i sd_j
            let rel = (cov[i * d + j] - exact.cov[i * d + j]).abs() / (sd(i) * sd(j));
            assert!(rel < 1e-4, "cov ({i}, {j}): {} vs {} ({rel:.2e})", cov[i * d + j], exact.cov[i * d + j]);
            worst.1 = worst.1.max(rel);
        }
        worst.0 = worst.0.max(err / sd(i));
    }
    println!("largest errors: mean {:.2e} posterior sd, covariance {:.2e} of sd_i sd_j", worst.0, worst.1);
    // q is the posterior: log p(y, z) − log q(z) = log p(y) for every draw, so the ELBO is the
    // evidence and the importance ratios are constant (k̂ = −∞ or near it)
    assert!((fit.elbo() - exact.log_evidence).abs() < 1e-6, "ELBO {} vs log p(y) {}", fit.elbo(), exact.log_evidence);
    assert!(fit.elbo_se() < 1e-6 && fit.k_hat() < 0.5, "s.e. {}, k̂ {}", fit.elbo_se(), fit.k_hat());
    // two Hessians of 2D = 20 gradients: one with unit steps, whose sds (≈ 0.07) are far from 1,
    // then one with steps on those sds
    assert!(matches!(fit.method(), Method::Laplace { hessian_evaluations: 40, .. }), "{:?}", fit.method());
    assert_eq!(fit.stop_reason(), StopReason::LbfgsConverged);
    assert!(fit.to_string().starts_with("Laplace at the MAP: full-rank Gaussian"), "{fit}");
    // a Fit like ADVI's: summaries by name and draws
    let w0 = fit.summary().get("z[0]").unwrap();
    assert!((w0.mean - exact.mean[0]).abs() < 4.0 * sd(0) / (1000f64).sqrt(), "{w0:?}");
    assert_eq!(fit.draws(10).unwrap().len(), 10);
}

/// yᵢ ~ Poisson(λ), λ ~ Gamma(2, 0.5), with λ declared positive (λ = eᵘ): the posterior of λ is
/// Gamma(2 + Σy, 0.5 + n), and the density of u is ∝ λ^(2 + Σy) e^(−(0.5 + n) λ).
fn gamma_poisson() -> impl LogJoint {
    let y = Tensor::new(&[3.0f64, 5.0, 2.0, 4.0, 6.0, 3.0], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    Latents::new().positive("lambda", [1]).model(move |v| {
        let lambda = v.get("lambda")?;
        Gamma::new(2.0, 0.5)?.log_prob(lambda)?.sum(1)? + Poisson::new(lambda.log()?)?.log_prob(&y)?.sum(1)?
    })
}

#[test]
fn map_of_a_constrained_latent_is_reported_by_name_and_starts_advi() {
    let (a, b) = (2.0 + 23.0, 0.5 + 6.0);
    let model = gamma_poisson();
    let map = Map::new().init_value("lambda", [10.0]).fit(&model).unwrap();
    assert_eq!(map.names(), ["lambda"]);
    let lambda = map.get("lambda").unwrap();
    assert!((lambda - a / b).abs() < 1e-7, "λ̂ = {lambda}, want a / b = {}", a / b);
    assert!((map.loc()[0] - (a / b).ln()).abs() < 1e-7);
    // the Laplace variance in u is 1 / a: −d²/du² [a u − b eᵘ] = b eᵘ = a at the mode
    let h = map.hessian().unwrap()[0];
    assert!((h - a).abs() < 1e-5 * a, "H = {h}, want {a}");
    // init = Map: an ADVI fit of 0 steps reports q at its start, whose mean is the mode
    let fit = Advi::new(MeanField).dtype(DType::F64).steps(0).init_map(Map::new()).fit(&model).unwrap();
    let start = host(&fit.mean().unwrap())[0];
    assert!((start - map.loc()[0]).abs() < 1e-9, "ADVI starts at {start}, the MAP is {}", map.loc()[0]);
}

/// yᵢ ~ N(a + b, 1) with flat priors on a and b: the posterior is flat along a − b.
fn ridge() -> impl LogJoint {
    let y = Tensor::new(&[[0.3f64, 1.1, 0.7, 1.4]], &Device::Cpu).unwrap();
    Latents::new().real("a", ()).real("b", ()).model(move |v| {
        let mu = (v.get("a")? + v.get("b")?)?.unsqueeze(1)?; // [S, 1]
        (y.broadcast_sub(&mu)?.sqr()? * -0.5)?.sum(1)
    })
}

#[test]
fn a_flat_posterior_direction_fails_with_the_direction_named() {
    for result in [Map::new().fit(&ridge()).map(|_| ()), Laplace::new().fit(&ridge()).map(|_| ())] {
        let err = result.unwrap_err();
        let text = err.to_string();
        println!("{text}");
        match &err {
            Error::NotPositiveDefinite { eigenvalue, largest, direction, .. } => {
                assert!(eigenvalue.abs() < 1e-6 * largest, "λ_min {eigenvalue} vs λ_max {largest}");
                // the flat direction is (1, −1) / √2 in (a, b)
                assert!(direction.contains("0.707 × a − 0.707 × b") || direction.contains("0.707 × b − 0.707 × a"));
            }
            other => panic!("expected NotPositiveDefinite, got {other:?}"),
        }
        assert!(text.contains("no finite, unique mode"), "{text}");
    }
}

#[test]
fn a_density_without_bound_fails_instead_of_running_forever() {
    // τ > 0 with a flat prior and no data: log p(u) = u (the Jacobian of τ = eᵘ) grows forever
    let model = Latents::new().positive("tau", ()).model(|v| v.get("tau")?.zeros_like());
    let err = Map::new().fit(&model).unwrap_err();
    let text = err.to_string();
    println!("{text}");
    assert!(matches!(err, Error::NotConverged { .. }), "{err:?}");
    assert!(text.contains("no finite mode") && text.contains("u(tau)"), "{text}");
}

#[test]
fn a_start_outside_the_support_is_refused() {
    // log p = −∞ at z = 0 (a log of −z² … of zero)
    let model = elbo::from_fn(1, |z: &Tensor| z.sqr()?.log()?.sum(1));
    let err = Map::new().fit(&model).unwrap_err();
    assert!(matches!(err, Error::NonFiniteInit { .. }), "{err:?}");
    assert!(err.to_string().contains("at the start"), "{err}");
    let bad = Map::new().tol_grad(0.0).fit(&ridge()).unwrap_err();
    assert!(bad.to_string().contains("tol_grad"), "{bad}");
}

#[test]
fn the_bridge_drives_argmins_own_lbfgs_with_autodiff_gradients() {
    let (model, exact) = linreg();
    let bridge = NegLogJoint::new(&model);
    // the gradient is −∇ log p: compare with central differences of the cost
    let z: Vec<f64> = (0..10).map(|i| 0.3 * i as f64 - 1.0).collect();
    let g = bridge.gradient(&z).unwrap();
    for i in 0..10 {
        let h = 1e-5;
        let (mut up, mut down) = (z.clone(), z.clone());
        up[i] += h;
        down[i] -= h;
        let fd = (bridge.cost(&up).unwrap() - bridge.cost(&down).unwrap()) / (2.0 * h);
        assert!((fd - g[i]).abs() < 1e-5 * g[i].abs().max(1.0), "coordinate {i}: {} vs {fd}", g[i]);
    }
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 7).with_tolerance_grad(1e-8).unwrap();
    let result = Executor::new(bridge, solver).configure(|s| s.param(vec![0.0; 10]).max_iters(200)).run().unwrap();
    let w = result.state().get_best_param().unwrap();
    for (got, want) in w.iter().zip(&exact.mean) {
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
}

#[test]
fn an_f32_model_stops_at_its_rounding_floor() {
    // In F32 the gradient norm cannot reach 10⁻⁶ (rounding of log p ≈ 300 · 10⁻⁷): L-BFGS alone
    // (no curvature check) ends when f can decrease no further, and says so
    let (model, exact) = linreg();
    let model = model.to(DType::F32, &Device::Cpu).unwrap();
    let alone = Map::new().dtype(DType::F32).curvature_check(false).fit(&model).unwrap();
    let c = alone.convergence();
    assert!(c.rounding_floor && !c.met_tolerance() && c.decrement.is_none(), "{c:?}");
    assert!(c.to_string().contains("f can decrease no further"), "{c}");
    // with the Hessian, the Newton decrement, from gradients, is not bound by f's rounding: the
    // steps reach it (λ ≈ 10⁻⁶ sd, the resolution of F32 numbers near 1 for sds of 0.07), or stop
    // at the floor and say so; either way the mode is within F32 precision
    let map = Map::new().dtype(DType::F32).fit(&model).unwrap();
    let c = map.convergence();
    println!("{c}");
    assert!(c.grad_norm > c.tol_grad, "the premise: F32 gradients do not reach 1e-6: {c:?}");
    let decrement = c.decrement.expect("a decrement with the curvature check");
    assert_eq!(c.rounding_floor, decrement > c.tol_decrement, "{c:?}");
    for map in [&alone, &map] {
        for (got, want) in map.loc().iter().zip(&exact.mean) {
            assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        }
    }
    // a dtype that does not match the model's data is a clear error
    let err = Map::new().fit(&model).unwrap_err();
    assert!(err.to_string().contains("`.dtype(...)`"), "{err}");
}
