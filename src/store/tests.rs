//! Unit tests of the store's edges: versions, bounds, close, errors.
//! Randomised model, crash and concurrency tests are in `tests/it/store.rs`.

use std::sync::atomic::Ordering;

use super::*;

fn open(dir: &Path) -> Store {
    let opts = StoreOptions {
        cache_bytes: 8 << 20,
        ..StoreOptions::default()
    };
    Store::open(dir, opts).expect("open store")
}

fn one(tree: Tree, k: &str, v: impl Into<Vec<u8>>) -> Batch {
    let mut b = Batch::default();
    b.insert(tree, k, v);
    b
}

#[test]
fn durable_write_is_readable_and_trees_are_separate() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.write_durable(one(Tree::Leads, "k", "lead")).unwrap();
    s.write_durable(one(Tree::Sales, "k", "sale")).unwrap();
    assert_eq!(
        s.get(Tree::Leads, b"k").unwrap().as_deref(),
        Some(&b"lead"[..])
    );
    assert_eq!(
        s.get(Tree::Sales, b"k").unwrap().as_deref(),
        Some(&b"sale"[..])
    );
    assert_eq!(s.get(Tree::Caps, b"k").unwrap(), None);
    assert_eq!(s.count_prefix(Tree::Leads, b"").unwrap(), 1);
    let st = s.stats();
    assert!(st.flushes_total >= 1 && st.ops_total == 2, "{st:?}");
    s.close().unwrap();
}

#[test]
fn later_write_of_a_key_wins_within_and_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut b = Batch::default();
    b.insert(Tree::Caps, "c", "1");
    b.insert(Tree::Caps, "c", "2");
    b.insert(Tree::Caps, "gone", "x");
    b.remove(Tree::Caps, "gone");
    assert_eq!(b.len(), 4);
    s.write(b).unwrap();
    s.write(one(Tree::Caps, "c", "3")).unwrap();
    s.sync().unwrap();
    assert_eq!(s.get(Tree::Caps, b"c").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(s.get(Tree::Caps, b"gone").unwrap(), None);
}

#[test]
fn close_is_idempotent_and_refuses_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.write(one(Tree::Pings, "p", "1")).unwrap();
    s.close().unwrap();
    s.close().unwrap();
    assert_eq!(s.write(Batch::default()), Err(StoreError::Closed));
    assert_eq!(
        s.write_durable(one(Tree::Pings, "q", "1")),
        Err(StoreError::Closed)
    );
    assert_eq!(s.sync(), Err(StoreError::Closed));
    // Reads end with the store; the write before close was drained, so it
    // is there when the directory is opened again.
    assert_eq!(s.get(Tree::Pings, b"p"), Err(StoreError::Closed));
    let reopened = open(dir.path());
    assert_eq!(
        reopened.get(Tree::Pings, b"p").unwrap().as_deref(),
        Some(&b"1"[..])
    );
    reopened.close().unwrap();
}

#[test]
fn full_queue_is_overloaded_and_does_not_leak_depth() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        cache_bytes: 8 << 20,
        queue_max: 4,
        batch_ops_max: 16,
        ..StoreOptions::default()
    };
    let s = Store::open(dir.path(), opts).unwrap();
    // Pretend the writer is four messages behind.
    s.inner.counters.queue_depth.fetch_add(4, Ordering::AcqRel);
    assert_eq!(
        s.write(one(Tree::Leads, "a", "1")),
        Err(StoreError::Overloaded)
    );
    assert_eq!(s.stats().queue_depth, 4);
    s.inner.counters.queue_depth.fetch_sub(4, Ordering::AcqRel);
    s.write_durable(one(Tree::Leads, "a", "1")).unwrap();
    assert_eq!(s.stats().queue_depth, 0);
}

#[test]
fn newer_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.write_durable(one(
        Tree::Meta,
        "format_version",
        (FORMAT_VERSION + 1).to_be_bytes(),
    ))
    .unwrap();
    s.close().unwrap();
    drop(s);
    let err = Store::open(dir.path(), StoreOptions::default()).err();
    assert_eq!(
        err,
        Some(StoreError::Version {
            found: FORMAT_VERSION + 1,
            expected: FORMAT_VERSION
        })
    );
}

