//! The Gaussian mixture end to end, through the `gmm_vi` example's `app::run` in-process:
//!
//! - simulated data (N = 300): every true mean recovered within 0.25 after label matching, for
//!   the mean-field and the full-rank family, and the JSON report has the documented keys;
//! - the peers' data (`tests/data/gmm.json`/`gmm.csv`, copies of `shared/peers/data/`): at the
//!   peers' protocol (at most 5,000 steps, Adam 0.01, S = 1) the posterior means lie within 0.1 of the
//!   truth and the ELBO within 2 nats of NumPyro's for the same family
//!   (`tests/data/numpyro_gmm.json`, where the figures come from is written in it);
//! - bad input: each CSV or argument error has a message naming the file, line and column;
//! - `--device`: `cpu` and `auto` run on the CPU in the default build, `cuda` is an error there;
//! - the pieces: label matching, CSV reading, the plots without a font.

#[allow(dead_code)]
#[path = "../../examples/gmm_vi/app.rs"]
mod app;

use std::path::PathBuf;

use clap::Parser;
use serde_json::Value;

fn args(extra: &[&str]) -> app::Args {
    app::Args::try_parse_from(std::iter::once("gmm_vi").chain(extra.iter().copied())).expect("valid arguments")
}

fn data_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("valid JSON")
}

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("elbo-gmm-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn means(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("K lists")
        .iter()
        .map(|row| row.as_array().expect("D numbers").iter().map(|x| x.as_f64().expect("number")).collect())
        .collect()
}

