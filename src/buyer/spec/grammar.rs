//! The grammar of a template expression, parsed when the config loads:
//!
//! ```text
//! expr   := path ( '|' filter )*
//! path   := ident ( '.' ident )*
//! filter := ident ( '(' lit ( ',' lit )* ')' )?
//! lit    := '…' | "…" | number | true | false
//! ```
//!
//! A variable resolves to `template::Var` here, a map name to its table:
//! an unknown root, field, filter or map is the error message for the
//! template's config key.

use super::template::{ConsentField, Expr, Filter, Lit, Maps, PhoneFmt, StageKind, Var};
use super::time::Part;
use crate::lead::Field;

const CONSENT_FIELDS: &[(&str, ConsentField)] = &[
    ("text", ConsentField::Text),
    ("captured_at", ConsentField::CapturedAt),
    ("ip", ConsentField::Ip),
    ("user_agent", ConsentField::UserAgent),
    ("page_url", ConsentField::PageUrl),
    ("trustedform_cert_url", ConsentField::TrustedformCertUrl),
    ("jornaya_leadid", ConsentField::JornayaLeadid),
];

#[derive(Debug, Clone, PartialEq)]
enum Tok<'s> {
    Ident(&'s str),
    Str(String),
    Num(&'s str),
    Dot,
    Pipe,
    Open,
    Close,
    Comma,
}

fn tokens(s: &str) -> Result<Vec<Tok<'_>>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let single = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'.' => Some(Tok::Dot),
            b'|' => Some(Tok::Pipe),
            b'(' => Some(Tok::Open),
            b')' => Some(Tok::Close),
            b',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(t) = single {
            out.push(t);
            i += 1;
        } else if c == b'"' || c == b'\'' {
            let end = s[i + 1..]
                .find(c as char)
                .ok_or("unclosed string literal")?;
            out.push(Tok::Str(s[i + 1..i + 1 + end].to_string()));
            i += end + 2;
        } else if c.is_ascii_digit() || c == b'-' {
            let len = s[i + 1..]
                .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
                .unwrap_or(s.len() - i - 1);
            out.push(Tok::Num(&s[i..i + 1 + len]));
            i += 1 + len;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let len = s[i..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '-'))
                .unwrap_or(s.len() - i);
            out.push(Tok::Ident(&s[i..i + len]));
            i += len;
        } else {
            return Err(format!("unexpected character {:?}", c as char));
        }
    }
    Ok(out)
}

pub(super) fn parse_expr(src: &str, stage: StageKind, maps: &Maps) -> Result<Expr, String> {
    let toks = tokens(src)?;
    let mut it = toks.into_iter().peekable();
    let mut path = Vec::new();
    loop {
        match it.next() {
            Some(Tok::Ident(id)) => path.push(id),
            _ => return Err("expected a variable such as lead.zip".into()),
        }
        if it.peek() == Some(&Tok::Dot) {
            it.next();
        } else {
            break;
        }
    }
    let var = resolve(&path, stage)?;
    let mut filters = Vec::new();
    while let Some(t) = it.next() {
        if t != Tok::Pipe {
            return Err("expected | between filters".into());
        }
        let Some(Tok::Ident(name)) = it.next() else {
            return Err("expected a filter name after |".into());
        };
        let mut args = Vec::new();
        if it.peek() == Some(&Tok::Open) {
            it.next();
            loop {
                args.push(match it.next() {
                    Some(Tok::Str(s)) => Lit::Str(s.into()),
                    Some(Tok::Num(n)) => number(n)?,
                    Some(Tok::Ident("true")) => Lit::Bool(true),
                    Some(Tok::Ident("false")) => Lit::Bool(false),
                    _ => return Err(format!("{name}: expected a literal argument")),
                });
                match it.next() {
                    Some(Tok::Comma) => continue,
                    Some(Tok::Close) => break,
                    _ => return Err(format!("{name}: expected , or )")),
                }
            }
        }
        filters.push(filter(name, args, maps)?);
    }
    Ok(Expr { var, filters })
}

fn number(n: &str) -> Result<Lit, String> {
    if let Ok(i) = n.parse::<i64>() {
        return Ok(Lit::Int(i));
    }
    match n.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Lit::Float(f)),
        _ => Err(format!("not a number: {n}")),
    }
}

