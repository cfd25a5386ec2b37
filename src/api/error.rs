//! The one place where a failure becomes an HTTP answer: status, stable
//! `code` from the contract (§8) and a human message. Internal error text
//! (store, I/O) is logged by the caller and replaced here by a generic
//! message, so it can never reach a client.

/// Every error code the API answers, with its status: the contract's (§8)
/// and the ones leadx adds (`headers_too_large`, `request_timeout`,
/// `invalid_config`, `internal`, `/readyz`'s `starting` and
/// `store_unwritable`). `ApiError` refuses any other code in debug builds;
/// the OpenAPI document's `ErrorCode` enum is this list
/// (`openapi::tests`). `not_returnable` and `return_window_closed` are the
/// contract's return codes (§13).
pub const CODES: &[(&str, u16)] = &[
    ("malformed_json", 400),
    ("bad_request", 400),
    ("unauthorized", 401),
    ("bad_signature", 401),
    ("forbidden", 403),
    ("not_found", 404),
    ("unknown_ping", 404),
    ("method_not_allowed", 405),
    ("request_timeout", 408),
    ("duplicate_lead", 409),
    ("post_in_progress", 409),
    ("not_returnable", 409),
    ("return_window_closed", 409),
    ("return_in_progress", 409),
    ("no_data_key", 409),
    ("ping_expired", 410),
    ("body_too_large", 413),
    ("unsupported_media_type", 415),
    ("invalid_field", 422),
    ("missing_field", 422),
    ("unknown_field", 422),
    ("pii_in_ping", 422),
    ("ping_mismatch", 422),
    ("consent_required", 422),
    ("suppressed", 422),
    ("invalid_config", 422),
    ("rate_limited", 429),
    ("headers_too_large", 431),
    ("internal", 500),
    ("overloaded", 503),
    ("draining", 503),
    ("list_stale", 503),
    ("starting", 503),
    ("store_unwritable", 503),
];

/// A failure to be answered to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// The path of the one field at fault (`lead.zip`), when there is one.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        debug_assert_known(status, code);
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn field(
        status: u16,
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        debug_assert_known(status, code);
        ApiError {
            status,
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(400, "malformed_json", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "unauthorized", "missing or invalid bearer token")
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }
    pub fn not_found() -> Self {
        Self::new(404, "not_found", "no such resource")
    }
    pub fn method_not_allowed() -> Self {
        Self::new(405, "method_not_allowed", "method not allowed on this path")
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::field(422, "invalid_field", field, message)
    }
    pub fn missing(field: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field} is required");
        Self::field(422, "missing_field", field, message)
    }
    pub fn unknown(field: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field} is not a known field");
        Self::field(422, "unknown_field", field, message)
    }
    pub fn overloaded() -> Self {
        Self::new(
            503,
            "overloaded",
            "the exchange is overloaded, retry shortly",
        )
    }
    pub fn draining() -> Self {
        Self::new(503, "draining", "the exchange is shutting down")
    }
    /// Any internal failure. The cause is logged by the caller, never sent.
    pub fn internal() -> Self {
        Self::new(500, "internal", "internal error")
    }

    /// The JSON body of this error.
    pub fn body(&self) -> Vec<u8> {
        error_body(self.code, &self.message, self.field.as_deref())
    }
}

/// In debug builds (every test), a code outside `CODES` or with another
/// status panics: the document's enum would not name it.
fn debug_assert_known(status: u16, code: &str) {
    debug_assert!(
        CODES.contains(&(code, status)),
        "error code {code} with status {status} is not in api::error::CODES"
    );
}

/// A refused body or lead (contract §8): 400 when it is not JSON at all,
/// 422 with the field otherwise.
impl From<crate::lead::Invalid> for ApiError {
    fn from(e: crate::lead::Invalid) -> ApiError {
        use crate::lead::InvalidKind;
        let (status, code) = match e.kind {
            InvalidKind::Malformed => (400, "malformed_json"),
            InvalidKind::Missing => (422, "missing_field"),
            InvalidKind::Unknown => (422, "unknown_field"),
            InvalidKind::Invalid => (422, "invalid_field"),
            InvalidKind::PiiInPing => (422, "pii_in_ping"),
            InvalidKind::BadRequest => (400, "bad_request"),
        };
        ApiError {
            status,
            code,
            message: e.message,
            field: e.field,
        }
    }
}

