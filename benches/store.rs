//! Store benchmarks: durable (flushed) sale-shaped writes per second with N
//! concurrent coroutine writers sharing group commits, and the latency of
//! one lone durable write. A final report prints p50/p99 per-write latency
//! under 64 concurrent writers, the figure the exchange's budget is set in.
//!
//! Run: `cargo bench --bench store`. The store lives in a temporary
//! directory on the same filesystem as `$TMPDIR`, so fsync is real unless
//! that is a tmpfs.

use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use leadx::store::{Batch, Store, StoreOptions, Tree};

/// A sale as the exchange writes it: the lead, a cap counter, two dedupe
/// keys and the sale record, in one atomic batch.
fn sale(writer: usize, i: u64) -> Batch {
    let id = format!("{writer:03}-{i:010}");
    let mut b = Batch::default();
    b.insert(Tree::Leads, id.clone(), vec![b'l'; 512]);
    b.insert(Tree::Caps, format!("b1-{writer}"), i.to_be_bytes());
    b.insert(Tree::Dedupe, format!("phone-{id}"), id.clone());
    b.insert(Tree::Dedupe, format!("email-{id}"), id.clone());
    b.insert(Tree::Sales, id, vec![b's'; 128]);
    b
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreOptions::default()).expect("open store")
}

/// `total` durable sales spread over `writers` coroutines; returns the wall
/// time and every write's latency. With `rate_per_s` each writer paces
/// itself (open loop: a late write does not delay the next one's schedule),
/// so latency is measured below saturation rather than as queueing.
fn run_concurrent(
    store: &Store,
    writers: usize,
    total: u64,
    base: u64,
    rate_per_s: Option<u64>,
) -> (Duration, Vec<Duration>) {
    let writers = writers.min(total.max(1) as usize);
    let interval = rate_per_s.map(|r| Duration::from_secs_f64(writers as f64 / r as f64));
    let start = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let n = total / writers as u64 + u64::from((w as u64) < total % writers as u64);
            leadx::rt::spawn(move || {
                let mut lat = Vec::with_capacity(n as usize);
                for i in 0..n {
                    if let Some(every) = interval {
                        // Stagger writers across one interval, then keep the schedule.
                        let due = start + every.mul_f64(i as f64 + w as f64 / writers as f64);
                        may::coroutine::sleep(due.saturating_duration_since(Instant::now()));
                    }
                    let t = Instant::now();
                    store
                        .write_durable(sale(w, base + i))
                        .expect("durable write");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().expect("writer coroutine"));
    }
    (start.elapsed(), all)
}

fn durable_concurrent(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut base = 0u64;
    let mut group = c.benchmark_group("store/durable_sales");
    group.throughput(Throughput::Elements(1));
    for writers in [1usize, 16, 64] {
        group.bench_with_input(BenchmarkId::new("writers", writers), &writers, |b, &n| {
            b.iter_custom(|iters| {
                base += iters;
                run_concurrent(&store, n, iters, base, None).0
            })
        });
    }
    group.finish();
    store.close().unwrap();
}

fn durable_single(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut i = 0u64;
    c.bench_function("store/durable_sale_alone", |b| {
        b.iter(|| {
            i += 1;
            store.write_durable(sale(0, i)).unwrap()
        })
    });
    store.close().unwrap();
}

/// Prints throughput and per-write latency percentiles for 64 writers:
/// flat out (closed loop: latency is mostly queueing, 64 / throughput) and
/// paced below saturation (the latency a request actually adds).
fn report_p99() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    run_concurrent(&store, 64, 2_000, 0, None); // warm up
    for (i, rate) in [None, Some(1_000), Some(2_500)].into_iter().enumerate() {
        let before = store.stats();
        let (wall, mut lat) = run_concurrent(&store, 64, 10_000, (i as u64 + 1) << 32, rate);
        lat.sort_unstable();
        let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
        let after = store.stats();
        let flushes = after.flushes_total - before.flushes_total;
        let flush_us = after.flush_us_total - before.flush_us_total;
        println!(
            "store/report 64 writers, offered {}: {} durable sales in {:.2?} = {:.0}/s; \
             latency p50 {:.2?} p99 {:.2?} max {:.2?}; {} flushes, mean {} us",
            rate.map_or("flat out".to_string(), |r| format!("{r}/s")),
            lat.len(),
            wall,
            lat.len() as f64 / wall.as_secs_f64(),
            pct(50),
            pct(99),
            lat[lat.len() - 1],
            flushes,
            flush_us / flushes.max(1),
        );
    }
    store.close().unwrap();
}

criterion_group! {
    name = benches;
    // Few samples: every sample is bounded by fsyncs, and the machine is shared.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = durable_concurrent, durable_single
}

fn main() {
    benches();
    // `cargo bench` passes --bench; `cargo test --benches` does not, and a
    // test run should stay quick.
    if std::env::args().any(|a| a == "--bench") {
        report_p99();
    }
    Criterion::default().configure_from_args().final_summary();
}
