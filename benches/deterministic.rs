//! Time to a converged answer on the peers' linreg, logreg and gmm: deterministic ADVI (M = 30
//! fixed draws, L-BFGS to the rounding floor, with and without the linear-response Hessian) and
//! Laplace, beside stochastic ADVI (mean-field, Adam 0.01, one draw a step) at a fixed 5,000 steps
//! (the peers' protocol) and with its default stopping rule (stationary iterates, averaged).
//! Every fit ends with the same report (ELBO and k̂ on 1,000 fresh draws, summary).
//!
//! Before timing, one fit of each prints its gradient evaluations and ELBO (`cargo bench --bench
//! deterministic 2>&1 | grep evaluations`), for `benches/README.md`.

use criterion::{criterion_group, criterion_main, Criterion};
use elbo::map::{Dadvi, Laplace, Map};
use elbo::prelude::*;
use elbo::Method;
use elbo_models::{GaussianMixture, LinearRegression};

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn json(file: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(common::peers_data(file)).ok()?;
    Some(serde_json::from_str(&text).expect("valid JSON"))
}

fn matrix(value: &serde_json::Value) -> Tensor {
    let rows: Vec<Vec<f64>> = serde_json::from_value(value.clone()).expect("a matrix");
    let (n, d) = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), (n, d), &Device::Cpu).unwrap()
}

/// The peers' linreg (N = 200, D = 10, prior sd 10, noise sd 1), or simulated data of that shape.
fn linreg() -> LinearRegression {
    match json("linreg.json") {
        Some(data) => {
            let y: Vec<f64> = serde_json::from_value(data["y"].clone()).unwrap();
            let n = y.len();
            LinearRegression::new(&matrix(&data["X"]), &Tensor::from_vec(y, n, &Device::Cpu).unwrap(), 10.0, 1.0)
                .unwrap()
        }
        None => LinearRegression::simulate(200, 10, 3).unwrap().0,
    }
}

/// The peers' gmm (N = 1000, K = 3, D = 2), or simulated data of that shape.
fn gmm() -> GaussianMixture {
    match json("gmm.json") {
        Some(data) => GaussianMixture::new(&matrix(&data["x"]), data["K"].as_u64().unwrap() as usize).unwrap(),
        None => GaussianMixture::simulate(3, 2, 1_000, 1).unwrap().0,
    }
}

/// The methods, each from `start` (the unconstrained initial location; k-means++ means for gmm).
struct Methods {
    start: Vec<f64>,
}

impl Methods {
    fn advi(&self) -> Advi<MeanField> {
        self.advi_rule().steps(5_000).stop(StopRule::MaxSteps)
    }
    fn advi_rule(&self) -> Advi<MeanField> {
        Advi::new(MeanField).dtype(DType::F64).lr(0.01).init_loc(self.start.clone())
    }
    fn dadvi(&self) -> Dadvi {
        Dadvi::new().init_loc(self.start.clone())
    }
    fn laplace(&self) -> Laplace {
        Laplace::new().map(Map::new().init_loc(self.start.clone()))
    }
}

/// One fit of each method, with its gradient evaluations (and draws of ∇ log p) and ELBO.
fn report<M: LogJoint>(name: &str, model: &M, methods: &Methods) {
    let advi = methods.advi().fit(model).unwrap();
    eprintln!(
        "{name} advi: 5000 gradient evaluations (5000 draws), ELBO {:.2} ± {:.2}, {:.2} s",
        advi.elbo(),
        advi.elbo_se(),
        advi.elapsed().as_secs_f64()
    );
    let rule = methods.advi_rule().fit(model).unwrap();
    eprintln!(
        "{name} advi-rule: {} gradient evaluations ({}), ELBO {:.2} ± {:.2}, {:.2} s",
        rule.iterations(),
        rule.stop_reason(),
        rule.elbo(),
        rule.elbo_se(),
        rule.elapsed().as_secs_f64()
    );
    for (label, dadvi) in [("dadvi", methods.dadvi()), ("dadvi-no-lr", methods.dadvi().linear_response(false))] {
        let fit = dadvi.fit(model).unwrap();
        if let Method::Dadvi { lbfgs, hessian_evaluations, draws, .. } = fit.fit().method() {
            eprintln!(
                "{name} {label}: {} + {hessian_evaluations} gradient evaluations ({} draws), ELBO {:.2} ± {:.2}",
                lbfgs.evaluations,
                (lbfgs.evaluations + hessian_evaluations) * draws,
                fit.fit().elbo(),
                fit.fit().elbo_se()
            );
        }
    }
    let laplace = methods.laplace().fit(model).unwrap();
    if let Method::Laplace { lbfgs, hessian_evaluations } = laplace.method() {
        eprintln!(
            "{name} laplace: {} + {hessian_evaluations} gradient evaluations, ELBO {:.2} ± {:.2}",
            lbfgs.evaluations,
            laplace.elbo(),
            laplace.elbo_se()
        );
    }
}

fn bench<M: LogJoint>(c: &mut Criterion, name: &str, model: &M, methods: Methods) {
    report(name, model, &methods);
    let mut g = c.benchmark_group("fit");
    g.sample_size(10);
    g.bench_function(format!("{name}/advi-5000"), |b| b.iter(|| methods.advi().fit(model).unwrap()));
    g.bench_function(format!("{name}/advi-rule"), |b| b.iter(|| methods.advi_rule().fit(model).unwrap()));
    g.bench_function(format!("{name}/dadvi"), |b| b.iter(|| methods.dadvi().fit(model).unwrap()));
    g.bench_function(format!("{name}/dadvi-no-lr"), |b| {
        b.iter(|| methods.dadvi().linear_response(false).fit(model).unwrap())
    });
    g.bench_function(format!("{name}/laplace"), |b| b.iter(|| methods.laplace().fit(model).unwrap()));
    g.finish();
}

fn fits(c: &mut Criterion) {
    elbo::runtime::default_threads(); // before reading the data sizes candle's thread pool
    let model = linreg();
    bench(c, "linreg", &model, Methods { start: vec![0.0; model.dim()] });
    let model = common::logreg();
    bench(c, "logreg", &model, Methods { start: vec![0.0; model.dim()] });
    let model = gmm();
    let latents = model.latents().clone();
    let mut start = vec![0.0; model.dim()];
    let mu = latents.block("mu").unwrap();
    let means = latents.unconstrain("mu", &model.initial_means(0)).unwrap();
    start[mu.offset()..mu.offset() + mu.unconstrained_len()].copy_from_slice(&means);
    bench(c, "gmm", &model, Methods { start });
}

criterion_group!(benches, fits);
criterion_main!(benches);
