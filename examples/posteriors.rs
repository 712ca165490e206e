//! The development set of real posteriors (`elbo_models::posteriordb`): every method, with its
//! default settings (in f64), on every posterior and seed, compared with posteriordb's reference
//! moments on the constrained scale.
//!
//! ```text
//! cargo run --release --example posteriors                              # all 8 posteriors, seeds 0, 1, 2
//! cargo run --release --example posteriors -- --only arK,hmm --seeds 0 --out out/posteriors.md
//! cargo run --release --example posteriors -- --methods laplace,dadvi
//! ```
//!
//! For each fit, `--draws` draws of q (20,000 by default) are mapped to the constrained scale and
//! summarised, and for every element j
//!
//! ```text
//! z_j = (mean_q,j − mean_ref,j) / sd_ref,j,   r_j = sd_q,j / sd_ref,j
//! quality: accurate (max |z| < 0.1, every r_j in [0.9, 1.1]), moderate (max |z| < 0.5, every r_j
//!          in [1/1.5, 1.5]), gross (worse)
//! ```
//!
//! One markdown table has a row per posterior, method and seed: max |z|, the sd ratio farthest from
//! 1, k̂ and the fit's verdict (`Fit::verdict`: k̂ with its spread and the PSIS-reweighted moments), the work (ADVI's steps; the
//! L-BFGS methods' gradient evaluations, Hessian included), the wall time of the fit (its own final
//! ELBO and k̂ included, the comparison's draws not) and why it stopped. A method that fails has its
//! error in its row. A second table counts the rows by quality and verdict: how often k̂ tells the
//! truth about q. `dadvi (LR)` is the same DADVI fit seen through its linear-response covariance,
//! N(μ̂, Cov_LR), with k̂ and verdict of its own (`elbo::report::assess`, 4,000 draws).
//!
//! A method is one entry of [`methods`]: a name and a closure from (model, seed) to outcomes.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use elbo::diagnose::Verdict;
use elbo::map::{Dadvi, Laplace};
use elbo::prelude::*;
use elbo::report::StartRecord;
use elbo::report::EVALUATION_DRAWS;
use elbo::{Draws, Method as Record, Pathfinder};
use elbo_models::posteriordb::{data_dir, BoxedModel, Comparison, Posterior, Quality, Reference};

#[path = "common/entry.rs"]
mod entry;
#[path = "common/error.rs"]
mod error;
#[path = "common/threads.rs"]
mod threads;

// glibc's malloc is bimodal for candle's per-op tensors (see benches/README.md), mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The example, for its error messages.
#[derive(Debug)]
struct Posteriors;

impl error::Example for Posteriors {
    const FIT_FAILED: &'static str = "the harness failed";
}

type AppError = error::AppError<Posteriors>;

/// Fit every method to the posteriordb development set and compare with the reference moments.
#[derive(Parser, Debug)]
struct Args {
    /// Posteriors to run, comma-separated (posteriordb's names or the short ones: earnings, kidiq,
    /// ark, arma, hmm, gauss_mix, mesquite, nes); all by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Methods to run, comma-separated (advi-fullrank, advi-meanfield, pathfinder, laplace, dadvi); all by
    /// default.
    #[arg(long, value_delimiter = ',')]
    methods: Vec<String>,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0u64, 1, 2])]
    seeds: Vec<u64>,
    /// Draws of each fitted q behind the comparison.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(2..))]
    draws: u64,
    /// The folder of the set (one folder per posterior with data.json and reference.json); the
    /// repository's models/data/posteriordb by default.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Also write the tables, as markdown, to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// After each fit, print its comparison element by element on stderr.
    #[arg(long)]
    detail: bool,
}

/// A fitted q as the harness sees it.
struct Outcome {
    /// "" for the method's own q, or a variant of it ("LR").
    variant: &'static str,
    /// Draws of q on the constrained scale.
    draws: Draws,
    k_hat: f64,
    /// The fit's own verdict (None: no diagnostics).
    verdict: Option<Verdict>,
    /// Gradient evaluations or steps, in words.
    work: String,
    stop: String,
}

