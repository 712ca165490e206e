//! The tiny models on the peers' data, f64, Adam(0.01), one draw per step, as the peers' protocol
//! runs them: linreg (`linreg.json`, N = 200, D = 10, the fused Normal GLM) and eight schools
//! (`eight_schools.json`, D = 10, the fused log joint).
//!
//! - `tiny-step`: µs per ADVI step, both families; and linreg with its former composition of
//!   candle ops as a `from_fn` model (what the fused op saves);
//! - `tiny-parts`: the model's log joint alone (forward; forward and backward to z) at S = 1, to set
//!   beside the step: the rest is the engine (noise, family, checks, Adam);
//! - `tiny-step/standard_normal/meanfield`: the same step on log p(z) = −½‖z‖² at D = 10, a model
//!   of three candle ops (sqr, sum, scale): what the engine costs around a minimal composition;
//! - `tiny-fit`: a whole 10,000-step fit as a user runs it (set-up, steps, the final ELBO on 1,000
//!   draws), mean-field, the time to the answer.
//!
//! Before timing, one fit of each prints its ELBO (`cargo bench --bench tiny 2>&1 | grep ELBO`),
//! to set beside NumPyro's (`../shared/peers/bench.py`).
//!
//! `benches/compare_numpyro.py --model tiny` runs NumPyro on the same data in the same session and
//! sets the two side by side.

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use elbo::prelude::*;
use elbo::special::HALF_LN_2PI;
use elbo_models::{EightSchools, LinearRegression};

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// The peers' linreg design and response (or simulated data of that shape).
fn linreg_data() -> (Tensor, Tensor) {
    match std::fs::read_to_string(common::peers_data("linreg.json")) {
        Ok(text) => {
            let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
            let rows: Vec<Vec<f64>> = serde_json::from_value(json["X"].clone()).expect("X is a matrix");
            let y: Vec<f64> = serde_json::from_value(json["y"].clone()).expect("y is a vector");
            let (n, d) = (rows.len(), rows[0].len());
            (
                Tensor::from_vec(rows.concat(), (n, d), &Device::Cpu).unwrap(),
                Tensor::from_vec(y, n, &Device::Cpu).unwrap(),
            )
        }
        Err(_) => {
            eprintln!("linreg.json not found: simulating N = 200, D = 10");
            let x = Tensor::randn(0f64, 1.0, (200, 10), &Device::Cpu).unwrap();
            let y = Tensor::randn(0f64, 1.0, 200, &Device::Cpu).unwrap();
            (x, y)
        }
    }
}

/// The peers' eight schools (or Rubin's data, which the file holds).
fn eight_schools() -> EightSchools {
    match std::fs::read_to_string(common::peers_data("eight_schools.json")) {
        Ok(text) => EightSchools::from_json(&text).unwrap(),
        Err(_) => EightSchools::rubin().unwrap(),
    }
}

fn advi<F: Family>(family: F, steps: usize) -> Advi<F> {
    Advi::new(family).stop(StopRule::MaxSteps).dtype(DType::F64).samples(1).lr(0.01).steps(steps)
}

fn step<F: Family, M: LogJoint>(g: &mut Group, id: &str, family: F, model: &M) {
    let advi = advi(family, usize::MAX);
    let mut state = advi.init(model).unwrap();
    g.bench_function(id, |b| b.iter(|| advi.step(&mut state, model).unwrap()));
}

fn parts<M: LogJoint>(g: &mut Group, id: &str, model: &M) {
    let z = candle_core::Var::zeros((1, model.dim()), DType::F64, &Device::Cpu).unwrap();
    g.bench_function(format!("{id}/log_joint-forward"), |b| b.iter(|| model.log_joint(z.as_tensor()).unwrap()));
    g.bench_function(format!("{id}/log_joint-forward-backward"), |b| {
        b.iter(|| model.log_joint(z.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap())
    });
}

fn benches(c: &mut Criterion) {
    elbo::runtime::default_threads();
    let (x, y) = linreg_data();
    let linreg = LinearRegression::new(&x, &y, 10.0, 1.0).unwrap();
    let d = x.dim(1).unwrap();
    // the former LinearRegression::log_joint: prior + Σ −½ (y − X w)² − N ½ ln 2π (σ = 1, τ = 10)
    let (x_t, n) = (x.t().unwrap().contiguous().unwrap(), y.dim(0).unwrap());
    let y_row = y.unsqueeze(0).unwrap();
    let composite = from_fn(d, move |w: &Tensor| {
        let prior = ((w.sqr()?.sum(1)? * -0.005)? - d as f64 * (10f64.ln() + HALF_LN_2PI))?;
        let resid = w.matmul(&x_t)?.broadcast_sub(&y_row)?;
        prior + ((resid.sqr()?.sum(1)? * -0.5)? - n as f64 * HALF_LN_2PI)?
    });
    let schools = eight_schools();
    let standard_normal = from_fn(10, |z: &Tensor| z.sqr()?.sum(1)? * -0.5);

    let lr = advi(MeanField, 10_000).fit(&linreg).unwrap();
    let es = advi(MeanField, 10_000).fit(&schools).unwrap();
    for (name, fit) in [("linreg", &lr), ("eight_schools", &es)] {
        eprintln!("{name} mean-field, 10,000 steps: ELBO {:.3} ± {:.3}", fit.elbo(), fit.elbo_se());
    }

    let mut g = c.benchmark_group("tiny-step");
    step(&mut g, "linreg/meanfield", MeanField, &linreg);
    step(&mut g, "linreg/fullrank", FullRank, &linreg);
    step(&mut g, "linreg/meanfield/composite", MeanField, &composite);
    step(&mut g, "eight_schools/meanfield", MeanField, &schools);
    step(&mut g, "eight_schools/fullrank", FullRank, &schools);
    step(&mut g, "standard_normal/meanfield", MeanField, &standard_normal);
    g.finish();

    let mut g = c.benchmark_group("tiny-parts");
    parts(&mut g, "linreg", &linreg);
    parts(&mut g, "linreg/composite", &composite);
    parts(&mut g, "eight_schools", &schools);
    g.finish();

    let mut g = c.benchmark_group("tiny-fit");
    g.sample_size(10);
    g.bench_function("linreg/meanfield", |b| b.iter(|| advi(MeanField, 10_000).fit(&linreg).unwrap()));
    g.bench_function("eight_schools/meanfield", |b| b.iter(|| advi(MeanField, 10_000).fit(&schools).unwrap()));
    g.finish();
}

criterion_group!(tiny, benches);
criterion_main!(tiny);
