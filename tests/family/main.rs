//! `elbo::family`: the gradients of the ELBO estimators for the mean-field and full-rank
//! Gaussians against finite differences, the closed-form family gradient
//! (`family::closed_form`) against autodiff, and sticking the landing at the optimum.

#[path = "../common/mod.rs"]
mod common;

mod gradients;
