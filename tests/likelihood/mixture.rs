//! The fused Gaussian-mixture log-likelihood (`elbo::mixture`) against the composition of candle
//! ops it replaces, in value and gradient (f32 and f64), against central finite differences, on
//! minibatch rows, and `GaussianMixture` (which uses it) against the composition as a model along
//! an ADVI path, on all the data and on minibatches.

use candle_core::{DType, Device, Tensor, Var, D};
use elbo::mixture::MixtureLikelihood;
use elbo::special::HALF_LN_2PI;

const N: usize = 301; // not a multiple of the kernel's 4 lanes, more than one block of 256
const DIM: usize = 3;
const K: usize = 4;
const S: usize = 3;

/// Deterministic points [N, DIM] in about [−3, 3], and draws (log w [S, K], μ [S, K, DIM],
/// log σ [S, K]); the last draw has small scales and means far from some points, so that its
/// responsibilities are near 0 and 1 and ℓ reaches the hundreds.
fn data() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..N * DIM).map(|i| 3.0 * ((i as f64) * 0.731).sin()).collect();
    let log_w: Vec<f64> = (0..S * K).map(|i| -1.4 + 0.5 * ((i as f64) * 1.37).cos()).collect();
    let mu: Vec<f64> = (0..S * K * DIM).map(|i| 2.0 * ((i as f64) * 0.53).cos()).collect();
    let mut log_sigma: Vec<f64> = (0..S * K).map(|i| 0.3 * ((i as f64) * 0.91).sin()).collect();
    for v in &mut log_sigma[2 * K..] {
        *v -= 1.5;
    }
    (x, log_w, mu, log_sigma)
}

fn tensor(v: Vec<f64>, shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

/// (x, log w, μ, log σ) as tensors of `dtype`.
fn tensors(dtype: DType) -> (Tensor, Tensor, Tensor, Tensor) {
    let (x, a, m, b) = data();
    (tensor(x, &[N, DIM], dtype), tensor(a, &[S, K], dtype), tensor(m, &[S, K, DIM], dtype), tensor(b, &[S, K], dtype))
}

/// The unfused composition, straight from the formula on [S, N, K, D]:
/// Σ_i logsumexp_k [log w_k − D log σ_k − (D/2) ln 2π − ‖x_i − μ_k‖² / (2σ_k²)].
fn composite(x: &Tensor, log_w: &Tensor, mu: &Tensor, log_sigma: &Tensor) -> candle_core::Result<Tensor> {
    let d = x.dim(1)? as f64;
    let diff = x.unsqueeze(0)?.unsqueeze(2)?.broadcast_sub(&mu.unsqueeze(1)?)?; // [S, N, K, D]
    let sq = diff.sqr()?.sum(D::Minus1)?; // [S, N, K]
    let sigma2 = (log_sigma * 2.0)?.exp()?.unsqueeze(1)?; // [S, 1, K]
    let per_component = ((log_w - (log_sigma * d)?)? - d * HALF_LN_2PI)?.unsqueeze(1)?;
    let l = (sq.broadcast_div(&(sigma2 * 2.0)?)?.neg()?).broadcast_add(&per_component)?;
    l.log_sum_exp(D::Minus1)?.sum(D::Minus1)
}

type Lik<'a> = dyn Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor> + 'a;

/// Values [S] and the gradients (log w, μ, log σ, flattened) of Σ_s c_s f_s with c = (1, −2, 0.5)
/// (the upstream gradient differs per draw), in f64 on the host.
fn value_and_grad(f: &Lik<'_>, a: &Tensor, m: &Tensor, b: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let vars = [a, m, b].map(|t| Var::from_tensor(t).unwrap());
    let out = f(vars[0].as_tensor(), vars[1].as_tensor(), vars[2].as_tensor()).unwrap();
    let c = tensor(vec![1.0, -2.0, 0.5], &[S], a.dtype());
    let grads = (&out * &c).unwrap().sum_all().unwrap().backward().unwrap();
    let host = |t: &Tensor| t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    (host(&out), vars.iter().flat_map(|v| host(grads.get(v.as_tensor()).unwrap())).collect())
}

fn assert_close(what: &str, fused: &[f64], reference: &[f64], tol: f64) {
    assert_eq!(fused.len(), reference.len(), "{what}: lengths");
    let scale = reference.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    for (i, (a, b)) in fused.iter().zip(reference).enumerate() {
        assert!((a - b).abs() <= tol * scale.max(1.0), "{what} [{i}]: fused {a}, reference {b}");
    }
}

#[test]
fn fused_matches_the_composition_in_f64_and_f32() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let (x, a, m, b) = tensors(dtype);
        let lik = MixtureLikelihood::new(&x).unwrap();
        assert_eq!((lik.n(), lik.d()), (N, DIM));
        let (vf, gf) = value_and_grad(&|a, m, b| lik.log_likelihood(a, m, b), &a, &m, &b);
        let (vc, gc) = value_and_grad(&|a, m, b| composite(&x, a, m, b), &a, &m, &b);
        assert_eq!(vf.len(), S);
        assert!(vc.iter().all(|v| v.abs() > 100.0), "values should be sizeable: {vc:?}");
        for (a, b) in vf.iter().zip(&vc) {
            assert!((a - b).abs() <= tol * b.abs(), "{dtype:?} value: fused {a}, composite {b}");
        }
        assert_close(&format!("{dtype:?} gradient"), &gf, &gc, tol);
        assert!(gc.iter().fold(0.0f64, |m, g| m.max(g.abs())) > 10.0, "the gradient should not be trivially small");
    }
}

