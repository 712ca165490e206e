//! Deterministic ADVI against exact answers and a NUTS reference.
//!
//! On a Gaussian target N(m, Λ⁻¹) (the conjugate linear regression, N = 200, D = 10) the DADVI
//! optimum on fixed draws ε₁ … ε_M is known in closed form:
//!
//! ```text
//! μ̂ = m − σ̂ ⊙ ε̄,   σ̂ᵢ Σⱼ Λᵢⱼ σ̂ⱼ Ĉᵢⱼ = 1,   Ĉ = 1/M Σ_m (ε_m − ε̄)(ε_m − ε̄)ᵀ
//! ```
//!
//! so the mean is off by σ̂ ⊙ ε̄ (about σ / √M: the reported standard errors must cover it), the
//! raw variances are the mean-field optimum 1 / Λᵢᵢ up to Ĉ's sampling error (Ĉ → I), and the
//! linear-response covariance [H⁻¹]_μμ tends to Λ⁻¹ with an O(1/M) error. Antithetic pairs make
//! ε̄ = 0 and the objective exact for a quadratic log p.
//!
//! The logistic regression is the peers' (`tests/data/logreg.json`, N = 5000, D = 20, a copy of
//! `shared/peers/data/logreg.json`), against their NUTS reference (`tests/data/reference_nuts.json`,
//! 2 chains × 2,000 draws, min n_eff 2322, so its means carry ≈ 0.02 sd of Monte Carlo error).

use std::path::PathBuf;

use crate::common::{gaussian_target, host};
use elbo::map::{Dadvi, DadviFit, DadviStart, Map};
use elbo::noise::{Noise, Stream};
use elbo::prelude::*;
use elbo::{Error, Method};
use elbo_models::{ExactPosterior, LinearRegression, LogisticRegression};
use serde_json::Value;

fn linreg() -> (LinearRegression, ExactPosterior) {
    let (model, _) = LinearRegression::simulate(200, 10, 2026).unwrap();
    let exact = model.exact_posterior().unwrap();
    (model, exact)
}

fn mean_and_var(fit: &DadviFit) -> (Vec<f64>, Vec<f64>) {
    let d = fit.fit().q().dim();
    let cov = host(&fit.fit().covariance().unwrap());
    (host(&fit.fit().mean().unwrap()), (0..d).map(|i| cov[i * d + i]).collect())
}

/// The largest |C_ij − Σ_ij| / √(Σ_ii Σ_jj).
fn covariance_error(c: &[f64], exact: &[f64], d: usize) -> f64 {
    (0..d * d)
        .map(|k| (c[k] - exact[k]).abs() / (exact[(k / d) * (d + 1)] * exact[(k % d) * (d + 1)]).sqrt())
        .fold(0.0, f64::max)
}

/// The residuals of the fixed-draw optimality conditions of a Gaussian target N(m, Λ⁻¹): for the
/// mean |μ̂ − (m − σ̂ ⊙ ε̄)| in units of σ̂, for the scales |σ̂ᵢ Σⱼ Λᵢⱼ σ̂ⱼ Ĉᵢⱼ − 1|.
fn fixed_draw_residuals(fit: &DadviFit, m: &[f64], precision: &[f64]) -> (f64, f64) {
    let (mean, var) = mean_and_var(fit);
    let d = m.len();
    let eps = fit.fixed_draws();
    let draws = eps.len() / d;
    let bar: Vec<f64> = (0..d).map(|i| eps.chunks(d).map(|e| e[i]).sum::<f64>() / draws as f64).collect();
    let c = |i: usize, j: usize| eps.chunks(d).map(|e| (e[i] - bar[i]) * (e[j] - bar[j])).sum::<f64>() / draws as f64;
    let sigma: Vec<f64> = var.iter().map(|v| v.sqrt()).collect();
    let mean_residual = (0..d).map(|i| (mean[i] - (m[i] - sigma[i] * bar[i])).abs() / sigma[i]).fold(0.0, f64::max);
    let scale_residual = (0..d)
        .map(|i| (sigma[i] * (0..d).map(|j| precision[i * d + j] * sigma[j] * c(i, j)).sum::<f64>() - 1.0).abs())
        .fold(0.0, f64::max);
    (mean_residual, scale_residual)
}

