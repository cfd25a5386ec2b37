//! Admission control: overload is shed, not queued (issue #7).
//!
//! Every ping auction and every buyer call runs under a permit. Permits are
//! counted with one atomic compare-and-swap each, no lock and no wait: a
//! request that finds none left is answered 503 `overloaded` with
//! `Retry-After` at once, instead of joining a queue whose every member then
//! misses its deadline. A ping whose deadline is mostly gone before its
//! auction can start is shed the same way. Part of a request's wait is
//! invisible to its `received_at`: with the CPU saturated, its bytes sit in
//! the socket and its coroutine in may's run queue before it is read. A
//! probe coroutine measures that scheduling lag (how late a coroutine runs
//! after its timer fired), and the deadline check counts it as waited.
//!
//! Two budgets, both from `[server]` and read per request (a reload applies
//! at once; permits taken under the old limits are returned as usual):
//! `auctions_in_flight_max` and `buyer_calls_in_flight_max`. Pings and
//! posts share the buyer-call budget, but pings may use only
//! `Server::ping_calls_in_flight_max` of it: the rest is kept for posts, so
//! a flood of pings cannot starve the sales they exist for. A ping takes a
//! permit for each buyer it calls, all or none (calling some buyers would
//! change who wins). A post takes one for its whole failover walk, before
//! anything about it is durable, so a post refused for load answers 503 and
//! a retry can still sell it — it never skips to a lower bidder or settles
//! the lead `unsold` because of load.
//!
//! A permit is a guard: it is returned when dropped, on every path — answer,
//! error, time-out, and the unwinding of a panicking buyer-call coroutine.
//! The in-flight counts here are per `Exchange` (tests read them); the same
//! moves are mirrored on the process-wide gauges of `/metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Server;
use crate::limits;
use crate::metrics::{self, ShedReason};

/// What a permit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Auction,
    PingCall,
    PostCall,
}

/// The in-flight counts of one exchange.
#[derive(Debug, Default)]
pub struct Admission {
    auctions: AtomicUsize,
    /// Ping and post calls together: the one shared budget.
    buyer_calls: AtomicUsize,
    /// The post calls among them (for the gauge and tests).
    post_calls: AtomicUsize,
    /// Recent scheduling lag of the may workers, µs (see `note_lag`).
    sched_lag_us: AtomicU64,
}

/// The two budgets, as the running config gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    pub auctions: usize,
    pub buyer_calls: usize,
    /// The pings' share of `buyer_calls`.
    pub ping_calls: usize,
}

impl Budgets {
    pub fn of(server: &Server) -> Budgets {
        Budgets {
            auctions: server.auctions_in_flight_max,
            buyer_calls: server.buyer_calls_in_flight_max,
            ping_calls: server.ping_calls_in_flight_max(),
        }
    }
}

/// One unit of a budget, given back when dropped.
#[must_use = "the permit is given back when dropped"]
#[derive(Debug)]
pub struct Permit {
    adm: Arc<Admission>,
    kind: Kind,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.adm.give_back(self.kind, 1);
    }
}

/// Takes `n` from `count` if that keeps it at or under `limit`; one CAS
/// loop, never a wait.
fn take(count: &AtomicUsize, n: usize, limit: usize) -> bool {
    let mut cur = count.load(Ordering::Relaxed);
    loop {
        match cur.checked_add(n) {
            Some(next) if next <= limit => {
                match count.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => return true,
                    Err(seen) => cur = seen,
                }
            }
            _ => return false,
        }
    }
}

/// True when less than `limits::SHED_DEADLINE_LEFT_PCT_MIN` per cent of a
/// ping's deadline is left at `now`.
pub fn deadline_mostly_gone(started: Instant, ping_timeout_ms: u64, now: Instant) -> bool {
    let waited = now.saturating_duration_since(started);
    let total = Duration::from_millis(ping_timeout_ms);
    let left = total.saturating_sub(waited);
    left.as_micros() * 100 < total.as_micros() * u128::from(limits::SHED_DEADLINE_LEFT_PCT_MIN)
}