#[test]
fn gradient_matches_central_differences() {
    let (x, a, m, b) = tensors(DType::F64);
    let lik = MixtureLikelihood::new(&x).unwrap();
    let (_, g) = value_and_grad(&|a, m, b| lik.log_likelihood(a, m, b), &a, &m, &b);
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let z0 = [flat(&a), flat(&m), flat(&b)].concat();
    let c = [1.0, -2.0, 0.5];
    let f = |z: &[f64]| -> f64 {
        let a = tensor(z[..S * K].to_vec(), &[S, K], DType::F64);
        let m = tensor(z[S * K..S * K * (DIM + 1)].to_vec(), &[S, K, DIM], DType::F64);
        let b = tensor(z[S * K * (DIM + 1)..].to_vec(), &[S, K], DType::F64);
        let v = lik.log_likelihood(&a, &m, &b).unwrap().to_vec1::<f64>().unwrap();
        v.iter().zip(c).map(|(a, b)| a * b).sum()
    };
    assert_eq!(g.len(), z0.len());
    for j in 0..z0.len() {
        let h = 1e-6;
        let (mut up, mut down) = (z0.clone(), z0.clone());
        up[j] += h;
        down[j] -= h;
        let fd = (f(&up) - f(&down)) / (2.0 * h);
        assert!(
            (g[j] - fd).abs() <= 1e-5 * fd.abs().max(1.0),
            "coordinate {j}: analytic {}, central difference {fd}",
            g[j]
        );
    }
}

/// A minibatch (rows with repeats, in any order, u32 or i64) is the composition on those rows, in
/// value and gradient, in both dtypes; all rows in order is the full likelihood.
#[test]
fn rows_are_the_composition_on_those_points() {
    let rows: Vec<u32> = (0..97).map(|i| ((i * 131 + 7) % N) as u32).chain([5, 5, 300]).collect();
    let rows_u32 = Tensor::new(rows.as_slice(), &Device::Cpu).unwrap();
    let rows_i64 = rows_u32.to_dtype(DType::I64).unwrap();
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let (x, a, m, b) = tensors(dtype);
        let lik = MixtureLikelihood::new(&x).unwrap();
        let xb = x.index_select(&rows_u32, 0).unwrap();
        let (vc, gc) = value_and_grad(&|a, m, b| composite(&xb, a, m, b), &a, &m, &b);
        for rows in [&rows_u32, &rows_i64] {
            let (vf, gf) = value_and_grad(&|a, m, b| lik.log_likelihood_rows(a, m, b, rows), &a, &m, &b);
            assert_close(&format!("{dtype:?} minibatch value"), &vf, &vc, tol);
            assert_close(&format!("{dtype:?} minibatch gradient"), &gf, &gc, tol);
        }
        let all = Tensor::arange(0u32, N as u32, &Device::Cpu).unwrap();
        let full = lik.log_likelihood(&a, &m, &b).unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
        let by_rows =
            lik.log_likelihood_rows(&a, &m, &b, &all).unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(full, by_rows);
        // no rows: no points, zero log-likelihood
        let none = Tensor::zeros(0, DType::U32, &Device::Cpu).unwrap();
        let empty = lik.log_likelihood_rows(&a, &m, &b, &none).unwrap().to_dtype(DType::F64).unwrap();
        assert_eq!(empty.to_vec1::<f64>().unwrap(), vec![0.0; S]);
    }
}

