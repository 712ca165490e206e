//! Affine maps z = m + A u between whitened coordinates u and the model's z, and the Gaussians
//! they carry over.
//!
//! ```text
//! z = m + A u,   A diagonal or lower triangular with a positive diagonal
//! q_u = N(μ, L Lᵀ)  ↦  q_z = N(m + A μ, (A L)(A L)ᵀ)      (A L is lower triangular again)
//! log p_u(u) = log p(x, m + A u) + log |det A|,   so ELBO(q_u; p_u) = ELBO(q_z; p)
//! ```
//!
//! A fit in u with A from a starting covariance Σ₀ ≈ A Aᵀ sees a posterior of sd about 1 in every
//! direction, whatever the scales and correlations in z: the optimiser's steps are then in the
//! posterior's own units.

use candle_core::{DType, Device, Tensor};

use crate::linalg::cholesky;
use crate::{Error, Result};

/// The linear part of an [`Affine`] map.
#[derive(Clone, Debug, PartialEq)]
pub enum AffineScale {
    /// A = diag(a), a > 0.
    Diagonal(Vec<f64>),
    /// A lower triangular (row-major D × D) with a positive diagonal.
    LowerTriangular(Vec<f64>),
}

/// Which affine maps a family keeps its form under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AffineKind {
    /// None: a fit of this family is not whitened.
    None,
    /// Diagonal maps (a mean-field Gaussian stays mean-field).
    Diagonal,
    /// Lower-triangular maps (a full-rank Gaussian).
    LowerTriangular,
}

/// z = m + A u.
#[derive(Clone, Debug, PartialEq)]
pub struct Affine {
    /// m, length D.
    pub shift: Vec<f64>,
    /// A.
    pub scale: AffineScale,
}

impl Affine {
    /// The map of `kind` whose A Aᵀ is the covariance `cov` (row-major D × D, symmetric positive
    /// definite) or, for a diagonal map, whose A² is `diag_var`, centred at `mean`.
    ///
    /// The Cholesky factor is taken of the unit-diagonal S = V^(−1/2) Σ V^(−1/2), V = diag(Σ),
    /// and scaled back, so that covariances whose sds differ by many orders of magnitude factor as
    /// well as their correlations do.
    pub(crate) fn from_covariance(mean: &[f64], cov: &[f64], diag_var: &[f64], kind: AffineKind) -> Result<Self> {
        let d = mean.len();
        let scale = match kind {
            AffineKind::None => return Err(Error::config("family", "not whitened", "this family keeps no affine map")),
            AffineKind::Diagonal => AffineScale::Diagonal(diag_var.iter().map(|v| v.sqrt()).collect()),
            AffineKind::LowerTriangular => {
                let sd: Vec<f64> = (0..d).map(|i| cov[i * d + i].sqrt()).collect();
                let unit: Vec<f64> = (0..d * d).map(|k| cov[k] / (sd[k / d] * sd[k % d])).collect();
                let l = cholesky(&unit, d)?;
                AffineScale::LowerTriangular((0..d * d).map(|k| l[k] * sd[k / d]).collect())
            }
        };
        let affine = Affine { shift: mean.to_vec(), scale };
        affine.validate()?;
        Ok(affine)
    }

    fn validate(&self) -> Result<()> {
        let d = self.shift.len();
        let diagonal_ok = |v: f64| v > 0.0 && v.is_finite();
        let ok = self.shift.iter().all(|v| v.is_finite())
            && match &self.scale {
                AffineScale::Diagonal(a) => a.len() == d && a.iter().all(|&v| diagonal_ok(v)),
                AffineScale::LowerTriangular(a) => {
                    a.len() == d * d
                        && (0..d).all(|i| diagonal_ok(a[i * d + i]))
                        && a.iter().all(|v| v.is_finite())
                        && (0..d).all(|i| (i + 1..d).all(|j| a[i * d + j] == 0.0))
                }
            };
        if ok {
            Ok(())
        } else {
            Err(Error::config("affine", "the map", "m must be finite and A triangular with a positive finite diagonal"))
        }
    }

