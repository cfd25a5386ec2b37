//! `[[buyer]]` with its `headers`; its spec tables (`[buyer.ping]`,
//! `[buyer.post]`, `[buyer.maps]`) are read by `config::spec`, the routing
//! controls (`timezone`, `[buyer.filter]`, `[buyer.caps]`,
//! `[buyer.schedule]`, `[buyer.health]`) by `config::routing`. Buyers carry the most rules (URLs,
//! prices, header syntax, filter ranges), so they get their own reader.

use std::collections::HashSet;

use super::routing;
use super::sections::{id, unique_ids, vertical_refs};
use super::spec::{self, StageRead};
use super::walk::{Section, Walker};
use super::{Auction, Buyer};
use crate::buyer::spec::BuyerSpec;
use crate::http::url::{self, Url};
use crate::limits;
use crate::money::{cents_from_f64, Cents};

const BUYER_KEYS: &[&str] = &[
    "id",
    "verticals",
    "ping_url",
    "post_url",
    "fixed_price",
    "ping_timeout_ms",
    "post_timeout_ms",
    "priority",
    "headers",
    "filter",
    "caps",
    "ping",
    "post",
    "maps",
    // Routing controls (contract §10): `config::routing`.
    "timezone",
    "schedule",
    "health",
    // PII over plain HTTP to a non-loopback host (issue #10).
    "allow_plain_http",
    // Returns (contract §13).
    "return_window_days",
];

/// Headers that frame the request leadx sends; a config value for one
/// would corrupt the HTTP exchange, so they are refused.
const RESERVED_HEADERS: &[&str] = &["host", "content-length", "transfer-encoding", "connection"];

/// `[[buyer]]`: at most `BUYERS_MAX`; `known` are the vertical ids and
/// `auction` gives the default time-outs.
pub(super) fn buyers(
    w: &mut Walker,
    top: &Section,
    known: &HashSet<String>,
    auction: &Auction,
) -> Option<Vec<Buyer>> {
    let items = top.array_of_tables(w, "buyer", limits::BUYERS_MAX);
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for (path, table) in &items {
        let s = Section { path, table };
        s.only(w, BUYER_KEYS);
        let id_text = id(w, &s);
        ids.extend(id_text.clone().map(|t| (s.key("id"), t)));
        out.push(buyer(w, &s, id_text.map(|t| t.value), known, auction));
    }
    unique_ids(w, &ids);
    out.into_iter().collect()
}

fn buyer(
    w: &mut Walker,
    s: &Section,
    id: Option<String>,
    known: &HashSet<String>,
    auction: &Auction,
) -> Option<Buyer> {
    let verticals = vertical_refs(w, s, known);
    let ping_url = optional(s.has("ping_url"), url_at(w, s, "ping_url"));
    let post_url = optional(s.has("post_url"), url_at(w, s, "post_url"));
    let fixed_price = optional(s.has("fixed_price"), price(w, s, "fixed_price"));
    let priced = s.has("ping_url") || s.has("ping") || s.has("fixed_price");
    if !priced {
        w.error(
            s.key("fixed_price"),
            "required for a direct-post buyer (no ping_url)",
        );
    }
    let ping_ms = s.int_or(
        w,
        "ping_timeout_ms",
        1..=limits::PING_TIMEOUT_MS_MAX as i64,
        auction.ping_timeout_ms as i64,
    );
    let post_ms = s.int_or(
        w,
        "post_timeout_ms",
        1..=limits::POST_TIMEOUT_MS_MAX as i64,
        auction.post_timeout_ms as i64,
    );
    let priority = s.int_or(w, "priority", i64::MIN..=i64::MAX, 0);
    let headers = headers(w, s);
    let stages = stages(w, s, headers.as_deref().unwrap_or_default());
    let filter = routing::filter(w, s);
    let caps = routing::caps(w, s);
    let timezone = routing::timezone(w, s);
    let schedule = routing::schedule(w, s);
    let health = routing::health(w, s);
    let plain_ok = optional(s.has("allow_plain_http"), s.boolean(w, "allow_plain_http"));
    let return_window_days = return_window_days(w, s, id.as_deref());
    priced.then_some(())?;
    let (ping_stage, post_stage) = stages?;
    let (ping_url, ping_ms) = pick(ping_url?, ping_ms? as u64, ping_stage.as_ref());
    let (post_url, post_ms) = pick(post_url?, post_ms? as u64, post_stage.as_ref());
    no_pii_in_clear(w, s, post_url.as_ref(), plain_ok?.unwrap_or(false))?;
    Some(Buyer {
        id: id?,
        verticals: verticals?,
        ping_url,
        post_url: post_url?,
        fixed_price: fixed_price?,
        ping_timeout_ms: ping_ms,
        post_timeout_ms: post_ms,
        priority: priority?,
        headers: headers?,
        filter: filter?,
        caps: caps?,
        spec: BuyerSpec {
            ping: ping_stage.map(|s| s.stage),
            post: post_stage.map(|s| s.stage),
        },
        timezone: timezone?,
        schedule: schedule?,
        health: health?,
        return_window_days: return_window_days?,
    })
}

/// `return_window_days` (contract §13): how many days after a sale the
/// buyer may return the lead; default 7, a whole number from 1 to
/// `limits::RETURN_WINDOW_DAYS_MAX`. The error names the buyer.
fn return_window_days(w: &mut Walker, s: &Section, id: Option<&str>) -> Option<u32> {
    const KEY: &str = "return_window_days";
    let max = limits::RETURN_WINDOW_DAYS_MAX;
    let buyer = id.map(|i| format!(" (buyer {i:?})")).unwrap_or_default();
    match s.table.get(KEY) {
        None => Some(limits::RETURN_WINDOW_DAYS_DEFAULT),
        Some(toml::Value::Integer(n)) if (1..=i64::from(max)).contains(n) => Some(*n as u32),
        Some(toml::Value::Integer(_)) => {
            w.error(s.key(KEY), format!("must be 1 to {max} days{buyer}"));
            None
        }
        Some(_) => {
            w.error(s.key(KEY), format!("must be a whole number of days{buyer}"));
            None
        }
    }
}

