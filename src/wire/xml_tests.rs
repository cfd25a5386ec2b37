//! XML bodies against their JSON twins: the same request comes out, and the
//! same refusal (status, code, field) — the proof that XML has no validator
//! of its own. Plus what only XML can get wrong.

use super::super::{parse_direct_as, parse_ping_as, parse_post_as, Format};
use crate::api::error::ApiError;
use crate::lead::Invalid;

/// The XML twin of a JSON request (contract §11): root `<request>`, one
/// element per key, nested objects as nested elements, `null` absent.
pub(crate) fn twin(json: &str) -> String {
    fn write(out: &mut Vec<u8>, name: &str, v: &serde_json::Value) {
        use serde_json::Value as V;
        let text = match v {
            V::Null => return,
            V::Object(o) => {
                out.extend_from_slice(format!("<{name}>").as_bytes());
                for (k, v) in o {
                    write(out, k, v);
                }
                out.extend_from_slice(format!("</{name}>").as_bytes());
                return;
            }
            V::String(s) => s.clone(),
            other => other.to_string(),
        };
        crate::xml::element(out, name, &text);
    }
    let v: serde_json::Value = serde_json::from_str(json).expect("a JSON case");
    let mut out = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n".to_vec();
    write(&mut out, "request", &v);
    String::from_utf8(out).expect("UTF-8")
}

type Parse<T> = fn(&mut [u8], Format) -> Result<T, Invalid>;

fn both<T: std::fmt::Debug + PartialEq>(parse: Parse<T>, json: &str) {
    let j = parse(&mut json.as_bytes().to_vec(), Format::Json);
    let xml = twin(json);
    let x = parse(&mut xml.into_bytes(), Format::Xml);
    match (j, x) {
        (Ok(j), Ok(x)) => assert_eq!(j, x, "{json}"),
        (Err(j), Err(x)) => {
            let (j, x) = (ApiError::from(j), ApiError::from(x));
            assert_eq!(
                (j.status, j.code, j.field),
                (x.status, x.code, x.field),
                "{json}"
            );
        }
        (j, x) => panic!("{json}: JSON {j:?} but XML {x:?}"),
    }
}

const LEAD: &str = r#""zip":"90210","state":"ca","city":"Beverly <Hills> & co","age":34,"income":85000,"credit":"good","homeowner":true,"sub_id":"s1","attributes":{"vehicle_year":2019,"coverage":"full","x":1.5,"y":false,"code":"01234"},"captured_at":"2024-05-01T12:00:00Z""#;
const PII: &str = r#""first_name":"Ann","last_name":"O'Lee","phone":"(555) 234-5678","email":"ann@example.com","address":"1 Main St""#;
const CONSENT: &str = r#"{"text":"I agree","captured_at":"2024-05-01T11:59:41Z","ip":"203.0.113.9","user_agent":"Mozilla/5.0","page_url":"https://example.com/q?a=1&b=2","trustedform_cert_url":"https://cert.trustedform.com/x"}"#;

