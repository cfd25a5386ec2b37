//! The lead and its consent: typed, validated once at the edge, then passed
//! around as plain values. Pure domain, no I/O.
//!
//! A lead arrives twice in ping-post: at the ping with its non-identifying
//! fields only, and at the post with the PII added. Both go through
//! [`lead_from_value`] with the [`Stage`] saying which fields are allowed;
//! [`Lead::same_ping_fields`] is how the post proves it is the lead that was
//! pinged. Writers produce the JSON buyers receive (contract §5).

mod check;
mod invalid;
mod parse;
pub(crate) mod value;
mod write;

use sha2::{Digest, Sha256};

pub use check::{
    normalize_phone, parse_rfc3339, phone_number, valid_email, valid_ip, valid_page_url,
};
pub use invalid::{Invalid, InvalidKind};
pub use parse::{consent_from_value, lead_from_value, Field};

/// Which half of ping-post a lead is sent in: PII is refused at the ping and
/// required at the post (and direct post).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Ping,
    Post,
}

/// Self-reported credit rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credit {
    Excellent,
    Good,
    Fair,
    Poor,
}

impl Credit {
    pub fn as_str(self) -> &'static str {
        match self {
            Credit::Excellent => "excellent",
            Credit::Good => "good",
            Credit::Fair => "fair",
            Credit::Poor => "poor",
        }
    }

    pub fn parse(s: &str) -> Option<Credit> {
        match s {
            "excellent" => Some(Credit::Excellent),
            "good" => Some(Credit::Good),
            "fair" => Some(Credit::Fair),
            "poor" => Some(Credit::Poor),
            _ => None,
        }
    }
}

/// A value in `lead.attributes`: the vertical-specific extras (vehicle
/// year, coverage type…) that leadx carries without interpreting.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// A validated lead. Strings are within their bounds, `state` is an
/// upper-case USPS code, `phone` is `+1XXXXXXXXXX`, `attributes` are sorted
/// by key with no duplicates (so two spellings of one object compare equal).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lead {
    pub zip: String,
    pub state: String,
    pub city: Option<String>,
    pub age: Option<u16>,
    pub income: Option<i64>,
    pub credit: Option<Credit>,
    pub homeowner: Option<bool>,
    pub sub_id: Option<String>,
    pub attributes: Vec<(String, Attr)>,
    pub captured_at: Option<String>,
    // Post only (PII).
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Normalised `+1XXXXXXXXXX`.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
}

impl Lead {
    /// True when every ping field (all but the PII ones) equals `other`'s —
    /// the post's `ping_mismatch` check.
    pub fn same_ping_fields(&self, other: &Lead) -> bool {
        self.ping_field_mismatch(other).is_none()
    }

    /// The first ping field (in contract order) that differs from `other`'s,
    /// as a path below the lead (`zip`, `attributes.color`), for the
    /// `ping_mismatch` error's `field` (contract §8: the field at fault).
    pub fn ping_field_mismatch(&self, other: &Lead) -> Option<String> {
        let checks: [(&str, bool); 9] = [
            ("zip", self.zip == other.zip),
            ("state", self.state == other.state),
            ("city", self.city == other.city),
            ("age", self.age == other.age),
            ("income", self.income == other.income),
            ("credit", self.credit == other.credit),
            ("homeowner", self.homeowner == other.homeowner),
            ("sub_id", self.sub_id == other.sub_id),
            ("captured_at", self.captured_at == other.captured_at),
        ];
        if let Some((name, _)) = checks.iter().find(|(_, same)| !same) {
            return Some((*name).to_owned());
        }
        if self.attributes == other.attributes {
            return None;
        }
        Some(first_attribute_difference(
            &self.attributes,
            &other.attributes,
        ))
    }

    /// Writes the lead as a JSON object: ping fields only, or all fields.
    /// Keys in contract order; absent options omitted; attributes as an
    /// object.
    pub fn write_json(&self, out: &mut Vec<u8>, with_pii: bool) {
        write::lead(self, out, with_pii);
    }

    /// Dedupe keys: SHA-256 of the normalised phone and of the lower-cased
    /// email (`None` when absent).
    pub fn dedupe_hashes(&self) -> [Option<[u8; 32]>; 2] {
        let phone = self.phone.as_deref().map(|p| sha256(p.as_bytes()));
        let email = self
            .email
            .as_deref()
            .map(|e| sha256(e.to_lowercase().as_bytes()));
        [phone, email]
    }
}

