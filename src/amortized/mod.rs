//! Amortised inference for variational autoencoders: an encoder network gives every datum its own
//! q(z | x), and a decoder network gives p(x | z) (Kingma & Welling 2013).
//!
//! ```text
//! q_φ(z | x) = N(μ_φ(x), diag σ²_φ(x))           encoder: x ↦ [μ_φ(x), log σ²_φ(x)]
//! p(z) = N(0, I),   p_θ(x | z)                   decoder
//! ELBO(x) = E_q[log p_θ(x | z)] − KL(q_φ(z | x) ‖ p(z))                    (analytic KL)
//!         = E_q[log p_θ(x | z) + log p(z)] + H(q_φ(z | x))               (entropy form)
//! ELBO_β(x) = E_q[log p_θ(x | z)] − β · KL(q ‖ p),   β: 0 → 1 during warm-up (KL annealing)
//! L_K(x) = E[log (1/K) Σ_k p_θ(x, z_k) / q_φ(z_k | x)],  z_k ~ q   (IWAE; L_1 = ELBO ≤ L_K ≤ log p(x))
//! z = μ + σ ⊙ ε,  ε ~ N(0, I)                    (reparameterisation)
//! ```
//!
//! - [`AmortizedGaussian`]: any candle-nn [`Module`](candle_core::Module) as the encoder;
//! - [`DiagGaussian`]: the per-datum q(z | x) it gives, with log q, entropy and the closed-form KL;
//! - [`Decoder`]: log p_θ(x | z) per datum (a closure will do);
//! - [`elbo_terms`] with [`KlForm`]: the ELBO in either form, β-weighted through [`ElboTerms::loss`];
//! - [`KlWarmup`]: the β schedule;
//! - [`iw_log_likelihood`]: the importance-weighted bound, to estimate the test log p(x);
//! - [`latent_activity`] and [`active_units`]: which latent dimensions the encoder uses.

mod active;
mod bound;
mod encoder;
mod iwae;
mod likelihood;
mod posterior;
mod warmup;

pub use active::{active_units, latent_activity, ACTIVE_THRESHOLD};
pub use bound::{elbo_terms, ElboTerms, KlForm};
pub use encoder::AmortizedGaussian;
pub use iwae::iw_log_likelihood;
pub use likelihood::{bernoulli_logit_log_likelihood, Decoder};
pub use posterior::{standard_normal_log_prob, DiagGaussian};
pub use warmup::KlWarmup;
