//! Fuzz checks: one function per fuzz target, each feeding arbitrary bytes
//! to a parser that takes input from outside (publishers, buyers, the
//! config file) and asserting what must hold whatever the bytes are.
//!
//! Why in the library and not in `fuzz/`: the normal test suite replays
//! every committed seed and crash input through these same functions
//! (`tests/it/fuzz.rs`), so a fixed crash stays fixed without libFuzzer or
//! a nightly toolchain. `fuzz/fuzz_targets/*.rs` are one-line wrappers.
//! See docs/fuzzing.md.
//!
//! A check panics on a broken property; that is what a fuzzer reports.

use std::io::{self, Read};

use crate::buyer::native::{parse_bid_answer, parse_post_answer};
use crate::buyer::{BidAnswer, PostAnswer};
use crate::http::client::codec::{self as client_codec, ReadCost, ReadError};
use crate::http::server::{self, Decoded};
use crate::limits;
use crate::wire;

/// One target's check: panics when a property does not hold.
pub type Check = fn(&[u8]);

/// Every target: its name (the `fuzz/fuzz_targets/<name>.rs` file and the
/// `fuzz/seeds/<name>/` and `fuzz/regressions/<name>/` folders) and check.
pub const TARGETS: &[(&str, Check)] = &[
    ("http_request", http_request),
    ("chunked", chunked),
    ("buyer_answer", buyer_answer),
    ("client_response", client_response),
    ("lead", lead),
    ("config", config),
    ("buyer_spec_render", buyer_spec_render),
    ("buyer_spec_answer", buyer_spec_answer),
];

/// The check for the target called `name`.
pub fn target(name: &str) -> Option<Check> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Small limits, so that the fuzzer reaches the "too large" paths.
fn server_limits() -> server::Limits {
    server::Limits {
        body_bytes_max: 256,
        header_bytes_max: 1024,
        headers_max: 16,
    }
}

/// What `decode` said, owned, to compare two decodes.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Partial,
    Complete {
        len: usize,
        body: Vec<u8>,
        keep_alive: bool,
    },
    Error(u16, &'static str),
}

fn decode(bytes: &[u8]) -> Outcome {
    let lim = server_limits();
    let mut buf = bytes.to_vec();
    let mut headers = [httparse::EMPTY_HEADER; 16];
    match server::decode(&mut buf, &lim, &mut headers) {
        Ok(Decoded::Partial(_)) => Outcome::Partial,
        Ok(Decoded::Complete(p)) => {
            assert!(
                p.len <= bytes.len(),
                "used {} of {} bytes",
                p.len,
                bytes.len()
            );
            assert!(p.body.len() <= lim.body_bytes_max, "body over the limit");
            assert!(p.len <= lim.request_bytes_max(), "request over the limit");
            Outcome::Complete {
                len: p.len,
                body: p.body.to_vec(),
                keep_alive: p.keep_alive,
            }
        }
        Err(e) => Outcome::Error(e.status(), e.message()),
    }
}

/// The HTTP request decoder: never a panic; a complete request uses only
/// bytes it was given, within the limits; and bytes that arrive later never
/// change the verdict on a prefix: every prefix of a complete request is
/// `Partial`, and a longer input decodes to the same request.
pub fn http_request(data: &[u8]) {
    let whole = decode(data);
    if let Outcome::Complete { len, .. } = &whole {
        let len = *len;
        for cut in [0, len / 2, len.saturating_sub(1)] {
            if cut < len {
                // An error on a prefix would close a connection whose
                // request was merely slow to arrive.
                assert_eq!(
                    decode(&data[..cut]),
                    Outcome::Partial,
                    "prefix of {cut} bytes"
                );
            }
        }
        let mut longer = data[..len].to_vec();
        longer.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(decode(&longer), whole, "trailing bytes changed the request");
    }
    if let Outcome::Error(status, _) = whole {
        assert!((400..=599).contains(&status), "error status {status}");
    }
}

/// The chunked decoder, through a request head that selects it: a decoded
/// body is exactly what a plain reference decoder makes of the same bytes.
pub fn chunked(data: &[u8]) {
    let head = b"POST /v1/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut raw = head.to_vec();
    raw.extend_from_slice(data);
    http_request(&raw);
    if let Outcome::Complete { len, body, .. } = decode(&raw) {
        let used = &data[..len - head.len()];
        assert_eq!(
            reference_chunked(used).as_deref(),
            Some(&body[..]),
            "decoded body differs from the reference"
        );
    }
}

/// RFC 9112 §7.1 chunked decoding at its plainest, for comparison only:
/// hex size, optional `;extensions`, CRLF, data, CRLF; trailers to the
/// blank line. None when the bytes are not exactly one chunked body.
fn reference_chunked(mut raw: &[u8]) -> Option<Vec<u8>> {
    fn line<'a>(raw: &mut &'a [u8]) -> Option<&'a [u8]> {
        let i = raw.windows(2).position(|w| w == b"\r\n")?;
        let l = &raw[..i];
        *raw = &raw[i + 2..];
        Some(l)
    }
    let mut body = Vec::new();
    loop {
        let l = line(&mut raw)?;
        let hex = l.split(|&b| b == b';').next()?;
        let hex = std::str::from_utf8(hex).ok()?.trim_end_matches([' ', '\t']);
        let size = usize::from_str_radix(hex, 16).ok()?;
        if size == 0 {
            break;
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = &raw[size..];
        if !line(&mut raw)?.is_empty() {
            return None;
        }
    }
    while !line(&mut raw)?.is_empty() {}
    raw.is_empty().then_some(body)
}

