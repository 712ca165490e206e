//! The `vae` example behind one function, [`run`], so that tests call it in-process.
//!
//! A variational autoencoder (`elbo_models::Vae`, 784–400–20 by default) is trained by amortised VI
//! on MNIST-format images:
//!
//! ```text
//! q_φ(z | x) = N(μ_φ(x), diag σ²_φ(x)),  p(z) = N(0, I),  p_θ(x | z) = Π_p Bernoulli(x_p | σ(o_p(z)))
//! loss = −1/B Σ_b [E_q log p_θ(x_b | z) − β KL(q_φ(z | x_b) ‖ p(z))],  β: 0 → 1 over the warm-up epochs
//! active unit d:  Cov_x(E_q[z_d | x]) > 0.01
//! test log-likelihood ≈ L_K = logsumexp_k [log p_θ(x, z_k) − log q_φ(z_k | x)] − log K   (IWAE)
//! ```
//!
//! Each epoch prints the train ELBO (running mean over the epoch's batches, as the weights move),
//! the test ELBO (all test images, one draw each, the same draws every epoch), the KL per latent
//! dimension and the number of active units. The pictures go to `--out`.
//!
//! The pieces: `cli` (the flags), `data` (the images), `plot` (the PNG files); training,
//! evaluation and the report are below.

#[path = "../common/args.rs"]
mod args;
#[path = "../common/device.rs"]
mod device;
#[path = "../common/error.rs"]
mod error;
#[path = "../common/output.rs"]
mod output;
#[path = "../common/progress.rs"]
mod progress;

#[path = "cli.rs"]
mod cli;
#[path = "data.rs"]
mod data;
#[path = "plot.rs"]
pub mod plot;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Tensor};
use elbo::amortized::KlWarmup;
use elbo::noise::{Noise, Stream};
use elbo_models::{Vae, VaeConfig, VaeLikelihood, VaeTrainer};
use indicatif::ProgressBar;
use serde::Serialize;

use data::Data;
use progress::Screen;

pub use cli::{Args, LikelihoodArg};
pub use device::DeviceArg;

/// Rows per chunk when evaluating (bounds the memory of the test pass).
const EVAL_CHUNK: usize = 1000;
/// Steps between two updates of the progress bar.
const BAR_EVERY: usize = 10;

/// `vae`, for the messages of its errors.
#[derive(Debug)]
pub struct VaeExample;

impl error::Example for VaeExample {
    const FIT_FAILED: &'static str = "training failed";
}

/// What can go wrong after clap has parsed the arguments: bad settings, images that cannot be read
/// (what is wrong, and how to install them), a failed training or evaluation, a file that cannot be
/// written.
pub type AppError = error::AppError<VaeExample>;

/// One epoch's figures.
#[derive(Clone, Debug, Serialize)]
pub struct EpochRow {
    /// 1-based.
    pub epoch: usize,
    /// Wall-clock seconds of the epoch's training steps (not the evaluation).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
    /// β at the end of the epoch.
    pub beta: f64,
    /// Mean ELBO per image over the epoch's batches (nats; negative, higher is better).
    pub train_elbo: f64,
    /// ELBO per test image (nats; negative, higher is better).
    pub test_elbo: f64,
    /// E_q log p(x | z) per test image.
    pub test_log_likelihood: f64,
    /// KL(q ‖ p) per test image.
    pub test_kl: f64,
    /// The test KL per image of each latent dimension.
    pub kl_per_dim: Vec<f64>,
    /// Var over the test images of μ_d(x), per latent dimension.
    pub activity: Vec<f64>,
    /// Dimensions with activity > 0.01.
    pub active_units: usize,
}