/// `attributes.<key>` for the first key (in sorted order) whose value
/// differs or that only one side has; both lists are sorted by key.
fn first_attribute_difference(a: &[(String, Attr)], b: &[(String, Attr)]) -> String {
    let (mut i, mut j) = (0, 0);
    let key = loop {
        match (a.get(i), b.get(j)) {
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => break ka,
                std::cmp::Ordering::Greater => break kb,
                std::cmp::Ordering::Equal if va != vb => break ka,
                std::cmp::Ordering::Equal => (i, j) = (i + 1, j + 1),
            },
            (Some((k, _)), None) | (None, Some((k, _))) => break k,
            // Equal lists are handled by the caller.
            (None, None) => return "attributes".to_owned(),
        }
    };
    format!("attributes.{key}")
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The consumer's consent to be contacted (TCPA), carried to the buyer with
/// the post as evidence.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Consent {
    /// The disclosure the consumer saw.
    pub text: String,
    /// RFC 3339.
    pub captured_at: String,
    /// The consumer's IP literal.
    pub ip: String,
    pub user_agent: String,
    /// http(s) URL of the form.
    pub page_url: String,
    pub trustedform_cert_url: Option<String>,
    pub jornaya_leadid: Option<String>,
}

impl Consent {
    /// Writes the consent as a JSON object, keys in contract order.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        write::consent(self, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_round_trips_its_name() {
        for c in [Credit::Excellent, Credit::Good, Credit::Fair, Credit::Poor] {
            assert_eq!(Credit::parse(c.as_str()), Some(c));
        }
        assert_eq!(Credit::parse("Good"), None);
    }

    #[test]
    fn same_ping_fields_ignores_pii_only() {
        let a = Lead {
            zip: "90210".into(),
            state: "CA".into(),
            age: Some(30),
            ..Lead::default()
        };
        let mut b = a.clone();
        b.phone = Some("+15552345678".into());
        b.first_name = Some("Ann".into());
        b.address = Some("1 Main St".into());
        assert!(a.same_ping_fields(&b));
        let mut c = b.clone();
        c.age = Some(31);
        assert!(!a.same_ping_fields(&c));
        let mut d = a.clone();
        d.attributes.push(("x".into(), Attr::Int(1)));
        assert!(!a.same_ping_fields(&d));
        let mut e = a.clone();
        e.captured_at = Some("2024-05-01T12:00:00Z".into());
        assert!(!a.same_ping_fields(&e));
    }

    /// Issue #7 point 8: `ping_mismatch` names the field at fault.
    #[test]
    fn ping_field_mismatch_names_the_first_differing_field() {
        let a = Lead {
            zip: "90210".into(),
            state: "CA".into(),
            age: Some(30),
            ..Lead::default()
        };
        let mut b = a.clone();
        b.email = Some("a@b.co".into());
        assert_eq!(a.ping_field_mismatch(&b), None, "PII is not a ping field");
        b.zip = "10001".into();
        assert_eq!(a.ping_field_mismatch(&b).as_deref(), Some("zip"));
        b.age = Some(31);
        assert_eq!(
            a.ping_field_mismatch(&b).as_deref(),
            Some("zip"),
            "the first in contract order"
        );
        let mut c = a.clone();
        c.age = None;
        assert_eq!(a.ping_field_mismatch(&c).as_deref(), Some("age"));
        let mut d = a.clone();
        d.attributes = vec![
            ("color".into(), Attr::Str("red".into())),
            ("size".into(), Attr::Int(2)),
        ];
        let mut e = d.clone();
        e.attributes[1].1 = Attr::Int(3);
        assert_eq!(
            d.ping_field_mismatch(&e).as_deref(),
            Some("attributes.size")
        );
        e.attributes.insert(0, ("ber".into(), Attr::Bool(true)));
        assert_eq!(d.ping_field_mismatch(&e).as_deref(), Some("attributes.ber"));
        assert_eq!(
            a.ping_field_mismatch(&d).as_deref(),
            Some("attributes.color")
        );
        assert_eq!(
            d.ping_field_mismatch(&a).as_deref(),
            Some("attributes.color")
        );
    }

    #[test]
    fn dedupe_hashes_lower_case_the_email() {
        let mut a = Lead {
            phone: Some("+15552345678".into()),
            email: Some("Ann@Example.com".into()),
            ..Lead::default()
        };
        let [p, e] = a.dedupe_hashes();
        assert_eq!(p, Some(sha256(b"+15552345678")));
        assert_eq!(e, Some(sha256(b"ann@example.com")));
        a.email = Some("ann@example.com".into());
        assert_eq!(a.dedupe_hashes()[1], e);
        assert_eq!(Lead::default().dedupe_hashes(), [None, None]);
    }
}