/// Strided inputs give the same values; a point thousands of σ from every mean and a weight of
/// e^(−700) stay finite and agree with the composition.
#[test]
fn strided_inputs_and_extreme_points() {
    let (x, a, m, b) = tensors(DType::F64);
    let lik = MixtureLikelihood::new(&x).unwrap();
    let mt = m.transpose(0, 2).unwrap().contiguous().unwrap().transpose(0, 2).unwrap();
    assert!(!mt.is_contiguous());
    assert_eq!(
        lik.log_likelihood(&a, &mt, &b).unwrap().to_vec1::<f64>().unwrap(),
        lik.log_likelihood(&a, &m, &b).unwrap().to_vec1::<f64>().unwrap()
    );
    // one far point in D = 2, two components, one of weight e^(−700)
    let x1 = Tensor::new(&[[3000.0f64, -4000.0], [0.5, 0.5]], &Device::Cpu).unwrap();
    let lik1 = MixtureLikelihood::new(&x1).unwrap();
    let a1 = Tensor::new(&[[0.0f64, -700.0]], &Device::Cpu).unwrap();
    let m1 = Tensor::new(&[[[0.0f64, 0.0], [1.0, 1.0]]], &Device::Cpu).unwrap();
    let b1 = Tensor::new(&[[0.0f64, 0.5]], &Device::Cpu).unwrap();
    let (vf, gf) = {
        let vars = [&a1, &m1, &b1].map(|t| Var::from_tensor(t).unwrap());
        let out = lik1.log_likelihood(vars[0].as_tensor(), vars[1].as_tensor(), vars[2].as_tensor()).unwrap();
        let g = out.sum_all().unwrap().backward().unwrap();
        let host = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        (host(&out), vars.iter().flat_map(|v| host(g.get(v.as_tensor()).unwrap())).collect::<Vec<_>>())
    };
    let vc = composite(&x1, &a1, &m1, &b1).unwrap().to_vec1::<f64>().unwrap();
    assert!(vf[0].is_finite() && gf.iter().all(|g| g.is_finite()), "{vf:?} {gf:?}");
    assert!((vf[0] - vc[0]).abs() <= 1e-12 * vc[0].abs(), "{} vs {}", vf[0], vc[0]);
    // the far point belongs to component 1 (σ = e^0.5 is wider): ∂/∂a_0 is the near point's
    // responsibility for component 0 only, and the far point pulls μ_1 with (x − μ)/σ²
    let gmu1 = (3000.0 - 1.0) / (1.0f64).exp();
    assert!((gf[2 + 2] - gmu1).abs() < 1e-6 * gmu1, "∂/∂μ_10 = {}, expected ≈ {gmu1}", gf[4]);
}

#[test]
fn bad_inputs_are_errors() {
    let (x, a, m, b) = tensors(DType::F64);
    let lik = MixtureLikelihood::new(&x).unwrap();
    assert!(lik.log_likelihood(&a, &m, &b).is_ok());
    // shapes: K disagreeing, D disagreeing, rank, no components
    assert!(lik.log_likelihood(&a.narrow(1, 0, K - 1).unwrap(), &m, &b).is_err());
    assert!(lik.log_likelihood(&a, &m.narrow(2, 0, DIM - 1).unwrap(), &b).is_err());
    assert!(lik.log_likelihood(&a, &m, &b.narrow(0, 0, S - 1).unwrap()).is_err());
    assert!(lik.log_likelihood(&a.flatten_all().unwrap(), &m, &b).is_err());
    let none = a.narrow(1, 0, 0).unwrap();
    assert!(lik.log_likelihood(&none, &m.narrow(1, 0, 0).unwrap(), &none).is_err());
    // dtypes
    assert!(lik.log_likelihood(&a.to_dtype(DType::F32).unwrap(), &m, &b).is_err());
    // rows out of range, negative, 2-D, float
    let rows = |v: &[i64]| Tensor::new(v, &Device::Cpu).unwrap();
    assert!(lik.log_likelihood_rows(&a, &m, &b, &rows(&[0, N as i64])).is_err());
    assert!(lik.log_likelihood_rows(&a, &m, &b, &rows(&[0, -1])).is_err());
    assert!(lik.log_likelihood_rows(&a, &m, &b, &rows(&[0, 1]).unsqueeze(0).unwrap()).is_err());
    assert!(lik.log_likelihood_rows(&a, &m, &b, &rows(&[0, 1]).to_dtype(DType::F64).unwrap()).is_err());
    // the data: 1-D, empty, integer
    assert!(MixtureLikelihood::new(&x.flatten_all().unwrap()).is_err());
    assert!(MixtureLikelihood::new(&Tensor::zeros((0, DIM), DType::F64, &Device::Cpu).unwrap()).is_err());
    assert!(MixtureLikelihood::new(&Tensor::zeros((2, DIM), DType::U32, &Device::Cpu).unwrap()).is_err());
}

mod model {
    use super::*;
    use elbo::dist::{Dirichlet, Distribution, LogNormal, Normal};
    use elbo::prelude::*;
    use elbo_models::GaussianMixture;

    /// `GaussianMixture` as it was before the fused op: the same latents and priors, the
    /// likelihood as a composition of candle ops (‖x − μ‖² through a batched matmul).
    struct Composite {
        x: Tensor,
        x_sq: Tensor,
        latents: Latents,
    }

