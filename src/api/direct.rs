//! `POST /v1/leads`: a direct post — parse, run the ping and post stages in
//! one exchange call (`Exchange::direct`), answer the outcome — in JSON or
//! XML, as the request came (`format`). The optional
//! `Idempotency-Key` header is checked here; what it means (a retry gets
//! the first outcome) is the exchange's.

use super::{format, outcome, Api, ApiError};
use crate::http::server::{Request, Response};
use crate::limits;

pub fn handle(api: &Api, req: &mut Request<'_>) -> Result<Response, ApiError> {
    let ex = &*api.ex;
    let rt = ex.runtime();
    let publisher = api.publisher(&rt, req)?;
    let format = format::body_format(req.header("content-type"))?;
    let idem_key = idempotency_key(req)?;
    let p = crate::wire::parse_direct_as(req.body, format)?;
    let rec = ex.direct(&rt, publisher, idem_key, &p, req.received_at)?;
    Ok(outcome(&rec, format))
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
