//! Stopping rules: the default (stationary iterates, averaged to a small Monte Carlo error) stops a
//! fit early with an accurate q and does not stop one that is still travelling; Stan's rule, the
//! wall-time budget and the step limit each stop a run and say so; the step-size search keeps the
//! smallest step as good as the best and, with halving and scale-relative location steps, fits a
//! target whose scales are 1e3 and 1e-3 together, where Adam's default absolute steps crawl.
//!
//! The default rule's tolerance is an MCSE of 0.02 (means in sds, sds relative), so the asserted
//! 0.05 sd and 5 % are 2.5 MCSEs or more for every coordinate.

use std::time::Duration;

use crate::common::{gaussian_target, host};
use elbo::prelude::*;
use elbo::{LocStep, LrSearch, StopRule};

/// A 3-D Gaussian with means −3, 0, 3 and sds 0.5, 1, 2 (mean-field is exact).
fn diagonal_target(mu: [f64; 3]) -> (impl LogJoint, [f64; 3], [f64; 3]) {
    let sd = [0.5, 1.0, 2.0];
    let l = [sd[0], 0.0, 0.0, 0.0, sd[1], 0.0, 0.0, 0.0, sd[2]];
    (gaussian_target(mu.to_vec(), &l), mu, sd)
}

/// The largest error of q's means in target sds, and of its sds relative to the target's.
fn errors<Q: VariationalFamily>(fit: &Fit<Q>, mu: &[f64], sd: &[f64]) -> (f64, f64) {
    let mean = host(&fit.mean().unwrap());
    let cov = host(&fit.covariance().unwrap());
    let d = mu.len();
    let mean_err = (0..d).map(|j| ((mean[j] - mu[j]) / sd[j]).abs()).fold(0.0, f64::max);
    let sd_err = (0..d).map(|j| (cov[j * d + j].sqrt() / sd[j] - 1.0).abs()).fold(0.0, f64::max);
    (mean_err, sd_err)
}

#[test]
fn the_default_rule_stops_early_with_an_accurate_average() {
    // Five seeds: each must stop by the rule within the limit and be accurate; together they must
    // use fewer steps than a fixed 10,000 (the median; single runs vary with the noise).
    let (model, mu, sd) = diagonal_target([-3.0, 0.0, 3.0]);
    let mut steps = Vec::new();
    for seed in 0..5 {
        let fit = Advi::new(MeanField).dtype(DType::F64).steps(30_000).seed(seed).fit(&model).unwrap();
        assert!(matches!(fit.stop_reason(), StopReason::Stationary { mcse, .. } if mcse < 0.02), "{fit}");
        let averaged = fit.averaged().expect("q is an average");
        assert_eq!(averaged.since + averaged.steps, fit.iterations());
        let (mean_err, sd_err) = errors(&fit, &mu, &sd);
        assert!(mean_err < 0.05 && sd_err < 0.05, "seed {seed}: mean {mean_err:.4} sd, sd {sd_err:.4}\n{fit}");
        assert!(fit.to_string().contains("the average of"), "{fit}");
        steps.push(fit.iterations());
    }
    steps.sort();
    eprintln!("steps to stop: {steps:?}");
    assert!(steps[2] < 10_000, "steps to stop: {steps:?}");
}

#[test]
fn the_default_rule_stops_a_full_rank_fit_of_a_correlated_gaussian() {
    // correlation 0.8, sds 1 and 3: the full-rank family is exact
    let (mu, sd) = ([1.0, -2.0], [1.0, 3.0]);
    let l = [1.0, 0.0, 0.8 * 3.0, 0.6 * 3.0];
    let fit =
        Advi::new(FullRank).dtype(DType::F64).steps(30_000).seed(1).fit(&gaussian_target(mu.to_vec(), &l)).unwrap();
    assert!(matches!(fit.stop_reason(), StopReason::Stationary { .. }), "{fit}");
    let (mean_err, sd_err) = errors(&fit, &mu, &sd);
    assert!(mean_err < 0.05 && sd_err < 0.05, "mean {mean_err:.4} sd, sd {sd_err:.4}\n{fit}");
    let cov = host(&fit.covariance().unwrap());
    let rho = cov[1] / (cov[0] * cov[3]).sqrt();
    assert!((rho - 0.8).abs() < 0.02, "correlation {rho}");
}

