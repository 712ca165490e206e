//! The fused GLM log-likelihood (`elbo::glm`) against the composition of candle ops it replaces,
//! in value and gradient (f32 and f64), against central finite differences, and its errors.

use candle_core::{DType, Device, Tensor, Var, D};
use elbo::glm::GlmLikelihood;
use elbo::special::softplus;

const N: usize = 301; // not a multiple of the kernels' 4 lanes
const DIM: usize = 5;
const S: usize = 3;

/// A deterministic design [N, DIM] with entries in about [−2, 2], labels in {0, 1}, and draws
/// z [S, DIM + 1] that give linear predictors of a few units (and one draw with |η| in the tens).
fn data() -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..N * DIM).map(|i| 2.0 * ((i as f64) * 0.731).sin()).collect();
    let y: Vec<f64> = (0..N).map(|i| if ((i as f64) * 1.37).cos() > 0.1 { 1.0 } else { 0.0 }).collect();
    let mut z: Vec<f64> = (0..S * (DIM + 1)).map(|i| ((i as f64) * 0.53).cos()).collect();
    for v in &mut z[2 * (DIM + 1)..] {
        *v *= 9.0;
    }
    (x, y, z)
}

fn tensors(dtype: DType) -> (Tensor, Tensor, Tensor) {
    let (x, y, z) = data();
    let dev = Device::Cpu;
    let t = |v: Vec<f64>, shape: &[usize]| Tensor::from_vec(v, shape, &dev).unwrap().to_dtype(dtype).unwrap();
    (t(x, &[N, DIM]), t(y, &[N]), t(z, &[S, DIM + 1]))
}

/// The unfused composition: η = w Xᵀ + b, Σ_i [y_i η_i − softplus(η_i)].
fn composite(x: &Tensor, y: &Tensor, z: &Tensor) -> candle_core::Result<Tensor> {
    let w = z.narrow(1, 0, DIM)?;
    let b = z.narrow(1, DIM, 1)?;
    let eta = w.matmul(&x.t()?)?.broadcast_add(&b)?;
    (eta.broadcast_mul(&y.unsqueeze(0)?)? - softplus(&eta)?)?.sum(D::Minus1)
}

/// Values [S] and the gradient [S·(DIM+1)] of Σ_s c_s f(z)_s (c = 1, −2, 0.5: the upstream
/// gradient differs per draw), in f64 on the host.
fn value_and_grad(f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>, z: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let v = Var::from_tensor(z).unwrap();
    let out = f(v.as_tensor()).unwrap();
    let c = Tensor::new(&[1.0f64, -2.0, 0.5], &Device::Cpu).unwrap().to_dtype(z.dtype()).unwrap();
    let grads = (&out * &c).unwrap().sum_all().unwrap().backward().unwrap();
    let host = |t: &Tensor| t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    (host(&out), host(grads.get(v.as_tensor()).unwrap()))
}

#[test]
fn fused_matches_the_composition_in_f64_and_f32() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let (x, y, z) = tensors(dtype);
        let lik = GlmLikelihood::bernoulli_logit(&x, &y).unwrap();
        assert_eq!(lik.dim(), DIM + 1);
        let (vf, gf) = value_and_grad(&|z| lik.log_likelihood(z), &z);
        let (vc, gc) = value_and_grad(&|z| composite(&x, &y, z), &z);
        assert_eq!(vf.len(), S);
        for (a, b) in vf.iter().zip(&vc) {
            assert!((a - b).abs() <= tol * b.abs(), "{dtype:?} value: fused {a}, composite {b}");
        }
        let scale = gc.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        assert!(scale > 1.0, "the gradient should not be trivially small: {scale}");
        for (a, b) in gf.iter().zip(&gc) {
            assert!((a - b).abs() <= tol * scale, "{dtype:?} gradient: fused {a}, composite {b}");
        }
    }
}

#[test]
fn gradient_matches_central_differences() {
    let (x, y, z) = tensors(DType::F64);
    let lik = GlmLikelihood::bernoulli_logit(&x, &y).unwrap();
    let (_, g) = value_and_grad(&|z| lik.log_likelihood(z), &z);
    let z0 = z.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let c = [1.0, -2.0, 0.5];
    let f = |zv: &[f64]| -> f64 {
        let t = Tensor::from_vec(zv.to_vec(), (S, DIM + 1), &Device::Cpu).unwrap();
        let v = lik.log_likelihood(&t).unwrap().to_vec1::<f64>().unwrap();
        v.iter().zip(c).map(|(a, b)| a * b).sum()
    };
    for j in 0..z0.len() {
        let h = 1e-5;
        let (mut up, mut down) = (z0.clone(), z0.clone());
        up[j] += h;
        down[j] -= h;
        let fd = (f(&up) - f(&down)) / (2.0 * h);
        assert!(
            (g[j] - fd).abs() <= 1e-6 * fd.abs().max(1.0),
            "coordinate {j}: analytic {}, central difference {fd}",
            g[j]
        );
    }
}

#[test]
fn strided_z_and_extreme_predictors() {
    let (x, y, z) = tensors(DType::F64);
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
}

#[test]
fn bad_inputs_are_errors() {
    let (x, y, z) = tensors(DType::F64);
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
}

/// `LogisticRegression` (the fused op) and the composition as a model follow the same ADVI path:
/// same seed, same draws, so the fitted means agree to rounding after 300 steps.
#[test]
fn logistic_regression_fits_like_the_composition() {
    use elbo::prelude::*;
    use elbo::special::HALF_LN_2PI;
    let (x, y, _) = tensors(DType::F64);
    let fused = elbo_models::LogisticRegression::new(&x, &y).unwrap();
    let composite = from_fn(DIM + 1, move |z: &Tensor| {
        let prior = ((z.sqr()?.sum(D::Minus1)? * -0.5)? - (DIM + 1) as f64 * HALF_LN_2PI)?;
        prior + composite(&x, &y, z)?
    });
    let advi = Advi::new(FullRank).dtype(DType::F64).samples(2).lr(0.02).steps(300).stop(StopRule::MaxSteps).seed(7);
    let (a, b) = (advi.fit(&fused).unwrap(), advi.fit(&composite).unwrap());
    let (ma, mb) = (a.mean().unwrap().to_vec1::<f64>().unwrap(), b.mean().unwrap().to_vec1::<f64>().unwrap());
    for (p, q) in ma.iter().zip(&mb) {
        assert!((p - q).abs() <= 1e-9 * q.abs().max(1.0), "fitted means: fused {p}, composite {q}");
    }
    assert!((a.elbo() - b.elbo()).abs() <= 1e-9 * b.elbo().abs(), "ELBO {} vs {}", a.elbo(), b.elbo());
    // and the fit ran and moved away from the initial mean 0
    assert_eq!(a.iterations(), 300);
    assert!(ma.iter().any(|m| m.abs() > 1e-3), "{ma:?}");
}
