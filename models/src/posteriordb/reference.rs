//! Reference moments of a posterior (`reference.json`), and how far a fit's summary is from them.
//!
//! ```text
//! for each element j:  z_j = (mean_q,j − mean_ref,j) / sd_ref,j      (standardised mean error)
//!                      r_j = sd_q,j / sd_ref,j                       (sd ratio)
//! max |z| = max_j |z_j|,   worst sd ratio = the r_j farthest from 1 in log terms (max_j |ln r_j|)
//! accurate:  max |z| < 0.1 and every r_j in [0.9, 1.1]
//! moderate:  max |z| < 0.5 and every r_j in [1/1.5, 1.5]
//! gross:     anything worse (or a non-finite mean or sd)
//! ```
//!
//! The reference names elements as Stan does, 1-based (`beta[1]`, `theta1[2]`, `L[2,1]`); `elbo`'s
//! summaries name them 0-based (`beta[0]`, `theta1[1]`, `L[1,0]`), and [`stan_name`] maps one
//! onto the other. The reference's Monte Carlo error is about 0.01 sd, so differences of z below
//! about 0.03 are not resolved.

use std::fmt;
use std::path::Path;

use elbo::{Error, Result, Summary};

/// One element's reference moments.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceRow {
    /// The element's name as posteriordb spells it (1-based: `beta[1]`).
    pub name: String,
    /// Posterior mean.
    pub mean: f64,
    /// Posterior sd (n − 1 denominator).
    pub sd: f64,
    /// 5 % quantile.
    pub q5: f64,
    /// Median.
    pub q50: f64,
    /// 95 % quantile.
    pub q95: f64,
}

/// The reference moments of every element of a posterior.
///
/// ```
/// use elbo_models::posteriordb::{Reference, ReferenceRow};
///
/// let row = |name: &str, mean, sd| ReferenceRow { name: name.into(), mean, sd, q5: f64::NAN, q50: mean, q95: f64::NAN };
/// let reference = Reference::new(vec![row("beta[1]", 2.0, 0.5), row("sigma", 1.0, 0.1)], "inline")?;
/// assert_eq!(reference.get("sigma").unwrap().sd, 0.1);
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    rows: Vec<ReferenceRow>,
    origin: String,
}

impl Reference {
    /// A reference from its rows; `origin` names it in errors. Fails for a repeated name, a
    /// non-finite mean, or an sd that is not positive and finite.
    pub fn new(rows: Vec<ReferenceRow>, origin: impl Into<String>) -> Result<Self> {
        let origin = origin.into();
        let bad = |problem: String| Error::DataFile { path: origin.clone(), problem };
        for (i, row) in rows.iter().enumerate() {
            if rows[..i].iter().any(|r| r.name == row.name) {
                return Err(bad(format!("element `{}` is given twice", row.name)));
            }
            if !(row.mean.is_finite() && row.sd > 0.0 && row.sd.is_finite()) {
                return Err(bad(format!(
                    "element `{}` has mean {} and sd {}: the mean must be finite and the sd positive",
                    row.name, row.mean, row.sd
                )));
            }
        }
        if rows.is_empty() {
            return Err(bad("has no parameter elements".into()));
        }
        Ok(Reference { rows, origin })
    }

    /// Reads a posteriordb `reference.json` (an object `parameters` of elements, each with
    /// `mean`, `sd`, `q5`, `q50`, `q95`).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::DataFile {
            path: path.display().to_string(),
            problem: format!("cannot be read ({e})"),
        })?;
        Reference::parse(&text, path.display().to_string())
    }

    /// Parses the text of a `reference.json`; `origin` names it in errors.
    pub fn parse(text: &str, origin: impl Into<String>) -> Result<Self> {
        let origin = origin.into();
        let bad = |problem: String| Error::DataFile { path: origin.clone(), problem };
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(format!("is not valid JSON: {e}")))?;
        let parameters = json
            .get("parameters")
            .and_then(|p| p.as_object())
            .ok_or_else(|| bad("has no object `parameters`".into()))?;
        let mut rows = Vec::with_capacity(parameters.len());
        for (name, entry) in parameters {
            let number = |key: &str| {
                entry
                    .get(key)
                    .and_then(|v| v.as_f64())
                    .ok_or_else(|| bad(format!("element `{name}` has no number `{key}`")))
            };
            rows.push(ReferenceRow {
                name: name.clone(),
                mean: number("mean")?,
                sd: number("sd")?,
                q5: number("q5")?,
                q50: number("q50")?,
                q95: number("q95")?,
            });
        }
        Reference::new(rows, origin)
    }

    /// Every element (in the file's order of keys, which `serde_json` sorts by name).
    pub fn rows(&self) -> &[ReferenceRow] {
        &self.rows
    }

    /// The element `name` (1-based, as posteriordb spells it).
    pub fn get(&self, name: &str) -> Option<&ReferenceRow> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// Where the reference came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The summary of a fit against the reference, in the summary's order of elements. Every
    /// element of the summary must be in the reference and the other way round (after
    /// [`stan_name`]); an error names the ones that are not.
    pub fn compare(&self, summary: &Summary) -> Result<Comparison> {
        let bad = |problem: String| Error::DataFile { path: self.origin.clone(), problem };
        let names: Vec<String> = summary.rows().iter().map(|r| stan_name(&r.name)).collect();
        let mut rows = Vec::with_capacity(names.len());
        for (row, name) in summary.rows().iter().zip(&names) {
            let reference = self.get(name).ok_or_else(|| {
                let known: Vec<&str> = self.rows.iter().map(|r| r.name.as_str()).collect();
                bad(format!("has no element `{name}` (the summary's `{}`); it has {}", row.name, known.join(", ")))
            })?;
            rows.push(ComparisonRow {
                name: name.clone(),
                mean_ref: reference.mean,
                sd_ref: reference.sd,
                mean: row.mean,
                sd: row.sd,
                z: (row.mean - reference.mean) / reference.sd,
                sd_ratio: row.sd / reference.sd,
            });
        }
        if let Some(missing) = self.rows.iter().find(|r| !names.contains(&r.name)) {
            return Err(bad(format!(
                "has element `{}`, which the summary does not (it has {})",
                missing.name,
                names.join(", ")
            )));
        }
        Ok(Comparison::new(rows))
    }
}