/// A run that reaches its step cap before the stationary rule decides says so, with the
/// iterates' split-R̂, and q is the better of their latest half's average and the last iterate.
#[test]
fn at_the_step_cap_q_is_the_better_of_the_average_and_the_last_iterate() {
    // still travelling (means 40 sds from the point start, 1,000 steps of at most 0.01): the
    // average lags behind, so q is the last iterate, and R̂ says the iterates were moving
    let (model, ..) = diagonal_target([-12.5, 0.0, 80.0]);
    let fit = Advi::new(MeanField).dtype(DType::F64).init_pathfinder(None).steps(1_000).fit(&model).unwrap();
    assert_eq!(fit.stop_reason(), StopReason::MaxSteps);
    let st = fit.stochastic().unwrap();
    assert!(st.rhat_at_cap.is_some_and(|r| r > 1.1), "{fit}");
    assert!(st.averaged.is_none() && fit.to_string().contains("still moving"), "{fit}");
    // from Pathfinder's start the iterates are stationary at once, but 1,000 steps are too few for
    // the rule (at least 1,600): q is the average of the latest half, as precise as it allows
    let (model, mu, sd) = diagonal_target([-3.0, 0.0, 3.0]);
    let fit = Advi::new(MeanField).dtype(DType::F64).steps(1_000).seed(1).fit(&model).unwrap();
    assert_eq!(fit.stop_reason(), StopReason::MaxSteps);
    let averaged = fit.averaged().expect("the average beats one noisy iterate");
    assert!(averaged.steps >= 400 && averaged.since + averaged.steps == 1_000, "{averaged:?}");
    assert!(fit.stochastic().unwrap().rhat_at_cap.is_some(), "{fit}");
    let (mean_err, sd_err) = errors(&fit, &mu, &sd);
    assert!(mean_err < 0.1 && sd_err < 0.1, "mean {mean_err:.4} sd, sd {sd_err:.4}\n{fit}");
}

#[test]
fn a_far_optimum_is_not_stopped_early() {
    // Means 40 and −25 sds away from the point start: Adam at η = 0.01 moves at most about 0.01 a step,
    // so no honest rule can stop before step 4,000.
    let (model, mu, sd) = diagonal_target([-12.5, 0.0, 80.0]);
    let fit = Advi::new(MeanField).dtype(DType::F64).init_pathfinder(None).steps(40_000).seed(2).fit(&model).unwrap();
    assert!(matches!(fit.stop_reason(), StopReason::Stationary { .. }), "{fit}");
    let averaged = fit.averaged().unwrap();
    assert!(averaged.since > 4_000, "the average starts at step {} (the travel takes ≥ 4,000)", averaged.since);
    let (mean_err, sd_err) = errors(&fit, &mu, &sd);
    assert!(mean_err < 0.05 && sd_err < 0.05, "mean {mean_err:.4} sd, sd {sd_err:.4}\n{fit}");
}

#[test]
fn stans_rule_stops_and_says_which_statistic_fired() {
    // Stan's rule is relative: it needs an ELBO away from 0 (this target's log p is shifted by
    // −100), and it never fires on the normalised target, whose ELBO tends to log 1 = 0.
    let (model, ..) = diagonal_target([-3.0, 0.0, 3.0]);
    let shifted = elbo::from_fn(3, move |z: &Tensor| model.log_joint(z)? - 100.0);
    let stan = Advi::new(MeanField).dtype(DType::F64).stop(StopRule::stan()).seed(0);
    let fit = stan.fit(&shifted).unwrap();
    match fit.stop_reason() {
        StopReason::Stan { statistic, value } => {
            assert!(["mean", "median"].contains(&statistic) && value < 0.01, "{fit}");
        }
        other => panic!("stopped by {other:?}"),
    }
    assert!(fit.iterations() < 10_000 && fit.averaged().is_none());
    assert!(fit.to_string().contains("Stan's rule"), "{fit}");
    let (normalised, ..) = diagonal_target([-3.0, 0.0, 3.0]);
    assert_eq!(stan.steps(3_000).fit(&normalised).unwrap().stop_reason(), StopReason::MaxSteps);
}

