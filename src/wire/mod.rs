//! Publishers' request bodies, and the JSON parser every inbound JSON goes
//! through (`parse_json`: simd-json under the depth limit; buyers' answers
//! are read in their format's home under `buyer`).
//!
//! Bodies are parsed with simd-json (in place — the body slice is rewritten
//! while strings are unescaped) under a nesting limit, so a hostile body is
//! refused by the parser's own depth check before anything recurses on a
//! small coroutine stack. The tree is then walked into typed requests; the
//! first problem comes back as an [`Invalid`] naming its field.
//!
//! An XML body (contract §11, [`Format::Xml`]) is read by `xml` into the
//! same simd-json tree, typed per contract §3 — so both formats go through
//! the one walk below and the one lead validator (`lead::lead_from_value`):
//! there is no second set of checks to drift.

use simd_json::borrowed::{Object, Value};
use simd_json::{Buffers, ErrorType};

use crate::lead::value::{self, is_null, Loc};
use crate::lead::Invalid;
use crate::lead::{consent_from_value, lead_from_value, Consent, Lead, Stage};
use crate::limits;
use crate::money::{self, Cents};

mod xml;

/// The format of a publisher's request body (and so of its answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    /// Contract §11.
    Xml,
}

/// `POST /v1/ping`.
#[derive(Debug, Clone, PartialEq)]
pub struct PingRequest {
    /// Not checked against the config here; the caller does that.
    pub vertical: String,
    pub lead: Lead,
    pub test: bool,
    /// The lowest payout the publisher will take.
    pub floor: Option<Cents>,
}

/// `POST /v1/post`.
#[derive(Debug, Clone, PartialEq)]
pub struct PostRequest {
    pub ping_id: String,
    pub lead: Lead,
    /// Whether the vertical requires it is the caller's check.
    pub consent: Option<Consent>,
}

/// `POST /v1/leads` (direct post).
#[derive(Debug, Clone, PartialEq)]
pub struct DirectRequest {
    pub vertical: String,
    pub lead: Lead,
    pub consent: Option<Consent>,
    pub test: bool,
}

/// Parses `body` as JSON in place, nested at most `JSON_DEPTH_MAX` deep.
pub(crate) fn parse_json(body: &mut [u8]) -> Result<Value<'_>, simd_json::Error> {
    let mut buffers = Buffers::with_max_depth(body.len(), limits::JSON_DEPTH_MAX);
    simd_json::borrowed::to_value_with_buffers(body, &mut buffers)
}

/// The body as a JSON object, or 400 `malformed_json`.
fn body_object<'a, 'v>(v: &'a Value<'v>) -> Result<&'a Object<'v>, Invalid> {
    match v {
        Value::Object(o) => Ok(o),
        _ => Err(Invalid::malformed("the body must be a JSON object")),
    }
}

fn malformed(e: simd_json::Error) -> Invalid {
    match e.error() {
        ErrorType::DepthLimitExceeded => Invalid::malformed(format!(
            "JSON nested deeper than {} levels",
            limits::JSON_DEPTH_MAX
        )),
        _ => Invalid::malformed("the body is not valid JSON"),
    }
}

/// The body as a tree: JSON parsed in place, or XML read into the same
/// tree (`xml::tree`).
fn tree(body: &mut [u8], format: Format) -> Result<Value<'_>, Invalid> {
    match format {
        Format::Json => parse_json(body).map_err(malformed),
        Format::Xml => xml::tree(body),
    }
}

/// Every field a request body may carry, whatever the endpoint.
#[derive(Default)]
struct Fields {
    vertical: Option<String>,
    ping_id: Option<String>,
    lead: Option<Lead>,
    consent: Option<Consent>,
    test: bool,
    floor: Option<Cents>,
}

impl Fields {
    /// `null` is absent, also after an earlier value for the same key.
    fn clear(&mut self, key: &str) {
        match key {
            "vertical" => self.vertical = None,
            "ping_id" => self.ping_id = None,
            "lead" => self.lead = None,
            "consent" => self.consent = None,
            "test" => self.test = false,
            "floor" => self.floor = None,
            _ => {}
        }
    }
}

/// Walks the top-level object: `allowed` keys only, each validated as met
/// (`null` is absent); the lead at `stage`.
fn fields(
    body: &mut [u8],
    format: Format,
    allowed: &[&str],
    stage: Stage,
) -> Result<Fields, Invalid> {
    let v = tree(body, format)?;
    let obj = body_object(&v)?;
    let mut f = Fields::default();
    for (k, v) in obj.iter() {
        let at = Loc::new("", k);
        if !allowed.contains(&k.as_ref()) {
            return Err(at.unknown());
        }
        if is_null(v) {
            f.clear(k);
            continue;
        }
        match k.as_ref() {
            "vertical" => {
                f.vertical =
                    Some(value::nonempty(v, at, limits::VERTICAL_ID_BYTES_MAX)?.to_string())
            }
            "ping_id" => {
                f.ping_id = Some(value::nonempty(v, at, limits::PING_ID_BYTES_MAX)?.to_string())
            }
            "lead" => f.lead = Some(lead_from_value(v, stage, "lead")?),
            "consent" => f.consent = Some(consent_from_value(v, "consent")?),
            "test" => f.test = value::boolean(v, at)?,
            "floor" => f.floor = Some(floor(v, at)?),
            // `allowed` only names keys handled above.
            _ => return Err(at.unknown()),
        }
    }
    Ok(f)
}

