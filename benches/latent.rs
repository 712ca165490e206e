//! What the named, constrained layer costs per ADVI step: the same model, n positive scalars with an
//! Exponential(1) prior, written twice:
//!
//! ```text
//! plain   LogJoint:  log p = Σ Exponential(1).log_prob(exp u) + Σ u        (Jacobian by hand)
//! named   Model:     Latents::new().positive("x", [n]); log p = Σ Exponential(1).log_prob(x)
//! ```
//!
//! for n = 10 and n = 1000 in one block, and n = 10 as ten one-element blocks, named and by hand
//! (the per-block cost).
//! MeanField, S = 1 and 16, f64, Adam.

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use elbo::dist::{Distribution, Exponential};
use elbo::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn time<M: LogJoint>(g: &mut BenchmarkGroup<criterion::measurement::WallTime>, name: &str, s: usize, model: &M) {
    let advi = Advi::new(MeanField).stop(StopRule::MaxSteps).dtype(DType::F64).samples(s).steps(usize::MAX);
    let mut state = advi.init(model).unwrap();
    g.bench_function(format!("{name}/S{s}"), |b| b.iter(|| advi.step(&mut state, model).unwrap()));
}

fn overhead(c: &mut Criterion) {
    let mut g = c.benchmark_group("latent");
    for n in [10, 1000] {
        let plain = elbo::from_fn(n, |u: &Tensor| Exponential::new(1.0)?.log_prob(&u.exp()?)?.sum(1)? + u.sum(1)?);
        let named = Latents::new().positive("x", [n]).model(|v| Exponential::new(1.0)?.log_prob(v.get("x")?)?.sum(1));
        for s in [1, 16] {
            time(&mut g, &format!("plain/n{n}"), s, &plain);
            time(&mut g, &format!("named/n{n}"), s, &named);
        }
    }
    let blocks = (0..10).fold(Latents::new(), |l, i| l.positive(&format!("x{i}"), ()));
    let names: Vec<String> = (0..10).map(|i| format!("x{i}")).collect();
    let ten_blocks = blocks.model(move |v| {
        let mut total = Exponential::new(1.0)?.log_prob(v.get(&names[0])?)?;
        for name in &names[1..] {
            total = (total + Exponential::new(1.0)?.log_prob(v.get(name)?)?)?;
        }
        Ok(total)
    });
    // the same ten blocks by hand: a column each, its density and its Jacobian
    let plain_blocks = elbo::from_fn(10, |u: &Tensor| {
        let mut total = u.zeros_like()?.sum(1)?;
        for i in 0..10 {
            let ui = u.narrow(1, i, 1)?.squeeze(1)?;
            total = ((total + Exponential::new(1.0)?.log_prob(&ui.exp()?)?)? + ui)?;
        }
        Ok(total)
    });
    for s in [1, 16] {
        time(&mut g, "plain-10-blocks/n10", s, &plain_blocks);
        time(&mut g, "named-10-blocks/n10", s, &ten_blocks);
    }
    g.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
