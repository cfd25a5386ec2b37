//! Templates of buyer specs (contract §9): `{{ path | filter(args) }}`
//! between literal text, compiled once when the config loads into pieces
//! whose variables are already resolved to an enum and whose maps are
//! already looked up, so rendering a request walks a `Vec` and never looks
//! a name up by string.
//!
//! Why our own small compiler and not `minijinja`: a buyer template needs
//! expressions only, no control flow. What matters is (1) that an unknown
//! variable root, filter or map is an error at config load, (2) that every
//! value goes out through the format's escaper with no way around it (no
//! `|safe`, no raw blocks, no autoescape setting to get wrong), and (3) a
//! render cost of a few hundred nanoseconds on the ping's hot path, without
//! turning every lead into a dynamic value map first. A general engine
//! gives the first only partly (unknown variables are runtime `undefined`),
//! the second by configuration, and the third at several times the cost.
//! The grammar (`grammar.rs`) is ~250 lines and fully tested.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::time::Part;
use super::{Format, Vars};
use crate::lead::{Attr, Consent, Field, Lead};
use crate::money::Cents;

/// Which request a template belongs to: `ref`, `price` and `consent.*`
/// exist only for the post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind {
    Ping,
    Post,
}

/// A literal value: a map entry or a `default(…)` argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(Box<str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// One `[buyer.maps]` table: value → replacement, `"_"` for anything else.
#[derive(Debug, Default)]
pub struct Map {
    pub entries: HashMap<String, Lit>,
    pub fallback: Option<Lit>,
}

/// The maps a template may name, by name.
pub type Maps = HashMap<String, Arc<Map>>;

/// A compiled template.
#[derive(Debug)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug)]
enum Piece {
    Lit(Box<str>),
    Expr(Expr),
}

#[derive(Debug)]
pub(super) struct Expr {
    pub(super) var: Var,
    pub(super) filters: Vec<Filter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConsentField {
    Text,
    CapturedAt,
    Ip,
    UserAgent,
    PageUrl,
    TrustedformCertUrl,
    JornayaLeadid,
}

#[derive(Debug)]
pub(super) enum Var {
    Lead(Field),
    Attr(Box<str>),
    Consent(ConsentField),
    PingId,
    Vertical,
    Publisher,
    Test,
    Ref,
    Price,
    Now,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum PhoneFmt {
    Digits,
    E164,
    Dashed,
}

#[derive(Debug)]
pub(super) enum Filter {
    Upper,
    Lower,
    Lookup(Arc<Map>),
    Phone(PhoneFmt),
    Date(Vec<Part>),
    Default(Lit),
}

/// A value while a template renders.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Missing,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Cents(Cents),
}

impl Template {
    /// Compiles `src`; the error is a one-line message for the template's
    /// config key.
    pub fn compile(src: &str, stage: StageKind, maps: &Maps) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = src;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Lit(rest[..open].into()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                format!("unclosed {{{{ at byte {}", src.len() - rest.len() + open)
            })?;
            let expr = super::grammar::parse_expr(&after[..close], stage, maps)
                .map_err(|e| format!("in {{{{{}}}}}: {e}", &after[..close]))?;
            pieces.push(Piece::Expr(expr));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Lit(rest.into()));
        }
        Ok(Template { pieces })
    }

    /// Appends the template rendered for `format`: literal text as written,
    /// each value through the format's escaper (JSON value, XML text, or
    /// percent-encoding — for `Form` the literal text is encoded too).
    pub fn render(&self, format: Format, vars: &Vars<'_>, out: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Lit(s) if format == Format::Form => percent_encode(out, s),
                Piece::Lit(s) => out.extend_from_slice(s.as_bytes()),
                Piece::Expr(e) => write_val(format, &e.eval(vars), out),
            }
        }
    }
}

impl Expr {
    fn eval<'a>(&self, v: &Vars<'a>) -> Val<'a> {
        let mut val = self.var.get(v);
        for f in &self.filters {
            val = f.apply(val);
        }
        val
    }
}

fn opt_str(s: Option<&str>) -> Val<'_> {
    s.map_or(Val::Missing, |s| Val::Str(Cow::Borrowed(s)))
}

impl Var {
    fn get<'a>(&self, v: &Vars<'a>) -> Val<'a> {
        match self {
            Var::Lead(f) => lead_field(v.lead, *f),
            Var::Attr(name) => match v
                .lead
                .attributes
                .binary_search_by(|(k, _)| k.as_str().cmp(name))
            {
                Ok(i) => match &v.lead.attributes[i].1 {
                    Attr::Str(s) => Val::Str(Cow::Borrowed(s)),
                    Attr::Int(n) => Val::Int(*n),
                    Attr::Float(f) => Val::Float(*f),
                    Attr::Bool(b) => Val::Bool(*b),
                },
                Err(_) => Val::Missing,
            },
            Var::Consent(f) => v.consent.map_or(Val::Missing, |c| consent_field(c, *f)),
            Var::PingId => Val::Str(Cow::Borrowed(v.ping_id)),
            Var::Vertical => Val::Str(Cow::Borrowed(v.vertical)),
            Var::Publisher => Val::Str(Cow::Borrowed(v.publisher)),
            Var::Test => Val::Bool(v.test),
            Var::Ref => opt_str(v.buyer_ref),
            Var::Price => v.price.map_or(Val::Missing, Val::Cents),
            Var::Now => Val::Str(Cow::Owned(super::time::rfc3339_utc(v.now_ms))),
        }
    }
}