/// An `elbo` element name as Stan spells it: every index inside the brackets plus one (`beta[0]`
/// → `beta[1]`, `L[1,0]` → `L[2,1]`; `sigma` stays `sigma`).
///
/// ```
/// use elbo_models::posteriordb::stan_name;
/// assert_eq!(stan_name("theta1[1]"), "theta1[2]");
/// assert_eq!(stan_name("L[1,0]"), "L[2,1]");
/// assert_eq!(stan_name("sigma"), "sigma");
/// ```
pub fn stan_name(name: &str) -> String {
    let Some((base, rest)) = name.split_once('[') else { return name.to_string() };
    let Some(inside) = rest.strip_suffix(']') else { return name.to_string() };
    let shifted: Option<Vec<String>> =
        inside.split(',').map(|i| i.trim().parse::<usize>().ok().map(|i| (i + 1).to_string())).collect();
    match shifted {
        Some(indices) => format!("{base}[{}]", indices.join(",")),
        None => name.to_string(),
    }
}

/// One element of a [`Comparison`].
#[derive(Clone, Debug, PartialEq)]
pub struct ComparisonRow {
    /// The element's name (Stan's spelling).
    pub name: String,
    /// The reference mean.
    pub mean_ref: f64,
    /// The reference sd.
    pub sd_ref: f64,
    /// The fit's mean.
    pub mean: f64,
    /// The fit's sd.
    pub sd: f64,
    /// (mean − mean_ref) / sd_ref.
    pub z: f64,
    /// sd / sd_ref.
    pub sd_ratio: f64,
}

/// How far a fit's means and sds are from the reference (module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// max_j |z_j| (NaN if some z_j is not finite).
    pub max_abs_z: f64,
    /// The sd ratio farthest from 1 in log terms (NaN if some ratio is not finite and positive).
    pub worst_sd_ratio: f64,
    /// Every element, in the summary's order.
    pub rows: Vec<ComparisonRow>,
}

/// How close a fit is to the reference (thresholds in the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quality {
    /// max |z| < 0.1 and every sd within 10 %.
    Accurate,
    /// max |z| < 0.5 and every sd within a factor 1.5.
    Moderate,
    /// Worse than moderate.
    Gross,
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quality::Accurate => "accurate",
            Quality::Moderate => "moderate",
            Quality::Gross => "gross",
        })
    }
}

impl Comparison {
    fn new(rows: Vec<ComparisonRow>) -> Self {
        let finite_z = rows.iter().all(|r| r.z.is_finite());
        let finite_r = rows.iter().all(|r| r.sd_ratio > 0.0 && r.sd_ratio.is_finite());
        let max_abs_z = if finite_z { rows.iter().map(|r| r.z.abs()).fold(0.0, f64::max) } else { f64::NAN };
        let worst_sd_ratio = if finite_r {
            rows.iter().map(|r| r.sd_ratio).max_by(|a, b| a.ln().abs().total_cmp(&b.ln().abs())).unwrap_or(1.0)
        } else {
            f64::NAN
        };
        Comparison { max_abs_z, worst_sd_ratio, rows }
    }

    /// The smallest and largest sd ratio.
    pub fn sd_ratio_range(&self) -> (f64, f64) {
        let ratios = self.rows.iter().map(|r| r.sd_ratio);
        (ratios.clone().fold(f64::INFINITY, f64::min), ratios.fold(f64::NEG_INFINITY, f64::max))
    }

    /// Accurate, moderate or gross (module doc).
    pub fn quality(&self) -> Quality {
        let (low, high) = self.sd_ratio_range();
        let finite = self.max_abs_z.is_finite() && self.worst_sd_ratio.is_finite();
        if finite && self.max_abs_z < 0.1 && low >= 0.9 && high <= 1.1 {
            Quality::Accurate
        } else if finite && self.max_abs_z < 0.5 && low >= 1.0 / 1.5 && high <= 1.5 {
            Quality::Moderate
        } else {
            Quality::Gross
        }
    }
}
