//! No rewrite of a lead record loses another (`exchange::claims`): a return
//! that lands between a sweep's scan and its write survives the sweep —
//! retention erases the returned record's PII, re-seal seals the returned
//! record — deterministically through the sweeps' test hook
//! (`Sweeps::set_test_hook`), and under random interleavings of returning
//! threads and repeated sweeps (`ManualClock`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use leadx::clock::ManualClock;
use leadx::exchange::Exchange;
use leadx::privacy::{DataKey, KeyRing};
use leadx::records::{self, LeadRecord, LeadStatus};
use leadx::store::{Batch, Tree};

use crate::cli::eventually;
use crate::privacy::start_with_text;
use crate::support::*;

const DAY_MS: u64 = 86_400_000;
/// Business time the tests start at (2027-01-15).
const NOW_MS: u64 = 1_800_000_000_000;
const KEY_A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const KEY_B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

/// A leadx with `privacy` and one buyer "a" (return window 7 days), its
/// background retention paused.
fn start(privacy: &str, clock: Arc<ManualClock>) -> Leadx {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let l = start_with_text(
        |t| format!("{t}\n[privacy]\n{privacy}\n"),
        &buyer_toml("a", &a, ""),
        clock,
    );
    l.ex().retention().pause_background(true);
    l
}

fn arc(l: &Leadx) -> Arc<Exchange> {
    l.running.as_ref().unwrap().ex.clone()
}

/// `count` sold leads of buyer "a", created and sold at `NOW_MS`, their PII
/// sealed under `ring` (in clear without one), durable.
fn plant_sold(l: &Leadx, count: usize, ring: Option<&KeyRing>) -> Vec<String> {
    let mut ids = Vec::new();
    let mut b = Batch::default();
    for i in 0..count {
        let lead_id = format!("{:012x}{:020x}", NOW_MS, i);
        let pii = format!("{{\"phone\":\"+1555234{i:04}\"}}");
        let rec = LeadRecord {
            v: records::RECORD_VERSION,
            pii_json: records::seal_pii(ring, &lead_id, pii),
            lead_id: lead_id.clone(),
            ping_id: format!("p{i}"),
            publisher: "pub1".into(),
            vertical: "auto".into(),
            test: false,
            created_ms: NOW_MS,
            status: LeadStatus::Sold,
            reason: None,
            price: Some(1000),
            payout: Some(800),
            buyer: Some("a".into()),
            buyer_lead_id: Some(format!("A-{i}")),
            sold_ms: Some(NOW_MS),
            post_calls: vec![],
            returned_ms: None,
            return_reason: None,
            pii_erased_ms: None,
            suppression_list: None,
        };
        b.insert(Tree::Leads, lead_id.clone(), records::encode_lead(&rec));
        ids.push(lead_id);
    }
    l.ex().store().write_durable(b).unwrap();
    ids
}

fn stored(l: &Leadx, id: &str) -> LeadRecord {
    l.ex().store().sync().unwrap();
    l.ex().lead(id).unwrap().unwrap()
}

/// A hook that returns `lead_id` in the first batch of `job` it sees.
fn return_once_in(ex: &Arc<Exchange>, job: &'static str, lead_id: &str) -> Arc<AtomicBool> {
    let fired = Arc::new(AtomicBool::new(false));
    let (weak, id, f) = (Arc::downgrade(ex), lead_id.to_string(), fired.clone());
    ex.retention().set_test_hook(Some(Arc::new(move |j: &str| {
        let Some(ex) = Weak::upgrade(&weak) else {
            return;
        };
        if j == job && !f.swap(true, Ordering::SeqCst) {
            let rec = ex.return_lead(&id, "mid-sweep").expect("returned");
            assert_eq!(rec.status, LeadStatus::Returned);
        }
    })));
    fired
}

