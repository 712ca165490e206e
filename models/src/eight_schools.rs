//! Eight schools (Rubin 1981), the non-centred hierarchical normal model.
//!
//! ```text
//! μ ~ N(0, 5²),  τ ~ HalfCauchy(5),  θ̃_j ~ N(0, 1),  θ_j = μ + τ θ̃_j,  y_j ~ N(θ_j, σ_j²)
//! z = (μ, u, θ̃_1, …, θ̃_J),  τ = e^u   (the log-Jacobian u is part of the log joint)
//!
//! log p(y, z) = C − μ²/50 − softplus(2u − 2 ln 5) + u − ½ Σ_j θ̃_j² − ½ Σ_j r_j² σ_j²
//! r_j = (y_j − θ_j)/σ_j²,   C = ln 2 − ln π − 2 ln 5 − (J + 1) ½ ln 2π − Σ_j (ln σ_j + ½ ln 2π)
//! ∂/∂μ = −μ/25 + Σ_j r_j
//! ∂/∂u = 1 − 2 σ(2u − 2 ln 5) + τ Σ_j θ̃_j r_j
//! ∂/∂θ̃_j = −θ̃_j + τ r_j
//! ```
//!
//! (ln HalfCauchy(τ; 5) = ln 2 − ln π − ln 5 − ln(1 + τ²/25), and ln(1 + e^(2u)/25) =
//! softplus(2u − 2 ln 5).) The priors are the peers' NumPyro model's, so ELBOs compare with
//! NumPyro's. On the CPU in f32 and f64 the log joint is one op ([`elbo::likelihood::per_draw`])
//! that computes the value and the gradient above per draw (about 10 J flops) and keeps the
//! gradient for the backward pass: a model this small would otherwise spend its time in the ~15
//! candle ops of the composition, each with its own allocations and backward node. Elsewhere it is
//! that composition ([`EightSchools::log_joint_composite`]), differentiated by autodiff.

use std::sync::Arc;

use candle_core::{bail, DType, Device, Tensor, D};
use elbo::latent::Latents;
use elbo::special::{softplus, HALF_LN_2PI};
use elbo::{Error, LogJoint, Result};

/// ln 5, the log of the priors' scale.
const LN_5: f64 = 1.609_437_912_434_100_3;

/// The non-centred eight-schools model (formulas in the module doc); latents `mu`, `tau`
/// (positive, τ = e^u) and `theta_tilde` `[J]`.
///
/// ```
/// use elbo::prelude::*;
/// use elbo_models::EightSchools;
///
/// let model = EightSchools::rubin()?; // F64 on the CPU
/// assert_eq!(model.dim(), 10);
/// let fit = Advi::new(MeanField).dtype(DType::F64).samples(4).steps(4_000).seed(1).fit(&model)?;
/// // the ELBO is a lower bound on the log evidence, −31.31 (one-dimensional quadrature)
/// assert!(fit.elbo() < -31.31 + 3.0 * fit.elbo_se());
/// assert!(fit.summary().get("tau").unwrap().mean > 0.0);
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct EightSchools {
    /// y `[J]`.
    y: Tensor,
    /// σ `[J]`.
    sigma: Tensor,
    latents: Latents,
    /// C, the constant of the log joint.
    constant: f64,
    /// y and σ on the host, for the fused op.
    host: Arc<(Vec<f64>, Vec<f64>)>,
}