#[test]
fn malformed_format_version_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.write_durable(one(Tree::Meta, "format_version", "v1"))
        .unwrap();
    s.close().unwrap();
    drop(s);
    let err = Store::open(dir.path(), StoreOptions::default()).err();
    assert!(matches!(err, Some(StoreError::Corrupt(_))), "{err:?}");
}

#[test]
fn scans_stay_inside_their_tree() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut b = Batch::default();
    for k in ["a1", "a2", "b1"] {
        b.insert(Tree::Leads, k, k);
    }
    b.insert(Tree::Calls, "a3", "other tree");
    s.write_durable(b).unwrap();
    let keys = |v: Vec<(Vec<u8>, Vec<u8>)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(s.scan_prefix(Tree::Leads, b"a", 10).unwrap()),
        vec![b"a1".to_vec(), b"a2".to_vec()]
    );
    assert_eq!(
        keys(s.scan_prefix(Tree::Leads, b"", 1).unwrap()),
        vec![b"a1".to_vec()]
    );
    let rev = keys(s.scan_range_rev(Tree::Leads, b"a", b"", 10).unwrap());
    assert_eq!(rev, vec![b"b1".to_vec(), b"a2".to_vec(), b"a1".to_vec()]);
    let rev = keys(s.scan_range_rev(Tree::Leads, b"a1", b"b1", 10).unwrap());
    assert_eq!(rev, vec![b"a2".to_vec(), b"a1".to_vec()]);
    assert!(s
        .scan_range_rev(Tree::Leads, b"b", b"a", 10)
        .unwrap()
        .is_empty());
    assert_eq!(s.count_prefix(Tree::Calls, b"a").unwrap(), 1);
}

#[test]
fn errors_display_without_panicking() {
    let e = StoreError::Version {
        found: 2,
        expected: 1,
    };
    assert_eq!(
        e.to_string(),
        "store format version 2 on disk, this build reads 1"
    );
    assert_eq!(
        StoreError::Overloaded.to_string(),
        "store write queue is full"
    );
}

#[test]
fn store_handle_is_send_sync_and_clone() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Store>();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let other = s.clone();
    other
        .write_durable(one(Tree::Idempotency, "i", "1"))
        .unwrap();
    assert_eq!(
        s.get(Tree::Idempotency, b"i").unwrap().as_deref(),
        Some(&b"1"[..])
    );
    // Closing through one handle closes them all.
    other.close().unwrap();
    assert_eq!(s.write(Batch::default()), Err(StoreError::Closed));
}

/// A restarted exchange reopens the directory while a connection coroutine
/// of the old one may still hold a handle: `close` must release sled's lock.
#[test]
fn close_releases_the_directory_while_other_handles_live() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let lingering = s.clone();
    s.write_durable(one(Tree::Leads, "k", "v")).unwrap();
    s.close().unwrap();
    assert!(matches!(
        lingering.get(Tree::Leads, b"k"),
        Err(StoreError::Closed)
    ));
    let reopened = open(dir.path());
    assert_eq!(
        reopened.get(Tree::Leads, b"k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
    drop(lingering);
    reopened.close().unwrap();
}

fn open_deferred(dir: &Path, write_defer_ms: u64) -> Store {
    let opts = StoreOptions {
        cache_bytes: 8 << 20,
        write_defer_ms,
        ..StoreOptions::default()
    };
    Store::open(dir, opts).expect("open store")
}

/// Polls `cond` (bounded): the writer thread has no hook to wait on.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

#[test]
fn plain_writes_wait_for_a_group_and_a_durable_write_ends_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_deferred(dir.path(), 60_000);
    for i in 0..50 {
        s.write(one(Tree::Pings, &format!("p{i}"), format!("v{i}")))
            .unwrap();
    }
    s.write(one(Tree::Pings, "p0", "later wins")).unwrap();
    assert_eq!(
        s.get(Tree::Pings, b"p49").unwrap(),
        None,
        "held, not applied yet"
    );
    assert_eq!(s.stats().flushes_total, 0);
    s.write_durable(one(Tree::Sales, "k", "sale")).unwrap();
    let st = s.stats();
    assert_eq!(
        (st.flushes_total, st.ops_total, st.last_batch_ops),
        (1, 52, 52),
        "one group, one flush: {st:?}"
    );
    assert_eq!(
        s.get(Tree::Pings, b"p49").unwrap().as_deref(),
        Some(&b"v49"[..])
    );
    assert_eq!(
        s.get(Tree::Pings, b"p0").unwrap().as_deref(),
        Some(&b"later wins"[..])
    );
    s.close().unwrap();
}

