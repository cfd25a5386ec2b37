//! `POST /v1/ping`: run an auction on a lead without PII and answer the
//! publisher with its payout for the best bid, within the deadline.

use std::sync::Arc;

use super::{json, require_json, store_error, Api, ApiError};
use crate::config::{Config, Publisher};
use crate::exchange::admission::Budgets;
use crate::exchange::fanout::{self, AuctionInput, AuctionResult};
use crate::exchange::{Exchange, Runtime};
use crate::http::server::{Request, Response};
use crate::ids;
use crate::json::Answer;
use crate::lead::Lead;
use crate::metrics::{self, AuctionOutcome, ShedReason};
use crate::records::{self, PingRecord, StoredBid};
use crate::store::{Batch, Tree};

pub fn handle(api: &Api, req: &mut Request<'_>) -> Result<Response, ApiError> {
    // A ping never waits for a flush (debug builds panic if it tries).
    let _mark = crate::sync::no_store_wait();
    let ex = &*api.ex;
    let rt = ex.runtime();
    let publisher = api.publisher(&rt, req)?;
    require_json(req)?;
    let p = crate::wire::parse_ping(req.body)?;
    check_vertical(&rt.config, publisher, &p.vertical)?;
    let ping_id = ids::new_id();
    let input = AuctionInput {
        ping_id: &ping_id,
        publisher,
        vertical: &p.vertical,
        lead: &p.lead,
        test: p.test,
        floor: p.floor,
        started: req.received_at,
    };
    let ping = auction(ex, &rt, &input, false)?;
    let body = match ping.bids.first() {
        Some(best) => Answer::new()
            .str("status", "bid")
            .str("ping_id", &ping.ping_id)
            .cents("price", Some(best.payout))
            .str("expires_at", &super::rfc3339(ping.expires_ms))
            .finish(),
        None => Answer::new()
            .str("status", "no_bid")
            .str("ping_id", &ping.ping_id)
            .finish(),
    };
    Ok(json(200, body))
}

/// An unknown vertical is the publisher's typo (422); a known one it may not
/// sell is a permission problem (403).
pub(crate) fn check_vertical(
    config: &Config,
    publisher: &Publisher,
    vertical: &str,
) -> Result<(), ApiError> {
    if config.vertical(vertical).is_none() {
        return Err(ApiError::invalid(
            "vertical",
            format!("unknown vertical {vertical:?}"),
        ));
    }
    if !publisher.verticals.iter().any(|v| v == vertical) {
        return Err(ApiError::forbidden(format!(
            "publisher may not sell vertical {vertical:?}"
        )));
    }
    Ok(())
}

/// Runs the auction and records it (store and ping cache). The ping record
/// is written without waiting for a flush: losing a ping to a crash costs a
/// `unknown_ping` on its post, never a sale.
///
/// Overload is shed here, before any buyer is called: a ping whose deadline
/// is mostly gone, or that finds no auction or buyer-call permit, answers
/// 503 `overloaded` (with `Retry-After`) at once (`exchange::admission`).
pub(crate) fn auction(
    ex: &Exchange,
    rt: &Arc<Runtime>,
    input: &AuctionInput<'_>,
    direct: bool,
) -> Result<Arc<PingRecord>, ApiError> {
    let budgets = Budgets::of(&rt.config.server);
    let _auction = ex
        .admission
        .auction(&budgets, input.started, rt.config.auction.ping_timeout_ms)
        .map_err(shed)?;
    let AuctionResult { bids, calls } = fanout::run(ex, rt, input).map_err(shed)?;
    let now = ex.now_ms();
    let ping = Arc::new(PingRecord {
        v: records::RECORD_VERSION,
        ping_id: input.ping_id.to_string(),
        publisher: input.publisher.id.clone(),
        vertical: input.vertical.to_string(),
        test: input.test,
        created_ms: now,
        expires_ms: now + rt.config.auction.bid_ttl_s * 1000,
        lead_json: ping_fields_json(input.lead),
        bids: bids
            .iter()
            .map(|b| StoredBid {
                buyer: rt.config.buyers[b.buyer].id.clone(),
                price: b.price,
                payout: b.payout,
                priority: b.priority,
                buyer_ref: b.buyer_ref.clone(),
            })
            .collect(),
        calls,
        lead_id: None,
        direct,
        auction_us: input.started.elapsed().as_micros() as u64,
    });
    let outcome = if ping.bids.is_empty() {
        AuctionOutcome::NoBid
    } else {
        AuctionOutcome::Bid
    };
    // Test traffic counts toward no live statistics (contract §4).
    if !ping.test {
        metrics::global().auction(outcome, ping.auction_us);
    }
    metrics::global().live().auction(&ping);
    crate::logging::events::auction(&ping);
    let mut batch = Batch::default();
    batch.insert(
        Tree::Pings,
        ping.ping_id.as_bytes().to_vec(),
        serde_json::to_vec(&*ping).expect("record serialises"),
    );
    ex.store.write(batch).map_err(store_error)?;
    if !direct {
        ex.pings.insert(ping.clone(), now);
    }
    Ok(ping)
}

fn shed(_: ShedReason) -> ApiError {
    ApiError::overloaded()
}

fn ping_fields_json(lead: &Lead) -> String {
    let mut out = Vec::with_capacity(256);
    lead.write_json(&mut out, false);
    String::from_utf8(out).expect("JSON writers emit UTF-8")
}
