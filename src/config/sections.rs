//! `[server]`, `[admin]`, `[auction]`, `[[vertical]]` and `[[publisher]]`,
//! plus the id and vertical-reference rules that buyers share. Each reader
//! reports every problem it sees and returns `None` if any was its own.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use super::ipnet::IpNet;
use super::secrets::parse_sha256_hex;
use super::walk::{Section, Text, Walker};
use super::{Admin, Auction, Buyer, ConsentEvidence, Publisher, Server, Vertical};
use crate::limits;
use crate::money::share_from_f64;

const SERVER_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "body_bytes_max",
    "workers",
    "idle_timeout_ms",
    "request_timeout_ms",
    "drain_timeout_ms",
    "connections_max",
    "ping_cache_bytes",
    "store_cache_bytes",
    "auctions_in_flight_max",
    "buyer_calls_in_flight_max",
    "trusted_proxies",
    "tls",
    "buyer_preconnect",
    "buyer_keep_warm",
    "buyer_ca_file",
];

/// `[server]`: required, with `listen` and `data_dir`.
pub(super) fn server(w: &mut Walker, top: &Section) -> Option<Server> {
    if !top.need(w, "server") {
        return None;
    }
    let (path, table) = top.table(w, "server")?;
    let s = Section { path: &path, table };
    s.only(w, SERVER_KEYS);
    let listen = s
        .need(w, "listen")
        .then(|| s.string(w, "listen"))
        .flatten()
        .and_then(|t| {
            let addr = t.value.parse::<SocketAddr>().ok();
            if addr.is_none() {
                w.error(
                    s.key("listen"),
                    "not a socket address (like 127.0.0.1:8080 or [::]:8080)",
                );
            }
            addr
        });
    let data_dir = s
        .need(w, "data_dir")
        .then(|| s.string(w, "data_dir"))
        .flatten()
        .and_then(|t| {
            if t.value.is_empty() {
                w.error(s.key("data_dir"), "must not be empty");
                return None;
            }
            Some(PathBuf::from(t.value))
        });
    let server_ms = 1..=limits::SERVER_TIMEOUT_MS_MAX as i64;
    let body = s.int_or(
        w,
        "body_bytes_max",
        1..=BODY_CEILING,
        limits::BODY_BYTES_MAX_DEFAULT as i64,
    );
    let workers = s.int_or(
        w,
        "workers",
        1..=limits::WORKERS_MAX as i64,
        crate::rt::default_workers() as i64,
    );
    let idle = s.int_or(w, "idle_timeout_ms", server_ms.clone(), 30_000);
    let request = s.int_or(w, "request_timeout_ms", server_ms.clone(), 10_000);
    let drain = s.int_or(w, "drain_timeout_ms", server_ms, 10_000);
    let conns = s.int_or(
        w,
        "connections_max",
        1..=CONNECTIONS_CEILING,
        limits::CONNECTIONS_MAX as i64,
    );
    let ping_cache = s.int_or(
        w,
        "ping_cache_bytes",
        PING_CACHE_RANGE,
        limits::PING_CACHE_BYTES_DEFAULT as i64,
    );
    let store_cache = s.int_or(
        w,
        "store_cache_bytes",
        STORE_CACHE_RANGE,
        limits::STORE_CACHE_BYTES_DEFAULT as i64,
    );
    let auctions = s.int_or(
        w,
        "auctions_in_flight_max",
        1..=AUCTIONS_CEILING,
        limits::AUCTIONS_IN_FLIGHT_MAX_DEFAULT as i64,
    );
    // At least 2: one call for pings, one kept for posts.
    let calls = s.int_or(
        w,
        "buyer_calls_in_flight_max",
        2..=CALLS_CEILING,
        limits::BUYER_CALLS_IN_FLIGHT_MAX_DEFAULT as i64,
    );
    let proxies = ip_list(w, &s, "trusted_proxies");
    let tls = super::tls::read(w, &s);
    let preconnect = s.int_or(
        w,
        "buyer_preconnect",
        0..=limits::BUYER_PRECONNECT_MAX as i64,
        limits::BUYER_PRECONNECT_DEFAULT as i64,
    );
    let keep_warm = if s.has("buyer_keep_warm") {
        s.boolean(w, "buyer_keep_warm")
    } else {
        // Off unless asked for: it opens a connection per quiet host every
        // few seconds, which an operator should choose (docs/ops.md).
        Some(false)
    };
    let buyer_ca = buyer_ca(w, &s);
    Some(Server {
        listen: listen?,
        data_dir: data_dir?,
        body_bytes_max: body? as usize,
        workers: workers? as usize,
        idle_timeout_ms: idle? as u64,
        request_timeout_ms: request? as u64,
        drain_timeout_ms: drain? as u64,
        connections_max: conns? as usize,
        ping_cache_bytes: ping_cache? as usize,
        store_cache_bytes: store_cache? as u64,
        auctions_in_flight_max: auctions? as usize,
        buyer_calls_in_flight_max: calls? as usize,
        trusted_proxies: proxies?,
        tls: tls?,
        buyer_preconnect: preconnect? as usize,
        buyer_keep_warm: keep_warm?,
        buyer_ca_pem: buyer_ca?,
    })
}

