//! Why an exchange stage said no, as a domain value: no status, no code.
//! `api::error` alone maps each refusal to an HTTP status and contract code
//! (and `Retry-After` for the retryable ones).

use crate::store::StoreError;

/// A stage's refusal (`Exchange::ping`, `post`, `direct`, `lead`).
#[derive(Debug)]
pub enum Refusal {
    /// No such ping for this publisher (or not a ping id at all).
    UnknownPing,
    /// Another request is posting this ping; a retry gets its outcome.
    PostInProgress,
    /// A direct post with the same `Idempotency-Key` is running.
    IdempotencyKeyInProgress,
    /// The ping's bids have expired.
    PingExpired,
    /// The posted lead's ping field `field` (`zip`, `state`, …) differs from
    /// the one pinged.
    PingMismatch { field: String },
    /// The vertical requires a consent object and none came.
    ConsentRequired,
    /// The consent object fails an evidence check of the vertical
    /// (`exchange::consent`): `field` is the consent key (`jornaya_leadid`, …).
    ConsentEvidence {
        field: &'static str,
        reason: &'static str,
    },
    /// The consumer was sold (or is being sold) in this vertical within its
    /// dedupe window.
    DuplicateLead,
    /// Shed for load (no permit, deadline mostly gone): nothing was stored,
    /// a retry can still succeed.
    Overloaded,
    /// A buyer accepted but the outcome is not durable yet
    /// (`exchange::outcomes`); a retry answers it once it is.
    SaleKept,
    /// The config has no such vertical (the publisher's typo).
    UnknownVertical(String),
    /// A known vertical this publisher may not sell.
    VerticalNotAllowed(String),
    /// The lead's phone is on a suppression list of its vertical or on
    /// the internal list (`list` names it; logged, never answered).
    Suppressed { list: String },
    /// A suppression list of the lead's vertical is older than its
    /// `max_age_days`: no lead of the vertical is sold until it is updated.
    ListStale { list: String },
    /// No lead with this id (a return, contract §13).
    UnknownLead,
    /// The lead cannot be returned: never sold, or test traffic (which
    /// carries no money to reverse).
    NotReturnable,
    /// The buyer's `return_window_days` after the sale have passed.
    ReturnWindowClosed { window_days: u32 },
    /// Another return of this lead is being written; a retry answers it.
    ReturnInProgress,
    /// The store refused or failed (closed by a drain, unwritable, …).
    Store(StoreError),
    /// A stored record that cannot be read; logged where it was found.
    Corrupt,
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}
