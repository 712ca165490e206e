//! The link from an unconstrained parameter to a positive scale.
//!
//! ```text
//! Log:       σ = e^ω          log σ = ω
//! Softplus:  σ = log(1 + e^ρ) log σ = log softplus(ρ)
//! ```

use candle_core::Tensor;

use crate::special::{softplus, softplus_inverse};
use crate::Result;

/// How a positive scale is parameterised by an unconstrained value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScaleLink {
    /// σ = exp(ω): ADVI's choice; steps act on relative scale.
    #[default]
    Log,
    /// σ = softplus(ρ): gentler for large scales, avoids exp overflow.
    Softplus,
}

impl ScaleLink {
    /// σ from the raw parameter.
    pub fn forward(self, raw: &Tensor) -> Result<Tensor> {
        Ok(match self {
            ScaleLink::Log => raw.exp()?,
            ScaleLink::Softplus => softplus(raw)?,
        })
    }

    /// log σ from the raw parameter.
    pub fn log_forward(self, raw: &Tensor) -> Result<Tensor> {
        Ok(match self {
            ScaleLink::Log => raw.clone(),
            ScaleLink::Softplus => softplus(raw)?.log()?,
        })
    }

    /// The raw parameter that gives scale σ > 0.
    pub fn inverse(self, sigma: f64) -> f64 {
        match self {
            ScaleLink::Log => sigma.ln(),
            ScaleLink::Softplus => softplus_inverse(sigma),
        }
    }
}
