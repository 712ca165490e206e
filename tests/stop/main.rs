//! `elbo::stop`: the stopping rules (the default stationary rule, Stan's rule, the step limit and
//! the wall-time budget), and the step-size search and scale-relative location steps that the
//! default rule makes work on badly scaled targets.

#[path = "../common/mod.rs"]
mod common;

mod stopping;
