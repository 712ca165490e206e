//! Small dense linear algebra on the host (row-major `f64`), for what candle lacks: Cholesky
//! factors and triangular solves. Used for log q(z) of a full-rank Gaussian, for exact
//! posteriors in tests and models, and for checks.
//!
//! ```text
//! A = L Lᵀ                          (Cholesky, L lower triangular, Lᵢᵢ > 0)
//! solve_lower:       L x = b        (forward substitution)
//! solve_lower_t:     Lᵀ x = b       (back substitution)
//! log det A = 2 Σᵢ log Lᵢᵢ
//! A = V diag(λ) Vᵀ                  (symmetric A: cyclic Jacobi rotations, λ ascending)
//! ```
//!
//! Matrices are `&[f64]` of length n·n in row-major order.

use candle_core::{DType, Tensor};

use crate::{Error, Result};

/// A tensor's values on the host as `f64`, row-major (any shape, any float dtype, any device).
pub fn to_f64_vec(t: &Tensor) -> Result<Vec<f64>> {
    let t = t.flatten_all()?;
    Ok(match t.dtype() {
        DType::F64 => t.to_vec1::<f64>()?,
        _ => t.to_dtype(DType::F64)?.to_vec1::<f64>()?,
    })
}

/// Host values (row-major) as a tensor of `var`'s shape, dtype and device.
pub(crate) fn host_tensor(values: Vec<f64>, var: &candle_core::Var) -> Result<Tensor> {
    Ok(Tensor::from_vec(values, var.shape(), &candle_core::Device::Cpu)?
        .to_dtype(var.dtype())?
        .to_device(var.device())?)
}

/// The Cholesky factor L (lower triangular) of a symmetric positive-definite n×n matrix.
///
/// Fails with [`Error::InvalidConfig`] naming the first pivot that is not positive.
pub fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>> {
    check_square(a, n)?;
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if !(s.is_finite() && s > 0.0) {
                    return Err(Error::config(
                        "matrix",
                        format!("pivot {i} = {s}"),
                        "the matrix is not symmetric positive definite",
                    ));
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Ok(l)
}

/// Solves L x = b for lower-triangular L (n×n), in place on `b`.
pub fn solve_lower(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let row = &l[i * n..i * n + i];
        let s: f64 = row.iter().zip(&b[..i]).map(|(a, x)| a * x).sum();
        b[i] = (b[i] - s) / l[i * n + i];
    }
}