/// The buyer-answer parsers: never a panic, never a negative or unbounded
/// value kept from a buyer.
pub fn buyer_answer(data: &[u8]) {
    let max = limits::BUYER_ANSWER_STRING_BYTES_MAX;
    match parse_bid_answer(&mut data.to_vec()) {
        BidAnswer::Bid { buyer_ref, .. } => assert!(buyer_ref.is_none_or(|r| r.len() <= max)),
        BidAnswer::NoBid | BidAnswer::Invalid(_) => {}
    }
    match parse_post_answer(&mut data.to_vec()) {
        PostAnswer::Accepted { buyer_lead_id } => {
            assert!(buyer_lead_id.is_none_or(|r| r.len() <= max))
        }
        PostAnswer::Rejected { reason } => assert!(reason.len() <= max),
        PostAnswer::Invalid(_) => {}
    }
    // Parsing is in place: a second parse of fresh bytes must agree.
    assert_eq!(
        parse_bid_answer(&mut data.to_vec()),
        parse_bid_answer(&mut data.to_vec())
    );
}

/// Hands out bytes `step` at a time, the way a socket may.
struct Steps<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl Read for Steps<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// The client's response reader: never a panic; the read buffer stays
/// under its bound and the body under the limit; and the answer does not
/// depend on how the bytes were split into reads.
pub fn client_response(data: &[u8]) {
    let body_max = 512;
    let read = |step: usize| {
        let mut cost = ReadCost::default();
        let r = client_codec::read_response(&mut Steps { bytes: data, step }, body_max, &mut cost);
        assert!(
            cost.buffer_peak_bytes <= limits::BUYER_READ_BUFFER_BYTES_MAX,
            "{cost:?}"
        );
        if let Ok(resp) = &r {
            assert!(resp.body.len() <= body_max);
        }
        match r {
            Ok(resp) => (format!("{} {:?}", resp.status, resp.body), resp.reusable),
            Err(ReadError::Io(e)) => panic!("an in-memory read failed: {e}"),
            Err(e) => (format!("{e:?}"), false),
        }
    };
    let (whole, whole_reusable) = read(usize::MAX);
    for step in [1, 7, 600] {
        let (stepped, reusable) = read(step);
        assert_eq!(stepped, whole, "reads of {step} bytes");
        // Bytes after the answer are seen only if they came with it, so
        // smaller reads may miss them (the pool's stale check catches them
        // on the socket); but what whole reads find clean stays clean.
        assert!(
            !whole_reusable || reusable,
            "reads of {step} bytes found leftovers"
        );
    }
}

/// The lead parsers (wire + validation) for the three request bodies, in
/// both formats (JSON, and XML: contract §11): never a panic, and an
/// accepted lead respects the contract's bounds.
pub fn lead(data: &[u8]) {
    for format in [wire::Format::Json, wire::Format::Xml] {
        lead_as(data, format);
    }
}

fn lead_as(data: &[u8], format: wire::Format) {
    if let Ok(ping) = wire::parse_ping_as(&mut data.to_vec(), format) {
        check_lead(&ping.lead);
        // A ping carries no PII.
        let l = &ping.lead;
        assert!(
            l.first_name.is_none()
                && l.last_name.is_none()
                && l.phone.is_none()
                && l.email.is_none()
        );
        assert!(l.address.is_none());
    }
    if let Ok(post) = wire::parse_post_as(&mut data.to_vec(), format) {
        check_lead(&post.lead);
    }
    if let Ok(direct) = wire::parse_direct_as(&mut data.to_vec(), format) {
        check_lead(&direct.lead);
    }
}

fn check_lead(l: &crate::lead::Lead) {
    assert!(l.same_ping_fields(l));
    assert!(l.attributes.len() <= limits::LEAD_ATTRIBUTES_MAX);
    if let Some(age) = l.age {
        assert!(
            (limits::AGE_YEARS_MIN..=limits::AGE_YEARS_MAX).contains(&age),
            "age {age}"
        );
    }
    if let Some(phone) = &l.phone {
        assert!(
            phone.len() == 12 && phone.starts_with("+1"),
            "phone {phone:?}"
        );
    }
    for s in [&l.zip, &l.state]
        .into_iter()
        .chain(l.city.as_ref())
        .chain(l.sub_id.as_ref())
    {
        assert!(s.len() <= limits::LEAD_STRING_BYTES_MAX);
    }
}

