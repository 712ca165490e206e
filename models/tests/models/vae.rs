//! The VAE (`elbo_models::Vae`, trained by `VaeTrainer` through `elbo::amortized`): the IWAE bound
//! against the ELBO, training on synthetic images, seeded reproducibility, β-weighting, the
//! Gaussian decoder, checkpoints and bad settings. Tolerances are 3 standard errors of the Monte
//! Carlo estimate being checked.

use candle_core::{DType, Device, Tensor};
use elbo::amortized::{KlForm, KlWarmup};
use elbo::noise::{Noise, Stream};
use elbo_models::{Vae, VaeConfig, VaeLikelihood, VaeTrainer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

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

/// N images of 8×8 grey levels: one horizontal and one vertical bar (positions drawn at random) at
/// grey 0.9 on a background of 0.05, plus U(0, 0.05) noise; `[N, 64]`.
fn bars(n: usize, seed: u64, dtype: DType) -> Tensor {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let mut v = Vec::with_capacity(n * 64);
    for _ in 0..n {
        let (r, c) = (rng.random_range(0..8), rng.random_range(0..8));
        for i in 0..8 {
            for j in 0..8 {
                let on = i == r || j == c;
                v.push(if on { 0.9 } else { 0.05 } + rng.random_range(0.0..0.05));
            }
        }
    }
    Tensor::from_vec(v, (n, 64), &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn small_config(latent: usize, dtype: DType) -> VaeConfig {
    VaeConfig { input_dim: 64, hidden_dim: 32, latent_dim: latent, likelihood: VaeLikelihood::Bernoulli, dtype }
}

/// `steps` Adam steps on minibatches of `batch` rows of `x`; the per-step batch ELBOs.
fn train(trainer: &mut VaeTrainer, x: &Tensor, steps: usize, batch: usize, seed: u64) -> Vec<f64> {
    let n = x.dim(0).unwrap();
    let mut rows = Noise::new(seed, Stream::Batches);
    (0..steps)
        .map(|_| {
            let idx = rows.rows(n, batch, &Device::Cpu).unwrap();
            trainer.step(&x.index_select(&idx, 0).unwrap(), 1.0).unwrap().elbo
        })
        .collect()
}

/// On a trained toy model, the importance-weighted bound L_K is above the ELBO on average and grows
/// with K = 1, 10, 100 (each step by more than 3 standard errors of the paired differences).
#[test]
fn iwae_bound_is_above_the_elbo_and_grows_with_k() {
    let x = bars(512, 2, DType::F32);
    let n = 5_000;
    let test = bars(n, 3, DType::F32);
    let vae = Vae::new(small_config(2, DType::F32), 7, &Device::Cpu).unwrap();
    let mut trainer = VaeTrainer::new(vae, 3e-3, 7).unwrap();
    train(&mut trainer, &x, 400, 64, 7);
    let vae = trainer.vae();
    let per_datum = |k: usize| -> Vec<f64> {
        let q = vae.posterior(&test).unwrap();
        // the same stream for every K: the first draw of each datum is shared, so the
        // differences L_K − L_1 are paired
        let eps = Noise::new(11, Stream::Draws).standard_normal(k * n, 2, DType::F32, &Device::Cpu).unwrap();
        let lk =
            elbo::amortized::iw_log_likelihood(&q, vae.decoder(), &test, &eps.reshape((k, n, 2)).unwrap()).unwrap();
        host(&lk)
    };
    let (l1, l10, l100) = (per_datum(1), per_datum(10), per_datum(100));
    let elbo = vae.evaluate(&test, 100, 5).unwrap().elbo;
    let (m1, se1) = mean_se(&l1);
    assert!((m1 - elbo).abs() < 3.0 * se1.max(0.05), "L_1 {m1} ± {se1} is an ELBO estimate, like {elbo}");
    for (lo, hi, name) in [(&l1, &l10, "L_10 − L_1"), (&l10, &l100, "L_100 − L_10")] {
        let d: Vec<f64> = hi.iter().zip(lo.iter()).map(|(h, l)| h - l).collect();
        let (m, se) = mean_se(&d);
        eprintln!("{name} = {m:.3} ± {se:.3}");
        assert!(m > 3.0 * se, "{name} = {m} ± {se}");
    }
    let (m100, _) = mean_se(&l100);
    let (iw, iw_se) = vae.iw_log_likelihood(&test, 100, 64, 9).unwrap();
    assert!(iw > elbo && (iw - m100).abs() < 0.5, "L_100 {iw} ± {iw_se} (and {m100}) vs ELBO {elbo}");
}

/// A small VAE on synthetic bar images improves its test ELBO by a clear margin within 300 steps,
/// and the same seed gives the same trace of batch ELBOs, bit for bit.
#[test]
fn training_improves_the_test_elbo_and_is_reproducible() {
    let x = bars(1024, 4, DType::F32);
    let test = bars(256, 5, DType::F32);
    let run = |seed: u64| {
        let vae = Vae::new(small_config(4, DType::F32), seed, &Device::Cpu).unwrap();
        let before = vae.evaluate(&test, 128, 1).unwrap();
        let mut trainer = VaeTrainer::new(vae, 3e-3, seed).unwrap();
        let trace = train(&mut trainer, &x, 300, 64, seed);
        (before, trainer.vae().evaluate(&test, 128, 1).unwrap(), trace)
    };
    let (before, after, trace) = run(21);
    eprintln!("test ELBO {:.2} → {:.2}, active units {}", before.elbo, after.elbo, after.active_units);
    // 5 nats is 10 times the standard error of either estimate (256 images, σ ≈ 8 nats each)
    let se = (after.elbo_sd / 256f64.sqrt()).max(before.elbo_sd / 256f64.sqrt());
    assert!(after.elbo > before.elbo + 5.0 && 5.0 > 10.0 * se, "test ELBO {} → {} (se {se})", before.elbo, after.elbo);
    assert!(after.active_units >= 2, "the bars' two positions need at least 2 active units: {:?}", after.activity);
    let (_, _, again) = run(21);
    let bits = |t: &[f64]| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&trace), bits(&again), "same seed, different trace");
    let (_, _, other) = run(22);
    assert_ne!(bits(&trace), bits(&other));
}

/// β-weighting: the loss is −(log-lik − β KL); KL warm-up starts at β = 0.
#[test]
fn beta_weights_the_kl_term() {
    let vae = Vae::new(small_config(3, DType::F64), 1, &Device::Cpu).unwrap();
    let x = bars(8, 6, DType::F64);
    let eps = Noise::new(1, Stream::Optimise).standard_normal(8, 3, DType::F64, &Device::Cpu).unwrap();
    let terms = vae.elbo_terms(&x, &eps, KlForm::Analytic).unwrap();
    let ll = host(&terms.log_likelihood.mean_all().unwrap())[0];
    let kl = host(&terms.kl.mean_all().unwrap())[0];
    for beta in [0.0, 0.3, 1.0] {
        let loss = host(&terms.loss(beta).unwrap())[0];
        assert!((loss + ll - beta * kl).abs() < 1e-9 * ll.abs(), "β = {beta}");
    }
    assert!(terms.loss(-1.0).is_err());
    assert_eq!(KlWarmup::new(5.0).unwrap().beta(0, 0, 10), 0.0);
}

/// The Gaussian decoder's log-likelihood is the normal log density summed over pixels.
#[test]
fn gaussian_decoder_is_the_normal_density() {
    let config = VaeConfig { likelihood: VaeLikelihood::Gaussian { scale: 0.3 }, ..small_config(2, DType::F64) };
    let vae = Vae::new(config, 3, &Device::Cpu).unwrap();
    let x = bars(4, 7, DType::F64);
    let z = Tensor::new(&[[0.1f64, -0.2], [1.0, 0.0], [0.0, 0.5], [-1.0, 2.0]], &Device::Cpu).unwrap();
    use elbo::amortized::Decoder;
    let got = host(&vae.decoder().log_likelihood(&x, &z).unwrap());
    let mean = host(&vae.decode_mean(&z).unwrap());
    let xs = host(&x);
    for b in 0..4 {
        let want: f64 = (0..64)
            .map(|p| {
                let u = (xs[b * 64 + p] - mean[b * 64 + p]) / 0.3;
                -0.5 * u * u - 0.3f64.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
            })
            .sum();
        assert!((got[b] - want).abs() < 1e-9 * want.abs(), "{} vs {want}", got[b]);
    }
    let bad = VaeConfig { likelihood: VaeLikelihood::Gaussian { scale: 0.0 }, ..small_config(2, DType::F64) };
    assert!(Vae::new(bad, 3, &Device::Cpu).is_err());
}

/// Weights saved and loaded give the same model; a checkpoint of other sizes is a clear error.
#[test]
fn checkpoints_round_trip() {
    let dir = std::env::temp_dir().join(format!("elbo-vae-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vae.safetensors");
    let a = Vae::new(small_config(3, DType::F32), 1, &Device::Cpu).unwrap();
    a.save(&path).unwrap();
    let mut b = Vae::new(small_config(3, DType::F32), 2, &Device::Cpu).unwrap();
    let x = bars(16, 8, DType::F32);
    assert_ne!(host(&a.reconstruct(&x).unwrap()), host(&b.reconstruct(&x).unwrap()));
    b.load(&path).unwrap();
    assert_eq!(host(&a.reconstruct(&x).unwrap()), host(&b.reconstruct(&x).unwrap()));
    let mut c = Vae::new(small_config(5, DType::F32), 1, &Device::Cpu).unwrap();
    let err = c.load(&path).unwrap_err().to_string();
    assert!(err.contains("same sizes"), "{err}");
    assert!(c.load(&dir.join("missing.safetensors")).unwrap_err().to_string().contains("no such file"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `Vae::new` and the evaluation reject bad sizes and data with errors.
#[test]
fn bad_settings_are_errors() {
    let zero = VaeConfig { hidden_dim: 0, ..small_config(2, DType::F32) };
    assert!(Vae::new(zero, 1, &Device::Cpu).unwrap_err().to_string().contains("hidden_dim"));
    let vae = Vae::new(small_config(2, DType::F32), 1, &Device::Cpu).unwrap();
    let wrong = Tensor::zeros((3, 10), DType::F32, &Device::Cpu).unwrap();
    assert!(vae.evaluate(&wrong, 8, 1).is_err());
    assert!(vae.iw_log_likelihood(&bars(4, 1, DType::F32), 0, 8, 1).is_err());
    assert!(VaeTrainer::new(vae, -1.0, 1).is_err());
}
