//! Reading a spec buyer's answer with the rules of
//! `[buyer.<stage>.response]` (contract §9): status first (non-2xx is a
//! failure), then the body — gunzipped within a bound, parsed in the
//! stage's format (a body that does not parse is a failure whatever the
//! rules say) — then each rule's value by JSON Pointer, XML path or regex.
//!
//! Why `regex`: it guarantees linear time in the body for every pattern
//! (no backtracking), so no pattern an operator pastes from a buyer's spec
//! can hang a worker; compiled size is bounded at load
//! (`limits::BUYER_REGEX_BYTES_MAX`). Why `flate2` (its pure-Rust
//! miniz_oxide backend): the standard gzip reader, streaming, so the
//! decoded size is bounded by reading at most the limit plus one byte — a
//! gzip bomb costs 64 KiB, not its expansion.

use std::borrow::Cow;
use std::io::Read;

use simd_json::borrowed::Value;
use simd_json::StaticNode;

use super::{xml, Format};
use crate::buyer::{BidAnswer, PostAnswer};
use crate::lead::value::truncate;
use crate::limits;
use crate::money::Cents;

/// Where a rule finds its value.
#[derive(Debug)]
pub enum Source {
    /// RFC 6901, already split and unescaped (`~1` → `/`, `~0` → `~`).
    Pointer(Vec<String>),
    /// Element local names from the root, and an optional final `@attr`.
    XmlPath {
        elems: Vec<String>,
        attr: Option<String>,
    },
    /// Over the raw (decoded, trimmed) body: first group, or whole match.
    Regex(regex::bytes::Regex),
}

/// One rule: a value, and when it "holds".
#[derive(Debug)]
pub struct Rule {
    pub source: Source,
    /// Lower-cased, trimmed; `None`: holds when the value is not empty.
    pub equals: Option<Vec<String>>,
}

/// `[buyer.ping.response]`.
#[derive(Debug)]
pub struct PingRules {
    pub bid: Option<Rule>,
    pub price: Rule,
    pub buyer_ref: Option<Rule>,
    pub reason: Option<Rule>,
}

/// `[buyer.post.response]`.
#[derive(Debug)]
pub struct PostRules {
    pub accepted: Rule,
    pub lead_id: Option<Rule>,
    pub reason: Option<Rule>,
}

impl Source {
    /// A `path` for `format`: a JSON Pointer, or an XML slash path.
    pub fn path(format: Format, p: &str) -> Result<Source, String> {
        match format {
            Format::Json => pointer(p).map(Source::Pointer),
            Format::Xml | Format::Soap => xml_path(p),
            Format::Form => {
                Err("a form buyer's answer is plain text: use regex, not path".to_string())
            }
        }
    }

    pub fn regex(p: &str) -> Result<Source, String> {
        regex::bytes::RegexBuilder::new(p)
            .size_limit(limits::BUYER_REGEX_BYTES_MAX)
            .dfa_size_limit(limits::BUYER_REGEX_BYTES_MAX)
            .build()
            .map(Source::Regex)
            .map_err(|e| {
                let e = e.to_string();
                format!("invalid regex: {}", e.lines().last().unwrap_or(&e).trim())
            })
    }
}

fn pointer(p: &str) -> Result<Vec<String>, String> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err("a JSON Pointer starts with / (RFC 6901)".into());
    };
    rest.split('/')
        .map(|t| {
            if t.replace("~0", "").replace("~1", "").contains('~') {
                return Err(format!("bad escape in {t:?} (~0 is ~, ~1 is /)"));
            }
            Ok(t.replace("~1", "/").replace("~0", "~"))
        })
        .collect()
}

fn xml_path(p: &str) -> Result<Source, String> {
    let Some(rest) = p.strip_prefix('/') else {
        return Err("an XML path starts with / and the root element".into());
    };
    let mut elems: Vec<String> = rest.split('/').map(String::from).collect();
    let attr = match elems.last().and_then(|l| l.strip_prefix('@')) {
        Some(a) => {
            let a = a.to_string();
            elems.pop();
            Some(a)
        }
        None => None,
    };
    let name_ok = |n: &str| !n.is_empty() && !n.contains(['@', ' ', '<', '>']);
    if elems.is_empty() || !elems.iter().all(|e| name_ok(e)) || !attr.as_deref().is_none_or(name_ok)
    {
        return Err("expected /Element/Element…[/@attr]".into());
    }
    // Prefixes are ignored on both sides: `soap:Body` means `Body`.
    let local = |n: &str| n.rsplit(':').next().unwrap_or(n).to_string();
    Ok(Source::XmlPath {
        elems: elems.iter().map(|e| local(e)).collect(),
        attr: attr.map(|a| local(&a)),
    })
}

