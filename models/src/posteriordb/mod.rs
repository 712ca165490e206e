//! The development set of real posteriors: eight posteriordb models with their data and reference
//! moments (`models/data/posteriordb/`, posteriordb's BSD-3 notice beside them), each an
//! [`elbo::Model`] that matches the Stan program.
//!
//! ```text
//! posterior                              model        D   constraints
//! earnings-earn_height                   Earnings     3   σ > 0; flat priors
//! kidiq-kidscore_interaction             Kidiq        5   σ > 0 (half-Cauchy); flat on β
//! arK-arK                                Ark          7   σ > 0
//! arma-arma11                            Arma         4   σ > 0
//! bball_drive_event_0-hmm_drive_0        Hmm          6   two 2-simplexes; two positive ordered [2]
//! low_dim_gauss_mix-low_dim_gauss_mix    GaussMix     5   ordered [2]; positive [2]; (0, 1)
//! mesquite-logmesquite_logvash           Mesquite     7   σ > 0; flat priors
//! nes2000-nes                            Nes         10   σ > 0; flat priors
//! ```
//!
//! D is the unconstrained dimension. The models' log densities are Stan's, constants included:
//! where the program has no prior statement the prior is flat (nothing is added), and the
//! Jacobians of the constraints are added by `elbo` ([`elbo::latent`]), as Stan adds them. Each
//! module's documentation has its model in formulas. A [`Reference`] holds posteriordb's
//! reference means and sds on the constrained scale, and [`Reference::compare`] measures a fit's
//! summary against them.
//!
//! ```
//! use elbo::prelude::*;
//! use elbo_models::posteriordb::{data_dir, Posterior};
//!
//! let posterior = Posterior::from_name("arK")?;
//! let model = posterior.model(&data_dir())?;
//! assert_eq!(model.dim(), 7);
//! let reference = posterior.reference(&data_dir())?;
//! assert_eq!(reference.rows().len(), 7);
//! # Ok::<(), elbo::Error>(())
//! ```

mod ark;
mod arma;
mod data;
mod earnings;
mod gauss_mix;
mod hmm;
mod kidiq;
mod mesquite;
mod nes;
mod reference;
mod regression;

use std::fmt;
use std::path::{Path, PathBuf};

use elbo::{Error, Model, Result};

pub use ark::Ark;
pub use arma::Arma;
pub use data::Data;
pub use earnings::Earnings;
pub use gauss_mix::GaussMix;
pub use hmm::Hmm;
pub use kidiq::Kidiq;
pub use mesquite::Mesquite;
pub use nes::Nes;
pub use reference::{stan_name, Comparison, ComparisonRow, Quality, Reference, ReferenceRow};

/// The folder of the set in this repository: `models/data/posteriordb`, one folder per posterior
/// (its `data.json` and `reference.json`).
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join("posteriordb")
}

/// A model of the set, boxed (each is also a type of its own: [`Earnings`], [`Hmm`], …).
pub type BoxedModel = Box<dyn Model + Send + Sync>;

/// One posterior of the development set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Posterior {
    /// earnings-earn_height ([`Earnings`]).
    Earnings,
    /// kidiq-kidscore_interaction ([`Kidiq`]).
    Kidiq,
    /// arK-arK ([`Ark`]).
    Ark,
    /// arma-arma11 ([`Arma`]).
    Arma,
    /// bball_drive_event_0-hmm_drive_0 ([`Hmm`]).
    Hmm,
    /// low_dim_gauss_mix-low_dim_gauss_mix ([`GaussMix`]).
    GaussMix,
    /// mesquite-logmesquite_logvash ([`Mesquite`]).
    Mesquite,
    /// nes2000-nes ([`Nes`]).
    Nes,
}

impl Posterior {
    /// The eight, in the order of the set's README.
    pub const ALL: [Posterior; 8] = [
        Posterior::Earnings,
        Posterior::Kidiq,
        Posterior::Ark,
        Posterior::Arma,
        Posterior::Hmm,
        Posterior::GaussMix,
        Posterior::Mesquite,
        Posterior::Nes,
    ];

