//! Turning a parsed JSON value into a [`Lead`] or [`Consent`]: every rule of
//! contract §3, checked once, the first problem reported with its path.
//!
//! Keys are visited in document order, so the first problem is the first
//! one the publisher wrote; required fields are checked after, in contract
//! order. `null` counts as absent for every field (publishers' forms often
//! send it for an unanswered question) — except PII at the ping, where even
//! a `null` `phone` says the publisher's integration is sending the wrong
//! stage. A key given twice keeps its last value, as in most JSON parsers.

use simd_json::borrowed::Value;
use simd_json::StaticNode;

use super::value::{self, is_null, Loc};
use super::{check, Attr, Consent, Credit, Lead, Stage};
use crate::lead::Invalid;
use crate::{limits, usps};

/// The keys a lead may carry (also what a buyer template may name as
/// `lead.<key>`, `buyer::spec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Zip,
    State,
    City,
    Age,
    Income,
    Credit,
    Homeowner,
    SubId,
    Attributes,
    CapturedAt,
    FirstName,
    LastName,
    Phone,
    Email,
    Address,
}

impl Field {
    /// The field a lead key names; `None` for any other key.
    pub fn of(k: &str) -> Option<Field> {
        Some(match k {
            "zip" => Field::Zip,
            "state" => Field::State,
            "city" => Field::City,
            "age" => Field::Age,
            "income" => Field::Income,
            "credit" => Field::Credit,
            "homeowner" => Field::Homeowner,
            "sub_id" => Field::SubId,
            "attributes" => Field::Attributes,
            "captured_at" => Field::CapturedAt,
            "first_name" => Field::FirstName,
            "last_name" => Field::LastName,
            "phone" => Field::Phone,
            "email" => Field::Email,
            "address" => Field::Address,
            _ => return None,
        })
    }

    fn is_pii(self) -> bool {
        matches!(
            self,
            Field::FirstName | Field::LastName | Field::Phone | Field::Email | Field::Address
        )
    }
}

/// Validates `v` as a lead sent at `stage`; `path` (`"lead"`) prefixes
/// every error's field.
pub fn lead_from_value(v: &Value<'_>, stage: Stage, path: &str) -> Result<Lead, Invalid> {
    let obj = match v {
        Value::Object(o) => o,
        _ => return Err(Invalid::bad_value(path, "must be an object")),
    };
    let mut lead = Lead::default();
    for (k, v) in obj.iter() {
        let at = Loc::new(path, k);
        let key = Field::of(k).ok_or_else(|| at.unknown())?;
        if stage == Stage::Ping && key.is_pii() {
            return Err(Invalid::pii_in_ping(at.path()));
        }
        if is_null(v) {
            clear(&mut lead, key);
        } else {
            set(&mut lead, key, v, at)?;
        }
    }
    require(&lead, stage, path)?;
    Ok(lead)
}

fn set(lead: &mut Lead, key: Field, v: &Value<'_>, at: Loc<'_>) -> Result<(), Invalid> {
    let short = limits::LEAD_SHORT_STRING_BYTES_MAX;
    let long = limits::LEAD_STRING_BYTES_MAX;
    match key {
        Field::Zip => lead.zip = zip(v, at)?,
        Field::State => lead.state = state(v, at)?,
        Field::City => lead.city = Some(value::string(v, at, long)?.to_string()),
        Field::Age => {
            let age = value::integer(v, at, limits::LEAD_AGE_MIN, limits::LEAD_AGE_MAX)?;
            lead.age = Some(u16::try_from(age).expect("age bounds fit u16"));
        }
        Field::Income => lead.income = Some(value::integer(v, at, 0, limits::LEAD_INCOME_MAX)?),
        Field::Credit => lead.credit = Some(credit(v, at)?),
        Field::Homeowner => lead.homeowner = Some(value::boolean(v, at)?),
        Field::SubId => lead.sub_id = Some(value::string(v, at, short)?.to_string()),
        Field::Attributes => lead.attributes = attributes(v, at)?,
        Field::CapturedAt => lead.captured_at = Some(time(v, at)?),
        Field::FirstName => lead.first_name = Some(value::nonempty(v, at, short)?.to_string()),
        Field::LastName => lead.last_name = Some(value::nonempty(v, at, short)?.to_string()),
        Field::Phone => lead.phone = Some(phone(v, at)?),
        Field::Email => lead.email = Some(email(v, at)?),
        Field::Address => lead.address = Some(value::string(v, at, long)?.to_string()),
    }
    Ok(())
}

