//! `elbo::likelihood`: the fused log-likelihoods against the compositions of candle ops they
//! replace, in value and gradient, and the models built on them along an ADVI path.
//!
//! - `glm`: `elbo::glm` (Bernoulli-logit, Normal-identity, Poisson-log);
//! - `mixture`: `elbo::mixture` (the Gaussian mixture) and `GaussianMixture`, on all the data and on
//!   minibatches.

mod glm;
mod mixture;