/// Solves Lᵀ x = b for lower-triangular L (n×n), in place on `b`.
pub fn solve_lower_t(l: &[f64], n: usize, b: &mut [f64]) {
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// The inverse of a symmetric positive-definite matrix, through its Cholesky factor.
pub fn spd_inverse(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let l = cholesky(a, n)?;
    let mut inv = vec![0.0; n * n];
    let mut col = vec![0.0; n];
    for j in 0..n {
        col.iter_mut().enumerate().for_each(|(i, c)| *c = if i == j { 1.0 } else { 0.0 });
        solve_lower(&l, n, &mut col);
        solve_lower_t(&l, n, &mut col);
        for i in 0..n {
            inv[i * n + j] = col[i];
        }
    }
    Ok(inv)
}

/// log det A of a symmetric positive-definite matrix.
pub fn spd_log_det(a: &[f64], n: usize) -> Result<f64> {
    let l = cholesky(a, n)?;
    Ok(2.0 * (0..n).map(|i| l[i * n + i].ln()).sum::<f64>())
}

/// The eigendecomposition A = V diag(λ) Vᵀ of a symmetric n×n matrix: the eigenvalues in ascending
/// order and, for each, its unit eigenvector (`vectors[k]` belongs to `values[k]`).
///
/// Cyclic Jacobi rotations (Golub & Van Loan §8.5): O(n³) a sweep and a handful of sweeps, accurate
/// to rounding for every eigenvalue, including those near zero. Only the lower triangle of `a` is
/// read. Fails with [`Error::InvalidConfig`] for an entry that is not finite.
pub fn symmetric_eigen(a: &[f64], n: usize) -> Result<(Vec<f64>, Vec<Vec<f64>>)> {
    check_square(a, n)?;
    if let Some(k) = a.iter().position(|x| !x.is_finite()) {
        return Err(Error::config(
            "matrix",
            format!("entry ({}, {}) = {}", k / n, k % n, a[k]),
            "entries must be finite",
        ));
    }
    let mut m: Vec<f64> = (0..n * n).map(|k| if k / n >= k % n { a[k] } else { a[(k % n) * n + k / n] }).collect();
    let mut v: Vec<f64> = (0..n * n).map(|k| if k / n == k % n { 1.0 } else { 0.0 }).collect();
    for _sweep in 0..64 {
        let off: f64 = (0..n).flat_map(|i| (0..i).map(move |j| (i, j))).map(|(i, j)| m[i * n + j].powi(2)).sum();
        let diag: f64 = (0..n).map(|i| m[i * n + i].powi(2)).sum();
        // converged when the off-diagonal part is below rounding: ‖offdiag‖_F ≤ ε ‖A‖_F
        if off <= f64::EPSILON.powi(2) * (diag + off) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // the rotation J (c, s) that zeroes m[p, q] in Jᵀ m J
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + theta.hypot(1.0));
                let c = 1.0 / t.hypot(1.0);
                let s = t * c;
                for k in 0..n {
                    let (kp, kq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * kp - s * kq;
                    m[k * n + q] = s * kp + c * kq;
                }
                for k in 0..n {
                    let (pk, qk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * pk - s * qk;
                    m[q * n + k] = s * pk + c * qk;
                }
                for k in 0..n {
                    let (kp, kq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * kp - s * kq;
                    v[k * n + q] = s * kp + c * kq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| m[i * n + i].total_cmp(&m[j * n + j]));
    let values = order.iter().map(|&k| m[k * n + k]).collect();
    let vectors = order.iter().map(|&k| (0..n).map(|i| v[i * n + k]).collect()).collect();
    Ok((values, vectors))
}

fn check_square(a: &[f64], n: usize) -> Result<()> {
    if a.len() != n * n {
        return Err(Error::config("matrix", format!("{} entries", a.len()), format!("expected {n}×{n}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_and_inverts_a_known_matrix() {
        // A = [[4, 2], [2, 3]]: L = [[2, 0], [1, √2]], det = 8.
        let a = [4.0, 2.0, 2.0, 3.0];
        let l = cholesky(&a, 2).unwrap();
        let want = [2.0, 0.0, 1.0, 2f64.sqrt()];
        l.iter().zip(want).for_each(|(x, y)| assert!((x - y).abs() < 1e-15));
        assert!((spd_log_det(&a, 2).unwrap() - 8f64.ln()).abs() < 1e-14);
        let inv = spd_inverse(&a, 2).unwrap();
        let want = [3.0 / 8.0, -2.0 / 8.0, -2.0 / 8.0, 4.0 / 8.0];
        inv.iter().zip(want).for_each(|(x, y)| assert!((x - y).abs() < 1e-15));
        let mut b = [2.0, 1.0 + 2f64.sqrt()];
        solve_lower(&l, 2, &mut b);
        assert!((b[0] - 1.0).abs() < 1e-15 && (b[1] - 1.0).abs() < 1e-15);
        let mut b = [3.0, 2f64.sqrt()];
        solve_lower_t(&l, 2, &mut b);
        assert!((b[0] - 1.0).abs() < 1e-15 && (b[1] - 1.0).abs() < 1e-15);
    }

    #[test]
    fn symmetric_eigen_reconstructs_the_matrix() {
        // [[2, 1], [1, 2]]: eigenvalues 1 and 3, eigenvectors (1, −1)/√2 and (1, 1)/√2
        let (values, vectors) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2).unwrap();
        assert!((values[0] - 1.0).abs() < 1e-15 && (values[1] - 3.0).abs() < 1e-15, "{values:?}");
        assert!((vectors[0][0] + vectors[0][1]).abs() < 1e-15 && (vectors[0][0].abs() - 0.5f64.sqrt()).abs() < 1e-15);
        // a 5×5 matrix with one zero eigenvalue (rank 4): A = Σ_k λ_k v_k v_kᵀ must come back
        let n = 5;
        let b: Vec<f64> = (0..n * 4).map(|k| ((k * 7 + 3) % 11) as f64 - 5.0).collect(); // [5, 4]
        let a: Vec<f64> = (0..n * n).map(|k| (0..4).map(|j| b[(k / n) * 4 + j] * b[(k % n) * 4 + j]).sum()).collect();
        let (values, vectors) = symmetric_eigen(&a, n).unwrap();
        let scale = values[n - 1];
        assert!(values[0].abs() < 1e-13 * scale, "{values:?}");
        for i in 0..n {
            for j in 0..n {
                let back: f64 = (0..n).map(|k| values[k] * vectors[k][i] * vectors[k][j]).sum();
                assert!((back - a[i * n + j]).abs() < 1e-12 * scale, "({i}, {j}): {back} vs {}", a[i * n + j]);
                let dot: f64 = (0..n).map(|k| vectors[i][k] * vectors[j][k]).sum();
                assert!((dot - f64::from(u8::from(i == j))).abs() < 1e-13);
            }
        }
    }

    #[test]
    fn cholesky_rejects_an_indefinite_matrix() {
        let err = cholesky(&[1.0, 2.0, 2.0, 1.0], 2).unwrap_err();
        assert!(err.to_string().contains("pivot 1"), "{err}");
    }
}
