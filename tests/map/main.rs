//! `elbo::map`: MAP and Laplace (`map_laplace`) and deterministic ADVI (`dadvi`) against exact
//! answers and a NUTS reference, and their errors for posteriors without a finite mode.

#[path = "../common/mod.rs"]
mod common;

mod dadvi;
mod map_laplace;
mod newton;
mod scale;