/// The body as read, ready for the rules.
enum Doc<'a> {
    Json(Value<'a>),
    Xml(xml::Dom),
    Text,
}

/// Why an answer is no answer: the reason recorded for the call.
pub type Failure = &'static str;

/// Checks status and encoding and decodes the body into `scratch` when
/// gzipped; returns the body to read.
fn decoded<'b>(
    status: u16,
    content_encoding: Option<&str>,
    body: &'b mut Vec<u8>,
    scratch: &'b mut Vec<u8>,
) -> Result<&'b mut Vec<u8>, Failure> {
    if !(200..300).contains(&status) {
        return Err(http_reason(status));
    }
    let enc = content_encoding.map(str::trim).unwrap_or("");
    if enc.is_empty() || enc.eq_ignore_ascii_case("identity") {
        return Ok(body);
    }
    if !(enc.eq_ignore_ascii_case("gzip") || enc.eq_ignore_ascii_case("x-gzip")) {
        return Err("unsupported_content_encoding");
    }
    let max = limits::BUYER_RESPONSE_BYTES_MAX;
    scratch.clear();
    flate2::read::GzDecoder::new(body.as_slice())
        .take(max as u64 + 1)
        .read_to_end(scratch)
        .map_err(|_| "bad_gzip")?;
    if scratch.len() > max {
        return Err("response_too_large");
    }
    Ok(scratch)
}

/// `http_<status>` for the statuses buyers send; `http_status` otherwise.
fn http_reason(status: u16) -> &'static str {
    const NAMED: &[(u16, &str)] = &[
        (400, "http_400"),
        (401, "http_401"),
        (403, "http_403"),
        (404, "http_404"),
        (405, "http_405"),
        (408, "http_408"),
        (409, "http_409"),
        (413, "http_413"),
        (415, "http_415"),
        (422, "http_422"),
        (429, "http_429"),
        (500, "http_500"),
        (501, "http_501"),
        (502, "http_502"),
        (503, "http_503"),
        (504, "http_504"),
    ];
    if let Some((_, name)) = NAMED.iter().find(|(code, _)| *code == status) {
        return name;
    }
    match status {
        100..=199 => "http_1xx",
        300..=399 => "http_3xx",
        400..=499 => "http_4xx",
        _ => "http_5xx",
    }
}

/// Runs every regex rule over the raw body (in `order`), then parses the
/// body in `format`; path rules are read from the parse.
fn read<const N: usize>(
    format: Format,
    body: &mut [u8],
    rules: [Option<&Rule>; N],
) -> Result<[Option<String>; N], Failure> {
    let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
    let raw = body.trim_ascii();
    for (slot, rule) in out.iter_mut().zip(&rules) {
        if let Some(Rule {
            source: Source::Regex(re),
            ..
        }) = rule
        {
            *slot = re.captures(raw).and_then(|c| {
                let m = c.get(1).or_else(|| c.get(0))?;
                Some(String::from_utf8_lossy(m.as_bytes()).into_owned())
            });
        }
    }
    // Regexes ran first: JSON parsing works on the body in place.
    let doc = match format {
        Format::Json => Doc::Json(crate::wire::parse_json(body).map_err(|_| "malformed_json")?),
        Format::Xml | Format::Soap => Doc::Xml(xml::parse(body)?),
        Format::Form => Doc::Text,
    };
    for (slot, rule) in out.iter_mut().zip(&rules) {
        let Some(rule) = rule else { continue };
        match (&rule.source, &doc) {
            (Source::Pointer(p), Doc::Json(v)) => *slot = json_at(v, p).map(Cow::into_owned),
            (Source::XmlPath { elems, attr }, Doc::Xml(d)) => {
                *slot = d.find(elems, attr.as_deref()).map(str::to_string)
            }
            _ => {}
        }
    }
    Ok(out)
}

