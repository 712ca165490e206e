//! Shared by the benches: where the peers' data live, and their logistic regression (N = 5000,
//! D = 20) with its step benchmark.
#![allow(dead_code)] // each bench uses part of this module

use std::path::PathBuf;

use criterion::Criterion;
use elbo::prelude::*;
use elbo_models::LogisticRegression;

/// `../shared/peers/data/{file}` (or `$ELBO_PEERS_DATA/{file}`): the data every peer toolkit fits.
pub fn peers_data(file: &str) -> PathBuf {
    std::env::var_os("ELBO_PEERS_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/peers/data"))
        .join(file)
}

/// The peers' logistic regression ([`peers_data`]`("logreg.json")`). Without it, data of the same
/// shape are simulated (and the run says so).
pub fn logreg() -> LogisticRegression {
    let path = peers_data("logreg.json");
    let (x, y, n, d) = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let json: serde_json::Value = serde_json::from_str(&text).expect("logreg.json is valid JSON");
            let rows: Vec<Vec<f64>> = serde_json::from_value(json["X"].clone()).expect("X is a matrix");
            let y: Vec<f64> = serde_json::from_value(json["y"].clone()).expect("y is a vector");
            let (n, d) = (rows.len(), rows[0].len());
            (rows.concat(), y, n, d)
        }
        Err(_) => {
            eprintln!("{} not found: simulating data of the same shape (N = 5000, D = 20)", path.display());
            simulated(5000, 20)
        }
    };
    let x = Tensor::from_vec(x, (n, d), &Device::Cpu).unwrap();
    let y = Tensor::from_vec(y, n, &Device::Cpu).unwrap();
    LogisticRegression::new(&x, &y).unwrap()
}

fn simulated(n: usize, d: usize) -> (Vec<f64>, Vec<f64>, usize, usize) {
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let x: Vec<f64> = (0..n * d).map(|_| rng.sample(StandardNormal)).collect();
    let w: Vec<f64> = (0..d).map(|_| rng.sample(StandardNormal)).collect();
    let y = (0..n)
        .map(|i| {
            let eta: f64 = (0..d).map(|j| x[i * d + j] * w[j]).sum::<f64>() - 0.5;
            f64::from(rng.random::<f64>() < 1.0 / (1.0 + (-eta).exp()))
        })
        .collect();
    (x, y, n, d)
}

/// One ADVI step (f64, Adam η = 0.01) on the logistic regression, for both families and S ∈ {1, 10}.
pub fn bench_logreg_steps(c: &mut Criterion, group: &str) {
    let model = logreg();
    let mut g = c.benchmark_group(group);
    for s in [1, 10] {
        bench_family(&mut g, MeanField, "meanfield", s, &model);
        bench_family(&mut g, FullRank, "fullrank", s, &model);
    }
    g.finish();
}

fn bench_family<F: Family>(
    g: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    family: F,
    name: &str,
    s: usize,
    model: &LogisticRegression,
) {
    let advi = Advi::new(family).stop(StopRule::MaxSteps).dtype(DType::F64).samples(s).lr(0.01).steps(usize::MAX);
    let mut state = advi.init(model).unwrap();
    g.bench_function(format!("{name}/S{s}"), |b| b.iter(|| advi.step(&mut state, model).unwrap()));
}
