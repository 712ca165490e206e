//! The full-rank Gaussian, with a lower-triangular scale built from a mask (no Cholesky needed),
//! parameterised as a positive diagonal times a unit lower-triangular factor:
//!
//! ```text
//! L = diag(s) (I + M ⊙ T),  s = link(ω)    T: strictly-lower-triangular mask of ones, M: free [D, D]
//! z = μ + s ⊙ (ε + ε (M ⊙ T)ᵀ)             (= μ + L ε, without assembling L)
//! Cov(z) = L Lᵀ,   H(q) = D/2 · (1 + log 2π) + Σᵢ log sᵢ
//! ```
//!
//! Scaling row i of the off-diagonal part by sᵢ makes M relative (L_ij = sᵢ M_ij): Adam's steps,
//! about η per coordinate whatever the gradient's size, then move the correlations in proportion to
//! the scales. With an absolute M (L = diag(s) + M ⊙ T), posterior sds below η (0.01–0.07 on the
//! Gaussian mixture) left the off-diagonal entries jittering at η's size and the ELBO 2–13 nats
//! short of NumPyro's `AutoMultivariateNormal`, which uses this scaled form too.
//!
//! The entries of M on and above the diagonal never receive a gradient and stay at zero.

use candle_core::{DType, Device, Tensor, Var, D};

use super::{
    check_loc, gaussian_log_prob_of_noise, raw_scales, var_from, Affine, AffineKind, Family, Gaussian, HostGaussian,
    Init, ScaleLink, VariationalFamily, HALF_LN_2PI,
};
use crate::linalg::{self, to_f64_vec as to_host};
use crate::{Error, Result};

/// The full-rank Gaussian family (dense covariance); makes a [`FullRankGaussian`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FullRank;

impl Family for FullRank {
    type Q = FullRankGaussian;
    fn init(&self, init: &Init) -> Result<FullRankGaussian> {
        let d = init.loc.len();
        let mut l = vec![0.0; d * d];
        (0..d).for_each(|i| l[i * d + i] = init.scale);
        FullRankGaussian::new(&init.loc, &l, init.link, init.dtype, &init.device)
    }

    fn affine_kind(&self) -> AffineKind {
        AffineKind::LowerTriangular
    }

    fn push_forward(&self, q: &FullRankGaussian, affine: &Affine) -> Result<FullRankGaussian> {
        let loc = affine.apply(&to_host(q.loc.as_tensor())?);
        let tril = affine.scale_tril(&to_host(&q.scale_tril()?.flatten_all()?)?);
        FullRankGaussian::new(&loc, &tril, q.link, q.dtype(), &q.device())
    }
}

/// q(z) = N(z; μ, L Lᵀ), L = diag(link ω)(I + M ⊙ T), with parameters `loc` (μ), `raw_diag` (ω) and
/// `off_diag` (M).
#[derive(Clone, Debug)]
pub struct FullRankGaussian {
    loc: Var,
    raw_diag: Var,
    off_diag: Var,
    /// Strictly-lower-triangular mask T.
    mask: Tensor,
    /// The identity, to place the diagonal.
    eye: Tensor,
    link: ScaleLink,
}

