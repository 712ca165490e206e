//! Bayesian linear regression with known noise, fitted by ADVI and compared with the exact
//! posterior (it is conjugate, so the answer is known in closed form).
//!
//! ```text
//! cargo run --release --example linreg                      # full-rank, N = 200, D = 10
//! cargo run --release --example linreg -- --family meanfield --samples 16 --steps 10000
//! ```
//!
//! Prints the fit report, a table of exact vs fitted posterior means and standard deviations, and
//! the gap log p(y) − ELBO, which is KL(q ‖ p(w | y)) ≥ 0.

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use elbo::linalg::to_f64_vec;
use elbo::prelude::*;
use elbo_models::LinearRegression;

#[path = "common/entry.rs"]
mod entry;
#[path = "common/threads.rs"]
mod threads;

// glibc's malloc is bimodal for candle's per-op tensors (see benches/README.md), mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FamilyArg {
    Meanfield,
    Fullrank,
}

/// Fit a conjugate Bayesian linear regression by ADVI and compare with the exact posterior.
#[derive(Parser, Debug)]
struct Args {
    /// Variational family.
    #[arg(long, value_enum, default_value_t = FamilyArg::Fullrank)]
    family: FamilyArg,
    /// Number of data points (simulated).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    n: u64,
    /// Number of regression coefficients.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=500))]
    d: u64,
    /// Draws of z per step.
    #[arg(long, default_value_t = 8)]
    samples: usize,
    /// Optimisation steps.
    #[arg(long, default_value_t = 8_000)]
    steps: usize,
    /// Adam's initial learning rate (decayed geometrically to 1 % of it).
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// Seed for the data and the fit.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

fn run(args: &Args) -> elbo::Result<()> {
    let (model, truth) = LinearRegression::simulate(args.n as usize, args.d as usize, args.seed)?;
    let exact = model.exact_posterior()?;
    let (report, mean, cov, elbo, se) = match args.family {
        FamilyArg::Meanfield => summarise(settings(MeanField, args).fit(&model)?)?,
        FamilyArg::Fullrank => summarise(settings(FullRank, args).fit(&model)?)?,
    };
    let d = args.d as usize;
    println!("{report}\n");
    println!(
        "{:>4} {:>9} {:>11} {:>11} {:>9} {:>9} {:>8}",
        "w", "true", "exact mean", "fit mean", "exact sd", "fit sd", "sd ratio"
    );
    for i in 0..d {
        let (sd_exact, sd_fit) = (exact.cov[i * d + i].sqrt(), cov[i * d + i].sqrt());
        println!(
            "{i:>4} {:>9.4} {:>11.4} {:>11.4} {:>9.4} {:>9.4} {:>8.3}",
            truth[i],
            exact.mean[i],
            mean[i],
            sd_exact,
            sd_fit,
            sd_fit / sd_exact
        );
    }
    println!("\nlog p(y) = {:.4} (exact); ELBO = {elbo:.4} ± {se:.4}", exact.log_evidence);
    println!("log p(y) − ELBO = KL(q ‖ posterior) ≈ {:.4} nats", exact.log_evidence - elbo);
    Ok(())
}

fn settings<F: Family>(family: F, args: &Args) -> Advi<F> {
    Advi::new(family)
        .dtype(DType::F64)
        .samples(args.samples)
        .steps(args.steps)
        .lr(args.lr)
        .lr_schedule(LrSchedule::Exponential { final_lr: args.lr / 100.0 })
        .seed(args.seed)
}

/// The printed report, mean, covariance (row-major), ELBO and its standard error.
type Summary = (String, Vec<f64>, Vec<f64>, f64, f64);

fn summarise<Q: VariationalFamily>(fit: Fit<Q>) -> elbo::Result<Summary> {
    let mean = to_f64_vec(&fit.mean()?)?;
    let cov = to_f64_vec(&fit.covariance()?)?;
    Ok((fit.to_string(), mean, cov, fit.elbo(), fit.elbo_se()))
}

fn main() -> ExitCode {
    threads::one_candle_thread();
    entry::main(|args: Args| run(&args))
}