/// `null` is absent, also after an earlier value for the same key.
fn clear(lead: &mut Lead, key: Field) {
    match key {
        Field::Zip => lead.zip.clear(),
        Field::State => lead.state.clear(),
        Field::City => lead.city = None,
        Field::Age => lead.age = None,
        Field::Income => lead.income = None,
        Field::Credit => lead.credit = None,
        Field::Homeowner => lead.homeowner = None,
        Field::SubId => lead.sub_id = None,
        Field::Attributes => lead.attributes.clear(),
        Field::CapturedAt => lead.captured_at = None,
        Field::FirstName => lead.first_name = None,
        Field::LastName => lead.last_name = None,
        Field::Phone => lead.phone = None,
        Field::Email => lead.email = None,
        Field::Address => lead.address = None,
    }
}

fn require(lead: &Lead, stage: Stage, path: &str) -> Result<(), Invalid> {
    let missing = |key: &str| Err(Loc::new(path, key).missing());
    if lead.zip.is_empty() {
        return missing("zip");
    }
    if lead.state.is_empty() {
        return missing("state");
    }
    if stage == Stage::Post {
        let pii = [
            ("first_name", lead.first_name.is_none()),
            ("last_name", lead.last_name.is_none()),
            ("phone", lead.phone.is_none()),
            ("email", lead.email.is_none()),
        ];
        if let Some((key, _)) = pii.iter().find(|(_, absent)| *absent) {
            return missing(key);
        }
    }
    Ok(())
}

fn zip(v: &Value<'_>, at: Loc<'_>) -> Result<String, Invalid> {
    match v {
        Value::String(s) if s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(s.to_string())
        }
        _ => Err(at.invalid("must be a string of 5 digits")),
    }
}

/// Upper-cased before the check: `"ca"` is an obvious `"CA"`, and storing
/// one spelling keeps buyer filters byte-for-byte comparisons.
fn state(v: &Value<'_>, at: Loc<'_>) -> Result<String, Invalid> {
    if let Value::String(s) = v {
        if s.len() == 2 {
            let upper = s.to_ascii_uppercase();
            if usps::is_state(&upper) {
                return Ok(upper);
            }
        }
    }
    Err(at.invalid("must be a two-letter USPS state code"))
}

fn credit(v: &Value<'_>, at: Loc<'_>) -> Result<Credit, Invalid> {
    match v {
        Value::String(s) => Credit::parse(s),
        _ => None,
    }
    .ok_or_else(|| at.invalid("must be one of excellent, good, fair, poor"))
}

fn time(v: &Value<'_>, at: Loc<'_>) -> Result<String, Invalid> {
    match v {
        // The bound keeps a hostile string away from the time parser.
        Value::String(s) if s.len() <= limits::TIME_BYTES_MAX && check::parse_rfc3339(s) => {
            Ok(s.to_string())
        }
        _ => Err(at.invalid("must be an RFC 3339 time such as 2024-05-01T12:00:00Z")),
    }
}

fn phone(v: &Value<'_>, at: Loc<'_>) -> Result<String, Invalid> {
    match v {
        Value::String(s) => check::normalize_phone(s),
        _ => None,
    }
    .ok_or_else(|| at.invalid("must be a US phone number"))
}

fn email(v: &Value<'_>, at: Loc<'_>) -> Result<String, Invalid> {
    match v {
        Value::String(s) if check::valid_email(s) => Ok(s.to_string()),
        _ => Err(at.invalid("must be an email address")),
    }
}

