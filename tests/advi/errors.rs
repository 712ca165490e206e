//! Bad input gets a clear `elbo::Error`, never a panic: each case asserts the variant and that the
//! message names the problem. Non-finite steps are skipped, counted, and, after too many in a row,
//! reported with the iteration and the coordinates of z that caused them.

use crate::common::host;
use elbo::prelude::*;
use elbo::{Error, MeanFieldGaussian};
use elbo_models::{LinearRegression, LogisticRegression};

/// −½ ‖z‖², a well-behaved model of dimension `d` in f64.
fn quadratic(d: usize) -> impl LogJoint {
    elbo::from_fn(d, |z: &Tensor| z.sqr()?.sum(1)? * -0.5)
}

fn f64_advi<F: Family>(family: F) -> Advi<F> {
    Advi::new(family).dtype(DType::F64).steps(50).elbo_draws(10)
}

fn message<T: std::fmt::Debug>(r: elbo::Result<T>) -> (Error, String) {
    let e = r.expect_err("expected an error");
    let m = e.to_string();
    (e, m)
}

#[test]
fn dimension_mismatch_between_family_and_model() {
    let (e, m) = message(f64_advi(MeanField).init_loc(vec![0.0; 3]).fit(&quadratic(5)));
    assert!(matches!(e, Error::DimensionMismatch { expected: 5, got: 3, .. }), "{e:?}");
    assert!(m.contains("init_loc") && m.contains('5') && m.contains('3'), "{m}");

    let q = MeanFieldGaussian::new(&[0.0; 4], &[1.0; 4], ScaleLink::Log, DType::F64, &Device::Cpu).unwrap();
    let (e, m) = message(f64_advi(MeanField).init_from(q, &quadratic(6)));
    assert!(matches!(e, Error::DimensionMismatch { expected: 6, got: 4, .. }), "{e:?}");
    assert!(m.contains("mean-field Gaussian"), "{m}");
}

#[test]
fn log_joint_of_the_wrong_shape() {
    // [S, 1] instead of [S]
    let keepdim = elbo::from_fn(3, |z: &Tensor| z.sqr()?.sum_keepdim(1));
    let (e, m) = message(f64_advi(FullRank).samples(4).fit(&keepdim));
    assert!(matches!(e, Error::ModelOutput { .. }), "{e:?}");
    assert!(m.contains("[4]") && m.contains("[4, 1]"), "{m}");

    // a scalar instead of [S]
    let summed = elbo::from_fn(3, |z: &Tensor| z.sqr()?.sum_all());
    let (e, m) = message(f64_advi(MeanField).samples(2).fit(&summed));
    assert!(matches!(e, Error::ModelOutput { .. }), "{e:?}");
    assert!(m.contains("shape [2]") && m.contains("[]"), "{m}");
}

#[test]
fn log_joint_of_the_wrong_dtype() {
    let cast = elbo::from_fn(2, |z: &Tensor| z.sqr()?.sum(1)?.to_dtype(DType::F32));
    let (e, m) = message(f64_advi(MeanField).fit(&cast));
    assert!(matches!(e, Error::ModelOutput { .. }), "{e:?}");
    assert!(m.contains("F32") && m.contains("F64"), "{m}");
}

#[test]
fn model_data_in_another_dtype_than_the_fit() {
    // The model's data are F64 but the fit runs in F32 (the default): candle refuses to mix them.
    let (model, _) = LinearRegression::simulate(20, 3, 0).unwrap();
    let (e, m) = message(Advi::new(MeanField).steps(5).fit(&model));
    assert!(matches!(e, Error::ModelOutput { .. }), "{e:?}");
    assert!(m.contains("F32") && m.contains(".dtype("), "{m}");
}

#[test]
fn zero_samples() {
    let (e, m) = message(f64_advi(MeanField).samples(0).fit(&quadratic(2)));
    assert!(matches!(e, Error::InvalidConfig { name: "samples", .. }), "{e:?}");
    assert!(m.contains("samples"), "{m}");
}