/// The PII job scans a sold lead; a return lands before its write; the
/// sweep's write must build on the return: `returned` AND erased.
#[test]
fn a_return_between_the_retention_scan_and_its_write_is_kept_and_erased() {
    let clock = Arc::new(ManualClock::at(NOW_MS));
    let l = start("pii_retention_days = 1", clock.clone());
    let ids = plant_sold(&l, 3, None);
    let ex = arc(&l);
    let fired = return_once_in(&ex, "pii", &ids[1]);
    clock.set_ms(NOW_MS + 2 * DAY_MS);
    let r = l.ex().sweep_retention(u64::MAX, Duration::ZERO);
    assert!(fired.load(Ordering::SeqCst), "the hook ran mid-batch");
    assert!(r.caught_up, "{r:?}");
    assert_eq!(r.pii_erased, 3, "{r:?}");
    let rec = stored(&l, &ids[1]);
    assert_eq!(rec.status, LeadStatus::Returned, "the return survives");
    assert_eq!(rec.return_reason.as_deref(), Some("mid-sweep"));
    assert_eq!(
        (rec.pii_json.as_str(), rec.pii_erased_ms),
        ("null", Some(NOW_MS + 2 * DAY_MS)),
        "and its PII is erased"
    );
    for id in [&ids[0], &ids[2]] {
        let rec = stored(&l, id);
        assert_eq!(
            (rec.status, rec.pii_json.as_str()),
            (LeadStatus::Sold, "null")
        );
    }
    ex.retention().set_test_hook(None);
}

/// The re-seal job scans a lead sealed under the old key; a return lands
/// before its write: the record is `returned` AND sealed under the new key.
#[test]
fn a_return_between_the_reseal_scan_and_its_write_is_kept_and_resealed() {
    let clock = Arc::new(ManualClock::at(NOW_MS));
    let l = start(
        &format!("data_key = \"{KEY_B}\"\nold_data_keys = [\"{KEY_A}\"]"),
        clock,
    );
    let old = KeyRing::new(&DataKey::new([0xa1; 32]), &[]).unwrap();
    let ids = plant_sold(&l, 3, Some(&old));
    let ex = arc(&l);
    let fired = return_once_in(&ex, "reseal", &ids[1]);
    assert!(ex.start_reseal().unwrap());
    assert!(eventually(Duration::from_secs(20), || {
        let p = ex.reseal_job().progress();
        p.done && !ex.reseal_job().is_running()
    }));
    assert!(fired.load(Ordering::SeqCst), "the hook ran mid-batch");
    assert_eq!(ex.reseal_job().progress().resealed, 3);
    let rec = stored(&l, &ids[1]);
    assert_eq!(rec.status, LeadStatus::Returned, "the return survives");
    for id in &ids {
        let rec = stored(&l, id);
        assert!(rec.pii_json.starts_with(&new_tag()), "{id}: resealed");
    }
    ex.retention().set_test_hook(None);
}

/// A lead whose claim is held (a return, a post) stops the PII batch
/// before it — nothing after it is skipped for good — and the next pass
/// erases it once the claim is gone.
#[test]
fn retention_skips_a_claimed_lead_and_takes_it_up_next_pass() {
    let clock = Arc::new(ManualClock::at(NOW_MS));
    let l = start("pii_retention_days = 1", clock.clone());
    let ids = plant_sold(&l, 3, None);
    clock.set_ms(NOW_MS + 2 * DAY_MS);
    let held = l.ex().hold_lead_claim(&ids[1]).unwrap();
    let r = l.ex().sweep_retention(u64::MAX, Duration::ZERO);
    assert!(!r.caught_up, "stopped at the claimed lead: {r:?}");
    assert_eq!(r.pii_erased, 1, "{r:?}");
    assert_ne!(
        stored(&l, &ids[1]).pii_json,
        "null",
        "not written under a claim"
    );
    assert_ne!(
        stored(&l, &ids[2]).pii_json,
        "null",
        "the batch stopped before it"
    );
    drop(held);
    let r = l.ex().sweep_retention(u64::MAX, Duration::ZERO);
    assert!(r.caught_up, "{r:?}");
    assert_eq!(r.pii_erased, 2, "taken up from the claimed lead on: {r:?}");
    for id in &ids {
        assert_eq!(stored(&l, id).pii_json, "null", "{id}");
    }
}

/// The re-seal job waits at a claimed lead (batch after batch) and goes on
/// once it is free; it never reports `done` past it.
#[test]
fn reseal_waits_at_a_claimed_lead_and_goes_on_when_it_is_free() {
    let clock = Arc::new(ManualClock::at(NOW_MS));
    let l = start(
        &format!("data_key = \"{KEY_B}\"\nold_data_keys = [\"{KEY_A}\"]"),
        clock,
    );
    let old = KeyRing::new(&DataKey::new([0xa1; 32]), &[]).unwrap();
    let ids = plant_sold(&l, 3, Some(&old));
    let ex = arc(&l);
    let held = ex.hold_lead_claim(&ids[1]).unwrap();
    assert!(ex.start_reseal().unwrap());
    assert!(eventually(Duration::from_secs(20), || {
        stored(&l, &ids[0]).pii_json.starts_with(&new_tag())
    }));
    std::thread::sleep(Duration::from_millis(100));
    assert!(ex.reseal_job().is_running() && !ex.reseal_job().progress().done);
    assert!(!stored(&l, &ids[1]).pii_json.starts_with(&new_tag()));
    drop(held);
    assert!(eventually(Duration::from_secs(20), || {
        ex.reseal_job().progress().done && !ex.reseal_job().is_running()
    }));
    assert_eq!(ex.reseal_job().progress().resealed, 3);
    for id in &ids {
        assert!(stored(&l, id).pii_json.starts_with(&new_tag()), "{id}");
    }
}