/// `server.buyer_ca_file`: a PEM file of extra CA certificates trusted for
/// https buyers (besides the Mozilla roots), read now; `Some(None)` when
/// absent, `None` after an error naming the key.
fn buyer_ca(w: &mut Walker, s: &Section) -> Option<Option<Vec<u8>>> {
    const KEY: &str = "buyer_ca_file";
    if !s.has(KEY) {
        return Some(None);
    }
    let path = s.string(w, KEY)?;
    let pem = match std::fs::read(&path.value) {
        Ok(pem) => pem,
        Err(e) => {
            w.error(s.key(KEY), format!("cannot read {}: {e}", path.value));
            return None;
        }
    };
    if crate::http::client::check_ca_pem(&pem).is_err() {
        w.error(s.key(KEY), "no valid PEM certificate in the file");
        return None;
    }
    Some(Some(pem))
}

const BODY_CEILING: i64 = limits::BODY_BYTES_MAX_CEILING as i64;
const CONNECTIONS_CEILING: i64 = limits::CONNECTIONS_MAX_CEILING as i64;
const PING_CACHE_RANGE: std::ops::RangeInclusive<i64> =
    limits::PING_CACHE_BYTES_MIN as i64..=limits::PING_CACHE_BYTES_CEILING as i64;
const STORE_CACHE_RANGE: std::ops::RangeInclusive<i64> =
    limits::STORE_CACHE_BYTES_MIN as i64..=limits::STORE_CACHE_BYTES_CEILING as i64;
const AUCTIONS_CEILING: i64 = limits::AUCTIONS_IN_FLIGHT_MAX_CEILING as i64;
const CALLS_CEILING: i64 = limits::BUYER_CALLS_IN_FLIGHT_MAX_CEILING as i64;

/// `server.buyer_calls_in_flight_max` must fit one whole auction: a ping
/// calls every eligible ping buyer of its vertical at once and takes all
/// their permits or none, so a vertical with more ping buyers than the
/// pings' share of the budget could never be auctioned.
pub(super) fn check_call_budget(w: &mut Walker, server: &Server, buyers: &[Buyer]) {
    let share = server.ping_calls_in_flight_max();
    let mut per_vertical: HashMap<&str, usize> = HashMap::new();
    for b in buyers.iter().filter(|b| b.ping_url.is_some()) {
        for v in &b.verticals {
            *per_vertical.entry(v.as_str()).or_default() += 1;
        }
    }
    let widest = per_vertical
        .into_iter()
        .max_by_key(|&(v, n)| (n, std::cmp::Reverse(v)));
    if let Some((vertical, n)) = widest.filter(|&(_, n)| n > share) {
        w.error(
            "server.buyer_calls_in_flight_max".to_string(),
            format!(
                "too small: vertical {vertical:?} has {n} ping buyers, but pings may hold only {share} calls (the rest is kept for posts); use at least {}",
                calls_for_auction_of(n)
            ),
        );
    }
}

/// The smallest budget whose ping share fits an auction of `n` calls.
fn calls_for_auction_of(n: usize) -> usize {
    let d = limits::BUYER_CALLS_POST_RESERVE_DIVISOR;
    (n + 1..)
        .find(|&b| b - (b / d).max(1) >= n)
        .expect("some budget fits")
}

/// `[admin]`: optional; without `token_sha256` the admin API is closed,
/// without `listen` it is served on `server.listen` (v1).
pub(super) fn admin(w: &mut Walker, top: &Section) -> Option<Admin> {
    let closed = Admin {
        token_sha256: None,
        listen: None,
    };
    let Some((path, table)) = top.table(w, "admin") else {
        return (!top.has("admin")).then_some(closed);
    };
    let s = Section { path: &path, table };
    s.only(w, &["token_sha256", "listen"]);
    let token = if s.has("token_sha256") {
        Some(sha256_hex(w, &s, "token_sha256"))
    } else {
        None
    };
    let listen = if s.has("listen") {
        Some(s.string(w, "listen").and_then(|t| {
            let addr = t.value.parse::<SocketAddr>().ok();
            if addr.is_none() {
                w.error(
                    s.key("listen"),
                    "not a socket address (like 127.0.0.1:9091 or [::1]:9091)",
                );
            }
            addr
        }))
    } else {
        None
    };
    Some(Admin {
        token_sha256: token.map_or(Some(None), |t| t.map(Some))?,
        listen: listen.map_or(Some(None), |l| l.map(Some))?,
    })
}