#[test]
fn non_positive_or_non_finite_learning_rate() {
    for lr in [0.0, -0.1, f64::NAN, f64::INFINITY] {
        let (e, m) = message(f64_advi(FullRank).lr(lr).fit(&quadratic(2)));
        assert!(matches!(e, Error::InvalidConfig { name: "lr", .. }), "lr {lr}: {e:?}");
        assert!(m.contains("learning rate"), "{m}");
    }
    let (e, _) = message(f64_advi(FullRank).optimizer(Optimizer::sgd(-1.0)).fit(&quadratic(2)));
    assert!(matches!(e, Error::InvalidConfig { name: "lr", .. }), "{e:?}");
    let (e, _) = message(f64_advi(FullRank).lr_schedule(LrSchedule::Exponential { final_lr: 0.0 }).fit(&quadratic(2)));
    assert!(matches!(e, Error::InvalidConfig { name: "final_lr", .. }), "{e:?}");
}

#[test]
fn other_bad_settings() {
    let (e, _) = message(f64_advi(MeanField).init_scale(0.0).fit(&quadratic(2)));
    assert!(matches!(e, Error::InvalidConfig { name: "init_scale", .. }), "{e:?}");
    let (e, _) = message(f64_advi(MeanField).init_loc(vec![0.0, f64::NAN]).fit(&quadratic(2)));
    assert!(matches!(e, Error::InvalidConfig { name: "init_loc", .. }), "{e:?}");
    let (e, _) = message(f64_advi(MeanField).elbo_draws(1).fit(&quadratic(2)));
    assert!(matches!(e, Error::InvalidConfig { name: "elbo_draws", .. }), "{e:?}");
    let (e, _) = message(f64_advi(MeanField).dtype(DType::U32).fit(&quadratic(2)));
    assert!(matches!(e, Error::InvalidConfig { name: "dtype", .. }), "{e:?}");
    let (e, m) = message(f64_advi(MeanField).fit(&quadratic(0)));
    assert!(matches!(e, Error::ModelOutput { .. }) && m.contains("dim() is 0"), "{m}");
    let upper = [1.0, 0.5, 0.0, 1.0];
    let (e, m) = message(elbo::FullRankGaussian::new(&[0.0; 2], &upper, ScaleLink::Log, DType::F64, &Device::Cpu));
    assert!(matches!(e, Error::InvalidConfig { name: "scale_tril", .. }) && m.contains("(0, 1)"), "{m}");
}

#[test]
fn empty_data() {
    let x = Tensor::zeros((0, 3), DType::F64, &Device::Cpu).unwrap();
    let y = Tensor::zeros(0, DType::F64, &Device::Cpu).unwrap();
    let (e, m) = message(LinearRegression::new(&x, &y, 10.0, 1.0));
    assert!(matches!(e, Error::EmptyData { .. }), "{e:?}");
    assert!(m.contains("[0, 3]"), "{m}");
    let (e, _) = message(LogisticRegression::new(&x, &y));
    assert!(matches!(e, Error::EmptyData { .. }), "{e:?}");

    let x = Tensor::zeros((4, 2), DType::F64, &Device::Cpu).unwrap();
    let (e, m) = message(LinearRegression::new(&x, &Tensor::zeros(3, DType::F64, &Device::Cpu).unwrap(), 10.0, 1.0));
    assert!(matches!(e, Error::DimensionMismatch { expected: 4, got: 3, .. }), "{e:?}");
    assert!(m.contains('y'), "{m}");
    let (e, _) = message(LinearRegression::new(&x, &Tensor::zeros(4, DType::F64, &Device::Cpu).unwrap(), 0.0, 1.0));
    assert!(matches!(e, Error::InvalidConfig { name: "prior_sd", .. }), "{e:?}");
}

#[test]
fn a_coordinate_that_makes_log_p_non_finite_is_named() {
    // log p = −½‖z‖² + log(0.02 − |z₃|): NaN whenever |z₃| > 0.02, which with scale 0.1 and 64
    // draws happens in every step (from the point start); q's mean (0) itself is fine.
    let model = elbo::from_fn(5, |z: &Tensor| {
        let z3 = z.narrow(1, 3, 1)?.squeeze(1)?;
        (z.sqr()?.sum(1)? * -0.5)? + (z3.abs()?.neg()? + 0.02)?.log()?
    });
    let (e, m) = message(f64_advi(MeanField).init_pathfinder(None).samples(64).fit(&model));
    assert!(matches!(e, Error::NonFinite { iteration: 19, consecutive: 20, .. }), "{e:?}");
    assert!(m.contains("iteration 19") && m.contains("z[3]"), "{m}");
    assert!(!m.contains("z[0]") && !m.contains("z[4]"), "{m}");
}

