//! The HTTP API: routing, authentication and the helpers every endpoint
//! shares. One file per endpoint family, each parse → one `Exchange` call →
//! render; every failure leaves through `error::ApiError`, the one place
//! that maps errors (an `exchange::Refusal` among them) to HTTP.

pub mod admin;
pub(crate) mod authfail;
pub mod dashboard;
pub mod direct;
pub mod error;
pub mod format;
pub mod health;
pub mod leads;
pub mod openapi;
pub mod ping;
pub mod post;
mod ratelimit;
pub mod routes;

use std::sync::Arc;

use crate::config::{ConfigError, Publisher, SigningSecret};
use crate::exchange::{Exchange, Runtime};
use crate::http::forwarded;
use crate::http::server::{Handler, Head, Request, Response};
use crate::metrics::{self, Endpoint};
use crate::privacy::{signature, ReplayCache};
use crate::records::LeadRecord;
pub use error::ApiError;
use routes::Route;

/// Reloads the config file; the errors are what `check-config` would say.
/// Ok holds the changed keys the reload could not apply (a restart does:
/// `daemon::restart_only_changes`).
pub type ReloadFn = dyn Fn() -> Result<Vec<&'static str>, Vec<ConfigError>> + Send + Sync;

/// The request handler the HTTP server calls.
pub struct Api {
    pub ex: Arc<Exchange>,
    pub reload: Arc<ReloadFn>,
    limits: ratelimit::RateLimits,
    /// Signatures accepted lately (contract §12): one per process, built
    /// here at start-up and kept across reloads, so a reload does not
    /// reopen the replay window.
    replay: ReplayCache,
}

impl Api {
    pub fn new(ex: Arc<Exchange>, reload: Arc<ReloadFn>) -> Api {
        Api {
            ex,
            reload,
            limits: ratelimit::RateLimits::default(),
            replay: ReplayCache::default(),
        }
    }

    fn route(&self, req: &mut Request<'_>) -> (Endpoint, Result<Response, ApiError>) {
        let ex = &*self.ex;
        let endpoint = routes::endpoint_of(req.path);
        if endpoint == Endpoint::Admin {
            return (endpoint, admin::route(self, req));
        }
        let route = match routes::find(req.method, req.path) {
            Ok((entry, _)) => entry.route,
            Err(e) => return (endpoint, Err(e)),
        };
        if route.is_publisher_call() && ex.is_draining() {
            return (endpoint, Err(ApiError::draining()));
        }
        // A store that cannot write refuses work at once, before any buyer
        // is called (a lead read would be refused by the store too).
        if route.is_publisher_call() && !ex.is_writable() {
            return (endpoint, Err(ApiError::overloaded()));
        }
        let result = match route {
            Route::Health => Ok(health::healthz()),
            Route::Ready => Ok(health::readyz(ex)),
            Route::Metrics => Ok(health::metrics(ex)),
            Route::OpenApi => Ok(openapi::document()),
            Route::Dashboard | Route::DashboardScript | Route::DashboardStyle => {
                Ok(dashboard::asset(req.path))
            }
            Route::Ping => ping::handle(self, req),
            Route::Post => post::handle(self, req),
            Route::Direct => direct::handle(self, req),
            Route::LeadGet => leads::get(self, req),
            // `endpoint_of` sent every admin path to `admin::route`.
            _ => Err(ApiError::not_found()),
        };
        (endpoint, result)
    }

    /// The gate in front of every body (`Handler::check_head`): route,
    /// method, draining, credentials, allow-list and media type, all from
    /// the head. A client that fails any of these never makes leadx buffer
    /// its body. The rate limit stays in `publisher` (once per request).
    fn screen(&self, head: &Head<'_>) -> (Endpoint, Result<(), ApiError>) {
        let endpoint = routes::endpoint_of(head.path);
        if endpoint == Endpoint::Admin {
            return (endpoint, admin::screen(self, head));
        }
        let result = routes::find(head.method, head.path).and_then(|(entry, _)| {
            if !entry.takes_body && head.has_body() {
                return Err(no_body_here());
            }
            if !entry.route.is_publisher_call() {
                return Ok(());
            }
            if self.ex.is_draining() {
                return Err(ApiError::draining());
            }
            let rt = self.ex.runtime();
            let caller = self.caller(&rt, head);
            authenticate(&rt, head.header("authorization"), &caller)?;
            if entry.takes_body {
                format::body_format(head.header("content-type"))?;
            }
            Ok(())
        });
        (endpoint, result)
    }

