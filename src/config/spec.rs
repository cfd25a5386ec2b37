//! `[buyer.ping]`, `[buyer.post]` and `[buyer.maps]` (contract §9): a
//! buyer's own posting spec, compiled here when the file loads —
//! templates, maps and response rules — so that every mistake is a
//! `check-config` line naming its key (`buyer[3].ping.body: …`) and
//! nothing is parsed on a lead's clock. The compiled forms live in
//! `buyer::spec`.

use std::collections::HashMap;
use std::sync::Arc;

use toml::Value;

use super::buyer::headers;
use super::walk::{Section, Walker};
use crate::buyer::spec::{
    self, Format, Lit, Map, Maps, Method, Payload, PingRules, PostRules, Rule, Rules, Source,
    Stage, StageKind, Template,
};
use crate::http::url::{self, Url};
use crate::limits;

const STAGE_KEYS: &[&str] = &[
    "url",
    "method",
    "format",
    "headers",
    "timeout_ms",
    "body",
    "fields",
    "response",
];

/// A stage table, read.
pub(super) struct StageRead {
    pub url: Url,
    pub timeout_ms: Option<u64>,
    pub stage: Arc<Stage>,
}

/// `[buyer.maps]`: name → `{ value = replacement, "_" = otherwise }`.
/// Replacements are strings, integers, floats or booleans. A bad entry is
/// reported and left out, but its map stays, so the templates that name
/// it are not reported as naming an unknown map too.
pub(super) fn maps(w: &mut Walker, s: &Section) -> Maps {
    let Some((path, table)) = s.has("maps").then(|| s.table(w, "maps")).flatten() else {
        return Maps::new();
    };
    let m = Section { path: &path, table };
    let mut out = Maps::new();
    for name in table.keys() {
        let Some((mpath, entries)) = m.table(w, name) else {
            continue;
        };
        if entries.len() > limits::BUYER_MAP_ENTRIES_MAX {
            w.error(
                mpath,
                format!("at most {} entries", limits::BUYER_MAP_ENTRIES_MAX),
            );
            continue;
        }
        let e = Section {
            path: &mpath,
            table: entries,
        };
        let mut map = Map::default();
        for (key, value) in entries {
            let lit = match value {
                Value::String(_) => e.string(w, key).map(|t| Lit::Str(t.value.into())),
                Value::Integer(n) => Some(Lit::Int(*n)),
                Value::Float(f) if f.is_finite() => Some(Lit::Float(*f)),
                Value::Boolean(b) => Some(Lit::Bool(*b)),
                _ => {
                    w.error(e.key(key), "expected a string, number or boolean");
                    None
                }
            };
            match (key.as_str(), lit) {
                (_, None) => {}
                ("_", lit) => map.fallback = lit,
                (k, Some(lit)) => {
                    map.entries.insert(k.to_string(), lit);
                }
            }
        }
        out.insert(name.clone(), Arc::new(map));
    }
    out
}