/// `[auction]`: optional, every key has a default.
pub(super) fn auction(w: &mut Walker, top: &Section) -> Option<Auction> {
    let d = Auction::default();
    let Some((path, table)) = top.table(w, "auction") else {
        return (!top.has("auction")).then_some(d);
    };
    let s = Section { path: &path, table };
    s.only(w, &["ping_timeout_ms", "post_timeout_ms", "bid_ttl_s"]);
    let ping = s.int_or(
        w,
        "ping_timeout_ms",
        1..=limits::PING_TIMEOUT_MS_MAX as i64,
        d.ping_timeout_ms as i64,
    );
    let post = s.int_or(
        w,
        "post_timeout_ms",
        1..=limits::POST_TIMEOUT_MS_MAX as i64,
        d.post_timeout_ms as i64,
    );
    let ttl = s.int_or(
        w,
        "bid_ttl_s",
        1..=limits::BID_TTL_S_MAX as i64,
        d.bid_ttl_s as i64,
    );
    Some(Auction {
        ping_timeout_ms: ping? as u64,
        post_timeout_ms: post? as u64,
        bid_ttl_s: ttl? as u64,
    })
}

const VERTICAL_KEYS: &[&str] = &[
    "id",
    "require_consent",
    "dedupe_window_days",
    // Consent evidence checks (issue #10): `exchange::consent`.
    "consent_trustedform",
    "consent_jornaya",
    "consent_max_age_days",
];

/// `[[vertical]]`, and the set of ids seen (also of otherwise broken
/// entries, so that one bad vertical does not make every reference to it
/// an error too).
pub(super) fn verticals(w: &mut Walker, top: &Section) -> (Option<Vec<Vertical>>, HashSet<String>) {
    let items = top.array_of_tables(w, "vertical", limits::VERTICALS_MAX);
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for (path, table) in &items {
        let s = Section { path, table };
        s.only(w, VERTICAL_KEYS);
        let id_text = id(w, &s);
        ids.extend(id_text.clone().map(|t| (s.key("id"), t)));
        let flag = |w: &mut Walker, name: &str| {
            if s.has(name) {
                s.boolean(w, name)
            } else {
                Some(false)
            }
        };
        let consent = flag(w, "require_consent");
        let days = s.int_or(
            w,
            "dedupe_window_days",
            0..=i64::from(limits::DEDUPE_WINDOW_DAYS_MAX),
            0,
        );
        let trustedform = flag(w, "consent_trustedform");
        let jornaya = flag(w, "consent_jornaya");
        let max_age = s.int_or(
            w,
            "consent_max_age_days",
            1..=i64::from(limits::CONSENT_MAX_AGE_DAYS_MAX),
            0,
        );
        out.push((|| {
            let evidence = ConsentEvidence {
                trustedform: trustedform?,
                jornaya: jornaya?,
                max_age_days: max_age? as u32,
            };
            if evidence.any() && consent == Some(false) {
                w.error(
                    s.key("require_consent"),
                    "must be true when a consent_* evidence check is on",
                );
                return None;
            }
            Some(Vertical {
                id: id_text?.value,
                require_consent: consent?,
                dedupe_window_days: days? as u32,
                consent_evidence: evidence,
            })
        })());
    }
    let known = unique_ids(w, &ids);
    (out.into_iter().collect(), known)
}

const PUBLISHER_KEYS: &[&str] = &[
    "id",
    "api_key_sha256",
    "signing_secret",
    "revenue_share",
    "verticals",
    "allowed_ips",
    "rate_limit_rps",
    "sandbox",
    // Postbacks (contract §13): `config::postbacks`.
    "postback_url",
    "allow_plain_http",
];

