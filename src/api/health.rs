//! `/healthz`, `/readyz` and `/metrics`: no auth, cheap, always answered
//! (also while draining, when `/readyz` says 503).

use super::json;
use crate::exchange::Exchange;
use crate::http::server::Response;

pub fn healthz() -> Response {
    json(200, br#"{"status":"ok"}"#.to_vec())
}

pub fn readyz(ex: &Exchange) -> Response {
    if ex.is_ready() {
        json(200, br#"{"status":"ready"}"#.to_vec())
    } else if ex.is_draining() {
        json(503, crate::api::error::error_body("draining", "the exchange is shutting down", None))
    } else {
        json(503, crate::api::error::error_body("starting", "the exchange is starting", None))
    }
}

pub fn metrics(ex: &Exchange) -> Response {
    let mut out = Vec::with_capacity(16 * 1024);
    crate::metrics::global().render(&mut out, &|out| crate::api::admin::runtime_gauges(ex, out));
    Response { status: 200, content_type: "text/plain; version=0.0.4; charset=utf-8", headers: Vec::new(), body: out }
}
