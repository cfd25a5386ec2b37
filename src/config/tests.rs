//! Tests of the whole reader: the contract's example, and one bad snippet
//! per rule with the exact lines `check-config` would print.

use super::*;
use crate::http::url::Scheme;

/// A well-formed hash nobody's key hashes to.
const OTHER_HASH: &str = "0f4f3c6b0cf6e7a1f0d5a3a5d1c0b3e0e9c3e6d2b1a0f9e8d7c6b5a4f3e2d1c0";
/// Any well-formed hash; its preimage is irrelevant.
const ADMIN_HASH: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

const MINIMAL: &str = "[server]\nlisten = \"127.0.0.1:8080\"\ndata_dir = \"/var/lib/leadx\"\n";

fn contract_example() -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:8080"
data_dir = "/var/lib/leadx"
body_bytes_max = 65536        # larger request bodies → 413

[admin]
token_sha256 = "{ADMIN_HASH}"

[auction]
ping_timeout_ms = 300
post_timeout_ms = 3000
bid_ttl_s = 120

[[vertical]]
id = "auto_insurance"
require_consent = true
dedupe_window_days = 30

[[publisher]]
id = "pub1"
api_key_sha256 = "{}"
revenue_share = 0.8
verticals = ["auto_insurance"]

[[buyer]]
id = "b1"
verticals = ["auto_insurance"]
ping_url = "http://127.0.0.1:9001/ping"
post_url = "http://127.0.0.1:9001/post"
fixed_price = 5.00
ping_timeout_ms = 150
post_timeout_ms = 1000
priority = 0
headers = {{ "X-Api-Key" = "${{B1_KEY}}" }}
[buyer.filter]
states = ["CA", "TX"]
age_min = 18
age_max = 30
[buyer.caps]
daily = 100
"#,
        hash_key(b"pub1-key")
    )
}

fn b1_key(name: &str) -> Option<String> {
    (name == "B1_KEY").then(|| "k-123".to_string())
}

fn no_secrets(_: &str) -> Option<String> {
    None
}

fn hash(hex: &str) -> [u8; 32] {
    secrets::parse_sha256_hex(hex).unwrap()
}

#[test]
fn the_contract_example_parses_to_its_values() {
    let c = parse(&contract_example(), &b1_key).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.server.data_dir, PathBuf::from("/var/lib/leadx"));
    assert_eq!(c.server.body_bytes_max, 65536);
    assert_eq!(c.server.workers, crate::rt::default_workers());
    assert_eq!(
        (
            c.server.idle_timeout_ms,
            c.server.request_timeout_ms,
            c.server.drain_timeout_ms
        ),
        (30_000, 10_000, 10_000)
    );
    assert_eq!(c.server.connections_max, limits::CONNECTIONS_MAX);
    assert_eq!(
        (
            c.server.auctions_in_flight_max,
            c.server.buyer_calls_in_flight_max
        ),
        (
            limits::AUCTIONS_IN_FLIGHT_MAX_DEFAULT,
            limits::BUYER_CALLS_IN_FLIGHT_MAX_DEFAULT
        )
    );
    assert_eq!(c.admin.token_sha256, Some(hash(ADMIN_HASH)));
    assert_eq!(
        c.auction,
        Auction {
            ping_timeout_ms: 300,
            post_timeout_ms: 3000,
            bid_ttl_s: 120
        }
    );
    assert_eq!(
        c.verticals,
        [Vertical {
            id: "auto_insurance".into(),
            require_consent: true,
            dedupe_window_days: 30,
            consent_evidence: ConsentEvidence::default(),
        }]
    );
    let p = Publisher {
        id: "pub1".into(),
        api_keys_sha256: vec![hash(&hash_key(b"pub1-key"))],
        signing_secret: None,
        revenue_share_ppm: 800_000,
        verticals: vec!["auto_insurance".into()],
        allowed_ips: vec![],
        rate_limit_rps: None,
        sandbox: false,
        postback_url: None,
    };
    assert_eq!(c.publishers, [p]);
    let b = &c.buyers[0];
    assert_eq!(c.buyers.len(), 1);
    assert_eq!(
        (b.id.as_str(), b.verticals.as_slice()),
        ("b1", &["auto_insurance".to_string()][..])
    );
    let ping = b.ping_url.as_ref().unwrap();
    assert_eq!(
        (
            &ping.scheme,
            ping.host.as_str(),
            ping.port,
            ping.target.as_str()
        ),
        (&Scheme::Http, "127.0.0.1", 9001, "/ping")
    );
    assert_eq!(b.post_url.target, "/post");
    assert_eq!(b.fixed_price, Some(500));
    assert_eq!(
        (b.ping_timeout_ms, b.post_timeout_ms, b.priority),
        (150, 1000, 0)
    );
    assert_eq!(b.headers, [("X-Api-Key".to_string(), "k-123".to_string())]);
    let states = Some(vec!["CA".to_string(), "TX".to_string()]);
    assert_eq!(
        b.filter,
        Filter {
            states,
            age_min: Some(18),
            age_max: Some(30),
            ..Filter::default()
        }
    );
    assert_eq!(
        b.caps,
        Caps {
            daily: Some(100),
            ..Caps::default()
        }
    );
}