/// One stage table (`name` is `ping` or `post`); `buyer_headers` are the
/// buyer's own `headers`, sent first, a stage header of the same name wins.
pub(super) fn stage(
    w: &mut Walker,
    s: &Section,
    name: &str,
    maps: &Maps,
    buyer_headers: &[(String, String)],
    timeout_ms_max: u64,
) -> Option<StageRead> {
    let kind = if name == "ping" {
        StageKind::Ping
    } else {
        StageKind::Post
    };
    let (path, table) = s.table(w, name)?;
    let st = Section { path: &path, table };
    st.only(w, STAGE_KEYS);
    let before = w.errors.len();
    let url = st.need(w, "url").then(|| url_at(w, &st)).flatten();
    let method = match st.string(w, "method") {
        None if !st.has("method") => Some(Method::Post),
        None => None,
        Some(t) => Method::parse(&t.value).or_else(|| {
            w.error(st.key("method"), "expected POST, PUT or GET");
            None
        }),
    };
    let format = st
        .need(w, "format")
        .then(|| st.string(w, "format"))
        .flatten();
    let format = format.and_then(|t| {
        Format::parse(&t.value).or_else(|| {
            w.error(st.key("format"), "expected json, xml, soap or form");
            None
        })
    });
    let timeout_ms = match st.has("timeout_ms") {
        true => Some(st.int(w, "timeout_ms", 1..=timeout_ms_max as i64)? as u64),
        false => None,
    };
    let own = headers(w, &st);
    let (method, format) = (method?, format?);
    // The templates after `${NAME}`: part of the source, so a reload with a
    // new secret in a body is a different stage.
    let mut substituted = String::new();
    let payload = payload(w, &st, (kind, method, format), maps, &mut substituted);
    let rules = response(w, &st, kind, format);
    let (headers, content_type) = merge_headers(buyer_headers, &own?, format);
    let source = format!(
        "{}\n{:?}\n{:?}\n{:?}",
        table,
        headers,
        content_type,
        maps.keys().collect::<Vec<_>>()
    ) + &maps_source(maps)
        + &substituted;
    if w.errors.len() != before {
        return None;
    }
    Some(StageRead {
        url: url?,
        timeout_ms,
        stage: Arc::new(Stage {
            method,
            format,
            headers: headers.into(),
            content_type,
            payload: payload?,
            rules: rules?,
            source,
        }),
    })
}

/// The maps in a stable text, so that a stage whose map changed is not
/// equal to the old one.
fn maps_source(maps: &Maps) -> String {
    let mut names: Vec<&String> = maps.keys().collect();
    names.sort();
    let mut out = String::new();
    for n in names {
        let m = &maps[n];
        let mut entries: Vec<_> = m.entries.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        out.push_str(&format!("\n{n}: {entries:?} / {:?}", m.fallback));
    }
    out
}

fn url_at(w: &mut Walker, s: &Section) -> Option<Url> {
    let text = s.string(w, "url")?;
    match url::parse(&text.value) {
        Ok(u) => Some(u),
        Err(why) => {
            w.error(s.key("url"), format!("not a URL ({why})"));
            None
        }
    }
}

/// Buyer headers, then the stage's replacing any of the same name; the
/// Content-Type comes out of the list (the client writes it).
fn merge_headers(
    buyer: &[(String, String)],
    stage: &[(String, String)],
    format: Format,
) -> (Vec<(String, String)>, String) {
    let mut all: Vec<(String, String)> = buyer
        .iter()
        .filter(|(k, _)| !stage.iter().any(|(s, _)| s.eq_ignore_ascii_case(k)))
        .cloned()
        .collect();
    all.extend(stage.iter().cloned());
    let mut content_type = format.content_type().to_string();
    all.retain(|(k, v)| {
        let ct = k.eq_ignore_ascii_case("content-type");
        if ct {
            content_type = v.clone();
        }
        !ct
    });
    (all, content_type)
}

/// `body` (json, xml, soap with POST/PUT) or `fields` (form, or any GET).
fn payload(
    w: &mut Walker,
    st: &Section,
    (kind, method, format): (StageKind, Method, Format),
    maps: &Maps,
    substituted: &mut String,
) -> Option<Payload> {
    let wants_fields = method == Method::Get || format == Format::Form;
    let (want, other, why) = if wants_fields {
        (
            "fields",
            "body",
            "a GET sends fields in its query and a form post sends fields",
        )
    } else {
        (
            "body",
            "fields",
            "a json, xml or soap POST/PUT sends a body template",
        )
    };
    if st.has(other) {
        w.error(st.key(other), format!("not used here: {why}"));
    }
    if !st.need(w, want) {
        return None;
    }
    if !wants_fields {
        let text = st.string(w, "body")?;
        substituted.push_str(&text.value);
        let key = st.key("body");
        let t = compile(w, &key, &text.value, kind, maps)?;
        if let Err(why) = spec::check_renders(&t, format, kind) {
            w.error(key, why);
            return None;
        }
        return Some(Payload::Body(t));
    }
    let (fpath, table) = st.table(w, "fields")?;
    let f = Section {
        path: &fpath,
        table,
    };
    if table.len() > limits::BUYER_FIELDS_MAX {
        w.error(
            fpath,
            format!("at most {} fields", limits::BUYER_FIELDS_MAX),
        );
        return None;
    }
    let before = w.errors.len();
    let mut fields = Vec::with_capacity(table.len());
    for name in table.keys() {
        let Some(text) = f.string(w, name) else {
            continue;
        };
        substituted.push_str(&format!("\n{name:?}={:?}", text.value));
        if let Some(t) = compile(w, &f.key(name), &text.value, kind, maps) {
            let mut encoded = Vec::new();
            spec::template::percent_encode(&mut encoded, name);
            fields.push((String::from_utf8(encoded).unwrap_or_default(), t));
        }
    }
    (w.errors.len() == before).then_some(Payload::Fields(fields))
}