#[test]
fn the_step_limit_and_the_wall_time_budget_stop_any_rule() {
    let (model, ..) = diagonal_target([-3.0, 0.0, 3.0]);
    let fixed = Advi::new(MeanField).dtype(DType::F64).stop(StopRule::MaxSteps).steps(700).fit(&model).unwrap();
    assert_eq!((fixed.stop_reason(), fixed.iterations(), fixed.averaged()), (StopReason::MaxSteps, 700, None));
    // a decaying schedule is planned over all its steps, so it runs them by default
    let decaying = Advi::new(MeanField)
        .dtype(DType::F64)
        .lr_schedule(LrSchedule::Exponential { final_lr: 1e-4 })
        .steps(3_000)
        .fit(&model)
        .unwrap();
    assert_eq!((decaying.stop_reason(), decaying.iterations()), (StopReason::MaxSteps, 3_000));
    let timed = Advi::new(MeanField)
        .dtype(DType::F64)
        .steps(10_000_000)
        .max_time(Duration::from_millis(20))
        .fit(&model)
        .unwrap();
    assert_eq!(timed.stop_reason(), StopReason::WallTime);
    assert!(timed.elapsed() >= Duration::from_millis(20) && timed.iterations() < 10_000_000);
    assert!(timed.to_string().contains("wall-time budget"), "{timed}");
}

#[test]
fn bad_rules_are_refused() {
    let (model, ..) = diagonal_target([0.0; 3]);
    let bad = [
        StopRule::Stan { eval: 0, tol: 0.01 },
        StopRule::Stan { eval: 100, tol: 0.0 },
        StopRule::Stationary { rhat: 1.0, tol: 0.02, halving: false },
        StopRule::Stationary { rhat: 1.1, tol: f64::NAN, halving: true },
    ];
    for rule in bad {
        let err = Advi::new(MeanField).stop(rule).fit(&model).unwrap_err();
        assert!(matches!(err, elbo::Error::InvalidConfig { name: "stop", .. }), "{rule:?}: {err}");
    }
    let err = Advi::new(MeanField).max_time(Duration::ZERO).fit(&model).unwrap_err();
    assert!(err.to_string().contains("max_time"), "{err}");
    let err = Advi::new(MeanField).lr_search(LrSearch { grid: vec![], ..LrSearch::default() }).fit(&model).unwrap_err();
    assert!(err.to_string().contains("lr_search"), "{err}");
}

#[test]
fn the_step_size_search_keeps_the_smallest_step_as_good_as_the_best_and_fails_when_none_improves() {
    let (model, mu, sd) = diagonal_target([-3.0, 0.0, 3.0]);
    let fit = Advi::new(MeanField)
        .dtype(DType::F64)
        .init_pathfinder(None)
        .seed(0)
        .steps(30_000)
        .lr_search(LrSearch::default())
        .fit(&model)
        .unwrap();
    let search = fit.lr_search().expect("the search ran").clone();
    // η = 100 and 10 throw q far off (ELBO far below the initial one) or diverge
    assert!(
        search.tried.iter().any(|&(lr, _, e)| lr >= 10.0 && e.is_none_or(|e| e < search.initial_elbo)),
        "{search:?}"
    );
    let best = search.tried.iter().filter_map(|&(_, _, e)| e).fold(f64::NEG_INFINITY, f64::max);
    let chosen = search.tried.iter().find(|&&(lr, ..)| lr == search.chosen).and_then(|t| t.2).unwrap();
    assert!(chosen > search.initial_elbo && best - chosen < 1.0, "{search:?}");
    assert!(search.tried.iter().all(|&(lr, _, e)| lr >= search.chosen || e.is_none_or(|e| e < chosen)), "{search:?}");
    assert!(fit.to_string().contains("from a search"), "{fit}");
    let (mean_err, sd_err) = errors(&fit, &mu, &sd);
    assert!(mean_err < 0.05 && sd_err < 0.05, "η = {}: mean {mean_err:.4} sd, sd {sd_err:.4}\n{fit}", search.chosen);

    // log p is NaN for |z| ≥ 0.01: every absolute step size leaves that region within its trial
    let fragile = elbo::from_fn(1, |z: &Tensor| (z.squeeze(1)?.sqr()?.neg()? + 1e-4)?.sqrt()?.log());
    let absolute = LrSearch { loc_steps: vec![LocStep::Absolute], ..LrSearch::default() };
    let err = Advi::new(MeanField).dtype(DType::F64).init_scale(1e-3).lr_search(absolute).fit(&fragile).unwrap_err();
    assert!(err.to_string().contains("no step size improved"), "{err}");
}

