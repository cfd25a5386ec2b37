//! The configuration: a TOML file (contract §2) turned into a validated
//! [`Config`], or into the full list of what is wrong with it, one
//! [`ConfigError`] per problem, each naming its key (`buyer[2].post_url: not
//! a URL (bad host)`). `leadx check-config` prints exactly these lines.
//!
//! The file is parsed into a `toml::Table` and walked by hand (`walk`)
//! rather than deserialized with serde, because serde stops at the first
//! problem. `${NAME}` in any string value is replaced by the secret NAME
//! (`secrets`); `$${` writes a literal `${`.
//!
//! Loading does blocking I/O (the file, maybe `$CREDENTIALS_DIRECTORY`):
//! call [`load`] from a plain thread, never from a may worker.

mod buyer;
mod ipnet;
mod postbacks;
mod privacy;
mod routing;
mod secrets;
mod sections;
mod spec;
mod tls;
mod walk;

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::http::url::Url;
use crate::limits;
use crate::money::{Cents, SharePpm};

pub use ipnet::IpNet;
pub use postbacks::Postbacks;
pub use privacy::{Privacy, SigningSecret, Suppression, INTERNAL_LIST_ID};
#[cfg(test)]
pub(crate) use routing::parse_range;
pub use routing::{AttrRule, AttrTest, AttrValue, Health, Schedule, ZipSet, DAYS};
pub use secrets::{default_secrets, hash_key, verify_key};
pub use tls::Tls;

/// One problem in a config file. Displays as `{key}: {message}`, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A validated configuration. Build it with [`parse`] or [`load`]: lookups
/// use indexes built there (call [`Config::reindex`] after editing the lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub server: Server,
    pub admin: Admin,
    pub auction: Auction,
    pub verticals: Vec<Vertical>,
    pub publishers: Vec<Publisher>,
    pub buyers: Vec<Buyer>,
    /// `[privacy]` (contract §12); a v1 config gets the default.
    pub privacy: Privacy,
    /// `[[suppression]]` lists (contract §12).
    pub suppressions: Vec<Suppression>,
    /// `[postbacks]` (contract §13); defaults when absent.
    pub postbacks: Postbacks,
    index: Index,
}

/// Position lookups so that per-request questions are O(1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Index {
    publisher_by_key: HashMap<[u8; 32], usize>,
    vertical_by_id: HashMap<String, usize>,
    buyer_by_id: HashMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub body_bytes_max: usize,
    /// Extension; default: available cores.
    pub workers: usize,
    /// Extension; default 30_000.
    pub idle_timeout_ms: u64,
    /// Extension; default 10_000.
    pub request_timeout_ms: u64,
    /// Extension; default 10_000.
    pub drain_timeout_ms: u64,
    /// Extension; default [`limits::CONNECTIONS_MAX`].
    pub connections_max: usize,
    /// Extension; default [`limits::PING_CACHE_BYTES_DEFAULT`]. What the
    /// in-memory ping cache may hold, counted as its entries really use.
    pub ping_cache_bytes: usize,
    /// Extension; default [`limits::STORE_CACHE_BYTES_DEFAULT`]. sled's
    /// page cache (read at start only).
    pub store_cache_bytes: u64,
    /// Extension; default [`limits::AUCTIONS_IN_FLIGHT_MAX_DEFAULT`].
    pub auctions_in_flight_max: usize,
    /// Extension; default [`limits::BUYER_CALLS_IN_FLIGHT_MAX_DEFAULT`].
    pub buyer_calls_in_flight_max: usize,
    /// Contract §12; default empty (no proxy: the client is the TCP peer).
    /// Load balancers whose `X-Forwarded-For` is believed; see
    /// `http::forwarded::client_ip`.
    pub trusted_proxies: Vec<IpNet>,
    /// Contract §12 `[server.tls]`; None: plain HTTP on `listen`.
    pub tls: Option<Tls>,
    /// Extension (issue #9); default [`limits::BUYER_PRECONNECT_DEFAULT`].
    /// Connections warmed per buyer host (ping and post URL) when a runtime
    /// is built; 0: none (`exchange::preconnect`).
    pub buyer_preconnect: usize,
    /// Extension (issue #9); default true. While `buyer_preconnect` > 0,
    /// warmed pools are topped up across quiet periods, before the idle
    /// time-out would close them (`exchange::preconnect::spawn_keeper`).
    pub buyer_keep_warm: bool,
    /// Extension: `buyer_ca_file`'s PEM, extra CAs trusted for https buyers
    /// (a buyer with a private CA); None: the Mozilla roots only.
    pub buyer_ca_pem: Option<Vec<u8>>,
}