/// `[buyer.ping]`, `[buyer.post]` (with `[buyer.maps]`): each instead of
/// its `*_url`, never both; `post_url` is required without `[buyer.post]`,
/// and a stage's `timeout_ms` stands for `*_timeout_ms`.
#[allow(clippy::type_complexity)]
fn stages(
    w: &mut Walker,
    s: &Section,
    buyer_headers: &[(String, String)],
) -> Option<(Option<StageRead>, Option<StageRead>)> {
    let maps = &spec::maps(w, s);
    let mut read = |name: &str, url_key: &str, ms_key: &str, ms_max: u64| {
        if !s.has(name) {
            return Some(None);
        }
        if s.has(url_key) {
            w.error(
                s.key(name),
                format!("give {url_key} or [buyer.{name}], not both"),
            );
        }
        let stage = spec::stage(w, s, name, maps, buyer_headers, ms_max)?;
        if stage.timeout_ms.is_some() && s.has(ms_key) {
            w.error(
                s.key(name) + ".timeout_ms",
                format!("give {ms_key} or {name}.timeout_ms, not both"),
            );
        }
        Some(Some(stage))
    };
    let ping = read(
        "ping",
        "ping_url",
        "ping_timeout_ms",
        limits::PING_TIMEOUT_MS_MAX,
    );
    let post = read(
        "post",
        "post_url",
        "post_timeout_ms",
        limits::POST_TIMEOUT_MS_MAX,
    );
    if !s.has("post") {
        s.need(w, "post_url");
    }
    Some((ping?, post?))
}

/// The post carries the consumer's PII, so it never goes over plain HTTP to
/// another host unless the buyer says so (`allow_plain_http = true`, e.g. a
/// TLS-terminating sidecar on a private link). Loopback is always fine.
fn no_pii_in_clear(w: &mut Walker, s: &Section, post: Option<&Url>, allowed: bool) -> Option<()> {
    let Some(u) = post else { return Some(()) };
    if clear_text_ok(u, allowed) {
        return Some(());
    }
    let key = if s.has("post") {
        s.key("post") + ".url"
    } else {
        s.key("post_url")
    };
    w.error(
        key,
        "plain http:// to a non-loopback host would send PII in clear; use https:// or set allow_plain_http = true",
    );
    None
}

/// The one plain-HTTP rule (buyers' posts, publishers' postbacks): https,
/// a loopback host, or plain http the operator allowed
/// (`allow_plain_http = true`).
pub(super) fn clear_text_ok(u: &Url, allowed: bool) -> bool {
    allowed || u.scheme == url::Scheme::Https || is_loopback(&u.host)
}

/// `localhost`, 127.0.0.0/8 or ::1.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The URL and time-out of a stage: its table's when it has one.
fn pick(url: Option<Url>, ms: u64, stage: Option<&StageRead>) -> (Option<Url>, u64) {
    match stage {
        Some(st) => (Some(st.url.clone()), st.timeout_ms.unwrap_or(ms)),
        None => (url, ms),
    }
}

/// An optional key's value: `Some(None)` when absent, `None` when present
/// but invalid (its error already recorded).
fn optional<T>(present: bool, value: Option<T>) -> Option<Option<T>> {
    if present {
        value.map(Some)
    } else {
        Some(None)
    }
}

fn url_at(w: &mut Walker, s: &Section, name: &str) -> Option<Url> {
    let text = s.string(w, name)?;
    match url::parse(&text.value) {
        Ok(u) => Some(u),
        Err(why) => {
            w.error(s.key(name), format!("not a URL ({why})"));
            None
        }
    }
}

fn price(w: &mut Walker, s: &Section, name: &str) -> Option<Cents> {
    let cents = cents_from_f64(s.number(w, name)?);
    if cents.is_none() {
        w.error(
            s.key(name),
            "not a price (non-negative USD, at most 2 decimals)",
        );
    }
    cents
}

/// `headers = { "Name" = "value" }`: names are HTTP tokens, unique ignoring
/// case, not one leadx sets itself; values (after `${NAME}`) hold no CR, LF
/// or NUL, which could smuggle a header. Values never appear in errors.
pub(super) fn headers(w: &mut Walker, s: &Section) -> Option<Vec<(String, String)>> {
    if !s.has("headers") {
        return Some(Vec::new());
    }
    let (path, table) = s.table(w, "headers")?;
    if table.len() > limits::BUYER_HEADERS_MAX {
        w.error(
            path,
            format!("at most {} headers", limits::BUYER_HEADERS_MAX),
        );
        return None;
    }
    let before = w.errors.len();
    let h = Section { path: &path, table };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(table.len());
    for name in table.keys() {
        let key = h.key(name);
        let lower = name.to_ascii_lowercase();
        if !is_token(name) {
            w.error(key.clone(), "not a valid header name");
        } else if RESERVED_HEADERS.contains(&lower.as_str()) {
            w.error(key.clone(), "set by leadx itself; cannot be configured");
        } else if !seen.insert(lower) {
            w.error(key.clone(), "duplicate header (names ignore case)");
        }
        let Some(value) = h.string(w, name) else {
            continue;
        };
        if value.value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            w.error(key, "value contains CR, LF or NUL");
            continue;
        }
        out.push((name.clone(), value.value));
    }
    (w.errors.len() == before).then_some(out)
}

/// An HTTP token (RFC 9110 `tchar`s), as header names must be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
