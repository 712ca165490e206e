//! Checks shared by the models' constructors: a design matrix X `[N, D]` and a response y `[N]`.

use candle_core::Tensor;
use elbo::{Error, Result};

/// Checks that `x` is `[N, D]` and `y` is `[N]` with N, D ≥ 1, both of one float dtype; returns (N, D).
pub(crate) fn check_design(model: &str, x: &Tensor, y: &Tensor) -> Result<(usize, usize)> {
    let (n, d) = x.dims2().map_err(|_| Error::ModelOutput {
        problem: format!("{model}: the design matrix X must be 2-D [N, D]; it has shape {:?}", x.dims()),
    })?;
    if n == 0 || d == 0 {
        return Err(Error::EmptyData {
            what: format!("{model}: X has shape [{n}, {d}]; it needs at least one row and one column"),
        });
    }
    if y.dims() != [n] {
        return Err(Error::DimensionMismatch {
            what: format!("{model}: y (shape {:?})", y.dims()),
            expected: n,
            got: y.elem_count(),
        });
    }
    if x.dtype() != y.dtype() || !x.dtype().is_float() {
        return Err(Error::config(
            "dtype",
            format!("X {:?}, y {:?}", x.dtype(), y.dtype()),
            "X and y must share one float dtype",
        ));
    }
    Ok((n, d))
}

/// Checks a positive, finite standard deviation.
pub(crate) fn check_sd(name: &'static str, sd: f64) -> Result<()> {
    if sd > 0.0 && sd.is_finite() {
        Ok(())
    } else {
        Err(Error::config(name, sd, "a standard deviation must be positive and finite"))
    }
}
