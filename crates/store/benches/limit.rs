//! One rate-limit check in process: one hot key on 1 and 2 threads, and keys spread over 1,000,000; then the
//! resident memory per tracked key. Target from the brief: <= 50 ns single-threaded.
//!
//!     cargo bench -p spillway-store --bench limit

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use spillway_core::limit::{Algorithm, Quota};
use spillway_store::memory::MemoryBand;

/// A limit generous enough that every check is allowed: the benchmark measures the check, not refusals.
fn limiter() -> MemoryBand {
    MemoryBand::new(Algorithm::Gcra { quota: Quota::per_second(1_000_000_000), burst: 1_000_000 }, 2_000_000)
}

fn spread(i: u64) -> u64 {
    (i % 1_000_000).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn checks(c: &mut Criterion) {
    let l = limiter();
    let mut now = 0u64;
    c.bench_function("limit_check_hot_key_1_thread", |b| {
        b.iter(|| {
            now += 1;
            l.check_now(black_box(now), black_box(42))
        })
    });

    let shared = Arc::new(limiter());
    c.bench_function("limit_check_hot_key_2_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let l = shared.clone();
                    std::thread::spawn(move || {
                        for i in 0..iters {
                            black_box(l.check_now(i, 42));
                        }
                    })
                })
                .collect();
            for h in handles {
                let _ = h.join();
            }
            // Time per check, both threads' checks counted.
            start.elapsed() / 2
        })
    });

    let l = limiter();
    for i in 0..1_000_000 {
        l.check_now(0, spread(i));
    }
    let mut i = 0u64;
    c.bench_function("limit_check_1m_keys", |b| {
        b.iter(|| {
            i += 1;
            l.check_now(black_box(i), black_box(spread(i)))
        })
    });
}

fn rss_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[allow(clippy::print_stdout)]
fn memory(_: &mut Criterion) {
    let before = rss_bytes();
    let l = limiter();
    for i in 0..1_000_000 {
        l.check_now(0, spread(i));
    }
    let grown = rss_bytes() - before;
    println!("limit_memory: {grown} bytes resident for 1,000,000 keys = {:.1} bytes per key", grown as f64 / 1e6);
    black_box(&l);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = checks, memory
}
criterion_main!(benches);