/// A flat object of strings, numbers and booleans, returned sorted by key
/// with the last of any repeated key kept.
fn attributes(v: &Value<'_>, at: Loc<'_>) -> Result<Vec<(String, Attr)>, Invalid> {
    let obj = value::object(v, at)?;
    if obj.len() > limits::LEAD_ATTRIBUTES_MAX {
        return Err(at.invalid(format!(
            "must have at most {} keys",
            limits::LEAD_ATTRIBUTES_MAX
        )));
    }
    let path = at.path();
    let mut attrs = Vec::with_capacity(obj.len());
    for (k, v) in obj.iter() {
        let at = Loc::new(&path, k);
        if k.is_empty() || k.len() > limits::LEAD_ATTRIBUTE_KEY_BYTES_MAX {
            let max = limits::LEAD_ATTRIBUTE_KEY_BYTES_MAX;
            return Err(at.invalid(format!("attribute names must be 1 to {max} bytes")));
        }
        attrs.push((k.to_string(), attr(v, at)?));
    }
    // Stable sort: among equal keys, document order survives, so keeping
    // the last of each run keeps the last one written.
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(String, Attr)> = Vec::with_capacity(attrs.len());
    for (k, v) in attrs {
        match out.last_mut() {
            Some(last) if last.0 == k => last.1 = v,
            _ => out.push((k, v)),
        }
    }
    Ok(out)
}

fn attr(v: &Value<'_>, at: Loc<'_>) -> Result<Attr, Invalid> {
    match v {
        Value::String(_) => Ok(Attr::Str(
            value::string(v, at, limits::LEAD_ATTRIBUTE_VALUE_BYTES_MAX)?.to_string(),
        )),
        Value::Static(StaticNode::Bool(b)) => Ok(Attr::Bool(*b)),
        Value::Static(StaticNode::F64(f)) => Ok(Attr::Float(*f)),
        Value::Static(StaticNode::I64(_) | StaticNode::U64(_)) => {
            Ok(Attr::Int(value::integer(v, at, i64::MIN, i64::MAX)?))
        }
        _ => Err(at.invalid("must be a string, number or boolean")),
    }
}

/// The keys a consent may carry.
#[derive(Clone, Copy)]
enum CKey {
    Text,
    CapturedAt,
    Ip,
    UserAgent,
    PageUrl,
    TrustedForm,
    Jornaya,
}

impl CKey {
    fn of(k: &str) -> Option<CKey> {
        Some(match k {
            "text" => CKey::Text,
            "captured_at" => CKey::CapturedAt,
            "ip" => CKey::Ip,
            "user_agent" => CKey::UserAgent,
            "page_url" => CKey::PageUrl,
            "trustedform_cert_url" => CKey::TrustedForm,
            "jornaya_leadid" => CKey::Jornaya,
            _ => return None,
        })
    }
}

/// Validates `v` as a consent object; `path` (`"consent"`) prefixes every
/// error's field. The caller treats `"consent": null` as absent.
pub fn consent_from_value(v: &Value<'_>, path: &str) -> Result<Consent, Invalid> {
    let obj = match v {
        Value::Object(o) => o,
        _ => return Err(Invalid::bad_value(path, "must be an object")),
    };
    let mut c = Consent::default();
    for (k, v) in obj.iter() {
        let at = Loc::new(path, k);
        let key = CKey::of(k).ok_or_else(|| at.unknown())?;
        if is_null(v) {
            clear_consent(&mut c, key);
        } else {
            set_consent(&mut c, key, v, at)?;
        }
    }
    let required = [
        ("text", c.text.is_empty()),
        ("captured_at", c.captured_at.is_empty()),
        ("ip", c.ip.is_empty()),
        ("user_agent", c.user_agent.is_empty()),
        ("page_url", c.page_url.is_empty()),
    ];
    if let Some((key, _)) = required.iter().find(|(_, absent)| *absent) {
        return Err(Loc::new(path, key).missing());
    }
    Ok(c)
}