/// A stage's refusal (`exchange::Refusal`): the one mapping from the
/// exchange's domain refusals to status and contract code.
impl From<crate::exchange::Refusal> for ApiError {
    fn from(r: crate::exchange::Refusal) -> ApiError {
        use crate::exchange::Refusal as R;
        match r {
            R::UnknownPing => ApiError::field(404, "unknown_ping", "ping_id", "no such ping"),
            R::PostInProgress => ApiError::new(
                409,
                "post_in_progress",
                "this ping is being posted; retry for its outcome",
            ),
            R::IdempotencyKeyInProgress => ApiError::new(
                409,
                "post_in_progress",
                "a post with this Idempotency-Key is running; retry for its outcome",
            ),
            R::PingExpired => ApiError::field(
                410,
                "ping_expired",
                "ping_id",
                "the ping's bids have expired",
            ),
            R::PingMismatch { field } => ApiError::field(
                422,
                "ping_mismatch",
                format!("lead.{field}"),
                format!("lead.{field} differs from the ping's"),
            ),
            R::ConsentRequired => ApiError::field(
                422,
                "consent_required",
                "consent",
                "this vertical requires a consent object",
            ),
            R::ConsentEvidence { field, reason } => ApiError::invalid(
                format!("consent.{field}"),
                format!("consent.{field}: {reason}"),
            ),
            R::DuplicateLead => ApiError::new(
                409,
                "duplicate_lead",
                "this consumer was already sold in this vertical",
            ),
            R::Suppressed { .. } => ApiError::field(
                422,
                "suppressed",
                "lead.phone",
                "this phone number is on a suppression list",
            ),
            R::ListStale { .. } => ApiError::new(
                503,
                "list_stale",
                "a suppression list of this vertical is out of date; leads cannot be sold until it is updated",
            ),
            R::Overloaded => ApiError::overloaded(),
            // A buyer accepted but the sale is not durable yet.
            R::SaleKept => ApiError::new(
                503,
                "overloaded",
                "the sale is not recorded yet; retry the same request for its outcome",
            ),
            R::UnknownVertical(v) => {
                ApiError::invalid("vertical", format!("unknown vertical {v:?}"))
            }
            R::VerticalNotAllowed(v) => {
                ApiError::forbidden(format!("publisher may not sell vertical {v:?}"))
            }
            R::UnknownLead => ApiError::not_found(),
            R::NotReturnable => ApiError::new(
                409,
                "not_returnable",
                "only a sold lead of live traffic can be returned",
            ),
            R::ReturnWindowClosed { window_days } => ApiError::new(
                409,
                "return_window_closed",
                format!("the buyer's return window of {window_days} days after the sale has passed"),
            ),
            R::ReturnInProgress => ApiError::new(
                409,
                "return_in_progress",
                "this lead is being returned; retry for the outcome",
            ),
            R::Store(e) => store_error(e),
            // Logged where it was found.
            R::Corrupt => ApiError::internal(),
        }
    }
}

/// A store failure as a client sees it: overload is retryable, the rest is
/// internal (and logged here, the only place its text goes).
pub(crate) fn store_error(e: crate::store::StoreError) -> ApiError {
    use crate::store::StoreError;
    match e {
        // Unwritable was logged once, by the store's writer.
        StoreError::Overloaded | StoreError::Unwritable => ApiError::overloaded(),
        StoreError::Closed => ApiError::draining(),
        other => {
            log::error!(target: "leadx::store", "store failed error=\"{other}\"");
            ApiError::internal()
        }
    }
}

/// A failure the HTTP layer found before (or instead of) a handler: its
/// status is HTTP's, its contract code is decided here.
impl From<&crate::http::server::HttpError> for ApiError {
    fn from(e: &crate::http::server::HttpError) -> ApiError {
        use crate::http::server::HttpError as H;
        let code = match e {
            H::BadRequest(_) => "bad_request",
            H::BodyTooLarge => "body_too_large",
            H::HeadersTooLarge => "headers_too_large",
            H::RequestTimeout => "request_timeout",
            H::Overloaded => "overloaded",
            H::Internal => "internal",
        };
        ApiError::new(e.status(), code, e.message())
    }
}