/// What a value sealed under `KEY_B` starts with.
fn new_tag() -> String {
    let ring = KeyRing::new(&DataKey::new([0xb2; 32]), &[]).unwrap();
    format!("{}01{}", records::SEALED_PII_PREFIX, ring.current_id())
}

/// A small deterministic shuffle (xorshift), so a failure replays.
fn shuffled(ids: &[String], seed: u64) -> Vec<String> {
    let mut v = ids.to_vec();
    let mut x = seed | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// Returns every lead in `ids` from `threads` threads (each its own
/// shuffled share), while `sweep` runs again and again; the hook widens
/// every batch's scan-to-write gap by a little sleep.
fn race(l: &Leadx, ids: &[String], threads: usize, sweep: impl Fn() -> bool) {
    let ex = arc(l);
    ex.retention().set_test_hook(Some(Arc::new(|_: &str| {
        std::thread::sleep(Duration::from_micros(300));
    })));
    let left = Arc::new(AtomicUsize::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (ex, left) = (ex.clone(), left.clone());
            let mine: Vec<String> = ids.iter().skip(t).step_by(threads).cloned().collect();
            std::thread::spawn(move || {
                for id in shuffled(&mine, 0x9e37_79b9 + t as u64) {
                    // A sweep holds a claim for one batch only: a return
                    // waits for it, never answers `return_in_progress` here.
                    let rec = ex.return_lead(&id, "race").expect("returned");
                    assert_eq!(rec.status, LeadStatus::Returned);
                }
                left.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    let mut rounds = 0;
    while left.load(Ordering::SeqCst) > 0 || rounds < 3 {
        if sweep() {
            rounds += 1;
        }
    }
    for w in workers {
        w.join().unwrap();
    }
    ex.retention().set_test_hook(None);
}

/// N threads return leads while retention passes of a few keys run over
/// and over: every returned lead is `returned` in the store at the end, and
/// every lead's PII is erased.
#[test]
fn returns_racing_repeated_retention_passes_are_never_lost() {
    let clock = Arc::new(ManualClock::at(NOW_MS));
    let l = start("pii_retention_days = 1", clock.clone());
    let ids = plant_sold(&l, 120, None);
    clock.set_ms(NOW_MS + 2 * DAY_MS);
    // Passes of 8 keys: the erasure walks the leads batch by batch while
    // the returns land.
    let ex = arc(&l);
    race(&l, &ids, 4, || {
        ex.sweep_retention(8, Duration::ZERO).caught_up
    });
    let r = l.ex().sweep_retention(u64::MAX, Duration::ZERO);
    assert!(r.caught_up, "{r:?}");
    for id in &ids {
        let rec = stored(&l, id);
        assert_eq!(rec.status, LeadStatus::Returned, "{id}");
        assert_eq!(rec.pii_json, "null", "{id}");
    }
}

/// The same race against re-seal jobs run one after another.
#[test]
fn returns_racing_repeated_reseal_jobs_are_never_lost() {
    let clock = Arc::new(ManualClock::at(NOW_MS));
    let l = start(
        &format!("data_key = \"{KEY_B}\"\nold_data_keys = [\"{KEY_A}\"]"),
        clock,
    );
    let old = KeyRing::new(&DataKey::new([0xa1; 32]), &[]).unwrap();
    let ids = plant_sold(&l, 120, Some(&old));
    let ex = arc(&l);
    race(&l, &ids, 4, || {
        if ex.reseal_job().is_running() {
            std::thread::sleep(Duration::from_millis(1));
            return false;
        }
        ex.start_reseal().unwrap()
    });
    assert!(eventually(Duration::from_secs(20), || !ex
        .reseal_job()
        .is_running()));
    for id in &ids {
        let rec = stored(&l, id);
        assert_eq!(rec.status, LeadStatus::Returned, "{id}");
        assert!(rec.pii_json.starts_with(&new_tag()), "{id}: resealed");
    }
}