impl Admission {
    pub fn new() -> Arc<Admission> {
        Arc::new(Admission::default())
    }

    /// Admits a ping auction that started (its request arrived) at
    /// `started`: refused when its deadline is mostly gone or
    /// `budgets.auctions` auctions are running.
    pub fn auction(
        self: &Arc<Self>,
        budgets: &Budgets,
        started: Instant,
        ping_timeout_ms: u64,
    ) -> Result<Permit, ShedReason> {
        // What a request waited before leadx read it (in socket buffers and
        // may's run queue while the CPU was saturated) is invisible to
        // `started`; the recent scheduling lag stands in for it.
        let lag = Duration::from_micros(self.sched_lag_us.load(Ordering::Relaxed));
        let seen_at = started.checked_sub(lag).unwrap_or(started);
        if deadline_mostly_gone(seen_at, ping_timeout_ms, Instant::now()) {
            return Err(shed(ShedReason::Deadline));
        }
        if !take(&self.auctions, 1, budgets.auctions) {
            return Err(shed(ShedReason::Auctions));
        }
        Ok(self.permit(Kind::Auction))
    }

    /// One permit per buyer a ping calls, all of them or none.
    pub fn ping_calls(
        self: &Arc<Self>,
        budgets: &Budgets,
        n: usize,
    ) -> Result<Vec<Permit>, ShedReason> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if !take(&self.buyer_calls, n, budgets.ping_calls) {
            return Err(shed(ShedReason::PingCalls));
        }
        Ok((0..n).map(|_| self.permit(Kind::PingCall)).collect())
    }

    /// The permit a post holds while it offers the lead to its bidders in
    /// turn (one call at a time). Posts may use the whole budget.
    pub fn post_call(self: &Arc<Self>, budgets: &Budgets) -> Result<Permit, ShedReason> {
        if !take(&self.buyer_calls, 1, budgets.buyer_calls) {
            return Err(shed(ShedReason::PostCalls));
        }
        self.post_calls.fetch_add(1, Ordering::Relaxed);
        Ok(self.permit(Kind::PostCall))
    }

    /// Records one scheduling-lag sample: how much later than asked a
    /// coroutine ran. The estimate is a moving average (each sample counts
    /// an eighth), so one stall of the whole process (a busy host) barely
    /// moves it, while a saturated CPU shows within a few dozen samples.
    pub fn note_lag(&self, sample: Duration) {
        let us = u64::try_from(sample.as_micros()).unwrap_or(u64::MAX / 2);
        let _ = self
            .sched_lag_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if us >= old {
                    old + (us - old) / 8
                } else {
                    old - (old - us) / 8
                })
            });
    }

    /// The current scheduling-lag estimate.
    pub fn sched_lag(&self) -> Duration {
        Duration::from_micros(self.sched_lag_us.load(Ordering::Relaxed))
    }

    pub fn auctions_in_flight(&self) -> usize {
        self.auctions.load(Ordering::Acquire)
    }

    /// Ping and post calls holding a permit.
    pub fn buyer_calls_in_flight(&self) -> usize {
        self.buyer_calls.load(Ordering::Acquire)
    }

    pub fn post_calls_in_flight(&self) -> usize {
        self.post_calls.load(Ordering::Acquire)
    }

    /// Wraps a unit already taken from its count.
    fn permit(self: &Arc<Self>, kind: Kind) -> Permit {
        gauge(kind).fetch_add(1, Ordering::Relaxed);
        Permit {
            adm: Arc::clone(self),
            kind,
        }
    }

    fn give_back(&self, kind: Kind, n: usize) {
        let count = match kind {
            Kind::Auction => &self.auctions,
            Kind::PingCall => &self.buyer_calls,
            Kind::PostCall => {
                self.post_calls.fetch_sub(n, Ordering::Relaxed);
                &self.buyer_calls
            }
        };
        let before = count.fetch_sub(n, Ordering::AcqRel);
        // A permit given back twice would let the budget be exceeded for
        // good: crash (systemd restarts) rather than run unbounded.
        assert!(before >= n, "admission: more permits returned than taken");
        gauge(kind).fetch_sub(n as i64, Ordering::Relaxed);
    }
}

