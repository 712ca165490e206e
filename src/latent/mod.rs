//! Named, constrained latents: bijectors from the unconstrained space.
//!
//! A constrained latent block x (a positive scale, a probability vector, a correlation matrix …)
//! is the image x = f(u) of an unconstrained block u ∈ ℝⁿ under a [`Bijector`] f; the variational
//! family lives on u, and the log density of x gains the log absolute Jacobian determinant:
//!
//! ```text
//! log p_u(u) = log p_x(f(u)) + log |det J_f(u)|
//! ```

mod bijector;

pub use bijector::Bijector;
