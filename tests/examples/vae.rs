//! The `vae` example end to end, through its `app::run` in-process, on a tiny folder of synthetic
//! bar images in the MNIST format: the per-epoch report, the JSON, the pictures and a checkpoint;
//! and bad data explained.

use candle_core::{DType, Tensor};

use crate::common::bars;

#[path = "../../examples/vae/app.rs"]
#[allow(dead_code)]
mod app;

fn host(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// Writes a small MNIST-format folder of bar images (8×8) for the example.
fn write_bars_folder(dir: &std::path::Path) {
    use elbo_models::idx::write_idx;
    std::fs::create_dir_all(dir).unwrap();
    for (name, n, seed) in [("train-images-idx3-ubyte.gz", 512, 1), ("t10k-images-idx3-ubyte.gz", 128, 2)] {
        let bytes: Vec<u8> = host(&bars(n, seed, DType::F64)).iter().map(|v| (v * 255.0).round() as u8).collect();
        write_idx(&dir.join(name), &[n, 8, 8], &bytes, true).unwrap();
    }
}

fn args(extra: &[&str]) -> app::Args {
    use clap::Parser;
    let mut argv = vec!["vae"];
    argv.extend_from_slice(extra);
    app::Args::try_parse_from(argv).unwrap()
}

/// The example end to end on a tiny image folder: per-epoch figures, the IWAE estimate, the JSON
/// with the documented keys, the pictures (the manifold with --latent 2), and a checkpoint that
/// --load reads back.
#[test]
fn example_runs_end_to_end() {
    let dir = std::env::temp_dir().join(format!("elbo-vae-app-{}", std::process::id()));
    let data = dir.join("data");
    write_bars_folder(&data);
    let (out, json, ckpt) = (dir.join("out"), dir.join("vae.json"), dir.join("vae.safetensors"));
    let s = |p: &std::path::Path| p.display().to_string();
    let report = app::run(args(&[
        "--data",
        &s(&data),
        "--epochs",
        "3",
        "--batch",
        "32",
        "--hidden",
        "32",
        "--latent",
        "2",
        "--lr",
        "3e-3",
        "--iw-k",
        "20",
        "--iw-n",
        "64",
        "--warmup-epochs",
        "1",
        "--out",
        &s(&out),
        "--json",
        &s(&json),
        "--save",
        &s(&ckpt),
        "--quiet",
    ]))
    .unwrap();
    assert_eq!(report.epochs.len(), 3);
    // β at the last step of each epoch: still warming up in the first, 1 after it
    assert!(report.epochs[0].beta < 1.0 && report.epochs[1].beta == 1.0);
    assert!(report.epochs.iter().all(|e| e.kl_per_dim.len() == 2));
    assert!(report.epochs[2].test_elbo > report.initial_test_elbo);
    let iw = report.test_iw_loglik.unwrap();
    assert!(iw > report.epochs[2].test_elbo - 1.0, "IWAE {iw} vs ELBO {}", report.epochs[2].test_elbo);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in ["epoch", "seconds", "train_elbo", "test_elbo", "kl_per_dim", "active_units"] {
        assert!(v["epochs"][0].get(key).is_some(), "the JSON's epochs lack `{key}`");
    }
    assert!(v["test_iw_loglik"].as_f64().is_some());
    for png in ["vae_reconstructions.png", "vae_samples.png", "vae_elbo.png", "vae_manifold.png"] {
        let bytes = std::fs::read(out.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{png} is not a PNG");
    }
    // evaluate the saved weights without training: the same test ELBO as at the end of training
    let again = app::run(args(&[
        "--data",
        &s(&data),
        "--epochs",
        "0",
        "--hidden",
        "32",
        "--latent",
        "2",
        "--iw-k",
        "0",
        "--load",
        &s(&ckpt),
        "--no-plot",
        "--quiet",
    ]))
    .unwrap();
    assert_eq!(again.initial_test_elbo, report.epochs[2].test_elbo);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Missing or malformed data is an error that says what is wrong and how to install the data.
#[test]
fn example_explains_bad_data() {
    let dir = std::env::temp_dir().join(format!("elbo-vae-bad-{}", std::process::id()));
    let missing = app::run(args(&["--data", &dir.join("nowhere").display().to_string(), "--quiet"])).unwrap_err();
    let msg = missing.to_string();
    assert!(matches!(missing, app::AppError::Data(_)), "{msg}");
    assert!(msg.contains("missing") && msg.contains("apt-get install dataset-fashion-mnist"), "{msg}");
    write_bars_folder(&dir);
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), b"\x1f\x8bnot really gzip").unwrap();
    let msg = app::run(args(&["--data", &dir.display().to_string(), "--quiet", "--no-plot"])).unwrap_err().to_string();
    assert!(msg.contains("not a valid gzip file") && msg.contains("apt-get install"), "{msg}");
    let msg = app::run(args(&["--data", &dir.display().to_string(), "--lr", "0"])).unwrap_err().to_string();
    assert!(msg.contains("--lr 0"), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}
