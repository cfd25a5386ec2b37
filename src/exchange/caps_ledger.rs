// The §10 ledger: part of `exchange::caps` (see its `//!`).
//
// A buyer's `Ledger` holds seven cells — accepted leads this hour, day,
// week and month, and money spent this day, week and month — each one
// `AtomicU64` packing the period it counts (24 bits of the period's start
// minute) with its value (40 bits). A reservation takes a unit (and the
// price) from every cell by compare-and-swap, each cell refusing to pass
// its own limit, and gives back what it took if a later cell refuses: so
// no cell is ever over its cap or budget, whatever the interleaving. A
// rollback can make a concurrent reservation see a cell fuller than it
// ends up and refuse; that errs on the safe side and only at the limit.
//
// A cell moves forward only: a reservation whose period is older than the
// cell's (its `now` read just before a boundary another thread crossed)
// is refused rather than reset the newer period's count.
//
// Counted from the store (`keys::buyer_sale`, stamped with the instant the
// unit was reserved) when a runtime is built, never on a request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use jiff::tz::TimeZone;

use crate::config::Caps;
use crate::money::Cents;
use crate::records::keys;
use crate::routing::period::{Period, Periods};
use crate::routing::Reason;
use crate::store::{Store, StoreError, Tree};
use crate::sync::Mutex;

const KEY_BITS: u32 = 24;
const VALUE_BITS: u32 = 40;
const VALUE_MAX: u64 = (1 << VALUE_BITS) - 1;
const KEY_MASK: u32 = (1 << KEY_BITS) - 1;

/// The seven cells, in the order a reservation takes them.
const CELLS: [(Period, bool, Reason); 7] = [
    (Period::Hour, false, Reason::CapHourly),
    (Period::Day, false, Reason::CapDaily),
    (Period::Week, false, Reason::CapWeekly),
    (Period::Month, false, Reason::CapMonthly),
    (Period::Day, true, Reason::CapDailyBudget),
    (Period::Week, true, Reason::CapWeeklyBudget),
    (Period::Month, true, Reason::CapMonthlyBudget),
];

fn limits(caps: &Caps) -> [Option<u64>; 7] {
    let n = |c: Option<u32>| c.map(u64::from);
    [
        n(caps.hourly),
        n(caps.daily),
        n(caps.weekly),
        n(caps.monthly),
        caps.daily_budget,
        caps.weekly_budget,
        caps.monthly_budget,
    ]
}

/// What `key`'s period is to the cell's: older periods are refused.
fn relation(cell_key: u32, key: u32) -> std::cmp::Ordering {
    let ahead = cell_key.wrapping_sub(key) & KEY_MASK;
    match ahead {
        0 => std::cmp::Ordering::Equal,
        a if a < (1 << (KEY_BITS - 1)) => std::cmp::Ordering::Less, // cell is newer
        _ => std::cmp::Ordering::Greater,
    }
}

#[derive(Debug, Default)]
struct Cell(AtomicU64);

fn pack(key: u32, value: u64) -> u64 {
    (u64::from(key & KEY_MASK) << VALUE_BITS) | value.min(VALUE_MAX)
}

fn unpack(v: u64) -> (u32, u64) {
    ((v >> VALUE_BITS) as u32, v & VALUE_MAX)
}

