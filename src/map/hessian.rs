//! Hessians by central differences of an autodiff gradient, and the check that one is positive
//! definite: the curvature check and covariance of Laplace, DADVI's linear response, and the
//! Newton decrement λ² = ∇fᵀH⁻¹∇f and Newton steps −H⁻¹∇f of newton.rs.
//!
//! ```text
//! H[:, j] ≈ (∇f(x + hⱼ eⱼ) − ∇f(x − hⱼ eⱼ)) / (2 hⱼ),   hⱼ = ε^(1/3) · max(1, |xⱼ|)   (ε of the dtype)
//!   or hⱼ = ε^(1/3) · max(σⱼ, |xⱼ|) with σⱼ = √(H⁻¹)ⱼⱼ of a previous Hessian (`stencil_scaled`)
//! H ← (H + Hᵀ) / 2
//! S = D^(−1/2) H D^(−1/2),   D = diag(H)                  (unit diagonal: the scales divided out)
//! positive definite ⇔ Hᵢᵢ > νᵢ for every i, and λ_min(S) > τ,
//!   νᵢ = 100 ε Gᵢ / hᵢ,   Gᵢ = max |∂ᵢf| over the 2n points          (the rounding of column i)
//!   τ  = n · maxᵢⱼ |Hᵢⱼ − Hⱼᵢ| / √(Hᵢᵢ Hⱼⱼ) + 100 ε^(2/3) · max|λ(S)|
//! H⁻¹ = D^(−1/2) S⁻¹ D^(−1/2)
//! ```
//!
//! The 2n gradients are evaluated as one batch. The error of a central difference is about
//! ε^(2/3) of the gradient's scale (hⱼ balances truncation, O(h²), against rounding, O(ε / h)); the
//! asymmetry of the difference quotients measures it, so τ counts as zero every eigenvalue that the
//! differencing cannot tell from zero. The test is on S rather than H because the differencing
//! error of each entry scales with that entry's coordinates: a posterior whose sds differ by 10⁷
//! (condition number 10¹⁴) has a Hessian whose small eigenvalue is far below ε^(2/3) λ_max(H) yet
//! known to a few ulps, and S, whose eigenvalues lie in (0, n), sees it as it is. What S cannot
//! resolve is a correlation within τ of ±1: a direction along which the curvature is within the
//! differencing error of zero, that is, flat.
//!
//! For the Newton steps the Hessian need not be exact: with H off by a relative δ a step shrinks
//! λ² by about δ², and newton.rs takes a fresh one when a step shrinks it by less than 100×. Far
//! from the mode the check may find H indefinite; the steps are then not taken and L-BFGS goes on.

use crate::linalg::{spd_inverse, symmetric_eigen};
use crate::{Error, Result};

use super::describe_direction;

/// The steps hⱼ and the 2n points x ± hⱼ eⱼ (row-major `[2n, n]`: +h₀, −h₀, +h₁, …), for
/// arithmetic of machine epsilon `eps`.
pub(crate) fn stencil(x: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>) {
    stencil_scaled(x, &vec![1.0; x.len()], eps)
}

/// [`stencil`] with hⱼ = ε^(1/3) · max(σⱼ, |xⱼ|) for coordinate scales σ (the posterior sds from a
/// first Hessian), so that the steps follow the posterior's scale instead of 1.
pub(crate) fn stencil_scaled(x: &[f64], scale: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>) {
    let n = x.len();
    let h: Vec<f64> = x.iter().zip(scale).map(|(v, s)| eps.cbrt() * v.abs().max(*s)).collect();
    let mut points = Vec::with_capacity(2 * n * n);
    for (j, hj) in h.iter().enumerate() {
        for sign in [1.0, -1.0] {
            points.extend(x.iter().enumerate().map(|(i, v)| if i == j { v + sign * hj } else { *v }));
        }
    }
    (h, points)
}

/// A symmetric Hessian from the gradients at the [`stencil`] points (row-major `[2n, n]`), with the
/// largest asymmetry of the difference quotients before symmetrising.
#[derive(Clone, Debug)]
pub(crate) struct Hessian {
    pub n: usize,
    /// Row-major n×n, symmetric.
    pub h: Vec<f64>,
    /// |Hᵢⱼ − Hⱼᵢ| of the difference quotients before symmetrising, row-major n×n.
    pub asymmetry: Vec<f64>,
    /// νᵢ = 100 ε Gᵢ / hᵢ: how far the rounding of the gradient moves the diagonal entry Hᵢᵢ.
    pub noise: Vec<f64>,
    /// The machine epsilon of the gradients.
    pub eps: f64,
}

impl Hessian {
    pub(crate) fn from_stencil(h: &[f64], grads: &[f64], eps: f64) -> Self {
        let n = h.len();
        // column j: (∇f(x + hⱼ eⱼ) − ∇f(x − hⱼ eⱼ)) / 2hⱼ
        let raw: Vec<f64> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                (grads[2 * j * n + i] - grads[(2 * j + 1) * n + i]) / (2.0 * h[j])
            })
            .collect();
        let asymmetry = (0..n * n).map(|k| (raw[k] - raw[(k % n) * n + k / n]).abs()).collect();
        let noise =
            (0..n).map(|i| 100.0 * eps * grads.chunks(n).fold(0.0f64, |m, g| m.max(g[i].abs())) / h[i]).collect();
        let h = (0..n * n).map(|k| 0.5 * (raw[k] + raw[(k % n) * n + k / n])).collect();
        Hessian { n, h, asymmetry, noise, eps }
    }

    /// H⁻¹, after checking that H is positive definite ([`Error::NotPositiveDefinite`] names the
    /// flattest direction of H by `names`, with `what` and `advice` in the message).
    pub(crate) fn inverse(&self, what: &str, names: &[String], advice: &str) -> Result<Vec<f64>> {
        let n = self.n;
        let diagonal: Vec<f64> = (0..n).map(|i| self.h[i * n + i]).collect();
        let definite = diagonal.iter().zip(&self.noise).all(|(d, nu)| d.is_finite() && *d > *nu) && {
            let root: Vec<f64> = diagonal.iter().map(|d| d.sqrt()).collect();
            let scaled = |m: &[f64]| -> Vec<f64> { (0..n * n).map(|k| m[k] / (root[k / n] * root[k % n])).collect() };
            let s = scaled(&self.h);
            let (values, _) = symmetric_eigen(&s, n)?;
            let largest = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let asymmetry = scaled(&self.asymmetry).iter().fold(0.0f64, |m, v| m.max(*v));
            let tolerance = n as f64 * asymmetry + 100.0 * self.eps.powf(2.0 / 3.0) * largest;
            if values[0] > tolerance {
                let inverse = spd_inverse(&s, n)?;
                return Ok((0..n * n).map(|k| inverse[k] / (root[k / n] * root[k % n])).collect());
            }
            false
        };
        debug_assert!(!definite);
        let (values, vectors) = symmetric_eigen(&self.h, n)?;
        Err(Error::NotPositiveDefinite {
            what: what.to_string(),
            eigenvalue: values[0],
            largest: values[n - 1],
            direction: describe_direction(&vectors[0], names),
            advice: advice.to_string(),
        })
    }
}
