//! Retention (contract §12, issue #10): PII erased after
//! `pii_retention_days`, unposted pings deleted after `ping_retention_days`,
//! dedupe keys after their window — on a `ManualClock`, passes run by hand
//! (`Exchange::sweep_retention`, the background thread paused).

use std::sync::Arc;
use std::time::Duration;

use leadx::clock::ManualClock;
use leadx::records::{self, PingRecord};
use leadx::store::{Batch, Tree};

use crate::privacy::{admin_lead, start_with_text};
use crate::support::*;

const DAY_MS: u64 = 86_400_000;
/// Business time the tests start at (2027-01-15).
const NOW_MS: u64 = 1_800_000_000_000;

fn start_retaining(buyers: &str, clock: Arc<ManualClock>) -> Leadx {
    let l = start_with_text(
        |t| {
            t.replacen(
                "id = \"auto\"\n",
                "id = \"auto\"\ndedupe_window_days = 30\n",
                1,
            ) + "\n[privacy]\npii_retention_days = 90\nping_retention_days = 7\n"
        },
        buyers,
        clock,
    );
    l.ex().retention().pause_background(true);
    l
}

fn sweep(l: &Leadx) -> leadx::exchange::retention::PassReport {
    let r = l.ex().sweep_retention(u64::MAX, Duration::ZERO);
    assert!(r.caught_up, "{r:?}");
    r
}

fn metrics(l: &Leadx) -> String {
    String::from_utf8(get(l.addr, "/metrics", ADMIN).body).unwrap()
}

/// A sold lead keeps its PII at day 89 and loses it at day 91 (outcome,
/// money and ids stay; the admin view says when); an unposted ping is
/// deleted after 7 days, a posted one kept; the dedupe key goes after its
/// 30-day window.
#[test]
fn pii_is_erased_after_its_retention_and_unposted_pings_after_theirs() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let clock = Arc::new(ManualClock::at(NOW_MS));
    let l = start_retaining(&buyer_toml("a", &a, ""), clock.clone());
    let sold_ping = ping(&l)["ping_id"].as_str().unwrap().to_string();
    let r = post(&l, &sold_ping, "5552345601");
    let lead_id = r.sold_lead_id();
    let unposted = ping(&l)["ping_id"].as_str().unwrap().to_string();
    l.ex().store().sync().unwrap();

    clock.set_ms(NOW_MS + 6 * DAY_MS);
    assert_eq!(sweep(&l).pings_deleted, 0, "day 6: kept");
    assert!(l.ex().ping_record(&unposted).unwrap().is_some());

    clock.set_ms(NOW_MS + 8 * DAY_MS);
    let r = sweep(&l);
    assert_eq!((r.pings_deleted, r.pii_erased), (1, 0), "{r:?}");
    l.ex().store().sync().unwrap();
    assert!(l.ex().ping_record(&unposted).unwrap().is_none(), "deleted");
    assert!(
        l.ex().ping_record(&sold_ping).unwrap().is_some(),
        "a posted ping stays"
    );
    let gone = post(&l, &unposted, "5552345602");
    assert_eq!(gone.code(), "unknown_ping", "not in the cache either");

    clock.set_ms(NOW_MS + 31 * DAY_MS);
    assert_eq!(
        sweep(&l).dedupe_deleted,
        2,
        "phone and email keys past their window"
    );

    clock.set_ms(NOW_MS + 89 * DAY_MS);
    assert_eq!(sweep(&l).pii_erased, 0);
    let view = admin_lead(&l, &lead_id);
    assert_eq!(view["data"]["lead"]["phone"], "+15552345601", "{view}");

    clock.set_ms(NOW_MS + 91 * DAY_MS);
    assert_eq!(sweep(&l).pii_erased, 1);
    l.ex().store().sync().unwrap();
    let view = admin_lead(&l, &lead_id);
    assert_eq!(view["data"], serde_json::Value::Null, "{view}");
    assert_eq!(view["pii_erased_at"], "2027-04-16T08:00:00.000Z", "{view}");
    assert_eq!(
        (&view["status"], &view["price"], &view["buyer"]),
        (&"sold".into(), &10.0.into(), &"a".into()),
        "{view}"
    );
    let rec = l.ex().lead(&lead_id).unwrap().unwrap();
    assert_eq!(rec.pii_json, "null");
    assert_eq!(sweep(&l).pii_erased, 0, "erased once");
    let m = metrics(&l);
    for line in [
        "leadx_retention_erased_total{kind=\"pii\"} 1",
        "leadx_retention_erased_total{kind=\"ping\"} 1",
        "leadx_retention_erased_total{kind=\"dedupe\"} 2",
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
    assert!(!m.contains("leadx_retention_last_sweep_timestamp_seconds 0\n"));
}

/// A v1 config (no retention days) erases nothing, however old.
#[test]
fn without_retention_days_nothing_is_erased() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let clock = Arc::new(ManualClock::at(NOW_MS));
    let l = start_with_text(|t| t, &buyer_toml("a", &a, ""), clock.clone());
    l.ex().retention().pause_background(true);
    let p = ping(&l)["ping_id"].as_str().unwrap().to_string();
    l.ex().store().sync().unwrap();
    clock.set_ms(NOW_MS + 1000 * DAY_MS);
    let r = l.ex().sweep_retention(u64::MAX, Duration::ZERO);
    assert_eq!((r.scanned, r.pings_deleted), (0, 0));
    assert!(l.ex().ping_record(&p).unwrap().is_some());
}

/// `count` pings created at `created_ms`, every other one posted, with
/// ids in key order.
fn prefill_pings(l: &Leadx, count: usize, created_ms: u64) {
    let mut batch = Batch::default();
    for i in 0..count {
        let id = format!("{:012x}{:020x}", created_ms, i);
        let rec = PingRecord {
            v: records::RECORD_VERSION,
            ping_id: id.clone(),
            publisher: "pub1".into(),
            vertical: "auto".into(),
            test: false,
            created_ms,
            expires_ms: created_ms + 120_000,
            lead_json: "{}".into(),
            bids: vec![],
            calls: vec![],
            lead_id: (i % 2 == 0).then(|| format!("{:032x}", i)),
            direct: false,
            auction_us: 0,
        };
        batch.insert(Tree::Pings, id.into_bytes(), records::encode_ping(&rec));
    }
    l.ex().store().write_durable(batch).unwrap();
}

/// A pass is bounded; its cursor is durable with its changes, so after a
/// restart the next pass goes on where the last stopped instead of walking
/// the kept (posted) pings again.
#[test]
fn a_sweep_cut_short_resumes_after_a_restart() {
    let a = mock(Act::NoBid, Act::Reject);
    let clock = Arc::new(ManualClock::at(NOW_MS));
    let mut l = start_retaining(&buyer_toml("a", &a, ""), clock.clone());
    prefill_pings(&l, 1000, NOW_MS - 10 * DAY_MS);
    let first = l.ex().sweep_retention(400, Duration::ZERO);
    assert!(!first.caught_up, "{first:?}");
    assert_eq!(first.scanned, 400);
    l.ex().store().sync().unwrap();
    l.restart();
    l.ex().retention().pause_background(true);
    let rest = sweep(&l);
    assert_eq!(rest.scanned, 600, "resumed at the cursor: {rest:?}");
    assert_eq!(first.pings_deleted + rest.pings_deleted, 500);
    let left = l.ex().store().count_prefix(Tree::Pings, b"").unwrap();
    assert_eq!(left, 500, "the posted half stays");
}
