//! The LKJ distribution over correlation matrices, as a density on their Cholesky factors.
//!
//! ```text
//! LKJ(η):            p(R) ∝ det(R)^(η − 1)                          R a K×K correlation matrix
//! LkjCholesky(K, η): log p(L) = Σ_{i=2..K} (K − i + 2η − 2) ln L_ii + ln c_K(η),     R = L Lᵀ
//! ln c_K(η) = −Σ_{k=1..K−1} [ (2η − 2 + K − k)(K − k) ln 2 + (K − k) ln B(b_k, b_k) ],
//!             b_k = η + (K − k − 1)/2,   B(a, b) = Γ(a)Γ(b)/Γ(a + b)
//! ```
//! The density of R with respect to its off-diagonal entries is c_K(η) det(R)^(η − 1) with the
//! normalising constant of Lewandowski, Kurowicka & Joe (2009); det R = Πᵢ L_ii², and the change
//! of variables from R to the strictly lower entries of L contributes Πᵢ L_ii^(K − i), which gives
//! the exponents above (the form Stan uses for `lkj_corr_cholesky`). η > 0 is the concentration:
//! η = 1 is uniform over correlation matrices, η > 1 favours the identity.

use candle_core::{bail, Result, Tensor, D};

use super::{check_param, check_value, diagonal, Distribution, Param, Rule, LN_2};

/// The LKJ distribution on the Cholesky factor L `[..., K, K]` of a K×K correlation matrix,
/// with concentration `concentration` = η > 0 (a scalar, or a tensor of the batch shape):
///
/// ```text
/// log p(L) = Σ_{i=2..K} (K − i + 2η − 2) ln L_ii + ln c_K(η)
/// ```
///
/// (see the module doc for c_K). Only the diagonal of L is read: that L is lower triangular
/// with rows of unit norm is not checked, and the gradient with respect to the other entries is
/// 0. A non-positive L_ii gives NaN or −∞. A tensor η is CPU-only (ln Γ of a tensor).
#[derive(Clone, Debug)]
pub struct LkjCholesky {
    dim: usize,
    concentration: Param,
}

impl LkjCholesky {
    /// LKJ-Cholesky over K×K correlation matrices, K = `dim`. Errors if `dim` < 2 or a scalar
    /// `concentration` is not > 0.
    pub fn new(dim: usize, concentration: impl Into<Param>) -> Result<Self> {
        let concentration = concentration.into();
        if dim < 2 {
            bail!("LkjCholesky: `dim` must be ≥ 2, got {dim}");
        }
        check_param("LkjCholesky", "concentration", &concentration, Rule::Positive)?;
        Ok(LkjCholesky { dim, concentration })
    }

    /// ln c_K(η), the log normalising constant.
    fn log_normaliser(&self) -> Result<Param> {
        let (k, eta) = (self.dim, &self.concentration);
        let mut ln_z = Param::Scalar(0.0);
        for j in 1..k {
            let m = (k - j) as f64;
            // (2η − 2 + m)·m·ln 2
            let pow2 = eta.affine(2.0 * m * LN_2, (m - 2.0) * m * LN_2)?;
            // m·ln B(b, b) = m·(2 ln Γ(b) − ln Γ(2b)),  b = η + (m − 1)/2
            let b = eta.affine(1.0, (m - 1.0) / 2.0)?;
            let ln_beta = b.lgamma()?.affine(2.0 * m, 0.0)?.sub(&b.affine(2.0, 0.0)?.lgamma()?.affine(m, 0.0)?)?;
            ln_z = ln_z.add(&pow2)?.add(&ln_beta)?;
        }
        ln_z.affine(-1.0, 0.0)
    }
}

impl Distribution for LkjCholesky {
    fn log_prob(&self, l: &Tensor) -> Result<Tensor> {
        check_value("LkjCholesky", l, &[("concentration", &self.concentration)])?;
        let k = self.dim;
        let dims = l.dims();
        let n = dims.len();
        if n < 2 || dims[n - 1] != k || dims[n - 2] != k {
            bail!("LkjCholesky: the value must be [..., {k}, {k}], got shape {:?}", l.shape());
        }
        let ln_diag = diagonal(l, k)?.narrow(D::Minus1, 1, k - 1)?.log()?; // ln L_ii, i = 2..K
                                                                           // the η-free part of the exponents, K − i − 2 for i = 2..K; 2η is added below
        let fixed: Vec<f64> = (2..=k).map(|i| k as f64 - i as f64 - 2.0).collect();
        let lp = match &self.concentration {
            Param::Scalar(eta) => {
                let w: Vec<f64> = fixed.iter().map(|f| f + 2.0 * eta).collect();
                let w = Tensor::new(w.as_slice(), l.device())?.to_dtype(l.dtype())?;
                Param::Tensor(ln_diag.broadcast_mul(&w)?.sum(D::Minus1)?)
            }
            eta => {
                let w = Tensor::new(fixed.as_slice(), l.device())?.to_dtype(l.dtype())?;
                let fixed_part = Param::Tensor(ln_diag.broadcast_mul(&w)?.sum(D::Minus1)?);
                let eta_part = eta.affine(2.0, 0.0)?.mul(&Param::Tensor(ln_diag.sum(D::Minus1)?))?;
                fixed_part.add(&eta_part)?
            }
        };
        lp.add(&self.log_normaliser()?)?.tensor()
    }
}