#[test]
fn means_lie_within_three_of_their_standard_errors_of_the_exact_mean() {
    let (model, exact) = linreg();
    let fit = Dadvi::new().fit(&model).unwrap(); // M = 30 independent draws
    println!("{fit}");
    let (mean, var) = mean_and_var(&fit);
    let se = fit.mean_se().unwrap();
    for i in 0..10 {
        let z = (mean[i] - exact.mean[i]) / se[i];
        assert!(z.abs() < 3.0, "mean {i}: {} vs exact {} is {z:.2} standard errors off", mean[i], exact.mean[i]);
        // for a Gaussian target μ̂ᵢ − mᵢ = −σ̂ᵢ ε̄ᵢ: s.e. ≈ σ̂ᵢ / √M, about 0.18 posterior sd here
        let ratio = se[i] / (var[i].sqrt() / 30f64.sqrt());
        assert!((0.6..1.6).contains(&ratio), "s.e. {i}: {} is {ratio:.2} × σ̂ / √M", se[i]);
    }
    assert!(matches!(fit.fit().method(), Method::Dadvi { draws: 30, antithetic: false, .. }));
    assert_eq!(fit.fit().stop_reason(), StopReason::LbfgsConverged);
    assert!(fit.fit().to_string().starts_with("DADVI: mean-field Gaussian, 30 fixed draws"));
    // the reported ELBO (fresh draws) is below the evidence; the fixed-draw ELBO may not be, as it
    // is maximised on the draws it is measured on, but it is within its standard errors of it
    assert!(fit.fit().elbo() < exact.log_evidence + 3.0 * fit.fit().elbo_se());
    assert!((fit.elbo_on_draws() - exact.log_evidence).abs() < 3.0 * fit.elbo_on_draws_se() + 1.0);
}

/// [H⁻¹]_μμ of the DADVI objective of a Gaussian target N(m, Λ⁻¹) on the draws of `fit`, in
/// closed form: H = [[Λ, B], [Bᵀ, C]] with B = Λ diag(σ̂ ⊙ ε̄) and C = I + (σ̂σ̂ᵀ) ⊙ Λ ⊙ S,
/// S = 1/M Σ_m ε_m ε_mᵀ, so [H⁻¹]_μμ = (Λ − B C⁻¹ Bᵀ)⁻¹, which is Λ⁻¹ up to O(|ε̄|²).
fn linear_response_on_the_draws(fit: &DadviFit, precision: &[f64]) -> Vec<f64> {
    let (_, var) = mean_and_var(fit);
    let d = var.len();
    let sigma: Vec<f64> = var.iter().map(|v| v.sqrt()).collect();
    let eps = fit.fixed_draws();
    let m = (eps.len() / d) as f64;
    let bar: Vec<f64> = (0..d).map(|i| eps.chunks(d).map(|e| e[i]).sum::<f64>() / m).collect();
    let s = |i: usize, j: usize| eps.chunks(d).map(|e| e[i] * e[j]).sum::<f64>() / m;
    let b: Vec<f64> = (0..d * d).map(|k| precision[k] * sigma[k % d] * bar[k % d]).collect();
    let c: Vec<f64> = (0..d * d)
        .map(|k| {
            let (i, j) = (k / d, k % d);
            f64::from(u8::from(i == j)) + sigma[i] * sigma[j] * precision[k] * s(i, j)
        })
        .collect();
    let c_inv = elbo::linalg::spd_inverse(&c, d).unwrap();
    let schur: Vec<f64> = (0..d * d)
        .map(|k| {
            let (i, j) = (k / d, k % d);
            let bcb: f64 = (0..d)
                .flat_map(|a| (0..d).map(move |e| (a, e)))
                .map(|(a, e)| b[i * d + a] * c_inv[a * d + e] * b[j * d + e])
                .sum();
            precision[k] - bcb
        })
        .collect();
    elbo::linalg::spd_inverse(&schur, d).unwrap()
}

#[test]
fn linear_response_recovers_the_exact_covariance_with_an_error_that_shrinks_with_more_draws() {
    let (model, exact) = linreg();
    let d = 10;
    let mut errors = Vec::new();
    for m in [30, 300] {
        let fit = Dadvi::new().draws(m).fit(&model).unwrap();
        let lr = fit.linear_response_covariance().unwrap();
        // the inverse Hessian on these very draws, to finite-difference accuracy
        let on_draws = linear_response_on_the_draws(&fit, &exact.precision);
        let fd = covariance_error(lr, &on_draws, d);
        assert!(fd < 1e-6, "M = {m}: {fd:.2e} from the closed-form inverse Hessian on the draws");
        let (_, var) = mean_and_var(&fit);
        let raw: Vec<f64> = (0..d * d).map(|k| if k / d == k % d { var[k / d] } else { 0.0 }).collect();
        let (err, raw_err) = (covariance_error(lr, &exact.cov, d), covariance_error(&raw, &exact.cov, d));
        println!("M = {m}: linear-response covariance error {err:.4}, raw mean-field {raw_err:.4} (of sd_i sd_j)");
        assert!(err < 0.10, "M = {m}: linear-response covariance {err:.3} of sd_i sd_j from the exact one");
        errors.push(err);
    }
    // O(1/M): about 10× smaller for 10× the draws (6–34× over seeds 0–11); at least 3× here
    assert!(errors[1] < errors[0] / 3.0, "M = 30: {:.4}, M = 300: {:.4}", errors[0], errors[1]);
}