    impl Composite {
        fn new(x: &Tensor, k: usize) -> Self {
            let d = x.dim(1).unwrap();
            let latents = Latents::new().simplex("w", [k]).real("mu", [k, d]).positive("sigma", [k]);
            Composite { x: x.clone(), x_sq: x.sqr().unwrap().sum(1).unwrap(), latents }
        }

        fn likelihood(&self, v: &Values<'_>, x: &Tensor, x_sq: &Tensor) -> candle_core::Result<Tensor> {
            let (w, mu, sigma) = (v.get("w")?, v.get("mu")?, v.get("sigma")?);
            let d = x.dim(1)? as f64;
            let cross = x.broadcast_matmul(&mu.transpose(1, 2)?)?;
            let mu_sq = mu.sqr()?.sum(D::Minus1)?.unsqueeze(1)?;
            let sq = (cross * -2.0)?.broadcast_add(&x_sq.unsqueeze(0)?.unsqueeze(2)?)?.broadcast_add(&mu_sq)?;
            let log_sigma = sigma.log()?;
            let per_component = (w.log()? - (log_sigma * d)?)?.unsqueeze(1)?;
            let inv_var = (sigma.sqr()?.recip()? * -0.5)?.unsqueeze(1)?;
            let log_n = (sq.broadcast_mul(&inv_var)?.broadcast_add(&per_component)? - d * HALF_LN_2PI)?;
            log_n.log_sum_exp(D::Minus1)?.sum(D::Minus1)
        }
    }

    impl Model for Composite {
        fn latents(&self) -> &Latents {
            &self.latents
        }
        fn log_density(&self, v: &Values<'_>) -> candle_core::Result<Tensor> {
            self.log_prior(v)? + self.likelihood(v, &self.x, &self.x_sq)?
        }
        fn data_len(&self) -> Option<usize> {
            Some(self.x.dim(0).unwrap())
        }
        fn log_prior(&self, v: &Values<'_>) -> candle_core::Result<Tensor> {
            let w = Dirichlet::new(1.0)?.log_prob(v.get("w")?)?;
            let mu = Normal::new(0.0, 10.0)?.log_prob(v.get("mu")?)?.flatten_from(1)?.sum(1)?;
            let sigma = LogNormal::new(0.0, 1.0)?.log_prob(v.get("sigma")?)?.sum(1)?;
            (w + mu)? + sigma
        }
        fn log_likelihood(&self, v: &Values<'_>, rows: &Tensor) -> candle_core::Result<Tensor> {
            self.likelihood(v, &self.x.index_select(rows, 0)?, &self.x_sq.index_select(rows, 0)?)
        }
    }

    /// Fits both models with the same seed (the same draws) and compares the fitted means and ELBOs.
    fn same_path<F: Family + Clone>(family: F, batch: Option<usize>) {
        let (fused, _) = GaussianMixture::simulate(3, 2, 400, 3).unwrap();
        let composite = Composite::new(fused.x(), 3);
        // from the point start: Pathfinder's L-BFGS would amplify the two models' rounding differences
        let mut advi = Advi::new(family)
            .dtype(DType::F64)
            .init_pathfinder(None)
            .samples(2)
            .lr(0.02)
            .steps(300)
            .stop(StopRule::MaxSteps)
            .seed(7)
            .init_value("mu", fused.initial_means(0));
        if let Some(b) = batch {
            advi = advi.batch(b);
        }
        let (a, b) = (advi.fit(&fused).unwrap(), advi.fit(&composite).unwrap());
        let (ma, mb) = (a.mean().unwrap().to_vec1::<f64>().unwrap(), b.mean().unwrap().to_vec1::<f64>().unwrap());
        for (p, q) in ma.iter().zip(&mb) {
            assert!((p - q).abs() <= 1e-9 * q.abs().max(1.0), "{batch:?}: fitted means: fused {p}, composite {q}");
        }
        assert!((a.elbo() - b.elbo()).abs() <= 1e-9 * b.elbo().abs(), "{batch:?}: ELBO {} vs {}", a.elbo(), b.elbo());
        assert_eq!(a.iterations(), 300);
        // the fit moved from its start
        let start = fused.initial_means(0);
        let moved = (0..6).map(|j| (ma[2 + j] - start[j]).abs()).fold(0.0, f64::max);
        assert!(moved > 1e-3, "means did not move: {ma:?}");
    }

    /// `GaussianMixture` (the fused op) and the composition follow the same ADVI path: same seed,
    /// same draws, so the fitted means and the ELBO agree to rounding after 300 steps.
    #[test]
    fn gaussian_mixture_fits_like_the_composition() {
        same_path(FullRank, None);
        same_path(MeanField, None);
    }

    /// The same on minibatches of 64 points (the fused op's rows).
    #[test]
    fn gaussian_mixture_minibatches_like_the_composition() {
        same_path(MeanField, Some(64));
    }
}
