//! Buyer specs (contract §9): buyers that publish their own posting spec —
//! JSON with their own nesting, XML with their own status words, SOAP
//! envelopes, form posts answered in plain text — described per stage in
//! the config (`[buyer.ping]`, `[buyer.post]`, `[buyer.maps]`).
//!
//! Everything here is pure: `config` compiles each stage table into a
//! [`Stage`] when the file loads (templates, maps and response rules, so a
//! mistake is a `check-config` error naming its key); [`SpecIntegration`]
//! renders a [`Request`] from a lead and reads an answer (status,
//! content-encoding, body) into a `BidAnswer` / `PostAnswer`. The core does
//! the HTTP.
//!
//! Invariant: whatever a lead holds, a rendered body parses in its format
//! and carries each value as data — no value can close a string, open an
//! element or add a form field (`tests/it/buyer_specs.rs`, the property
//! tests in `template_tests.rs`, and the `buyer_spec_render` fuzz target).

mod answer;
mod grammar;
#[doc(hidden)]
pub mod roundtrip;
pub mod template;
pub(crate) mod time;
mod xml;

use std::fmt;
use std::sync::Arc;

pub use answer::{amount, read_bid, read_post, BidRead, PingRules, PostRules, Rule, Source};
pub use template::{Lit, Map, Maps, StageKind, Template};

use super::{BidAnswer, PingCtx, PostAnswer, PostCtx};
use crate::lead::{Consent, Lead};
use crate::money::Cents;

/// The HTTP method of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Get,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "GET" => Some(Method::Get),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Get => "GET",
        }
    }
}

/// The format of a stage's request body and of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
    Soap,
    Form,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "json" => Some(Format::Json),
            "xml" => Some(Format::Xml),
            "soap" => Some(Format::Soap),
            "form" => Some(Format::Form),
            _ => None,
        }
    }

    /// The Content-Type sent unless the stage's `headers` set one.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Xml => "application/xml",
            Format::Soap => "text/xml; charset=utf-8",
            Format::Form => "application/x-www-form-urlencoded",
        }
    }
}

/// What a stage sends: a body template (json, xml, soap) or a table of
/// fields (a form body, or the query string of a GET).
#[derive(Debug)]
pub enum Payload {
    Body(Template),
    /// Names already percent-encoded.
    Fields(Vec<(String, Template)>),
}

/// How a stage reads its answer.
#[derive(Debug)]
pub enum Rules {
    Ping(PingRules),
    Post(PostRules),
}

/// One compiled `[buyer.ping]` or `[buyer.post]` table.
pub struct Stage {
    pub method: Method,
    pub format: Format,
    /// The buyer's `headers` and then the stage's (which win), after
    /// `${NAME}`, Content-Type taken out. Shared with every request.
    pub headers: Arc<[(String, String)]>,
    /// The format's, or the `headers` entry that overrides it.
    pub content_type: String,
    pub payload: Payload,
    pub rules: Rules,
    /// Everything the stage was compiled from, in one string: two stages
    /// are equal when their sources are (compiled regexes have no `Eq`).
    /// Holds secrets: never printed.
    pub source: String,
}

impl PartialEq for Stage {
    fn eq(&self, other: &Stage) -> bool {
        self.source == other.source
    }
}

impl Eq for Stage {}

/// Header values and bodies may carry credentials: names and sizes only.
impl fmt::Debug for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Stage")
            .field("method", &self.method)
            .field("format", &self.format)
            .field("headers", &headers)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// A buyer's custom stages; both `None` for a native buyer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuyerSpec {
    pub ping: Option<Arc<Stage>>,
    pub post: Option<Arc<Stage>>,
}

/// Everything a template can name (contract §9 variables).
pub struct Vars<'a> {
    pub ping_id: &'a str,
    pub vertical: &'a str,
    pub publisher: &'a str,
    pub lead: &'a Lead,
    pub consent: Option<&'a Consent>,
    pub test: bool,
    /// Post only: what the buyer's ping answer gave.
    pub buyer_ref: Option<&'a str>,
    /// Post only: the buyer's own bid (or fixed price).
    pub price: Option<Cents>,
    /// Business time (`Exchange::now_ms()`), for `now`.
    pub now_ms: u64,
}