#[test]
fn lookups_find_by_id_and_by_presented_key() {
    let c = parse(&contract_example(), &b1_key).unwrap();
    assert_eq!(
        c.publisher_by_key(b"pub1-key").map(|p| p.id.as_str()),
        Some("pub1")
    );
    assert!(
        c.publisher_by_key(b"pub1-key\n").is_none(),
        "a presented key is not trimmed"
    );
    assert!(c.publisher_by_key(b"").is_none());
    assert_eq!(
        c.vertical("auto_insurance").map(|v| v.dedupe_window_days),
        Some(30)
    );
    assert!(c.vertical("life").is_none());
    assert_eq!(c.buyer("b1").map(|b| b.priority), Some(0));
    assert!(c.buyer("b2").is_none());
    let mut edited = c.clone();
    edited.buyers[0].id = "b9".into();
    edited.reindex();
    assert!(edited.buyer("b9").is_some() && edited.buyer("b1").is_none());
}

#[test]
fn buyer_debug_hides_header_values() {
    let c = parse(&contract_example(), &b1_key).unwrap();
    let shown = format!("{:?}", c);
    assert!(
        shown.contains("X-Api-Key") && shown.contains("***"),
        "{shown}"
    );
    assert!(!shown.contains("k-123"), "secret leaked: {shown}");
}

#[test]
fn defaults_fill_a_minimal_config() {
    let c = parse(MINIMAL, &no_secrets).unwrap();
    assert_eq!(c.server.body_bytes_max, limits::BODY_BYTES_MAX_DEFAULT);
    assert_eq!(c.server.ping_cache_bytes, limits::PING_CACHE_BYTES_DEFAULT);
    assert_eq!(c.server.buyer_preconnect, limits::BUYER_PRECONNECT_DEFAULT);
    assert_eq!(c.server.buyer_ca_pem, None);
    assert!(!c.server.buyer_keep_warm, "keep-warm is opt-in");
    assert_eq!(
        c.server.store_cache_bytes,
        limits::STORE_CACHE_BYTES_DEFAULT
    );
    assert_eq!(c.admin.token_sha256, None);
    assert_eq!(c.auction, Auction::default());
    assert!(c.verticals.is_empty() && c.publishers.is_empty() && c.buyers.is_empty());
}

#[test]
fn buyer_defaults_come_from_the_auction() {
    let text = format!(
        "{MINIMAL}[auction]\nping_timeout_ms = 250\npost_timeout_ms = 2000\n\
         [[vertical]]\nid = \"v\"\n[[buyer]]\nid = \"d\"\nverticals = [\"v\"]\n\
         post_url = \"https://d.example/post\"\nfixed_price = 7\n"
    );
    let c = parse(&text, &no_secrets).unwrap();
    let b = &c.buyers[0];
    assert_eq!(
        (b.ping_timeout_ms, b.post_timeout_ms, b.priority),
        (250, 2000, 0)
    );
    assert_eq!((b.ping_url.clone(), b.fixed_price), (None, Some(700)));
    assert_eq!(
        (b.filter.clone(), b.caps.clone()),
        (Filter::default(), Caps::default())
    );
    assert_eq!(
        c.verticals[0],
        Vertical {
            id: "v".into(),
            require_consent: false,
            dedupe_window_days: 0,
            consent_evidence: ConsentEvidence::default(),
        }
    );
}

