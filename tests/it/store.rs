//! The store against a model, under SIGKILL, and under 64 coroutines.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use leadx::store::{Batch, Store, StoreOptions, Tree};

fn open(dir: &Path) -> Store {
    let opts = StoreOptions {
        cache_bytes: 16 << 20,
        ..StoreOptions::default()
    };
    Store::open(dir, opts).expect("open store")
}

/// xorshift64*: seeded, reproducible, no crate needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type Model = HashMap<Tree, BTreeMap<Vec<u8>, Vec<u8>>>;

const MODEL_TREES: [Tree; 3] = [Tree::Leads, Tree::Caps, Tree::Sales];

/// A random batch of 1–4 inserts/removes over a small key space (so keys
/// collide, are overwritten and removed), applied to the model too.
fn random_batch(rng: &mut Rng, model: &mut Model) -> Batch {
    let mut batch = Batch::default();
    for _ in 0..=rng.below(4) {
        let tree = MODEL_TREES[rng.below(3) as usize];
        let key = format!("k{:02}", rng.below(40)).into_bytes();
        if rng.below(4) == 0 {
            batch.remove(tree, key.clone());
            model.entry(tree).or_default().remove(&key);
        } else {
            let value = rng.next().to_be_bytes()[..1 + rng.below(7) as usize].to_vec();
            batch.insert(tree, key.clone(), value.clone());
            model.entry(tree).or_default().insert(key, value);
        }
    }
    batch
}

/// Every read API agrees with the model.
fn check(store: &Store, model: &Model, rng: &mut Rng, seed: u64) {
    for tree in MODEL_TREES {
        let m = model.get(&tree).cloned().unwrap_or_default();
        let all: Vec<_> = m.clone().into_iter().collect();
        assert_eq!(
            store.scan_prefix(tree, b"", usize::MAX).unwrap(),
            all,
            "seed {seed}"
        );
        let prefix = format!("k{}", rng.below(4)).into_bytes();
        let want: Vec<_> = all
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .cloned()
            .collect();
        assert_eq!(
            store.count_prefix(tree, &prefix).unwrap(),
            want.len() as u64,
            "seed {seed}"
        );
        assert_eq!(
            store.scan_prefix(tree, &prefix, 3).unwrap(),
            want[..want.len().min(3)],
            "seed {seed}"
        );
        let (a, b) = (
            format!("k{:02}", rng.below(40)),
            format!("k{:02}", rng.below(40)),
        );
        let (from, to) = (a.as_bytes(), b.as_bytes());
        let mut want: Vec<_> = m
            .range(from.to_vec()..)
            .filter(|(k, _)| k.as_slice() < to)
            .collect();
        want.reverse();
        let want: Vec<_> = want
            .into_iter()
            .take(5)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let got = store.scan_range_rev(tree, from, to, 5).unwrap();
        assert_eq!(got, want, "seed {seed} range [{a}, {b})");
        let key = format!("k{:02}", rng.below(40)).into_bytes();
        assert_eq!(
            store.get(tree, &key).unwrap(),
            m.get(&key).cloned(),
            "seed {seed}"
        );
    }
}

#[test]
fn model_random_operations_with_restarts() {
    for seed in [1u64, 7, 42, 1234, 0xDEAD_BEEF] {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed);
        let mut model = Model::new();
        let mut store = open(dir.path());
        let mut restarts = 0;
        for _ in 0..300 {
            match rng.below(20) {
                0 => {
                    // Restart: close drains every accepted write, durable or not.
                    store.close().unwrap();
                    drop(store);
                    store = open(dir.path());
                    restarts += 1;
                }
                1..=3 => {
                    store.sync().unwrap();
                    check(&store, &model, &mut rng, seed);
                }
                4..=11 => store.write(random_batch(&mut rng, &mut model)).unwrap(),
                _ => store
                    .write_durable(random_batch(&mut rng, &mut model))
                    .unwrap(),
            }
        }
        store.sync().unwrap();
        check(&store, &model, &mut rng, seed);
        assert!(restarts > 0, "seed {seed} never restarted");
        store.close().unwrap();
    }
}

#[test]
fn durable_writes_from_64_coroutines_all_complete() {
    const WRITERS: usize = 64;
    const EACH: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            leadx::rt::spawn(move || {
                for i in 0..EACH {
                    let key = format!("w{w:02}-{i:03}");
                    let mut b = Batch::default();
                    b.insert(Tree::Leads, key.clone(), "lead");
                    b.insert(Tree::Sales, key, "sale");
                    store.write_durable(b).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer coroutine panicked");
    }
    let total = (WRITERS * EACH) as u64;
    assert_eq!(store.count_prefix(Tree::Leads, b"w").unwrap(), total);
    assert_eq!(store.count_prefix(Tree::Sales, b"w").unwrap(), total);
    let stats = store.stats();
    // Group commit: concurrent writers share flushes.
    assert!(stats.flushes_total < total, "{stats:?}");
    assert_eq!(stats.queue_depth, 0);
    store.close().unwrap();
}

const CRASH_DIR_ENV: &str = "LEADX_STORE_CRASH_CHILD_DIR";
const CRASH_THREADS: usize = 16;
/// The child stops by itself after this long, whatever the parent does.
const CRASH_CHILD_RUN_MS: u64 = 30_000;
const CRASH_ACKS_BEFORE_KILL: usize = 400;

fn crash_value(key: &str) -> String {
    format!("{key}-{}", "x".repeat(64))
}

/// Child mode: write durably from many threads, print each acknowledged key.
fn crash_child(dir: &Path) {
    let store = open(dir);
    let deadline = Instant::now() + Duration::from_millis(CRASH_CHILD_RUN_MS);
    let threads: Vec<_> = (0..CRASH_THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let key = format!("t{t:02}-{i:08}");
                    let mut b = Batch::default();
                    b.insert(Tree::Leads, key.clone(), crash_value(&key));
                    b.insert(Tree::Sales, key.clone(), "sale");
                    store.write_durable(b).unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {key}").unwrap();
                    out.flush().unwrap();
                    i += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn crash_acknowledged_durable_writes_survive_sigkill() {
    if let Some(dir) = std::env::var_os(CRASH_DIR_ENV) {
        return crash_child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "store::crash_acknowledged_durable_writes_survive_sigkill",
            "--exact",
        ])
        .args(["--nocapture", "--test-threads=1"])
        .env(CRASH_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-execute the test binary as the crash child");
    let mut acked = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(key) = line.unwrap().strip_prefix("ACK ") {
            acked.push(key.to_string());
            if acked.len() >= CRASH_ACKS_BEFORE_KILL {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(
        acked.len() >= CRASH_ACKS_BEFORE_KILL,
        "child acknowledged only {}",
        acked.len()
    );

    let store = open(dir.path());
    for key in &acked {
        let got = store.get(Tree::Leads, key.as_bytes()).unwrap();
        assert_eq!(
            got,
            Some(crash_value(key).into_bytes()),
            "acknowledged {key} lost"
        );
    }
    // Atomicity: every batch is all there or not at all, acknowledged or not.
    let leads = store.scan_prefix(Tree::Leads, b"t", usize::MAX).unwrap();
    let sales = store.scan_prefix(Tree::Sales, b"t", usize::MAX).unwrap();
    let lead_keys: Vec<_> = leads.into_iter().map(|(k, _)| k).collect();
    let sale_keys: Vec<_> = sales.into_iter().map(|(k, _)| k).collect();
    assert_eq!(lead_keys, sale_keys, "a batch was torn by the crash");
    assert!(lead_keys.len() >= acked.len());
    store.close().unwrap();
}
