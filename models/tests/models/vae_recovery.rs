//! The VAE trainer's non-finite handling (Advi's: skip, restore, halve, fail), its observers and
//! its step-size schedule.
//!
//! ```text
//! a batch with a NaN pixel: batch ELBO NaN → the step is skipped, the weights untouched
//! 20 skips in a row: weights ← the last snapshot (every 10 clean steps), fresh moments, η ← η/2;
//! the fourth such run fails with Error::NonFinite naming the step
//! ```

use candle_core::{DType, Device, Tensor};
use elbo::observe::Trace;
use elbo::{Error, LrSchedule};
use elbo_models::{Vae, VaeConfig, VaeLikelihood, VaeTrainer};

fn small_vae(seed: u64) -> Vae {
    let config = VaeConfig {
        input_dim: 16,
        hidden_dim: 8,
        latent_dim: 2,
        likelihood: VaeLikelihood::Bernoulli,
        dtype: DType::F32,
    };
    Vae::new(config, seed, &Device::Cpu).unwrap()
}

/// 8 grey-level images of 16 pixels; with `nan`, the first pixel of the first is NaN.
fn batch(nan: bool) -> Tensor {
    let mut v: Vec<f32> = (0..8 * 16).map(|i| ((i as f32 * 0.37).sin() + 1.0) / 2.0).collect();
    if nan {
        v[0] = f32::NAN;
    }
    Tensor::from_vec(v, (8, 16), &Device::Cpu).unwrap()
}

fn weights(trainer: &VaeTrainer) -> Vec<Vec<f32>> {
    trainer.vae().vars().iter().map(|v| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect()
}

#[test]
fn a_nonfinite_step_is_skipped_and_leaves_the_weights() {
    let mut trainer = VaeTrainer::new(small_vae(1), 1e-2, 1).unwrap();
    let good = trainer.step(&batch(false), 1.0).unwrap();
    assert!(good.taken && good.elbo.is_finite());
    let before = weights(&trainer);
    let bad = trainer.step(&batch(true), 1.0).unwrap();
    assert!(!bad.taken && bad.elbo.is_nan(), "{bad:?}");
    assert_eq!(weights(&trainer), before, "a skipped step moved the weights");
    assert_eq!((trainer.steps(), trainer.skipped(), trainer.halvings()), (2, 1, 0));
    // and the next clean step moves them again, at the same step size
    assert_eq!(trainer.lr(), 1e-2);
    assert!(trainer.step(&batch(false), 1.0).unwrap().taken);
    assert_ne!(weights(&trainer), before);
}

#[test]
fn runs_of_skips_restore_and_halve_then_fail() {
    let lr = 1e-2;
    let mut trainer = VaeTrainer::new(small_vae(2), lr, 2).unwrap();
    let mut snapshot = Vec::new();
    for halving in 1..=3 {
        // 12 clean steps: the snapshot is taken after the 10th
        for k in 1..=12 {
            assert!(trainer.step(&batch(false), 1.0).unwrap().taken);
            if k == 10 {
                snapshot = weights(&trainer);
            }
        }
        assert_ne!(weights(&trainer), snapshot);
        for _ in 0..20 {
            assert!(!trainer.step(&batch(true), 1.0).unwrap().taken);
        }
        assert_eq!(trainer.halvings(), halving);
        assert_eq!(weights(&trainer), snapshot, "restore {halving} went back to the last snapshot");
        assert_eq!(trainer.lr(), lr * 0.5f64.powi(halving as i32));
    }
    for _ in 0..12 {
        trainer.step(&batch(false), 1.0).unwrap();
    }
    for _ in 0..19 {
        assert!(!trainer.step(&batch(true), 1.0).unwrap().taken);
    }
    let failing = trainer.steps();
    match trainer.step(&batch(true), 1.0) {
        Err(Error::NonFinite { iteration, consecutive, detail }) => {
            assert_eq!((iteration, consecutive), (failing, 20));
            assert!(detail.contains("batch ELBO is NaN") && detail.contains("3 times"), "{detail}");
        }
        other => panic!("expected Error::NonFinite, got {other:?}"),
    }
    assert_eq!(trainer.skipped(), 80);
}

/// With nothing to go back to (no step taken since the start), a run of skips fails at once; the
/// limit is a setting.
#[test]
fn skips_before_any_step_fail_without_restoring() {
    let mut trainer = VaeTrainer::new(small_vae(3), 1e-2, 3).unwrap().max_consecutive_nonfinite(3).unwrap();
    for _ in 0..2 {
        assert!(!trainer.step(&batch(true), 1.0).unwrap().taken);
    }
    assert!(matches!(trainer.step(&batch(true), 1.0), Err(Error::NonFinite { iteration: 2, consecutive: 3, .. })));
    assert_eq!(trainer.halvings(), 0);
    assert!(VaeTrainer::new(small_vae(3), 1e-2, 3).unwrap().max_consecutive_nonfinite(0).is_err());
}

/// Observers see every step with its ELBO (NaN when skipped) and the scheduled step size.
#[test]
fn observers_see_each_step_and_the_schedule() {
    let (lr, total) = (1e-2, 11);
    let schedule = LrSchedule::Exponential { final_lr: 1e-4 };
    let mut trainer = VaeTrainer::new(small_vae(4), lr, 4).unwrap().lr_schedule(schedule, total).unwrap();
    let mut trace = Trace::default();
    for t in 0..total {
        let x = batch(t == 5);
        let stats = trainer.step_with(&x, 1.0, &mut [&mut trace]).unwrap();
        assert_eq!(stats.taken, t != 5);
    }
    trainer.finish(&mut [&mut trace]).unwrap();
    assert_eq!(trace.elbo.len(), total);
    assert!(trace.elbo[5].is_nan() && trace.elbo.iter().enumerate().all(|(t, e)| t == 5 || e.is_finite()));
    for (t, got) in trace.lr.iter().enumerate() {
        assert_eq!(*got, schedule.lr_at(lr, t, total), "step {t}");
    }
    assert!((trace.lr[10] - 1e-4).abs() < 1e-15);
    let bad = LrSchedule::Exponential { final_lr: 0.0 };
    assert!(VaeTrainer::new(small_vae(4), lr, 4).unwrap().lr_schedule(bad, total).is_err());
}

/// Stops once the batch ELBO has been seen `n` times.
#[derive(Clone, Debug)]
struct AfterSteps(usize);

impl elbo::stop::Rule for AfterSteps {
    fn name(&self) -> &'static str {
        "after n steps"
    }
    fn observe(&mut self, cx: &elbo::stop::Context<'_>) -> elbo::Result<Option<elbo::StopReason>> {
        assert!(cx.q.is_none(), "an amortised fit has no single q");
        assert_eq!(cx.trace.len(), cx.iteration);
        Ok((cx.iteration >= self.0)
            .then_some(elbo::StopReason::Custom { rule: self.name(), value: cx.iteration as f64 }))
    }
}

#[test]
fn a_stopping_rule_sees_every_step_and_decides() {
    let mut trainer = VaeTrainer::new(small_vae(3), 1e-2, 3).unwrap().stop_when(AfterSteps(5));
    let x = batch(false);
    let mut steps = 0;
    while trainer.stop_reason().is_none() {
        trainer.step(&x, 1.0).unwrap();
        steps += 1;
        assert!(steps <= 5, "the rule should have stopped the run at step 5");
    }
    assert_eq!(steps, 5);
    assert_eq!(trainer.stop_reason(), Some(elbo::StopReason::Custom { rule: "after n steps", value: 5.0 }));
}
