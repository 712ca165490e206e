//! `elbo_models::EightSchools`: its log joint against one built from statrs densities (and the
//! peers' values in the workspace's `tests/data/logp_checks.json`), the fused op's gradient against
//! the composition's autodiff and central differences, and a fit's ELBO below the exact log
//! evidence.

use candle_core::Var;
use elbo::prelude::*;
use elbo_models::EightSchools;
use statrs::distribution::{Cauchy, Continuous, Normal};

const Y: [f64; 8] = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0];
const SIGMA: [f64; 8] = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0];
/// log p(y) by one-dimensional quadrature over τ (`../shared/peers/data/eight_schools.json`).
const LOG_EVIDENCE: f64 = -31.31134735229285;

/// log p(y, μ, τ, θ̃) + ln τ (the Jacobian of τ = e^u) from statrs, with u = ln τ.
fn statrs_log_joint(z: &[f64]) -> f64 {
    let (mu, u, tt) = (z[0], z[1], &z[2..]);
    let tau = u.exp();
    // HalfCauchy(5) = 2 × Cauchy(0, 5) on τ > 0
    let mut lp = Normal::new(0.0, 5.0).unwrap().ln_pdf(mu) + (2.0 * Cauchy::new(0.0, 5.0).unwrap().pdf(tau)).ln() + u;
    for ((&t, &y), &s) in tt.iter().zip(&Y).zip(&SIGMA) {
        lp += Normal::new(0.0, 1.0).unwrap().ln_pdf(t) + Normal::new(mu + tau * t, s).unwrap().ln_pdf(y);
    }
    lp
}

/// Draws z [4, 10]: the peers' two check points (τ = 3, 12), a small τ, a large one.
fn points() -> Vec<Vec<f64>> {
    let mut out = vec![
        [vec![4.0, 3f64.ln()], (0..8).map(|j| -0.3 + 0.1 * j as f64).collect()].concat(),
        vec![-1.5, 12f64.ln(), 1.0, -0.5, 0.0, 0.25, -1.0, 0.5, 2.0, -2.0],
    ];
    out.push((0..10).map(|i| if i == 1 { -4.0 } else { ((i as f64) * 0.7).sin() * 3.0 }).collect());
    out.push((0..10).map(|i| if i == 1 { 5.0 } else { ((i as f64) * 1.3).cos() }).collect());
    out
}

