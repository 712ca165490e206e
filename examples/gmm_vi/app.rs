//! The `gmm_vi` example behind one function, [`run`], so that tests call it in-process.
//!
//! A Bayesian Gaussian mixture with isotropic components (`elbo_models::GaussianMixture`),
//!
//! ```text
//! w ~ Dirichlet(1_K),  μ_kd ~ N(0, 10²),  σ_k ~ LogNormal(0, 1)
//! log p(x | w, μ, σ) = Σ_i log Σ_k w_k Π_d N(x_id | μ_kd, σ_k²)
//! ```
//!
//! is fitted by ADVI to simulated data with known truth (or to the points of a CSV file). The
//! report gives the fitted weights, means and scales with their posterior sd next to the truth,
//! after matching fitted components to true ones (the likelihood is invariant under relabelling,
//! so a fit finds the truth up to a permutation π; we take the π minimising Σ_k ‖μ̂_π(k) − μ_k‖²).
//! Mixtures have poor local optima (two components sharing one cluster), hence `--restarts R`:
//! R fits from different k-means++ starts, keeping the one with the highest ELBO.

#[path = "../common/device.rs"]
mod device;
pub use device::DeviceArg;

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use elbo::prelude::*;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

#[path = "plot.rs"]
pub mod plot;
use elbo_models::GaussianMixture;

/// Steps between two updates of the progress bar (its cost stays far below 1 % of a step).
const BAR_EVERY: usize = 50;
/// Steps averaged for the smoothed ELBO (bar and trace plot).
const SMOOTH: usize = 100;
/// The largest K for which the label matching tries every permutation (8! = 40,320).
const BRUTE_FORCE_K: usize = 8;

/// The variational family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FamilyArg {
    /// Diagonal Gaussian q (ADVI's mean-field family).
    Meanfield,
    /// Gaussian q with a dense covariance.
    Fullrank,
}

impl FamilyArg {
    fn label(self) -> &'static str {
        match self {
            FamilyArg::Meanfield => "mean-field",
            FamilyArg::Fullrank => "full-rank",
        }
    }
}

/// A whole number ≥ 1, with a plain message otherwise.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!("`{s}` is not a whole number ≥ 1")),
    }
}

/// Fit a Bayesian Gaussian mixture by ADVI and compare it with the truth it was simulated from
/// (or fit the points of a CSV file).
#[derive(Parser, Debug, Clone)]
#[command(name = "gmm_vi")]
pub struct Args {
    /// Variational family.
    #[arg(long, value_enum, default_value_t = FamilyArg::Meanfield)]
    pub family: FamilyArg,
    /// Number of mixture components K.
    #[arg(long, default_value_t = 3, value_parser = at_least_one)]
    pub k: usize,
    /// Number of simulated points N [default: 1000; with --data, the file's rows].
    #[arg(long, value_parser = at_least_one)]
    pub n: Option<usize>,
    /// Dimension D of the simulated points [default: 2; with --data, the file's columns].
    #[arg(long, value_parser = at_least_one)]
    pub d: Option<usize>,
    /// Draws of z per step (S).
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub samples: usize,
    /// The most optimisation steps per fit (the default stopping rule usually stops sooner).
    #[arg(long, default_value_t = 20_000, value_parser = at_least_one)]
    pub steps: usize,
    /// Adam's learning rate (constant, unless --lr-final is given).
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub lr: f64,
    /// Decay the learning rate geometrically from --lr to this value over the steps.
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    pub lr_final: Option<f64>,
    /// Seed of the simulated data and of the first fit (restart r uses seed + r).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fits from different starts; the one with the highest ELBO is kept.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub restarts: usize,
    /// Fit the points of this CSV file (one point a row, D numeric columns, header optional).
    #[arg(long, value_name = "FILE.csv")]
    pub data: Option<PathBuf>,
    /// Minibatch size B: each step sees B random points, the likelihood scaled by N / B (the final
    /// ELBO, on all points, then uses 200 draws).
    #[arg(long, value_parser = at_least_one)]
    pub batch: Option<usize>,
    /// Where to fit: `auto` is the GPU when built with `--features cuda` and one is there.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Folder for the plots (created if missing).
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// No plots.
    #[arg(long)]
    pub no_plot: bool,
}