impl FullRankGaussian {
    /// A full-rank Gaussian with mean `loc` and scale `scale_tril` (row-major D×D, lower
    /// triangular, positive diagonal; entries above the diagonal must be zero).
    pub fn new(loc: &[f64], scale_tril: &[f64], link: ScaleLink, dtype: DType, device: &Device) -> Result<Self> {
        check_loc(loc)?;
        let d = loc.len();
        if scale_tril.len() != d * d {
            return Err(Error::config(
                "scale_tril",
                format!("{} entries", scale_tril.len()),
                format!("expected a {d}×{d} matrix in row-major order"),
            ));
        }
        let mut off = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                let v = scale_tril[i * d + j];
                if !v.is_finite() || (j > i && v != 0.0) {
                    return Err(Error::config(
                        "scale_tril",
                        format!("entry ({i}, {j}) = {v}"),
                        "the scale must be finite and lower triangular",
                    ));
                }
                if j < i {
                    off[i * d + j] = v / scale_tril[i * d + i];
                }
            }
        }
        let diag: Vec<f64> = (0..d).map(|i| scale_tril[i * d + i]).collect();
        let raw = raw_scales(&diag, link)?; // checks diag > 0 before M = L_ij / L_ii is used
        let eye = Tensor::eye(d, dtype, device)?;
        let mask = (Tensor::tril2(d, dtype, device)? - &eye)?;
        Ok(FullRankGaussian {
            loc: var_from(loc, &[d], dtype, device)?,
            raw_diag: var_from(&raw, &[d], dtype, device)?,
            off_diag: var_from(&off, &[d, d], dtype, device)?,
            mask,
            eye,
            link,
        })
    }

    /// A full-rank Gaussian with mean `loc` and covariance `cov` (row-major D×D, symmetric positive
    /// definite): L is the Cholesky factor of `cov`. This is how a Laplace approximation or a
    /// linear-response covariance becomes a q that every downstream tool takes.
    ///
    /// ```
    /// use elbo::prelude::*;
    /// use elbo::FullRankGaussian;
    /// let q = FullRankGaussian::from_mean_cov(&[1.0, 2.0], &[4.0, 2.0, 2.0, 3.0], ScaleLink::Log, DType::F64, &Device::Cpu)?;
    /// let cov = q.covariance()?.flatten_all()?.to_vec1::<f64>()?;
    /// assert!(cov.iter().zip([4.0, 2.0, 2.0, 3.0]).all(|(a, b)| (a - b).abs() < 1e-14));
    /// # Ok::<(), elbo::Error>(())
    /// ```
    pub fn from_mean_cov(loc: &[f64], cov: &[f64], link: ScaleLink, dtype: DType, device: &Device) -> Result<Self> {
        let d = loc.len();
        if cov.len() != d * d {
            return Err(Error::config(
                "cov",
                format!("{} entries", cov.len()),
                format!("expected a {d}×{d} matrix in row-major order"),
            ));
        }
        if let Some((i, j)) =
            (0..d).flat_map(|i| (0..i).map(move |j| (i, j))).find(|&(i, j)| cov[i * d + j] != cov[j * d + i])
        {
            return Err(Error::config(
                "cov",
                format!("entries ({i}, {j}) = {} and ({j}, {i}) = {}", cov[i * d + j], cov[j * d + i]),
                "a covariance matrix must be symmetric",
            ));
        }
        let l = linalg::cholesky(cov, d).map_err(|_| {
            Error::config(
                "cov",
                "the given matrix",
                "a covariance matrix must be positive definite (its Cholesky factorisation failed)",
            )
        })?;
        Self::new(loc, &l, link, dtype, device)
    }

    /// L = diag(s)(I + M ⊙ T) as a differentiable tensor.
    fn tril(&self) -> Result<Tensor> {
        let diag = self.link.forward(self.raw_diag.as_tensor())?;
        let unit = ((self.off_diag.as_tensor() * &self.mask)? + &self.eye)?;
        Ok(unit.broadcast_mul(&diag.unsqueeze(1)?)?)
    }
}

impl VariationalFamily for FullRankGaussian {
    fn name(&self) -> &'static str {
        "full-rank Gaussian"
    }

    fn dim(&self) -> usize {
        self.loc.dim(0).unwrap_or(0)
    }

    fn params(&self) -> Vec<(&'static str, Var)> {
        vec![("loc", self.loc.clone()), ("raw_diag", self.raw_diag.clone()), ("off_diag", self.off_diag.clone())]
    }

    /// z = μ + s ⊙ (ε + ε (M ⊙ T)ᵀ): L is never assembled, since placing its diagonal in a
    /// `[D, D]` tensor goes through candle's slow broadcast path (most of a step at D = 1000).
    fn rsample(&self, eps: &Tensor) -> Result<Tensor> {
        let lower = (self.off_diag.as_tensor() * &self.mask)?;
        let diag = self.link.forward(self.raw_diag.as_tensor())?;
        let z = (eps.matmul(&lower.t()?)? + eps)?.broadcast_mul(&diag)?;
        Ok(z.broadcast_add(self.loc.as_tensor())?)
    }

    /// Solves with L on the host (candle has no triangular solve): u = L⁻¹(z − μ) gives the value,
    /// and ∇_z log q = −L⁻ᵀ u enters through `(z − stop(z)) · ∇`, which is zero in value.
    fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        let d = self.dim();
        let l = to_host(&self.tril()?)?;
        let loc = to_host(self.loc.as_tensor())?;
        let zs = to_host(z)?;
        let s = zs.len() / d.max(1);
        let log_det: f64 = (0..d).map(|i| l[i * d + i].ln()).sum();
        let mut values = Vec::with_capacity(s);
        let mut grads = Vec::with_capacity(s * d);
        for row in zs.chunks(d) {
            let mut u: Vec<f64> = row.iter().zip(&loc).map(|(a, b)| a - b).collect();
            linalg::solve_lower(&l, d, &mut u);
            values.push(-0.5 * u.iter().map(|x| x * x).sum::<f64>() - log_det - d as f64 * HALF_LN_2PI);
            linalg::solve_lower_t(&l, d, &mut u);
            grads.extend(u.iter().map(|x| -x));
        }
        let (dtype, device) = (z.dtype(), z.device());
        let values = Tensor::from_vec(values, s, &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?;
        let grads = Tensor::from_vec(grads, (s, d), &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?;
        let zero_with_grad = ((z - z.detach())? * grads)?.sum(D::Minus1)?;
        Ok((values + zero_with_grad)?)
    }

    fn log_prob_of_noise(&self, eps: &Tensor) -> Result<Tensor> {
        gaussian_log_prob_of_noise(self, eps)
    }

    fn closed_form_entropy(&self) -> Result<Option<Tensor>> {
        Ok(Some(self.entropy()?))
    }

    fn gaussian(&self) -> Option<&dyn Gaussian> {
        Some(self)
    }

    fn loc(&self) -> Result<Tensor> {
        Ok(self.loc.as_tensor().copy()?)
    }

    fn host_gaussian(&self) -> Result<Option<HostGaussian>> {
        Ok(Some(HostGaussian::full_rank(
            to_host(self.loc.as_tensor())?,
            to_host(self.raw_diag.as_tensor())?,
            to_host(self.off_diag.as_tensor())?,
            self.link,
        )))
    }

    fn dtype(&self) -> DType {
        self.loc.dtype()
    }

    fn device(&self) -> Device {
        self.loc.device().clone()
    }
}

