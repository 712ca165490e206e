//! The crate's compute kernels: the fused CPU passes behind the likelihoods, the candle custom ops
//! that carry them, and the branch-free maths they share. Every `unsafe` block of the crate is here
//! (SIMD intrinsics, entered only where the CPU reports the instructions).
//!
//! ```text
//! fused op:   y_s = f(z_s)  and  G_s = ∂f/∂z_s  in one forward pass;   backward: (∂L/∂y_s) · G_s
//! ```
//!
//! - [`simd`]: e^x, ln(1 + t) and ln t as polynomials, in f64 (scalar, AVX2, AVX-512) and f32;
//! - [`kept_gradient`]: the gradient a forward pass keeps for the backward pass;
//! - [`per_draw`]: one op for a log density that a closure computes draw by draw;
//! - [`glm`], [`mixture`], [`bernoulli`]: the GLM, Gaussian-mixture and Bernoulli-logit passes;
//! - [`adam`]: Adam's update in place on CPU parameters (`crate::optim::Storage::InPlace`).
//!
//! Nothing here depends on the rest of the crate: the public APIs (`crate::likelihood`,
//! `crate::amortized`) build on these, never the other way round.
#![allow(unsafe_code)] // the crate denies it everywhere else (Cargo.toml, [lints])

pub(crate) mod adam;
pub(crate) mod bernoulli;
pub(crate) mod glm;
pub(crate) mod kept_gradient;
pub(crate) mod mixture;
pub(crate) mod per_draw;
pub(crate) mod simd;
