//! Criterion: one 20-target probe cycle through the core alone (o365probe_core::cycle): DNS, TCP, TLS and
//! STUN probes on an in-memory network, then one sealed results frame. Run by `cargo xtask bench`.

use criterion::{criterion_group, criterion_main, Criterion};
use o365probe_core::cycle;
use std::hint::black_box;

fn one_cycle(c: &mut Criterion) {
    // The same work every iteration: check it once so the figure means what it says.
    let s = cycle::run(cycle::MAX_TARGETS, 42);
    assert_eq!((s.resolved, s.connects, s.genuine), (20, 200, 10), "{s:?}");
    c.bench_function("cycle/20 targets", |b| {
        b.iter(|| cycle::run(black_box(cycle::MAX_TARGETS), black_box(42)))
    });
}

criterion_group!(benches, one_cycle);
criterion_main!(benches);
