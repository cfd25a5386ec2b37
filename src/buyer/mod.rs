//! Buyer integrations: how a lead becomes a buyer's ping or post and how the
//! buyer's answer becomes a bid or a result. Pure functions only — the core
//! (`exchange::fanout`, `exchange::sale`) does the HTTP, so every format can
//! be tested with bytes in and bytes out.
//!
//! A buyer speaks the native JSON protocol (contract §5, `native`, through
//! the `Integration` that `for_buyer` gives it) or, stage by stage, its own
//! posting spec described in the config (contract §9, `spec`: XML, form,
//! SOAP, templated JSON), which the exchange calls through the buyer's
//! `spec::SpecIntegration`.

pub mod native;
pub mod spec;

use std::sync::{Arc, OnceLock};

use crate::lead::{Consent, Lead};
use crate::money::Cents;

/// A buyer's answer to a ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BidAnswer {
    /// `price` is the buyer's bid; `buyer_ref` is echoed in the post.
    Bid {
        price: Cents,
        buyer_ref: Option<String>,
    },
    NoBid,
    /// Not a usable answer; counts as no bid, recorded with this reason.
    Invalid(&'static str),
}

/// A buyer's answer to a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostAnswer {
    Accepted {
        buyer_lead_id: Option<String>,
    },
    Rejected {
        reason: String,
    },
    /// Not a usable answer: a failed post, the lead goes to the next bidder.
    Invalid(&'static str),
}

/// What a ping to one buyer is built from.
pub struct PingCtx<'a> {
    pub ping_id: &'a str,
    pub vertical: &'a str,
    pub lead: &'a Lead,
    pub test: bool,
}

/// What a post to one buyer is built from.
pub struct PostCtx<'a> {
    pub ping_id: &'a str,
    pub buyer_ref: Option<&'a str>,
    pub vertical: &'a str,
    pub lead: &'a Lead,
    pub consent: Option<&'a Consent>,
    /// The buyer's own bid (or its fixed price), not the publisher's payout.
    pub price: Cents,
    pub test: bool,
}

/// One buyer wire format.
pub trait Integration: Send + Sync {
    /// Writes the ping body into `out`; returns its content type.
    fn build_ping(&self, ctx: &PingCtx<'_>, out: &mut Vec<u8>) -> &'static str;
    /// Reads a ping answer (any status code).
    fn parse_bid(&self, status: u16, body: &mut [u8]) -> BidAnswer;
    /// Writes the post body into `out`; returns its content type.
    fn build_post(&self, ctx: &PostCtx<'_>, out: &mut Vec<u8>) -> &'static str;
    /// Reads a post answer (any status code).
    fn parse_result(&self, status: u16, body: &mut [u8]) -> PostAnswer;
}

/// The integration a buyer speaks, built once per runtime and owned by the
/// runtime's buyer (so per-buyer state, such as compiled templates, can
/// live in it). One format exists today; it is stateless, so every native
/// buyer shares one object (and the auction builds its ping body once).
pub fn for_buyer(_buyer: &crate::config::Buyer) -> Arc<dyn Integration> {
    static NATIVE: OnceLock<Arc<native::Native>> = OnceLock::new();
    NATIVE.get_or_init(|| Arc::new(native::Native)).clone()
}
