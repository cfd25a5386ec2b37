//! Postbacks (contract §13): a publisher with `postback_url` is told when
//! its lead sold or came back, at least once, from a durable outbox.
//!
//! - **Written with what it reports.** `add` puts the event into the very
//!   batch of the sale (`sale::run`) or the return (`returns`), so the
//!   event is durable exactly when the sale is — a sale is never without
//!   its event, and no event exists for a sale that was not recorded
//!   (`it::postbacks::the_event_is_written_in_the_sales_batch`). Nothing
//!   is sent on the publisher's request path.
//! - **Delivered by its own sender.** One OS thread (`spawn_sender`, started
//!   by the daemon) wakes every `limits::POSTBACK_POLL_MS`, and for each
//!   publisher with a `postback_url` reads at most its free slots' worth of
//!   due events from its own key range (`records::keys::outbox_due_range`)
//!   and delivers each in a coroutine with the buyers' HTTP client,
//!   deadline-bounded (`[postbacks] timeout_ms`). At most
//!   `per_publisher_max` deliveries per publisher are in flight, so a dead
//!   or hanging endpoint holds a few parked coroutines and never delays
//!   another publisher's events nor any ping or post.
//! - **Signed** with `Leadx-Signature` (`t=<s>,v1=<HMAC-SHA256 of "t.body">`,
//!   `privacy::signature::SigningKey::sign`, the code that checks
//!   publishers' requests) when the publisher has a `signing_secret`.
//! - **Retried.** Any 2xx is success and removes the event. Anything else
//!   moves it later: `retry_base_ms` doubling per attempt up to
//!   `retry_max_ms`, with jitter (a random point in the upper half), on
//!   the exchange's `Clock`; once `give_up_after_s` have passed since the
//!   event it is moved to the failed range (kept, counted, logged by ids).
//! - **At least once.** An event leaves the outbox only after its 2xx; a
//!   crash or drain mid-delivery sends it again later.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{claims, Exchange, Runtime};
use crate::config::Publisher;
use crate::http::client::{BuyerClient, ClientOptions};
use crate::http::url::Url;
use crate::json::Answer;
use crate::limits;
use crate::records::{self, keys, LeadRecord, OutboxEntry};
use crate::store::{Batch, Tree};
use crate::sync::Mutex;
use crate::sync::RwLock;

/// What a postback reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Sold,
    Returned,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Sold => "sold",
            Event::Returned => "returned",
        }
    }
}

/// Adds `rec`'s `event` (at `at_ms`, business time) to `batch` when its
/// publisher has a `postback_url`: `{"event","lead_id","ping_id","price",
/// "at","test"}`, `price` the publisher's payout. Due at once. True when
/// it added one: the caller calls `written` once the batch is durable.
pub(crate) fn add(
    rt: &Runtime,
    rec: &LeadRecord,
    event: Event,
    at_ms: u64,
    batch: &mut Batch,
) -> bool {
    let Some(p) = publisher(rt, &rec.publisher) else {
        return false;
    };
    if p.postback_url.is_none() {
        return false;
    }
    let body = Answer::new()
        .str("event", event.as_str())
        .str("lead_id", &rec.lead_id)
        .str("ping_id", &rec.ping_id)
        .cents("price", rec.payout)
        .str("at", &crate::json::rfc3339(at_ms))
        .raw("test", if rec.test { b"true" } else { b"false" })
        .finish();
    let entry = OutboxEntry {
        v: records::RECORD_VERSION,
        publisher: rec.publisher.clone(),
        event_id: format!("{}:{}", rec.lead_id, event.as_str()),
        body: String::from_utf8(body).expect("JSON writers emit UTF-8"),
        created_ms: at_ms,
        attempts: 0,
        last_error: None,
    };
    batch.insert(
        Tree::Outbox,
        keys::outbox_pending(&entry.publisher, at_ms, &entry.event_id),
        records::encode_outbox(&entry),
    );
    true
}

/// A batch with an event from `add` is durable (so applied): the sender
/// looks at every publisher again instead of waiting for its next full
/// look (`tick`).
pub(crate) fn written(ex: &Exchange) {
    ex.outbox.added.fetch_add(1, Ordering::SeqCst);
}

fn publisher<'a>(rt: &'a Runtime, id: &str) -> Option<&'a Publisher> {
    rt.config.publishers.iter().find(|p| p.id == id)
}