/// `[[publisher]]`; `known` are the vertical ids.
pub(super) fn publishers(
    w: &mut Walker,
    top: &Section,
    known: &HashSet<String>,
) -> Option<Vec<Publisher>> {
    let items = top.array_of_tables(w, "publisher", limits::PUBLISHERS_MAX);
    let mut ids = Vec::new();
    let mut out = Vec::new();
    let mut by_hash: HashMap<[u8; 32], String> = HashMap::new();
    for (path, table) in &items {
        let s = Section { path, table };
        s.only(w, PUBLISHER_KEYS);
        let id_text = id(w, &s);
        ids.extend(id_text.clone().map(|t| (s.key("id"), t)));
        let hashes = super::privacy::api_keys(w, &s);
        for (i, h) in hashes.iter().flatten().enumerate() {
            if let Some(first) = by_hash.insert(*h, path.clone()) {
                let key = match s.table.get("api_key_sha256") {
                    Some(toml::Value::Array(_)) => format!("{}[{i}]", s.key("api_key_sha256")),
                    _ => s.key("api_key_sha256"),
                };
                w.error(key, format!("the same key as {first}"));
            }
        }
        let signing = super::privacy::signing_secret(w, &s);
        let share = s
            .need(w, "revenue_share")
            .then(|| revenue_share(w, &s))
            .flatten();
        let verticals = vertical_refs(w, &s, known);
        let ips = allowed_ips(w, &s);
        let rps = s
            .int(
                w,
                "rate_limit_rps",
                1..=i64::from(limits::RATE_LIMIT_RPS_MAX),
            )
            .map(|n| n as u32);
        let rps_ok = !s.has("rate_limit_rps") || rps.is_some();
        let sandbox = s.boolean(w, "sandbox");
        let sandbox_ok = !s.has("sandbox") || sandbox.is_some();
        let postback_url = super::postbacks::postback_url(w, &s);
        out.push((|| {
            (rps_ok && sandbox_ok).then_some(())?;
            Some(Publisher {
                id: id_text?.value,
                api_keys_sha256: hashes?,
                signing_secret: signing?,
                revenue_share_ppm: share?,
                verticals: verticals?,
                allowed_ips: ips?,
                rate_limit_rps: rps,
                sandbox: sandbox.unwrap_or(false),
                postback_url: postback_url?,
            })
        })());
    }
    unique_ids(w, &ids);
    out.into_iter().collect()
}

fn revenue_share(w: &mut Walker, s: &Section) -> Option<u64> {
    let share = s.number(w, "revenue_share").map(|f| (f, share_from_f64(f)));
    match share? {
        (_, Some(ppm)) => Some(ppm),
        _ => {
            w.error(s.key("revenue_share"), "must be between 0 and 1");
            None
        }
    }
}

fn allowed_ips(w: &mut Walker, s: &Section) -> Option<Vec<IpNet>> {
    ip_list(w, s, "allowed_ips")
}

/// A list of IP addresses or CIDR blocks under `key` (absent = empty);
/// each bad entry is an error naming its index.
fn ip_list(w: &mut Walker, s: &Section, key: &str) -> Option<Vec<IpNet>> {
    if !s.has(key) {
        return Some(Vec::new());
    }
    let before = w.errors.len();
    let items = s.strings(w, key, limits::PUBLISHER_IPS_MAX)?;
    let mut out = Vec::with_capacity(items.len());
    for (key, text) in items {
        match IpNet::parse(&text.value) {
            Ok(net) => out.push(net),
            Err(why) => w.error(key, format!("not an IP address or CIDR block ({why})")),
        }
    }
    (w.errors.len() == before).then_some(out)
}

/// An `id`: required, 1..=64 of `[A-Za-z0-9_.-]`.
pub(super) fn id(w: &mut Walker, s: &Section) -> Option<Text> {
    if !s.need(w, "id") {
        return None;
    }
    let text = s.string(w, "id")?;
    let ok = (1..=limits::ID_BYTES_MAX).contains(&text.value.len())
        && text
            .value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        w.error(
            s.key("id"),
            format!(
                "not a valid id (1 to {} of A-Z a-z 0-9 _ . -)",
                limits::ID_BYTES_MAX
            ),
        );
        return None;
    }
    Some(text)
}

/// Reports each repeated id at its own key; returns the set of ids.
pub(super) fn unique_ids(w: &mut Walker, ids: &[(String, Text)]) -> HashSet<String> {
    let mut seen = HashSet::with_capacity(ids.len());
    for (key, text) in ids {
        if !seen.insert(text.value.clone()) {
            w.error(key.clone(), format!("duplicate id {}", text.shown()));
        }
    }
    seen
}

/// `verticals = [...]`: required; each must be a known vertical, once.
pub(super) fn vertical_refs(
    w: &mut Walker,
    s: &Section,
    known: &HashSet<String>,
) -> Option<Vec<String>> {
    if !s.need(w, "verticals") {
        return None;
    }
    let before = w.errors.len();
    let items = s.strings(w, "verticals", limits::VERTICALS_MAX)?;
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (key, text) in items {
        if !known.contains(&text.value) {
            w.error(key, format!("unknown vertical {}", text.shown()));
        } else if out.contains(&text.value) {
            w.error(key, format!("vertical {} listed twice", text.shown()));
        } else {
            out.push(text.value);
        }
    }
    (w.errors.len() == before).then_some(out)
}

fn sha256_hex(w: &mut Walker, s: &Section, name: &str) -> Option<[u8; 32]> {
    let hash = parse_sha256_hex(&s.string(w, name)?.value);
    if hash.is_none() {
        w.error(s.key(name), "not a hex SHA-256 (64 hex digits)");
    }
    hash
}