/// Everything the run printed, and where it wrote its files.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The data folder.
    pub data: String,
    /// Training and test images used, and the pixels of each.
    pub train_n: usize,
    /// Test images used.
    pub test_n: usize,
    /// Pixels per image.
    pub pixels: usize,
    /// `cpu` or `cuda:0`.
    pub device: String,
    /// candle's matmul threads (RAYON_NUM_THREADS).
    pub threads: Option<usize>,
    /// Hidden width H.
    pub hidden: usize,
    /// Latent dimension D.
    pub latent: usize,
    /// The decoder's likelihood.
    pub likelihood: LikelihoodArg,
    /// Images per batch.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// KL warm-up epochs.
    pub warmup_epochs: f64,
    /// The seed.
    pub seed: u64,
    /// Scalar parameters of the VAE.
    pub parameters: usize,
    /// One row per epoch.
    pub epochs: Vec<EpochRow>,
    /// The test ELBO per image before training (or after --load).
    pub initial_test_elbo: f64,
    /// K of the importance-weighted estimate.
    pub iw_k: usize,
    /// Test images in it.
    pub iw_n: usize,
    /// The importance-weighted estimate of log p(x) per test image (IWAE bound L_K), if computed.
    pub test_iw_loglik: Option<f64>,
    /// Its standard error over the images.
    pub test_iw_loglik_se: Option<f64>,
    /// Seconds of the importance-weighted estimate.
    pub iw_seconds: Option<f64>,
    /// The pictures written.
    pub plots: Vec<PathBuf>,
    /// Remarks for the user (a missing font, a CPU fallback, ...).
    pub notes: Vec<String>,
}

/// Sets candle's thread counts before its first operation: `--threads`, else the user's
/// RAYON_NUM_THREADS, else every core, for the matrix products (the VAE's are large: more threads
/// help); element-wise ops stay on one thread (CANDLE_NUM_THREADS=1) unless the user set it, because
/// candle's spin-wait pool for them was slower than one thread here (benches/README.md).
fn set_threads(threads: Option<usize>) -> Option<usize> {
    let n = threads
        .or_else(|| std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse().ok()))
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()));
    // Called before the example starts any thread of its own; candle reads RAYON_NUM_THREADS at
    // each product and sizes its element-wise pool from CANDLE_NUM_THREADS at its first use.
    if let Some(n) = n {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    n
}

