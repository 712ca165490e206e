//! The results of `gmm_vi`: what was fitted, how the fit went, and the estimates next to the
//! truth, as the text printed on stdout and as the JSON of `--json`.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::FamilyArg;

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

/// An element's name as `elbo` spells it: `w[0]`, `mu[0,1]`, or the bare name for a block of one.
pub fn element_name(block: &str, index: &[usize], size: usize) -> String {
    if size == 1 {
        block.to_string()
    } else {
        let index: Vec<String> = index.iter().map(|i| i.to_string()).collect();
        format!("{block}[{}]", index.join(","))
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