impl Server {
    /// Buyer calls the pings may hold at once: the budget less the part
    /// kept for posts (`limits::BUYER_CALLS_POST_RESERVE_DIVISOR`).
    pub fn ping_calls_in_flight_max(&self) -> usize {
        let reserve =
            (self.buyer_calls_in_flight_max / limits::BUYER_CALLS_POST_RESERVE_DIVISOR).max(1);
        self.buyer_calls_in_flight_max.saturating_sub(reserve)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Absent: the admin API answers 401 to everyone.
    pub token_sha256: Option<[u8; 32]>,
    /// Contract §12 `admin.listen`: when set, a second, plain-HTTP listener
    /// answers the admin API, `/metrics` and the dashboard (and health),
    /// and `server.listen` answers them 404. Read at start only.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auction {
    pub ping_timeout_ms: u64,
    pub post_timeout_ms: u64,
    pub bid_ttl_s: u64,
}

impl Default for Auction {
    fn default() -> Self {
        Auction {
            ping_timeout_ms: 300,
            post_timeout_ms: 3000,
            bid_ttl_s: 120,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vertical {
    pub id: String,
    pub require_consent: bool,
    /// 0 = dedupe off.
    pub dedupe_window_days: u32,
    /// What a post's consent object must show (all off in a v1 config).
    pub consent_evidence: ConsentEvidence,
}

/// `[[vertical]]` `consent_*` keys: checks on the consent object's evidence
/// at post and direct post (`exchange::consent`), before any buyer call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsentEvidence {
    /// `trustedform_cert_url` must be `https://cert.trustedform.com/<40 hex>`.
    pub trustedform: bool,
    /// `jornaya_leadid` must be a LeadiD token (a UUID, 8-4-4-4-12 hex).
    pub jornaya: bool,
    /// 0 = off; else `captured_at` at most this many days old and not in the
    /// future beyond `limits::CONSENT_CLOCK_SKEW_MS`.
    pub max_age_days: u32,
}

impl ConsentEvidence {
    pub fn any(&self) -> bool {
        self.trustedform || self.jornaya || self.max_age_days > 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    pub id: String,
    /// `api_key_sha256`: one hash, or two while a key is rotated; each
    /// authenticates.
    pub api_keys_sha256: Vec<[u8; 32]>,
    /// Extension (§12): when set, every request must carry a valid
    /// `Leadx-Signature` made with it.
    pub signing_secret: Option<SigningSecret>,
    /// `revenue_share` in the file (0..=1), in parts per million.
    pub revenue_share_ppm: SharePpm,
    pub verticals: Vec<String>,
    /// Extension: empty = any address.
    pub allowed_ips: Vec<IpNet>,
    /// Extension.
    pub rate_limit_rps: Option<u32>,
    /// `sandbox = true` (contract §13): served only by leadx's built-in
    /// simulated buyers (`exchange::sandbox`), as test traffic.
    pub sandbox: bool,
    /// Contract §13: where its `sold` / `returned` events are POSTed.
    pub postback_url: Option<Url>,
}

/// A buyer. `Debug` prints header values as `***`: they carry credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Buyer {
    pub id: String,
    pub verticals: Vec<String>,
    /// Absent: a direct-post buyer, which bids `fixed_price` without a call.
    /// A `[buyer.ping]` table's `url` when it has one.
    pub ping_url: Option<Url>,
    /// `post_url`, or the `[buyer.post]` table's `url`.
    pub post_url: Url,
    /// Required when `ping_url` is absent.
    pub fixed_price: Option<Cents>,
    pub ping_timeout_ms: u64,
    pub post_timeout_ms: u64,
    /// Tie-break between equal prices: higher first.
    pub priority: i64,
    /// Extra request headers, after `${NAME}` substitution, sorted by name.
    pub headers: Vec<(String, String)>,
    pub filter: Filter,
    pub caps: Caps,
    /// Contract §9: the stages this buyer describes in its own format
    /// (their URLs and time-outs are in the fields above); none = native.
    pub spec: crate::buyer::spec::BuyerSpec,
    /// Caps and the schedule are counted in this zone (contract §10);
    /// default UTC.
    pub timezone: jiff::tz::TimeZone,
    /// `None`: always open.
    pub schedule: Option<Schedule>,
    pub health: Health,
    /// Contract §13: days after a sale within which it may be returned.
    pub return_window_days: u32,
}

impl fmt::Debug for Buyer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, _)| (k.as_str(), "***"))
            .collect();
        f.debug_struct("Buyer")
            .field("id", &self.id)
            .field("verticals", &self.verticals)
            .field("ping_url", &self.ping_url)
            .field("post_url", &self.post_url)
            .field("fixed_price", &self.fixed_price)
            .field("ping_timeout_ms", &self.ping_timeout_ms)
            .field("post_timeout_ms", &self.post_timeout_ms)
            .field("priority", &self.priority)
            .field("headers", &headers)
            .field("filter", &self.filter)
            .field("caps", &self.caps)
            .field("spec", &self.spec)
            .field("timezone", &self.timezone.iana_name())
            .field("schedule", &self.schedule)
            .field("health", &self.health)
            .field("return_window_days", &self.return_window_days)
            .finish()
    }
}