#[test]
fn publisher_extensions_parse() {
    let text = format!(
        "{MINIMAL}[[vertical]]\nid = \"v\"\n[[publisher]]\nid = \"p\"\napi_key_sha256 = \"{ADMIN_HASH}\"\n\
         revenue_share = 1\nverticals = []\nallowed_ips = [\"10.0.0.0/8\", \"::1\"]\nrate_limit_rps = 50\n"
    );
    let c = parse(&text, &no_secrets).unwrap();
    let p = &c.publishers[0];
    assert_eq!(
        (p.revenue_share_ppm, p.rate_limit_rps),
        (1_000_000, Some(50))
    );
    assert_eq!(
        p.allowed_ips,
        [
            IpNet::parse("10.0.0.0/8").unwrap(),
            IpNet::parse("::1").unwrap()
        ]
    );
}

/// `(snippet appended to a valid base, the exact error lines)`. The base has
/// `[server]`, vertical `v` and nothing else.
const BAD: &[(&str, &[&str])] = &[
    ("[server]\nlisen = 1", &["line 6: invalid table header; duplicate key `server` in document root"]),
    ("[auction]\nping_timeout_ms = 0", &["auction.ping_timeout_ms: must be between 1 and 60000"]),
    ("[auction]\npost_timeout_ms = \"3s\"", &["auction.post_timeout_ms: expected an integer"]),
    ("[auction]\nbid_ttl_s = 0", &["auction.bid_ttl_s: must be between 1 and 86400"]),
    ("[admin]\ntoken_sha256 = \"abc\"", &["admin.token_sha256: not a hex SHA-256 (64 hex digits)"]),
    ("[admin]\ntoken = \"x\"", &["admin.token: unknown key"]),
    ("[[vertical]]\nid = \"v\"", &["vertical[1].id: duplicate id \"v\""]),
    ("[[vertical]]\nid = \"a b\"", &["vertical[1].id: not a valid id (1 to 64 of A-Z a-z 0-9 _ . -)"]),
    ("[[vertical]]\nrequire_consent = 1", &["vertical[1].id: required", "vertical[1].require_consent: expected a boolean"]),
    ("[[vertical]]\nid = \"w\"\ndedupe_window_days = -1", &["vertical[1].dedupe_window_days: must be between 0 and 3650"]),
    ("[vertical]\nid = \"w\"", &["line 6: invalid table header; duplicate key `vertical` in document root"]),
    (
        "[[publisher]]\nid = \"p\"\napi_key_sha256 = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\nrevenue_share = 1.5\nverticals = [\"v\", \"x\", \"v\"]",
        &[
            "publisher[0].revenue_share: must be between 0 and 1",
            "publisher[0].verticals[1]: unknown vertical \"x\"",
            "publisher[0].verticals[2]: vertical \"v\" listed twice",
        ],
    ),
    (
        "[[publisher]]\nid = \"p\"",
        &["publisher[0].api_key_sha256: required", "publisher[0].revenue_share: required", "publisher[0].verticals: required"],
    ),
    (
        "[[publisher]]\nid = \"p\"\napi_key_sha256 = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\nrevenue_share = 0\nverticals = \"v\"\nallowed_ips = [\"10.0.0.1/8\"]\nrate_limit_rps = 0",
        &[
            "publisher[0].verticals: expected an array of strings",
            "publisher[0].allowed_ips[0]: not an IP address or CIDR block (host bits set past the prefix length)",
            "publisher[0].rate_limit_rps: must be between 1 and 1000000",
        ],
    ),
    (
        "[[buyer]]\nid = \"b\"\nverticals = [\"v\"]\npost_url = \"ftp://x/\"",
        &[
            "buyer[0].post_url: not a URL (scheme must be http:// or https://)",
            "buyer[0].fixed_price: required for a direct-post buyer (no ping_url)",
        ],
    ),
    (
        "[[buyer]]\nid = \"b\"\nverticals = [\"v\"]\npost_url = \"https://h/p\"\nfixed_price = 1.005\nping_timeout_ms = 0\npriority = 1.5",
        &[
            "buyer[0].fixed_price: not a price (non-negative USD, at most 2 decimals)",
            "buyer[0].ping_timeout_ms: must be between 1 and 60000",
            "buyer[0].priority: expected an integer",
        ],
    ),
    (
        "[[buyer]]\nid = \"b\"\nverticals = [\"v\"]\nping_url = \"https://h/ping\"\npost_url = \"https://h/p\"\nfixed_price = -1\nping_timeout_ms = 90000",
        &[
            "buyer[0].fixed_price: not a price (non-negative USD, at most 2 decimals)",
            "buyer[0].ping_timeout_ms: must be between 1 and 60000",
        ],
    ),
    (
        "[[buyer]]\nid = \"b\"\nverticals = [\"v\"]\npost_url = \"https://h/p\"\nfixed_price = 1\nheaders = { \"X Bad\" = \"v\", \"Host\" = \"h\", \"X-A\" = \"a\\r\\nEvil: 1\", \"x-a\" = \"b\", \"X-N\" = 1 }",
        &[
            "buyer[0].headers.Host: set by leadx itself; cannot be configured",
            "buyer[0].headers.\"X Bad\": not a valid header name",
            "buyer[0].headers.X-A: value contains CR, LF or NUL",
            "buyer[0].headers.X-N: expected a string",
            "buyer[0].headers.x-a: duplicate header (names ignore case)",
        ],
    ),
    (
        "[[buyer]]\nid = \"b\"\nverticals = [\"v\"]\npost_url = \"https://h/p\"\nfixed_price = 1\n[buyer.filter]\nstates = [\"CA\", \"ca\", 5]\nage_min = 40\nage_max = 30\nzip = \"9\"\n[buyer.caps]\ndaily = 0\nyearly = 1",
        &[
            "buyer[0].filter.zip: unknown key",
            "buyer[0].filter.states[2]: expected a string",
            "buyer[0].filter.states[1]: not a USPS state code \"ca\"",
            "buyer[0].filter.age_min: greater than age_max",
            "buyer[0].caps.yearly: unknown key",
            "buyer[0].caps.daily: must be between 1 and 4294967295",
        ],
    ),
    (
        "[[buyer]]\nid = \"b\"\nverticals = [\"v\"]\npost_url = \"https://h/p\"\nfixed_price = 1\nfilter = { states = [], age_min = 17, age_max = 121 }",
        &[
            "buyer[0].filter.states: must not be empty (leave it out to accept every state)",
            "buyer[0].filter.age_min: must be between 18 and 120",
            "buyer[0].filter.age_max: must be between 18 and 120",
        ],
    ),
    (
        "[[buyer]]\nid = \"b\"\nverticals = [\"v\"]\npost_url = \"https://h/p\"\nfixed_price = 1\n[[buyer]]\nid = \"b\"\nverticals = [\"v\"]\npost_url = \"https://h/p\"\nfixed_price = 1",
        &["buyer[1].id: duplicate id \"b\""],
    ),
    (
        "[[buyer]]\nid = \"b\"\nverticals = [\"v\"]\npost_url = \"https://h/p\"\nfixed_price = 1\nheaders = { \"X-Api-Key\" = \"${B1_KEY}\", \"X-T\" = \"${1}\", \"X-U\" = \"${A\" }",
        &[
            "buyer[0].headers.X-Api-Key: environment variable B1_KEY is not set",
            "buyer[0].headers.X-T: bad name inside ${…} (expected [A-Za-z_][A-Za-z0-9_]*)",
            "buyer[0].headers.X-U: unclosed ${ (write $${ for a literal ${)",
        ],
    ),
    ("[[buyer]]\nid = \"${SECRET_ID}\"\nverticals = [\"v\"]\npost_url = \"https://h/p\"\nfixed_price = 1\n[[buyer]]\nid = \"${SECRET_ID}\"\nverticals = [\"v\"]\npost_url = \"https://h/p\"\nfixed_price = 1", &["buyer[1].id: duplicate id (from a secret)"]),
    ("buyer = 3", &["buyer: expected an array of tables ([[buyer]])"]),
    ("auction = []", &["auction: expected a table"]),
    ("x = \"unterminated", &["line 1: invalid basic string"]),
];