/// What can go wrong (after clap has parsed the arguments): bad settings or input data, a failed fit, a file that cannot be written.
#[derive(Debug)]
pub enum AppError {
    /// Bad arguments or data, with the file, line and column where there is one.
    Input(String),
    /// The fit failed.
    Fit(elbo::Error),
    /// Writing a result failed.
    Output(String),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Input(m) | AppError::Output(m) => write!(f, "{m}"),
            AppError::Fit(e) => write!(f, "the fit failed: {e}"),
        }
    }
}

impl std::error::Error for AppError {}

impl From<elbo::Error> for AppError {
    fn from(e: elbo::Error) -> Self {
        AppError::Fit(e)
    }
}

impl From<candle_core::Error> for AppError {
    fn from(e: candle_core::Error) -> Self {
        AppError::Fit(e.into())
    }
}

/// Weights, means (K lists of D numbers) and scales of a mixture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mixture {
    /// w_k.
    pub weights: Vec<f64>,
    /// μ_k, one list of D numbers per component.
    pub means: Vec<Vec<f64>>,
    /// σ_k.
    pub scales: Vec<f64>,
}

impl Mixture {
    /// The components in the order `order` (component k of the result is `order[k]` of self).
    fn permuted(&self, order: &[usize]) -> Mixture {
        Mixture {
            weights: order.iter().map(|&j| self.weights[j]).collect(),
            means: order.iter().map(|&j| self.means[j].clone()).collect(),
            scales: order.iter().map(|&j| self.scales[j]).collect(),
        }
    }
}

/// The results: what was fitted, how the fit went, and the estimates next to the truth.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `meanfield` or `fullrank`.
    pub family: FamilyArg,
    /// Components K.
    pub k: usize,
    /// Points N.
    pub n: usize,
    /// Dimension D.
    pub d: usize,
    /// Where the points came from: `simulated` or the CSV path.
    pub data: String,
    /// Steps run by the kept fit.
    pub steps: usize,
    /// Draws per step.
    pub samples: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Minibatch size, if any.
    pub batch: Option<usize>,
    /// Fits run.
    pub restarts: usize,
    /// `cpu` or `cuda:0`.
    pub device: String,
    /// The seed of the kept fit.
    pub seed: u64,
    /// The final ELBO of every fit, in the order they ran.
    pub restart_elbos: Vec<f64>,
    /// Wall time of all fits (steps and final ELBO estimates), seconds.
    pub seconds: f64,
    /// Time per step of the kept fit, microseconds.
    pub us_per_step: f64,
    /// The kept fit's ELBO on fresh draws.
    pub elbo: f64,
    /// Its Monte Carlo standard error.
    pub elbo_se: f64,
    /// Pareto k̂ of the importance ratios p(x, z) / q(z).
    pub k_hat: f64,
    /// Why the kept fit stopped.
    pub stop_reason: String,
    /// Steps skipped because of non-finite values.
    pub skipped_steps: usize,
    /// The parameters the data were simulated from; `null` for user data.
    #[serde(rename = "true")]
    pub truth: Option<Mixture>,
    /// Posterior means, matched to the truth's component order when there is a truth.
    pub estimate: Mixture,
    /// Posterior standard deviations, in the order of `estimate`.
    pub posterior_sd: Mixture,
    /// `matching[k]` = the fitted component shown as component k.
    pub matching: Vec<usize>,
    /// max over k, d of |μ̂_kd − μ_kd| after matching; `null` without a truth.
    pub max_abs_mean_error: Option<f64>,
    /// The plots written.
    pub plots: Vec<PathBuf>,
    /// The fit report (elbo's `Fit` display, without its unmatched summary table).
    #[serde(skip)]
    pub fit_text: String,
    /// Things the user should know (printed on stderr).
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// The data to fit, with the truth when simulated.
struct Data {
    gmm: GaussianMixture,
    truth: Option<Mixture>,
    source: String,
}

