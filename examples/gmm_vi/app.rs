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
//!
//! The pieces: `cli` (the flags), `data` (simulated or CSV points), `fit` (the R fits under one
//! progress bar), `matching` (fitted components to true ones), `report` (the text and the JSON),
//! `plot` (the PNG files); `run` below strings them together.

#[path = "../common/args.rs"]
mod args;
#[path = "../common/device.rs"]
mod device;
#[path = "../common/error.rs"]
mod error;
#[path = "../common/output.rs"]
mod output;

#[path = "cli.rs"]
mod cli;
#[path = "data.rs"]
mod data;
#[path = "fit.rs"]
mod fit;
#[path = "matching.rs"]
mod matching;
#[path = "plot.rs"]
pub mod plot;
#[path = "report.rs"]
mod report;

use std::path::PathBuf;

use elbo::prelude::*;

pub use cli::{Args, FamilyArg};
pub use device::DeviceArg;
pub use report::{Mixture, Report};
// the pieces tests/examples/gmm.rs checks on their own
#[allow(unused_imports)]
pub use {data::read_csv, matching::match_components};

/// `gmm_vi`, for the messages of its errors.
#[derive(Debug)]
pub struct GmmVi;

impl error::Example for GmmVi {
    const FIT_FAILED: &'static str = "the fit failed";
}

/// What can go wrong (after clap has parsed the arguments): bad settings or input data, a failed
/// fit, a file that cannot be written.
pub type AppError = error::AppError<GmmVi>;

/// Simulates or reads the data, fits (R times), matches the components to the truth, plots,
/// writes the JSON, and returns the report.
pub fn run(args: Args) -> Result<Report, AppError> {
    args.check()?;
    let device = device::pick(args.device).map_err(AppError::Input)?;
    let mut data = data::load(&args)?;
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
        output::create_folder(&args.out).map_err(AppError::Output)?;
    }
    let fits = fit::fit_all(&data.gmm, &args, &device)?;
    let fit = fits.kept();
    let matched = matching::matched(fit, data.truth.as_ref());

    let mut notes = Vec::new();
    let plots = if args.no_plot { Vec::new() } else { draw(&args, &data, &fits, &matched, &mut notes)? };

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
        restart_elbos: fits.fits.iter().map(|f| f.elbo).collect(),
        seconds: fits.seconds,
        us_per_step: fit.us_per_step,
        elbo: fit.elbo,
        elbo_se: fit.elbo_se,
        k_hat: fit.k_hat,
        stop_reason: fit.stop_reason.clone(),
        skipped_steps: fit.skipped,
        truth: data.truth,
        estimate: matched.estimate,
        posterior_sd: matched.posterior_sd,
        matching: matched.matching,
        max_abs_mean_error: matched.max_abs_mean_error,
        plots,
        fit_text: fit.text.clone(),
        notes,
    };
    if let Some(path) = &args.json {
        output::write_json(path, &report).map_err(AppError::Output)?;
    }
    Ok(report)
}

/// Draws the clusters of the kept fit and the ELBO traces of all fits into `args.out`; returns
/// their paths (and a note when there is no font for their text).
fn draw(
    args: &Args,
    data: &data::Data,
    fits: &fit::Fits,
    matched: &matching::Matched,
    notes: &mut Vec<String>,
) -> Result<Vec<PathBuf>, AppError> {
    let fit = fits.kept();
    let k = data.gmm.k();
    let x: Vec<Vec<f64>> = data.gmm.x().to_dtype(DType::F64)?.to_vec2()?;
    let weights: Vec<f64> = fit.mean.weights.clone();
    let means: Vec<f64> = fit.mean.means.concat();
    let labels = data.gmm.most_probable(&weights, &means, &fit.mean.scales);
    // colour by the matched order: the fitted component matching[k] is drawn as k
    let mut shown_as = vec![0; k];
    for (shown, &fitted) in matched.matching.iter().enumerate() {
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
    let mut plots = Vec::new();
    let clusters = args.out.join("gmm_clusters.png");
    plot::clusters(
        &clusters,
        &plot::Clusters {
            x: &x,
            labels: &labels,
            estimate: &matched.estimate,
            truth: data.truth.as_ref(),
            title: format!("Gaussian mixture, K = {k}: {title_family} ADVI"),
        },
        text,
    )
    .map_err(|e| AppError::Output(format!("cannot draw {}: {e}", clusters.display())))?;
    plots.push(clusters);
    let trace = args.out.join("gmm_elbo.png");
    let traces: Vec<&[f64]> = fits.fits.iter().map(|f| f.trace.as_slice()).collect();
    plot::elbo_trace(
        &trace,
        &plot::Trace {
            traces: &traces,
            best: fits.best,
            window: fit::SMOOTH,
            title: format!("ELBO while fitting ({title_family}, S = {}, Adam {})", args.samples, args.lr),
            final_elbo: (fit.elbo, fit.elbo_se),
        },
        text,
    )
    .map_err(|e| AppError::Output(format!("cannot draw {}: {e}", trace.display())))?;
    plots.push(trace);
    Ok(plots)
}
