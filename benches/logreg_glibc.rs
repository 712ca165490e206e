//! The logistic-regression steps of `benches/logreg.rs` with the system allocator (glibc malloc),
//! to measure what mimalloc buys.

#[path = "common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, Criterion};

fn steps(c: &mut Criterion) {
    common::bench_logreg_steps(c, "logreg-glibc");
}

criterion_group!(benches, steps);
criterion_main!(benches);