/// (model, seed, number of draws) → the method's outcomes (one, or more views of one fit).
type Runner = Box<dyn Fn(&BoxedModel, u64, usize) -> elbo::Result<Vec<Outcome>>>;

/// A method: a name and how to run it.
struct MethodRow {
    name: &'static str,
    run: Runner,
}

impl MethodRow {
    fn new(name: &'static str, run: impl Fn(&BoxedModel, u64, usize) -> elbo::Result<Vec<Outcome>> + 'static) -> Self {
        MethodRow { name, run: Box::new(run) }
    }
}

/// Every method, each with its default settings but for the dtype (f64). Add a row here to add a
/// method to the tables.
fn methods() -> Vec<MethodRow> {
    vec![
        MethodRow::new("advi-fullrank", |model, seed, n| {
            let fit = Advi::new(FullRank).dtype(DType::F64).seed(seed).fit(&**model)?;
            Ok(vec![outcome(&fit, n)?])
        }),
        MethodRow::new("advi-meanfield", |model, seed, n| {
            let fit = Advi::new(MeanField).dtype(DType::F64).seed(seed).fit(&**model)?;
            Ok(vec![outcome(&fit, n)?])
        }),
        MethodRow::new("pathfinder", |model, seed, n| {
            let fit = Pathfinder::new().dtype(DType::F64).seed(seed).fit(&**model)?;
            Ok(vec![outcome(&fit, n)?])
        }),
        MethodRow::new("laplace", |model, seed, n| {
            let fit = Laplace::new().dtype(DType::F64).seed(seed).fit(&**model)?;
            Ok(vec![outcome(&fit, n)?])
        }),
        MethodRow::new("dadvi", |model, seed, n| {
            let fit = Dadvi::new().dtype(DType::F64).seed(seed).fit(&**model)?;
            let mean_field = outcome(fit.fit(), n)?;
            let lr_q = fit.linear_response_q()?;
            let assessed = elbo::report::assess(&lr_q, &**model, EVALUATION_DRAWS, seed)?;
            let linear_response = Outcome {
                variant: "LR",
                draws: fit.linear_response_draws(n)?,
                k_hat: assessed.k_hat,
                verdict: Some(assessed.verdict()),
                work: mean_field.work.clone(),
                stop: mean_field.stop.clone(),
            };
            Ok(vec![mean_field, linear_response])
        }),
    ]
}

/// The outcome of a [`Fit`]: `n` of its draws, its k̂, its work and its stop reason.
fn outcome<Q: VariationalFamily>(fit: &Fit<Q>, n: usize) -> elbo::Result<Outcome> {
    let work = match fit.method() {
        Record::Laplace { lbfgs, hessian_evaluations } => {
            format!(
                "{} ({} L-BFGS + {hessian_evaluations} Hessian)",
                lbfgs.evaluations + hessian_evaluations,
                lbfgs.evaluations
            )
        }
        Record::Dadvi { draws, lbfgs, hessian_evaluations, .. } => format!(
            "{} (({} L-BFGS + {hessian_evaluations} Hessian) × {draws} draws)",
            (lbfgs.evaluations + hessian_evaluations) * draws,
            lbfgs.evaluations
        ),
        Record::Pathfinder { gradient_evaluations, .. } => format!("{gradient_evaluations} gradient evaluations"),
        _ => match fit.stochastic().map(|s| &s.start) {
            Some(StartRecord::Pathfinder { gradient_evaluations, .. }) => {
                format!("{} steps + {gradient_evaluations} Pathfinder", fit.iterations())
            }
            _ => format!("{} steps", fit.iterations()),
        },
    };
    Ok(Outcome {
        variant: "",
        draws: fit.draws(n)?,
        k_hat: fit.k_hat(),
        verdict: fit.verdict(),
        work,
        stop: stop_reason(fit.stop_reason()),
    })
}