/// The summary of one fit, on the host.
struct Fitted {
    seed: u64,
    text: String,
    elbo: f64,
    elbo_se: f64,
    k_hat: f64,
    stop_reason: String,
    iterations: usize,
    skipped: usize,
    us_per_step: f64,
    trace: Vec<f64>,
    mean: Mixture,
    sd: Mixture,
}

/// Simulates or reads the data, fits (R times), matches the components to the truth, plots,
/// writes the JSON, and returns the report.
pub fn run(args: Args) -> Result<Report, AppError> {
    check_settings(&args)?;
    let device = device::pick(args.device).map_err(AppError::Input)?;
    let mut data = load(&args)?;
    if !device.is_cpu() {
        data.gmm = data.gmm.to(DType::F64, &device)?;
    }
    let (k, n, d) = (data.gmm.k(), data.gmm.n(), data.gmm.d());
    if let Some(b) = args.batch {
        if b > n {
            return Err(AppError::Input(format!("--batch {b} is larger than the number of points N = {n}")));
        }
    }

    if !args.no_plot {
        // before the fit, so that a bad --out does not cost one
        std::fs::create_dir_all(&args.out)
            .map_err(|e| AppError::Output(format!("cannot create the folder {}: {e}", args.out.display())))?;
    }
    let bar = (!args.quiet && std::io::stdout().is_terminal()).then(|| progress_bar(&args));
    let start = Instant::now();
    let mut fits = Vec::with_capacity(args.restarts);
    for r in 0..args.restarts {
        let seed = args.seed.wrapping_add(r as u64);
        if let Some(bar) = &bar {
            bar.set_prefix(format!("fit {}/{}", r + 1, args.restarts));
        }
        let fitted = match args.family {
            FamilyArg::Meanfield => fit_one(MeanField, &data.gmm, &args, &device, seed, bar.as_ref())?,
            FamilyArg::Fullrank => fit_one(FullRank, &data.gmm, &args, &device, seed, bar.as_ref())?,
        };
        fits.push(fitted);
    }
    let seconds = start.elapsed().as_secs_f64();
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let restart_elbos: Vec<f64> = fits.iter().map(|f| f.elbo).collect();
    let best =
        (0..fits.len()).max_by(|&a, &b| nan_lowest(fits[a].elbo).total_cmp(&nan_lowest(fits[b].elbo))).unwrap_or(0);

    let fit = &fits[best];
    let matching = match &data.truth {
        Some(truth) => match_components(&fit.mean.means, &truth.means),
        None => (0..k).collect(),
    };
    let estimate = fit.mean.permuted(&matching);
    let posterior_sd = fit.sd.permuted(&matching);
    let max_abs_mean_error = data.truth.as_ref().map(|t| {
        t.means.iter().flatten().zip(estimate.means.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
    });

    let mut notes = Vec::new();
    let mut plots = Vec::new();
    if !args.no_plot {
        let x: Vec<Vec<f64>> = data.gmm.x().to_dtype(DType::F64)?.to_vec2()?;
        let weights: Vec<f64> = fit.mean.weights.clone();
        let means: Vec<f64> = fit.mean.means.concat();
        let labels = data.gmm.most_probable(&weights, &means, &fit.mean.scales);
        // colour by the matched order: the fitted component matching[k] is drawn as k
        let mut shown_as = vec![0; k];
        for (shown, &fitted) in matching.iter().enumerate() {
            shown_as[fitted] = shown;
        }
        let labels: Vec<usize> = labels.iter().map(|&l| shown_as[l.min(k - 1)]).collect();
        let text = plot::register_font();
        if !text {
            notes.push(format!(
                "note: the font {} is missing, so the plots have no text (install fonts-dejavu-core)",
                plot::FONT
            ));
        }
        let title_family = args.family.label();
        let clusters = args.out.join("gmm_clusters.png");
        plot::clusters(
            &clusters,
            &plot::Clusters {
                x: &x,
                labels: &labels,
                estimate: &estimate,
                truth: data.truth.as_ref(),
                title: format!("Gaussian mixture, K = {k}: {title_family} ADVI"),
            },
            text,
        )
        .map_err(|e| AppError::Output(format!("cannot draw {}: {e}", clusters.display())))?;
        plots.push(clusters);
        let trace = args.out.join("gmm_elbo.png");
        let traces: Vec<&[f64]> = fits.iter().map(|f| f.trace.as_slice()).collect();
        plot::elbo_trace(
            &trace,
            &plot::Trace {
                traces: &traces,
                best,
                window: SMOOTH,
                title: format!("ELBO while fitting ({title_family}, S = {}, Adam {})", args.samples, args.lr),
                final_elbo: (fit.elbo, fit.elbo_se),
            },
            text,
        )
        .map_err(|e| AppError::Output(format!("cannot draw {}: {e}", trace.display())))?;
        plots.push(trace);
    }

    let report = Report {
        family: args.family,
        k,
        n,
        d,
        data: data.source,
        steps: fit.iterations,
        samples: args.samples,
        lr: args.lr,
        batch: args.batch,
        restarts: args.restarts,
        device: device::name(&device),
        seed: fit.seed,
        restart_elbos,
        seconds,
        us_per_step: fit.us_per_step,
        elbo: fit.elbo,
        elbo_se: fit.elbo_se,
        k_hat: fit.k_hat,
        stop_reason: fit.stop_reason.clone(),
        skipped_steps: fit.skipped,
        truth: data.truth,
        estimate,
        posterior_sd,
        matching,
        max_abs_mean_error,
        plots,
        fit_text: fit.text.clone(),
        notes,
    };
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| AppError::Output(format!("cannot write {}: {e}", path.display())))?;
        std::fs::write(path, json + "\n")
            .map_err(|e| AppError::Output(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(report)
}

/// NaN sorts below every number (a fit whose ELBO is NaN is never kept over a finite one).
fn nan_lowest(x: f64) -> f64 {
    if x.is_nan() {
        f64::NEG_INFINITY
    } else {
        x
    }
}

fn check_settings(args: &Args) -> Result<(), AppError> {
    if !(args.lr > 0.0 && args.lr.is_finite()) {
        return Err(AppError::Input(format!("--lr {} must be a positive number", args.lr)));
    }
    if let Some(lr) = args.lr_final {
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(AppError::Input(format!("--lr-final {lr} must be a positive number")));
        }
    }
    Ok(())
}

/// Simulates the data with the truth, or reads them from the CSV file.
fn load(args: &Args) -> Result<Data, AppError> {
    match &args.data {
        None => {
            let (n, d) = (args.n.unwrap_or(1_000), args.d.unwrap_or(2));
            if args.k > n {
                return Err(AppError::Input(format!("--k {} is more than the number of points --n {n}", args.k)));
            }
            let (gmm, truth) = GaussianMixture::simulate(args.k, d, n, args.seed)?;
            let truth = Mixture { weights: truth.weights, means: truth.means, scales: truth.scales };
            Ok(Data { gmm, truth: Some(truth), source: format!("simulated (seed {})", args.seed) })
        }
        Some(path) => {
            let (rows, d) = read_csv(path)?;
            let n = rows.len() / d;
            if let Some(want) = args.d {
                if want != d {
                    return Err(AppError::Input(format!(
                        "--d {want} was given, but {} has {d} column{}",
                        path.display(),
                        if d == 1 { "" } else { "s" }
                    )));
                }
            }
            if let Some(want) = args.n {
                if want != n {
                    return Err(AppError::Input(format!(
                        "--n {want} was given, but {} has {n} data row{}",
                        path.display(),
                        if n == 1 { "" } else { "s" }
                    )));
                }
            }
            if args.k > n {
                return Err(AppError::Input(format!(
                    "--k {} is more than the number of points in {} (N = {n}): a mixture needs K ≤ N",
                    args.k,
                    path.display()
                )));
            }
            let x = Tensor::from_vec(rows, (n, d), &Device::Cpu)?;
            let gmm = GaussianMixture::new(&x, args.k)?;
            Ok(Data { gmm, truth: None, source: path.display().to_string() })
        }
    }
}

/// Reads points from a CSV file: comma-separated numbers, one point a line, every line with the
/// same number of columns D; blank lines are ignored; a first line with no number in it is a
/// header. Returns the values row-major and D. Every error names the file, line and column.
pub fn read_csv(path: &Path) -> Result<(Vec<f64>, usize), AppError> {
    let show = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::InvalidData => "it is not UTF-8 text".to_string(),
            _ => e.to_string(),
        };
        AppError::Input(format!("cannot read the data file {show}: {why}"))
    })?;
    let mut values = Vec::new();
    let mut width: Option<(usize, usize)> = None; // (D, the line that fixed it)
    let mut header_allowed = true;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(|c| c.trim().trim_matches('"')).collect();
        if std::mem::take(&mut header_allowed) && cells.iter().all(|c| c.parse::<f64>().is_err()) {
            continue; // a header: names, no numbers
        }
        match width {
            None => width = Some((cells.len(), line_no)),
            Some((d, first)) if d != cells.len() => {
                return Err(AppError::Input(format!(
                    "{show}, line {line_no}: {} column{}, but line {first} has {d} (every point needs the same D)",
                    cells.len(),
                    if cells.len() == 1 { "" } else { "s" }
                )))
            }
            Some(_) => {}
        }
        for (j, cell) in cells.iter().enumerate() {
            let at = || format!("{show}, line {line_no}, column {}", j + 1);
            let v: f64 = cell.parse().map_err(|_| {
                if cell.is_empty() {
                    AppError::Input(format!("{}: the cell is empty", at()))
                } else {
                    AppError::Input(format!("{}: `{cell}` is not a number", at()))
                }
            })?;
            if !v.is_finite() {
                return Err(AppError::Input(format!("{}: `{cell}` is not a finite number", at())));
            }
            values.push(v);
        }
    }
    match width {
        Some((d, _)) => Ok((values, d)),
        None => Err(AppError::Input(format!("{show} has no data rows (it is empty, or has a header alone)"))),
    }
}

