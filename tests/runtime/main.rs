//! `elbo::runtime`: `default_threads` sizes rayon's global pool without writing the environment.
//!
//! A test binary of its own, and nothing else may join it: rayon's global pool is built once per
//! process, so no other test may touch it first. A test of `elbo::runtime` that does not need a
//! fresh process belongs in another binary.

mod default_threads;
