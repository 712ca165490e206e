//! The fused GLM log-likelihoods (`elbo::glm`: Bernoulli-logit, Normal-identity, Poisson-log, with
//! and without an intercept, alone and with normal priors on the coefficients) against the composition of candle ops they replace, in value and
//! gradient (f32 and f64), against central finite differences, and their errors.

use candle_core::{DType, Device, Tensor, Var, D};
use elbo::glm::{Glm, GlmLikelihood};
use elbo::special::{softplus, HALF_LN_2PI};

const N: usize = 301; // not a multiple of the kernels' 4 lanes
const DIM: usize = 5;
const S: usize = 3;
const NOISE_SD: f64 = 1.7;

const GLMS: [Glm; 3] = [Glm::BernoulliLogit, Glm::NormalIdentity { sd: NOISE_SD }, Glm::PoissonLog];

/// A deterministic design [N, DIM] with entries in about [−2, 2], responses for `glm` (labels in
/// {0, 1}; reals in about [−6, 6]; counts 0..7), and draws z [S, DIM + 1] that give linear
/// predictors of a few units (for the Bernoulli and the Normal, one draw with |η| in the tens; the
/// Poisson's e^η stays below e^12 so that f32 holds it).
fn data(glm: Glm) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..N * DIM).map(|i| 2.0 * ((i as f64) * 0.731).sin()).collect();
    let y: Vec<f64> = match glm {
        Glm::BernoulliLogit => (0..N).map(|i| if ((i as f64) * 1.37).cos() > 0.1 { 1.0 } else { 0.0 }).collect(),
        Glm::NormalIdentity { .. } => (0..N).map(|i| 6.0 * ((i as f64) * 1.37).cos()).collect(),
        _ => (0..N).map(|i| (i * 7 % 8) as f64).collect(),
    };
    let mut z: Vec<f64> = (0..S * (DIM + 1)).map(|i| ((i as f64) * 0.53).cos()).collect();
    if glm != Glm::PoissonLog {
        for v in &mut z[2 * (DIM + 1)..] {
            *v *= 9.0;
        }
    }
    (x, y, z)
}

fn tensors(glm: Glm, dtype: DType) -> (Tensor, Tensor, Tensor) {
    let (x, y, z) = data(glm);
    let dev = Device::Cpu;
    let t = |v: Vec<f64>, shape: &[usize]| Tensor::from_vec(v, shape, &dev).unwrap().to_dtype(dtype).unwrap();
    (t(x, &[N, DIM]), t(y, &[N]), t(z, &[S, DIM + 1]))
}

/// The fused likelihood, with the intercept or without (then z is the first DIM columns).
fn fused(glm: Glm, x: &Tensor, y: &Tensor, intercept: bool) -> GlmLikelihood {
    let lik = GlmLikelihood::new(glm, x, y).unwrap();
    if intercept {
        lik
    } else {
        lik.without_intercept()
    }
}

/// The unfused composition: η = w Xᵀ (+ b), Σ_i ℓ(y_i, η_i) with every constant (ln y! from statrs).
fn composite(glm: Glm, x: &Tensor, y: &Tensor, z: &Tensor) -> candle_core::Result<Tensor> {
    let mut eta = z.narrow(1, 0, DIM)?.matmul(&x.t()?)?;
    if z.dim(1)? > DIM {
        eta = eta.broadcast_add(&z.narrow(1, DIM, 1)?)?;
    }
    let y = y.unsqueeze(0)?;
    match glm {
        Glm::BernoulliLogit => (eta.broadcast_mul(&y)? - softplus(&eta)?)?.sum(D::Minus1),
        Glm::NormalIdentity { sd } => {
            let u = (eta.broadcast_sub(&y)? / sd)?;
            (u.sqr()?.sum(D::Minus1)? * -0.5)? - N as f64 * (sd.ln() + HALF_LN_2PI)
        }
        _ => {
            let counts = y.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
            let ln_factorials: f64 = counts.iter().map(|&c| statrs::function::gamma::ln_gamma(c + 1.0)).sum();
            (eta.broadcast_mul(&y)? - eta.exp()?)?.sum(D::Minus1)? - ln_factorials
        }
    }
}

const PRIOR_SD: f64 = 2.5;

/// The fused likelihood, or with `prior` the fused log joint with N(0, prior²) priors.
fn fused_log_joint(lik: &GlmLikelihood, z: &Tensor, prior: Option<f64>) -> candle_core::Result<Tensor> {
    match prior {
        Some(sd) => lik.log_joint_normal_prior(z, sd),
        None => lik.log_likelihood(z),
    }
}