    /// The publisher a request speaks for: bearer key, then IP allow-list,
    /// then rate limit, then — for a publisher with `signing_secret` — the
    /// `Leadx-Signature` over the raw body, which callers have not parsed
    /// yet (parsing happens in place and would change the bytes).
    pub(crate) fn publisher<'r>(
        &self,
        rt: &'r Runtime,
        req: &Request<'_>,
    ) -> Result<&'r Publisher, ApiError> {
        let caller = self.caller(rt, &req.head());
        let publisher = authenticate(rt, req.header("authorization"), &caller)?;
        if let Some(rps) = publisher.rate_limit_rps {
            if !self.limits.allow(&publisher.id, rps) {
                return Err(ApiError::new(
                    429,
                    "rate_limited",
                    "rate limit exceeded, retry after the Retry-After delay",
                ));
            }
        }
        if let Some(secret) = &publisher.signing_secret {
            self.check_signature(secret, req, &caller)?;
        }
        Ok(publisher)
    }

    /// Who sent `head`: the client address after `server.trusted_proxies`
    /// (contract §12), for allow-lists and log lines.
    pub(crate) fn caller<'a>(&self, rt: &Runtime, head: &Head<'a>) -> Caller<'a> {
        let proxies = &rt.config.server.trusted_proxies;
        let client = if proxies.is_empty() {
            head.peer.ip()
        } else {
            forwarded::client_ip(head.peer.ip(), head.headers, |ip| {
                proxies.iter().any(|n| n.contains(ip))
            })
        };
        Caller {
            client,
            path: head.path,
            now_ms: self.ex.now_ms(),
        }
    }

    /// 401 `bad_signature` unless `req` carries a fresh, authentic, unused
    /// `Leadx-Signature` for its raw body. A refusal is counted by kind
    /// and logged with the peer address; never with the header or secret.
    fn check_signature(
        &self,
        secret: &SigningSecret,
        req: &Request<'_>,
        caller: &Caller<'_>,
    ) -> Result<(), ApiError> {
        let header = find_raw_header(req.headers, SIGNATURE_HEADER);
        let now_ms = self.ex.now_ms();
        signature::verify(secret.key(), header, req.body, now_ms, &self.replay).map_err(|e| {
            let kind = e.kind();
            metrics::global().bad_signature(kind);
            caller.failed_with("signature", kind);
            ApiError::new(
                401,
                "bad_signature",
                "Leadx-Signature is missing, stale, wrong or already used",
            )
        })
    }
}

/// The header a signing publisher signs its requests with (contract §12).
pub(crate) const SIGNATURE_HEADER: &str = "leadx-signature";

