//! `elbo::diagnose`: the PSIS diagnostics at the end of a fit (k̂ and the log-evidence estimate).

#[path = "../common/mod.rs"]
mod common;

mod diagnostics;
mod moments;
mod psis;
mod targets;
