//! `elbo::advi`, the engine, end to end through `Advi::fit`: fits that reach exact answers
//! (the conjugate linear regression, conjugate posteriors through constraints), reproducibility,
//! minibatch SVI, recovery from non-finite steps, and a clear `elbo::Error` for every bad input.
//!
//! - `conjugate`: Beta–Bernoulli, Gamma–Poisson and Dirichlet–Categorical posteriors;
//! - `linreg_exact`: the conjugate linear regression's exact posterior and evidence;
//! - `determinism`: one seed, bit-identical fits; stepping by hand equals `fit`;
//! - `minibatch`: the scaled minibatch log joint and minibatch fits;
//! - `robust`: restoring and halving after non-finite steps, gradient-norm clipping;
//! - `scale`: the defaults on regressions with posterior sds from 1e-3 to 1e3 and on covariates
//!   around 2,000, against exact posteriors;
//! - `errors`: bad settings, shapes, dtypes and data, and non-finite steps named.

#[path = "../common/mod.rs"]
mod common;

mod conjugate;
mod determinism;
mod errors;
mod linreg_exact;
mod minibatch;
mod robust;
mod scale;