fn progress_bar(args: &Args) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some((args.steps * args.restarts) as u64),
        ProgressDrawTarget::stdout_with_hz(10),
    );
    let style =
        ProgressStyle::with_template("{prefix} [{bar:40.cyan/blue}] {pos}/{len} steps, ELBO {msg} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("fit 1/{}", args.restarts));
    bar.set_message("…");
    bar
}

/// The mean of the last `window` finite values of a trace (NaN if there are none).
pub fn smoothed_tail(trace: &[f64], window: usize) -> f64 {
    let tail: Vec<f64> = trace.iter().rev().filter(|v| v.is_finite()).take(window).copied().collect();
    if tail.is_empty() {
        f64::NAN
    } else {
        tail.iter().sum::<f64>() / tail.len() as f64
    }
}

/// One fit from the k-means++ start of `seed`, driven step by step so that the bar can follow.
fn fit_one<F: Family>(
    family: F,
    gmm: &GaussianMixture,
    args: &Args,
    device: &Device,
    seed: u64,
    bar: Option<&ProgressBar>,
) -> Result<Fitted, AppError> {
    let mut advi = Advi::new(family)
        .dtype(DType::F64)
        .device(device.clone())
        .samples(args.samples)
        .steps(args.steps)
        .lr(args.lr)
        .seed(seed)
        .init_value("mu", gmm.initial_means(seed));
    if let Some(final_lr) = args.lr_final {
        advi = advi.lr_schedule(LrSchedule::Exponential { final_lr });
    }
    if let Some(b) = args.batch {
        // the final ELBO is evaluated on all N points: 200 draws instead of 1,000 keep that from
        // dwarfing the minibatch fit on large data (s.e. √5 × larger)
        advi = advi.batch(b).elbo_draws(200);
    }
    let mut state = advi.init(gmm)?;
    let done_before = bar.map_or(0, |b| b.position());
    while state.iteration() < args.steps && state.stop_reason().is_none() {
        advi.step(&mut state, gmm)?;
        if let Some(bar) = bar {
            if state.iteration() % BAR_EVERY == 0 {
                bar.set_position(done_before + state.iteration() as u64);
                bar.set_message(format!("{:.2}", smoothed_tail(state.trace(), SMOOTH)));
            }
        }
    }
    if let (Some(bar), Some(length)) = (bar, bar.and_then(|b| b.length())) {
        // the rule stopped early: the steps it did not need leave the bar's total
        bar.set_length(length - (args.steps - state.iteration()) as u64);
        bar.set_position(done_before + state.iteration() as u64);
    }
    let fit = advi.run(state, gmm)?;
    let (k, d) = (gmm.k(), gmm.d());
    let summary = fit.summary();
    let get = |name: &str, index: &[usize], size: usize| -> Result<(f64, f64), AppError> {
        let full = element_name(name, index, size);
        summary
            .get(&full)
            .map(|row| (row.mean, row.sd))
            .ok_or_else(|| AppError::Output(format!("the fit's summary has no element `{full}`")))
    };
    let mut mean = Mixture { weights: vec![], means: vec![], scales: vec![] };
    let mut sd = mean.clone();
    for c in 0..k {
        let (m, s) = get("w", &[c], k)?;
        mean.weights.push(m);
        sd.weights.push(s);
        let mut mu = Vec::with_capacity(d);
        let mut mu_sd = Vec::with_capacity(d);
        for j in 0..d {
            let (m, s) = get("mu", &[c, j], k * d)?;
            mu.push(m);
            mu_sd.push(s);
        }
        mean.means.push(mu);
        sd.means.push(mu_sd);
        let (m, s) = get("sigma", &[c], k)?;
        mean.scales.push(m);
        sd.scales.push(s);
    }
    // without the summary table, which is in the fitted order: the example prints a matched one
    let text = fit.report().to_string();
    Ok(Fitted {
        seed,
        text,
        elbo: fit.elbo(),
        elbo_se: fit.elbo_se(),
        k_hat: fit.k_hat(),
        stop_reason: fit.stop_reason().to_string(),
        iterations: fit.iterations(),
        skipped: fit.skipped_steps(),
        us_per_step: fit.elapsed().as_secs_f64() * 1e6 / fit.iterations().max(1) as f64,
        trace: fit.trace().to_vec(),
        mean,
        sd,
    })
}

