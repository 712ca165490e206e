//! Robust optimisation: a run of non-finite steps is answered by restoring the last good
//! parameters and halving the step size, so an overshoot into a region where log p is NaN is
//! survived; when that does not help the fit fails naming the iteration and the coordinates,
//! never returning NaN; gradient-norm clipping keeps plain SGD from diverging on a steep target.

use crate::common::host;
use elbo::prelude::*;
use elbo::{Error, Optimizer};

/// N(0, 1) times (10 − z): log p is NaN for z > 10, ten sds from where the posterior lives.
fn edge() -> impl LogJoint {
    elbo::from_fn(1, |z: &Tensor| {
        let z0 = z.squeeze(1)?;
        (z0.sqr()? * -0.5)? + z0.neg()?.affine(1.0, 10.0)?.log()?
    })
}

#[test]
fn an_overshoot_into_a_nan_region_is_survived_by_restoring_and_halving() {
    // from the point z = −8 with Adam at η = 4, the first steps overshoot past 10 and every draw
    // is NaN
    for lr in [4.0, 8.0] {
        let fit = Advi::new(MeanField)
            .dtype(DType::F64)
            .init_pathfinder(None)
            .lr(lr)
            .steps(3_000)
            .seed(3)
            .init_value("z", [-8.0])
            .fit(&edge())
            .unwrap_or_else(|e| panic!("lr {lr}: {e}"));
        assert!(fit.step_size_halvings() >= 1 && fit.skipped_steps() >= 20, "lr {lr}: nothing to recover from");
        let params: Vec<f64> = fit.q().params().iter().flat_map(|(_, v)| host(v.as_tensor())).collect();
        assert!(params.iter().all(|p| p.is_finite()), "{params:?}");
        let mean = host(&fit.mean().unwrap())[0];
        assert!(mean.abs() < 1.0, "lr {lr}: mean {mean}");
        assert!(fit.to_string().contains("restored"), "{fit}");
    }
    // an ordinary step size never needs it
    let calm = Advi::new(MeanField)
        .dtype(DType::F64)
        .init_pathfinder(None)
        .steps(3_000)
        .init_value("z", [-8.0])
        .fit(&edge())
        .unwrap();
    assert_eq!((calm.step_size_halvings(), calm.skipped_steps()), (0, 0));
}

/// log p = −5000 (z − 1)²: N(1, 0.01²), a gradient of 10⁴ at the start.
fn steep() -> impl LogJoint {
    elbo::from_fn(1, |z: &Tensor| (z.squeeze(1)? - 1.0)?.sqr()? * -5_000.0)
}

/// Plain SGD from the point start (0, scale 0.1), in the model's coordinates.
fn sgd() -> Advi<MeanField> {
    Advi::new(MeanField)
        .dtype(DType::F64)
        .init_pathfinder(None)
        .optimizer(Optimizer::Sgd { lr: 0.1 })
        .steps(2_000)
        .seed(3)
}

#[test]
fn clipping_the_gradient_norm_keeps_sgd_from_diverging() {
    // without clipping the first step jumps by 10³ and the run blows up, halvings or not
    let e = sgd().fit(&steep()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }), "{e:?}");
    assert!(e.to_string().contains("halving the step size 3 times"), "{e}");
    let fit = sgd().clip_grad_norm(1.0).fit(&steep()).unwrap();
    let mean = host(&fit.mean().unwrap())[0];
    assert!((mean - 1.0).abs() < 0.15, "mean {mean}");
    let e = sgd().clip_grad_norm(0.0).fit(&steep()).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { name: "clip_grad_norm", .. }), "{e:?}");
}