#[test]
fn a_non_finite_gradient_is_named() {
    // (z₀ − stop(z₀)) · 1e308 · 1e308 is 0 in value, but its gradient overflows to ∞.
    let model = elbo::from_fn(2, |z: &Tensor| {
        let z0 = z.narrow(1, 0, 1)?.squeeze(1)?;
        (z.sqr()?.sum(1)? * -0.5)? + ((z0.clone() - z0.detach())? * 1e308)? * 1e308
    });
    let (e, m) = message(f64_advi(FullRank).max_consecutive_nonfinite(3).fit(&model));
    assert!(matches!(e, Error::NonFinite { iteration: 2, consecutive: 3, .. }), "{e:?}");
    assert!(m.contains("gradient of `loc`"), "{m}");
}

#[test]
fn occasional_non_finite_steps_are_skipped_and_the_result_stays_finite() {
    // N(0, 1) except that log p is NaN beyond z₀ > 2: a few draws in a thousand.
    let model = elbo::from_fn(2, |z: &Tensor| {
        let z0 = z.narrow(1, 0, 1)?.squeeze(1)?;
        let nan = z0.ones_like()?.affine(0.0, f64::NAN)?;
        let nan_beyond = z0.gt(2.0)?.where_cond(&nan, &z0.zeros_like()?)?; // 0, or NaN when z₀ > 2
        (z.sqr()?.sum(1)? * -0.5)? + nan_beyond
    });
    let fit = f64_advi(MeanField).init_scale(1.0).lr(0.01).steps(3_000).elbo_draws(1_000).fit(&model).unwrap();
    assert!(fit.skipped_steps() > 0, "no step was skipped: the test model is wrong");
    // P(z₀ > 2) is 2–6 % for the q this converges to (skipping those draws widens q a little)
    assert!(fit.skipped_steps() < 300, "{} of 3000 steps skipped", fit.skipped_steps());
    // the final ELBO is undefined where log p is NaN, and the report says how often that was
    assert!(fit.elbo().is_nan());
    assert!((5..150).contains(&fit.elbo_nonfinite_draws()), "{}", fit.elbo_nonfinite_draws());
    assert!(fit.to_string().contains("non-finite log p"), "{fit}");
    let params: Vec<f64> = fit.q().params().iter().flat_map(|(_, v)| host(v.as_tensor())).collect();
    assert!(params.iter().all(|x| x.is_finite()), "{params:?}");
    let mean = host(&fit.mean().unwrap());
    assert!(mean.iter().all(|m| m.abs() < 0.3), "{mean:?}");
    assert_eq!(fit.trace().iter().filter(|x| x.is_nan()).count(), fit.skipped_steps());
}

#[test]
fn an_unbounded_step_count_does_not_allocate_up_front() {
    // usize::MAX steps is a legitimate "until I stop stepping" for manual control.
    let advi = f64_advi(MeanField).steps(usize::MAX);
    let model = quadratic(2);
    let mut state = advi.init(&model).unwrap();
    advi.step(&mut state, &model).unwrap();
    assert_eq!(state.iteration(), 1);
}

#[test]
fn a_warm_start_in_another_dtype() {
    let q = MeanFieldGaussian::new(&[0.0; 2], &[1.0; 2], ScaleLink::Log, DType::F32, &Device::Cpu).unwrap();
    let (e, m) = message(f64_advi(MeanField).init_from(q, &quadratic(2)));
    assert!(matches!(e, Error::InvalidConfig { name: "init_from", .. }), "{e:?}");
    assert!(m.contains("F32") && m.contains("F64"), "{m}");
}

#[test]
fn a_model_that_ignores_z_still_fits() {
    // log p constant: loc gets no gradient at all; the fit must neither panic nor fail.
    let flat = elbo::from_fn(2, |z: &Tensor| Ok((z.sum(1)? * 0.0)?.detach()));
    let fit = f64_advi(FullRank).fit(&flat).unwrap();
    assert_eq!(fit.iterations(), 50);
}