fn batch(dtype: DType) -> Tensor {
    let p = points();
    Tensor::from_vec(p.concat(), (p.len(), 10), &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn host(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// Values and the gradient of Σ_s c_s f(z)_s (c differs per draw) on the host.
fn value_and_grad(f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>, z: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let v = Var::from_tensor(z).unwrap();
    let out = f(v.as_tensor()).unwrap();
    let c = Tensor::new(&[1.0f64, -2.0, 0.5, 3.0], &Device::Cpu).unwrap().to_dtype(z.dtype()).unwrap();
    let grads = (&out * &c).unwrap().sum_all().unwrap().backward().unwrap();
    (host(&out), host(grads.get(v.as_tensor()).unwrap()))
}

/// The fused op and the composition against statrs (f64: 1e-13 relative, a few roundings of ~30
/// terms; f32: the draws are rounded to f32, which moves log p by |∇ log p| · 6e-8 |z|, ≲ 1e-5).
#[test]
fn log_joint_matches_statrs() {
    let model = EightSchools::rubin().unwrap();
    assert_eq!((model.dim(), model.schools()), (10, 8));
    let want: Vec<f64> = points().iter().map(|z| statrs_log_joint(z)).collect();
    for (dtype, tol) in [(DType::F64, 1e-13), (DType::F32, 1e-5)] {
        let model = model.to(dtype, &Device::Cpu).unwrap();
        let fused = host(&model.log_joint(&batch(dtype)).unwrap());
        let composite = host(&model.log_joint_composite(&batch(dtype)).unwrap());
        for ((f, c), w) in fused.iter().zip(&composite).zip(&want) {
            assert!((f - w).abs() <= tol * w.abs(), "{dtype:?}: fused {f}, statrs {w}");
            assert!((c - w).abs() <= tol * w.abs(), "{dtype:?}: composite {c}, statrs {w}");
        }
    }
}

/// The peers' log joint (NumPyro, PyMC and Pyro agree to 1e-9) at their two check points: the
/// constrained density, so the Jacobian u = ln τ is taken off.
#[test]
fn log_joint_matches_the_peers() {
    let text =
        std::fs::read_to_string(format!("{}/../tests/data/logp_checks.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let checks: serde_json::Value = serde_json::from_str(&text).unwrap();
    let model = EightSchools::rubin().unwrap();
    for check in checks["eight_schools"].as_array().unwrap() {
        let p = &check["params"];
        let tau = p["tau"].as_f64().unwrap();
        let mut z = vec![p["mu"].as_f64().unwrap(), tau.ln()];
        z.extend(p["theta_tilde"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()));
        let got = host(&model.log_joint(&Tensor::from_vec(z, (1, 10), &Device::Cpu).unwrap()).unwrap())[0] - tau.ln();
        let want = check["log_joint"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12 * want.abs(), "log p = {got}, peers {want}");
    }
}

/// The fused op's analytic gradient against the composition's autodiff (f64 1e-12, f32 1e-5 of
/// the largest entry) and against central differences (h = 1e-5: truncation and rounding ≲ 1e-7).
#[test]
fn gradient_matches_autodiff_and_central_differences() {
    let model = EightSchools::rubin().unwrap();
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let z = batch(dtype);
        let model = model.to(dtype, &Device::Cpu).unwrap();
        let (vf, gf) = value_and_grad(&|z| model.log_joint(z), &z);
        let (vc, gc) = value_and_grad(&|z| model.log_joint_composite(z), &z);
        for (a, b) in vf.iter().zip(&vc) {
            assert!((a - b).abs() <= tol * b.abs(), "{dtype:?} value: fused {a}, composite {b}");
        }
        let scale = gc.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        assert!(scale > 1.0, "{scale}");
        for (i, (a, b)) in gf.iter().zip(&gc).enumerate() {
            assert!((a - b).abs() <= tol * scale, "{dtype:?} gradient {i}: fused {a}, composite {b}");
        }
    }
    let z0 = host(&batch(DType::F64));
    let (_, g) = value_and_grad(&|z| model.log_joint(z), &batch(DType::F64));
    let c = [1.0, -2.0, 0.5, 3.0];
    let f = |zv: &[f64]| -> f64 {
        let v = host(&model.log_joint(&Tensor::from_vec(zv.to_vec(), (4, 10), &Device::Cpu).unwrap()).unwrap());
        v.iter().zip(c).map(|(a, b)| a * b).sum()
    };
    for j in 0..z0.len() {
        let h = 1e-5;
        let (mut up, mut down) = (z0.clone(), z0.clone());
        up[j] += h;
        down[j] -= h;
        let fd = (f(&up) - f(&down)) / (2.0 * h);
        assert!((g[j] - fd).abs() <= 1e-6 * fd.abs().max(1.0), "coordinate {j}: analytic {}, central {fd}", g[j]);
    }
}

/// log p(y) − ELBO = KL(q ‖ p(z | y)) ≥ 0: a full-rank fit's ELBO (on 1,000 fresh draws) is below
/// the exact log evidence, up to three standard errors, and not far below it (the non-centred
/// posterior is nearly Gaussian in (μ, ln τ, θ̃); 1 nat is generous).
#[test]
fn fit_elbo_is_below_the_log_evidence() {
    let model = EightSchools::rubin().unwrap();
    let fit = Advi::new(FullRank).dtype(DType::F64).samples(4).steps(6_000).lr(0.01).seed(3).fit(&model).unwrap();
    let (elbo, se) = (fit.elbo(), fit.elbo_se());
    assert!(elbo < LOG_EVIDENCE + 3.0 * se, "ELBO {elbo} ± {se} above log p(y) = {LOG_EVIDENCE}");
    assert!(elbo > LOG_EVIDENCE - 1.0, "ELBO {elbo} ± {se} far below log p(y) = {LOG_EVIDENCE}");
    let tau = fit.summary().get("tau").unwrap();
    assert!(tau.mean > 0.0 && tau.mean < 20.0, "{tau:?}");
}

/// The data from JSON (the peers' file format), and bad data.
#[test]
fn data_from_json_and_bad_data() {
    let json = r#"{"J": 8, "y": [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0],
                   "sigma": [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]}"#;
    let (a, b) = (EightSchools::from_json(json).unwrap(), EightSchools::rubin().unwrap());
    assert_eq!(host(&a.log_joint(&batch(DType::F64)).unwrap()), host(&b.log_joint(&batch(DType::F64)).unwrap()));
    assert!(EightSchools::from_json(r#"{"y": [1.0]}"#).is_err());
    assert!(EightSchools::from_json("not json").is_err());
    assert!(EightSchools::new(&[1.0, 2.0], &[1.0]).is_err());
    assert!(EightSchools::new(&[1.0], &[0.0]).is_err());
    assert!(EightSchools::new(&[f64::NAN], &[1.0]).is_err());
    assert!(EightSchools::new(&[], &[]).is_err());
    // z of the wrong width
    assert!(b.log_joint(&Tensor::zeros((2, 9), DType::F64, &Device::Cpu).unwrap()).is_err());
}
