//! Small dense linear algebra on the host (row-major `f64`), for what candle lacks: Cholesky
//! factors and triangular solves. Used for log q(z) of a full-rank Gaussian, for exact
//! posteriors in tests and models, and for checks.
//!
//! ```text
//! A = L Lᵀ                          (Cholesky, L lower triangular, Lᵢᵢ > 0)
//! solve_lower:       L x = b        (forward substitution)
//! solve_lower_t:     Lᵀ x = b       (back substitution)
//! log det A = 2 Σᵢ log Lᵢᵢ
//! ```
//!
//! Matrices are `&[f64]` of length n·n in row-major order.

use candle_core::{DType, Tensor};

use crate::{Error, Result};

/// A tensor's values on the host as `f64`, row-major (any shape, any float dtype, any device).
pub fn to_f64_vec(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.detach().to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
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
    fn cholesky_rejects_an_indefinite_matrix() {
        let err = cholesky(&[1.0, 2.0, 2.0, 1.0], 2).unwrap_err();
        assert!(err.to_string().contains("pivot 1"), "{err}");
    }
}
