//! One ADVI step (f64, Adam) for D ∈ {10, 100, 1000} × S ∈ {1, 16} × {MeanField, FullRank} on an
//! isotropic Gaussian target log p(z) = −½ ‖z‖², so the family's own cost dominates; each with
//! the family's gradient in closed form (the default) and by autodiff (`/autodiff`), each from the
//! default start (Pathfinder's Gaussian, steps in its whitened coordinates) and from the point
//! (`/point`, steps in the model's coordinates).

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use elbo::prelude::*;
use elbo::FamilyGradient;

// glibc's malloc is bimodal for candle's per-op tensors (2× slower steps in some runs; see
// benches/README.md), mimalloc is not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench<F: Family>(
    g: &mut BenchmarkGroup<criterion::measurement::WallTime>,
    family: F,
    name: &str,
    d: usize,
    s: usize,
) {
    let model = elbo::from_fn(d, |z: &Tensor| z.sqr()?.sum(1)? * -0.5);
    for (how, suffix) in [(FamilyGradient::ClosedForm, ""), (FamilyGradient::Autodiff, "/autodiff")] {
        let advi = Advi::new(family.clone())
            .stop(StopRule::MaxSteps)
            .dtype(DType::F64)
            .samples(s)
            .steps(usize::MAX)
            .family_gradient(how);
        let mut state = advi.init(&model).unwrap();
        g.bench_function(format!("{name}/D{d}/S{s}{suffix}"), |b| b.iter(|| advi.step(&mut state, &model).unwrap()));
        // the same step from the point start, in the model's coordinates (no whitening)
        let advi = advi.init_pathfinder(None);
        let mut state = advi.init(&model).unwrap();
        g.bench_function(format!("{name}/D{d}/S{s}{suffix}/point"), |b| {
            b.iter(|| advi.step(&mut state, &model).unwrap())
        });
    }
}

/// The default stopping rule's own cost per step: the same step with `StopRule::stationary()`
/// (which reads q's parameters to the host and sums them every step).
fn rule_overhead<F: Family>(g: &mut BenchmarkGroup<criterion::measurement::WallTime>, family: F, name: &str, d: usize) {
    let model = elbo::from_fn(d, |z: &Tensor| z.sqr()?.sum(1)? * -0.5);
    // The stationary rule with a tolerance no average meets, so that it never stops.
    let never = StopRule::Stationary { rhat: 1.1, tol: 1e-12, halving: false };
    for (rule, suffix) in [(StopRule::MaxSteps, ""), (never, "/stationary")] {
        let advi = Advi::new(family.clone()).stop(rule).dtype(DType::F64).steps(usize::MAX);
        let mut state = advi.init(&model).unwrap();
        g.bench_function(format!("{name}/D{d}/S1/rule{suffix}"), |b| b.iter(|| advi.step(&mut state, &model).unwrap()));
    }
}

fn steps(c: &mut Criterion) {
    let mut g = c.benchmark_group("step");
    rule_overhead(&mut g, MeanField, "meanfield", 10);
    rule_overhead(&mut g, FullRank, "fullrank", 10);
    for d in [10, 100, 1000] {
        if d == 1000 {
            g.sample_size(20);
        }
        for s in [1, 16] {
            bench(&mut g, MeanField, "meanfield", d, s);
            bench(&mut g, FullRank, "fullrank", d, s);
        }
    }
    g.finish();
}

criterion_group!(benches, steps);
criterion_main!(benches);
