//! Hessians by central differences of an autodiff gradient, and the check that one is positive
//! definite.
//!
//! ```text
//! H[:, j] ≈ (∇f(x + hⱼ eⱼ) − ∇f(x − hⱼ eⱼ)) / (2 hⱼ),   hⱼ = ε^(1/3) · max(1, |xⱼ|)   (ε of the dtype)
//! H ← (H + Hᵀ) / 2
//! positive definite ⇔ λ_min(H) > τ,   τ = n · max|Hᵢⱼ − Hⱼᵢ| + 100 ε^(2/3) · max|λ(H)|
//! ```
//!
//! The 2n gradients are evaluated as one batch. The error of a central difference is about
//! ε^(2/3) of the gradient's scale (hⱼ balances truncation, O(h²), against rounding, O(ε / h)); the
//! asymmetry of the difference quotients measures it, so τ counts as zero every eigenvalue that the
//! differencing cannot tell from zero.

use crate::linalg::{spd_inverse, symmetric_eigen};
use crate::{Error, Result};

use super::describe_direction;

/// The steps hⱼ and the 2n points x ± hⱼ eⱼ (row-major `[2n, n]`: +h₀, −h₀, +h₁, …), for
/// arithmetic of machine epsilon `eps`.
pub(crate) fn stencil(x: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>) {
    let n = x.len();
    let h: Vec<f64> = x.iter().map(|v| eps.cbrt() * v.abs().max(1.0)).collect();
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
    pub asymmetry: f64,
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
        let asymmetry = (0..n)
            .flat_map(|i| (0..i).map(move |j| (i, j)))
            .fold(0.0f64, |m, (i, j)| m.max((raw[i * n + j] - raw[j * n + i]).abs()));
        let h = (0..n * n).map(|k| 0.5 * (raw[k] + raw[(k % n) * n + k / n])).collect();
        Hessian { n, h, asymmetry, eps }
    }

    /// H⁻¹, after checking that H is positive definite ([`Error::NotPositiveDefinite`] names the
    /// flattest direction by `names`, with `what` and `advice` in the message).
    pub(crate) fn inverse(&self, what: &str, names: &[String], advice: &str) -> Result<Vec<f64>> {
        let (values, vectors) = symmetric_eigen(&self.h, self.n)?;
        let largest = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let tolerance = self.n as f64 * self.asymmetry + 100.0 * self.eps.powf(2.0 / 3.0) * largest;
        if values[0] <= tolerance {
            return Err(Error::NotPositiveDefinite {
                what: what.to_string(),
                eigenvalue: values[0],
                largest: values[self.n - 1],
                direction: describe_direction(&vectors[0], names),
                advice: advice.to_string(),
            });
        }
        spd_inverse(&self.h, self.n)
    }
}
