//! JSON or XML (contract §11): which one a publisher's request speaks, and
//! its answers — success and error — written in it by one writer per
//! format from one list of keys, so an XML answer has exactly the elements
//! the JSON answer has keys.
//!
//! The format is decided from the head, before any body byte is read:
//! `Content-Type` `application/xml` or `text/xml` (parameters allowed) on
//! the publisher's POSTs (ping, post, direct post) makes the request — and
//! every answer to it — XML. An error found before the media type is
//! checked (401, 403, 405, 429…), or one about the media type itself
//! (415), follows the same rule, and when `Content-Type` names neither
//! format, the first of `application/json`, `application/xml`, `text/xml`
//! that `Accept` lists; JSON otherwise. Other endpoints answer JSON
//! (`GET /v1/leads/{id}` and the admin API included).
//!
//! Known gap: what the HTTP layer answers before any handler sees the
//! request — 413 for a body over `server.body_bytes_max`, 408, 400 for
//! malformed HTTP (`Handler::error_response`, which gets no head) — stays
//! JSON whatever the request's format.

use crate::api::error::ApiError;
use crate::http::server::{Head, Response};
use crate::money::{self, Cents};
pub use crate::wire::Format;

/// The media types of a publisher's POST body.
pub(crate) fn body_format(content_type: Option<&str>) -> Result<Format, ApiError> {
    media_format(content_type.unwrap_or("")).ok_or_else(|| {
        ApiError::new(
            415,
            "unsupported_media_type",
            "Content-Type must be application/json or application/xml",
        )
    })
}

/// `application/json` → JSON; `application/xml`, `text/xml` → XML.
fn media_format(value: &str) -> Option<Format> {
    let media = value.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        Some(Format::Json)
    } else if media.eq_ignore_ascii_case("application/xml")
        || media.eq_ignore_ascii_case("text/xml")
    {
        Some(Format::Xml)
    } else {
        None
    }
}

/// The format every answer to `head` is written in (see the module doc).
pub(crate) fn answer_format(head: &Head<'_>) -> Format {
    if let Some(f) = head.header("content-type").and_then(media_format) {
        return f;
    }
    head.header("accept")
        .and_then(|a| a.split(',').find_map(media_format))
        .unwrap_or(Format::Json)
}

/// A value in an answer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Str(&'a str),
    /// USD with two decimals; `null` (JSON) / an empty element (XML) when
    /// absent.
    Cents(Option<Cents>),
}

/// A 200 answer with `fields`, in `format`.
pub(crate) fn answer(format: Format, fields: &[(&str, Val<'_>)]) -> Response {
    let (content_type, body) = match format {
        Format::Json => ("application/json", json_object(fields)),
        Format::Xml => ("application/xml", xml_document("response", fields)),
    };
    Response {
        status: 200,
        content_type,
        headers: Vec::new(),
        body,
    }
}

/// The body and content type of `e` in `format`.
pub(crate) fn error_body(e: &ApiError, format: Format) -> (&'static str, Vec<u8>) {
    match format {
        Format::Json => ("application/json", e.body()),
        Format::Xml => {
            let mut fields = vec![
                ("code", Val::Str(e.code)),
                ("message", Val::Str(&e.message)),
            ];
            if let Some(f) = &e.field {
                fields.push(("field", Val::Str(f)));
            }
            ("application/xml", xml_document("error", &fields))
        }
    }
}

fn json_object(fields: &[(&str, Val<'_>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut o = crate::json::Obj::open(&mut out);
    for (k, v) in fields {
        match v {
            Val::Str(s) => o.str(k, s),
            Val::Cents(c) => o.cents(k, *c),
        };
    }
    o.close();
    out
}

/// `<?xml …?><root><key>value</key>…</root>`; keys are literals.
fn xml_document(root: &str, fields: &[(&str, Val<'_>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
    out.extend_from_slice(root.as_bytes());
    out.push(b'>');
    for (k, v) in fields {
        match v {
            Val::Str(s) => crate::xml::element(&mut out, k, s),
            Val::Cents(Some(c)) => {
                let mut text = Vec::with_capacity(12);
                money::write_cents(&mut text, *c);
                let text = String::from_utf8(text).expect("digits and a dot");
                crate::xml::element(&mut out, k, &text);
            }
            Val::Cents(None) => {
                out.push(b'<');
                out.extend_from_slice(k.as_bytes());
                out.extend_from_slice(b"/>");
            }
        }
    }
    out.extend_from_slice(b"</");
    out.extend_from_slice(root.as_bytes());
    out.extend_from_slice(b">\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The elements of a flat XML answer, read back through the shared loop.
    fn read_flat(body: &[u8]) -> Vec<(String, String)> {
        let all = crate::xml::tests::texts(body).expect("the answer parses");
        all.into_iter().skip(1).collect()
    }

    #[test]
    fn one_element_per_json_key_with_the_same_values() {
        let fields = [
            ("status", Val::Str("sold")),
            ("lead_id", Val::Str("l_1")),
            ("price", Val::Cents(Some(960))),
            ("none", Val::Cents(None)),
        ];
        let json: serde_json::Value = serde_json::from_slice(&json_object(&fields)).unwrap();
        let xml = read_flat(&xml_document("response", &fields));
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let names: Vec<&str> = xml.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["status", "lead_id", "price", "none"]);
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted, "serde_json sorts its keys");
        assert_eq!(xml[2].1, "9.60");
        assert_eq!(json["price"], 9.6);
        assert_eq!(xml[3].1, "");
    }

    /// Property: whatever an error message holds (it may quote input), the
    /// XML error parses and carries it as data.
    #[test]
    fn any_message_round_trips_through_the_xml_error() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let alphabet: Vec<char> = "<>&'\"\t\n\r\u{0}\u{1}\u{1f}\u{fffe}\u{ffff}]]>?!-aé€😀 /="
            .chars()
            .collect();
        for _ in 0..2000 {
            let mut msg = String::new();
            for _ in 0..(seed % 24) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                msg.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let e = ApiError::field(422, "invalid_field", msg.clone(), msg.clone());
            let (ct, body) = error_body(&e, Format::Xml);
            assert_eq!(ct, "application/xml");
            let got = read_flat(&body);
            let want = crate::xml::carried(&msg);
            assert_eq!(got[0], ("code".into(), "invalid_field".into()));
            assert_eq!(got[1], ("message".into(), want.clone()), "{msg:?}");
            assert_eq!(got[2], ("field".into(), want));
        }
    }

    #[test]
    fn media_types_and_accept_decide_the_format() {
        assert_eq!(
            media_format("application/xml; charset=utf-8"),
            Some(Format::Xml)
        );
        assert_eq!(media_format("TEXT/XML"), Some(Format::Xml));
        assert_eq!(media_format("application/json"), Some(Format::Json));
        assert_eq!(media_format("application/soap+xml"), None);
        let e = body_format(Some("text/plain")).unwrap_err();
        assert_eq!((e.status, e.code), (415, "unsupported_media_type"));
    }
}
