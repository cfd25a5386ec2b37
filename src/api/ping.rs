//! `POST /v1/ping`: parse, run the auction (`Exchange::ping`), answer the
//! publisher with its payout for the best bid, within the deadline — in
//! JSON or XML, as the request came (`format`).

use super::format::{self, Val};
use super::{Api, ApiError};
use crate::http::server::{Request, Response};

pub fn handle(api: &Api, req: &mut Request<'_>) -> Result<Response, ApiError> {
    let ex = &*api.ex;
    let rt = ex.runtime();
    let publisher = api.publisher(&rt, req)?;
    let format = format::body_format(req.header("content-type"))?;
    let p = crate::wire::parse_ping_as(req.body, format)?;
    let ping = ex.ping(&rt, publisher, &p, req.received_at)?;
    Ok(match ping.bids.first() {
        Some(best) => {
            let expires_at = super::rfc3339(ping.expires_ms);
            format::answer(
                format,
                &[
                    ("status", Val::Str("bid")),
                    ("ping_id", Val::Str(&ping.ping_id)),
                    ("price", Val::Cents(Some(best.payout))),
                    ("expires_at", Val::Str(&expires_at)),
                ],
            )
        }
        None => format::answer(
            format,
            &[
                ("status", Val::Str("no_bid")),
                ("ping_id", Val::Str(&ping.ping_id)),
            ],
        ),
    })
}