fn json_at<'v>(mut v: &'v Value<'_>, pointer: &[String]) -> Option<Cow<'v, str>> {
    for token in pointer {
        v = match v {
            Value::Object(o) => o.get(token.as_str())?,
            Value::Array(a) => {
                // RFC 6901: decimal, no leading zeros.
                if token.len() > 1 && token.starts_with('0') {
                    return None;
                }
                a.get(token.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(match v {
        Value::String(s) => Cow::Borrowed(s.as_ref()),
        Value::Static(StaticNode::I64(n)) => Cow::Owned(n.to_string()),
        Value::Static(StaticNode::U64(n)) => Cow::Owned(n.to_string()),
        // Rust prints the shortest text that reads back as the same f64
        // (never an exponent), so 12.57 stays "12.57" for the cent cut.
        Value::Static(StaticNode::F64(f)) => Cow::Owned(f.to_string()),
        Value::Static(StaticNode::Bool(b)) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Value::Static(StaticNode::Null) => return None,
        Value::Array(_) => Cow::Borrowed("[array]"),
        Value::Object(_) => Cow::Borrowed("[object]"),
    })
}

fn holds(rule: &Rule, value: Option<&str>) -> bool {
    let Some(v) = value.map(str::trim) else {
        return false;
    };
    match &rule.equals {
        None => !v.is_empty(),
        Some(words) => words.iter().any(|w| w.eq_ignore_ascii_case(v)),
    }
}

/// A price as a buyer writes it — `12.5`, `"12.50"`, `"$12.50"` — cut (not
/// rounded) to the cent. `Ok(0)` is zero, which is no bid.
pub fn amount(s: &str) -> Result<Cents, Failure> {
    let s = s.trim();
    let s = s.strip_prefix('$').unwrap_or(s).trim_start();
    if s.starts_with('-') {
        return Err("negative_price");
    }
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err("bad_price");
    }
    // More than a billion dollars is not a bid, it is a typo.
    if whole.len() > 9 {
        return Err("bad_price");
    }
    let whole: Cents = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| "bad_price")?
    };
    let cents = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(2)
        .fold(0, |n, b| n * 10 + Cents::from(b - b'0'));
    Ok(whole * 100 + cents)
}

fn kept(s: Option<String>) -> Option<String> {
    let s = s?;
    let t = s.trim();
    (!t.is_empty()).then(|| truncate(t, limits::BUYER_ANSWER_STRING_BYTES_MAX).to_string())
}

/// A ping answer: the bid, or why not. `buyer_reason` is the `reason`
/// rule's value, for the record, when the buyer gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BidRead {
    pub answer: BidAnswer,
    pub buyer_reason: Option<String>,
}

pub fn read_bid(
    format: Format,
    rules: &PingRules,
    status: u16,
    content_encoding: Option<&str>,
    body: &mut Vec<u8>,
) -> BidRead {
    let mut scratch = Vec::new();
    let failed = |why| BidRead {
        answer: BidAnswer::Invalid(why),
        buyer_reason: None,
    };
    let body = match decoded(status, content_encoding, body, &mut scratch) {
        Ok(b) => b,
        Err(why) => return failed(why),
    };
    let all = [
        rules.bid.as_ref(),
        Some(&rules.price),
        rules.buyer_ref.as_ref(),
        rules.reason.as_ref(),
    ];
    let [bid, price, buyer_ref, reason] = match read(format, body, all) {
        Ok(v) => v,
        Err(why) => return failed(why),
    };
    let buyer_reason = kept(reason);
    let no_bid = |answer| BidRead {
        answer,
        buyer_reason: buyer_reason.clone(),
    };
    if let Some(rule) = &rules.bid {
        if !holds(rule, bid.as_deref()) {
            return no_bid(BidAnswer::NoBid);
        }
    }
    let price = match price.as_deref().map(str::trim) {
        None | Some("") if rules.bid.is_none() => return no_bid(BidAnswer::NoBid),
        None | Some("") => return no_bid(BidAnswer::Invalid("missing_price")),
        Some(p) => match amount(p) {
            Ok(0) => return no_bid(BidAnswer::NoBid),
            Ok(c) => c,
            Err(why) => return no_bid(BidAnswer::Invalid(why)),
        },
    };
    // The ref is echoed back verbatim, so a cut one would be wrong: refuse.
    let buyer_ref = match buyer_ref
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
    {
        Some(r) if r.len() > limits::BUYER_ANSWER_STRING_BYTES_MAX => {
            return no_bid(BidAnswer::Invalid("bad_ref"))
        }
        r => r,
    };
    BidRead {
        answer: BidAnswer::Bid { price, buyer_ref },
        buyer_reason: None,
    }
}

