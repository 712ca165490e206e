//! Checks shared by the models' constructors: a design matrix X `[N, D]` and a response y `[N]`.

use elbo::{Error, Result};

pub(crate) use elbo::glm::check_design;

/// Checks a positive, finite standard deviation.
pub(crate) fn check_sd(name: &'static str, sd: f64) -> Result<()> {
    if sd > 0.0 && sd.is_finite() {
        Ok(())
    } else {
        Err(Error::config(name, sd, "a standard deviation must be positive and finite"))
    }
}
