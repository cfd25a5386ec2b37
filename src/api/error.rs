//! The one place where a failure becomes an HTTP answer: status, stable
//! `code` from the contract (§8) and a human message. Internal error text
//! (store, I/O) is logged by the caller and replaced here by a generic
//! message, so it can never reach a client.

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
        };
        ApiError {
            status,
            code,
            message: e.message,
            field: e.field,
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
