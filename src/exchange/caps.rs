//! Caps and budgets as atomic reservations (contract §10): the [`Ledger`]
//! of a buyer's hourly, daily, weekly and monthly counts and daily, weekly
//! and monthly budgets (sums of accepted prices, in cents), each in the
//! buyer's time zone. A post reserves a unit (and its price) *before*
//! calling the buyer and gives it back if the buyer refuses, so a cap of 5
//! with 50 concurrent posts sells exactly 5 — no check-then-act window.
//!
//! A ledger survives reloads (it lives in the `LedgerBook`, keyed by buyer
//! id, not in the config) and restarts (each sale writes
//! `keys::buyer_sale` in the store). It is counted from the store when a
//! runtime that names the buyer is built — at start-up or on the reload
//! thread — never on a request: counting waits for the store writer, and a
//! wait under the book's lock once hung every worker (issue #7). Every
//! buyer has a ledger, capped or not, and every live sale takes a unit, so
//! a cap added by a reload starts from the true count.
//!
//! Upgrade from v1: v1 stored a sale as `keys::cap_sale(buyer, utc_day,
//! lead)` with no time or price. [`v1_sales_today`] reads today's (UTC) v1
//! keys when a ledger is counted and folds them in as sales at the start of
//! that UTC day (or of the earliest current period, if later) priced 0: so
//! a daily, weekly or monthly cap still sees the day's v1 sales after the
//! upgrade, but an hourly cap and the budgets cannot see them.

#[path = "caps_ledger.rs"]
mod ledger;
pub use ledger::*;

/// Today's (UTC) sales `buyer` stored under v1's `keys::cap_sale`, as
/// ledger sales at `max(the UTC day's start, from_ms)` priced 0 (see the
/// module doc). Blocking: a runtime build only.
pub fn v1_sales_today(
    store: &crate::store::Store,
    buyer: &str,
    now_ms: u64,
    from_ms: u64,
) -> Result<Vec<(u64, crate::money::Cents)>, CountError> {
    let day = now_ms / 86_400_000;
    let prefix = crate::records::keys::cap_day(buyer, day as u32);
    let n = store
        .count_prefix(crate::store::Tree::Caps, &prefix)
        .map_err(CountError::Store)?;
    let at = (day * 86_400_000).max(from_ms);
    Ok(vec![(at, 0); n as usize])
}
