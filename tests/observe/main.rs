//! `elbo::observe`: observers (progress bar, trace, CSV and JSON Lines logs) see every step and
//! change nothing; an observer's error ends the fit.

#[path = "../common/mod.rs"]
mod common;

mod observe;