/// The composition, plus Σ_k log N(z_k; 0, prior²) as its own candle ops.
fn composite_log_joint(
    glm: Glm,
    x: &Tensor,
    y: &Tensor,
    z: &Tensor,
    prior: Option<f64>,
) -> candle_core::Result<Tensor> {
    let likelihood = composite(glm, x, y, z)?;
    match prior {
        Some(sd) => {
            let k = z.dim(1)? as f64;
            likelihood + ((z.sqr()?.sum(D::Minus1)? * (-0.5 / (sd * sd)))? - k * (sd.ln() + HALF_LN_2PI))?
        }
        None => Ok(likelihood),
    }
}

/// Values [S] and the gradient [S·k] of Σ_s c_s f(z)_s (c = 1, −2, 0.5: the upstream gradient
/// differs per draw), in f64 on the host.
fn value_and_grad(f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>, z: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let v = Var::from_tensor(z).unwrap();
    let out = f(v.as_tensor()).unwrap();
    let c = Tensor::new(&[1.0f64, -2.0, 0.5], &Device::Cpu).unwrap().to_dtype(z.dtype()).unwrap();
    let grads = (&out * &c).unwrap().sum_all().unwrap().backward().unwrap();
    let host = |t: &Tensor| t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    (host(&out), host(grads.get(v.as_tensor()).unwrap()))
}

/// Every GLM, with and without the intercept, in f64 (agreement to rounding: 1e-12 relative) and
/// f32 (the composition rounds each of its ~N terms to f32, the fused op sums in f64: about
/// √N · 6e-8 ≈ 1e-6 relative, bounded by 1e-5).
#[test]
fn fused_matches_the_composition_in_f64_and_f32() {
    for glm in GLMS {
        for intercept in [true, false] {
            for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
                let (x, y, z) = tensors(glm, dtype);
                let z = if intercept { z } else { z.narrow(1, 0, DIM).unwrap().contiguous().unwrap() };
                let lik = fused(glm, &x, &y, intercept);
                assert_eq!((lik.dim(), lik.has_intercept(), lik.glm()), (DIM + usize::from(intercept), intercept, glm));
                for prior in [None, Some(PRIOR_SD)] {
                    let (vf, gf) = value_and_grad(&|z| fused_log_joint(&lik, z, prior), &z);
                    let (vc, gc) = value_and_grad(&|z| composite_log_joint(glm, &x, &y, z, prior), &z);
                    let case = format!("{glm:?}, intercept {intercept}, {dtype:?}, prior {prior:?}");
                    assert_eq!(vf.len(), S);
                    for (a, b) in vf.iter().zip(&vc) {
                        assert!((a - b).abs() <= tol * b.abs(), "{case} value: fused {a}, composite {b}");
                    }
                    let scale = gc.iter().fold(0.0f64, |m, g| m.max(g.abs()));
                    assert!(scale > 1.0, "{case}: the gradient should not be trivially small: {scale}");
                    for (a, b) in gf.iter().zip(&gc) {
                        assert!((a - b).abs() <= tol * scale, "{case} gradient: fused {a}, composite {b}");
                    }
                }
            }
        }
    }
}

/// Central differences with h = 1e-5: truncation error h² f‴/6 (≲ 1e-6 relative here) plus rounding
/// about 2ε Σ|f| / h (up to ~1e-7 with the Poisson's e^η terms), both in the bound.
#[test]
fn gradient_matches_central_differences() {
    for glm in GLMS {
        for intercept in [true, false] {
            let (x, y, z) = tensors(glm, DType::F64);
            let k = DIM + usize::from(intercept);
            let z = z.narrow(1, 0, k).unwrap().contiguous().unwrap();
            let lik = fused(glm, &x, &y, intercept);
            for prior in [None, Some(PRIOR_SD)] {
                let (v, g) = value_and_grad(&|z| fused_log_joint(&lik, z, prior), &z);
                let z0 = z.flatten_all().unwrap().to_vec1::<f64>().unwrap();
                let c = [1.0, -2.0, 0.5];
                let f = |zv: &[f64]| -> f64 {
                    let t = Tensor::from_vec(zv.to_vec(), (S, k), &Device::Cpu).unwrap();
                    let v = fused_log_joint(&lik, &t, prior).unwrap().to_vec1::<f64>().unwrap();
                    v.iter().zip(c).map(|(a, b)| a * b).sum()
                };
                let h = 1e-5;
                let rounding = 1e-16 * v.iter().map(|v| v.abs()).sum::<f64>() * 2.0 / h;
                for j in 0..z0.len() {
                    let (mut up, mut down) = (z0.clone(), z0.clone());
                    up[j] += h;
                    down[j] -= h;
                    let fd = (f(&up) - f(&down)) / (2.0 * h);
                    assert!(
                    (g[j] - fd).abs() <= 1e-6 * fd.abs().max(1.0) + rounding,
                    "{glm:?}, intercept {intercept}, prior {prior:?}, coordinate {j}: analytic {}, central difference {fd}",
                    g[j]
                );
                }
            }
        }
    }
}

