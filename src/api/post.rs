//! `POST /v1/post`: parse, sell the pinged lead (`Exchange::post`), answer
//! its outcome. Claims, lookup, expiry, consent, ping match and settled
//! outcomes are the exchange's (`exchange::stages`).

use super::{json, outcome_body, require_json, Api, ApiError};
use crate::http::server::{Request, Response};

pub fn handle(api: &Api, req: &mut Request<'_>) -> Result<Response, ApiError> {
    let ex = &*api.ex;
    let rt = ex.runtime();
    let publisher = api.publisher(&rt, req)?;
    require_json(req)?;
    let p = crate::wire::parse_post(req.body)?;
    let rec = ex.post(&rt, publisher, &p)?;
    Ok(json(200, outcome_body(&rec)))
}
