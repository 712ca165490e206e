//! Steps and wall time to a converged answer: the default stopping rule (stationary iterates,
//! averaged to an MCSE of 0.02) against a fixed 10,000 steps, on the peers' linreg, logreg and gmm,
//! with the final errors against the exact posterior (linreg) or the NUTS reference
//! (`../shared/peers/data/reference_nuts.json`). The rule may run up to 50,000 steps. One run
//! each, seed 0, f64, S = 1, Adam η = 0.01; prints
//! a markdown table (`cargo bench --bench converge`). Not criterion: a whole fit is the unit here.
//!
//! ```text
//! mean error = max_j |E_q[θ_j] − E_ref[θ_j]| / sd_ref(θ_j),   sd error = max_j |sd_q(θ_j) / sd_ref(θ_j) − 1|
//! ```

#[path = "common/mod.rs"]
mod common;

use elbo::linalg::to_f64_vec;
use elbo::prelude::*;
use elbo_models::{GaussianMixture, LinearRegression};
use serde_json::Value;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn json(file: &str) -> Value {
    let path = common::peers_data(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    serde_json::from_value(v.clone()).expect("a list of numbers")
}

/// Errors of (means, sds) against a reference, both in the reference's sds.
fn errors(mean: &[f64], sd: &[f64], ref_mean: &[f64], ref_sd: &[f64]) -> (f64, f64) {
    let m = (0..mean.len()).map(|j| ((mean[j] - ref_mean[j]) / ref_sd[j]).abs()).fold(0.0, f64::max);
    let s = (0..sd.len()).map(|j| (sd[j] / ref_sd[j] - 1.0).abs()).fold(0.0, f64::max);
    (m, s)
}

/// Errors of q's means and sds against a reference.
fn moment_errors<Q: VariationalFamily>(fit: &Fit<Q>, ref_mean: &[f64], ref_sd: &[f64]) -> (f64, f64) {
    let mean = to_f64_vec(&fit.mean().unwrap()).unwrap();
    let cov = to_f64_vec(&fit.covariance().unwrap()).unwrap();
    let d = mean.len();
    let sd: Vec<f64> = (0..d).map(|j| cov[j * d + j].sqrt()).collect();
    errors(&mean, &sd, ref_mean, ref_sd)
}

fn row<Q>(model: &str, family: &str, rule: &str, fit: &Fit<Q>, (m, s): (f64, f64)) {
    let secs = fit.elapsed().as_secs_f64();
    println!(
        "| {model} | {family} | {rule} | {} | {secs:.2} | {:.1} | {:.3} ± {:.3} | {m:.3} | {s:.3} |",
        fit.iterations(),
        secs * 1e6 / fit.iterations() as f64,
        fit.elbo(),
        fit.elbo_se()
    );
}

/// Adam η = 0.01, f64, S = 1, at most 10,000 steps.
fn advi<F: Family>(family: F) -> Advi<F> {
    Advi::new(family).dtype(DType::F64).steps(10_000).seed(0)
}

fn both<F: Family, M: LogJoint>(name: &str, advi: Advi<F>, model: &M, err: impl Fn(&Fit<F::Q>) -> (f64, f64)) {
    let family = if std::any::type_name::<F>().ends_with("FullRank") { "full-rank" } else { "mean-field" };
    let default = advi.clone().steps(50_000).fit(model).unwrap();
    row(name, family, "default rule", &default, err(&default));
    let fixed = advi.stop(StopRule::MaxSteps).fit(model).unwrap();
    row(name, family, "fixed 10,000", &fixed, err(&fixed));
}

fn main() {
    let reference = json("reference_nuts.json");
    println!("| model | family | stop | steps | seconds | µs/step | ELBO | mean error (sd) | sd error |");
    println!("|---|---|---|---|---|---|---|---|---|");

    // conjugate linear regression: exact posterior, so full-rank is exact
    let lin = json("linreg.json");
    let rows: Vec<Vec<f64>> = serde_json::from_value(lin["X"].clone()).unwrap();
    let (n, d) = (rows.len(), rows[0].len());
    let x = Tensor::from_vec(rows.concat(), (n, d), &Device::Cpu).unwrap();
    let y = Tensor::from_vec(floats(&lin["y"]), n, &Device::Cpu).unwrap();
    let model =
        LinearRegression::new(&x, &y, lin["prior_sd"].as_f64().unwrap(), lin["sigma"].as_f64().unwrap()).unwrap();
    let (ref_mean, ref_sd) = (floats(&lin["exact_posterior"]["mean"]), floats(&lin["exact_posterior"]["sd"]));
    both("linreg", advi(FullRank), &model, |f| moment_errors(f, &ref_mean, &ref_sd));
    both("linreg", advi(MeanField), &model, |f| moment_errors(f, &ref_mean, &ref_sd));

    // logistic regression against NUTS: z = (w, b)
    let model = common::logreg();
    let r = &reference["logreg"];
    let ref_mean = [floats(&r["w"]["mean"]), vec![r["b"]["mean"].as_f64().unwrap()]].concat();
    let ref_sd = [floats(&r["w"]["sd"]), vec![r["b"]["sd"].as_f64().unwrap()]].concat();
    both("logreg", advi(FullRank), &model, |f| moment_errors(f, &ref_mean, &ref_sd));
    both("logreg", advi(MeanField), &model, |f| moment_errors(f, &ref_mean, &ref_sd));

    // Gaussian mixture against NUTS: the means mu[k, d], components matched by their first coordinate
    let g = json("gmm.json");
    let rows: Vec<Vec<f64>> = serde_json::from_value(g["x"].clone()).unwrap();
    let (n, d) = (rows.len(), rows[0].len());
    let x = Tensor::from_vec(rows.concat(), (n, d), &Device::Cpu).unwrap();
    let model = GaussianMixture::new(&x, g["K"].as_u64().unwrap() as usize).unwrap();
    let k = model.k();
    let r = &reference["gmm"]["mu"];
    let ref_means: Vec<Vec<f64>> = serde_json::from_value(r["mean"].clone()).unwrap();
    let ref_sds: Vec<Vec<f64>> = serde_json::from_value(r["sd"].clone()).unwrap();
    let sorted = |means: Vec<Vec<f64>>, sds: Vec<Vec<f64>>| {
        let mut pairs: Vec<(Vec<f64>, Vec<f64>)> = means.into_iter().zip(sds).collect();
        pairs.sort_by(|a, b| a.0[0].total_cmp(&b.0[0]));
        let (m, s): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        (m.concat(), s.concat())
    };
    let (ref_mean, ref_sd) = sorted(ref_means, ref_sds);
    let gmm_err = |summary: &elbo::Summary| {
        let get = |kk: usize, dd: usize| summary.get(&format!("mu[{kk},{dd}]")).expect("mu in the summary").clone();
        let means = (0..k).map(|kk| (0..d).map(|dd| get(kk, dd).mean).collect()).collect();
        let sds = (0..k).map(|kk| (0..d).map(|dd| get(kk, dd).sd).collect()).collect();
        let (m, s) = sorted(means, sds);
        errors(&m, &s, &ref_mean, &ref_sd)
    };
    let init = model.initial_means(0);
    both("gmm", advi(FullRank).init_value("mu", &init), &model, |f| gmm_err(f.summary()));
    both("gmm", advi(MeanField).init_value("mu", &init), &model, |f| gmm_err(f.summary()));
}
