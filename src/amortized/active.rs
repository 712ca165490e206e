//! Active latent units (Burda, Grosse & Salakhutdinov 2015): a dimension d is active when the
//! encoder's mean moves with the datum,
//!
//! ```text
//! A_d = Cov_x(E_q[z_d | x]) = Var over the data of μ_d(x),     d active ⇔ A_d > 0.01
//! ```
//!
//! An inactive dimension has q(z_d | x) ≈ p(z_d) for every x (posterior collapse): it carries no
//! information and its KL is ≈ 0.

use candle_core::{DType, Tensor};

use crate::{Error, Result};

/// The threshold on A_d above which dimension d counts as active.
pub const ACTIVE_THRESHOLD: f64 = 0.01;

/// A_d for each latent dimension: the variance (divisor N) over the rows of `loc` (`[N, D]`, the
/// encoder means of N data) of each column.
pub fn latent_activity(loc: &Tensor) -> Result<Vec<f64>> {
    let (n, _) = loc.dims2().map_err(|_| Error::DimensionMismatch {
        what: format!("encoder means of shape {:?} (want [N, D])", loc.dims()),
        expected: 2,
        got: loc.rank(),
    })?;
    if n == 0 {
        return Err(Error::EmptyData { what: "latent_activity needs at least one datum".into() });
    }
    let loc = loc.to_dtype(DType::F64)?;
    let mean = loc.mean_keepdim(0)?;
    Ok(loc.broadcast_sub(&mean)?.sqr()?.mean(0)?.to_vec1::<f64>()?)
}

/// The number of dimensions whose activity exceeds [`ACTIVE_THRESHOLD`].
pub fn active_units(activity: &[f64]) -> usize {
    activity.iter().filter(|&&a| a > ACTIVE_THRESHOLD).count()
}