/// `[buyer.filter]` (contract §10). Every key optional; all that are given
/// must hold for a lead to match (`routing::filter::check`). A lead that
/// lacks a field an inclusion filter names does not match; an `exclude_`
/// filter only refuses a lead that has one of its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub states: Option<Vec<String>>,
    pub exclude_states: Option<Vec<String>>,
    pub zips: Option<ZipSet>,
    pub exclude_zips: Option<ZipSet>,
    pub age_min: Option<u16>,
    pub age_max: Option<u16>,
    pub income_min: Option<i64>,
    pub income_max: Option<i64>,
    pub credit: Option<Vec<crate::lead::Credit>>,
    pub exclude_credit: Option<Vec<crate::lead::Credit>>,
    pub homeowner: Option<bool>,
    /// Sorted.
    pub publishers: Option<Vec<String>>,
    pub exclude_publishers: Option<Vec<String>>,
    /// Sorted.
    pub sub_ids: Option<Vec<String>>,
    pub exclude_sub_ids: Option<Vec<String>>,
    /// Sorted by key; empty = none.
    pub attributes: Vec<AttrRule>,
    pub exclude_attributes: Vec<AttrRule>,
}

/// `[buyer.caps]` (contract §10), counted in the buyer's time zone: accepted
/// leads per hour, day, week (from Monday) and month, and budgets — the sum
/// of accepted prices — per day, week and month. `exchange::caps` keeps
/// them, never exceeded under concurrency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps {
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub daily_budget: Option<Cents>,
    pub weekly_budget: Option<Cents>,
    pub monthly_budget: Option<Cents>,
}

impl Config {
    pub fn vertical(&self, id: &str) -> Option<&Vertical> {
        self.index
            .vertical_by_id
            .get(id)
            .and_then(|&i| self.verticals.get(i))
    }

    /// The publisher whose API key this is (hashed here, looked up in O(1)).
    pub fn publisher_by_key(&self, api_key: &[u8]) -> Option<&Publisher> {
        let hash = secrets::sha256(api_key);
        self.index
            .publisher_by_key
            .get(&hash)
            .and_then(|&i| self.publishers.get(i))
    }

    pub fn buyer(&self, id: &str) -> Option<&Buyer> {
        self.index
            .buyer_by_id
            .get(id)
            .and_then(|&i| self.buyers.get(i))
    }

    /// What is allowed but unwise, one line each as `{key}: {message}`:
    /// printed by `check-config` and logged at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.privacy.data_key.is_none() && !self.privacy.plaintext_pii {
            out.push(
                "privacy.data_key: not set: PII (names, phone, email, address, consumer IP) is stored in clear; set a data key (docs/ops.md), or privacy.plaintext_pii = true if that is intended".to_string(),
            );
        }
        // wall clock: a certificate's expiry is the real world's, not business time.
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if let Some(w) = self
            .server
            .tls
            .as_ref()
            .and_then(|t| t.expiry_warning(now_s))
        {
            out.push(w);
        }
        out
    }

    /// Rebuilds the lookup indexes; needed only after editing the lists.
    pub fn reindex(&mut self) {
        self.index = Index {
            publisher_by_key: self
                .publishers
                .iter()
                .enumerate()
                .flat_map(|(i, p)| p.api_keys_sha256.iter().map(move |&h| (h, i)))
                .collect(),
            vertical_by_id: self
                .verticals
                .iter()
                .enumerate()
                .map(|(i, v)| (v.id.clone(), i))
                .collect(),
            buyer_by_id: self
                .buyers
                .iter()
                .enumerate()
                .map(|(i, b)| (b.id.clone(), i))
                .collect(),
        };
    }
}