/// A stop reason in a few words.
fn stop_reason(reason: StopReason) -> String {
    match reason {
        StopReason::MaxSteps => "max steps".into(),
        StopReason::WallTime => "wall time".into(),
        StopReason::Stationary { since, mcse } => format!("stationary from step {since} (MCSE {mcse:.3})"),
        StopReason::Stan { statistic, value } => format!("Stan's rule ({statistic} {value:.1e})"),
        StopReason::LbfgsConverged => "L-BFGS converged".into(),
        StopReason::LbfgsRoundingFloor { grad_norm, .. } => format!("L-BFGS rounding floor (‖∇‖ {grad_norm:.1e})"),
        other => other.to_string(),
    }
}

/// One row of the table.
struct Row {
    posterior: Posterior,
    method: String,
    seed: u64,
    seconds: f64,
    result: Result<(Comparison, Outcome), String>,
}

impl Row {
    fn verdict(&self) -> &'static str {
        match &self.result {
            Err(_) => "failed",
            Ok((_, o)) => match o.verdict {
                Some(Verdict::Good) => "good",
                Some(Verdict::Usable) => "usable",
                Some(Verdict::Unreliable) => "unreliable",
                None => "—",
            },
        }
    }

    fn markdown(&self) -> String {
        let head = format!("| {} | {} | {} ", self.posterior.short_name(), self.method, self.seed);
        match &self.result {
            Ok((c, o)) => format!(
                "{head}| {} | {} | {} | {:.2} | {} | {} | {:.2} | {} |",
                number(c.max_abs_z),
                number(c.worst_sd_ratio),
                c.quality(),
                o.k_hat,
                self.verdict(),
                o.work,
                self.seconds,
                o.stop
            ),
            Err(e) => format!("{head}| — | — | — | — | failed | — | {:.2} | error: {} |", self.seconds, cell(e)),
        }
    }
}

/// A number in a few characters.
fn number(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        format!("{x}")
    } else if a >= 1e4 || (a < 0.01 && a != 0.0) {
        format!("{x:.1e}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// Text made safe for one markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

const HEADER: &str = "| posterior | method | seed | max \\|Δmean\\|/sd | worst sd ratio | quality | k̂ | verdict | \
                      gradient evals (or steps) | seconds | stop reason |\n|---|---|---|---|---|---|---|---|---|---|---|";

/// Rows by quality (accurate, moderate, gross, or no q) against verdict.
fn confusion(rows: &[Row]) -> String {
    let verdicts = ["good", "usable", "unreliable", "failed"];
    let qualities = [Some(Quality::Accurate), Some(Quality::Moderate), Some(Quality::Gross), None];
    let mut out =
        String::from("| actual quality \\ verdict | good | usable | unreliable | failed |\n|---|---|---|---|---|\n");
    for quality in qualities {
        let label = quality.map_or("— (no q)".to_string(), |q| q.to_string());
        let counts: Vec<String> = verdicts
            .iter()
            .map(|v| {
                rows.iter()
                    .filter(|r| r.verdict() == *v && r.result.as_ref().ok().map(|(c, _)| c.quality()) == quality)
                    .count()
                    .to_string()
            })
            .collect();
        let _ = writeln!(out, "| {label} | {} |", counts.join(" | "));
    }
    out
}

/// A comparison element by element.
fn elements(c: &Comparison) -> String {
    let mut out = format!(
        "  {:<12} {:>12} {:>12} {:>8} {:>12} {:>12} {:>8}\n",
        "element", "mean ref", "mean q", "z", "sd ref", "sd q", "ratio"
    );
    for r in &c.rows {
        let _ = writeln!(
            out,
            "  {:<12} {:>12.5e} {:>12.5e} {:>8.3} {:>12.5e} {:>12.5e} {:>8.3}",
            r.name, r.mean_ref, r.mean, r.z, r.sd_ref, r.sd, r.sd_ratio
        );
    }
    out
}

/// Runs one method on one model and seed, with every failure (an error, a panic, a comparison
/// that cannot be made) as rows of their own.
fn run_one(
    method: &MethodRow,
    posterior: Posterior,
    model: &BoxedModel,
    reference: &Reference,
    seed: u64,
    n: usize,
) -> Vec<Row> {
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| (method.run)(model, seed, n)));
    let seconds = start.elapsed().as_secs_f64();
    let row = |variant: &str, result| {
        let method = if variant.is_empty() { method.name.to_string() } else { format!("{} ({variant})", method.name) };
        Row { posterior, method, seed, seconds, result }
    };
    match result {
        Ok(Ok(outcomes)) => outcomes
            .into_iter()
            .map(|o| {
                let compared = reference.compare(&o.draws.summary()).map_err(|e| e.to_string());
                row(o.variant, compared.map(|c| (c, o)))
            })
            .collect(),
        Ok(Err(e)) => vec![row("", Err(e.to_string()))],
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            vec![row("", Err(format!("panicked: {message}")))]
        }
    }
}

