//! `POST /v1/leads`: a direct post — the ping stage and the post stage in one
//! call. An `Idempotency-Key` (scoped to the publisher) makes a retry return
//! the first outcome, also after a restart: the key is written in the same
//! durable batch as the outcome.

use std::time::Instant;

use super::post::{require_consent, settle};
use super::{require_json, store_error, Api, ApiError};
use crate::exchange::fanout::AuctionInput;
use crate::exchange::sale::{self, PostInput};
use crate::http::server::{Request, Response};
use crate::limits;
use crate::records::keys;
use crate::store::{Batch, Tree};

pub fn handle(api: &Api, req: &mut Request<'_>) -> Result<Response, ApiError> {
    let ex = &*api.ex;
    let rt = ex.runtime();
    let publisher = api.publisher(&rt, req)?;
    require_json(req)?;
    let idem_key = idempotency_key(req)?.map(|k| keys::idempotency(&publisher.id, k));
    let p = crate::wire::parse_direct(req.body)?;
    super::ping::check_vertical(&rt.config, publisher, &p.vertical)?;
    require_consent(&rt.config, &p.vertical, p.consent.is_some())?;
    let _claim = match &idem_key {
        Some(k) => {
            let claim = ex.idempotency.claim(k.clone()).ok_or_else(|| {
                ApiError::new(
                    409,
                    "post_in_progress",
                    "a post with this Idempotency-Key is running; retry for its outcome",
                )
            })?;
            if let Some(lead_id) = ex.store.get(Tree::Idempotency, k).map_err(store_error)? {
                return super::post::settled(ex, &String::from_utf8_lossy(&lead_id));
            }
            Some(claim)
        }
        None => None,
    };
    let ping_id = crate::ids::new_id();
    let input = AuctionInput {
        ping_id: &ping_id,
        publisher,
        vertical: &p.vertical,
        lead: &p.lead,
        test: p.test,
        floor: None,
        started: req.received_at,
    };
    let ping = super::ping::auction(ex, &rt, &input, true)?;
    let with_outcome = |lead_id: &str, batch: &mut Batch| {
        if let Some(k) = &idem_key {
            batch.insert(Tree::Idempotency, k.clone(), lead_id.as_bytes().to_vec());
        }
    };
    let started = Instant::now();
    let input = PostInput {
        ping: &ping,
        lead: &p.lead,
        consent: p.consent.as_ref(),
        started,
        with_outcome: &with_outcome,
    };
    settle(sale::run(ex, &rt, &input), started)
}

/// The optional `Idempotency-Key`: 1–128 visible ASCII characters.
fn idempotency_key<'a>(req: &Request<'a>) -> Result<Option<&'a str>, ApiError> {
    let Some(k) = req.header("idempotency-key") else {
        return Ok(None);
    };
    let ok = !k.is_empty()
        && k.len() <= limits::IDEMPOTENCY_KEY_BYTES_MAX
        && k.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        return Err(ApiError::field(
            400,
            "bad_request",
            "Idempotency-Key",
            "Idempotency-Key must be 1-128 visible ASCII characters",
        ));
    }
    Ok(Some(k))
}