#[test]
fn strided_z_and_extreme_predictors() {
    let (x, y, z) = tensors(Glm::BernoulliLogit, DType::F64);
    let lik = GlmLikelihood::bernoulli_logit(&x, &y).unwrap();
    // z as a transposed (non-contiguous) view gives the same values
    let zt = z.t().unwrap().contiguous().unwrap().t().unwrap();
    assert!(!zt.is_contiguous());
    assert_eq!(
        lik.log_likelihood(&zt).unwrap().to_vec1::<f64>().unwrap(),
        lik.log_likelihood(&z).unwrap().to_vec1::<f64>().unwrap()
    );
    // |η| = 800: finite, and exact. One point x = 1, y = 1 and y = 0.
    let x1 = Tensor::new(&[[1.0f64], [1.0]], &Device::Cpu).unwrap();
    let y1 = Tensor::new(&[1.0f64, 0.0], &Device::Cpu).unwrap();
    let lik1 = GlmLikelihood::bernoulli_logit(&x1, &y1).unwrap();
    let z1 = Var::new(&[[800.0f64, 0.0], [-800.0, 0.0]], &Device::Cpu).unwrap();
    let out = lik1.log_likelihood(z1.as_tensor()).unwrap();
    // η = 800: log σ(800) + log σ(−800) = 0 − 800; η = −800: the same by symmetry
    assert_eq!(out.to_vec1::<f64>().unwrap(), vec![-800.0, -800.0]);
    let g = out.sum_all().unwrap().backward().unwrap();
    let g = g.get(z1.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
    // r = (1 − σ(η)) + (0 − σ(η)): −1 at η = 800, +1 at η = −800 (x = 1, so ∂w = ∂b)
    assert_eq!(g, vec![vec![-1.0, -1.0], vec![1.0, 1.0]]);
    // Poisson: e^η overflows f64 above η ≈ 709.78; the value is then −∞ (as with libm's exp), not
    // a wrapped finite number, so an ADVI step sees a non-finite log joint. Just below, finite.
    let y3 = Tensor::new(&[3.0f64, 3.0], &Device::Cpu).unwrap();
    let pois = GlmLikelihood::poisson_log(&x1, &y3).unwrap().without_intercept();
    let lp = |eta: f64| {
        pois.log_likelihood(&Tensor::new(&[[eta]], &Device::Cpu).unwrap()).unwrap().to_vec1::<f64>().unwrap()[0]
    };
    assert_eq!(lp(710.0), f64::NEG_INFINITY);
    let below = lp(709.0);
    let want = 2.0 * (3.0 * 709.0 - 709f64.exp() - 6f64.ln());
    assert!(below.is_finite() && (below / want - 1.0).abs() < 1e-13, "{below} vs {want}");
}

#[test]
fn bad_inputs_are_errors() {
    let (x, y, z) = tensors(Glm::BernoulliLogit, DType::F64);
    let lik = GlmLikelihood::bernoulli_logit(&x, &y).unwrap();
    // z with the wrong width, rank or dtype
    assert!(lik.log_likelihood(&z.narrow(1, 0, DIM).unwrap()).is_err());
    assert!(lik.log_likelihood(&z.flatten_all().unwrap()).is_err());
    assert!(lik.log_likelihood(&z.to_dtype(DType::F32).unwrap()).is_err());
    // the data: y of the wrong length, mixed dtypes, a 1-D design, an empty design
    assert!(GlmLikelihood::bernoulli_logit(&x, &y.narrow(0, 0, N - 1).unwrap()).is_err());
    assert!(GlmLikelihood::bernoulli_logit(&x, &y.to_dtype(DType::F32).unwrap()).is_err());
    assert!(GlmLikelihood::bernoulli_logit(&y, &y).is_err());
    let empty = Tensor::zeros((0, DIM), DType::F64, &Device::Cpu).unwrap();
    let none = Tensor::zeros(0, DType::F64, &Device::Cpu).unwrap();
    assert!(GlmLikelihood::bernoulli_logit(&empty, &none).is_err());
    // without the intercept z has DIM columns, not DIM + 1
    assert!(lik.clone().without_intercept().log_likelihood(&z).is_err());
    // the Normal's sd must be positive and finite; Poisson counts non-negative whole numbers
    for sd in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(GlmLikelihood::normal_identity(&x, &y, sd).is_err(), "sd = {sd}");
    }
    for bad in [-1.0, 0.5, f64::NAN] {
        let head = Tensor::new(&[bad], &Device::Cpu).unwrap();
        let y_bad = Tensor::cat(&[&head, &y.narrow(0, 1, N - 1).unwrap()], 0).unwrap();
        assert!(GlmLikelihood::poisson_log(&x, &y_bad).is_err(), "y[0] = {bad}");
    }
    assert!(GlmLikelihood::poisson_log(&x, &y).is_ok());
    // the prior's sd too
    for sd in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(lik.log_joint_normal_prior(&z, sd).is_err(), "prior sd = {sd}");
    }
}