/// An element's name as `elbo` spells it: `w[0]`, `mu[0,1]`, or the bare name for a block of one.
fn element_name(block: &str, index: &[usize], size: usize) -> String {
    if size == 1 {
        block.to_string()
    } else {
        let index: Vec<String> = index.iter().map(|i| i.to_string()).collect();
        format!("{block}[{}]", index.join(","))
    }
}

/// The fitted component to show as each true one: the permutation π minimising
/// Σ_k ‖μ̂_π(k) − μ_k‖², by trying every one for K ≤ 8 and greedily (closest pair first) beyond.
pub fn match_components(estimated: &[Vec<f64>], truth: &[Vec<f64>]) -> Vec<usize> {
    let k = truth.len().min(estimated.len());
    let cost = |t: usize, e: usize| -> f64 { truth[t].iter().zip(&estimated[e]).map(|(a, b)| (a - b).powi(2)).sum() };
    if k <= BRUTE_FORCE_K {
        let mut perm: Vec<usize> = (0..k).collect();
        let mut best = perm.clone();
        let mut best_cost = f64::INFINITY;
        permute(&mut perm, 0, &mut |p| {
            let c: f64 = p.iter().enumerate().map(|(t, &e)| cost(t, e)).sum();
            if c < best_cost {
                best_cost = c;
                best = p.to_vec();
            }
        });
        best
    } else {
        let mut pairs: Vec<(f64, usize, usize)> =
            (0..k).flat_map(|t| (0..k).map(move |e| (t, e))).map(|(t, e)| (cost(t, e), t, e)).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut out = vec![usize::MAX; k];
        let mut used = vec![false; k];
        for (_, t, e) in pairs {
            if out[t] == usize::MAX && !used[e] {
                out[t] = e;
                used[e] = true;
            }
        }
        out
    }
}