impl Cell {
    /// Adds `amount` in period `key` unless that passes `limit` (or `key`
    /// is older than the cell's period). Without a limit the value only
    /// counts, saturating.
    fn take(&self, key: u32, amount: u64, limit: Option<u64>) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let (k, v) = unpack(cur);
            let v = match relation(k, key & KEY_MASK) {
                std::cmp::Ordering::Equal => v,
                std::cmp::Ordering::Greater => 0,
                std::cmp::Ordering::Less => return false,
            };
            let next = v.saturating_add(amount);
            if limit.is_some_and(|l| next > l) {
                return false;
            }
            match self.0.compare_exchange_weak(
                cur,
                pack(key, next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Gives back `amount` taken in period `key`; nothing once the period
    /// has passed (it is not the new period's to get back).
    fn give_back(&self, key: u32, amount: u64) {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let (k, v) = unpack(cur);
            if k != key & KEY_MASK {
                return;
            }
            match self.0.compare_exchange_weak(
                cur,
                pack(key, v.saturating_sub(amount)),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    fn used(&self, key: u32) -> u64 {
        let (k, v) = unpack(self.0.load(Ordering::Acquire));
        if k == key & KEY_MASK {
            v
        } else {
            0
        }
    }
}

/// A buyer's counts and spend per period, in its zone: every buyer has
/// one, capped or not, so a cap added by a reload starts from the truth.
#[derive(Debug)]
pub struct Ledger {
    tz: TimeZone,
    cells: [Cell; 7],
    /// The periods of the last instant asked about (computing them takes
    /// time-zone arithmetic; they change once an hour).
    periods: ArcSwap<Periods>,
}

/// What a ledger holds for the current periods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub hourly: u64,
    pub daily: u64,
    pub weekly: u64,
    pub monthly: u64,
    pub daily_spent: Cents,
    pub weekly_spent: Cents,
    pub monthly_spent: Cents,
}

impl Ledger {
    /// A ledger in `tz` holding `sales` (`(at_ms, price)`, as stored) that
    /// fall in the periods of `now_ms`.
    pub fn new(tz: TimeZone, now_ms: u64, sales: &[(u64, Cents)]) -> Ledger {
        let p = Periods::at(&tz, now_ms);
        let cells: [Cell; 7] = Default::default();
        for (cell, &(period, money, _)) in cells.iter().zip(&CELLS) {
            let span = p.get(period);
            let sum: u64 = sales
                .iter()
                .filter(|(at, _)| span.contains(*at))
                .map(|&(_, price)| if money { price } else { 1 })
                .fold(0, u64::saturating_add);
            cell.0.store(pack(span.key(), sum), Ordering::Release);
        }
        Ledger {
            tz,
            cells,
            periods: ArcSwap::from_pointee(p),
        }
    }

    pub fn timezone(&self) -> &TimeZone {
        &self.tz
    }

    fn periods(&self, now_ms: u64) -> Periods {
        let cached = **self.periods.load();
        if cached.contains(now_ms) {
            return cached;
        }
        let fresh = Periods::at(&self.tz, now_ms);
        self.periods.store(Arc::new(fresh));
        fresh
    }

    /// The ping's question, without taking anything: is a cap already
    /// used up at `now_ms`, or would `price` (when known: a fixed-price
    /// buyer) pass a budget?
    pub fn check(&self, caps: &Caps, now_ms: u64, price: Option<Cents>) -> Result<(), Reason> {
        let p = self.periods(now_ms);
        for ((cell, &(period, money, why)), limit) in
            self.cells.iter().zip(&CELLS).zip(limits(caps))
        {
            let Some(limit) = limit else { continue };
            let used = cell.used(p.get(period).key());
            let next = if money {
                used + price.unwrap_or(0).max(1)
            } else {
                used + 1
            };
            if next > limit {
                return Err(why);
            }
        }
        Ok(())
    }

    /// Takes a unit of every count and `price` of every budget at
    /// `now_ms`, or nothing and the reason of the first limit in the way.
    /// The units come back when the reservation is dropped uncommitted.
    pub fn reserve(
        self: &Arc<Self>,
        caps: &Caps,
        now_ms: u64,
        price: Cents,
    ) -> Result<Reservation, Reason> {
        let p = self.periods(now_ms);
        let keys: [u32; 7] = CELLS.map(|(period, _, _)| p.get(period).key());
        let amounts: [u64; 7] = CELLS.map(|(_, money, _)| if money { price } else { 1 });
        for (i, limit) in limits(caps).into_iter().enumerate() {
            if !self.cells[i].take(keys[i], amounts[i], limit) {
                for j in 0..i {
                    self.cells[j].give_back(keys[j], amounts[j]);
                }
                return Err(CELLS[i].2);
            }
        }
        Ok(Reservation {
            ledger: self.clone(),
            keys,
            price,
            at_ms: now_ms,
            live: true,
        })
    }

    /// The counts and spend of the periods holding `now_ms`.
    pub fn usage(&self, now_ms: u64) -> Usage {
        let p = self.periods(now_ms);
        let u = |i: usize| self.cells[i].used(p.get(CELLS[i].0).key());
        Usage {
            hourly: u(0),
            daily: u(1),
            weekly: u(2),
            monthly: u(3),
            daily_spent: u(4),
            weekly_spent: u(5),
            monthly_spent: u(6),
        }
    }
}

/// Units taken for one post. Dropped without [`Reservation::commit`] (the
/// buyer refused, failed, or the post ended any other way), it gives them
/// back; committed, they stay sold.
#[derive(Debug)]
pub struct Reservation {
    ledger: Arc<Ledger>,
    keys: [u32; 7],
    price: Cents,
    at_ms: u64,
    live: bool,
}

impl Reservation {
    /// The instant the units were taken: the sale's store key carries it
    /// (`keys::buyer_sale(buyer, at_ms, lead_id)`), so a restart counts
    /// the sale in the same periods.
    pub fn at_ms(&self) -> u64 {
        self.at_ms
    }

    pub fn price(&self) -> Cents {
        self.price
    }

    /// The buyer accepted: the units stay taken. Returns the sale's store
    /// key and value, to go in the outcome batch.
    pub fn commit(mut self, buyer: &str, lead_id: &str) -> (Vec<u8>, Vec<u8>) {
        self.live = false;
        (
            keys::buyer_sale(buyer, self.at_ms, lead_id),
            keys::buyer_sale_value(self.price),
        )
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.live {
            for (i, &(_, money, _)) in CELLS.iter().enumerate() {
                let amount = if money { self.price } else { 1 };
                self.ledger.cells[i].give_back(self.keys[i], amount);
            }
        }
    }
}

/// Ledgers by buyer id, kept for the life of the process (a buyer removed
/// by one reload and added back by another keeps its count, including the
/// sales posts still running on the old config make meanwhile): a reload keeps a buyer's ledger unless its
/// time zone changed (then its periods are other spans: counted anew).
#[derive(Default)]
pub struct LedgerBook {
    ledgers: Mutex<HashMap<String, Arc<Ledger>>>,
}

impl LedgerBook {
    /// The ledgers of `buyers` (id, zone), in order: the live one of a
    /// buyer already known in the same zone, else a new one holding
    /// `sales(buyer, from_ms)` — its stored sales since `from_ms`, the
    /// earliest start of the current periods. Blocking: call it where a
    /// runtime is built. The lock is held for look-ups and inserts only;
    /// counting runs without it.
    pub fn attach<E>(
        &self,
        buyers: &[(&str, &TimeZone)],
        now_ms: u64,
        mut sales: impl FnMut(&str, u64) -> Result<Vec<(u64, Cents)>, E>,
    ) -> Result<Vec<Arc<Ledger>>, E> {
        let known: Vec<Option<Arc<Ledger>>> = {
            let map = self.ledgers.lock();
            buyers
                .iter()
                .map(|(b, tz)| map.get(*b).filter(|l| l.tz == **tz).cloned())
                .collect()
        };
        let mut fresh = Vec::with_capacity(buyers.len());
        for ((b, tz), k) in buyers.iter().zip(&known) {
            fresh.push(match k {
                Some(_) => None,
                None => {
                    let from = Periods::at(tz, now_ms).earliest_start_ms();
                    let tz = (*tz).clone();
                    Some(Arc::new(Ledger::new(tz, now_ms, &sales(b, from)?)))
                }
            });
        }
        let mut map = self.ledgers.lock();
        let mut out = Vec::with_capacity(buyers.len());
        for ((b, tz), (known, fresh)) in buyers.iter().zip(known.into_iter().zip(fresh)) {
            out.push(match (known, fresh) {
                (Some(l), _) => l,
                (None, Some(l)) => match map.get(*b) {
                    // Another build counted the same buyer first: keep its.
                    Some(live) if live.tz == **tz => live.clone(),
                    _ => {
                        map.insert((*b).to_string(), l.clone());
                        l
                    }
                },
                (None, None) => unreachable!("every unknown buyer was counted"),
            });
        }
        Ok(out)
    }
}

/// Why a ledger could not be counted (refuses that start or reload: a
/// count that fails is never taken as zero).
#[derive(Debug)]
pub enum CountError {
    Store(StoreError),
    /// A sale key or value that is not one: the key, escaped.
    Malformed(String),
}

impl std::fmt::Display for CountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CountError::Store(e) => write!(f, "{e}"),
            CountError::Malformed(k) => write!(f, "a malformed sale record {k}"),
        }
    }
}

/// `buyer`'s stored sales reserved at or after `from_ms`, as `(at_ms,
/// price)`: what [`LedgerBook::attach`] counts. Blocking (waits for the
/// store writer): a runtime build only.
pub fn stored_sales(
    store: &Store,
    buyer: &str,
    from_ms: u64,
) -> Result<Vec<(u64, Cents)>, CountError> {
    let from = keys::buyer_sales_from(buyer, from_ms);
    let end = keys::buyer_sales_end(buyer);
    let pairs = store
        .scan_range(Tree::Caps, &from, &end, usize::MAX)
        .map_err(CountError::Store)?;
    pairs
        .iter()
        .map(|(k, v)| {
            keys::parse_buyer_sale(buyer, k, v)
                .ok_or_else(|| CountError::Malformed(k.escape_ascii().to_string()))
        })
        .collect()
}

#[cfg(test)]
#[path = "caps_tests.rs"]
mod ledger_tests;