#[test]
fn every_request_shape_reads_the_same_in_both_formats() {
    let pings = [
        format!(r#"{{"vertical":"auto","lead":{{{LEAD}}},"test":true,"floor":2.50}}"#),
        format!(r#"{{"vertical":"auto","lead":{{{LEAD}}},"test":false,"floor":3}}"#),
        r#"{"vertical":"auto","lead":{"zip":"10001","state":"NY","attributes":{}}}"#.into(),
        // Refusals: the same code and field.
        r#"{"vertical":"auto","lead":{"zip":"1001","state":"NY"}}"#.into(),
        r#"{"vertical":"auto","lead":{"zip":"10001","state":"NY","age":17}}"#.into(),
        r#"{"vertical":"auto","lead":{"zip":"10001","state":"NY","age":30.5}}"#.into(),
        r#"{"vertical":"auto","lead":{"zip":"10001","state":"NY","colour":"red"}}"#.into(),
        r#"{"vertical":"auto","lead":{"zip":"10001","state":"NY","phone":"5552345678"}}"#.into(),
        r#"{"vertical":"auto","lead":{"zip":"10001"}}"#.into(),
        r#"{"vertical":"auto","lead":{"zip":"10001","state":"NY"},"floor":-1}"#.into(),
        r#"{"vertical":"auto","lead":{"zip":"10001","state":"NY","credit":"great"}}"#.into(),
        r#"{"lead":{"zip":"10001","state":"NY"}}"#.into(),
        r#"{"vertical":"auto","lead":{"zip":"10001","state":"NY"},"ping_id":"p"}"#.into(),
    ];
    for p in &pings {
        both(parse_ping_as, p);
    }
    let posts = [
        format!(r#"{{"ping_id":"p_1","lead":{{{LEAD},{PII}}},"consent":{CONSENT}}}"#),
        format!(r#"{{"ping_id":"p_1","lead":{{{LEAD},{PII}}}}}"#),
        format!(r#"{{"ping_id":"p_1","lead":{{{LEAD}}}}}"#),
        format!(r#"{{"ping_id":"p_1","lead":{{{LEAD},{PII}}},"consent":{{"text":"x"}}}}"#),
        format!(r#"{{"ping_id":"p_1","lead":{{{LEAD},{PII},"email":"nope"}}}}"#),
    ];
    for p in &posts {
        both(parse_post_as, p);
    }
    let directs = [
        format!(r#"{{"vertical":"auto","lead":{{{LEAD},{PII}}},"consent":{CONSENT},"test":true}}"#),
        format!(r#"{{"vertical":"auto","lead":{{{LEAD},{PII}}},"floor":1}}"#),
    ];
    for p in &directs {
        both(parse_direct_as, p);
    }
}

fn xml_fails(body: &str, status: u16, code: &str, field: Option<&str>) {
    let e = parse_ping_as(&mut body.as_bytes().to_vec(), Format::Xml).expect_err(body);
    let e = ApiError::from(e);
    assert_eq!(
        (e.status, e.code, e.field.as_deref()),
        (status, code, field),
        "{body}: {}",
        e.message
    );
}

#[test]
fn what_only_xml_can_get_wrong_is_refused_with_its_field() {
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE request [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]><request><vertical>&c;</vertical></request>"#;
    let external = r#"<!DOCTYPE request SYSTEM "file:///etc/passwd"><request/>"#;
    let deep = format!(
        "<request>{}{}</request>",
        "<a>".repeat(50),
        "</a>".repeat(50)
    );
    let cases: &[(&str, u16, &str, Option<&str>)] = &[
        (laughs, 400, "bad_request", None),
        (external, 400, "bad_request", None),
        (&deep, 400, "bad_request", None),
        ("<request><vertical>&c;</vertical></request>", 400, "bad_request", None),
        ("<?xml version=\"1.0\"?><?php echo 1?><request/>", 400, "bad_request", None),
        ("<request><vertical>a</vertical>", 400, "bad_request", None),
        ("{\"vertical\":\"auto\"}", 400, "bad_request", None),
        ("<ping><vertical>a</vertical></ping>", 400, "bad_request", None),
        ("<request id=\"1\"/>", 400, "bad_request", None),
        (
            "<request><lead><zip type=\"s\">90210</zip></lead></request>",
            400,
            "bad_request",
            Some("lead.zip"),
        ),
        (
            "<request><lead>x<zip>90210</zip></lead></request>",
            400,
            "bad_request",
            Some("lead"),
        ),
        (
            "<request><lead><zip>90210</zip>x</lead></request>",
            400,
            "bad_request",
            Some("lead"),
        ),
        (
            "<request><vertical>a</vertical><lead><zip>90210</zip><zip>10001</zip></lead></request>",
            422,
            "invalid_field",
            Some("lead.zip"),
        ),
        (
            "<request><vertical>a</vertical><vertical>b</vertical></request>",
            422,
            "invalid_field",
            Some("vertical"),
        ),
        (
            "<request><vertical>a</vertical><lead><zip>90210</zip><state>CA</state><age>thirty</age></lead></request>",
            422,
            "invalid_field",
            Some("lead.age"),
        ),
        (
            "<request><vertical>a</vertical><lead><zip><x>9</x></zip><state>CA</state></lead></request>",
            422,
            "invalid_field",
            Some("lead.zip"),
        ),
        (
            "<request><vertical>a</vertical><x:lead xmlns:x=\"urn:x\"/></request>",
            400,
            "bad_request",
            Some("x:lead"),
        ),
        (
            "<request><vertical>a</vertical><test>maybe</test><lead><zip>90210</zip><state>CA</state></lead></request>",
            422,
            "invalid_field",
            Some("test"),
        ),
    ];
    for (body, status, code, field) in cases {
        xml_fails(body, *status, code, *field);
    }
}

#[test]
fn pretty_printed_documents_with_comments_and_cdata_read_as_values() {
    let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a publisher's ping -->
<request>
  <vertical>auto</vertical>
  <test> 1 </test>
  <floor>
    2.5
  </floor>
  <lead>
    <zip>90210</zip>
    <state>CA</state>
    <city><![CDATA[A <b> & c]]> &#233;</city>
    <age> 34 </age>
    <attributes/>
  </lead>
</request>
"#;
    let p = parse_ping_as(&mut body.as_bytes().to_vec(), Format::Xml).unwrap();
    assert_eq!(
        (p.vertical.as_str(), p.test, p.floor),
        ("auto", true, Some(250))
    );
    assert_eq!(p.lead.city.as_deref(), Some("A <b> & c é"));
    assert_eq!(p.lead.age, Some(34));
    assert!(p.lead.attributes.is_empty());
}