/// Starts the coroutine that measures scheduling lag for `adm`: it sleeps
/// `limits::SCHED_LAG_PROBE_MS` at a time and notes how late it woke. It
/// ends when the admission (its exchange) is gone.
pub fn spawn_lag_probe(adm: &Arc<Admission>) {
    let weak = Arc::downgrade(adm);
    let period = Duration::from_millis(limits::SCHED_LAG_PROBE_MS);
    crate::rt::spawn(move || loop {
        let t0 = Instant::now();
        crate::sync::sleep(period);
        let late = t0.elapsed().saturating_sub(period);
        match weak.upgrade() {
            Some(adm) => adm.note_lag(late),
            None => return,
        }
    });
}

fn gauge(kind: Kind) -> &'static AtomicI64 {
    let g = metrics::global().gauges();
    match kind {
        Kind::Auction => &g.auctions_in_flight,
        Kind::PingCall => &g.ping_calls_in_flight,
        Kind::PostCall => &g.post_calls_in_flight,
    }
}

fn shed(reason: ShedReason) -> ShedReason {
    metrics::global().shed(reason);
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(auctions: usize, buyer_calls: usize, ping_calls: usize) -> Budgets {
        Budgets {
            auctions,
            buyer_calls,
            ping_calls,
        }
    }

    #[test]
    fn auctions_past_the_limit_are_shed_and_permits_come_back() {
        let adm = Admission::new();
        let b = budgets(2, 8, 6);
        let now = Instant::now();
        let p1 = adm.auction(&b, now, 300).unwrap();
        let _p2 = adm.auction(&b, now, 300).unwrap();
        let before = metrics::global().shed_count(ShedReason::Auctions);
        assert_eq!(adm.auction(&b, now, 300).unwrap_err(), ShedReason::Auctions);
        assert!(metrics::global().shed_count(ShedReason::Auctions) > before);
        assert_eq!(adm.auctions_in_flight(), 2);
        drop(p1);
        assert_eq!(adm.auctions_in_flight(), 1);
        assert!(
            adm.auction(&b, now, 300).is_ok(),
            "a returned permit is usable again"
        );
    }

    #[test]
    fn a_ping_takes_all_its_calls_or_none() {
        let adm = Admission::new();
        let b = budgets(10, 8, 6);
        let four = adm.ping_calls(&b, 4).unwrap();
        assert_eq!(adm.buyer_calls_in_flight(), 4);
        assert_eq!(adm.ping_calls(&b, 3).unwrap_err(), ShedReason::PingCalls);
        assert_eq!(
            adm.buyer_calls_in_flight(),
            4,
            "a refused ping takes nothing"
        );
        let two = adm.ping_calls(&b, 2).unwrap();
        assert_eq!(adm.buyer_calls_in_flight(), 6);
        drop(four);
        drop(two);
        assert_eq!(adm.buyer_calls_in_flight(), 0);
        assert!(adm.ping_calls(&b, 0).unwrap().is_empty());
    }

    /// Issue #7: pings cannot starve posts — the budget past the pings'
    /// share is for posts only, and posts may use all of it.
    #[test]
    fn posts_keep_their_reserve_when_pings_use_their_whole_share() {
        let adm = Admission::new();
        let b = budgets(10, 8, 6);
        let _pings = adm.ping_calls(&b, 6).unwrap();
        assert_eq!(adm.ping_calls(&b, 1).unwrap_err(), ShedReason::PingCalls);
        let p1 = adm.post_call(&b).unwrap();
        let _p2 = adm.post_call(&b).unwrap();
        assert_eq!(adm.post_calls_in_flight(), 2);
        assert_eq!(adm.post_call(&b).unwrap_err(), ShedReason::PostCalls);
        drop(p1);
        assert_eq!(
            (adm.post_calls_in_flight(), adm.buyer_calls_in_flight()),
            (1, 7)
        );
    }

    #[test]
    fn a_ping_with_its_deadline_mostly_gone_is_shed_before_taking_a_permit() {
        let t0 = Instant::now();
        assert!(!deadline_mostly_gone(t0, 300, t0));
        assert!(
            !deadline_mostly_gone(t0, 300, t0 + Duration::from_millis(150)),
            "exactly half left still runs"
        );
        assert!(deadline_mostly_gone(
            t0,
            300,
            t0 + Duration::from_millis(151)
        ));
        assert!(deadline_mostly_gone(t0, 300, t0 + Duration::from_secs(5)));
        let adm = Admission::new();
        let stale = Instant::now()
            .checked_sub(Duration::from_millis(250))
            .expect("the clock is past 250 ms");
        assert_eq!(
            adm.auction(&budgets(4, 8, 6), stale, 300).unwrap_err(),
            ShedReason::Deadline
        );
        assert_eq!(adm.auctions_in_flight(), 0);
    }

    /// A request that waited unseen (the CPU saturated before leadx read
    /// it) is shed on the scheduling-lag estimate, which decays once the
    /// lag is gone.
    #[test]
    fn a_saturated_scheduler_counts_against_the_deadline() {
        let adm = Admission::new();
        let b = budgets(4, 8, 6);
        adm.note_lag(Duration::from_millis(800));
        assert_eq!(
            adm.sched_lag(),
            Duration::from_millis(100),
            "one stall counts an eighth"
        );
        assert!(adm.auction(&b, Instant::now(), 300).is_ok());
        for _ in 0..40 {
            adm.note_lag(Duration::from_millis(200));
        }
        assert!(adm.sched_lag() > Duration::from_millis(190));
        assert_eq!(
            adm.auction(&b, Instant::now(), 300).unwrap_err(),
            ShedReason::Deadline
        );
        for _ in 0..60 {
            adm.note_lag(Duration::ZERO);
        }
        assert!(
            adm.sched_lag() < Duration::from_millis(1),
            "{:?}",
            adm.sched_lag()
        );
        assert!(adm.auction(&b, Instant::now(), 300).is_ok());
    }

    #[test]
    fn the_lag_probe_runs_and_stops_with_its_admission() {
        let adm = Admission::new();
        spawn_lag_probe(&adm);
        let weak = Arc::downgrade(&adm);
        std::thread::sleep(Duration::from_millis(30));
        drop(adm);
        // The probe holds only a weak reference between samples: nothing
        // keeps the admission alive once its exchange is gone.
        let t0 = Instant::now();
        while weak.upgrade().is_some() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn permits_come_back_when_their_holder_panics() {
        let adm = Admission::new();
        let b = budgets(4, 8, 6);
        let calls = adm.ping_calls(&b, 3).unwrap();
        let post = adm.post_call(&b).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = (calls, post);
            panic!("a buyer call blew up");
        }));
        assert!(r.is_err());
        assert_eq!(
            (adm.buyer_calls_in_flight(), adm.post_calls_in_flight()),
            (0, 0)
        );
    }

    /// The permits of a ping's calls live in the calls' coroutines; one
    /// that panics on a may worker still gives its permit back.
    #[test]
    fn a_panicking_buyer_call_coroutine_gives_its_permit_back() {
        let adm = Admission::new();
        let b = budgets(4, 8, 6);
        let mut calls = adm.ping_calls(&b, 2).unwrap();
        let one = calls.pop().unwrap();
        let h = crate::rt::spawn(move || {
            let _permit = one;
            panic!("a buyer call blew up");
        });
        assert!(h.join().is_err());
        assert_eq!(adm.buyer_calls_in_flight(), 1);
        drop(calls);
        assert_eq!(adm.buyer_calls_in_flight(), 0);
    }

    #[test]
    fn concurrent_takers_never_exceed_the_limit() {
        let adm = Admission::new();
        let b = budgets(16, 64, 48);
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (adm, peak) = (adm.clone(), peak.clone());
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        if let Ok(p) = adm.ping_calls(&b, 1 + i % 5) {
                            peak.fetch_max(adm.buyer_calls_in_flight(), Ordering::Relaxed);
                            drop(p);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::Relaxed) <= 48);
        assert_eq!(adm.buyer_calls_in_flight(), 0);
    }
}
