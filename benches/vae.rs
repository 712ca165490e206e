//! One training step of the classic VAE (784–400–20, Bernoulli decoder, batch 128, f32, Adam) on
//! synthetic grey levels (the unit of `cargo run --example vae`'s seconds per epoch, 469 steps),
//! its evaluation forward pass, and one snapshot of its weights.
//!
//! Threads: as the example, RAYON_NUM_THREADS (matrix products; default here 2) and
//! CANDLE_NUM_THREADS=1 (element-wise ops), set before candle's first operation.

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion};
use elbo::amortized::KlForm;
use elbo::noise::{Noise, Stream};
use elbo_models::{Vae, VaeConfig, VaeTrainer};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn vae(c: &mut Criterion) {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "2");
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let dev = Device::Cpu;
    let mut noise = Noise::new(1, Stream::Optimise);
    let x = candle_nn::ops::sigmoid(&noise.standard_normal(128, 784, DType::F32, &dev).unwrap()).unwrap();
    let model = Vae::new(VaeConfig::default(), 1, &dev).unwrap();
    let mut g = c.benchmark_group("vae");
    g.sample_size(30);
    let eps = noise.standard_normal(128, 20, DType::F32, &dev).unwrap();
    g.bench_function("forward/B128", |b| b.iter(|| model.elbo_terms(&x, &eps, KlForm::Analytic).unwrap()));
    let vars = model.vars();
    let buffers: Vec<candle_core::Var> =
        vars.iter().map(|v| candle_core::Var::from_tensor(&v.as_tensor().copy().unwrap()).unwrap()).collect();
    let mut trainer = VaeTrainer::new(model, 1e-3, 1).unwrap();
    g.bench_function("train_step/B128", |b| b.iter(|| trainer.step(&x, 1.0).unwrap()));
    // one snapshot of every weight into the trainer's buffers, the point it goes back to after
    // a run of non-finite steps
    g.bench_function("snapshot", |b| {
        b.iter(|| buffers.iter().zip(&vars).for_each(|(buf, v)| buf.set(v.as_tensor()).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, vae);
criterion_main!(benches);
