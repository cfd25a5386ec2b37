//! Caps and budgets as atomic reservations (contract §10).
//!
//! Two generations live here while the exchange moves over: the v1
//! [`CapCounter`] (accepted leads per UTC day, what `fanout` and `sale` use
//! today) and the [`Ledger`] of §10 — hourly, daily, weekly and monthly
//! counts and daily, weekly and monthly budgets (sums of accepted prices,
//! in cents), each in the buyer's time zone. Both share the rules below.
//!
//! Daily caps as atomic reservations. A post reserves a unit of the buyer's
//! cap *before* calling it and releases it if the buyer refuses, so a cap of
//! 5 with 50 concurrent posts sells exactly 5 — no check-then-act window.
//!
//! The counter survives reloads (it lives in the book, keyed by buyer id,
//! not in the config) and restarts (each sale writes a key under the buyer's
//! day in the store). A buyer's counter is counted from the store when a
//! runtime that names it is built — at start-up or on the reload thread —
//! never on a request: counting waits for the store writer, and a wait
//! under the book's lock once hung every worker (issue #7). Every buyer has
//! a counter, capped or not, and every live sale takes a unit, so a cap
//! added by a reload starts from the true count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::sync::Mutex;

/// Today's UTC day number (days since 1970-01-01).
pub fn utc_day(now_ms: u64) -> u32 {
    (now_ms / 86_400_000) as u32
}

/// One buyer's sales on one UTC day, packed as `day << 32 | count` so a
/// reservation is one compare-and-swap and a new day resets the count.
#[derive(Debug)]
pub struct CapCounter {
    state: AtomicU64,
}

fn pack(day: u32, count: u32) -> u64 {
    (u64::from(day) << 32) | u64::from(count)
}

fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

impl CapCounter {
    pub fn new(day: u32, count: u32) -> CapCounter {
        CapCounter {
            state: AtomicU64::new(pack(day, count)),
        }
    }

    /// Takes one unit of `cap` on `day`; false when the cap is used up.
    pub fn reserve(&self, day: u32, cap: u32) -> bool {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            let (d, count) = unpack(cur);
            let count = if d == day { count } else { 0 };
            if count >= cap {
                return false;
            }
            match self.state.compare_exchange_weak(
                cur,
                pack(day, count + 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Gives back a unit reserved on `day` (the buyer did not buy). A unit
    /// of a day that has passed is not given back to the new day.
    pub fn release(&self, day: u32) {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            let (d, count) = unpack(cur);
            if d != day || count == 0 {
                return;
            }
            match self.state.compare_exchange_weak(
                cur,
                pack(day, count - 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Units used (reserved or sold) on `day`.
    pub fn used(&self, day: u32) -> u32 {
        let (d, count) = unpack(self.state.load(Ordering::Acquire));
        if d == day {
            count
        } else {
            0
        }
    }
}

/// Counters by buyer id, kept for the life of the process (a buyer removed
/// by one reload and added back by another keeps its count, including the
/// sales that posts still running on the old config make meanwhile).
#[derive(Default)]
pub struct CapBook {
    counters: Mutex<HashMap<String, Arc<CapCounter>>>,
}

impl CapBook {
    /// The counters of `buyers`, in order: the live one of a buyer already
    /// known, else a new one holding `count(buyer)` — its sales on `day`,
    /// counted in the store. Blocking: call it where a runtime is built.
    /// The lock is held for map look-ups and inserts only; counting runs
    /// without it, and when two builds count the same new buyer at once the
    /// first counter published wins.
    pub fn attach<E>(
        &self,
        buyers: &[&str],
        day: u32,
        mut count: impl FnMut(&str) -> Result<u32, E>,
    ) -> Result<Vec<Arc<CapCounter>>, E> {
        let known: Vec<Option<Arc<CapCounter>>> = {
            let map = self.counters.lock();
            buyers.iter().map(|b| map.get(*b).cloned()).collect()
        };
        let mut fresh = Vec::with_capacity(buyers.len());
        for (b, k) in buyers.iter().zip(&known) {
            fresh.push(match k {
                Some(_) => None,
                None => Some(Arc::new(CapCounter::new(day, count(b)?))),
            });
        }
        let mut map = self.counters.lock();
        Ok(buyers
            .iter()
            .zip(known.into_iter().zip(fresh))
            .map(|(b, (known, fresh))| match (known, fresh) {
                (Some(c), _) => c,
                (None, fresh) => {
                    let c = fresh.expect("counted above");
                    map.entry((*b).to_string()).or_insert(c).clone()
                }
            })
            .collect())
    }

    /// Drops `buyer`'s counter, so the next use loads it again (after a
    /// load that could not read the store).
    pub fn forget(&self, buyer: &str) {
        self.counters.lock().remove(buyer);
    }
}

#[path = "caps_ledger.rs"]
mod ledger;
pub use ledger::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_stops_at_the_cap_and_release_frees_a_unit() {
        let c = CapCounter::new(10, 0);
        assert!(c.reserve(10, 2) && c.reserve(10, 2));
        assert!(!c.reserve(10, 2));
        c.release(10);
        assert!(c.reserve(10, 2));
        assert_eq!(c.used(10), 2);
    }

    #[test]
    fn a_new_day_starts_from_zero_and_old_releases_do_not_leak_into_it() {
        let c = CapCounter::new(10, 5);
        assert!(!c.reserve(10, 5));
        assert!(c.reserve(11, 5));
        c.release(10);
        assert_eq!(c.used(11), 1);
        assert_eq!(c.used(10), 0);
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_cap() {
        let c = Arc::new(CapCounter::new(1, 0));
        let won = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (c, won) = (c.clone(), won.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        if c.reserve(1, 5) {
                            won.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(won.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn attach_counts_new_buyers_once_and_keeps_live_counters() {
        let book = CapBook::default();
        let mut counted = Vec::new();
        let first = book
            .attach::<()>(&["a", "b"], 7, |b| {
                counted.push(b.to_string());
                Ok(3)
            })
            .unwrap();
        assert!(first[0].reserve(7, 10));
        assert_eq!(first[0].used(7), 4);
        let second = book
            .attach::<()>(&["b", "a", "c"], 7, |b| {
                counted.push(b.to_string());
                Ok(1)
            })
            .unwrap();
        assert_eq!(counted, ["a", "b", "c"]);
        assert!(Arc::ptr_eq(&first[0], &second[1]) && Arc::ptr_eq(&first[1], &second[0]));
        assert_eq!((second[1].used(7), second[2].used(7)), (4, 1));
    }

    #[test]
    fn a_failed_count_attaches_nothing() {
        let book = CapBook::default();
        assert_eq!(book.attach(&["a"], 1, |_| Err("disk")).unwrap_err(), "disk");
        let c = book.attach::<()>(&["a"], 1, |_| Ok(2)).unwrap();
        assert_eq!(c[0].used(1), 2);
    }

    /// Model check: random reserve/release/day-change sequences against a
    /// plain counter.
    #[test]
    fn matches_a_simple_model() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let c = CapCounter::new(0, 0);
        let (mut day, mut model, cap) = (0u32, 0u32, 7u32);
        for _ in 0..10_000 {
            match next() % 10 {
                0 => {
                    day += 1;
                    model = 0;
                }
                1..=3 => {
                    if model > 0 {
                        c.release(day);
                        model -= 1;
                    }
                }
                _ => {
                    let ok = c.reserve(day, cap);
                    assert_eq!(ok, model < cap);
                    model += u32::from(ok);
                }
            }
            assert_eq!(c.used(day), model);
        }
    }
}
