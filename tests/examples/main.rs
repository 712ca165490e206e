//! The examples in-process: each example's `app.rs` is compiled into this binary (`#[path]`) and its
//! `app::run` called with parsed arguments, so the whole program is tested without a subprocess.
//!
//! - `gmm`: `examples/gmm_vi` (the Gaussian mixture on simulated and the peers' data, bad input,
//!   `--device`, and its pieces);
//! - `vae`: `examples/vae` (end to end on a tiny image folder, and bad data explained).

// Both apps take in the files the examples share (`examples/common/`), each as its own modules, as
// each example binary does: two programs in one test binary, not one module loaded twice by mistake.
#![allow(clippy::duplicate_mod)]

#[path = "../common/mod.rs"]
mod common;

mod gmm;
mod vae;
