//! `elbo::diagnose`: the diagnostics at the end of a fit (k̂ with its spread, the PSIS-reweighted
//! moments, KL and the log-evidence estimate) and the verdict drawn from them.

#[path = "../common/mod.rs"]
mod common;

mod diagnostics;
mod moments;
mod psis;
mod targets;
mod verdict;
