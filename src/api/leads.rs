//! `GET /v1/leads/{lead_id}`: a lead's outcome for the publisher that owns
//! it, without PII. Anyone else gets the same 404 as for a lead that does
//! not exist, so ids cannot be probed.

use super::{json, rfc3339, Api, ApiError};
use crate::http::server::{Request, Response};
use crate::json::Answer;
use crate::records::LeadRecord;

pub fn get(api: &Api, req: &mut Request<'_>) -> Result<Response, ApiError> {
    let rt = api.ex.runtime();
    let publisher = api.publisher(&rt, req)?;
    let lead_id = req.path.trim_start_matches("/v1/leads/");
    if !crate::ids::looks_like_id(lead_id) {
        return Err(ApiError::not_found());
    }
    let rec = api
        .ex
        .lead(lead_id)?
        .filter(|r| r.publisher == publisher.id)
        .ok_or_else(ApiError::not_found)?;
    Ok(json(200, public_view(&rec)))
}

/// `{"lead_id", "status", "price", "vertical", "created_at"}` — the price is
/// the publisher's payout, null unless sold or returned (then it is the
/// payout the return reversed, and `returned_at` says when).
pub(crate) fn public_view(rec: &LeadRecord) -> Vec<u8> {
    use crate::records::LeadStatus;
    let price = match rec.status {
        LeadStatus::Sold | LeadStatus::Returned => rec.payout,
        LeadStatus::Posting | LeadStatus::Unsold | LeadStatus::Suppressed => None,
    };
    let mut o = Answer::new()
        .str("lead_id", &rec.lead_id)
        .str("status", rec.status.as_str())
        .cents("price", price)
        .str("vertical", &rec.vertical)
        .str("created_at", &rfc3339(rec.created_ms));
    if let Some(reason) = &rec.reason {
        o = o.str("reason", reason);
    }
    if let Some(ms) = rec.returned_ms {
        o = o.str("returned_at", &rfc3339(ms));
    }
    o.str("ping_id", &rec.ping_id)
        .raw("test", if rec.test { b"true" } else { b"false" })
        .finish()
}
