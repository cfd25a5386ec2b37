//! Suppression list benchmarks (issue #10 goals for 10 million numbers:
//! load from a text file < 5 s, < 40 MB of memory, lookup < 1 µs).
//!
//! The list is generated at bench time (seeded; never committed): 10
//! million uniform NANP numbers, one a line, three in four as bare digits
//! and one in four as `AAA-EEE-LLLL`, written to a temporary file. Memory is
//! the set's own count of its bytes (`SuppressionSet::bytes`), printed
//! before the timings; criterion measures the load and lookups.
//!
//! Run: `cargo bench --bench suppress` (about 2 minutes on 2 cores).
//! `SUPPRESS_BENCH_NUMBERS=1000000` runs a smaller list.

use std::io::Write;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use leadx::suppress::{self, SuppressionSet};

/// splitmix64: seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A valid NANP number: area code and exchange 200..=999.
    fn number(&mut self) -> u64 {
        let r = self.next();
        let area = 200 + r % 800;
        let exchange = 200 + (r >> 10) % 800;
        let line = (r >> 20) % 10_000;
        area * 10_000_000 + exchange * 10_000 + line
    }
}

/// `cargo bench` passes --bench; `cargo test --benches` does not, and a
/// test run should stay quick.
fn numbers_wanted() -> usize {
    let full = if std::env::args().any(|a| a == "--bench") {
        10_000_000
    } else {
        100_000
    };
    std::env::var("SUPPRESS_BENCH_NUMBERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(full)
}

fn write_list(path: &std::path::Path, n: usize) {
    let file = std::fs::File::create(path).expect("create list");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut rng = Rng(0x00d0_0c0d);
    for i in 0..n {
        let v = rng.number();
        if i % 4 == 3 {
            let (a, e, l) = (v / 10_000_000, v / 10_000 % 1000, v % 10_000);
            writeln!(out, "{a}-{e}-{l:04}").expect("write");
        } else {
            writeln!(out, "{v}").expect("write");
        }
    }
    out.flush().expect("flush");
}

fn bench(c: &mut Criterion) {
    let n = numbers_wanted();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("list.txt");
    let t = Instant::now();
    write_list(&path, n);
    let file_bytes = std::fs::metadata(&path).expect("stat").len();
    eprintln!(
        "suppress: wrote {n} numbers ({file_bytes} bytes) in {:.2?}",
        t.elapsed()
    );

    let t = Instant::now();
    let loaded = suppress::load(&path).expect("load");
    let set: SuppressionSet = loaded.set;
    eprintln!(
        "suppress: one load {:.2?}; {} distinct numbers, {} invalid lines; set {} bytes = {:.2} MB, {:.2} bytes a number",
        t.elapsed(),
        set.len(),
        loaded.invalid_lines,
        set.bytes(),
        set.bytes() as f64 / 1e6,
        set.bytes() as f64 / set.len() as f64
    );

    let mut g = c.benchmark_group("suppress");
    g.sample_size(10);
    g.bench_function(format!("load_{n}"), |b| {
        b.iter(|| suppress::load(&path).expect("load").set.len())
    });
    g.finish();

    // Probes: half members, half random numbers (almost all misses), in a
    // random order so the caches see a real lookup pattern.
    let members: Vec<u64> = set.iter().step_by(7).take(1 << 19).collect();
    let mut rng = Rng(42);
    let mut probes: Vec<u64> = Vec::with_capacity(members.len() * 2);
    for &m in &members {
        probes.push(m);
        probes.push(rng.number());
    }
    for i in (1..probes.len()).rev() {
        probes.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let mut g = c.benchmark_group("suppress");
    let mut i = 0;
    g.bench_function("contains_random", |b| {
        b.iter(|| {
            i = (i + 1) % probes.len();
            set.contains(std::hint::black_box(probes[i]))
        })
    });
    let hits = probes.iter().filter(|&&p| set.contains(p)).count();
    eprintln!(
        "suppress: {hits} of {} probes are on the list",
        probes.len()
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