#[test]
fn raw_variances_are_the_mean_field_optimum_on_the_fixed_draws() {
    let (model, exact) = linreg();
    let d = 10;
    let mut spread = Vec::new();
    for m in [30, 300] {
        let fit = Dadvi::new().draws(m).fit(&model).unwrap();
        // the optimum on these very draws, to the accuracy of the L-BFGS answer
        let (mean_residual, scale_residual) = fixed_draw_residuals(&fit, &exact.mean, &exact.precision);
        assert!(mean_residual < 1e-6 && scale_residual < 1e-6, "M = {m}: {mean_residual:.2e}, {scale_residual:.2e}");
        // Ĉ → I: the variances tend to the mean-field optimum 1 / Λᵢᵢ, not to the exact Σᵢᵢ
        let (_, var) = mean_and_var(&fit);
        let logs: Vec<f64> = (0..d).map(|i| (var[i] * exact.precision[i * d + i]).ln()).collect();
        let rms = (logs.iter().map(|x| x * x).sum::<f64>() / d as f64).sqrt();
        // log Ĉᵢᵢ has sd √(2 / M): the scale of the spread
        assert!(rms < 3.0 * (2.0 / m as f64).sqrt(), "M = {m}: rms log(σ̂² Λᵢᵢ) = {rms:.3}");
        spread.push(rms);
    }
    println!("rms log(σ̂² Λᵢᵢ): M = 30 {:.3}, M = 300 {:.3}", spread[0], spread[1]);
    assert!(spread[1] < spread[0] / 2.0);
}

#[test]
fn on_a_correlated_gaussian_the_raw_variances_are_too_small_and_linear_response_corrects_them() {
    // Σᵢⱼ = 0.8^|i − j|: the mean-field optimum 1 / Λᵢᵢ is 0.22–0.36 of the exact variance 1
    let d: usize = 4;
    let cov: Vec<f64> = (0..d * d).map(|k| 0.8f64.powi((k / d).abs_diff(k % d) as i32)).collect();
    let l = elbo::linalg::cholesky(&cov, d).unwrap();
    let precision = elbo::linalg::spd_inverse(&cov, d).unwrap();
    let m = vec![1.0, -2.0, 0.5, 3.0];
    let model = gaussian_target(m.clone(), &l);
    for antithetic in [false, true] {
        let fit = Dadvi::new().draws(300).antithetic(antithetic).seed(7).fit(&model).unwrap();
        let (mean_residual, scale_residual) = fixed_draw_residuals(&fit, &m, &precision);
        assert!(mean_residual < 1e-6 && scale_residual < 1e-6, "{mean_residual:.2e}, {scale_residual:.2e}");
        let (_, var) = mean_and_var(&fit);
        // log(σ̂ᵢ²Λᵢᵢ) ≈ −(Ĉᵢᵢ − 1) − Σⱼ rᵢⱼ Ĉᵢⱼ with rᵢⱼ = Λᵢⱼ / √(ΛᵢᵢΛⱼⱼ): sd √(2 / U) √(1 + Σⱼ rᵢⱼ²)
        // for U independent draws (or pairs)
        let units = if antithetic { 150.0 } else { 300.0 };
        for i in 0..d {
            let r2: f64 = (0..d)
                .filter(|&j| j != i)
                .map(|j| precision[i * d + j].powi(2) / (precision[i * d + i] * precision[j * d + j]))
                .sum();
            let sd = (2.0 / units * (1.0 + r2)).sqrt();
            let ratio = var[i] * precision[i * d + i];
            assert!(ratio.ln().abs() < 4.0 * sd, "σ̂²Λᵢᵢ = {ratio:.3} for coordinate {i} (sd of its log {sd:.3})");
            assert!(var[i] < 0.5 * cov[i * d + i], "raw variance {i}: {} vs exact {}", var[i], cov[i * d + i]);
        }
        let err = covariance_error(fit.linear_response_covariance().unwrap(), &cov, d);
        println!("antithetic {antithetic}: linear-response covariance error {err:.2e}");
        // independent draws: O(1/M); antithetic pairs: exact up to the optimisation
        assert!(err < if antithetic { 1e-6 } else { 0.05 }, "{err}");
    }
}