    /// D.
    pub fn dim(&self) -> usize {
        self.shift.len()
    }

    /// log |det A|.
    pub fn log_det(&self) -> f64 {
        let d = self.dim();
        match &self.scale {
            AffineScale::Diagonal(a) => a.iter().map(|v| v.ln()).sum(),
            AffineScale::LowerTriangular(a) => (0..d).map(|i| a[i * d + i].ln()).sum(),
        }
    }

    /// m + A v.
    pub fn apply(&self, v: &[f64]) -> Vec<f64> {
        let d = self.dim();
        match &self.scale {
            AffineScale::Diagonal(a) => (0..d).map(|i| self.shift[i] + a[i] * v[i]).collect(),
            AffineScale::LowerTriangular(a) => {
                (0..d).map(|i| self.shift[i] + (0..=i).map(|j| a[i * d + j] * v[j]).sum::<f64>()).collect()
            }
        }
    }

    /// z = m + A u for each row of `rows` (row-major, D columns), as axpy loops over the columns
    /// of A (contiguous in `at`, Aᵀ row-major, for a triangular A), which vectorise.
    pub(crate) fn apply_rows(&self, rows: &[f64], at: &[f64]) -> Vec<f64> {
        let d = self.dim();
        let mut out = Vec::with_capacity(rows.len());
        for u in rows.chunks(d) {
            let start = out.len();
            out.extend_from_slice(&self.shift);
            let z = &mut out[start..];
            match &self.scale {
                AffineScale::Diagonal(a) => z.iter_mut().zip(a).zip(u).for_each(|((z, a), u)| *z += a * u),
                AffineScale::LowerTriangular(_) => {
                    for (j, uj) in u.iter().enumerate() {
                        z[j..].iter_mut().zip(&at[j * d + j..(j + 1) * d]).for_each(|(z, a)| *z += uj * a);
                    }
                }
            }
        }
        out
    }

    /// Aᵀ g for each row of `rows` (a gradient in z carried back to u), as axpy loops over the
    /// rows of A, which vectorise.
    pub(crate) fn transpose_apply_rows(&self, rows: &[f64]) -> Vec<f64> {
        let d = self.dim();
        let mut out = vec![0.0; rows.len()];
        for (g, back) in rows.chunks(d).zip(out.chunks_mut(d)) {
            match &self.scale {
                AffineScale::Diagonal(a) => back.iter_mut().zip(a).zip(g).for_each(|((b, a), g)| *b = a * g),
                AffineScale::LowerTriangular(a) => {
                    for (i, gi) in g.iter().enumerate() {
                        back[..=i].iter_mut().zip(&a[i * d..i * d + i + 1]).for_each(|(b, a)| *b += gi * a);
                    }
                }
            }
        }
        out
    }

    /// Aᵀ row-major (the columns of A, contiguous), for [`Affine::apply_rows`].
    pub(crate) fn transposed(&self) -> Vec<f64> {
        let d = self.dim();
        match &self.scale {
            AffineScale::Diagonal(_) => Vec::new(),
            AffineScale::LowerTriangular(a) => (0..d * d).map(|k| a[(k % d) * d + k / d]).collect(),
        }
    }

    /// Aᵀ g: a gradient in z carried back to u.
    pub fn transpose_apply(&self, g: &[f64]) -> Vec<f64> {
        let d = self.dim();
        match &self.scale {
            AffineScale::Diagonal(a) => (0..d).map(|j| a[j] * g[j]).collect(),
            AffineScale::LowerTriangular(a) => (0..d).map(|j| (j..d).map(|i| a[i * d + j] * g[i]).sum()).collect(),
        }
    }