/// One publisher's delivery state and counters.
#[derive(Default)]
struct PubState {
    /// Nothing of it is due before this (business ms) — known from its last
    /// look, valid while `Outbox::added` is still `seen_added`.
    idle_until: AtomicU64,
    seen_added: AtomicU64,
    in_flight: AtomicUsize,
    delivered: AtomicU64,
    failed: AtomicU64,
    attempts_failed: AtomicU64,
    /// The client for its current `postback_url` (rebuilt when it changes).
    client: Mutex<Option<(String, Arc<BuyerClient>)>>,
}

/// The outbox's live state in an `Exchange`: counters, what is in flight,
/// and the stop flag a drain sets.
#[derive(Default)]
pub struct Outbox {
    pubs: RwLock<HashMap<String, Arc<PubState>>>,
    /// Outbox keys being delivered.
    delivering: claims::Claims<Vec<u8>>,
    /// Deliveries in flight, all publishers.
    running: AtomicUsize,
    /// Pending events in the store, recounted by the sender.
    pending: AtomicU64,
    /// Event batches made durable since start (`written`): a publisher
    /// whose range was found idle is looked at again when this moved.
    added: AtomicU64,
    stop: AtomicBool,
}

/// A publisher's postback numbers since start (`/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PostbackCounts {
    pub delivered: u64,
    pub failed: u64,
    pub attempts_failed: u64,
    pub in_flight: u64,
}

impl Outbox {
    fn state(&self, publisher: &str) -> Arc<PubState> {
        if let Some(s) = self.pubs.read().get(publisher) {
            return Arc::clone(s);
        }
        let mut map = self.pubs.write();
        // Bounded: reloads may rename publishers; forget idle old ones.
        if map.len() >= 2 * limits::PUBLISHERS_MAX {
            map.retain(|_, s| s.in_flight.load(Ordering::Relaxed) > 0);
        }
        Arc::clone(map.entry(publisher.to_string()).or_default())
    }

    /// Pending events (recounted about once a second by the sender).
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// `publisher`'s counters since start.
    pub fn counts(&self, publisher: &str) -> PostbackCounts {
        let Some(s) = self.pubs.read().get(publisher).cloned() else {
            return PostbackCounts::default();
        };
        PostbackCounts {
            delivered: s.delivered.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            attempts_failed: s.attempts_failed.load(Ordering::Relaxed),
            in_flight: s.in_flight.load(Ordering::Relaxed) as u64,
        }
    }
}

impl Exchange {
    /// The postback outbox's state and counters.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Stops the postback sender (a drain, before the store closes) and
    /// waits up to `wait` for deliveries in flight; returns how many are
    /// still running (their events stay pending and go again after a
    /// restart).
    pub fn stop_postbacks(&self, wait: Duration) -> usize {
        self.outbox.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + wait;
        loop {
            let n = self.outbox.running.load(Ordering::SeqCst);
            if n == 0 || Instant::now() >= deadline {
                return n;
            }
            crate::sync::sleep(Duration::from_millis(limits::SERVER_WAIT_IDLE_POLL_MS));
        }
    }
}

/// Starts the sender thread. It holds the exchange weakly and ends when
/// the exchange is gone or `stop_postbacks` was called.
pub fn spawn_sender(ex: &Arc<Exchange>) {
    let weak: Weak<Exchange> = Arc::downgrade(ex);
    let spawned = std::thread::Builder::new()
        .name("leadx-postbacks".into())
        .spawn(move || {
            let mut recounted: Option<Instant> = None;
            loop {
                // own thread: the postback sender's poll
                std::thread::sleep(Duration::from_millis(limits::POSTBACK_POLL_MS));
                let Some(ex) = weak.upgrade() else { return };
                if ex.outbox.stop.load(Ordering::SeqCst) {
                    return;
                }
                // Once a second: recount, and look at every publisher (a
                // kept sale's event, recorded later by `outcomes`, is found
                // here).
                let full = recounted.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                if full {
                    recount(&ex);
                    recounted = Some(Instant::now());
                }
                tick(&ex, full);
            }
        });
    if let Err(e) = spawned {
        log::error!(target: "leadx::postbacks", "cannot start the postback sender; events stay in the outbox error=\"{e}\"");
    }
}

fn recount(ex: &Exchange) {
    if let Ok(n) = ex
        .store
        .count_prefix_applied(Tree::Outbox, &keys::outbox_pending_prefix())
    {
        ex.outbox.pending.store(n, Ordering::Relaxed);
    }
}

