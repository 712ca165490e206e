//! The variational family slot, and the built-in Gaussians q(z; λ) reparameterised as
//! z = μ + L ε, ε ~ N(0, I).
//!
//! ```text
//! z    = μ + L ε                               μ: loc [D], L: scale_tril [D, D], lower, Lᵢᵢ > 0
//! H(q) = D/2 · (1 + log 2π) + Σᵢ log Lᵢᵢ        (closed-form entropy)
//! log q(z) = −½ ‖L⁻¹(z − μ)‖² − Σᵢ log Lᵢᵢ − D/2 · log 2π
//! Cov(z) = L Lᵀ
//! ```
//!
//! [`MeanField`] fits a diagonal L ([`MeanFieldGaussian`]); [`FullRank`] a dense lower-triangular
//! L ([`FullRankGaussian`]). The positive diagonal is `link(raw)` with [`ScaleLink`] `Log` (σ = e^ω,
//! as in ADVI) or `Softplus`.
//!
//! A family is two types: the distribution with its parameters ([`VariationalFamily`]) and the
//! choice that makes it at the fit's start ([`Family`]). The engine needs draws differentiable in
//! λ, log q of the draws and log q with λ held fixed; everything else is a capability with a
//! default. The built-in Gaussians also keep their form under affine maps z = m + A u
//! ([`Family::affine_kind`], [`affine`]), which is how a fit steps in Pathfinder's whitened
//! coordinates; a family without them is fitted in the model's coordinates. A user's own family,
//! in one file: the isotropic Gaussian q = N(μ, σ² I), σ = e^ω,
//! whose entropy H = D (½ + ½ log 2π + ω) is in closed form. Its gradient is taken by autodiff.
//!
//! ```
//! use candle_core::{DType, Device, Tensor, Var};
//! use elbo::family::Init;
//! use elbo::prelude::*;
//!
//! const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;
//!
//! #[derive(Clone, Copy, Debug)]
//! struct Isotropic;
//!
//! struct IsotropicGaussian { loc: Var, log_scale: Var }
//!
//! impl Family for Isotropic {
//!     type Q = IsotropicGaussian;
//!     fn init(&self, init: &Init) -> elbo::Result<IsotropicGaussian> {
//!         let d = init.loc.len();
//!         let loc = Tensor::from_slice(&init.loc, d, &init.device)?.to_dtype(init.dtype)?;
//!         let log_scale = Tensor::full(init.scale.ln(), 1, &init.device)?.to_dtype(init.dtype)?;
//!         Ok(IsotropicGaussian { loc: Var::from_tensor(&loc)?, log_scale: Var::from_tensor(&log_scale)? })
//!     }
//! }
//!
//! impl VariationalFamily for IsotropicGaussian {
//!     fn name(&self) -> &'static str { "isotropic Gaussian" }
//!     fn dim(&self) -> usize { self.loc.elem_count() }
//!     fn params(&self) -> Vec<(&'static str, Var)> {
//!         vec![("loc", self.loc.clone()), ("log_scale", self.log_scale.clone())]
//!     }
//!     fn rsample(&self, eps: &Tensor) -> elbo::Result<Tensor> {
//!         let sigma = self.log_scale.as_tensor().exp()?;
//!         Ok(eps.broadcast_mul(&sigma)?.broadcast_add(self.loc.as_tensor())?)
//!     }
//!     fn log_prob_of_noise(&self, eps: &Tensor) -> elbo::Result<Tensor> {
//!         // log q(μ + σ ε) = −½ ‖ε‖² − D (log σ + ½ log 2π)
//!         let d = self.dim() as f64;
//!         let norm = self.log_scale.as_tensor().affine(d, d * HALF_LN_2PI)?.squeeze(0)?;
//!         Ok((eps.sqr()?.sum(1)? * -0.5)?.broadcast_sub(&norm)?)
//!     }
//!     fn log_prob(&self, z: &Tensor) -> elbo::Result<Tensor> {
//!         // λ held fixed: only z carries a gradient
//!         let (loc, log_scale) = (self.loc.as_tensor().detach(), self.log_scale.as_tensor().detach());
//!         let eps = z.broadcast_sub(&loc)?.broadcast_div(&log_scale.exp()?)?;
//!         let d = self.dim() as f64;
//!         let norm = log_scale.affine(d, d * HALF_LN_2PI)?.squeeze(0)?;
//!         Ok((eps.sqr()?.sum(1)? * -0.5)?.broadcast_sub(&norm)?)
//!     }
//!     fn loc(&self) -> elbo::Result<Tensor> { Ok(self.loc.as_tensor().detach()) }
//!     fn closed_form_entropy(&self) -> elbo::Result<Option<Tensor>> {
//!         let d = self.dim() as f64;
//!         Ok(Some(self.log_scale.as_tensor().affine(d, d * (0.5 + HALF_LN_2PI))?.squeeze(0)?))
//!     }
//!     fn dtype(&self) -> DType { self.loc.dtype() }
//!     fn device(&self) -> Device { self.loc.device().clone() }
//! }
//!
//! // The posterior N((1, −2), 0.25 I) is isotropic, so the family holds it exactly.
//! let model = elbo::from_fn(2, |z: &Tensor| {
//!     let target = Tensor::new(&[1.0f64, -2.0], z.device())?;
//!     z.broadcast_sub(&target)?.sqr()?.sum(1)? * -2.0
//! });
//! let fit = Advi::new(Isotropic).dtype(DType::F64).samples(4).seed(1).fit(&model)?;
//! let mean = fit.mean()?.to_vec1::<f64>()?;
//! let sd = fit.q().log_scale.as_tensor().exp()?.to_vec1::<f64>()?[0];
//! assert!((mean[0] - 1.0).abs() < 0.05 && (mean[1] + 2.0).abs() < 0.05, "{mean:?}");
//! assert!((sd - 0.5).abs() < 0.05, "sd {sd}");
//! # Ok::<(), elbo::Error>(())
//! ```