fn resolve(path: &[&str], stage: StageKind) -> Result<Var, String> {
    let post_only = |what: &str| Err(format!("{what} exists only in the post"));
    let bare = |v: Var| {
        if path.len() == 1 {
            Ok(v)
        } else {
            Err(format!("{} has no fields", path[0]))
        }
    };
    match path[0] {
        "lead" if path.get(1) == Some(&"attributes") => match path {
            [_, _, name] => Ok(Var::Attr((*name).into())),
            _ => Err("expected lead.attributes.<name>".into()),
        },
        "lead" => lead_field(path).map(Var::Lead),
        "consent" if stage == StageKind::Ping => post_only("consent"),
        "consent" => field(path, CONSENT_FIELDS, "consent").map(Var::Consent),
        "ping_id" => bare(Var::PingId),
        "vertical" => bare(Var::Vertical),
        "publisher" => bare(Var::Publisher),
        "test" => bare(Var::Test),
        "now" => bare(Var::Now),
        "ref" | "price" if stage == StageKind::Ping => post_only(path[0]),
        "ref" => bare(Var::Ref),
        "price" => bare(Var::Price),
        other => Err(format!(
            "unknown variable {other} (lead, consent, ping_id, vertical, publisher, test, ref, price, now)"
        )),
    }
}

/// `root.<name>` among `names`.
/// `lead.<key>`: the keys a lead carries (`lead::Field`), but not
/// `attributes`, which is named by `lead.attributes.<name>`.
fn lead_field(path: &[&str]) -> Result<Field, String> {
    let [_, name] = path else {
        return Err("expected lead.<field>".into());
    };
    Field::of(name)
        .filter(|f| *f != Field::Attributes)
        .ok_or_else(|| format!("unknown field lead.{name}"))
}

fn field<F: Copy>(path: &[&str], names: &[(&str, F)], root: &str) -> Result<F, String> {
    let [_, name] = path else {
        return Err(format!("expected {root}.<field>"));
    };
    names
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, f)| *f)
        .ok_or_else(|| format!("unknown field {root}.{name}"))
}

fn filter(name: &str, args: Vec<Lit>, maps: &Maps) -> Result<Filter, String> {
    let one_str = |args: &[Lit]| match args {
        [Lit::Str(s)] => Ok(s.to_string()),
        _ => Err(format!("{name} takes one string argument")),
    };
    match name {
        "upper" | "lower" if !args.is_empty() => Err(format!("{name} takes no arguments")),
        "upper" => Ok(Filter::Upper),
        "lower" => Ok(Filter::Lower),
        "default" => match <[Lit; 1]>::try_from(args) {
            Ok([lit]) => Ok(Filter::Default(lit)),
            Err(_) => Err("default takes one argument".into()),
        },
        "lookup" => {
            let map = one_str(&args)?;
            maps.get(&map)
                .map(|m| Filter::Lookup(m.clone()))
                .ok_or_else(|| format!("unknown map {map:?} (not in [buyer.maps])"))
        }
        "phone" => match one_str(&args)?.as_str() {
            "digits" => Ok(Filter::Phone(PhoneFmt::Digits)),
            "e164" => Ok(Filter::Phone(PhoneFmt::E164)),
            "dashed" => Ok(Filter::Phone(PhoneFmt::Dashed)),
            other => Err(format!(
                "phone: unknown format {other:?} (digits, e164, dashed)"
            )),
        },
        "date" => date_parts(&one_str(&args)?).map(Filter::Date),
        other => Err(format!(
            "unknown filter {other} (lookup, phone, date, default, upper, lower)"
        )),
    }
}

fn date_parts(f: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        let part = match chars.next() {
            Some('%') => {
                lit.push('%');
                continue;
            }
            Some('Y') => Part::Year,
            Some('y') => Part::Year2,
            Some('m') => Part::Month,
            Some('d') => Part::Day,
            Some('H') => Part::Hour,
            Some('M') => Part::Minute,
            Some('S') => Part::Second,
            other => {
                return Err(format!(
                    "date: unsupported %{} (use %Y %y %m %d %H %M %S %%)",
                    other.map(String::from).unwrap_or_default()
                ))
            }
        };
        if !lit.is_empty() {
            parts.push(Part::Lit(std::mem::take(&mut lit).into()));
        }
        parts.push(part);
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit.into()));
    }
    Ok(parts)
}