/// `LogisticRegression` (the fused op) and the composition as a model follow the same ADVI path:
/// same seed, same draws, so the fitted means agree to rounding after 300 steps.
#[test]
fn logistic_regression_fits_like_the_composition() {
    use elbo::prelude::*;
    use elbo::special::HALF_LN_2PI;
    let (x, y, _) = tensors(Glm::BernoulliLogit, DType::F64);
    let fused = elbo_models::LogisticRegression::new(&x, &y).unwrap();
    let composite = from_fn(DIM + 1, move |z: &Tensor| {
        let prior = ((z.sqr()?.sum(D::Minus1)? * -0.5)? - (DIM + 1) as f64 * HALF_LN_2PI)?;
        prior + composite(Glm::BernoulliLogit, &x, &y, z)?
    });
    same_path(FullRank, &fused, &composite);
}

/// 300 seeded ADVI steps on the fused model and on its composition give the same fitted means
/// and ELBO (to 1e-9), and the fit moved away from the initial mean 0.
fn same_path<F: elbo::Family>(family: F, fused: &impl elbo::LogJoint, composite: &impl elbo::LogJoint) {
    use elbo::prelude::*;
    // from the point start: Pathfinder's L-BFGS would amplify the two models' rounding differences
    let advi = Advi::new(family)
        .dtype(DType::F64)
        .init_pathfinder(None)
        .samples(2)
        .lr(0.02)
        .steps(300)
        .stop(StopRule::MaxSteps)
        .seed(7);
    let (a, b) = (advi.fit(fused).unwrap(), advi.fit(composite).unwrap());
    let (ma, mb) = (a.mean().unwrap().to_vec1::<f64>().unwrap(), b.mean().unwrap().to_vec1::<f64>().unwrap());
    for (p, q) in ma.iter().zip(&mb) {
        assert!((p - q).abs() <= 1e-9 * q.abs().max(1.0), "fitted means: fused {p}, composite {q}");
    }
    assert!((a.elbo() - b.elbo()).abs() <= 1e-9 * b.elbo().abs(), "ELBO {} vs {}", a.elbo(), b.elbo());
    assert_eq!(a.iterations(), 300);
    assert!(ma.iter().any(|m| m.abs() > 1e-3), "{ma:?}");
}

/// `LinearRegression` (the fused Normal op without an intercept) and its former composition
/// (prior + Σ −½ ((y − X w)/σ)² − N (ln σ + ½ ln 2π)) follow the same ADVI path, both families.
#[test]
fn linear_regression_fits_like_the_composition() {
    use elbo::prelude::*;
    let glm = Glm::NormalIdentity { sd: NOISE_SD };
    let (x, y, _) = tensors(glm, DType::F64);
    let fused = elbo_models::LinearRegression::new(&x, &y, 10.0, NOISE_SD).unwrap();
    let composite = from_fn(DIM, move |w: &Tensor| {
        let prior = ((w.sqr()?.sum(D::Minus1)? * (-0.5 / 100.0))? - DIM as f64 * (10f64.ln() + HALF_LN_2PI))?;
        prior + composite(glm, &x, &y, w)?
    });
    same_path(MeanField, &fused, &composite);
    same_path(FullRank, &fused, &composite);
}