pub mod affine;
pub mod closed_form;
mod full_rank;
mod mean_field;
mod scale;

pub use affine::{Affine, AffineKind, AffineScale};
pub use closed_form::{FamilyGradient, HostGaussian};
pub use full_rank::{FullRank, FullRankGaussian};
pub use mean_field::{MeanField, MeanFieldGaussian};
pub use scale::ScaleLink;

use candle_core::{DType, Device, Tensor, Var, D};

use crate::Result;

pub(crate) use crate::special::HALF_LN_2PI;

/// The variational distribution slot: q(z; λ) with differentiable parameters λ (candle `Var`s),
/// reparameterised as z = T_λ(ε) with ε ~ N(0, I) of q's dimension.
///
/// The contract is what the engine needs of any family: draws that are differentiable in λ, log q
/// of those draws, and log q of a given z with λ held fixed. The rest are capabilities with
/// defaults: a closed-form entropy ([`VariationalFamily::closed_form_entropy`], for
/// [`crate::Estimator::Entropy`]), the gradient in closed form on the host
/// ([`VariationalFamily::host_gaussian`]), and the Gaussian extras ([`VariationalFamily::gaussian`]:
/// scale, covariance, marginal sds).
pub trait VariationalFamily {
    /// A short name for reports, e.g. "mean-field Gaussian".
    fn name(&self) -> &'static str;

    /// D, the length of z (and of the noise ε).
    fn dim(&self) -> usize;

    /// The parameters λ, named, in a fixed order.
    fn params(&self) -> Vec<(&'static str, Var)>;

    /// z = T_λ(ε) for each row of `eps` (`[S, D]` → `[S, D]`), differentiable in λ.
    fn rsample(&self, eps: &Tensor) -> Result<Tensor>;

    /// log q(T_λ(ε)) for each row of `eps`, `[S]`: the log density of the draws that
    /// [`VariationalFamily::rsample`] makes from the same noise.
    fn log_prob_of_noise(&self, eps: &Tensor) -> Result<Tensor>;

    /// log q(z; λ) for each row of `z` (`[S, D]` → `[S]`) with λ held fixed: gradients reach `z` but
    /// never λ (this is the stop-gradient that sticking-the-landing needs).
    fn log_prob(&self, z: &Tensor) -> Result<Tensor>;

    /// A central point of q, `[D]`: the mean of a Gaussian (the point at which the model is checked
    /// before the first step).
    fn loc(&self) -> Result<Tensor>;

    /// The entropy H(q) in closed form, a scalar differentiable in λ; `None` (the default) for a
    /// family without one.
    fn closed_form_entropy(&self) -> Result<Option<Tensor>> {
        Ok(None)
    }

    /// q's parameters read to the host, for the ELBO gradient in closed form
    /// ([`closed_form`]); `None` (the default) for a family without one, whose part of the
    /// gradient the engine takes by autodiff.
    fn host_gaussian(&self) -> Result<Option<HostGaussian>> {
        Ok(None)
    }

    /// The Gaussian extras (scale, covariance, marginal sds), for a Gaussian family; `None` (the
    /// default) otherwise.
    fn gaussian(&self) -> Option<&dyn Gaussian> {
        None
    }

    /// The dtype of the parameters.
    fn dtype(&self) -> DType;

    /// The device of the parameters.
    fn device(&self) -> Device;
}

/// A Gaussian family z = μ + L ε: its scale, covariance and marginal sds. Its first parameter
/// ([`VariationalFamily::params`]) is the location μ.
pub trait Gaussian: VariationalFamily {
    /// The entropy H(q) = D/2 · (1 + log 2π) + Σᵢ log Lᵢᵢ, a scalar differentiable in λ.
    fn entropy(&self) -> Result<Tensor>;