    /// A L for a lower-triangular L (row-major D × D): lower triangular again.
    pub fn scale_tril(&self, l: &[f64]) -> Vec<f64> {
        let d = self.dim();
        let mut out = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..=i {
                out[i * d + j] = match &self.scale {
                    AffineScale::Diagonal(a) => a[i] * l[i * d + j],
                    AffineScale::LowerTriangular(a) => (j..=i).map(|k| a[i * d + k] * l[k * d + j]).sum(),
                };
            }
        }
        out
    }

    /// The map on tensors: `[S, D]` u ↦ z, in `dtype` on `device`.
    pub(crate) fn tensors(&self, dtype: DType, device: &Device) -> Result<AffineTensors> {
        let d = self.dim();
        let host = |v: &[f64], shape: (usize, usize)| -> Result<Tensor> {
            Ok(Tensor::from_slice(v, shape, &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?)
        };
        let linear = match &self.scale {
            AffineScale::Diagonal(a) => Linear::Diagonal(host(a, (1, d))?),
            AffineScale::LowerTriangular(a) => {
                let at: Vec<f64> = (0..d * d).map(|k| a[(k % d) * d + k / d]).collect();
                Linear::Transposed(host(&at, (d, d))?)
            }
        };
        Ok(AffineTensors { shift: host(&self.shift, (1, d))?, linear, log_det: self.log_det() })
    }
}

/// An [`Affine`] map as tensors, applied to batches of draws.
#[derive(Clone, Debug)]
pub(crate) struct AffineTensors {
    shift: Tensor,
    linear: Linear,
    pub log_det: f64,
}

#[derive(Clone, Debug)]
enum Linear {
    /// a, `[1, D]`.
    Diagonal(Tensor),
    /// Aᵀ, `[D, D]`.
    Transposed(Tensor),
}

impl AffineTensors {
    /// z = m + u Aᵀ for `u` of shape `[S, D]`.
    pub(crate) fn apply(&self, u: &Tensor) -> candle_core::Result<Tensor> {
        let linear = match &self.linear {
            Linear::Diagonal(a) => u.broadcast_mul(a)?,
            Linear::Transposed(at) => u.matmul(at)?,
        };
        linear.broadcast_add(&self.shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-place row maps agree with the one-row ones, and Aᵀ is the transpose of A.
    #[test]
    fn the_row_maps_agree_with_the_one_row_maps() {
        let tril = vec![2.0, 0.0, 0.0, 0.5, 3.0, 0.0, -1.0, 0.25, 0.1];
        for scale in [AffineScale::Diagonal(vec![2.0, 3.0, 0.1]), AffineScale::LowerTriangular(tril)] {
            let affine = Affine { shift: vec![1.0, -2.0, 0.5], scale };
            let rows = vec![0.3, -1.0, 2.0, 1.5, 0.0, -0.7];
            let z = affine.apply_rows(&rows, &affine.transposed());
            let one: Vec<f64> = rows.chunks(3).flat_map(|r| affine.apply(r)).collect();
            assert!(z.iter().zip(&one).all(|(a, b)| (a - b).abs() < 1e-14), "{z:?} vs {one:?}");
            let g = affine.transpose_apply_rows(&rows);
            let one: Vec<f64> = rows.chunks(3).flat_map(|r| affine.transpose_apply(r)).collect();
            assert!(g.iter().zip(&one).all(|(a, b)| (a - b).abs() < 1e-14), "{g:?} vs {one:?}");
            // ⟨A u, v⟩ = ⟨u, Aᵀ v⟩ with the shift removed
            let (u, v) = ([0.3, -1.0, 2.0], [1.5, 0.0, -0.7]);
            let au: Vec<f64> = affine.apply(&u).iter().zip(&affine.shift).map(|(z, m)| z - m).collect();
            let atv = affine.transpose_apply(&v);
            let lhs: f64 = au.iter().zip(&v).map(|(a, b)| a * b).sum();
            let rhs: f64 = u.iter().zip(&atv).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-12);
        }
    }
}
