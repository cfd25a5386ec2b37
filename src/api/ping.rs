//! `POST /v1/ping`: parse, run the auction (`Exchange::ping`), answer the
//! publisher with its payout for the best bid, within the deadline.

use super::{json, require_json, Api, ApiError};
use crate::http::server::{Request, Response};
use crate::json::Answer;

pub fn handle(api: &Api, req: &mut Request<'_>) -> Result<Response, ApiError> {
    let ex = &*api.ex;
    let rt = ex.runtime();
    let publisher = api.publisher(&rt, req)?;
    require_json(req)?;
    let p = crate::wire::parse_ping(req.body)?;
    let ping = ex.ping(&rt, publisher, &p, req.received_at)?;
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
