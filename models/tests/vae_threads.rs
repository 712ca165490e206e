//! The VAE's steps on two threads (`elbo::runtime::in_matmul_pool`): run on a worker of rayon's
//! pool, they give the same numbers, bit for bit, as the same steps run on the caller's thread.
//!
//! A test binary of its own: rayon's global pool and candle read RAYON_NUM_THREADS once, so it is
//! set here before any other code of the process runs a product.

use candle_core::{DType, Device};
use elbo::noise::{Noise, Stream};
use elbo_models::{Vae, VaeConfig, VaeTrainer};

/// 20 steps of the classic 784–400–20 VAE (products large enough for gemm to split them over
/// threads) on batches of 64 synthetic grey-level images; the batch ELBOs and the test ELBO.
fn trace() -> (Vec<f64>, f64) {
    let dev = Device::Cpu;
    let mut noise = Noise::new(3, Stream::Evaluate);
    let x = candle_nn::ops::sigmoid(&noise.standard_normal(64, 784, DType::F32, &dev).unwrap()).unwrap();
    let test = candle_nn::ops::sigmoid(&noise.standard_normal(100, 784, DType::F32, &dev).unwrap()).unwrap();
    let mut trainer = VaeTrainer::new(Vae::new(VaeConfig::default(), 7, &dev).unwrap(), 1e-3, 7).unwrap();
    let elbos = (0..20).map(|_| trainer.step(&x, 1.0).unwrap().elbo).collect();
    (elbos, trainer.vae().evaluate(&test, 50, 7).unwrap().elbo)
}

#[test]
fn steps_on_the_pool_equal_steps_here() {
    std::env::set_var("RAYON_NUM_THREADS", "2");
    assert_eq!(rayon::current_num_threads(), 2, "the global pool was sized before this test set it");
    let here = std::thread::current().id();
    let ran_on = elbo::runtime::in_matmul_pool(&Device::Cpu, || std::thread::current().id());
    assert_ne!(ran_on, here, "with two threads the work goes to a worker");

    let pooled = trace();
    // inside a one-thread pool, in_matmul_pool runs the work where it is called
    let single = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let inline = single.install(trace);
    assert_eq!(pooled.0.len(), 20);
    let bits = |v: &[f64]| v.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&pooled.0), bits(&inline.0), "batch ELBOs: pool {:?} vs here {:?}", pooled.0, inline.0);
    assert_eq!(pooled.1.to_bits(), inline.1.to_bits(), "test ELBO: pool {} vs here {}", pooled.1, inline.1);
    // and the steps trained: the last batch ELBO is above the first
    assert!(pooled.0[19] > pooled.0[0], "{:?}", pooled.0);
}
