//! ADVI steps on the peers' Bayesian logistic regression (N = 5000, D = 20, f64), with mimalloc;
//! the effect of candle's thread setting; and where a step's time goes. `benches/logreg_glibc.rs`
//! runs the same steps with the system allocator; `benches/compare_numpyro.py` sets them beside
//! NumPyro.

#[path = "common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use elbo::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn steps(c: &mut Criterion) {
    common::bench_logreg_steps(c, "logreg-mimalloc");
}

/// candle reads RAYON_NUM_THREADS at every CPU matmul; unset, it asks num_cpus each time.
fn threads(c: &mut Criterion) {
    let model = common::logreg();
    let mut g = c.benchmark_group("logreg-threads");
    for setting in ["1", "2", "unset"] {
        let advi = Advi::new(FullRank).stop(StopRule::MaxSteps).dtype(DType::F64).samples(10).steps(usize::MAX);
        let mut state = advi.init(&model).unwrap();
        match setting {
            "unset" => std::env::remove_var("RAYON_NUM_THREADS"),
            n => std::env::set_var("RAYON_NUM_THREADS", n),
        }
        g.bench_function(format!("fullrank/S10/threads={setting}"), |b| {
            b.iter(|| advi.step(&mut state, &model).unwrap())
        });
    }
    std::env::set_var("RAYON_NUM_THREADS", "1");
    g.finish();
}

/// Where a step's time goes: the model's log joint (forward; forward and backward to z) against the
/// whole ADVI step, full-rank, S ∈ {1, 10}.
fn parts(c: &mut Criterion) {
    let model = common::logreg();
    let mut g = c.benchmark_group("logreg-parts");
    for s in [1, 10] {
        let advi = Advi::new(FullRank).stop(StopRule::MaxSteps).dtype(DType::F64).samples(s).steps(usize::MAX);
        let mut state = advi.init(&model).unwrap();
        let z = Tensor::zeros((s, model.dim()), DType::F64, &Device::Cpu).unwrap();
        let z_leaf = candle_core::Var::from_tensor(&z).unwrap();
        g.bench_function(format!("S{s}/log_joint-forward"), |b| b.iter(|| model.log_joint(&z).unwrap()));
        g.bench_function(format!("S{s}/log_joint-forward-backward"), |b| {
            b.iter(|| model.log_joint(z_leaf.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap())
        });
        g.bench_function(format!("S{s}/advi-step"), |b| b.iter(|| advi.step(&mut state, &model).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, steps, threads, parts);
criterion_main!(benches);
