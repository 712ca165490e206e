//! The Gaussian mixture on the peers' data (`../shared/peers/data/gmm.json`, N = 1000, and
//! `gmm_large.json`, N = 100,000; K = 3, D = 2), f64, Adam(0.01), one draw per step, as the peers'
//! protocol runs it:
//!
//! - `gmm-step`: µs per ADVI step for both families on both sizes, and on gmm_large with minibatches
//!   of 1,000 points;
//! - `gmm-fit`: a whole fit as a user runs it (init with k-means++ means, 5,000 steps on gmm; 2,000
//!   minibatch steps on gmm_large), which is the time to the converged answer;
//! - `gmm-parts`: where a full-rank step's time goes on both sizes: the mixture likelihood alone
//!   (`elbo::mixture`, forward and backward), the model's log joint (forward; forward and backward
//!   to z), and the whole ADVI step.
//!
//! `benches/compare_numpyro.py --model gmm` runs NumPyro on the same data in the same run and sets
//! the two side by side.

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use elbo::prelude::*;
use elbo_models::GaussianMixture;

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The peers' data set `name` (`gmm` or `gmm_large`), or a simulated one of the same size.
fn data(name: &str, n: usize) -> GaussianMixture {
    let path = common::peers_data(&format!("{name}.json"));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
            let rows: Vec<Vec<f64>> = serde_json::from_value(json["x"].clone()).expect("x is a matrix");
            let (n, d) = (rows.len(), rows[0].len());
            let x = Tensor::from_vec(rows.concat(), (n, d), &Device::Cpu).unwrap();
            GaussianMixture::new(&x, json["K"].as_u64().unwrap() as usize).unwrap()
        }
        Err(_) => {
            eprintln!("{} not found: simulating {n} points (K = 3, D = 2)", path.display());
            GaussianMixture::simulate(3, 2, n, 1).unwrap().0
        }
    }
}

fn advi<F: Family>(family: F, model: &GaussianMixture, steps: usize) -> Advi<F> {
    Advi::new(family)
        .stop(StopRule::MaxSteps)
        .dtype(DType::F64)
        .lr(0.01)
        .steps(steps)
        .init_value("mu", model.initial_means(0))
}

fn step<F: Family>(
    g: &mut BenchmarkGroup<criterion::measurement::WallTime>,
    id: &str,
    advi: Advi<F>,
    model: &GaussianMixture,
) {
    let mut state = advi.init(model).unwrap();
    g.bench_function(id, |b| b.iter(|| advi.step(&mut state, model).unwrap()));
}

fn steps(c: &mut Criterion) {
    elbo::runtime::default_threads(); // before reading the data sizes candle's thread pool
    let (small, large) = (data("gmm", 1_000), data("gmm_large", 100_000));
    let mut g = c.benchmark_group("gmm-step");
    step(&mut g, "gmm/meanfield", advi(MeanField, &small, usize::MAX), &small);
    step(&mut g, "gmm/fullrank", advi(FullRank, &small, usize::MAX), &small);
    g.sample_size(20);
    step(&mut g, "gmm_large/meanfield", advi(MeanField, &large, usize::MAX), &large);
    step(&mut g, "gmm_large/fullrank", advi(FullRank, &large, usize::MAX), &large);
    step(&mut g, "gmm_large/meanfield/batch1000", advi(MeanField, &large, usize::MAX).batch(1_000), &large);
    step(&mut g, "gmm_large/fullrank/batch1000", advi(FullRank, &large, usize::MAX).batch(1_000), &large);
    g.finish();

    let mut g = c.benchmark_group("gmm-fit");
    g.sample_size(10);
    g.bench_function("gmm/meanfield", |b| b.iter(|| advi(MeanField, &small, 5_000).fit(&small).unwrap()));
    g.bench_function("gmm/fullrank", |b| b.iter(|| advi(FullRank, &small, 5_000).fit(&small).unwrap()));
    let batched = |steps| advi(MeanField, &large, steps).batch(1_000).elbo_draws(100);
    g.bench_function("gmm_large/meanfield/batch1000", |b| b.iter(|| batched(2_000).fit(&large).unwrap()));
    g.finish();
}

/// Where a step's time goes (module doc), full-rank, S = 1, at the k-means++ means.
fn parts(c: &mut Criterion) {
    elbo::runtime::default_threads();
    let mut g = c.benchmark_group("gmm-parts");
    g.sample_size(20);
    for (name, n) in [("gmm", 1_000), ("gmm_large", 100_000)] {
        let model = data(name, n);
        let (k, d) = (model.k(), model.d());
        let lik = elbo::mixture::MixtureLikelihood::new(model.x()).unwrap();
        let dev = Device::Cpu;
        let log_w = candle_core::Var::from_tensor(&Tensor::full(-(k as f64).ln(), (1, k), &dev).unwrap()).unwrap();
        let mu = candle_core::Var::from_vec(model.initial_means(0), (1, k, d), &dev).unwrap();
        let log_sigma = candle_core::Var::zeros((1, k), DType::F64, &dev).unwrap();
        g.bench_function(format!("{name}/likelihood-forward-backward"), |b| {
            b.iter(|| {
                let lp = lik.log_likelihood(log_w.as_tensor(), mu.as_tensor(), log_sigma.as_tensor()).unwrap();
                lp.sum_all().unwrap().backward().unwrap()
            })
        });
        let advi = advi(FullRank, &model, usize::MAX);
        let mut state = advi.init(&model).unwrap();
        let z = state.q.loc().unwrap().unsqueeze(0).unwrap();
        let z_leaf = candle_core::Var::from_tensor(&z).unwrap();
        g.bench_function(format!("{name}/log_joint-forward"), |b| b.iter(|| model.log_joint(&z).unwrap()));
        g.bench_function(format!("{name}/log_joint-forward-backward"), |b| {
            b.iter(|| model.log_joint(z_leaf.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap())
        });
        g.bench_function(format!("{name}/advi-step"), |b| b.iter(|| advi.step(&mut state, &model).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, steps, parts);
criterion_main!(benches);
