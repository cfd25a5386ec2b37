//! The ping cache's bounds: expiry, bytes (issue #7 point 4), removal.

use super::*;
use crate::records::RECORD_VERSION;

fn ping_with(id: &str, expires_ms: u64, lead_json: String) -> Arc<PingRecord> {
    Arc::new(PingRecord {
        v: RECORD_VERSION,
        ping_id: id.into(),
        publisher: "p".into(),
        vertical: "v".into(),
        test: false,
        created_ms: 0,
        expires_ms,
        lead_json,
        bids: vec![],
        calls: vec![],
        lead_id: None,
        direct: false,
        auction_us: 0,
    })
}

fn ping(id: &str, expires_ms: u64) -> Arc<PingRecord> {
    ping_with(id, expires_ms, "{}".into())
}

/// Ids shaped like real ones: 12 time digits, '-', random hex.
fn id(i: usize) -> String {
    format!("000000000000-{i:08x}")
}

#[test]
fn expired_pings_are_evicted_on_later_inserts() {
    let c = PingCache::default();
    c.insert(ping("0000000000000a", 100), 0);
    c.insert(ping("0000000000000b", 500), 50);
    assert!(c.get("0000000000000a").is_some());
    c.insert(ping("0000000000000c", 900), 200);
    assert!(c.get("0000000000000a").is_none());
    assert!(c.get("0000000000000b").is_some() && c.get("0000000000000c").is_some());
    assert_eq!(c.len(), 2);
}

#[test]
fn record_bytes_counts_capacities_not_lengths() {
    let small = record_bytes(&ping("x", 1));
    let mut json = String::with_capacity(64 * 1024);
    json.push_str("{}");
    let roomy = record_bytes(&ping_with("x", 1, json));
    assert!(roomy >= small + 64 * 1024 - 2, "{roomy} vs {small}");
    let mut p = (*ping("x", 1)).clone();
    p.calls = Vec::with_capacity(100);
    p.calls.push(CallRecord {
        buyer: "b".repeat(1000),
        stage: crate::records::CallStage::Ping,
        outcome: crate::records::CallOutcome::Bid,
        reason: Some("r".repeat(500)),
        latency_us: 0,
        price: None,
    });
    let with_calls = record_bytes(&p);
    assert!(
        with_calls >= small + 100 * size_of::<CallRecord>() + 1500,
        "{with_calls}"
    );
}

/// Issue #7 point 4: the cache used to hold up to 200,000 pings whatever
/// their size. Now it never holds more than its byte bound.
#[test]
fn the_cache_stays_within_its_byte_bound_evicting_oldest_first() {
    let bound = 1024 * 1024;
    let c = PingCache::new(bound);
    let n = 1000;
    for i in 0..n {
        c.insert(ping_with(&id(i), u64::MAX, "x".repeat(16 * 1024)), 0);
        assert!(c.bytes() <= bound, "after {i}: {} > {bound}", c.bytes());
    }
    let kept = c.len();
    assert!(kept > 0 && kept < 64, "16 KiB pings in 1 MiB: {kept} kept");
    // Oldest first: exactly the newest `kept` are there.
    for i in 0..n {
        assert_eq!(c.get(&id(i)).is_some(), i >= n - kept, "ping {i}");
    }
}

#[test]
fn a_ping_larger_than_the_bound_is_not_kept() {
    let c = PingCache::new(64 * 1024);
    c.insert(ping("0000000000000a", u64::MAX), 0);
    c.insert(
        ping_with("0000000000000b", u64::MAX, "x".repeat(128 * 1024)),
        0,
    );
    assert!(c.get("0000000000000b").is_none());
    assert!(c.bytes() <= 64 * 1024);
}

#[test]
fn removed_and_expired_entries_give_their_bytes_back() {
    let c = PingCache::new(1024 * 1024);
    c.insert(ping_with(&id(1), 100, "x".repeat(4096)), 0);
    let one = c.bytes();
    assert!(one > 4096);
    c.remove(&id(1));
    // The queue entry stays charged until it reaches the front.
    assert!(c.bytes() > 0 && c.bytes() < 200, "{}", c.bytes());
    c.insert(ping(&id(2), 1_000), 500);
    c.insert(ping(&id(3), 1_000), 2_000);
    assert_eq!(c.len(), 0);
    assert_eq!(c.bytes(), 0, "everything expired and left the queue");
}

#[test]
fn a_lower_bound_takes_effect_on_the_next_insert() {
    let c = PingCache::new(1024 * 1024);
    for i in 0..20 {
        c.insert(ping_with(&id(i), u64::MAX, "x".repeat(16 * 1024)), 0);
    }
    assert_eq!(c.len(), 20);
    c.set_bytes_max(100 * 1024);
    c.insert(ping(&id(99), u64::MAX), 0);
    assert!(c.bytes() <= 100 * 1024, "{}", c.bytes());
    assert!(c.len() < 8 && c.get(&id(99)).is_some());
}