pub fn read_post(
    format: Format,
    rules: &PostRules,
    status: u16,
    content_encoding: Option<&str>,
    body: &mut Vec<u8>,
) -> PostAnswer {
    let mut scratch = Vec::new();
    let body = match decoded(status, content_encoding, body, &mut scratch) {
        Ok(b) => b,
        Err(why) => return PostAnswer::Invalid(why),
    };
    let all = [
        Some(&rules.accepted),
        rules.lead_id.as_ref(),
        rules.reason.as_ref(),
    ];
    let [accepted, lead_id, reason] = match read(format, body, all) {
        Ok(v) => v,
        Err(why) => return PostAnswer::Invalid(why),
    };
    if holds(&rules.accepted, accepted.as_deref()) {
        PostAnswer::Accepted {
            buyer_lead_id: kept(lead_id),
        }
    } else {
        PostAnswer::Rejected {
            reason: kept(reason).unwrap_or_else(|| "unspecified".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_cut_to_the_cent() {
        let ok = [
            ("12.5", 1250),
            ("12.50", 1250),
            ("$12.50", 1250),
            (" $ 12.509 ", 1250),
            ("12.999", 1299),
            ("7", 700),
            (".5", 50),
            ("0.00", 0),
            ("12.57", 1257),
        ];
        for (s, c) in ok {
            assert_eq!(amount(s), Ok(c), "{s}");
        }
        for (s, why) in [
            ("abc", "bad_price"),
            ("", "bad_price"),
            ("$", "bad_price"),
            ("1,250.00", "bad_price"),
            ("1e3", "bad_price"),
            ("12.5.0", "bad_price"),
            ("9999999999", "bad_price"),
            ("-1", "negative_price"),
            ("$-1.00", "negative_price"),
        ] {
            assert_eq!(amount(s), Err(why), "{s}");
        }
    }

    #[test]
    fn pointers_follow_rfc_6901() {
        assert_eq!(pointer("").unwrap(), Vec::<String>::new());
        assert_eq!(pointer("/a~1b/m~0n/0").unwrap(), ["a/b", "m~n", "0"]);
        assert!(pointer("a").is_err());
        assert!(pointer("/a~2").is_err());
        let mut body = br#"{"a/b":{"m~n":[{"p":12.57},"x"]},"n":null,"t":true}"#.to_vec();
        let v = crate::wire::parse_json(&mut body).unwrap();
        let at = |p: &str| json_at(&v, &pointer(p).unwrap()).map(Cow::into_owned);
        assert_eq!(at("/a~1b/m~0n/0/p").as_deref(), Some("12.57"));
        assert_eq!(at("/a~1b/m~0n/1").as_deref(), Some("x"));
        assert_eq!(at("/a~1b/m~0n/01"), None);
        assert_eq!(at("/a~1b/m~0n/2"), None);
        assert_eq!(at("/n"), None);
        assert_eq!(at("/t").as_deref(), Some("true"));
    }

    #[test]
    fn regexes_are_bounded_at_compile_time() {
        assert!(Source::regex("^OK:(\\w+)$").is_ok());
        let e = Source::regex("(").unwrap_err();
        assert!(e.starts_with("invalid regex"), "{e}");
        // A pattern whose compiled form is huge is refused, not built.
        let e = Source::regex("\\w{1000}\\w{1000}\\w{1000}").unwrap_err();
        assert!(e.contains("size limit") || e.contains("exceeds"), "{e}");
    }

    #[test]
    fn a_gzip_bomb_is_a_failure_after_the_bound() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b' '; 50 << 20]).unwrap();
        let mut bomb = gz.finish().unwrap();
        assert!(bomb.len() < limits::BUYER_RESPONSE_BYTES_MAX);
        let mut scratch = Vec::new();
        let r = decoded(200, Some("gzip"), &mut bomb, &mut scratch).map(|b| b.len());
        assert_eq!(r, Err("response_too_large"));
        assert!(scratch.capacity() <= 2 * limits::BUYER_RESPONSE_BYTES_MAX + 64);
        let mut junk = b"\x1f\x8bnot gzip".to_vec();
        assert_eq!(
            decoded(200, Some("gzip"), &mut junk, &mut scratch).err(),
            Some("bad_gzip")
        );
        assert_eq!(
            decoded(200, Some("br"), &mut junk, &mut scratch).err(),
            Some("unsupported_content_encoding")
        );
        assert_eq!(
            decoded(503, None, &mut junk, &mut scratch).err(),
            Some("http_503")
        );
    }
}
