//! One rate-limit decision in-process (target: at most 1 microsecond), beside the GCRA arithmetic
//! alone as the baseline measured in the same run.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_core::limits::gcra::decide;
use gatehouse_core::limits::{MemoryLimiter, Quota};

fn limiter(c: &mut Criterion) {
    let mut g = c.benchmark_group("limiter");
    let quota = Quota::per_minute(1_000_000_000);
    g.bench_function("gcra_arithmetic", |b| {
        let mut tat = None;
        let mut now = 1_700_000_000_000_000i64;
        b.iter(|| {
            now += 1;
            let (d, t) = decide(black_box(tat), black_box(quota), black_box(now));
            tat = Some(t);
            d
        });
    });
    let memory = MemoryLimiter::default();
    g.bench_function("memory_decision_one_key", |b| {
        let mut now = 1_700_000_000_000_000i64;
        b.iter(|| {
            now += 1;
            memory.decide_now(black_box("ip:203.0.113.9:read"), quota, now)
        });
    });
    let keys: Vec<String> = (0..10_000).map(|i| format!("user:{i:08}")).collect();
    g.bench_function("memory_decision_10k_keys", |b| {
        let mut now = 1_700_000_000_000_000i64;
        let mut i = 0usize;
        b.iter(|| {
            now += 1;
            i = (i + 1) % keys.len();
            memory.decide_now(black_box(&keys[i]), quota, now)
        });
    });
    g.finish();
}

criterion_group!(benches, limiter);
criterion_main!(benches);
