//! `POST /v1/post`: parse, sell the pinged lead (`Exchange::post`), answer
//! its outcome — in JSON or XML, as the request came (`format`). Claims,
//! lookup, expiry, consent, ping match and settled outcomes are the
//! exchange's (`exchange::stages`).

use super::{format, outcome, Api, ApiError};
use crate::http::server::{Request, Response};

pub fn handle(api: &Api, req: &mut Request<'_>) -> Result<Response, ApiError> {
    let ex = &*api.ex;
    let rt = ex.runtime();
    let publisher = api.publisher(&rt, req)?;
    let format = format::body_format(req.header("content-type"))?;
    let p = crate::wire::parse_post_as(req.body, format)?;
    let rec = ex.post(&rt, publisher, &p)?;
    Ok(outcome(&rec, format))
}
