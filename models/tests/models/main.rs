//! The ready models of `elbo-models`, one submodule per model:
//!
//! - `eight_schools`: `EightSchools` against statrs and the peers, its fused gradient, a fit;
//! - `idx`: the IDX reader and writer (`elbo_models::idx`);
//! - `peers`: the models' log joints against the peers' ports (`GaussianMixture`);
//! - `posteriordb`: the development set's eight posteriors against plain f64 log densities, their
//!   constraint layouts and Jacobians, and the comparison with the reference moments;
//! - `vae`: `Vae` and `VaeTrainer` (the IWAE bound, training, β, the Gaussian decoder,
//!   checkpoints);
//! - `vae_recovery`: the trainer's non-finite handling (skip, restore, halve, fail), its observers
//!   and its step-size schedule.
//!
//! The data files are the workspace's, in `tests/data/` at its root (shared with elbo's tests).
//! `vae_threads.rs` is a binary of its own (it sizes rayon's global pool).

mod eight_schools;
mod idx;
mod peers;
mod posteriordb;
mod vae;
mod vae_recovery;
