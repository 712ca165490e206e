//! Posterior draws and summaries in the constrained space, by parameter name, and their export.
//!
//! ```text
//! for each element j:  mean_j = 1/n Σᵢ xᵢⱼ,   sd_j = √(1/(n−1) Σᵢ (xᵢⱼ − mean_j)²)
//!                      q_p = the p-quantile of x₁ⱼ … xₙⱼ (linear interpolation between order
//!                            statistics, position p (n − 1), R's type 7)
//! ```

use std::fmt;
use std::io::Write;

use candle_core::{DType, Device, Tensor};

use crate::latent::Latents;
use crate::{Error, Result};

/// n draws of every constrained element, with the elements' names (the columns).
#[derive(Clone, Debug, PartialEq)]
pub struct Draws {
    names: Vec<String>,
    /// Row-major `[n, names.len()]`.
    values: Vec<f64>,
}

impl Draws {
    /// Maps unconstrained draws z `[n, D]` through the latents to named constrained draws.
    pub fn from_unconstrained(latents: &Latents, z: &Tensor) -> Result<Self> {
        let z = z.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
        let (values, _) = latents.constrain(&z)?;
        let n = z.dim(0)?;
        let blocks: Vec<Tensor> = latents
            .blocks()
            .iter()
            .map(|b| values.get(b.name())?.reshape((n, b.size())))
            .collect::<candle_core::Result<_>>()?;
        let table = Tensor::cat(&blocks, 1)?;
        Ok(Draws { names: latents.element_names(), values: table.flatten_all()?.to_vec1()? })
    }

    /// The element names, e.g. `mu`, `theta[0]`, `L[1,0]`.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The number of draws n.
    pub fn len(&self) -> usize {
        if self.names.is_empty() {
            0
        } else {
            self.values.len() / self.names.len()
        }
    }

    /// Whether there are no draws.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Draw i, one value per name.
    pub fn row(&self, i: usize) -> &[f64] {
        let p = self.names.len();
        &self.values[i * p..(i + 1) * p]
    }

    /// Every draw of the element `name` (as [`Draws::names`] spells it), or `None`.
    pub fn column(&self, name: &str) -> Option<Vec<f64>> {
        let j = self.names.iter().position(|n| n == name)?;
        Some(self.column_at(j).collect())
    }

    /// Every draw of element j.
    fn column_at(&self, j: usize) -> impl Iterator<Item = f64> + '_ {
        self.values.iter().skip(j).step_by(self.names.len()).copied()
    }

    /// Mean, sd and 5/50/95 % quantiles of every element.
    pub fn summary(&self) -> Summary {
        let rows = (0..self.names.len())
            .map(|j| {
                let mut x: Vec<f64> = self.column_at(j).collect();
                SummaryRow::of(self.names[j].clone(), &mut x)
            })
            .collect();
        Summary { rows }
    }

    /// Writes the draws as CSV: a header of names, then one line per draw (RFC 4180 quoting, so a
    /// name like `L[1,0]` is written as `"L[1,0]"`).
    pub fn write_csv<W: Write>(&self, mut out: W) -> Result<()> {
        let header: Vec<String> = self.names.iter().map(|n| csv_field(n)).collect();
        writeln!(out, "{}", header.join(","))?;
        for i in 0..self.len() {
            let line: Vec<String> = self.row(i).iter().map(|v| format_number(*v)).collect();
            writeln!(out, "{}", line.join(","))?;
        }
        Ok(out.flush()?)
    }

    /// Writes the draws as one JSON object with the names as keys, in declaration order, and the
    /// draws of each as an array: `{"mu": [0.1, …], "tau": [1.3, …]}`. Non-finite values are
    /// written as `null` (JSON has no NaN or ∞).
    pub fn write_json<W: Write>(&self, mut out: W) -> Result<()> {
        write!(out, "{{")?;
        for (j, name) in self.names.iter().enumerate() {
            let key = serde_json::to_string(name).map_err(std::io::Error::other)?;
            let column: Vec<String> =
                self.column_at(j).map(|v| if v.is_finite() { format_number(v) } else { "null".into() }).collect();
            let sep = if j == 0 { "" } else { ", " };
            write!(out, "{sep}{key}: [{}]", column.join(", "))?;
        }
        writeln!(out, "}}")?;
        Ok(out.flush()?)
    }

    /// Writes CSV or JSON to `path`, chosen by its extension (`.csv` or `.json`).
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let path = path.as_ref();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let file = || std::fs::File::create(path).map(std::io::BufWriter::new);
        match ext {
            "csv" => self.write_csv(file()?),
            "json" => self.write_json(file()?),
            _ => Err(Error::config("save", path.display(), "the file name must end in .csv or .json")),
        }
    }
}