    /// posteriordb's name, which is also its folder: `earnings-earn_height`, ….
    pub fn name(self) -> &'static str {
        match self {
            Posterior::Earnings => "earnings-earn_height",
            Posterior::Kidiq => "kidiq-kidscore_interaction",
            Posterior::Ark => "arK-arK",
            Posterior::Arma => "arma-arma11",
            Posterior::Hmm => "bball_drive_event_0-hmm_drive_0",
            Posterior::GaussMix => "low_dim_gauss_mix-low_dim_gauss_mix",
            Posterior::Mesquite => "mesquite-logmesquite_logvash",
            Posterior::Nes => "nes2000-nes",
        }
    }

    /// A short name: `earnings`, `kidiq`, `ark`, `arma`, `hmm`, `gauss_mix`, `mesquite`, `nes`
    /// (the model's file in `models/src/posteriordb/`).
    pub fn short_name(self) -> &'static str {
        match self {
            Posterior::Earnings => "earnings",
            Posterior::Kidiq => "kidiq",
            Posterior::Ark => "ark",
            Posterior::Arma => "arma",
            Posterior::Hmm => "hmm",
            Posterior::GaussMix => "gauss_mix",
            Posterior::Mesquite => "mesquite",
            Posterior::Nes => "nes",
        }
    }

    /// The posterior called `name`: posteriordb's name, the short name, or the data set's part
    /// of posteriordb's name (`earnings`, `bball_drive_event_0`), in any case.
    pub fn from_name(name: &str) -> Result<Self> {
        let wanted = name.trim().to_lowercase();
        Posterior::ALL
            .into_iter()
            .find(|p| {
                let full = p.name().to_lowercase();
                let data = full.split('-').next().unwrap_or_default();
                [full.as_str(), p.short_name(), data].contains(&wanted.as_str())
            })
            .ok_or_else(|| {
                let known: Vec<String> =
                    Posterior::ALL.iter().map(|p| format!("{} ({})", p.short_name(), p.name())).collect();
                Error::config("posterior", name, format!("not in the set; it has {}", known.join(", ")))
            })
    }

    /// The posterior's folder under `dir`, checked to exist; the error names the path and what to
    /// do.
    pub fn folder(self, dir: &Path) -> Result<PathBuf> {
        let folder = dir.join(self.name());
        if folder.is_dir() {
            Ok(folder)
        } else {
            Err(Error::DataFile {
                path: folder.display().to_string(),
                problem: format!(
                    "is not a folder: the development set lives in {} of this repository (one folder per \
                     posterior, each with data.json and reference.json): give the path of that folder",
                    data_dir().display()
                ),
            })
        }
    }

    /// The model, from `<dir>/<name>/data.json`.
    pub fn model(self, dir: &Path) -> Result<BoxedModel> {
        let data = Data::read(&self.folder(dir)?.join("data.json"))?;
        Ok(match self {
            Posterior::Earnings => Box::new(Earnings::new(&data)?),
            Posterior::Kidiq => Box::new(Kidiq::new(&data)?),
            Posterior::Ark => Box::new(Ark::new(&data)?),
            Posterior::Arma => Box::new(Arma::new(&data)?),
            Posterior::Hmm => Box::new(Hmm::new(&data)?),
            Posterior::GaussMix => Box::new(GaussMix::new(&data)?),
            Posterior::Mesquite => Box::new(Mesquite::new(&data)?),
            Posterior::Nes => Box::new(Nes::new(&data)?),
        })
    }

    /// The reference moments, from `<dir>/<name>/reference.json`.
    pub fn reference(self, dir: &Path) -> Result<Reference> {
        Reference::read(&self.folder(dir)?.join("reference.json"))
    }
}

impl fmt::Display for Posterior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
