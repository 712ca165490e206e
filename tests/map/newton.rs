//! The Newton decrement and the Newton finish (`src/map/newton.rs`): the record of a run says how it
//! ended, and only a run that met a tolerance says it converged.
//!
//! - An L-BFGS run cut short by `max_iters` on the conjugate regression (Gaussian, N = 200, D = 10)
//!   is finished by Newton steps: one lands on the mode of a quadratic, so the answer is exact, and
//!   the record names the shortfall, the steps and the decrement.
//! - Tolerances that no run can meet (10⁻³⁰⁰) end at the rounding floor, said so by the record, the
//!   stop reason and the report, never as converged.
//! - Without a Hessian (a MAP without the curvature check) a run cut short fails as documented,
//!   and the record of one that converged has no decrement; DADVI without linear response computes
//!   one only to finish a run that stopped short or at its floor, and the record says which.
//! - Where the Hessian at L-BFGS's point is not positive definite, the error stays L-BFGS's, and
//!   says that no Newton steps could be taken.

use crate::common::host;
use elbo::map::{Dadvi, Laplace, Lbfgs, Map};
use elbo::prelude::*;
use elbo::{Error, Method};
use elbo_models::{ExactPosterior, LinearRegression};

fn linreg() -> (LinearRegression, ExactPosterior) {
    let (model, _) = LinearRegression::simulate(200, 10, 2026).unwrap();
    let exact = model.exact_posterior().unwrap();
    (model, exact)
}

#[test]
fn a_run_cut_short_is_finished_by_newton_steps_and_says_so() {
    let (model, exact) = linreg();
    let fit = Laplace::new().map(Map::new().max_iters(3)).fit(&model).unwrap();
    let Method::Laplace { lbfgs: c, .. } = fit.method() else { panic!("not Laplace") };
    println!("{c}");
    assert_eq!(c.iterations, 3);
    assert_eq!(c.lbfgs_note.as_deref(), Some("it reached max_iters = 3"), "{c:?}");
    assert!(c.newton_steps >= 1, "{c:?}");
    let decrement = c.decrement.expect("a decrement from the Hessian");
    assert!(decrement <= c.tol_decrement && c.met_tolerance() && !c.rounding_floor, "{c:?}");
    assert_eq!(fit.stop_reason(), StopReason::LbfgsConverged);
    let text = c.to_string();
    assert!(text.contains("it reached max_iters = 3") && text.contains("Newton step"), "{text}");
    assert!(text.contains("Newton decrement") && text.contains("≤ 1e-10 nats"), "{text}");
    // the steps, on a quadratic, land on the mode
    let mean = host(&fit.mean().unwrap());
    for (i, (got, want)) in mean.iter().zip(&exact.mean).enumerate() {
        let sd = exact.cov[i * 11].sqrt();
        assert!((got - want).abs() < 1e-6 * sd, "mean {i}: {got} vs {want}");
    }
    // the trace has the Newton steps' values after L-BFGS's
    assert!(fit.trace().len() > c.iterations + 1, "{} values for {} iterations", fit.trace().len(), c.iterations);
}

#[test]
fn tolerances_no_run_can_meet_end_at_the_rounding_floor_and_say_so() {
    let (model, _) = linreg();
    let unreachable = Lbfgs { tol_grad: 1e-300, tol_decrement: 1e-300, ..Lbfgs::default() };
    let fit = Laplace::new().map(Map::new().lbfgs(unreachable)).fit(&model).unwrap();
    let Method::Laplace { lbfgs: c, .. } = fit.method() else { panic!("not Laplace") };
    println!("{c}");
    assert!(c.rounding_floor && !c.met_tolerance(), "{c:?}");
    assert!(matches!(fit.stop_reason(), StopReason::LbfgsRoundingFloor { .. }), "{:?}", fit.stop_reason());
    assert!(c.to_string().contains("f can decrease no further"), "{c}");
    // the floor is where the most a Newton step could gain is lost in f's rounding
    let f = -fit.trace().last().unwrap();
    let decrement = c.decrement.expect("a decrement from the Hessian");
    assert!(decrement <= 64.0 * f64::EPSILON * f.abs(), "λ²/2 = {decrement:e} at f = {f}");
    // DADVI says the same
    let dadvi = Dadvi::new().lbfgs(unreachable).fit(&model).unwrap();
    let Method::Dadvi { lbfgs: c, .. } = dadvi.fit().method() else { panic!("not DADVI") };
    assert!(c.rounding_floor && !c.met_tolerance(), "{c:?}");
    assert!(matches!(dadvi.fit().stop_reason(), StopReason::LbfgsRoundingFloor { .. }));
}

#[test]
fn without_a_hessian_a_run_cut_short_fails_and_one_that_converged_has_no_decrement() {
    let (model, _) = linreg();
    let err = Map::new().curvature_check(false).max_iters(3).fit(&model).unwrap_err();
    assert!(matches!(err, Error::NotConverged { iterations: 3, .. }), "{err:?}");
    assert!(err.to_string().contains("max_iters = 3"), "{err}");
    let map = Map::new().curvature_check(false).fit(&model).unwrap();
    let c = map.convergence();
    assert!(c.decrement.is_none() && c.grad_norm <= c.tol_grad && c.met_tolerance(), "{c:?}");
    assert!(c.newton_steps == 0 && c.lbfgs_note.is_none() && map.hessian_evaluations() == 0, "{c:?}");
    // DADVI without linear response computes a Hessian only to finish an L-BFGS run that stopped
    // short or at its rounding floor (here: at the floor, ‖∇‖ ≈ 2 · 10⁻⁶), and says which
    let dadvi = Dadvi::new().linear_response(false).fit(&model).unwrap();
    let Method::Dadvi { lbfgs: c, hessian_evaluations, .. } = dadvi.fit().method() else { panic!("not DADVI") };
    println!("DADVI without linear response: {c}");
    assert!(c.met_tolerance() && !c.rounding_floor, "{c:?}");
    assert_eq!(c.decrement.is_some(), *hessian_evaluations > 0, "{c:?}, {hessian_evaluations} Hessian evaluations");
    assert!(c.decrement.is_some_and(|d| d <= c.tol_decrement) || c.grad_norm <= c.tol_grad, "{c:?}");
    assert!(dadvi.mean_se().is_none() && dadvi.linear_response_covariance().is_none());
}

#[test]
fn where_no_newton_step_can_be_taken_the_error_stays_lbfgs() {
    // τ > 0 with a flat prior and no data: log p(u) = u grows forever, and its Hessian is 0
    let model = Latents::new().positive("tau", ()).model(|v| v.get("tau")?.zeros_like());
    let err = Laplace::new().fit(&model).unwrap_err();
    let text = err.to_string();
    println!("{text}");
    assert!(matches!(err, Error::NotConverged { .. }), "{err:?}");
    assert!(text.contains("no finite mode") && text.contains("no Newton steps from there"), "{text}");
    assert!(text.contains("not positive definite"), "{text}");
}

#[test]
fn the_tolerance_on_the_decrement_is_checked() {
    let (model, _) = linreg();
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = Map::new().tol_decrement(bad).fit(&model).unwrap_err();
        assert!(matches!(&err, Error::InvalidConfig { name: "tol_decrement", .. }), "{bad}: {err:?}");
        let err = Dadvi::new().tol_decrement(bad).fit(&model).unwrap_err();
        assert!(matches!(&err, Error::InvalidConfig { name: "tol_decrement", .. }), "{bad}: {err:?}");
    }
}