/// Calls `visit` with every permutation of `p[i..]` (Heap's algorithm would do too; K ≤ 8).
fn permute(p: &mut Vec<usize>, i: usize, visit: &mut impl FnMut(&[usize])) {
    if i == p.len() {
        visit(p);
        return;
    }
    for j in i..p.len() {
        p.swap(i, j);
        permute(p, i + 1, visit);
        p.swap(i, j);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "data: {}, N = {}, D = {}; model: K = {} components", self.data, self.n, self.d, self.k)?;
        if let Some(b) = self.batch {
            writeln!(f, "minibatches of {b} points (likelihood scaled by N / B = {:.1})", self.n as f64 / b as f64)?;
        }
        writeln!(f, "{}", self.fit_text)?;
        if self.restarts > 1 {
            let elbos: Vec<String> = self.restart_elbos.iter().map(|e| format!("{e:.2}")).collect();
            writeln!(f, "  restarts   {} fits, ELBOs {}; kept seed {}", self.restarts, elbos.join(", "), self.seed)?;
        }
        writeln!(f, "  wall time  {:.2} s for all fits on {}", self.seconds, self.device)?;
        writeln!(f)?;
        let truth = self.truth.as_ref();
        let matched = if truth.is_some() { ", fitted components matched to the true ones" } else { "" };
        writeln!(f, "posterior (mean and sd of q, 1,000 draws{matched}):")?;
        write!(f, "{:<10}", "parameter")?;
        if truth.is_some() {
            write!(f, " {:>9}", "true")?;
        }
        write!(f, " {:>10} {:>9}", "estimate", "sd")?;
        if truth.is_some() {
            write!(f, " {:>9}  fitted as", "error")?;
        }
        writeln!(f)?;
        let row = |f: &mut fmt::Formatter<'_>, name: String, t: Option<f64>, m: f64, s: f64, as_: String| {
            write!(f, "{name:<10}")?;
            if let Some(t) = t {
                write!(f, " {t:>9.3} {m:>10.4} {s:>9.4} {:>+9.4}  {as_}", m - t)?;
            } else {
                write!(f, " {m:>10.4} {s:>9.4}")?;
            }
            writeln!(f)
        };
        let (k, d) = (self.k, self.d);
        for c in 0..k {
            let j = self.matching[c];
            row(
                f,
                element_name("w", &[c], k),
                truth.map(|t| t.weights[c]),
                self.estimate.weights[c],
                self.posterior_sd.weights[c],
                element_name("w", &[j], k),
            )?;
        }
        for c in 0..k {
            let j = self.matching[c];
            for dd in 0..d {
                row(
                    f,
                    element_name("mu", &[c, dd], k * d),
                    truth.map(|t| t.means[c][dd]),
                    self.estimate.means[c][dd],
                    self.posterior_sd.means[c][dd],
                    element_name("mu", &[j, dd], k * d),
                )?;
            }
        }
        for c in 0..k {
            let j = self.matching[c];
            row(
                f,
                element_name("sigma", &[c], k),
                truth.map(|t| t.scales[c]),
                self.estimate.scales[c],
                self.posterior_sd.scales[c],
                element_name("sigma", &[j], k),
            )?;
        }
        if let Some(e) = self.max_abs_mean_error {
            writeln!(f, "max |μ̂ − μ| = {e:.4}")?;
        }
        if !self.plots.is_empty() {
            let shown: Vec<String> = self.plots.iter().map(|p| p.display().to_string()).collect();
            writeln!(f, "plots: {}", shown.join(", "))?;
        }
        Ok(())
    }
}
