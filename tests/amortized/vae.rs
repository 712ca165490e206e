//! Amortised VI (`elbo::amortized`) on a user's own networks: the closed-form KL against Monte
//! Carlo and the two ELBO forms against each other. Tolerances are 3 standard errors of the Monte
//! Carlo estimate being checked. (The VAE of `elbo-models` is tested in `models/tests/models/vae.rs`,
//! the `vae` example in `tests/examples/vae.rs`.)

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use elbo::amortized::{elbo_terms, standard_normal_log_prob, AmortizedGaussian, DiagGaussian, KlForm};
use elbo::noise::{Noise, Stream};

use crate::common::bars;

/// Mean and standard error of the mean.
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

fn host(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// KL(N(μ, σ²) ‖ N(0, I)) in closed form equals the Monte Carlo mean of log q(z) − log p(z) over
/// 20,000 draws from q, datum by datum, within 3 standard errors.
#[test]
fn analytic_kl_matches_monte_carlo() {
    let dev = Device::Cpu;
    let loc = Tensor::new(&[[0.0f64, 0.5, -1.0], [2.0, -0.3, 0.1], [0.0, 0.0, 0.0]], &dev).unwrap();
    let log_var = Tensor::new(&[[0.0f64, -1.0, 0.7], [-2.0, 0.3, 1.5], [-0.5, 0.5, 0.0]], &dev).unwrap();
    let q = DiagGaussian::new(loc, log_var).unwrap();
    let analytic = host(&q.kl_standard_normal().unwrap());
    let s = 20_000;
    let eps =
        Noise::new(3, Stream::Draws).standard_normal(s * 3, 3, DType::F64, &dev).unwrap().reshape((s, 3, 3)).unwrap();
    let z = q.rsample(&eps).unwrap();
    let log_ratio = (q.log_prob(&z).unwrap() - standard_normal_log_prob(&z).unwrap()).unwrap(); // [S, B]
    let per_datum: Vec<Vec<f64>> =
        host(&log_ratio.t().unwrap().contiguous().unwrap()).chunks(s).map(<[f64]>::to_vec).collect();
    for (b, draws) in per_datum.iter().enumerate() {
        let (mc, se) = mean_se(draws);
        assert!((analytic[b] - mc).abs() < 3.0 * se, "datum {b}: analytic KL {} vs MC {mc} ± {se}", analytic[b]);
    }
    // the per-dimension KLs sum to the total, and q = N(0, I) has KL 0 (the third datum's last dim)
    let per_dim = host(&q.kl_standard_normal_per_dim().unwrap());
    assert!((per_dim[..3].iter().sum::<f64>() - analytic[0]).abs() < 1e-12);
    assert_eq!(per_dim[8], 0.0);
}

/// The ELBO with the closed-form KL and the entropy form (Monte Carlo log p(z) + closed-form H(q))
/// agree within Monte Carlo error on the same network: here a user's own encoder, a candle-nn
/// `seq()` of layers, and a decoder closure.
#[test]
fn elbo_forms_agree_on_a_user_encoder() {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &dev);
    let encoder = candle_nn::seq()
        .add(candle_nn::linear(64, 16, vb.pp("e1")).unwrap())
        .add(candle_nn::Activation::Relu)
        .add(candle_nn::linear(16, 2 * 3, vb.pp("e2")).unwrap());
    let dec = candle_nn::linear(3, 64, vb.pp("d1")).unwrap();
    let decoder = move |x: &Tensor, z: &Tensor| -> candle_core::Result<Tensor> {
        elbo::amortized::bernoulli_logit_log_likelihood(x, &dec.forward(z)?).map_err(candle_core::Error::wrap)
    };
    let family = AmortizedGaussian::new(encoder, 3).unwrap();
    let x = bars(5, 1, DType::F64);
    let q = family.posterior(&x).unwrap();
    let mut noise = Noise::new(4, Stream::Optimise);
    let s = 4_000;
    let mut diffs: Vec<Vec<f64>> = (0..5).map(|_| Vec::with_capacity(s)).collect();
    let (mut sum_a, mut sum_e) = (vec![0.0; 5], vec![0.0; 5]);
    for _ in 0..s {
        let eps = noise.standard_normal(5, 3, DType::F64, &dev).unwrap();
        let a = host(&elbo_terms(&q, &decoder, &x, &eps, KlForm::Analytic).unwrap().elbo().unwrap());
        let e = host(&elbo_terms(&q, &decoder, &x, &eps, KlForm::Entropy).unwrap().elbo().unwrap());
        for b in 0..5 {
            diffs[b].push(e[b] - a[b]);
            sum_a[b] += a[b];
            sum_e[b] += e[b];
        }
    }
    for (b, d) in diffs.iter().enumerate() {
        let (m, se) = mean_se(d);
        assert!(se > 0.0 && m.abs() < 3.0 * se, "datum {b}: entropy form − analytic = {m} ± {se}");
    }
    // S draws at once ([S, B, D]) give the mean of the one-draw estimates
    let eps = Noise::new(4, Stream::Optimise)
        .standard_normal(s * 5, 3, DType::F64, &dev)
        .unwrap()
        .reshape((s, 5, 3))
        .unwrap();
    let batched = host(&elbo_terms(&q, &decoder, &x, &eps, KlForm::Entropy).unwrap().elbo().unwrap());
    for b in 0..5 {
        assert!((batched[b] - sum_e[b] / s as f64).abs() < 1e-9 * sum_e[b].abs() / s as f64 + 1e-9);
    }
    // a wrongly shaped encoder output is an error, not a panic
    let bad = AmortizedGaussian::new(candle_nn::linear(64, 5, vb.pp("bad")).unwrap(), 3).unwrap();
    assert!(bad.posterior(&x).unwrap_err().to_string().contains("needs [5, 6]"));
}