impl<'a> Vars<'a> {
    pub fn ping(ctx: &PingCtx<'a>, publisher: &'a str, now_ms: u64) -> Vars<'a> {
        Vars {
            ping_id: ctx.ping_id,
            vertical: ctx.vertical,
            publisher,
            lead: ctx.lead,
            consent: None,
            test: ctx.test,
            buyer_ref: None,
            price: None,
            now_ms,
        }
    }

    pub fn post(ctx: &PostCtx<'a>, publisher: &'a str, now_ms: u64) -> Vars<'a> {
        Vars {
            ping_id: ctx.ping_id,
            vertical: ctx.vertical,
            publisher,
            lead: ctx.lead,
            consent: ctx.consent,
            test: ctx.test,
            buyer_ref: ctx.buyer_ref,
            price: Some(ctx.price),
            now_ms,
        }
    }
}

/// A request to send, fully rendered. Reused between calls: `render_*`
/// clears it first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub method: &'static str,
    /// Path and query (`/v2/ping?zip=90210`).
    pub target: String,
    /// Extra headers (the client writes Host, Content-Length, Connection).
    pub headers: Arc<[(String, String)]>,
    /// `None` for a GET, which carries no body.
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// The calls of one spec buyer: what `buyer::for_buyer` gives a buyer that
/// has a `[buyer.ping]` or `[buyer.post]` table.
#[derive(Debug, Clone)]
pub struct SpecIntegration {
    ping: Option<(Arc<Stage>, String)>,
    post: Option<(Arc<Stage>, String)>,
}

/// A stage called that the buyer does not describe (a native stage goes
/// through `buyer::native`).
pub const NO_STAGE: &str = "no_spec_stage";

impl SpecIntegration {
    /// `None` for a buyer without stage tables (native both ways). The
    /// targets are the path and query of the stage's URL.
    pub fn new(
        spec: &BuyerSpec,
        ping_target: Option<&str>,
        post_target: &str,
    ) -> Option<SpecIntegration> {
        if spec.ping.is_none() && spec.post.is_none() {
            return None;
        }
        let ping = spec
            .ping
            .clone()
            .map(|s| (s, ping_target.unwrap_or("/").to_string()));
        let post = spec.post.clone().map(|s| (s, post_target.to_string()));
        Some(SpecIntegration { ping, post })
    }

    /// For the config's buyer.
    pub fn for_buyer(b: &crate::config::Buyer) -> Option<SpecIntegration> {
        let ping_target = b.ping_url.as_ref().map(|u| u.target.as_str());
        SpecIntegration::new(&b.spec, ping_target, &b.post_url.target)
    }

    pub fn has_ping(&self) -> bool {
        self.ping.is_some()
    }

    pub fn has_post(&self) -> bool {
        self.post.is_some()
    }