fn max_abs_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Runs the example on simulated data (N = 300, 1,000 steps) and checks its JSON.
fn recovers_simulated_means(family: &str) {
    let dir = scratch(family);
    let out = dir.join("plots");
    let json_path = dir.join("gmm.json");
    let report = app::run(args(&[
        "--family",
        family,
        "--n",
        "300",
        "--steps",
        "1000",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--json",
        json_path.to_str().unwrap(),
    ]))
    .expect("the example runs");
    let j = json(&json_path);
    for key in ["family", "k", "n", "steps", "seconds", "elbo", "elbo_se", "stop_reason", "true", "estimate"] {
        assert!(j.get(key).is_some(), "the JSON has no `{key}`");
    }
    assert_eq!(j["family"], family);
    assert_eq!((j["k"].as_u64(), j["n"].as_u64(), j["steps"].as_u64()), (Some(3), Some(300), Some(1000)));
    assert!(j["elbo"].as_f64().unwrap().is_finite() && j["elbo_se"].as_f64().unwrap() > 0.0);
    for part in ["true", "estimate"] {
        assert_eq!(j[part]["weights"].as_array().unwrap().len(), 3);
        assert_eq!(j[part]["scales"].as_array().unwrap().len(), 3);
        assert!(means(&j[part]["means"]).iter().all(|m| m.len() == 2));
    }
    // the estimate is already in the truth's order
    let error = max_abs_diff(&means(&j["estimate"]["means"]), &means(&j["true"]["means"]));
    assert!(error < 0.25, "{family}: max |μ̂ − μ| = {error}\n{report}");
    assert_eq!(report.max_abs_mean_error, Some(error));
    // the plots are PNG files
    assert_eq!(report.plots.len(), 2);
    for plot in &report.plots {
        let bytes = std::fs::read(plot).expect("plot written");
        assert!(bytes.starts_with(b"\x89PNG"), "{} is not a PNG", plot.display());
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn example_recovers_the_simulated_means_mean_field() {
    recovers_simulated_means("meanfield");
}

#[test]
fn example_recovers_the_simulated_means_full_rank() {
    recovers_simulated_means("fullrank");
}

/// Fits the peers' points from CSV at the peers' protocol and compares with the truth and NumPyro.
fn matches_the_peers(family: &str) {
    let peers = json(&data_file("gmm.json"));
    let numpyro = json(&data_file("numpyro_gmm.json"));
    let csv = data_file("gmm.csv");
    // the peers' protocol: at most 5,000 steps of Adam at 0.01 with one draw per step; seed 0 (the
    // default stopping rule may end sooner, with q the average of the stationary iterates)
    let settings = [
        "--data",
        csv.to_str().unwrap(),
        "--k",
        "3",
        "--family",
        family,
        "--seed",
        "0",
        "--steps",
        "5000",
        "--quiet",
        "--no-plot",
    ];
    let report = app::run(args(&settings)).unwrap_or_else(|e| panic!("{family}: {e}"));
    assert_eq!((report.n, report.d), (1000, 2));
    assert!(report.steps <= 5000, "{} steps", report.steps);
    assert!(report.truth.is_none(), "user data has no truth");
    let truth = means(&peers["true"]["means"]);
    let order = app::match_components(&report.estimate.means, &truth);
    let fitted: Vec<Vec<f64>> = order.iter().map(|&j| report.estimate.means[j].clone()).collect();
    let error = max_abs_diff(&fitted, &truth);
    assert!(error < 0.1, "{family}: max |μ̂ − μ| = {error}\n{report}");
    let reference = numpyro[family]["elbo"].as_f64().unwrap();
    let gap = (report.elbo - reference).abs();
    assert!(gap < 2.0, "{family}: ELBO {:.3} vs NumPyro's {reference:.3} ({gap:.2} nats apart)\n{report}", report.elbo);
}

#[test]
fn peers_data_mean_field_matches_truth_and_numpyro() {
    matches_the_peers("meanfield");
}

#[test]
fn peers_data_full_rank_matches_truth_and_numpyro() {
    matches_the_peers("fullrank");
}

/// Runs the example on a CSV file with the given text and returns its error message.
fn csv_error(dir: &std::path::Path, name: &str, text: &str, extra: &[&str]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let mut all = vec!["--data", path.to_str().unwrap(), "--quiet", "--no-plot", "--steps", "10"];
    all.extend_from_slice(extra);
    match app::run(args(&all)) {
        Ok(_) => panic!("{name}: no error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn csv_input_errors_name_the_file_line_and_column() {
    let dir = scratch("csv");
    let missing = dir.join("nowhere.csv");
    let e = app::run(args(&["--data", missing.to_str().unwrap(), "--quiet", "--no-plot"])).unwrap_err().to_string();
    assert!(e.contains("nowhere.csv") && e.contains("no such file"), "{e}");

    let e = csv_error(&dir, "ragged.csv", "x0,x1\n1,2\n3,4\n5\n", &[]);
    assert!(e.contains("ragged.csv, line 4") && e.contains("1 column") && e.contains("line 2 has 2"), "{e}");

    let e = csv_error(&dir, "text.csv", "1,2\n3,abc\n", &[]);
    assert!(e.contains("text.csv, line 2, column 2") && e.contains("`abc` is not a number"), "{e}");

    let e = csv_error(&dir, "hole.csv", "1,2\n3,\n", &[]);
    assert!(e.contains("hole.csv, line 2, column 2") && e.contains("empty"), "{e}");

    let e = csv_error(&dir, "nan.csv", "a,b\n1,2\nNaN,4\n", &[]);
    assert!(e.contains("nan.csv, line 3, column 1") && e.contains("`NaN` is not a finite number"), "{e}");
    let e = csv_error(&dir, "inf.csv", "1,2\n3,-inf\n", &[]);
    assert!(e.contains("inf.csv, line 2, column 2") && e.contains("not a finite number"), "{e}");

    let e = csv_error(&dir, "empty.csv", "", &[]);
    assert!(e.contains("empty.csv has no data rows"), "{e}");
    let e = csv_error(&dir, "header.csv", "x0,x1\n\n", &[]);
    assert!(e.contains("header.csv has no data rows"), "{e}");

    let e = csv_error(&dir, "small.csv", "1,2\n3,4\n", &["--k", "3"]);
    assert!(e.contains("--k 3") && e.contains("small.csv") && e.contains("N = 2"), "{e}");

    let e = csv_error(&dir, "wide.csv", "1,2,3\n4,5,6\n", &["--d", "2"]);
    assert!(e.contains("--d 2") && e.contains("wide.csv has 3 columns"), "{e}");

    let e = csv_error(&dir, "few.csv", "1,2\n3,4\n5,6\n", &["--k", "2", "--batch", "5"]);
    assert!(e.contains("--batch 5") && e.contains("N = 3"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    for bad in [&["--k", "0"][..], &["--steps", "0"], &["--family", "flows"], &["--n", "-3"]] {
        assert!(app::Args::try_parse_from(std::iter::once("gmm_vi").chain(bad.iter().copied())).is_err(), "{bad:?}");
    }
    let e = app::run(args(&["--k", "5", "--n", "4", "--quiet", "--no-plot"])).unwrap_err().to_string();
    assert!(e.contains("--k 5") && e.contains("--n 4"), "{e}");
    for (lr, shown) in [("-0.1", "-0.1"), ("0", "0"), ("nan", "NaN")] {
        let e = app::run(args(&["--lr", lr, "--quiet", "--no-plot"])).unwrap_err().to_string();
        assert!(e.contains(&format!("--lr {shown}")) && e.contains("positive"), "{e}");
    }
    assert!(app::Args::try_parse_from(["gmm_vi", "--device", "tpu"]).is_err());
    if !cfg!(feature = "cuda") {
        // asking for the GPU in a CPU build is an error that says how to get one, not a fallback
        let e = app::run(args(&["--device", "cuda", "--quiet", "--no-plot"])).unwrap_err().to_string();
        assert!(e.starts_with("--device cuda: ") && e.ends_with("(build with --features cuda)"), "{e}");
    }
}

#[test]
fn device_cpu_and_auto_run_on_the_cpu_in_the_default_build() {
    for device in ["cpu", "auto"] {
        let report = app::run(args(&["--device", device, "--steps", "50", "--n", "100", "--quiet", "--no-plot"]));
        let report = report.expect("a short fit");
        assert_eq!(report.steps, 50);
        if device == "cpu" || !cfg!(feature = "cuda") {
            assert_eq!(report.device, "cpu");
        } else {
            assert!(report.device == "cpu" || report.device == "cuda:0", "{}", report.device);
        }
    }
}

#[test]
fn csv_reader_takes_an_optional_header_blank_lines_and_spaces() {
    let dir = scratch("csv-ok");
    let path = dir.join("ok.csv");
    std::fs::write(&path, "\"x\", \"y\"\n 1.5, -2\n\n3e1,4\n").unwrap();
    let (values, d) = app::read_csv(&path).unwrap();
    assert_eq!((values, d), (vec![1.5, -2.0, 30.0, 4.0], 2));
    std::fs::write(&path, "1\n2\n3\n").unwrap();
    assert_eq!(app::read_csv(&path).unwrap(), (vec![1.0, 2.0, 3.0], 1));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn matching_undoes_label_switching() {
    let truth = vec![vec![0.0, 0.0], vec![5.0, 5.0], vec![-5.0, 5.0]];
    let fitted = vec![vec![-4.9, 5.1], vec![0.1, -0.1], vec![5.2, 4.8]];
    assert_eq!(app::match_components(&fitted, &truth), vec![1, 2, 0]);
    // K = 10 > 8: the greedy matching, here unambiguous
    let truth: Vec<Vec<f64>> = (0..10).map(|k| vec![10.0 * k as f64, 0.0]).collect();
    let fitted: Vec<Vec<f64>> = (0..10).map(|k| vec![10.0 * ((k * 3) % 10) as f64 + 0.5, 0.2]).collect();
    let order = app::match_components(&fitted, &truth);
    for (k, &j) in order.iter().enumerate() {
        assert_eq!((j * 3) % 10, k);
    }
}

#[test]
fn plots_are_drawn_without_a_font() {
    let dir = scratch("nofont");
    let estimate =
        app::Mixture { weights: vec![0.5, 0.5], means: vec![vec![-2.0, 0.0], vec![2.0, 1.0]], scales: vec![1.0, 0.5] };
    let x: Vec<Vec<f64>> = (0..50).map(|i| vec![(i as f64 - 25.0) / 5.0, (i % 7) as f64 / 3.0]).collect();
    let labels: Vec<usize> = (0..50).map(|i| usize::from(i >= 25)).collect();
    let plot = app::plot::Clusters { x: &x, labels: &labels, estimate: &estimate, truth: None, title: "t".into() };
    app::plot::clusters(&dir.join("c.png"), &plot, false).unwrap();
    let x1: Vec<Vec<f64>> = x.iter().map(|r| vec![r[0]]).collect();
    let plot = app::plot::Clusters { x: &x1, labels: &labels, ..plot };
    app::plot::clusters(&dir.join("d.png"), &plot, false).unwrap();
    let trace: Vec<f64> = (0..300).map(|i| if i % 17 == 0 { f64::NAN } else { -100.0 + (i as f64).sqrt() }).collect();
    let traces = [trace.as_slice()];
    let t = app::plot::Trace { traces: &traces, best: 0, window: 20, title: "t".into(), final_elbo: (-83.0, 0.1) };
    app::plot::elbo_trace(&dir.join("e.png"), &t, false).unwrap();
    for name in ["c.png", "d.png", "e.png"] {
        assert!(std::fs::read(dir.join(name)).unwrap().starts_with(b"\x89PNG"), "{name}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn moving_average_is_centred_and_skips_nan() {
    let avg = app::plot::moving_average(&[1.0, f64::NAN, 3.0, 5.0], 2);
    assert_eq!(avg, vec![1.0, 2.0, 4.0, 4.0]); // windows {0,1}, {0,1,2}, {1,2,3}, {2,3}
}
