//! JSON writers for the lead and the consent, as buyers receive them
//! (contract §5). Hand-written rather than derived so that the key order is
//! the contract's, absent options are omitted, and the ping/post split of
//! fields is decided in one place.

use std::io::Write;

use super::{Attr, Consent, Lead};
use crate::json::{write_str as str, Obj};

pub(super) fn lead(l: &Lead, out: &mut Vec<u8>, with_pii: bool) {
    let mut o = Obj::open(out);
    o.str("zip", &l.zip);
    o.str("state", &l.state);
    o.opt_str("city", l.city.as_deref());
    if let Some(age) = l.age {
        o.int("age", i64::from(age));
    }
    if let Some(income) = l.income {
        o.int("income", income);
    }
    o.opt_str("credit", l.credit.map(|c| c.as_str()));
    if let Some(h) = l.homeowner {
        o.bool("homeowner", h);
    }
    o.opt_str("sub_id", l.sub_id.as_deref());
    if !l.attributes.is_empty() {
        attributes(o.key("attributes"), &l.attributes);
    }
    o.opt_str("captured_at", l.captured_at.as_deref());
    if with_pii {
        o.opt_str("first_name", l.first_name.as_deref());
        o.opt_str("last_name", l.last_name.as_deref());
        o.opt_str("phone", l.phone.as_deref());
        o.opt_str("email", l.email.as_deref());
        o.opt_str("address", l.address.as_deref());
    }
    o.close();
}

fn attributes(out: &mut Vec<u8>, attrs: &[(String, Attr)]) {
    out.push(b'{');
    for (i, (k, v)) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        str(out, k);
        out.push(b':');
        match v {
            Attr::Str(s) => str(out, s),
            Attr::Int(n) => {
                let _ = write!(out, "{n}");
            }
            // serde_json writes a non-finite float as null, so the output
            // stays JSON even for a hand-built lead.
            Attr::Float(f) => {
                serde_json::to_writer(&mut *out, f).expect("writing to a Vec cannot fail")
            }
            Attr::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        }
    }
    out.push(b'}');
}

pub(super) fn consent(c: &Consent, out: &mut Vec<u8>) {
    let mut o = Obj::open(out);
    o.str("text", &c.text);
    o.str("captured_at", &c.captured_at);
    o.str("ip", &c.ip);
    o.str("user_agent", &c.user_agent);
    o.str("page_url", &c.page_url);
    o.opt_str("trustedform_cert_url", c.trustedform_cert_url.as_deref());
    o.opt_str("jornaya_leadid", c.jornaya_leadid.as_deref());
    o.close();
}

#[cfg(test)]
mod tests {
    use super::super::{Credit, Lead};
    use super::*;

    fn full() -> Lead {
        Lead {
            zip: "90210".into(),
            state: "CA".into(),
            city: Some("Beverly \"Hills\"\n".into()),
            age: Some(30),
            income: Some(85_000),
            credit: Some(Credit::Good),
            homeowner: Some(false),
            sub_id: Some("s\u{1}1".into()),
            attributes: vec![
                ("a".into(), Attr::Str("x\\y".into())),
                ("b".into(), Attr::Int(-3)),
                ("c".into(), Attr::Float(1.5)),
                ("d".into(), Attr::Bool(true)),
            ],
            captured_at: Some("2024-05-01T12:00:00Z".into()),
            first_name: Some("Ann".into()),
            last_name: Some("Lee".into()),
            phone: Some("+15552345678".into()),
            email: Some("ann@example.com".into()),
            address: Some("1 Main St".into()),
        }
    }

    fn json(l: &Lead, with_pii: bool) -> (Vec<u8>, serde_json::Value) {
        let mut out = Vec::new();
        l.write_json(&mut out, with_pii);
        let v = serde_json::from_slice(&out).expect("writer output is JSON");
        (out, v)
    }

    #[test]
    fn full_lead_round_trips_in_contract_order() {
        let (bytes, v) = json(&full(), true);
        assert_eq!(v["city"], "Beverly \"Hills\"\n");
        assert_eq!(v["sub_id"], "s\u{1}1");
        assert_eq!(v["age"], 30);
        assert_eq!(v["homeowner"], false);
        assert_eq!(
            v["attributes"],
            serde_json::json!({"a": "x\\y", "b": -3, "c": 1.5, "d": true})
        );
        assert_eq!(v["phone"], "+15552345678");
        let s = String::from_utf8(bytes).unwrap();
        let order = [
            "\"zip\"",
            "\"state\"",
            "\"city\"",
            "\"age\"",
            "\"income\"",
            "\"credit\"",
            "\"homeowner\"",
        ];
        let at: Vec<usize> = order.iter().map(|k| s.find(k).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{s}");
        assert!(s.find("\"captured_at\"").unwrap() < s.find("\"first_name\"").unwrap());
    }

    #[test]
    fn ping_json_has_no_pii_and_omits_absent_options() {
        let (bytes, v) = json(&full(), false);
        let obj = v.as_object().unwrap();
        for k in ["first_name", "last_name", "phone", "email", "address"] {
            assert!(!obj.contains_key(k), "{k} leaked");
        }
        assert!(!String::from_utf8(bytes).unwrap().contains("Ann"));
        let minimal = Lead {
            zip: "10001".into(),
            state: "NY".into(),
            ..Lead::default()
        };
        let (bytes, _) = json(&minimal, true);
        assert_eq!(bytes, br#"{"zip":"10001","state":"NY"}"#);
    }

    #[test]
    fn consent_round_trips() {
        let c = Consent {
            text: "I agree to be \"contacted\".\u{2028}".into(),
            captured_at: "2024-05-01T12:00:00Z".into(),
            ip: "2001:db8::1".into(),
            user_agent: "Mozilla/5.0".into(),
            page_url: "https://example.com/q".into(),
            trustedform_cert_url: None,
            jornaya_leadid: Some("ABC".into()),
        };
        let mut out = Vec::new();
        c.write_json(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["text"], c.text);
        assert_eq!(v["jornaya_leadid"], "ABC");
        assert!(v.get("trustedform_cert_url").is_none());
        assert_eq!(v.as_object().unwrap().len(), 6);
    }

    #[test]
    fn non_finite_float_still_writes_json() {
        let l = Lead {
            attributes: vec![("x".into(), Attr::Float(f64::NAN))],
            ..Lead::default()
        };
        let (_, v) = json(&l, false);
        assert!(v["attributes"]["x"].is_null());
    }
}