/// Reads the data, trains, evaluates, draws, writes the JSON and the checkpoint; returns the report.
pub fn run(args: Args) -> Result<Report, AppError> {
    args.check()?;
    let threads = set_threads(args.threads);
    let mut notes = Vec::new();
    let device = device::pick(args.device).map_err(AppError::Input)?;
    let data = data::load_data(&args, &device)?;
    let (n_train, pixels) = data.train.dims2()?;
    let n_test = data.test.dim(0)?;
    if args.batch > n_train {
        return Err(AppError::Input(format!("--batch {} is larger than the {n_train} training images", args.batch)));
    }
    if !args.no_plot {
        output::create_folder(&args.out).map_err(AppError::Output)?;
    }
    let likelihood = match args.likelihood {
        LikelihoodArg::Bernoulli => VaeLikelihood::Bernoulli,
        LikelihoodArg::Gaussian => VaeLikelihood::Gaussian { scale: args.gaussian_scale },
    };
    let config = VaeConfig {
        input_dim: pixels,
        hidden_dim: args.hidden,
        latent_dim: args.latent,
        likelihood,
        dtype: DType::F32,
    };
    let mut vae = Vae::new(config, args.seed, &device)?;
    if let Some(path) = &args.load {
        vae.load(path)?;
    }
    let parameters = vae.num_params();
    let warmup = KlWarmup::new(args.warmup_epochs)?;
    let say = !args.quiet;
    if say {
        println!(
            "VAE {pixels}–{}–{} ({parameters} parameters, {:?} decoder) on {} train / {n_test} test images of {}, \
             {} thread(s), {}",
            args.hidden,
            args.latent,
            args.likelihood,
            n_train,
            args.data.display(),
            threads.map_or("?".into(), |t| t.to_string()),
            device::name(&device),
        );
    }
    let initial_test_elbo = vae.evaluate(&data.test, EVAL_CHUNK, args.seed)?.elbo;

    let mut trainer = VaeTrainer::new(vae, args.lr, args.seed)?;
    let mut batches = Noise::new(args.seed, Stream::Batches);
    let steps_per_epoch = n_train.div_ceil(args.batch);
    let mut rows = Vec::with_capacity(args.epochs);
    for epoch in 0..args.epochs {
        let bar = epoch_bar(say, epoch + 1, args.epochs, steps_per_epoch);
        let order = batches.rows(n_train, n_train, &device)?;
        let start = Instant::now();
        let (mut elbo_sum, mut seen) = (0.0, 0usize);
        let mut beta = 1.0;
        for step in 0..steps_per_epoch {
            let from = step * args.batch;
            let b = args.batch.min(n_train - from);
            let x = data.train.index_select(&order.narrow(0, from, b)?, 0)?;
            beta = warmup.beta(epoch, step, steps_per_epoch);
            let stats = trainer.step(&x, beta)?;
            if stats.taken {
                elbo_sum += stats.elbo * b as f64;
                seen += b;
            }
            if let Some(bar) = &bar {
                if step % BAR_EVERY == 0 || step + 1 == steps_per_epoch {
                    let rate = seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
                    bar.set_position(step as u64 + 1);
                    bar.set_message(format!("−ELBO {:.2}  {rate:.0} img/s  β {beta:.2}", -elbo_sum / seen as f64));
                }
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let eval = trainer.vae().evaluate(&data.test, EVAL_CHUNK, args.seed)?;
        let row = EpochRow {
            epoch: epoch + 1,
            seconds,
            images_per_second: n_train as f64 / seconds,
            beta,
            train_elbo: elbo_sum / seen as f64,
            test_elbo: eval.elbo,
            test_log_likelihood: eval.log_likelihood,
            test_kl: eval.kl,
            kl_per_dim: eval.kl_per_dim,
            activity: eval.activity,
            active_units: eval.active_units,
        };
        if say {
            println!("{}", epoch_line(&row, args.latent));
        }
        rows.push(row);
    }
    let vae = trainer.into_vae();

    let (mut test_iw_loglik, mut test_iw_loglik_se, mut iw_seconds) = (None, None, None);
    let iw_n = args.iw_n.min(n_test);
    // K = 0 skips the estimate; chunks keep K · rows near 20,000 decoder rows at a time
    if let Some(per_k) = 20_000usize.checked_div(args.iw_k) {
        let start = Instant::now();
        let chunk = per_k.clamp(1, 500);
        let (mean, se) = vae.iw_log_likelihood(&data.test.narrow(0, 0, iw_n)?, args.iw_k, chunk, args.seed)?;
        iw_seconds = Some(start.elapsed().as_secs_f64());
        test_iw_loglik = Some(mean);
        test_iw_loglik_se = Some(se);
        if say {
            println!(
                "test log-likelihood (IWAE, K = {}, {iw_n} images): {mean:.2} ± {se:.2} nats per image",
                args.iw_k
            );
        }
    }

    let mut plots = Vec::new();
    if !args.no_plot {
        let text = plot::register_font();
        if !text {
            notes.push(format!(
                "note: the font {} is missing, so the pictures have no text (install fonts-dejavu-core)",
                plot::FONT
            ));
        }
        plots = draw(&args, &vae, &data, &rows, text)?;
        if say {
            for p in &plots {
                println!("wrote {}", p.display());
            }
        }
    }
    if let Some(path) = &args.save {
        vae.save(path)?;
        if say {
            println!("saved the weights to {}", path.display());
        }
    }

    let report = Report {
        data: args.data.display().to_string(),
        train_n: n_train,
        test_n: n_test,
        pixels,
        device: device::name(&device),
        threads,
        hidden: args.hidden,
        latent: args.latent,
        likelihood: args.likelihood,
        batch: args.batch,
        lr: args.lr,
        warmup_epochs: args.warmup_epochs,
        seed: args.seed,
        parameters,
        epochs: rows,
        initial_test_elbo,
        iw_k: args.iw_k,
        iw_n,
        test_iw_loglik,
        test_iw_loglik_se,
        iw_seconds,
        plots,
        notes,
    };
    if let Some(path) = &args.json {
        output::write_json(path, &report).map_err(AppError::Output)?;
    }
    Ok(report)
}

/// The line printed after each epoch.
pub fn epoch_line(row: &EpochRow, latent: usize) -> String {
    let kl: Vec<String> = row.kl_per_dim.iter().map(|k| format!("{k:.2}")).collect();
    format!(
        "epoch {:3}  {:6.2} s ({:5.0} img/s)  β {:.2}  train ELBO {:9.2}  test ELBO {:9.2}  (E log p(x|z) {:.2}, KL \
         {:.2})  active units {}/{latent}  KL per dim [{}]",
        row.epoch,
        row.seconds,
        row.images_per_second,
        row.beta,
        row.train_elbo,
        row.test_elbo,
        row.test_log_likelihood,
        row.test_kl,
        row.active_units,
        kl.join(" ")
    )
}

/// The bar of one epoch's batches, on stderr.
fn epoch_bar(show: bool, epoch: usize, epochs: usize, steps: usize) -> Option<ProgressBar> {
    let bar =
        progress::bar(show, Screen::Stderr, 20, steps as u64, "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")?;
    bar.set_prefix(format!("epoch {epoch}/{epochs}"));
    Some(bar)
}

/// Draws the pictures into `args.out`; returns their paths.
fn draw(args: &Args, vae: &Vae, data: &Data, rows: &[EpochRow], text: bool) -> Result<Vec<PathBuf>, AppError> {
    let (h, w) = data.shape;
    let device = vae.device();
    let fail = |p: &Path, e: String| AppError::Output(format!("cannot draw {}: {e}", p.display()));
    let mut written = Vec::new();

    // test images beside their reconstructions
    let n_show = data.test.dim(0)?.min(32);
    let x = data.test.narrow(0, 0, n_show)?;
    let recon = vae.reconstruct(&x)?;
    let path = args.out.join("vae_reconstructions.png");
    let originals: Vec<Vec<f32>> = x.to_vec2()?;
    let recons: Vec<Vec<f32>> = recon.to_vec2()?;
    let mut pairs = Vec::with_capacity(2 * n_show);
    for (o, r) in originals.into_iter().zip(recons) {
        pairs.push(o);
        pairs.push(r);
    }
    plot::image_grid(&path, &pairs, (h, w), 8, "Test images (left of each pair) and their reconstructions", text)
        .map_err(|e| fail(&path, e))?;
    written.push(path);

    // samples from the prior, decoded to their means
    let d = args.latent;
    let mut noise = Noise::new(args.seed, Stream::Draws);
    let z = noise.standard_normal(64, d, DType::F32, &device)?;
    let samples: Vec<Vec<f32>> = vae.decode_mean(&z)?.to_vec2()?;
    let path = args.out.join("vae_samples.png");
    plot::image_grid(&path, &samples, (h, w), 8, "Samples: decoder means at z ~ N(0, I)", text)
        .map_err(|e| fail(&path, e))?;
    written.push(path);

    // the ELBO curves
    if !rows.is_empty() {
        let path = args.out.join("vae_elbo.png");
        let train: Vec<f64> = rows.iter().map(|r| r.train_elbo).collect();
        let test: Vec<f64> = rows.iter().map(|r| r.test_elbo).collect();
        plot::elbo_curves(&path, &train, &test, text).map_err(|e| fail(&path, e))?;
        written.push(path);
    }

    // the manifold of a 2-D latent space: decoder means over a grid of Normal quantiles
    if d == 2 {
        const SIDE: usize = 20;
        let q: Vec<f64> = (0..SIDE).map(|i| normal_quantile((i as f64 + 0.5) / SIDE as f64)).collect();
        let mut zs = Vec::with_capacity(SIDE * SIDE * 2);
        for &z2 in q.iter().rev() {
            for &z1 in &q {
                zs.extend([z1 as f32, z2 as f32]);
            }
        }
        let z = Tensor::from_vec(zs, (SIDE * SIDE, 2), &device)?;
        let images: Vec<Vec<f32>> = vae.decode_mean(&z)?.to_vec2()?;
        let path = args.out.join("vae_manifold.png");
        plot::image_grid(
            &path,
            &images,
            (h, w),
            SIDE,
            "Latent manifold: decoder means on a grid of N(0, 1) quantiles",
            text,
        )
        .map_err(|e| fail(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// Φ⁻¹(p), the standard normal quantile.
fn normal_quantile(p: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::standard().inverse_cdf(p)
}