#[test]
fn a_deferred_write_is_applied_and_flushed_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_deferred(dir.path(), 1);
    s.write(one(Tree::Pings, "p", "ping")).unwrap();
    assert!(
        eventually(|| s.stats().flushes_total == 1),
        "{:?}",
        s.stats()
    );
    assert_eq!(
        s.get(Tree::Pings, b"p").unwrap().as_deref(),
        Some(&b"ping"[..])
    );
    s.close().unwrap();
}

#[test]
fn scans_see_deferred_writes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_deferred(dir.path(), 60_000);
    s.write(one(Tree::Pings, "a", "1")).unwrap();
    s.write(one(Tree::Pings, "b", "2")).unwrap();
    assert_eq!(s.count_prefix(Tree::Pings, b"").unwrap(), 2);
    assert_eq!(
        s.scan_range_rev(Tree::Pings, b"", b"", 1).unwrap()[0].0,
        b"b".to_vec()
    );
    s.write(one(Tree::Pings, "c", "3")).unwrap();
    assert_eq!(s.scan_prefix(Tree::Pings, b"c", 10).unwrap().len(), 1);
    s.close().unwrap();
    assert_eq!(s.count_prefix(Tree::Pings, b""), Err(StoreError::Closed));
    let reopened = open(dir.path());
    assert_eq!(
        reopened.count_prefix(Tree::Pings, b"").unwrap(),
        3,
        "close applied the deferred writes"
    );
    reopened.close().unwrap();
}

/// sled releases a closed store's directory lock from its I/O threads, a
/// moment after `close`; opening again at once must wait for it, not fail.
#[test]
fn reopening_at_once_after_close_waits_for_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        let s = open(dir.path());
        s.write_durable(one(Tree::Leads, &format!("k{i}"), "v"))
            .unwrap();
        s.close().unwrap();
    }
    let s = open(dir.path());
    assert_eq!(s.count_prefix(Tree::Leads, b"k").unwrap(), 20);
    s.close().unwrap();
}

/// Issue #7 point 2: pings must not take the queue room of a sale's outcome.
/// With the writer stalled, unwaited writes stop at their share (6 of 8);
/// a durable write is still accepted beyond it — and beyond the whole
/// queue — and completes once the writer runs again.
#[test]
fn unwaited_writes_fill_only_their_share_and_durable_writes_are_never_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        cache_bytes: 8 << 20,
        queue_max: 8,
        write_defer_ms: 0,
        ..StoreOptions::default()
    };
    let s = Store::open(dir.path(), opts).unwrap();
    s.inject_fault(Fault::Stall);
    let mut accepted = 0;
    while s
        .write(one(Tree::Pings, &format!("p{accepted}"), "ping"))
        .is_ok()
    {
        accepted += 1;
        assert!(accepted <= 8, "unwaited writes were never refused");
    }
    assert_eq!(accepted, 8 * limits::STORE_QUEUE_UNWAITED_PCT / 100);
    assert_eq!(
        s.write(one(Tree::Pings, "x", "ping")),
        Err(StoreError::Overloaded)
    );
    // Five outcomes at once: depth 6 + 5 = 11 > queue_max, none refused.
    let waiters: Vec<_> = (0..5)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                s.write_durable(one(Tree::Leads, &format!("sale{i}"), "sold"))
            })
        })
        .collect();
    assert!(
        eventually(|| s.stats().queue_depth == 11),
        "{:?}",
        s.stats()
    );
    s.inject_fault(Fault::None);
    for w in waiters {
        assert_eq!(w.join().unwrap(), Ok(()));
    }
    assert_eq!(s.count_prefix(Tree::Leads, b"sale").unwrap(), 5);
    assert_eq!(s.count_prefix(Tree::Pings, b"p").unwrap(), accepted as u64);
    assert_eq!(s.stats().queue_depth, 0);
    s.close().unwrap();
}

