//! Named, constrained latents: blocks declared by name, shape and constraint ([`Latents`]), each the
//! image of an unconstrained block under a bijector.
//!
//! A constrained latent block x (a positive scale, a probability vector, a correlation matrix …)
//! is the image x = f(u) of an unconstrained block u ∈ ℝⁿ under a [`Bijector`] f; the variational
//! family lives on u, and the log density of x gains the log absolute Jacobian determinant:
//!
//! ```text
//! log p_u(u) = log p_x(f(u)) + log |det J_f(u)|
//! ```
//!
//! [`Latents`] lays the blocks out in one unconstrained vector z and adds every log-Jacobian, so a
//! [`crate::Model`] is written against constrained values by name and never carries a Jacobian.

mod bijector;
mod layout;
mod start;

pub use bijector::Bijector;
pub use layout::{Block, BlockShape, FnModel, Latents, Values};
pub(crate) use start::Start;
