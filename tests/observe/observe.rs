//! Observers see every step and change nothing: a fit with a progress bar, a trace and logs is
//! bit-identical to one without; the CSV and JSON Lines logs hold one record per step (skipped
//! steps included, as NaN / null); an observer's error ends the fit.

use crate::common::param_bits;
use elbo::observe::{LogFormat, Observer, Progress, StepInfo, Trace, TraceLog};
use elbo::prelude::*;

fn quadratic() -> impl LogJoint {
    elbo::from_fn(3, |z: &Tensor| z.sqr()?.sum(1)? * -0.5)
}

fn advi() -> Advi<FullRank> {
    Advi::new(FullRank)
        .dtype(DType::F64)
        .steps(300)
        .seed(4)
        .elbo_draws(50)
        .lr_schedule(LrSchedule::Exponential { final_lr: 1e-3 })
}

#[test]
fn observers_change_nothing_and_see_every_step() {
    let model = quadratic();
    let plain = advi().fit(&model).unwrap();
    let (mut bar, mut trace) = (Progress::new(300).every(7), Trace::default());
    let mut csv = TraceLog::new(Vec::new(), LogFormat::Csv);
    let mut json = TraceLog::new(Vec::new(), LogFormat::JsonLines);
    let observed = advi().fit_with(&model, &mut [&mut bar, &mut trace, &mut csv, &mut json]).unwrap();
    assert_eq!(param_bits(plain.q()), param_bits(observed.q()));
    assert_eq!(trace.elbo, plain.trace());
    // the schedule's step sizes, from 0.01 at the first step to 1e-3 at the last
    assert_eq!(trace.lr.len(), 300);
    assert!((trace.lr[0] - 0.01).abs() < 1e-15 && (trace.lr[299] - 1e-3).abs() < 1e-15, "{:?}", trace.lr);
    assert!(trace.lr.windows(2).all(|w| w[1] < w[0]));

    let csv = String::from_utf8(csv.into_inner()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "iteration,elbo,lr,seconds");
    assert_eq!(lines.len(), 301);
    let last: Vec<f64> = lines[300].split(',').map(|x| x.parse().unwrap()).collect();
    assert_eq!((last[0], last[1]), (300.0, plain.trace()[299]));

    let json = String::from_utf8(json.into_inner()).unwrap();
    let records: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 300);
    assert_eq!(records[0]["iteration"], 1);
    assert_eq!(records[0]["elbo"].as_f64().unwrap(), plain.trace()[0]);
}

#[test]
fn skipped_steps_are_logged_as_nan_and_null() {
    // NaN beyond z₀ > 0.5 with scale 1: many steps are skipped
    let model = elbo::from_fn(2, |z: &Tensor| {
        let z0 = z.narrow(1, 0, 1)?.squeeze(1)?;
        let nan = z0.ones_like()?.affine(0.0, f64::NAN)?;
        (z.sqr()?.sum(1)? * -0.5)? + z0.gt(0.5)?.where_cond(&nan, &z0.zeros_like()?)?
    });
    let advi = Advi::new(MeanField).dtype(DType::F64).steps(100).init_scale(1.0).elbo_draws(10);
    let mut csv = TraceLog::new(Vec::new(), LogFormat::Csv);
    let mut json = TraceLog::new(Vec::new(), LogFormat::JsonLines);
    let fit = advi.fit_with(&model, &mut [&mut csv, &mut json]).unwrap();
    assert!(fit.skipped_steps() > 0);
    let csv = String::from_utf8(csv.into_inner()).unwrap();
    assert_eq!(csv.lines().filter(|l| l.split(',').nth(1) == Some("NaN")).count(), fit.skipped_steps());
    let json = String::from_utf8(json.into_inner()).unwrap();
    let nulls = json.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["elbo"].is_null());
    assert_eq!(nulls.count(), fit.skipped_steps());
}

/// Fails at step 10.
struct Tripwire;

impl Observer for Tripwire {
    fn on_step(&mut self, info: &StepInfo) -> elbo::Result<()> {
        if info.iteration == 10 {
            return Err(elbo::Error::config("tripwire", 10, "an observer asked to stop"));
        }
        Ok(())
    }
}

#[test]
fn an_observers_error_ends_the_fit() {
    let e = advi().fit_with(&quadratic(), &mut [&mut Tripwire]).unwrap_err();
    assert!(matches!(e, elbo::Error::InvalidConfig { name: "tripwire", .. }), "{e:?}");
}

#[test]
fn run_with_sees_only_the_remaining_steps() {
    let model = quadratic();
    let settings = advi();
    let mut state = settings.init(&model).unwrap();
    for _ in 0..120 {
        settings.step(&mut state, &model).unwrap();
    }
    let mut trace = Trace::default();
    let fit = settings.run_with(state, &model, &mut [&mut trace]).unwrap();
    assert_eq!(trace.elbo.len(), 180);
    assert_eq!(trace.elbo, fit.trace()[120..]);
}

#[test]
fn a_log_file_is_csv_or_json_lines_by_its_name() {
    let dir = std::env::temp_dir().join(format!("elbo-observe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut csv = TraceLog::create(dir.join("trace.csv")).unwrap();
    let mut jsonl = TraceLog::create(dir.join("trace.jsonl")).unwrap();
    advi().steps(20).fit_with(&quadratic(), &mut [&mut csv, &mut jsonl]).unwrap();
    drop((csv, jsonl));
    let csv = std::fs::read_to_string(dir.join("trace.csv")).unwrap();
    assert!(csv.starts_with("iteration,elbo,lr,seconds\n1,") && csv.lines().count() == 21, "{csv}");
    let jsonl = std::fs::read_to_string(dir.join("trace.jsonl")).unwrap();
    assert!(jsonl.starts_with("{\"iteration\": 1,") && jsonl.lines().count() == 20, "{jsonl}");
    std::fs::remove_dir_all(dir).unwrap();
}