impl EightSchools {
    /// The model for estimates `y` `[J]` and their standard errors `sigma` `[J]` (positive), in F64
    /// on the CPU.
    pub fn new(y: &[f64], sigma: &[f64]) -> Result<Self> {
        if y.is_empty() || y.len() != sigma.len() {
            return Err(Error::DimensionMismatch {
                what: "EightSchools: sigma".into(),
                expected: y.len(),
                got: sigma.len(),
            });
        }
        if let Some(s) = sigma.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
            return Err(Error::config("sigma", s, "standard errors must be positive and finite"));
        }
        if let Some(v) = y.iter().find(|v| !v.is_finite()) {
            return Err(Error::config("y", v, "the estimates must be finite"));
        }
        let j = y.len();
        let constant = std::f64::consts::LN_2
            - std::f64::consts::PI.ln()
            - 2.0 * LN_5
            - (j + 1) as f64 * HALF_LN_2PI
            - sigma.iter().map(|s| s.ln() + HALF_LN_2PI).sum::<f64>();
        Ok(EightSchools {
            y: Tensor::from_slice(y, j, &Device::Cpu)?,
            sigma: Tensor::from_slice(sigma, j, &Device::Cpu)?,
            latents: Latents::new().real("mu", [1]).positive("tau", [1]).real("theta_tilde", [j]),
            constant,
            host: Arc::new((y.to_vec(), sigma.to_vec())),
        })
    }

    /// Rubin's (1981) data: the coaching effects y = (28, 8, −3, 7, −1, 1, 18, 12) and their
    /// standard errors σ = (15, 10, 16, 11, 9, 11, 10, 18).
    pub fn rubin() -> Result<Self> {
        Self::new(&[28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], &[15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
    }

    /// The model from a JSON object with arrays `y` and `sigma` (the peers' `eight_schools.json`).
    pub fn from_json(text: &str) -> Result<Self> {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::config("json", e, "not valid JSON"))?;
        let array = |key: &'static str| -> Result<Vec<f64>> {
            json[key]
                .as_array()
                .and_then(|a| a.iter().map(|v| v.as_f64()).collect::<Option<Vec<f64>>>())
                .ok_or_else(|| Error::config(key, &json[key], "needs an array of numbers"))
        };
        Self::new(&array("y")?, &array("sigma")?)
    }

    /// The same model with its data in `dtype` on `device` (the fused op runs on the CPU in f32
    /// and f64).
    pub fn to(&self, dtype: DType, device: &Device) -> Result<Self> {
        Ok(EightSchools {
            y: self.y.to_dtype(dtype)?.to_device(device)?,
            sigma: self.sigma.to_dtype(dtype)?.to_device(device)?,
            ..self.clone()
        })
    }

    /// J, the number of schools.
    pub fn schools(&self) -> usize {
        self.host.0.len()
    }

    /// The log joint as a composition of candle ops (the path off the CPU, and a reference for
    /// the fused op), differentiable by autodiff.
    pub fn log_joint_composite(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let j = self.schools();
        let (mu, u, tt) = (z.narrow(1, 0, 1)?, z.narrow(1, 1, 1)?, z.narrow(1, 2, j)?);
        let theta = tt.broadcast_mul(&u.exp()?)?.broadcast_add(&mu)?; // [S, J]
        let scaled = theta.broadcast_sub(&self.y.unsqueeze(0)?)?.broadcast_div(&self.sigma.unsqueeze(0)?)?;
        let likelihood = (scaled.sqr()?.sum(D::Minus1)? * -0.5)?;
        let theta_prior = (tt.sqr()?.sum(D::Minus1)? * -0.5)?;
        let mu_prior = (mu.sqr()? * (-1.0 / 50.0))?;
        let tau_prior_and_jacobian = (&u - softplus(&u.affine(2.0, -2.0 * LN_5)?)?)?;
        let per_draw = (mu_prior + tau_prior_and_jacobian)?.squeeze(1)?;
        ((likelihood + theta_prior)? + per_draw)? + self.constant
    }
}

impl LogJoint for EightSchools {
    fn dim(&self) -> usize {
        self.schools() + 2
    }

    fn log_joint(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let (_, k) = z.dims2()?;
        if k != self.dim() {
            bail!("EightSchools: z has {k} columns, the model {}", self.dim());
        }
        match (z.device(), z.dtype()) {
            (Device::Cpu, DType::F64 | DType::F32) => {
                let (constant, data) = (self.constant, self.host.clone());
                elbo::likelihood::per_draw("eight_schools_log_joint", z, move |z, grad| draw(constant, &data, z, grad))
            }
            _ => self.log_joint_composite(z),
        }
    }

    fn named_latents(&self) -> Option<&Latents> {
        Some(&self.latents)
    }
}

/// log p(y, z) of one draw z = (μ, u, θ̃) for the data (y, σ) and the constant C, writing its
/// gradient into `grad` (formulas in the module doc).
fn draw(constant: f64, data: &(Vec<f64>, Vec<f64>), z: &[f64], grad: &mut [f64]) -> f64 {
    let (y, sigma) = (&data.0, &data.1);
    let (mu, u, tt) = (z[0], z[1], &z[2..]);
    let tau = u.exp();
    let (mut value, mut sum_r, mut sum_tr) = (0.0, 0.0, 0.0);
    for (((&t, &yj), &sj), g) in tt.iter().zip(y).zip(sigma).zip(&mut grad[2..]) {
        let resid = yj - (mu + tau * t);
        let r = resid / (sj * sj);
        value -= 0.5 * (t * t + resid * r);
        sum_r += r;
        sum_tr += t * r;
        *g = tau * r - t;
    }
    let a = 2.0 * u - 2.0 * LN_5;
    let softplus = a.max(0.0) + (-a.abs()).exp().ln_1p();
    let sigmoid = if a >= 0.0 { 1.0 / (1.0 + (-a).exp()) } else { a.exp() / (1.0 + a.exp()) };
    grad[0] = sum_r - mu / 25.0;
    grad[1] = 1.0 - 2.0 * sigmoid + tau * sum_tr;
    value + constant - mu * mu / 50.0 + u - softplus
}
