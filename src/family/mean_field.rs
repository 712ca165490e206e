//! The mean-field (diagonal) Gaussian.
//!
//! ```text
//! q(z) = Πᵢ N(zᵢ; μᵢ, σᵢ²),   σᵢ = link(ωᵢ),   z = μ + σ ⊙ ε
//! H(q) = D/2 · (1 + log 2π) + Σᵢ log σᵢ
//! ```

use candle_core::{DType, Device, Tensor, Var, D};

use super::{
    check_loc, gaussian_log_prob_of_noise, raw_scales, var_from, Affine, AffineKind, AffineScale, Family, Gaussian,
    HostGaussian, Init, ScaleLink, VariationalFamily, HALF_LN_2PI,
};
use crate::linalg::to_f64_vec;
use crate::Result;

/// The mean-field Gaussian family (diagonal covariance); makes a [`MeanFieldGaussian`].
#[derive(Clone, Copy, Debug, Default)]
pub struct MeanField;

impl Family for MeanField {
    type Q = MeanFieldGaussian;
    fn init(&self, init: &Init) -> Result<MeanFieldGaussian> {
        let scale = vec![init.scale; init.loc.len()];
        MeanFieldGaussian::new(&init.loc, &scale, init.link, init.dtype, &init.device)
    }

    fn affine_kind(&self) -> AffineKind {
        AffineKind::Diagonal
    }

    fn push_forward(&self, q: &MeanFieldGaussian, affine: &Affine) -> Result<MeanFieldGaussian> {
        let AffineScale::Diagonal(a) = &affine.scale else {
            return Err(crate::Error::config(
                "affine",
                "a triangular map",
                "a mean-field Gaussian keeps diagonal maps only",
            ));
        };
        let loc = affine.apply(&to_f64_vec(q.loc.as_tensor())?);
        let scale: Vec<f64> = to_f64_vec(&q.scale()?)?.iter().zip(a).map(|(s, a)| s * a).collect();
        MeanFieldGaussian::new(&loc, &scale, q.link, q.dtype(), &q.device())
    }
}

/// q(z) = Πᵢ N(zᵢ; μᵢ, σᵢ²) with parameters `loc` (μ) and `raw_scale` (ω, σ = link(ω)).
#[derive(Clone, Debug)]
pub struct MeanFieldGaussian {
    loc: Var,
    raw_scale: Var,
    link: ScaleLink,
}

impl MeanFieldGaussian {
    /// A mean-field Gaussian with the given means and (positive, finite) standard deviations.
    pub fn new(loc: &[f64], scale: &[f64], link: ScaleLink, dtype: DType, device: &Device) -> Result<Self> {
        check_loc(loc)?;
        if scale.len() != loc.len() {
            return Err(crate::Error::DimensionMismatch {
                what: "the scale vector".into(),
                expected: loc.len(),
                got: scale.len(),
            });
        }
        let raw = raw_scales(scale, link)?;
        let d = loc.len();
        Ok(MeanFieldGaussian {
            loc: var_from(loc, &[d], dtype, device)?,
            raw_scale: var_from(&raw, &[d], dtype, device)?,
            link,
        })
    }

    /// σ, the standard deviations, `[D]`.
    pub fn scale(&self) -> Result<Tensor> {
        self.link.forward(self.raw_scale.as_tensor())
    }
}

impl VariationalFamily for MeanFieldGaussian {
    fn name(&self) -> &'static str {
        "mean-field Gaussian"
    }

    fn dim(&self) -> usize {
        self.loc.dim(0).unwrap_or(0)
    }

    fn params(&self) -> Vec<(&'static str, Var)> {
        vec![("loc", self.loc.clone()), ("raw_scale", self.raw_scale.clone())]
    }

    fn rsample(&self, eps: &Tensor) -> Result<Tensor> {
        Ok(eps.broadcast_mul(&self.scale()?)?.broadcast_add(self.loc.as_tensor())?)
    }

    fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        let loc = self.loc.as_tensor().detach();
        let scale = self.scale()?.detach();
        let u = z.broadcast_sub(&loc)?.broadcast_div(&scale)?;
        let log_norm = (scale.log()?.sum_all()? + self.dim() as f64 * HALF_LN_2PI)?;
        Ok((u.sqr()?.sum(D::Minus1)? * -0.5)?.broadcast_sub(&log_norm)?)
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
        Ok(Some(HostGaussian::mean_field(
            to_f64_vec(self.loc.as_tensor())?,
            to_f64_vec(self.raw_scale.as_tensor())?,
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

impl Gaussian for MeanFieldGaussian {
    fn entropy(&self) -> Result<Tensor> {
        let d = self.dim() as f64;
        let log_scale = self.link.log_forward(self.raw_scale.as_tensor())?;
        Ok((log_scale.sum_all()? + d * (0.5 + HALF_LN_2PI))?)
    }

    fn scale_tril(&self) -> Result<Tensor> {
        let d = self.dim();
        let eye = Tensor::eye(d, self.dtype(), &self.device())?;
        Ok(eye.broadcast_mul(&self.scale()?.unsqueeze(0)?)?.detach())
    }

    fn covariance(&self) -> Result<Tensor> {
        let d = self.dim();
        let eye = Tensor::eye(d, self.dtype(), &self.device())?;
        Ok(eye.broadcast_mul(&self.scale()?.sqr()?.unsqueeze(0)?)?.detach())
    }

    fn marginal_log_sd(&self) -> Result<Tensor> {
        Ok(self.link.log_forward(self.raw_scale.as_tensor())?.detach())
    }
}