#[test]
fn antithetic_pairs_make_the_gaussian_target_exact() {
    let (model, exact) = linreg();
    let fit = Dadvi::new().antithetic(true).fit(&model).unwrap();
    let (mean, _) = mean_and_var(&fit);
    let se = fit.mean_se().unwrap();
    for (i, ((got, want), se)) in mean.iter().zip(&exact.mean).zip(se).enumerate() {
        let sd = exact.cov[i * 11].sqrt();
        assert!((got - want).abs() < 1e-6 * sd, "mean {i}: {got} vs {want}");
        assert!(*se < 1e-6 * sd, "the draws do not move the mean: s.e. {se}");
    }
    assert!(covariance_error(fit.linear_response_covariance().unwrap(), &exact.cov, 10) < 1e-6);
    // the linear-response q is then the exact posterior, as Laplace's is
    let q = fit.linear_response_q().unwrap();
    let cov = host(&q.covariance().unwrap());
    assert!(covariance_error(&cov, &exact.cov, 10) < 1e-6);
    assert_eq!(fit.linear_response_draws(5).unwrap().len(), 5);
}

fn data_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data_file(name)).expect("readable")).expect("valid JSON")
}

/// The peers' logistic regression, with NUTS's posterior means and sds of (w, b).
fn peers_logreg() -> (LogisticRegression, Vec<f64>, Vec<f64>) {
    let data = json("logreg.json");
    let rows: Vec<Vec<f64>> = serde_json::from_value(data["X"].clone()).unwrap();
    let y: Vec<f64> = serde_json::from_value(data["y"].clone()).unwrap();
    let (n, d) = (rows.len(), rows[0].len());
    let x = Tensor::from_vec(rows.concat(), (n, d), &Device::Cpu).unwrap();
    let model = LogisticRegression::new(&x, &Tensor::from_vec(y, n, &Device::Cpu).unwrap()).unwrap();
    let nuts = &json("reference_nuts.json")["logreg"];
    let mut mean: Vec<f64> = serde_json::from_value(nuts["w"]["mean"].clone()).unwrap();
    let mut sd: Vec<f64> = serde_json::from_value(nuts["w"]["sd"].clone()).unwrap();
    mean.push(nuts["b"]["mean"].as_f64().unwrap());
    sd.push(nuts["b"]["sd"].as_f64().unwrap());
    (model, mean, sd)
}

/// The ELBO of q on 1,000 fresh draws, with its standard error.
fn elbo_estimate<Q: VariationalFamily>(q: &Q, model: &impl LogJoint) -> (f64, f64) {
    let n = 1_000;
    let eps = Noise::new(1, Stream::Evaluate).standard_normal(n, q.dim(), DType::F64, &Device::Cpu).unwrap();
    let z = q.rsample(&eps).unwrap().detach();
    let ratios = host(&(model.log_joint(&z).unwrap() - q.log_prob_of_noise(&eps).unwrap()).unwrap());
    let mean = ratios.iter().sum::<f64>() / n as f64;
    let var = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, (var / n as f64).sqrt())
}