    /// The lower-triangular scale L, `[D, D]`.
    fn scale_tril(&self) -> Result<Tensor>;

    /// The covariance L Lᵀ, `[D, D]`.
    fn covariance(&self) -> Result<Tensor> {
        let l = self.scale_tril()?;
        Ok(l.matmul(&l.t()?)?)
    }

    /// log √diag(L Lᵀ), the log of each coordinate's standard deviation under q, `[D]`.
    fn marginal_log_sd(&self) -> Result<Tensor> {
        let l = self.scale_tril()?;
        Ok((l.sqr()?.sum(D::Minus1)?.log()? * 0.5)?)
    }
}

/// log q(μ + L ε) for each row of `eps`, `[S]`, without a solve: `−½ ‖ε‖² + D/2 − H(q)`, valid
/// for every location–scale family z = μ + L ε.
pub(crate) fn gaussian_log_prob_of_noise<G: Gaussian + ?Sized>(q: &G, eps: &Tensor) -> Result<Tensor> {
    let half_sq = (eps.sqr()?.sum(D::Minus1)? * -0.5)?;
    let constant = q.entropy()?.affine(-1.0, 0.5 * q.dim() as f64)?;
    Ok(half_sq.broadcast_add(&constant)?)
}

/// How a family starts: location, scale and link, dtype and device.
#[derive(Clone, Debug)]
pub struct Init {
    /// Initial μ, of length D.
    pub loc: Vec<f64>,
    /// Initial scale: L = scale · I.
    pub scale: f64,
    /// How the positive diagonal of L is parameterised.
    pub link: ScaleLink,
    /// F32 or F64.
    pub dtype: DType,
    /// Where the parameters live.
    pub device: Device,
}

/// A choice of variational family, such as [`MeanField`] or [`FullRank`]: it makes the
/// parameterised q that is then fitted.
pub trait Family: Clone {
    /// The parameterised family this choice makes.
    type Q: VariationalFamily;

    /// Makes q at its initial parameters.
    fn init(&self, init: &Init) -> Result<Self::Q>;

    /// The affine maps z = m + A u under which q keeps its form ([`affine`]): a fit is run in
    /// whitened coordinates u only for a family that has them. Default: none.
    fn affine_kind(&self) -> AffineKind {
        AffineKind::None
    }

    /// q's image under `affine`: the q of z = m + A u for u ~ `q`. Called only with a map of
    /// [`Family::affine_kind`].
    fn push_forward(&self, q: &Self::Q, affine: &Affine) -> Result<Self::Q> {
        let _ = affine;
        Err(crate::Error::config("family", q.name(), "this family keeps no affine map"))
    }
}

/// Validates a scale vector and turns it into raw (unconstrained) values.
pub(crate) fn raw_scales(scales: &[f64], link: ScaleLink) -> Result<Vec<f64>> {
    scales
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            if s > 0.0 && s.is_finite() {
                Ok(link.inverse(s))
            } else {
                Err(crate::Error::config("scale", s, format!("scale {i} must be positive and finite")))
            }
        })
        .collect()
}

/// Validates a location vector.
pub(crate) fn check_loc(loc: &[f64]) -> Result<()> {
    match loc.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(crate::Error::config("init_loc", loc[i], format!("coordinate {i} is not finite"))),
        None => Ok(()),
    }
}

/// A parameter of `shape`, `dtype` and `device` from host values (row-major).
pub(crate) fn var_from(values: &[f64], shape: &[usize], dtype: DType, device: &Device) -> Result<Var> {
    let t = Tensor::from_slice(values, shape, &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?;
    Ok(Var::from_tensor(&t)?)
}
