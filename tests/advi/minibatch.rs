//! Minibatch SVI (Hoffman et al. 2013): the scaled minibatch log joint is an unbiased estimate of
//! the full one, N comes from the data, a minibatch fit reaches the full-data optimum, fits stay
//! seeded, and bad settings are refused.
//!
//! ```text
//! log p̂(x, z) = log p(z) + (N / B) Σ_{i ∈ batch} log p(x_i | z),   E_batch[log p̂] = log p(x, z)
//! ```

use elbo::noise::{Noise, Stream};
use elbo::prelude::*;
use elbo::{Error, MeanFieldGaussian};
use elbo_models::GaussianMixture;

fn gmm(n: usize) -> GaussianMixture {
    GaussianMixture::simulate(3, 2, n, 11).unwrap().0
}

#[test]
fn the_scaled_minibatch_log_joint_is_unbiased() {
    let model = gmm(1_000);
    // three points z: the prior mean, and two random ones
    let z = Noise::new(5, Stream::Draws).standard_normal(3, model.dim(), DType::F64, &Device::Cpu).unwrap();
    let full = model.log_joint(&z).unwrap().to_vec1::<f64>().unwrap();
    let (batches, b) = (2_000, 50);
    let mut rows = Noise::new(9, Stream::Batches);
    let mut sum = [0.0; 3];
    let mut sum_sq = [0.0; 3];
    for _ in 0..batches {
        let r = rows.rows(model.n(), b, &Device::Cpu).unwrap();
        let est = model.log_joint_minibatch(&z, &r).unwrap().to_vec1::<f64>().unwrap();
        for s in 0..3 {
            sum[s] += est[s];
            sum_sq[s] += est[s] * est[s];
        }
    }
    for s in 0..3 {
        let mean = sum[s] / batches as f64;
        let se = ((sum_sq[s] / batches as f64 - mean * mean) / (batches as f64 - 1.0)).sqrt();
        assert!(se > 0.0);
        assert!((mean - full[s]).abs() < 3.0 * se, "draw {s}: mean {mean} ± {se} vs full {}", full[s]);
    }
    // a batch of all the data is the full log joint, exactly up to summation order
    let all = Tensor::arange(0u32, model.n() as u32, &Device::Cpu).unwrap();
    let whole = model.log_joint_minibatch(&z, &all).unwrap().to_vec1::<f64>().unwrap();
    for s in 0..3 {
        assert!((whole[s] - full[s]).abs() < 1e-9 * full[s].abs(), "{} vs {}", whole[s], full[s]);
    }
}

/// The fit both ways from the same k-means++ start; the ELBO of each is evaluated on all data.
fn fit(model: &GaussianMixture, batch: Option<usize>, steps: usize) -> Fit<MeanFieldGaussian> {
    let advi = Advi::new(MeanField)
        .dtype(DType::F64)
        .steps(steps)
        .lr(0.05)
        .lr_schedule(LrSchedule::Exponential { final_lr: 1e-3 })
        .samples(4)
        .init_value("mu", model.initial_means(3))
        .seed(3);
    match batch {
        Some(b) => advi.batch(b).fit(model).unwrap(),
        None => advi.fit(model).unwrap(),
    }
}

#[test]
fn a_minibatch_fit_reaches_the_full_data_elbo() {
    let model = gmm(5_000);
    let full = fit(&model, None, 2_000);
    let mini = fit(&model, Some(250), 2_000);
    let gap = (mini.elbo() - full.elbo()) / full.elbo().abs();
    println!("full {} ± {}, minibatch {} ± {}", full.elbo(), full.elbo_se(), mini.elbo(), mini.elbo_se());
    assert!(gap.abs() < 0.01, "minibatch ELBO {} vs full-data {}", mini.elbo(), full.elbo());
    // the minibatch trace is on the full-data scale (N / B applied), not 20× smaller
    let late: Vec<f64> = mini.trace()[1_500..].to_vec();
    let mean_late = late.iter().sum::<f64>() / late.len() as f64;
    assert!((mean_late / full.elbo() - 1.0).abs() < 0.05, "trace {mean_late} vs ELBO {}", full.elbo());
}

#[test]
fn minibatch_fits_are_seeded() {
    let model = gmm(500);
    let a = fit(&model, Some(50), 100);
    let b = fit(&model, Some(50), 100);
    assert_eq!(a.trace(), b.trace());
    let c =
        Advi::new(MeanField).dtype(DType::F64).steps(100).lr(0.05).samples(4).seed(4).batch(50).fit(&model).unwrap();
    assert_ne!(a.trace(), c.trace());
}

#[test]
fn bad_minibatch_settings_are_refused() {
    let model = gmm(100);
    for b in [0, 101] {
        let e = Advi::new(MeanField).dtype(DType::F64).batch(b).fit(&model).unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { name: "batch", .. }), "{e:?}");
        assert!(e.to_string().contains("N = 100"), "{e}");
    }
    let plain = elbo::from_fn(2, |z: &Tensor| z.sqr()?.sum(1)? * -0.5);
    let e = Advi::new(MeanField).dtype(DType::F64).batch(10).fit(&plain).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { name: "batch", .. }), "{e:?}");
    assert!(e.to_string().contains("data_len"), "{e}");
}