/// With independent draws μ̂ moves by about σ / √M ≈ 0.18 posterior sd per coordinate (0.41 sd at
/// worst over 21 here, within its reported standard errors), so 0.05 sd needs antithetic pairs,
/// which cancel that first-order error: the means land within 0.02 sd of NUTS's.
#[test]
fn logistic_regression_matches_nuts_in_fewer_gradient_evaluations_than_advi() {
    let (model, nuts_mean, nuts_sd) = peers_logreg();
    let d = nuts_mean.len();
    let fit = Dadvi::new().antithetic(true).fit(&model).unwrap(); // M = 30
    println!("{fit}");
    let mean = host(&fit.fit().mean().unwrap());
    let lr = fit.linear_response_covariance().unwrap();
    for i in 0..d {
        let err = (mean[i] - nuts_mean[i]) / nuts_sd[i];
        assert!(err.abs() < 0.05, "coordinate {i}: {} vs NUTS {} ({err:.3} sd)", mean[i], nuts_mean[i]);
        // linear-response sds match NUTS's too (its sds carry ≈ 1.5 % Monte Carlo error)
        let ratio = lr[i * d + i].sqrt() / nuts_sd[i];
        assert!((ratio - 1.0).abs() < 0.10, "coordinate {i}: linear-response sd {ratio:.3} × NUTS's");
    }
    let Method::Dadvi { lbfgs, hessian_evaluations, draws, .. } = fit.fit().method() else { panic!("not DADVI") };
    let dadvi_evaluations = lbfgs.evaluations + hessian_evaluations;
    // stochastic ADVI at the peers' protocol (mean-field, 1 draw a step, Adam 0.01), until its
    // ELBO on fresh draws reaches DADVI's less two combined standard errors
    let (target, target_se) = (fit.fit().elbo(), fit.fit().elbo_se());
    let advi = Advi::new(MeanField).dtype(DType::F64).steps(usize::MAX).seed(0);
    let mut state = advi.init(&model).unwrap();
    let advi_steps = loop {
        for _ in 0..100 {
            advi.step(&mut state, &model).unwrap();
        }
        let (elbo, se) = elbo_estimate(&state.q, &model);
        if elbo >= target - 2.0 * (se * se + target_se * target_se).sqrt() || state.iteration() >= 20_000 {
            break state.iteration();
        }
    };
    println!(
        "gradient evaluations to ELBO {target:.2}: DADVI {dadvi_evaluations} ({} L-BFGS + {hessian_evaluations} Hessian, \
         {} draws of ∇ log p), stochastic ADVI {advi_steps} (as many draws)",
        lbfgs.evaluations,
        dadvi_evaluations * draws
    );
    assert!(dadvi_evaluations < advi_steps, "DADVI {dadvi_evaluations} vs ADVI {advi_steps} gradient evaluations");
}

/// yᵢ ~ N(a + b, 1) with flat priors on a and b: the posterior is flat along a − b.
fn ridge() -> impl LogJoint {
    let y = Tensor::new(&[[0.3f64, 1.1, 0.7, 1.4]], &Device::Cpu).unwrap();
    Latents::new().real("a", ()).real("b", ()).model(move |v| {
        let mu = (v.get("a")? + v.get("b")?)?.unsqueeze(1)?;
        (y.broadcast_sub(&mu)?.sqr()? * -0.5)?.sum(1)
    })
}

#[test]
fn settings_and_flat_posteriors_fail_with_clear_errors() {
    let (model, exact) = linreg();
    for (dadvi, name) in [
        (Dadvi::new().draws(1), "draws"),
        (Dadvi::new().antithetic(true).draws(7), "draws"),
        (Dadvi::new().init_scale(0.0), "init_scale"),
        (Dadvi::new().tol_grad(-1.0), "tol_grad"),
    ] {
        let err = dadvi.fit(&model).unwrap_err();
        assert!(matches!(&err, Error::InvalidConfig { name: n, .. } if *n == name), "{err}");
    }
    // flat along a − b: the Hessian of the objective is singular in μ(a) − μ(b)
    let err = Dadvi::new().fit(&ridge()).unwrap_err();
    println!("{err}");
    assert!(matches!(err, Error::NotPositiveDefinite { .. }), "{err:?}");
    assert!(err.to_string().contains("μ(a)") && err.to_string().contains("μ(b)"), "{err}");
    // without linear response it returns the (arbitrary) point on the ridge it reached
    assert!(Dadvi::new().linear_response(false).fit(&ridge()).unwrap().mean_se().is_none());
    // init = Map: the first ELBO of the trace is at the MAP, far above the one at μ = 0, σ = 0.1
    let from_map = Dadvi::new().init_map(Map::new()).fit(&model).unwrap();
    let from_zero = Dadvi::new().init_at_mode(false).fit(&model).unwrap();
    assert!(from_map.fit().trace()[0] > from_zero.fit().trace()[0] + 1_000.0);
    assert!(matches!(from_map.start(), DadviStart::Mode { .. }), "{:?}", from_map.start());
    assert_eq!(from_zero.start(), &DadviStart::Point { map_failed: None });
    let (mean, _) = mean_and_var(&from_map);
    assert!((mean[0] - exact.mean[0]).abs() < 3.0 * from_map.mean_se().unwrap()[0]);
    // the default starts at the mode too, with σᵢ = 1/√Hᵢᵢ: the same first ELBO as init_map's
    let by_default = Dadvi::new().fit(&model).unwrap();
    assert_eq!(by_default.fit().trace()[0], from_map.fit().trace()[0]);
    // on the ridge the MAP has no unique mode: the default falls back to the point start, and says why
    match Dadvi::new().linear_response(false).fit(&ridge()).unwrap().start() {
        DadviStart::Point { map_failed: Some(why) } => assert!(why.contains("not positive definite"), "{why}"),
        other => panic!("expected the point start after a failed MAP, got {other:?}"),
    }
}