/// The raw bytes of the first header called `name` (case-insensitive).
fn find_raw_header<'a>(headers: &'a [httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

impl Handler for Api {
    fn check_head(&self, head: &Head<'_>) -> Result<(), Response> {
        let (endpoint, result) = self.screen(head);
        result.map_err(|e| {
            let resp = refused(endpoint, head.path, e, answer_format(endpoint, head));
            metrics::global().http_request(
                endpoint,
                resp.status,
                head.received_at.elapsed().as_micros() as u64,
            );
            resp
        })
    }

    fn handle(&self, req: &mut Request<'_>) -> Response {
        let (endpoint, result) = self.route(req);
        let resp = result.unwrap_or_else(|e| {
            refused(endpoint, req.path, e, answer_format(endpoint, &req.head()))
        });
        let latency_us = req.received_at.elapsed().as_micros() as u64;
        metrics::global().http_request(endpoint, resp.status, latency_us);
        resp
    }

    fn error_response(&self, e: &crate::http::server::HttpError) -> Response {
        error_response(ApiError::from(e))
    }
}

/// The format a refusal on `endpoint` is answered in: the publisher's
/// POSTs speak JSON or XML (`format`), everything else JSON.
fn answer_format(endpoint: Endpoint, head: &Head<'_>) -> format::Format {
    match endpoint {
        Endpoint::Ping | Endpoint::Post | Endpoint::Leads => format::answer_format(head),
        _ => format::Format::Json,
    }
}

/// Logs a refusal and turns it into its answer, in `format`; a 405 names
/// the methods `path` takes in `Allow` (from the route table).
fn refused(endpoint: Endpoint, path: &str, e: ApiError, format: format::Format) -> Response {
    // Code and field path only: the message may quote the input.
    log::warn!(target: "leadx::api", endpoint = endpoint.label(), status = e.status, code = e.code, field = e.field.as_deref().unwrap_or(""); "request refused");
    let status = e.status;
    let mut resp = error_response_as(e, format);
    if status == 405 {
        if let Some(methods) = routes::allow(path) {
            resp.headers.push(("Allow", methods));
        }
    }
    resp
}

/// Which paths a listener answers (contract §12 `admin.listen`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The one listener, for everything (no `admin.listen`: v1).
    All,
    /// `server.listen` beside an admin listener: no operator path.
    Publishers,
    /// `admin.listen`: operator paths, `/healthz` and `/readyz`.
    Admin,
}

impl Side {
    /// Whether a listener of this side answers `path`; elsewhere it is 404.
    pub fn serves(self, path: &str) -> bool {
        match self {
            Side::All => true,
            Side::Publishers => !is_operator_path(path),
            Side::Admin => {
                is_operator_path(path)
                    || matches!(
                        routes::endpoint_of(path),
                        Endpoint::Health | Endpoint::Ready | Endpoint::OpenApi
                    )
            }
        }
    }
}

/// A path only operators call: the admin API, `/metrics` and the
/// dashboard's files (their routes' endpoints, `api::routes`). With
/// `admin.listen` these are answered only there.
pub fn is_operator_path(path: &str) -> bool {
    matches!(
        routes::endpoint_of(path),
        Endpoint::Admin | Endpoint::Metrics | Endpoint::Dashboard
    )
}

/// The handler of one listener: the process's one `Api` (one replay
/// cache, one set of rate limits), answering only the paths of its `Side`;
/// any other path is 404 `not_found`, the answer to a path that does not
/// exist, before any credential is looked at.
pub struct Listener {
    api: Arc<Api>,
    side: Side,
}

impl Listener {
    pub fn new(api: Arc<Api>, side: Side) -> Listener {
        Listener { api, side }
    }

    fn elsewhere(&self, received_at: std::time::Instant) -> Response {
        let resp = refused(
            Endpoint::Other,
            "",
            ApiError::not_found(),
            format::Format::Json,
        );
        metrics::global().http_request(
            Endpoint::Other,
            resp.status,
            received_at.elapsed().as_micros() as u64,
        );
        resp
    }
}

impl Handler for Listener {
    fn check_head(&self, head: &Head<'_>) -> Result<(), Response> {
        if !self.side.serves(head.path) {
            return Err(self.elsewhere(head.received_at));
        }
        self.api.check_head(head)
    }

    fn handle(&self, req: &mut Request<'_>) -> Response {
        if !self.side.serves(req.path) {
            return self.elsewhere(req.received_at);
        }
        self.api.handle(req)
    }

    fn error_response(&self, e: &crate::http::server::HttpError) -> Response {
        self.api.error_response(e)
    }
}

/// A body sent where none is taken: refused on the head, never buffered.
pub(crate) fn no_body_here() -> ApiError {
    ApiError::new(413, "body_too_large", "this endpoint takes no request body")
}

/// Where a request comes from, for credential checks and their log lines.
pub(crate) struct Caller<'a> {
    /// The client address (after `server.trusted_proxies`).
    pub client: std::net::IpAddr,
    pub path: &'a str,
    pub now_ms: u64,
}