#[test]
fn the_step_size_search_fits_scales_of_1e3_and_1e_3_together_where_the_default_crawls() {
    // means 2000 and 0.002, sds 1000 and 0.001. From the point start (0, scale 0.1), in the
    // model's coordinates, Adam's absolute steps of the default η = 0.01 crawl on the first
    // (still more than 1 sd away after 30,000 steps); no absolute η suits both scales. The search
    // tries steps relative to q's sds too, and the rule then halves η until the average stops
    // moving (a large η's stationary bias goes with it).
    let (mu, sd) = ([2_000.0, 0.002], [1_000.0, 0.001]);
    let model = gaussian_target(mu.to_vec(), &[sd[0], 0.0, 0.0, sd[1]]);
    let advi = Advi::new(MeanField).dtype(DType::F64).init_pathfinder(None).steps(30_000).seed(0);
    let default = advi.clone().fit(&model).unwrap();
    let mean = host(&default.mean().unwrap());
    assert!(((mean[0] - mu[0]) / sd[0]).abs() > 1.0, "the default: {mean:?}");
    let searched = advi.lr_search(LrSearch::default()).fit(&model).unwrap();
    assert!(matches!(searched.stop_reason(), StopReason::Stationary { .. }), "{searched}");
    assert!(searched.rule_halvings() >= 1, "{searched}");
    let (mean_err, sd_err) = errors(&searched, &mu, &sd);
    assert!(mean_err < 0.05 && sd_err < 0.05, "mean {mean_err:.4} sd, sd {sd_err:.4}\n{searched}");
    assert!(searched.to_string().contains("halved"), "{searched}");
}

#[test]
fn scale_relative_location_steps_fit_scales_of_1e3_and_1e_3_together() {
    // means 2000 and 0.002, sds 1000 and 0.001. From the point start, Adam's absolute steps of
    // η = 0.01 crawl on the first (still more than 1 sd away after 20,000 steps) and jitter by sds
    // on the second; no absolute η suits both (benches/README.md). Steps of η = 0.03 of q's sd
    // suit every scale, and so does the default start (Pathfinder, steps in its whitened
    // coordinates).
    let (mu, sd) = ([2_000.0, 0.002], [1_000.0, 0.001]);
    let model = gaussian_target(mu.to_vec(), &[sd[0], 0.0, 0.0, sd[1]]);
    let default = Advi::new(MeanField).dtype(DType::F64).seed(0).fit(&model).unwrap();
    let (mean_err, sd_err) = errors(&default, &mu, &sd);
    assert!(mean_err < 0.05 && sd_err < 0.05, "the default: mean {mean_err:.4} sd, sd {sd_err:.4}\n{default}");
    let advi = Advi::new(MeanField).dtype(DType::F64).init_pathfinder(None).steps(30_000).seed(0);
    let absolute = advi.clone().fit(&model).unwrap();
    let mean = host(&absolute.mean().unwrap());
    assert!(((mean[0] - mu[0]) / sd[0]).abs() > 1.0, "absolute steps: {mean:?}");
    let relative = advi.loc_step(LocStep::ScaleRelative).lr(0.03).fit(&model).unwrap();
    assert!(matches!(relative.stop_reason(), StopReason::Stationary { .. }), "{relative}");
    let (mean_err, sd_err) = errors(&relative, &mu, &sd);
    assert!(mean_err < 0.05 && sd_err < 0.05, "mean {mean_err:.4} sd, sd {sd_err:.4}\n{relative}");
}