/// Issue #7 point 6: a failed write marks the store unwritable once (not
/// once per request); writes and reads are refused at once; the writer's
/// probe reopens sled and recovers by itself when writes work again, with
/// everything acknowledged before intact.
#[test]
fn a_failed_write_makes_the_store_unwritable_until_a_probe_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.write_durable(one(Tree::Leads, "before", "sold")).unwrap();
    s.inject_fault(Fault::FailWrites);
    assert_eq!(
        s.write_durable(one(Tree::Leads, "lost", "x")),
        Err(StoreError::Unwritable)
    );
    assert!(!s.is_writable());
    for i in 0..50 {
        assert_eq!(
            s.write(one(Tree::Pings, &format!("p{i}"), "x")),
            Err(StoreError::Unwritable)
        );
        assert_eq!(
            s.write_durable(one(Tree::Leads, "l", "x")),
            Err(StoreError::Unwritable)
        );
    }
    assert_eq!(s.get(Tree::Leads, b"before"), Err(StoreError::Unwritable));
    // Probes keep failing while the fault holds (several probe periods).
    std::thread::sleep(std::time::Duration::from_millis(3 * limits::STORE_PROBE_MS));
    assert!(!s.is_writable());
    let st = s.stats();
    assert_eq!(
        (st.writable, st.unwritable_total),
        (false, 1),
        "one outage, one count: {st:?}"
    );
    s.inject_fault(Fault::None);
    assert!(
        eventually(|| s.is_writable()),
        "the probe did not recover the store"
    );
    assert_eq!(
        s.get(Tree::Leads, b"before").unwrap().as_deref(),
        Some(&b"sold"[..])
    );
    assert_eq!(
        s.get(Tree::Leads, b"lost").unwrap(),
        None,
        "a refused write is not there"
    );
    s.write_durable(one(Tree::Leads, "after", "sold")).unwrap();
    s.close().unwrap();
    let reopened = open(dir.path());
    assert_eq!(reopened.count_prefix(Tree::Leads, b"").unwrap(), 2);
    assert_eq!(
        reopened.get(Tree::Meta, b"probe").unwrap(),
        None,
        "the probe cleans up"
    );
    reopened.close().unwrap();
}

/// Closing an unwritable store with nothing to write is a clean close.
#[test]
fn an_unwritable_store_still_closes() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.inject_fault(Fault::FailWrites);
    assert!(s.write_durable(one(Tree::Leads, "x", "x")).is_err());
    assert_eq!(s.close(), Ok(()));
}

/// `write_applied` returns once a reader sees the write (and every write
/// queued before it), within the writer's defer, without asking for a
/// flush of its own; a failed apply is its error.
#[test]
fn an_applied_write_is_visible_when_it_returns_and_fails_with_the_apply() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_deferred(dir.path(), 30);
    s.write(one(Tree::Leads, "before", "1")).unwrap();
    s.write_applied(one(Tree::Leads, "sweep", "2")).unwrap();
    assert_eq!(
        s.get(Tree::Leads, b"before").unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        s.get(Tree::Leads, b"sweep").unwrap().as_deref(),
        Some(&b"2"[..])
    );
    s.inject_fault(Fault::FailWrites);
    assert_eq!(
        s.write_applied(one(Tree::Leads, "lost", "3")),
        Err(StoreError::Unwritable)
    );
    s.inject_fault(Fault::None);
}