fn base() -> String {
    format!("{MINIMAL}[[vertical]]\nid = \"v\"\n")
}

fn lines_for(text: &str) -> Vec<String> {
    let secrets = |n: &str| (n == "SECRET_ID").then(|| "sid".to_string());
    match parse(text, &secrets) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn each_rule_names_its_key() {
    let mut failures = Vec::new();
    for (snippet, want) in BAD {
        // Top-level scalars must precede the base's tables to stay top-level.
        let text = if snippet.starts_with('[') {
            format!("{}{snippet}\n", base())
        } else {
            format!("{snippet}\n{}", base())
        };
        let got = lines_for(&text);
        if got != *want {
            failures.push(format!(
                "snippet:\n{snippet}\n got: {got:#?}\nwant: {want:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn unknown_keys_are_named_everywhere() {
    let text = format!("{MINIMAL}lisen = 1\n[bogus]\n[[vertical]]\nid = \"w\"\ncolour = \"red\"\n");
    assert_eq!(
        lines_for(&text),
        [
            "bogus: unknown key",
            "server.lisen: unknown key",
            "vertical[0].colour: unknown key"
        ]
    );
}

#[test]
fn server_rules() {
    let cases: &[(&str, &[&str])] = &[
        ("", &["server: required"]),
        ("[server]\n", &["server.listen: required", "server.data_dir: required"]),
        (
            "[server]\nlisten = \"localhost\"\ndata_dir = \"\"\nbody_bytes_max = 0\nworkers = 0\nidle_timeout_ms = 0\nconnections_max = 0\nauctions_in_flight_max = 0\nbuyer_calls_in_flight_max = 1",
            &[
                "server.listen: not a socket address (like 127.0.0.1:8080 or [::]:8080)",
                "server.data_dir: must not be empty",
                "server.body_bytes_max: must be between 1 and 1048576",
                "server.workers: must be between 1 and 256",
                "server.idle_timeout_ms: must be between 1 and 3600000",
                "server.connections_max: must be between 1 and 1048576",
                "server.auctions_in_flight_max: must be between 1 and 1048576",
                "server.buyer_calls_in_flight_max: must be between 2 and 1048576",
            ],
        ),
        ("[server]\nlisten = 8080\ndata_dir = [\"/x\"]", &["server.listen: expected a string", "server.data_dir: expected a string"]),
        (
            "[server]\nlisten = \"127.0.0.1:1\"\ndata_dir = \"/d\"\nping_cache_bytes = 1000\nstore_cache_bytes = 0",
            &[
                "server.ping_cache_bytes: must be between 1048576 and 4294967296",
                "server.store_cache_bytes: must be between 1048576 and 68719476736",
            ],
        ),
        (
            "[server]\nlisten = \"127.0.0.1:1\"\ndata_dir = \"/d\"\nbuyer_preconnect = 17\nbuyer_keep_warm = 1\nbuyer_ca_file = \"/nonexistent/ca.pem\"",
            &[
                "server.buyer_preconnect: must be between 0 and 16",
                "server.buyer_keep_warm: expected a boolean",
                "server.buyer_ca_file: cannot read /nonexistent/ca.pem: No such file or directory (os error 2)",
            ],
        ),
    ];
    for (text, want) in cases {
        assert_eq!(lines_for(text), *want, "for:\n{text}");
    }
}

/// Issue #7: a ping takes a permit for every buyer it calls or none, so a
/// budget whose ping share cannot hold one whole auction would shed every
/// ping of that vertical; check-config names the key instead.
#[test]
fn buyer_call_budget_must_fit_one_whole_auction() {
    let buyer = |id: &str| {
        format!("[[buyer]]\nid = \"{id}\"\nverticals = [\"auto\"]\nping_url = \"http://127.0.0.1:9/p\"\npost_url = \"http://127.0.0.1:9/q\"\n")
    };
    let three: String = ["a", "b", "c"].iter().map(|id| buyer(id)).collect();
    let with = |calls: u32| {
        format!(
            "{MINIMAL}buyer_calls_in_flight_max = {calls}\n[[vertical]]\nid = \"auto\"\n{three}"
        )
    };
    // 4 keeps 1 for posts: 3 for pings fits three buyers.
    let c = parse(&with(4), &|_| None).unwrap();
    assert_eq!(c.server.ping_calls_in_flight_max(), 3);
    assert_eq!(
        lines_for(&with(3)),
        ["server.buyer_calls_in_flight_max: too small: vertical \"auto\" has 3 ping buyers, but pings may hold only 2 calls (the rest is kept for posts); use at least 4"]
    );
}

#[test]
fn five_distinct_problems_are_all_reported() {
    let text = r#"
[server]
listen = "127.0.0.1:8080"
data_dir = "/d"
lisen = "oops"

[auction]
ping_timeout_ms = 0

[[vertical]]
id = "auto"

[[publisher]]
id = "p1"
api_key_sha256 = "nope"
revenue_share = 0.5
verticals = ["auto", "life"]

[[buyer]]
id = "b1"
verticals = ["auto"]
post_url = "http://b1.example/post"
"#;
    let got = lines_for(text);
    assert_eq!(
        got,
        [
            "server.lisen: unknown key",
            "auction.ping_timeout_ms: must be between 1 and 60000",
            "publisher[0].api_key_sha256: not a hex SHA-256 (64 hex digits)",
            "publisher[0].verticals[1]: unknown vertical \"life\"",
            "buyer[0].fixed_price: required for a direct-post buyer (no ping_url)",
        ]
    );
}

#[test]
fn at_most_buyers_max_buyers() {
    let buyer = |i: usize| {
        format!("[[buyer]]\nid = \"b{i}\"\nverticals = [\"v\"]\nping_url = \"http://10.0.0.1:9000/ping\"\npost_url = \"https://10.0.0.1:9000/post\"\nheaders = {{ \"X-Key\" = \"${{B1_KEY}}\" }}\n[buyer.filter]\nstates = [\"CA\"]\n")
    };
    let full: String = base() + &(0..limits::BUYERS_MAX).map(buyer).collect::<String>();
    let started = std::time::Instant::now();
    let c = parse(&full, &b1_key).unwrap();
    // Not an assertion: `--nocapture` shows what a full-size config costs.
    println!(
        "{} buyers, {} bytes parsed in {:?}",
        c.buyers.len(),
        full.len(),
        started.elapsed()
    );
    assert_eq!(
        c.buyer(&format!("b{}", limits::BUYERS_MAX - 1))
            .map(|b| b.headers.len()),
        Some(1)
    );
    let over = full + &buyer(limits::BUYERS_MAX);
    assert_eq!(
        lines_for(&over),
        [format!("buyer: at most {} entries", limits::BUYERS_MAX)]
    );
}

#[test]
fn odd_key_names_are_quoted() {
    let text = format!("{MINIMAL}\"a.b\" = 1\n\"\" = 2\n");
    assert_eq!(
        lines_for(&text),
        ["server.\"\": unknown key", "server.\"a.b\": unknown key"]
    );
}

#[test]
fn two_publishers_cannot_share_a_key() {
    let p = |id: &str| {
        format!(
            "[[publisher]]\nid = \"{id}\"\napi_key_sha256 = \"{OTHER_HASH}\"\nrevenue_share = 0.5\nverticals = []\n"
        )
    };
    let text = format!("{MINIMAL}{}{}", p("a"), p("b"));
    assert_eq!(
        lines_for(&text),
        ["publisher[1].api_key_sha256: the same key as publisher[0]"]
    );
}

#[test]
fn secret_values_never_appear_in_errors() {
    let text = format!(
        "{}[[buyer]]\nid = \"b\"\nverticals = [\"v\"]\npost_url = \"http://h/${{B1_KEY}}\"\nfixed_price = 1\n\
         headers = {{ \"X-K\" = \"${{B1_KEY}}\\n\" }}\n",
        base()
    );
    let errors = parse(&text, &b1_key).unwrap_err();
    let shown = format!(
        "{errors:?} {}",
        errors.iter().map(|e| e.to_string()).collect::<String>()
    );
    assert!(
        shown.contains("buyer[0].headers.X-K: value contains CR, LF or NUL"),
        "{shown}"
    );
    assert!(!shown.contains("k-123"), "secret leaked: {shown}");
}

#[test]
fn syntax_errors_give_the_line_and_never_panic() {
    let cases = [
        "[server",
        "a = ",
        "= 1",
        "[[buyer]]\n[buyer]",
        "\u{0}",
        "a = 1\nb = 'x\n",
    ];
    for text in cases {
        let errors = parse(text, &no_secrets).unwrap_err();
        assert_eq!(errors.len(), 1, "{text:?}: {errors:?}");
        let line = errors[0].to_string();
        assert!(line.starts_with("line "), "{text:?}: {line}");
        assert!(!line.contains('\n'), "{line}");
    }
}

#[test]
fn load_names_an_unreadable_file_by_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let errors = load(&missing).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, missing.display().to_string());
    assert!(
        errors[0].message.starts_with("cannot read"),
        "{:?}",
        errors[0]
    );
}

/// Issue #10: a post URL over plain HTTP to a non-loopback host sends PII
/// in clear; refused unless the buyer allows it. Loopback is fine.
#[test]
fn plain_http_post_urls_only_to_loopback_or_when_allowed() {
    let buyer = |post: &str, extra: &str| {
        format!(
            "{}[[buyer]]\nid = \"b\"\nverticals = [\"v\"]\nfixed_price = 1\n{post}\n{extra}\n",
            base()
        )
    };
    let refused = "plain http:// to a non-loopback host would send PII in clear; use https:// or set allow_plain_http = true";
    for host in [
        "b1.example",
        "10.0.0.1:9000",
        "[2001:db8::1]:80",
        "127.0.0.1.example",
    ] {
        let got = lines_for(&buyer(&format!("post_url = \"http://{host}/p\""), ""));
        assert_eq!(got, [format!("buyer[0].post_url: {refused}")], "{host}");
    }
    let table = "[buyer.post]\nurl = \"http://b1.example/p\"\nformat = \"form\"\nfields = { a = \"1\" }\n[buyer.post.response]\naccepted = { regex = \"^OK\" }";
    assert_eq!(
        lines_for(&buyer(table, "")),
        [format!("buyer[0].post.url: {refused}")]
    );
    for host in [
        "127.0.0.1:9",
        "127.1.2.3",
        "[::1]:9",
        "localhost:9",
        "LOCALHOST",
    ] {
        assert_eq!(
            lines_for(&buyer(&format!("post_url = \"http://{host}/p\""), "")),
            Vec::<String>::new(),
            "{host}"
        );
    }
    let allowed = buyer(
        "allow_plain_http = true\npost_url = \"http://b1.example/p\"",
        "",
    );
    assert_eq!(lines_for(&allowed), Vec::<String>::new());
    let c = parse(
        &buyer(
            "allow_plain_http = true\npost_url = \"http://b1.example/p\"",
            "",
        ),
        &no_secrets,
    )
    .unwrap();
    assert_eq!(c.buyers[0].post_url.scheme, Scheme::Http);
    let typo = buyer(
        "allow_plain_http = \"yes\"\npost_url = \"https://b1.example/p\"",
        "",
    );
    assert_eq!(
        lines_for(&typo),
        ["buyer[0].allow_plain_http: expected a boolean"]
    );
}

/// Issue #10: consent evidence keys on `[[vertical]]`; off by default.
#[test]
fn consent_evidence_keys() {
    let v = |keys: &str| format!("{MINIMAL}[[vertical]]\nid = \"v\"\n{keys}\n");
    let c = parse(&v(""), &no_secrets).unwrap();
    assert_eq!(c.verticals[0].consent_evidence, ConsentEvidence::default());
    let on = "require_consent = true\nconsent_trustedform = true\nconsent_jornaya = true\nconsent_max_age_days = 30";
    let c = parse(&v(on), &no_secrets).unwrap();
    assert_eq!(
        c.verticals[0].consent_evidence,
        ConsentEvidence {
            trustedform: true,
            jornaya: true,
            max_age_days: 30
        }
    );
    assert_eq!(
        lines_for(&v("consent_jornaya = true")),
        ["vertical[0].require_consent: must be true when a consent_* evidence check is on"]
    );
    assert_eq!(
        lines_for(&v(
            "require_consent = true\nconsent_trustedform = 1\nconsent_max_age_days = 0"
        )),
        [
            "vertical[0].consent_trustedform: expected a boolean",
            "vertical[0].consent_max_age_days: must be between 1 and 3650",
        ]
    );
}

/// Contract §13: `return_window_days` on `[[buyer]]`, default 7; 0, a
/// negative, a fraction or a string is refused, naming the key and buyer.
#[test]
fn return_window_days_defaults_to_7_and_bad_values_name_the_buyer() {
    let buyer = |extra: &str| {
        format!(
            "{}[[buyer]]\nid = \"b\"\nverticals = [\"v\"]\nfixed_price = 1\npost_url = \"https://b.example/p\"\n{extra}\n",
            base()
        )
    };
    let c = parse(&buyer(""), &no_secrets).unwrap();
    assert_eq!(c.buyers[0].return_window_days, 7);
    let c = parse(&buyer("return_window_days = 30"), &no_secrets).unwrap();
    assert_eq!(c.buyers[0].return_window_days, 30);
    for (value, why) in [
        ("0", "must be 1 to 366 days"),
        ("-3", "must be 1 to 366 days"),
        ("367", "must be 1 to 366 days"),
        ("1.5", "must be a whole number of days"),
        ("\"7\"", "must be a whole number of days"),
    ] {
        assert_eq!(
            lines_for(&buyer(&format!("return_window_days = {value}"))),
            [format!("buyer[0].return_window_days: {why} (buyer \"b\")")],
            "{value}"
        );
    }
}

/// Contract §13: a publisher's `postback_url` must be an http(s) URL, and
/// plain http to a non-loopback host follows the buyers' rule
/// (`allow_plain_http`). `[postbacks]` tunes delivery.
#[test]
fn postback_urls_follow_the_plain_http_rule_and_postbacks_are_checked() {
    let publisher = |extra: &str| {
        format!(
            "{MINIMAL}[[vertical]]\nid = \"v\"\n[[publisher]]\nid = \"p\"\napi_key_sha256 = \"{}\"\nrevenue_share = 0.5\nverticals = [\"v\"]\n{extra}\n",
            hash_key(b"k")
        )
    };
    let c = parse(&publisher(""), &no_secrets).unwrap();
    assert_eq!(c.publishers[0].postback_url, None);
    assert_eq!(c.postbacks, Postbacks::default());
    for ok in [
        "postback_url = \"https://p.example/cb\"",
        "postback_url = \"http://127.0.0.1:9/cb\"",
        "postback_url = \"http://p.example/cb\"\nallow_plain_http = true",
    ] {
        let c = parse(&publisher(ok), &no_secrets).unwrap();
        assert!(c.publishers[0].postback_url.is_some(), "{ok}");
    }
    for (bad, why) in [
        ("postback_url = \"ftp://p.example/cb\"", "not a URL (scheme must be http:// or https://)"),
        ("postback_url = 5", "expected a string"),
        ("postback_url = \"http://p.example/cb\"", "plain http:// to a non-loopback host sends postbacks in clear; use https:// or set allow_plain_http = true"),
    ] {
        assert_eq!(
            lines_for(&publisher(bad)),
            [format!("publisher[0].postback_url: {why}")],
            "{bad}"
        );
    }
    let c = parse(
        &publisher("[postbacks]\nretry_base_ms = 50\nper_publisher_max = 8"),
        &no_secrets,
    )
    .unwrap();
    assert_eq!(
        (c.postbacks.retry_base_ms, c.postbacks.per_publisher_max),
        (50, 8)
    );
    assert_eq!(
        lines_for(&publisher(
            "[postbacks]\nretry_base_ms = 0\nper_publisher_max = 65\nsoon = 1"
        )),
        [
            "postbacks.soon: unknown key",
            "postbacks.retry_base_ms: must be between 1 and 3600000",
            "postbacks.per_publisher_max: must be between 1 and 64",
        ]
    );
    assert_eq!(
        lines_for(&publisher(
            "[postbacks]\nretry_base_ms = 5000\nretry_max_ms = 1000"
        )),
        ["postbacks.retry_max_ms: must be at least retry_base_ms"]
    );
}