    /// Renders the ping request into `req`.
    pub fn render_ping(&self, vars: &Vars<'_>, req: &mut Request) -> Result<(), &'static str> {
        let (stage, target) = self.ping.as_ref().ok_or(NO_STAGE)?;
        render(stage, target, vars, req);
        Ok(())
    }

    /// Renders the post request into `req`.
    pub fn render_post(&self, vars: &Vars<'_>, req: &mut Request) -> Result<(), &'static str> {
        let (stage, target) = self.post.as_ref().ok_or(NO_STAGE)?;
        render(stage, target, vars, req);
        Ok(())
    }

    /// Reads a ping answer (any status). The body is worked on in place.
    pub fn read_bid(
        &self,
        status: u16,
        content_encoding: Option<&str>,
        body: &mut Vec<u8>,
    ) -> BidRead {
        match self.ping.as_ref().map(|(s, _)| (s.format, &s.rules)) {
            Some((format, Rules::Ping(rules))) => {
                read_bid(format, rules, status, content_encoding, body)
            }
            _ => BidRead {
                answer: BidAnswer::Invalid(NO_STAGE),
                buyer_reason: None,
            },
        }
    }

    /// Reads a post answer (any status). The body is worked on in place.
    pub fn read_post(
        &self,
        status: u16,
        content_encoding: Option<&str>,
        body: &mut Vec<u8>,
    ) -> PostAnswer {
        match self.post.as_ref().map(|(s, _)| (s.format, &s.rules)) {
            Some((format, Rules::Post(rules))) => {
                read_post(format, rules, status, content_encoding, body)
            }
            _ => PostAnswer::Invalid(NO_STAGE),
        }
    }
}

/// Renders one stage: body or fields, query for a GET, headers.
pub fn render(stage: &Stage, base_target: &str, vars: &Vars<'_>, req: &mut Request) {
    req.method = stage.method.as_str();
    req.target.clear();
    req.target.push_str(base_target);
    req.headers = stage.headers.clone();
    req.body.clear();
    req.content_type = (stage.method != Method::Get).then(|| stage.content_type.clone());
    match &stage.payload {
        Payload::Body(t) => t.render(stage.format, vars, &mut req.body),
        Payload::Fields(fields) if stage.method == Method::Get => {
            let mut query = Vec::with_capacity(128);
            write_fields(fields, vars, &mut query);
            if !query.is_empty() {
                req.target
                    .push(if base_target.contains('?') { '&' } else { '?' });
                // Percent-encoded: ASCII only.
                req.target
                    .push_str(std::str::from_utf8(&query).unwrap_or_default());
            }
        }
        Payload::Fields(fields) => write_fields(fields, vars, &mut req.body),
    }
}

fn write_fields(fields: &[(String, Template)], vars: &Vars<'_>, out: &mut Vec<u8>) {
    for (i, (name, t)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        t.render(Format::Form, vars, out);
    }
}

/// Renders a body template twice — every variable present, its text made
/// of every character a format escapes, then every optional value missing
/// — and parses each output in `format`. So a placeholder where no value
/// can stand (inside a JSON string, in a tag name) or a body that is not
/// JSON / XML to begin with is a config error, not a buyer's 400 later.
pub fn check_renders(t: &Template, format: Format, kind: StageKind) -> Result<(), String> {
    let nasty = "x\"<&>'\\ ]]>\u{1}";
    let full = Lead {
        zip: nasty.into(),
        state: nasty.into(),
        city: Some(nasty.into()),
        age: Some(30),
        income: Some(50_000),
        credit: Some(crate::lead::Credit::Good),
        homeowner: Some(true),
        sub_id: Some(nasty.into()),
        attributes: Vec::new(),
        captured_at: Some(nasty.into()),
        first_name: Some(nasty.into()),
        last_name: Some(nasty.into()),
        phone: Some(nasty.into()),
        email: Some(nasty.into()),
        address: Some(nasty.into()),
    };
    let consent = Consent {
        text: nasty.into(),
        captured_at: nasty.into(),
        ip: nasty.into(),
        user_agent: nasty.into(),
        page_url: nasty.into(),
        trustedform_cert_url: Some(nasty.into()),
        jornaya_leadid: Some(nasty.into()),
    };
    let empty = Lead::default();
    let post = kind == StageKind::Post;
    for (lead, present) in [(&full, true), (&empty, false)] {
        let vars = Vars {
            ping_id: nasty,
            vertical: nasty,
            publisher: nasty,
            lead,
            consent: (post && present).then_some(&consent),
            test: true,
            buyer_ref: (post && present).then_some(nasty),
            price: (post && present).then_some(1250),
            now_ms: 0,
        };
        let mut out = Vec::new();
        t.render(format, &vars, &mut out);
        let parsed = match format {
            Format::Json => serde_json::from_slice::<serde::de::IgnoredAny>(&out)
                .map(drop)
                .map_err(|e| format!("does not render to JSON ({e}); a placeholder renders a whole JSON value, so write \"key\": {{{{ x }}}}, not \"{{{{ x }}}}\"")),
            Format::Xml | Format::Soap => xml::parse(&out).map(drop).map_err(|why| {
                format!("does not render to well-formed XML ({why}); placeholders go in element text or quoted attribute values")
            }),
            Format::Form => Ok(()),
        };
        let which = if present {
            "with every value present"
        } else {
            "with optional values missing"
        };
        parsed.map_err(|e| format!("{e}, {which}"))?;
    }
    Ok(())
}
