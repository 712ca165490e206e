//! The points of `gmm_vi`: simulated from a known mixture (seeded), or read from a CSV file.

use std::path::Path;

use elbo::prelude::*;
use elbo_models::GaussianMixture;

use super::{AppError, Args, Mixture};

/// The data to fit, with the truth when simulated.
pub struct Data {
    /// The model on the points.
    pub gmm: GaussianMixture,
    /// The mixture the points were simulated from; `None` for a CSV file.
    pub truth: Option<Mixture>,
    /// `simulated (seed s)` or the CSV path.
    pub source: String,
}

/// Simulates the data with the truth, or reads them from the CSV file.
pub fn load(args: &Args) -> Result<Data, AppError> {
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
        AppError::Data(format!("cannot read the data file {show}: {why}"))
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
                return Err(AppError::Data(format!(
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
                    AppError::Data(format!("{}: the cell is empty", at()))
                } else {
                    AppError::Data(format!("{}: `{cell}` is not a number", at()))
                }
            })?;
            if !v.is_finite() {
                return Err(AppError::Data(format!("{}: `{cell}` is not a finite number", at())));
            }
            values.push(v);
        }
    }
    match width {
        Some((d, _)) => Ok((values, d)),
        None => Err(AppError::Data(format!("{show} has no data rows (it is empty, or has a header alone)"))),
    }
}
