//! `POST /v1/post`: sell a pinged lead. A ping is posted at most once: the
//! first post claims it, a concurrent one gets 409 `post_in_progress`, and a
//! later one gets the stored outcome with the same `lead_id` without any
//! buyer being contacted — also after a restart.

use std::sync::Arc;
use std::time::Instant;

use super::{json, load_lead, outcome_body, require_json, store_error, Api, ApiError};
use crate::exchange::sale::{self, PostInput, SaleError};
use crate::exchange::Exchange;
use crate::http::server::{Request, Response};
use crate::lead::{self, Lead, Stage};
use crate::metrics::{self, PostOutcome};
use crate::records::PingRecord;
use crate::store::Tree;
use crate::wire::PostRequest;

pub fn handle(api: &Api, req: &mut Request<'_>) -> Result<Response, ApiError> {
    let ex = &*api.ex;
    let rt = ex.runtime();
    let publisher = api.publisher(&rt, req)?;
    require_json(req)?;
    let p: PostRequest = crate::wire::parse_post(req.body)?;
    let unknown = || ApiError::field(404, "unknown_ping", "ping_id", "no such ping");
    if !crate::ids::looks_like_id(&p.ping_id) {
        return Err(unknown());
    }
    let _claim = ex.posting.claim(p.ping_id.clone()).ok_or_else(|| {
        ApiError::new(
            409,
            "post_in_progress",
            "this ping is being posted; retry for its outcome",
        )
    })?;
    let ping = find_ping(ex, &p.ping_id)?
        .filter(|ping| ping.publisher == publisher.id)
        .ok_or_else(unknown)?;
    if let Some(lead_id) = &ping.lead_id {
        return settled(ex, lead_id);
    }
    if ex.now_ms() > ping.expires_ms {
        return Err(ApiError::field(
            410,
            "ping_expired",
            "ping_id",
            "the ping's bids have expired",
        ));
    }
    require_consent(&rt.config, &ping.vertical, p.consent.is_some())?;
    if let Some(at) = pinged_lead(&ping)?.ping_field_mismatch(&p.lead) {
        return Err(ApiError::field(
            422,
            "ping_mismatch",
            format!("lead.{at}"),
            format!("lead.{at} differs from the ping's"),
        ));
    }
    let started = Instant::now();
    let input = PostInput {
        ping: &ping,
        lead: &p.lead,
        consent: p.consent.as_ref(),
        started,
        with_outcome: &|_, _| {},
    };
    let result = sale::run(ex, &rt, &input);
    // A post shed for load (503) or failed on the store leaves the ping as
    // it was; its record may not have reached the store yet, so the cache
    // keeps it for the publisher's retry.
    if !matches!(result, Err(SaleError::Overloaded | SaleError::Store(_))) {
        ex.pings.remove(&ping.ping_id);
    }
    settle(result, started)
}

/// The stored outcome of a lead, answered again. A kept sale (its outcome
/// write failed) is written now, or answered 503 `overloaded` again. The
/// caller holds the claim on its ping or idempotency key, so a lead still
/// `posting` and not kept is a crash remnant and is settled as interrupted.
pub(crate) fn settled(ex: &Exchange, lead_id: &str) -> Result<Response, ApiError> {
    match ex.kept.retry_one(&ex.store, lead_id) {
        Ok(Some(rec)) => return Ok(json(200, outcome_body(&rec))),
        Ok(None) => {}
        Err(_) => return Err(sale_kept()),
    }
    let mut rec = load_lead(ex, lead_id)?.ok_or_else(ApiError::internal)?;
    sale::settle_interrupted(ex, &mut rec).map_err(store_error)?;
    Ok(json(200, outcome_body(&rec)))
}

/// The publisher's answer for a finished post stage.
pub(crate) fn settle(
    result: Result<crate::records::LeadRecord, SaleError>,
    started: Instant,
) -> Result<Response, ApiError> {
    let latency_us = started.elapsed().as_micros() as u64;
    match result {
        Ok(rec) => {
            let outcome = if rec.status == crate::records::LeadStatus::Sold {
                PostOutcome::Sold
            } else {
                PostOutcome::Unsold
            };
            if !rec.test {
                metrics::global().post_outcome(outcome, latency_us);
            }
            metrics::global().live().post(&rec, latency_us);
            crate::logging::events::post(&rec);
            Ok(json(200, outcome_body(&rec)))
        }
        Err(SaleError::Duplicate) => {
            metrics::global().post_outcome(PostOutcome::Duplicate, latency_us);
            Err(ApiError::new(
                409,
                "duplicate_lead",
                "this consumer was already sold in this vertical",
            ))
        }
        Err(SaleError::Overloaded) => Err(ApiError::overloaded()),
        Err(SaleError::Kept) => Err(sale_kept()),
        Err(SaleError::Store(e)) => Err(store_error(e)),
    }
}

/// A buyer accepted but the sale is not durable yet (`exchange::outcomes`).
fn sale_kept() -> ApiError {
    ApiError::new(
        503,
        "overloaded",
        "the sale is not recorded yet; retry the same request for its outcome",
    )
}

pub(crate) fn require_consent(
    config: &crate::config::Config,
    vertical: &str,
    has_consent: bool,
) -> Result<(), ApiError> {
    let required = config.vertical(vertical).is_some_and(|v| v.require_consent);
    if required && !has_consent {
        return Err(ApiError::field(
            422,
            "consent_required",
            "consent",
            "this vertical requires a consent object",
        ));
    }
    Ok(())
}

/// The store is the authority once it has the ping (it holds the outcome
/// link); the cache covers the moment before the writer applied it.
fn find_ping(ex: &Exchange, ping_id: &str) -> Result<Option<Arc<PingRecord>>, ApiError> {
    if let Some(bytes) = ex
        .store
        .get(Tree::Pings, ping_id.as_bytes())
        .map_err(store_error)?
    {
        let ping: PingRecord = serde_json::from_slice(&bytes).map_err(|e| {
            log::error!(target: "leadx::store", "ping record unreadable ping_id={ping_id} error=\"{e}\"");
            ApiError::internal()
        })?;
        return Ok(Some(Arc::new(ping)));
    }
    Ok(ex.pings.get(ping_id))
}

fn pinged_lead(ping: &PingRecord) -> Result<Lead, ApiError> {
    let mut bytes = ping.lead_json.clone().into_bytes();
    let mut buffers =
        simd_json::Buffers::with_max_depth(bytes.len(), crate::limits::JSON_DEPTH_MAX);
    let value = simd_json::borrowed::to_value_with_buffers(&mut bytes, &mut buffers)
        .map_err(|_| ApiError::internal())?;
    lead::lead_from_value(&value, Stage::Ping, "lead").map_err(|e| {
        log::error!(target: "leadx::store", "stored ping lead invalid ping_id={} kind={:?}", ping.ping_id, e.kind);
        ApiError::internal()
    })
}