fn run(args: Args) -> Result<(), AppError> {
    let dir = args.data.clone().unwrap_or_else(data_dir);
    let posteriors = if args.only.is_empty() {
        Posterior::ALL.to_vec()
    } else {
        args.only
            .iter()
            .map(|name| Posterior::from_name(name).map_err(|e| AppError::Input(format!("--only: {e}"))))
            .collect::<Result<_, _>>()?
    };
    let all = methods();
    let known: Vec<&str> = all.iter().map(|m| m.name).collect();
    if let Some(bad) = args.methods.iter().find(|m| !known.contains(&m.as_str())) {
        return Err(AppError::Input(format!(
            "--methods: `{bad}` is not a method; the methods are {}",
            known.join(", ")
        )));
    }
    let chosen: Vec<&MethodRow> =
        all.iter().filter(|m| args.methods.is_empty() || args.methods.iter().any(|n| n == m.name)).collect();
    if args.seeds.is_empty() {
        return Err(AppError::Input("--seeds: give at least one seed".into()));
    }
    if let Some(out) = &args.out {
        // before the fits, so that a bad path costs nothing
        std::fs::write(out, "").map_err(|e| AppError::Output(format!("--out: cannot write {}: {e}", out.display())))?;
    }
    let n = args.draws as usize;
    let total = posteriors.len() * chosen.len() * args.seeds.len();
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut done = 0;
    for &posterior in &posteriors {
        let data = |e: elbo::Error| AppError::Data(format!("--data {}: {e}", dir.display()));
        let model = posterior.model(&dir).map_err(data)?;
        let reference = posterior.reference(&dir).map_err(data)?;
        for method in &chosen {
            for &seed in &args.seeds {
                let new = run_one(method, posterior, &model, &reference, seed, n);
                done += 1;
                for r in &new {
                    eprintln!("[{done}/{total}] {}", r.markdown());
                    if let (true, Ok((c, _))) = (args.detail, &r.result) {
                        eprint!("{}", elements(c));
                    }
                }
                rows.extend(new);
            }
        }
    }
    let mut text = format!("{HEADER}\n");
    for r in &rows {
        let _ = writeln!(text, "{}", r.markdown());
    }
    let _ = write!(text, "\n{}", confusion(&rows));
    let _ = writeln!(
        text,
        "\n{} fits of {} posteriors × {} methods × {} seeds, {} draws of q each, in {:.0} s.",
        done,
        posteriors.len(),
        chosen.len(),
        args.seeds.len(),
        n,
        started.elapsed().as_secs_f64()
    );
    print!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text)
            .map_err(|e| AppError::Output(format!("--out: cannot write {}: {e}", out.display())))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    threads::one_candle_thread();
    entry::main(run)
}