/// The config loader: never a panic on any text, every error names a key,
/// and validation is deterministic.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > limits::CONFIG_BYTES_MAX {
        return;
    }
    let secrets = |name: &str| (name == "SECRET").then(|| "s3cret".to_string());
    let first = crate::config::parse(text, &secrets);
    if let Err(errors) = &first {
        assert!(!errors.is_empty(), "an error result with no error");
    }
    let again = crate::config::parse(text, &secrets);
    // `==`, not the Debug text: the config's index is a HashMap, whose
    // Debug order differs between two equal maps (the first fuzz finding
    // here was that false alarm, kept in fuzz/regressions/config).
    assert!(first == again, "two parses disagree");
}

/// Contract §9: two lead values (the bytes split at the first 0xFF, each
/// half read as UTF-8, lossily) rendered into JSON, SOAP, a form body and
/// a GET query: each output parses in its format, carries both values as
/// data, and has exactly the fields its template wrote
/// (`buyer::spec::roundtrip::check`, shared with the property tests).
pub fn buyer_spec_render(data: &[u8]) {
    let cut = data.iter().position(|&b| b == 0xFF).unwrap_or(data.len());
    let a = String::from_utf8_lossy(&data[..cut]);
    let b = String::from_utf8_lossy(data.get(cut + 1..).unwrap_or_default());
    crate::buyer::spec::roundtrip::check(&a, &b);
}

/// Contract §9: any answer body, read by a ping and a post stage of each
/// format (first byte: format and encoding), never panics, keeps its
/// strings within `BUYER_ANSWER_STRING_BYTES_MAX`, bids only positive
/// amounts, and reads the same twice.
pub fn buyer_spec_answer(data: &[u8]) {
    use crate::buyer::spec::{read_bid, read_post, Format};
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let format = [Format::Json, Format::Xml, Format::Soap, Format::Form][usize::from(mode & 3)];
    let (ping, post) = &answer_rules()[usize::from(mode & 3)];
    let enc = (mode & 4 != 0).then_some("gzip");
    let max = limits::BUYER_ANSWER_STRING_BYTES_MAX;
    let bid = read_bid(format, ping, 200, enc, &mut body.to_vec());
    assert_eq!(
        bid,
        read_bid(format, ping, 200, enc, &mut body.to_vec()),
        "not deterministic"
    );
    if let BidAnswer::Bid { price, buyer_ref } = &bid.answer {
        assert!(*price > 0, "a bid of zero");
        assert!(buyer_ref.as_ref().is_none_or(|r| r.len() <= max));
    }
    assert!(bid.buyer_reason.as_ref().is_none_or(|r| r.len() <= max));
    match read_post(format, post, 200, enc, &mut body.to_vec()) {
        PostAnswer::Accepted { buyer_lead_id } => {
            assert!(buyer_lead_id.is_none_or(|id| id.len() <= max))
        }
        PostAnswer::Rejected { reason } => assert!(reason.len() <= max),
        PostAnswer::Invalid(_) => {}
    }
}

type AnswerRules = [(crate::buyer::spec::PingRules, crate::buyer::spec::PostRules); 4];

/// Ping and post rules per format (json, xml, soap, form), compiled once.
fn answer_rules() -> &'static AnswerRules {
    use crate::buyer::spec::{Format, PingRules, PostRules, Rule, Source};
    static RULES: std::sync::OnceLock<AnswerRules> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        [Format::Json, Format::Xml, Format::Soap, Format::Form].map(|format| {
            let rule = |path: &str, regex: &str, equals: Option<&[&str]>| Rule {
                source: match format {
                    Format::Form => Source::regex(regex),
                    Format::Json => Source::path(format, &path.replace('@', "")),
                    _ => Source::path(format, path),
                }
                .expect("constant rules compile"),
                equals: equals.map(|e| e.iter().map(|s| s.to_string()).collect()),
            };
            let ping = PingRules {
                bid: Some(rule("/r/@ok", "ok=(\\w+)", Some(&["yes", "1"]))),
                price: rule("/r/p", "p=([^;]*)", None),
                buyer_ref: Some(rule("/r/t", "t=([^;]*)", None)),
                reason: Some(rule("/r/m", "m=(.*)", None)),
            };
            let post = PostRules {
                accepted: rule("/r/@ok", "^OK", None),
                lead_id: Some(rule("/r/id", "^OK:(\\w+)", None)),
                reason: Some(rule("/r/m", "ERR:(.*)", None)),
            };
            (ping, post)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_a_check_and_accepts_empty_input() {
        for (name, check) in TARGETS {
            assert_eq!(target(name).map(|f| f as usize), Some(*check as usize));
            check(b"");
        }
        assert!(target("nope").is_none());
    }

    #[test]
    fn the_reference_chunked_decoder_decodes() {
        assert_eq!(
            reference_chunked(b"2;x=y\r\nok\r\n0\r\nT: 1\r\n\r\n").as_deref(),
            Some(&b"ok"[..])
        );
        assert_eq!(reference_chunked(b"2\r\nokX\r\n0\r\n\r\n"), None);
        assert_eq!(reference_chunked(b"0\r\n\r\nextra"), None);
    }

    #[test]
    fn a_valid_chunked_request_passes_the_checks() {
        chunked(b"5\r\nhello\r\n0\r\n\r\n");
        http_request(b"POST /v1/ping HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
        client_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        );
    }
}