/// Shortest text that reads back as the same f64, always with a `.` or an exponent so that JSON
/// readers see a float (`-1.0`, `0.25`, `1e300`, `NaN`).
fn format_number(v: f64) -> String {
    format!("{v:?}")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One element's summary.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// The element's name.
    pub name: String,
    /// Posterior mean.
    pub mean: f64,
    /// Posterior standard deviation.
    pub sd: f64,
    /// 5 % quantile.
    pub q5: f64,
    /// Median.
    pub q50: f64,
    /// 95 % quantile.
    pub q95: f64,
}

impl SummaryRow {
    fn of(name: String, x: &mut [f64]) -> Self {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        x.sort_by(f64::total_cmp);
        SummaryRow { name, mean, sd, q5: quantile(x, 0.05), q50: quantile(x, 0.5), q95: quantile(x, 0.95) }
    }
}

/// The p-quantile of sorted values, interpolating linearly between order statistics.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Posterior summaries by element name, printed as a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    rows: Vec<SummaryRow>,
}

impl Summary {
    /// Every row, in declaration order.
    pub fn rows(&self) -> &[SummaryRow] {
        &self.rows
    }

    /// The row of element `name` (`tau`, `theta[3]`, `L[1,0]`).
    pub fn get(&self, name: &str) -> Option<&SummaryRow> {
        self.rows.iter().find(|r| r.name == name)
    }
}

impl fmt::Display for Summary {
    /// The table; with `{:.N}` (e.g. `{:.20}`) only the first N rows, with a line saying how many
    /// more there are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = f.precision().unwrap_or(self.rows.len()).min(self.rows.len());
        let width = self.rows.iter().take(shown).map(|r| r.name.chars().count()).max().unwrap_or(0).max(9);
        write!(f, "{:width$} {:>10} {:>10} {:>10} {:>10} {:>10}", "parameter", "mean", "sd", "5%", "50%", "95%")?;
        for r in &self.rows[..shown] {
            write!(f, "\n{:width$}", r.name)?;
            for v in [r.mean, r.sd, r.q5, r.q50, r.q95] {
                write!(f, " {}", number(v))?;
            }
        }
        if shown < self.rows.len() {
            write!(f, "\n… {} more rows (all in `summary().rows()`)", self.rows.len() - shown)?;
        }
        Ok(())
    }
}

/// A number in 10 columns with 4 significant digits, scientific when very large or small.
fn number(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        format!("{v:>10.3e}")
    } else {
        let decimals = if a >= 1.0 { 3usize.saturating_sub(a.log10().floor() as usize) } else { 4 };
        format!("{v:>10.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let x: Vec<f64> = (1..=5).map(f64::from).collect(); // 1 … 5
        assert_eq!(quantile(&x, 0.0), 1.0);
        assert_eq!(quantile(&x, 0.5), 3.0);
        assert_eq!(quantile(&x, 0.95), 4.8); // h = 3.8
        let mut y = vec![3.0, 1.0, 2.0, 5.0, 4.0];
        let row = SummaryRow::of("a".into(), &mut y);
        assert_eq!((row.mean, row.q50), (3.0, 3.0));
        assert!((row.sd - 2.5f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn csv_quotes_names_with_commas_and_json_writes_null_for_nan() {
        let d = Draws { names: vec!["L[1,0]".into(), "say \"hi\"".into()], values: vec![0.5, f64::NAN, -1.0, 2.0] };
        let mut csv = Vec::new();
        d.write_csv(&mut csv).unwrap();
        assert_eq!(String::from_utf8(csv).unwrap(), "\"L[1,0]\",\"say \"\"hi\"\"\"\n0.5,NaN\n-1.0,2.0\n");
        let mut json = Vec::new();
        d.write_json(&mut json).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed["L[1,0]"], serde_json::json!([0.5, -1.0]));
        assert_eq!(parsed["say \"hi\""], serde_json::json!([null, 2.0]));
    }
}
