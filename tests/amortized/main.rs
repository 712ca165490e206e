//! `elbo::amortized` on a user's own encoder and decoder: the closed-form KL and the two ELBO
//! forms. The VAE built on it is tested with its crate (`models/tests/models/vae.rs`), the `vae`
//! example in `tests/examples/`.

#[path = "../common/mod.rs"]
mod common;

mod vae;
