//! Reproducibility: the same seed gives bit-identical parameters, traces and draws on the CPU,
//! in f32 and f64; different seeds differ; stepping by hand gives exactly what `fit` gives.

use crate::common::{host, param_bits};
use elbo::prelude::*;
use elbo_models::LinearRegression;

fn model(dtype: DType) -> LinearRegression {
    LinearRegression::simulate(50, 4, 1).unwrap().0.to(dtype, &Device::Cpu).unwrap()
}

fn advi<F: Family>(family: F, dtype: DType, seed: u64) -> Advi<F> {
    Advi::new(family).dtype(dtype).samples(3).steps(300).seed(seed).elbo_draws(100)
}

#[test]
fn one_seed_gives_bit_identical_fits() {
    for dtype in [DType::F32, DType::F64] {
        let m = model(dtype);
        let a = advi(FullRank, dtype, 7).fit(&m).unwrap();
        let b = advi(FullRank, dtype, 7).fit(&m).unwrap();
        assert_eq!(param_bits(a.q()), param_bits(b.q()), "{dtype:?}: parameters differ");
        let bits = |t: &[f64]| t.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(a.trace()), bits(b.trace()), "{dtype:?}: traces differ");
        assert_eq!(a.elbo().to_bits(), b.elbo().to_bits());
        let draws = |f: &Fit<_>| host(&f.sample(20).unwrap());
        assert_eq!(bits(&draws(&a)), bits(&draws(&b)), "{dtype:?}: draws differ");

        let mf_a = advi(MeanField, dtype, 7).fit(&m).unwrap();
        let mf_b = advi(MeanField, dtype, 7).fit(&m).unwrap();
        assert_eq!(param_bits(mf_a.q()), param_bits(mf_b.q()));
    }
}

#[test]
fn different_seeds_give_different_fits() {
    let m = model(DType::F64);
    let a = advi(FullRank, DType::F64, 7).fit(&m).unwrap();
    let b = advi(FullRank, DType::F64, 8).fit(&m).unwrap();
    assert_ne!(param_bits(a.q()), param_bits(b.q()));
    assert_ne!(host(&a.sample(5).unwrap()), host(&a.sample_seeded(5, 99).unwrap()));
}

#[test]
fn stepping_by_hand_equals_fit() {
    let m = model(DType::F64);
    let settings = advi(MeanField, DType::F64, 3).estimator(Estimator::StickingTheLanding);
    let mut state = settings.init(&m).unwrap();
    for _ in 0..100 {
        assert!(matches!(settings.step(&mut state, &m).unwrap(), Step::Taken { .. }));
    }
    assert_eq!(state.iteration(), 100);
    let by_hand = settings.run(state, &m).unwrap();
    let at_once = settings.fit(&m).unwrap();
    assert_eq!(param_bits(by_hand.q()), param_bits(at_once.q()));
    assert_eq!(by_hand.iterations(), 300);
}

#[test]
fn f32_and_f64_fits_agree() {
    // Same seed, same noise (drawn in f64, rounded for f32): the two fits end close together.
    let a = advi(FullRank, DType::F32, 5).steps(2_000).fit(&model(DType::F32)).unwrap();
    let b = advi(FullRank, DType::F64, 5).steps(2_000).fit(&model(DType::F64)).unwrap();
    let (ma, mb) = (host(&a.mean().unwrap()), host(&b.mean().unwrap()));
    for (x, y) in ma.iter().zip(&mb) {
        assert!((x - y).abs() < 1e-2, "f32 {x} vs f64 {y}");
    }
}