fn floor(v: &Value<'_>, at: Loc<'_>) -> Result<Cents, Invalid> {
    value::number(v)
        .and_then(money::cents_from_f64)
        .ok_or_else(|| at.invalid("must be a non-negative amount in USD with at most 2 decimals"))
}

fn required<T>(v: Option<T>, key: &str) -> Result<T, Invalid> {
    v.ok_or_else(|| Invalid::missing(key))
}

/// `{"vertical", "lead", "test"?, "floor"?}`; the lead without PII.
pub fn parse_ping(body: &mut [u8]) -> Result<PingRequest, Invalid> {
    parse_ping_as(body, Format::Json)
}

/// [`parse_ping`] for a body in `format`.
pub fn parse_ping_as(body: &mut [u8], format: Format) -> Result<PingRequest, Invalid> {
    let f = fields(
        body,
        format,
        &["vertical", "lead", "test", "floor"],
        Stage::Ping,
    )?;
    Ok(PingRequest {
        vertical: required(f.vertical, "vertical")?,
        lead: required(f.lead, "lead")?,
        test: f.test,
        floor: f.floor,
    })
}

/// `{"ping_id", "lead", "consent"?}`; the full lead.
pub fn parse_post(body: &mut [u8]) -> Result<PostRequest, Invalid> {
    parse_post_as(body, Format::Json)
}

/// [`parse_post`] for a body in `format`.
pub fn parse_post_as(body: &mut [u8], format: Format) -> Result<PostRequest, Invalid> {
    let f = fields(body, format, &["ping_id", "lead", "consent"], Stage::Post)?;
    Ok(PostRequest {
        ping_id: required(f.ping_id, "ping_id")?,
        lead: required(f.lead, "lead")?,
        consent: f.consent,
    })
}

/// `{"vertical", "lead", "consent"?, "test"?}`; the full lead.
pub fn parse_direct(body: &mut [u8]) -> Result<DirectRequest, Invalid> {
    parse_direct_as(body, Format::Json)
}

/// [`parse_direct`] for a body in `format`.
pub fn parse_direct_as(body: &mut [u8], format: Format) -> Result<DirectRequest, Invalid> {
    let f = fields(
        body,
        format,
        &["vertical", "lead", "consent", "test"],
        Stage::Post,
    )?;
    Ok(DirectRequest {
        vertical: required(f.vertical, "vertical")?,
        lead: required(f.lead, "lead")?,
        consent: f.consent,
        test: f.test,
    })
}

/// `POST` / `DELETE /v1/admin/suppressions`: `{"phones": [...]}`, 1 to
/// [`limits::SUPPRESSION_CHANGE_MAX`] US numbers in any spelling
/// `lead::phone_number` takes; a bad one is named (`phones[1]`).
pub fn parse_phones(body: &mut [u8]) -> Result<Vec<u64>, Invalid> {
    let v = parse_json(body).map_err(malformed)?;
    let obj = body_object(&v)?;
    let mut phones = None;
    for (k, v) in obj.iter() {
        if k != "phones" {
            return Err(Loc::new("", k).unknown());
        }
        phones = Some(v);
    }
    let phones = phones.ok_or_else(|| Invalid::missing("phones"))?;
    let items = match phones {
        Value::Array(a) if (1..=limits::SUPPRESSION_CHANGE_MAX).contains(&a.len()) => a,
        _ => {
            return Err(Invalid::bad_value(
                "phones",
                format!(
                    "expected an array of 1 to {} phone numbers",
                    limits::SUPPRESSION_CHANGE_MAX
                ),
            ))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let n = match item {
            Value::String(s) => crate::lead::phone_number(s.as_bytes()),
            _ => None,
        };
        out.push(
            n.ok_or_else(|| Invalid::bad_value(format!("phones[{i}]"), "not a US phone number"))?,
        );
    }
    Ok(out)
}

/// `POST /v1/admin/leads/{id}/return`: `{"reason": "…"}`, a non-empty
/// string of at most [`limits::RETURN_REASON_BYTES_MAX`] bytes (contract
/// §13); the only key.
pub fn parse_return(body: &mut [u8]) -> Result<String, Invalid> {
    let v = parse_json(body).map_err(malformed)?;
    let obj = body_object(&v)?;
    let mut reason = None;
    for (k, v) in obj.iter() {
        if k != "reason" {
            return Err(Loc::new("", k).unknown());
        }
        reason = Some(v);
    }
    match reason.ok_or_else(|| Invalid::missing("reason"))? {
        Value::String(s) if !s.trim().is_empty() && s.len() <= limits::RETURN_REASON_BYTES_MAX => {
            Ok(s.to_string())
        }
        _ => Err(Invalid::bad_value(
            "reason",
            format!(
                "expected a non-empty string of at most {} bytes",
                limits::RETURN_REASON_BYTES_MAX
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
