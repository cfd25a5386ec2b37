//! `/healthz`, `/readyz` and `/metrics`: no auth, cheap, always answered
//! (also while draining, when `/readyz` says 503). `/readyz` is also 503
//! while the store is unwritable (a failed write, e.g. a full disk); the
//! process stays healthy (`/healthz` 200) and recovers by itself.

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
        json(
            503,
            crate::api::error::error_body("draining", "the exchange is shutting down", None),
        )
    } else if !ex.is_writable() {
        json(
            503,
            crate::api::error::error_body(
                "store_unwritable",
                "the store cannot write (disk full or I/O error); retrying",
                None,
            ),
        )
    } else {
        json(
            503,
            crate::api::error::error_body("starting", "the exchange is starting", None),
        )
    }
}

pub fn metrics(ex: &Exchange) -> Response {
    let mut out = Vec::with_capacity(16 * 1024);
    crate::metrics::global().render(&mut out, &|out| {
        crate::api::admin::runtime_gauges(ex, out);
        store_gauges(ex, out);
    });
    Response {
        status: 200,
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        headers: Vec::new(),
        body: out,
    }
}

/// The store's health and the sales waiting to be recorded.
fn store_gauges(ex: &Exchange, out: &mut Vec<u8>) {
    use crate::metrics::write_gauge;
    let writable = if ex.is_writable() { 1.0 } else { 0.0 };
    write_gauge(out, "leadx_store_writable", "1 when the store accepts writes; 0 after a failed write (disk full, I/O error) until it recovers.", &[], writable);
    let outages = ex.store_stats().unwritable_total as f64;
    write_gauge(
        out,
        "leadx_store_unwritable_events",
        "Times the store became unwritable since start.",
        &[],
        outages,
    );
    write_gauge(
        out,
        "leadx_sales_kept",
        "Sales a buyer accepted whose outcome is not durable yet (retried).",
        &[],
        ex.kept_sales() as f64,
    );
}