fn compile(w: &mut Walker, key: &str, src: &str, kind: StageKind, maps: &Maps) -> Option<Template> {
    match Template::compile(src, kind, maps) {
        Ok(t) => Some(t),
        Err(why) => {
            w.error(key, why);
            None
        }
    }
}

const PING_RULES: &[&str] = &["bid", "price", "ref", "reason"];
const POST_RULES: &[&str] = &["accepted", "lead_id", "reason"];

/// `[buyer.<stage>.response]`: ping needs `price`, post needs `accepted`.
fn response(w: &mut Walker, st: &Section, kind: StageKind, format: Format) -> Option<Rules> {
    if !st.need(w, "response") {
        return None;
    }
    let (path, table) = st.table(w, "response")?;
    let r = Section { path: &path, table };
    let before = w.errors.len();
    let mut got: HashMap<&str, Rule> = HashMap::new();
    let names = match kind {
        StageKind::Ping => PING_RULES,
        StageKind::Post => POST_RULES,
    };
    r.only(w, names);
    for &name in names {
        if let Some(rule) = r.has(name).then(|| rule(w, &r, name, format)).flatten() {
            got.insert(name, rule);
        }
    }
    let required = names[usize::from(kind == StageKind::Ping)];
    r.need(w, required);
    if w.errors.len() != before {
        return None;
    }
    Some(match kind {
        StageKind::Ping => Rules::Ping(PingRules {
            bid: got.remove("bid"),
            price: got.remove("price")?,
            buyer_ref: got.remove("ref"),
            reason: got.remove("reason"),
        }),
        StageKind::Post => Rules::Post(PostRules {
            accepted: got.remove("accepted")?,
            lead_id: got.remove("lead_id"),
            reason: got.remove("reason"),
        }),
    })
}

/// `{ path = "…" }` or `{ regex = "…" }`, with an optional `equals`.
fn rule(w: &mut Walker, r: &Section, name: &str, format: Format) -> Option<Rule> {
    let (path, table) = r.table(w, name)?;
    let s = Section { path: &path, table };
    s.only(w, &["path", "regex", "equals"]);
    let source = match (s.has("path"), s.has("regex")) {
        (true, true) | (false, false) => {
            w.error(path.clone(), "give exactly one of path or regex");
            None
        }
        (true, false) => {
            let p = s.string(w, "path")?;
            Source::path(format, &p.value)
                .map_err(|why| w.error(s.key("path"), why))
                .ok()
        }
        (false, true) => {
            let p = s.string(w, "regex")?;
            Source::regex(&p.value)
                .map_err(|why| w.error(s.key("regex"), why))
                .ok()
        }
    };
    let equals = match s.has("equals") {
        false => Some(None),
        true => s
            .strings(w, "equals", limits::BUYER_EQUALS_MAX)
            .map(|items| {
                Some(
                    items
                        .into_iter()
                        .map(|(_, t)| t.value.trim().to_string())
                        .collect(),
                )
            }),
    };
    Some(Rule {
        source: source?,
        equals: equals?,
    })
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