/// One look at every publisher's due events; starts a delivery for each
/// one that has a free slot. Runs on the sender thread (client building
/// resolves DNS). A publisher found with nothing due is skipped until its
/// next event's due time, an `add`, or the next `full` look, so an idle
/// outbox costs no store reads.
fn tick(ex: &Arc<Exchange>, full: bool) {
    let rt = ex.runtime();
    let per = rt.config.postbacks.per_publisher_max;
    let now = ex.now_ms();
    let added = ex.outbox.added.load(Ordering::SeqCst);
    for p in &rt.config.publishers {
        let Some(url) = &p.postback_url else { continue };
        let st = ex.outbox.state(&p.id);
        let busy = st.in_flight.load(Ordering::SeqCst);
        if busy >= per {
            continue;
        }
        let idle = st.seen_added.load(Ordering::SeqCst) == added
            && now < st.idle_until.load(Ordering::SeqCst);
        if idle && !full {
            continue;
        }
        let (from, to) = keys::outbox_due_range(&p.id, now);
        // Events in flight are still stored under their key: read past
        // them. Applied data only: a poll must not force a flush, and every
        // outbox write is durable (so applied) before its claim drops.
        let rows = match ex.store.scan_range_applied(Tree::Outbox, &from, &to, per) {
            Ok(rows) => rows,
            Err(_) => return,
        };
        let next = if rows.is_empty() && busy == 0 {
            next_due(ex, &p.id)
        } else {
            // Due now, or in flight (whose outcome moves it): look again.
            Some(0)
        };
        st.idle_until
            .store(next.unwrap_or(u64::MAX), Ordering::SeqCst);
        st.seen_added.store(added, Ordering::SeqCst);
        let mut free = per - busy;
        for (key, value) in rows {
            if free == 0 {
                break;
            }
            let Some(claim) = ex.outbox.delivering.claim(key.clone()) else {
                continue;
            };
            let entry = match records::decode_outbox(&value) {
                Ok(e) => e,
                Err(e) => {
                    log::error!(target: "leadx::postbacks", "outbox entry unreadable, moved aside publisher={} error=\"{e}\"", p.id);
                    let mut batch = Batch::default();
                    batch.remove(Tree::Outbox, key.clone());
                    let mut aside = key.clone();
                    aside[0] = 0xFF;
                    batch.insert(Tree::Outbox, aside, value);
                    let _ = ex.store.write(batch);
                    continue;
                }
            };
            let Some(client) = client_for(&st, url, per) else {
                // Could not build a client (DNS): a failed attempt.
                settle(ex, &rt, &st, key, entry, Err("resolve".into()));
                drop(claim);
                continue;
            };
            free -= 1;
            st.in_flight.fetch_add(1, Ordering::SeqCst);
            ex.outbox.running.fetch_add(1, Ordering::SeqCst);
            let signing = p.signing_secret.as_ref().map(|s| s.key().clone());
            let (ex2, rt2, st2, target) = (
                Arc::clone(ex),
                Arc::clone(&rt),
                Arc::clone(&st),
                url.target.clone(),
            );
            crate::rt::spawn(move || {
                let result = deliver(&ex2, &rt2, &client, &target, signing.as_ref(), &entry);
                settle(&ex2, &rt2, &st2, key, entry, result);
                st2.in_flight.fetch_sub(1, Ordering::SeqCst);
                ex2.outbox.running.fetch_sub(1, Ordering::SeqCst);
                drop(claim);
            });
        }
    }
}

/// When `publisher`'s first pending event is due (`None`: none pending;
/// `Some(0)` when unknown, so it is looked at again).
fn next_due(ex: &Exchange, publisher: &str) -> Option<u64> {
    let (from, _) = keys::outbox_due_range(publisher, 0);
    let end = keys::outbox_pending_end(publisher);
    match ex.store.scan_range_applied(Tree::Outbox, &from, &end, 1) {
        Ok(rows) => rows
            .first()
            .map(|(k, _)| keys::parse_outbox_due(publisher, k).unwrap_or(0)),
        Err(_) => Some(0),
    }
}

/// The client for `url`, built (and DNS resolved) on the sender thread
/// the first time and whenever the URL changes.
fn client_for(st: &PubState, url: &Url, per: usize) -> Option<Arc<BuyerClient>> {
    let text = format!("{}|{}", url.authority(), per);
    if let Some((t, c)) = st.client.lock().as_ref() {
        if *t == text {
            return Some(Arc::clone(c));
        }
    }
    let opts = ClientOptions {
        connections_max: per,
        idle_max: per,
        response_bytes_max: limits::POSTBACK_RESPONSE_BYTES_MAX,
        ..ClientOptions::default()
    };
    let client = Arc::new(BuyerClient::new(url, opts).ok()?);
    *st.client.lock() = Some((text, Arc::clone(&client)));
    Some(client)
}