/// Reads and validates the file at `path`, secrets from [`default_secrets`].
/// An unreadable file is one error whose key is the path. Blocking.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    load_with(path, &default_secrets)
}

/// [`load`] with the secrets passed in.
pub fn load_with(
    path: &Path,
    secrets: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let unreadable = |message: String| {
        vec![ConfigError {
            key: path.display().to_string(),
            message,
        }]
    };
    let file = std::fs::File::open(path).map_err(|e| unreadable(format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    file.take(limits::CONFIG_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(format!("cannot read: {e}")))?;
    if bytes.len() > limits::CONFIG_BYTES_MAX {
        return Err(unreadable(format!(
            "larger than {} bytes",
            limits::CONFIG_BYTES_MAX
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8".to_string()))?;
    parse(&text, secrets)
}

/// Validates a config text; `secrets(NAME)` supplies each `${NAME}`.
/// Either a `Config` or every problem found, in file order by section.
pub fn parse(
    text: &str,
    secrets: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let root: toml::Table = text.parse().map_err(|e| vec![syntax_error(text, &e)])?;
    let mut w = walk::Walker::new(secrets);
    let top = walk::Section {
        path: "",
        table: &root,
    };
    top.only(
        &mut w,
        &[
            "server",
            "admin",
            "auction",
            "vertical",
            "publisher",
            "buyer",
            "privacy",
            "suppression",
            "postbacks",
        ],
    );
    let server = sections::server(&mut w, &top);
    let admin = sections::admin(&mut w, &top);
    let auction = sections::auction(&mut w, &top);
    let (verticals, known) = sections::verticals(&mut w, &top);
    let publishers = sections::publishers(&mut w, &top, &known);
    let buyers = buyer::buyers(
        &mut w,
        &top,
        &known,
        auction.as_ref().unwrap_or(&Auction::default()),
    );
    let privacy = privacy::privacy(&mut w, &top);
    let suppressions = privacy::suppressions(&mut w, &top, &known);
    let postbacks = postbacks::postbacks(&mut w, &top);
    if let (Some(server), Some(buyers)) = (&server, &buyers) {
        sections::check_call_budget(&mut w, server, buyers);
    }
    if let (
        Some(server),
        Some(Admin {
            listen: Some(admin),
            ..
        }),
    ) = (&server, &admin)
    {
        let same_port = admin.port() == server.listen.port() && admin.port() != 0;
        if same_port
            && (admin.ip() == server.listen.ip()
                || admin.ip().is_unspecified()
                || server.listen.ip().is_unspecified())
        {
            w.error(
                "admin.listen",
                "must differ from server.listen (the admin listener is a second port)",
            );
        }
    }
    let security = privacy.zip(suppressions);
    match (
        server, admin, auction, verticals, publishers, buyers, security,
    ) {
        (
            Some(server),
            Some(admin),
            Some(auction),
            Some(verticals),
            Some(publishers),
            Some(buyers),
            Some((privacy, suppressions)),
        ) if w.errors.is_empty() => {
            let mut config = Config {
                server,
                admin,
                auction,
                verticals,
                publishers,
                buyers,
                privacy,
                suppressions,
                // `None` only with an error recorded, which this arm excludes.
                postbacks: postbacks.unwrap_or_default(),
                index: Index::default(),
            };
            config.reindex();
            Ok(config)
        }
        _ if w.errors.is_empty() => {
            // Every `None` above comes with an error; this is a bug, but a
            // config check must still fail loudly rather than panic.
            Err(vec![ConfigError {
                key: "config".into(),
                message: "invalid (internal: no error recorded)".into(),
            }])
        }
        _ => Err(w.errors),
    }
}

/// A TOML syntax error as `line N: message`, one line, never a panic.
fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let key = match e.span() {
        Some(span) => {
            let at = span.start.min(text.len());
            let line = text.as_bytes()[..at]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            format!("line {line}")
        }
        None => "config".to_string(),
    };
    let message = e.message().trim().replace('\n', "; ");
    ConfigError { key, message }
}

#[cfg(test)]
mod tests;
