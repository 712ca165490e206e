//! Likelihoods with a fused CPU path: the public APIs, their checks, and the composition of candle
//! ops that runs on every other device and dtype.
//!
//! ```text
//! glm:       log p(y | X w_s + b_s) = Σ_i ℓ(y_i, η_si)                      (Bernoulli, Normal, Poisson)
//! mixture:   log p(x | w, μ, σ) = Σ_i ln Σ_k w_k N(x_i | μ_k, σ_k² I)
//! per_draw:  log p(z_s) and ∂/∂z_s from a closure, one op for all draws
//! ```
//!
//! - [`glm::GlmLikelihood`] (also at `elbo::glm`): generalised linear models;
//! - [`mixture::MixtureLikelihood`] (also at `elbo::mixture`): isotropic Gaussian mixtures;
//! - [`per_draw`]: a model's own log joint with a hand-written gradient, as one candle op.

pub mod glm;
pub mod mixture;
mod per_draw;

pub use per_draw::per_draw;