impl Gaussian for FullRankGaussian {
    fn entropy(&self) -> Result<Tensor> {
        let d = self.dim() as f64;
        let log_diag = self.link.log_forward(self.raw_diag.as_tensor())?;
        Ok((log_diag.sum_all()? + d * (0.5 + HALF_LN_2PI))?)
    }

    fn scale_tril(&self) -> Result<Tensor> {
        Ok(self.tril()?.detach())
    }

    /// log s_i + ½ log(1 + Σ_{j<i} M_ij²): row i of L is s_i (M ⊙ T + I)_i.
    fn marginal_log_sd(&self) -> Result<Tensor> {
        let lower = (self.off_diag.as_tensor() * &self.mask)?;
        let row = (lower.sqr()?.sum(candle_core::D::Minus1)? + 1.0)?.log()?;
        Ok((self.link.log_forward(self.raw_diag.as_tensor())? + (row * 0.5)?)?.detach())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_given_scale_is_the_scale_and_draws_are_mu_plus_l_eps() {
        let l = [0.5, 0.0, 0.0, -0.3, 0.02, 0.0, 1.5, 0.01, 2.0];
        let loc = [1.0, -1.0, 0.5];
        for link in [ScaleLink::Log, ScaleLink::Softplus] {
            let q = FullRankGaussian::new(&loc, &l, link, DType::F64, &Device::Cpu).unwrap();
            let got = to_host(&q.scale_tril().unwrap()).unwrap();
            for (g, w) in got.iter().zip(l) {
                assert!((g - w).abs() < 1e-15, "{got:?} vs {l:?}");
            }
            let eps = Tensor::new(&[[0.3f64, -1.2, 0.7]], &Device::Cpu).unwrap();
            let z = to_host(&q.rsample(&eps).unwrap()).unwrap();
            let e = [0.3, -1.2, 0.7];
            for i in 0..3 {
                let want = loc[i] + (0..3).map(|j| l[i * 3 + j] * e[j]).sum::<f64>();
                assert!((z[i] - want).abs() < 1e-15, "z[{i}] = {} vs {want}", z[i]);
            }
        }
    }

    #[test]
    fn the_marginal_log_sd_is_half_the_log_of_the_covariance_diagonal() {
        let l = [0.5, 0.0, 0.0, -0.3, 0.02, 0.0, 1.5, 0.01, 2.0];
        for link in [ScaleLink::Log, ScaleLink::Softplus] {
            let q = FullRankGaussian::new(&[0.0; 3], &l, link, DType::F64, &Device::Cpu).unwrap();
            let got = to_host(&q.marginal_log_sd().unwrap()).unwrap();
            for i in 0..3 {
                let var: f64 = (0..3).map(|j| l[i * 3 + j] * l[i * 3 + j]).sum();
                assert!((got[i] - 0.5 * var.ln()).abs() < 1e-14, "{got:?}");
            }
        }
    }
}