impl Caller<'_> {
    /// Counts and logs (rate-limited) a failed authentication of `kind`.
    pub(crate) fn failed(&self, kind: &'static str) {
        self.failed_with(kind, "");
    }

    /// `failed`, with a detail for the log line (a signature's failure kind).
    pub(crate) fn failed_with(&self, kind: &'static str, detail: &str) {
        authfail::failed(kind, detail, self.client, self.path, self.now_ms);
    }
}

/// The publisher whose key `authorization` carries, if `caller` may call
/// for it: 401 for no or an unknown key, 403 outside its allow-list.
/// Either is a failed authentication, counted and logged.
fn authenticate<'r>(
    rt: &'r Runtime,
    authorization: Option<&str>,
    caller: &Caller<'_>,
) -> Result<&'r Publisher, ApiError> {
    let publisher = authorization
        .and_then(bearer_token)
        .and_then(|token| rt.config.publisher_by_key(token.as_bytes()));
    let Some(publisher) = publisher else {
        caller.failed("publisher_key");
        return Err(ApiError::unauthorized());
    };
    if !publisher.allowed_ips.is_empty()
        && !publisher
            .allowed_ips
            .iter()
            .any(|n| n.contains(caller.client))
    {
        caller.failed("publisher_ip");
        return Err(ApiError::forbidden(
            "this address may not call for this publisher",
        ));
    }
    Ok(publisher)
}

pub(crate) fn error_response(e: ApiError) -> Response {
    error_response_as(e, format::Format::Json)
}

/// `e` answered in `format` (contract §8, §11).
pub(crate) fn error_response_as(e: ApiError, format: format::Format) -> Response {
    let mut headers = Vec::new();
    if e.status == 429 || e.status == 503 {
        headers.push(("Retry-After", "1".to_string()));
    }
    let (content_type, body) = format::error_body(&e, format);
    Response {
        status: e.status,
        content_type,
        headers,
        body,
    }
}

pub(crate) fn json(status: u16, body: Vec<u8>) -> Response {
    Response {
        status,
        content_type: "application/json",
        headers: Vec::new(),
        body,
    }
}

/// The token of an `Authorization` value `Bearer <token>`.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// POST bodies must be JSON (`application/json`, parameters allowed).
pub(crate) fn require_json(req: &Request<'_>) -> Result<(), ApiError> {
    require_json_type(req.header("content-type"))
}

pub(crate) fn require_json_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let ct = content_type.unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            415,
            "unsupported_media_type",
            "Content-Type must be application/json",
        ))
    }
}

/// RFC 3339 UTC with milliseconds (one copy, in `json`: postbacks below
/// `api` write it too).
pub(crate) use crate::json::rfc3339;

/// The publisher's answer for a settled post (contract §4), in `format`. A
/// lead returned since was sold by that post: a repeated post answers
/// `sold` as the first time (`GET /v1/leads/{id}` shows the return).
pub(crate) fn outcome(rec: &LeadRecord, format: format::Format) -> Response {
    use crate::records::LeadStatus;
    use format::Val;
    if matches!(rec.status, LeadStatus::Sold | LeadStatus::Returned) {
        format::answer(
            format,
            &[
                ("status", Val::Str("sold")),
                ("lead_id", Val::Str(&rec.lead_id)),
                ("price", Val::Cents(rec.payout)),
            ],
        )
    } else {
        let reason = rec.reason.as_deref().unwrap_or("unsold");
        format::answer(
            format,
            &[
                ("status", Val::Str("unsold")),
                ("lead_id", Val::Str(&rec.lead_id)),
                ("reason", Val::Str(reason)),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_is_utc_with_millis() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn obj_writes_json() {
        let b = crate::json::Answer::new()
            .str("a", "x\"y")
            .cents("p", Some(960))
            .cents("n", None)
            .finish();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["a"], "x\"y");
        assert_eq!(v["p"], 9.6);
        assert!(v["n"].is_null());
    }
}