/// `{"error": {"code": …, "message": …, "field": …}}` — used by the HTTP
/// layer too, for the errors it answers before a handler runs.
pub fn error_body(code: &str, message: &str, field: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len());
    out.extend_from_slice(b"{\"error\":{\"code\":");
    crate::json::write_str(&mut out, code);
    out.extend_from_slice(b",\"message\":");
    crate::json::write_str(&mut out, message);
    if let Some(f) = field {
        out.extend_from_slice(b",\"field\":");
        crate::json::write_str(&mut out, f);
    }
    out.extend_from_slice(b"}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_code_message_and_field() {
        let e = ApiError::invalid("lead.age", "must be an integer from 18 to 120");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "invalid_field");
        assert_eq!(v["error"]["field"], "lead.age");
        assert_eq!(e.status, 422);
        let v: serde_json::Value =
            serde_json::from_slice(&ApiError::unauthorized().body()).unwrap();
        assert!(v["error"].get("field").is_none());
    }

    #[test]
    fn message_is_escaped() {
        let body = error_body("bad_request", "quote \" and \n newline", None);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["message"], "quote \" and \n newline");
    }

    /// Every exchange refusal keeps the status and code the endpoints
    /// answered before the stages moved into `exchange` (contract §8).
    #[test]
    fn refusals_map_to_the_contract_codes() {
        use crate::exchange::Refusal as R;
        use crate::store::StoreError;
        let cases = [
            (R::UnknownPing, 404, "unknown_ping", Some("ping_id")),
            (R::PostInProgress, 409, "post_in_progress", None),
            (R::IdempotencyKeyInProgress, 409, "post_in_progress", None),
            (R::PingExpired, 410, "ping_expired", Some("ping_id")),
            (
                R::PingMismatch {
                    field: "zip".into(),
                },
                422,
                "ping_mismatch",
                Some("lead.zip"),
            ),
            (R::ConsentRequired, 422, "consent_required", Some("consent")),
            (R::DuplicateLead, 409, "duplicate_lead", None),
            (
                R::Suppressed { list: "x".into() },
                422,
                "suppressed",
                Some("lead.phone"),
            ),
            (R::ListStale { list: "x".into() }, 503, "list_stale", None),
            (R::Overloaded, 503, "overloaded", None),
            (R::SaleKept, 503, "overloaded", None),
            (
                R::UnknownVertical("x".into()),
                422,
                "invalid_field",
                Some("vertical"),
            ),
            (R::VerticalNotAllowed("x".into()), 403, "forbidden", None),
            (R::Store(StoreError::Closed), 503, "draining", None),
            (R::Store(StoreError::Unwritable), 503, "overloaded", None),
            (R::Store(StoreError::Overloaded), 503, "overloaded", None),
            (R::Store(StoreError::Io("x".into())), 500, "internal", None),
            (R::Corrupt, 500, "internal", None),
            (R::UnknownLead, 404, "not_found", None),
            (R::NotReturnable, 409, "not_returnable", None),
            (
                R::ReturnWindowClosed { window_days: 7 },
                409,
                "return_window_closed",
                None,
            ),
            (R::ReturnInProgress, 409, "return_in_progress", None),
        ];
        for (r, status, code, field) in cases {
            let what = format!("{r:?}");
            let e = ApiError::from(r);
            assert_eq!(
                (e.status, e.code, e.field.as_deref()),
                (status, code, field),
                "{what}"
            );
        }
    }

    #[test]
    fn http_layer_failures_answer_contract_json() {
        use crate::http::server::HttpError;
        let e = ApiError::from(&HttpError::BodyTooLarge);
        assert_eq!((e.status, e.code), (413, "body_too_large"));
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "body_too_large");
        let e = ApiError::from(&HttpError::RequestTimeout);
        assert_eq!((e.status, e.code), (408, "request_timeout"));
    }
}