/// One attempt: `Ok` on a 2xx, else why not.
fn deliver(
    ex: &Exchange,
    rt: &Runtime,
    client: &BuyerClient,
    target: &str,
    signing: Option<&crate::privacy::signature::SigningKey>,
    entry: &OutboxEntry,
) -> Result<(), String> {
    let mut headers = Vec::with_capacity(1);
    if let Some(key) = signing {
        let t_s = ex.now_ms() / 1000;
        headers.push((
            "Leadx-Signature".to_string(),
            key.sign(t_s, entry.body.as_bytes()),
        ));
    }
    let deadline = Instant::now() + Duration::from_millis(rt.config.postbacks.timeout_ms);
    match client.post(
        target,
        &headers,
        "application/json",
        entry.body.as_bytes(),
        deadline,
    ) {
        Ok(r) if (200..300).contains(&r.status) => Ok(()),
        Ok(r) => Err(format!("http_{}", r.status)),
        Err(e) => Err(e.reason().to_string()),
    }
}

/// Records an attempt's outcome: delivered → removed; failed → due again
/// after the back-off, or moved to the failed range once
/// `give_up_after_s` have passed since the event. If the write fails, the
/// event is simply sent again (at least once).
fn settle(
    ex: &Exchange,
    rt: &Runtime,
    st: &PubState,
    key: Vec<u8>,
    mut entry: OutboxEntry,
    result: Result<(), String>,
) {
    let mut batch = Batch::default();
    batch.remove(Tree::Outbox, key);
    match result {
        Ok(()) => {
            st.delivered.fetch_add(1, Ordering::Relaxed);
            log::debug!(target: "leadx::postbacks", "postback delivered publisher={} event_id={} attempts={}", entry.publisher, entry.event_id, entry.attempts + 1);
        }
        Err(why) => {
            st.attempts_failed.fetch_add(1, Ordering::Relaxed);
            entry.attempts = entry.attempts.saturating_add(1);
            entry.last_error = Some(why);
            let cfg = &rt.config.postbacks;
            let now = ex.now_ms();
            let give_up_at = entry
                .created_ms
                .saturating_add(cfg.give_up_after_s.saturating_mul(1000));
            if now >= give_up_at {
                st.failed.fetch_add(1, Ordering::Relaxed);
                log::warn!(target: "leadx::postbacks", "postback given up publisher={} event_id={} attempts={} last_error={}", entry.publisher, entry.event_id, entry.attempts, entry.last_error.as_deref().unwrap_or(""));
                batch.insert(
                    Tree::Outbox,
                    keys::outbox_failed(&entry.publisher, &entry.event_id),
                    records::encode_outbox(&entry),
                );
            } else {
                let due = now
                    + backoff_ms(
                        cfg.retry_base_ms,
                        cfg.retry_max_ms,
                        entry.attempts,
                        jitter(),
                    );
                batch.insert(
                    Tree::Outbox,
                    keys::outbox_pending(&entry.publisher, due.min(give_up_at), &entry.event_id),
                    records::encode_outbox(&entry),
                );
            }
        }
    }
    // Durable before the claim drops, so the next poll (which reads
    // applied data) never sees a delivered event again; joins the writer's
    // group commit with the sales.
    if let Err(e) = ex.store.write_durable(batch) {
        log::warn!(target: "leadx::postbacks", "postback outcome not written; the event goes again publisher={} event_id={} error=\"{e}\"", entry.publisher, entry.event_id);
    }
}

/// The wait after the `attempts`-th failed attempt: `base × 2^(attempts−1)`
/// capped at `max`, then a point in its upper half picked by `jitter`
/// (uniform in 0..=u64::MAX), so retries of many events spread out.
pub fn backoff_ms(base: u64, max: u64, attempts: u32, jitter: u64) -> u64 {
    let shift = attempts.saturating_sub(1).min(40);
    let full = base.saturating_mul(1u64 << shift).min(max);
    let half = full / 2;
    half + jitter % (full - half + 1)
}

fn jitter() -> u64 {
    let mut b = [0u8; 8];
    // The OS's randomness failing only removes the spread.
    let _ = getrandom::getrandom(&mut b);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_within_the_upper_half() {
        for (attempts, full) in [
            (1, 1_000),
            (2, 2_000),
            (3, 4_000),
            (10, 512_000),
            (11, 600_000),
            (60, 600_000),
        ] {
            assert_eq!(backoff_ms(1_000, 600_000, attempts, 0), full / 2);
            let top = full - full / 2;
            assert_eq!(backoff_ms(1_000, 600_000, attempts, top), full);
            for j in [1, 7, 12_345, u64::MAX] {
                let d = backoff_ms(1_000, 600_000, attempts, j);
                assert!((full / 2..=full).contains(&d), "attempt {attempts}: {d}");
            }
        }
    }
}