fn lead_field(l: &Lead, f: Field) -> Val<'_> {
    match f {
        Field::Zip => Val::Str(Cow::Borrowed(&l.zip)),
        Field::State => Val::Str(Cow::Borrowed(&l.state)),
        Field::City => opt_str(l.city.as_deref()),
        Field::Age => l.age.map_or(Val::Missing, |n| Val::Int(n.into())),
        Field::Income => l.income.map_or(Val::Missing, Val::Int),
        Field::Credit => l
            .credit
            .map_or(Val::Missing, |c| Val::Str(Cow::Borrowed(c.as_str()))),
        Field::Homeowner => l.homeowner.map_or(Val::Missing, Val::Bool),
        Field::SubId => opt_str(l.sub_id.as_deref()),
        Field::CapturedAt => opt_str(l.captured_at.as_deref()),
        Field::FirstName => opt_str(l.first_name.as_deref()),
        Field::LastName => opt_str(l.last_name.as_deref()),
        Field::Phone => opt_str(l.phone.as_deref()),
        Field::Email => opt_str(l.email.as_deref()),
        Field::Address => opt_str(l.address.as_deref()),
        // Never compiled: `lead.attributes.<name>` is its own variable.
        Field::Attributes => Val::Missing,
    }
}

fn consent_field(c: &Consent, f: ConsentField) -> Val<'_> {
    match f {
        ConsentField::Text => Val::Str(Cow::Borrowed(&c.text)),
        ConsentField::CapturedAt => Val::Str(Cow::Borrowed(&c.captured_at)),
        ConsentField::Ip => Val::Str(Cow::Borrowed(&c.ip)),
        ConsentField::UserAgent => Val::Str(Cow::Borrowed(&c.user_agent)),
        ConsentField::PageUrl => Val::Str(Cow::Borrowed(&c.page_url)),
        ConsentField::TrustedformCertUrl => opt_str(c.trustedform_cert_url.as_deref()),
        ConsentField::JornayaLeadid => opt_str(c.jornaya_leadid.as_deref()),
    }
}

impl Lit {
    fn val(&self) -> Val<'static> {
        match self {
            Lit::Str(s) => Val::Str(Cow::Owned(s.to_string())),
            Lit::Int(n) => Val::Int(*n),
            Lit::Float(f) => Val::Float(*f),
            Lit::Bool(b) => Val::Bool(*b),
        }
    }
}

impl Filter {
    fn apply<'a>(&self, v: Val<'a>) -> Val<'a> {
        match self {
            Filter::Upper => map_str(v, |s| s.to_uppercase()),
            Filter::Lower => map_str(v, |s| s.to_lowercase()),
            Filter::Default(lit) => match &v {
                Val::Missing => lit.val(),
                Val::Str(s) if s.is_empty() => lit.val(),
                _ => v,
            },
            Filter::Lookup(map) => {
                let hit = match text(&v) {
                    Some(key) => map.entries.get(key.as_ref()),
                    None => None,
                };
                match hit.or(map.fallback.as_ref()) {
                    Some(lit) => lit.val(),
                    None => v,
                }
            }
            Filter::Phone(fmt) => match &v {
                Val::Str(s) => match crate::lead::normalize_phone(s) {
                    // `+1` and ten digits.
                    Some(e164) => Val::Str(Cow::Owned(phone(&e164, *fmt))),
                    None => v,
                },
                _ => v,
            },
            Filter::Date(parts) => match &v {
                Val::Str(s) => match super::time::format_date(s, parts) {
                    Some(out) => Val::Str(Cow::Owned(out)),
                    None => v,
                },
                _ => v,
            },
        }
    }
}

fn map_str<'a>(v: Val<'a>, f: impl Fn(&str) -> String) -> Val<'a> {
    match v {
        Val::Str(s) => Val::Str(Cow::Owned(f(&s))),
        other => other,
    }
}

fn phone(e164: &str, fmt: PhoneFmt) -> String {
    let d = &e164[2..];
    match fmt {
        PhoneFmt::Digits => d.to_string(),
        PhoneFmt::E164 => e164.to_string(),
        PhoneFmt::Dashed => format!("{}-{}-{}", &d[..3], &d[3..6], &d[6..]),
    }
}

/// A value as text (XML, form, map keys); `None` when missing.
pub fn text<'v>(v: &'v Val<'_>) -> Option<Cow<'v, str>> {
    Some(match v {
        Val::Missing => return None,
        Val::Str(s) => Cow::Borrowed(s.as_ref()),
        Val::Int(n) => Cow::Owned(n.to_string()),
        Val::Float(f) if f.is_finite() => Cow::Owned(f.to_string()),
        Val::Float(_) => return None,
        Val::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Val::Cents(c) => Cow::Owned(format!("{}.{:02}", c / 100, c % 100)),
    })
}

fn write_val(format: Format, v: &Val<'_>, out: &mut Vec<u8>) {
    match format {
        Format::Json => write_json(v, out),
        Format::Xml | Format::Soap => {
            if let Some(t) = text(v) {
                crate::xml::escape(out, &t);
            }
        }
        Format::Form => {
            if let Some(t) = text(v) {
                percent_encode(out, &t);
            }
        }
    }
}

/// A JSON value: a string quoted and escaped, a number or boolean bare, a
/// missing value (or a non-finite float) `null`.
fn write_json(v: &Val<'_>, out: &mut Vec<u8>) {
    match v {
        Val::Str(s) => crate::json::write_str(out, s),
        Val::Missing => out.extend_from_slice(b"null"),
        Val::Float(f) if !f.is_finite() => out.extend_from_slice(b"null"),
        Val::Cents(c) => crate::money::write_cents(out, *c),
        other => {
            if let Some(t) = text(other) {
                out.extend_from_slice(t.as_bytes());
            }
        }
    }
}

/// RFC 3986 percent-encoding: only unreserved characters stay as they are,
/// so `&`, `=`, `+`, `%` and everything else in a value are data.
pub fn percent_encode(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
