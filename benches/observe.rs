//! What observers cost: a whole fit (2,000 steps, MeanField, D = 10, S = 1, f64) with no observer,
//! with the progress bar, and with the bar, a trace and a CSV log (to memory). A step here is
//! ~20 µs, about the cheapest there is, so this is the worst case for the relative cost.

use criterion::{criterion_group, criterion_main, Criterion};
use elbo::observe::{LogFormat, Progress, Trace, TraceLog};
use elbo::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn observers(c: &mut Criterion) {
    let model = elbo::from_fn(10, |z: &Tensor| z.sqr()?.sum(1)? * -0.5);
    let advi =
        Advi::new(MeanField).stop(StopRule::MaxSteps).dtype(DType::F64).steps(2_000).elbo_draws(10).diagnostics(false);
    let mut g = c.benchmark_group("observe");
    g.sample_size(20);
    g.bench_function("fit/none", |b| b.iter(|| advi.fit(&model).unwrap()));
    g.bench_function("fit/progress", |b| b.iter(|| advi.fit_with(&model, &mut [&mut Progress::new(2_000)]).unwrap()));
    g.bench_function("fit/progress+trace+csv", |b| {
        b.iter(|| {
            let (mut bar, mut trace) = (Progress::new(2_000), Trace::default());
            let mut log = TraceLog::new(Vec::with_capacity(1 << 16), LogFormat::Csv);
            advi.fit_with(&model, &mut [&mut bar, &mut trace, &mut log]).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, observers);
criterion_main!(benches);