fn clear_consent(c: &mut Consent, key: CKey) {
    match key {
        CKey::Text => c.text.clear(),
        CKey::CapturedAt => c.captured_at.clear(),
        CKey::Ip => c.ip.clear(),
        CKey::UserAgent => c.user_agent.clear(),
        CKey::PageUrl => c.page_url.clear(),
        CKey::TrustedForm => c.trustedform_cert_url = None,
        CKey::Jornaya => c.jornaya_leadid = None,
    }
}

fn set_consent(c: &mut Consent, key: CKey, v: &Value<'_>, at: Loc<'_>) -> Result<(), Invalid> {
    let long = limits::LEAD_STRING_BYTES_MAX;
    match key {
        CKey::Text => c.text = value::nonempty(v, at, limits::CONSENT_TEXT_BYTES_MAX)?.to_string(),
        CKey::CapturedAt => c.captured_at = time(v, at)?,
        CKey::Ip => {
            let s = value::string(v, at, limits::IP_BYTES_MAX)?;
            if !check::valid_ip(s) {
                return Err(at.invalid("must be an IPv4 or IPv6 address"));
            }
            c.ip = s.to_string();
        }
        CKey::UserAgent => c.user_agent = value::nonempty(v, at, long)?.to_string(),
        CKey::PageUrl => {
            let s = value::string(v, at, limits::URL_BYTES_MAX)?;
            if !check::valid_page_url(s) {
                return Err(at.invalid("must be an http or https URL"));
            }
            c.page_url = s.to_string();
        }
        CKey::TrustedForm => {
            c.trustedform_cert_url = Some(value::string(v, at, limits::URL_BYTES_MAX)?.to_string())
        }
        CKey::Jornaya => c.jornaya_leadid = Some(value::string(v, at, long)?.to_string()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::InvalidKind;

    fn value(json: &str) -> Value<'static> {
        let mut bytes = json.as_bytes().to_vec();
        simd_json::borrowed::to_value(&mut bytes)
            .unwrap()
            .into_static()
    }

    #[test]
    fn paths_use_the_given_prefix() {
        let v = value(r#"{"zip":"90210","state":"CA","age":5}"#);
        let e = lead_from_value(&v, Stage::Ping, "leads[0]").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("leads[0].age"));
        let e = consent_from_value(&value(r#"{"y":1}"#), "c").unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (InvalidKind::Unknown, Some("c.y"))
        );
    }

    #[test]
    fn post_stage_accepts_and_ping_stage_refuses_the_same_pii() {
        let v = value(
            r#"{"zip":"90210","state":"CA","first_name":"A","last_name":"B","phone":"555 234 5678","email":"a@b.co"}"#,
        );
        let lead = lead_from_value(&v, Stage::Post, "lead").unwrap();
        assert_eq!(lead.phone.as_deref(), Some("+15552345678"));
        let e = lead_from_value(&v, Stage::Ping, "lead").unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (InvalidKind::PiiInPing, Some("lead.first_name"))
        );
    }

    #[test]
    fn many_attributes_sort_and_round_trip() {
        // Over 32 keys simd-json switches to a hash map: order must not leak.
        let attrs: Vec<String> = (0..40)
            .rev()
            .map(|i| format!(r#""k{i:02}":{i}.5"#))
            .collect();
        let v = value(&format!(
            r#"{{"zip":"90210","state":"CA","attributes":{{{},"b":true}}}}"#,
            attrs.join(",")
        ));
        let lead = lead_from_value(&v, Stage::Ping, "lead").unwrap();
        assert_eq!(lead.attributes.len(), 41);
        assert!(lead.attributes.windows(2).all(|w| w[0].0 < w[1].0));
        let mut out = Vec::new();
        lead.write_json(&mut out, false);
        let again = lead_from_value(
            &value(std::str::from_utf8(&out).unwrap()),
            Stage::Ping,
            "lead",
        )
        .unwrap();
        assert_eq!(again, lead);
    }

    #[test]
    fn null_after_a_value_clears_it() {
        let v =
            value(r#"{"zip":"90210","state":"CA","city":"LA","city":null,"age":30,"age":null}"#);
        let lead = lead_from_value(&v, Stage::Ping, "lead").unwrap();
        assert_eq!((lead.city, lead.age), (None, None));
    }
}
