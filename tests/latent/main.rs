//! `elbo::latent`: the bijectors on their own (`bijectors`), and named, constrained latents in a
//! fit (`latents`: the layout, the Jacobian, initial values, summaries and draws by name, errors).

#[path = "../common/mod.rs"]
mod common;

mod bijectors;
mod latents;
