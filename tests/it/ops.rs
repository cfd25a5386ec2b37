//! Ops pieces seen from outside: the `/metrics` exposition checked line by
//! line and by `promtool`, readiness datagrams through `$NOTIFY_SOCKET` in a
//! child process, the systemd unit's checks, and the example config.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use leadx::metrics::{
    write_gauge, AuctionOutcome, Endpoint, PingResult, PostOutcome, PostResult, Registry,
};

/// A registry with something in every family, including awkward buyer ids.
fn busy_registry() -> Registry {
    let r = Registry::new();
    for (i, e) in Endpoint::ALL.iter().enumerate() {
        r.http_request(*e, 200, 700 * (i as u64 + 1));
        r.http_request(*e, 503, 2_000_000);
    }
    r.http_request(Endpoint::Ping, 418, 10);
    r.auction(AuctionOutcome::Bid, 40_000);
    r.auction(AuctionOutcome::NoBid, 300_000);
    r.post_outcome(PostOutcome::Sold, 90_000);
    r.store_flush(1_500, 12);
    r.late_answers();
    for id in ["b1", "acme \"west\"", "back\\slash", "new\nline", "ünï"] {
        let b = r.buyer(id);
        b.ping(PingResult::Bid { price_cents: 1_234 }, 12_000);
        b.ping(PingResult::Error("malformed_response"), 3_000);
        b.ping(PingResult::Timeout, 150_000);
        b.post(PostResult::Failed, 7_000_000);
    }
    r
}

fn render(r: &Registry) -> String {
    let mut out = Vec::new();
    r.render(&mut out, &|out| {
        // Interleaved on purpose, as a per-buyer loop writes them.
        for buyer in ["b1", "b2"] {
            write_gauge(
                out,
                "leadx_buyer_cap_remaining",
                "Leads left today.",
                &[("buyer", buyer)],
                3.0,
            );
            write_gauge(
                out,
                "leadx_buyer_pool_idle",
                "Idle connections.",
                &[("buyer", buyer)],
                0.0,
            );
        }
    });
    String::from_utf8(out).expect("exposition is UTF-8")
}

/// Splits `name{labels} value` into (name, labels text, value).
fn split_sample(line: &str) -> (&str, &str, &str) {
    let (series, value) = line.rsplit_once(' ').expect("sample has a value");
    match series.find('{') {
        Some(i) => {
            assert!(series.ends_with('}'), "unclosed labels: {line}");
            (&series[..i], &series[i + 1..series.len() - 1], value)
        }
        None => (series, "", value),
    }
}

/// The family a sample belongs to (histogram suffixes stripped when the
/// family was declared a histogram).
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).map(String::as_str) == Some("histogram") {
                return base;
            }
        }
    }
    name
}

/// Checks the text format's rules that promtool does not all check.
pub(crate) fn check_exposition(text: &str) {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut series = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(helped.insert(name.to_owned()), "HELP twice for {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(helped.contains(name), "TYPE before HELP for {name}");
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice: {name}"
            );
            finished.insert(std::mem::replace(&mut current, name.to_owned()));
        } else {
            let (name, labels, value) = split_sample(line);
            let family = family_of(name, &types);
            assert!(types.contains_key(family), "sample before its TYPE: {line}");
            assert_eq!(family, current, "family {family} split up: {line}");
            assert!(
                !finished.contains(family),
                "family {family} resumed: {line}"
            );
            assert!(name.starts_with("leadx_"), "unprefixed: {line}");
            if types[family] == "counter" {
                assert!(name.ends_with("_total"), "counter without _total: {line}");
            }
            assert!(
                value.parse::<f64>().is_ok() || value == "+Inf",
                "bad value: {line}"
            );
            assert!(
                series.insert(format!("{name}{{{labels}}}")),
                "duplicate series: {line}"
            );
        }
    }
    assert!(!types.is_empty());
}

/// For every histogram series: buckets ascend in `le` and in count, and
/// `_count` equals the `+Inf` bucket.
fn check_histograms(text: &str) {
    let mut last: HashMap<String, (f64, f64)> = HashMap::new();
    let mut inf: HashMap<String, String> = HashMap::new();
    let mut counted = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, labels, value) = split_sample(line);
        if let Some(base) = name.strip_suffix("_bucket") {
            let (others, le) = labels.rsplit_once("le=\"").expect("bucket has le last");
            let le = le.trim_end_matches('"');
            let key = format!("{base}|{}", others.trim_end_matches(','));
            let le_num = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            let count: f64 = value.parse().unwrap();
            if let Some((prev_le, prev_count)) = last.get(&key) {
                assert!(le_num > *prev_le, "le not ascending: {line}");
                assert!(count >= *prev_count, "buckets not cumulative: {line}");
            }
            last.insert(key.clone(), (le_num, count));
            if le == "+Inf" {
                inf.insert(key, value.to_owned());
            }
        } else if let Some(base) = name.strip_suffix("_count") {
            let key = format!("{base}|{labels}");
            assert_eq!(
                inf.get(&key).map(String::as_str),
                Some(value),
                "_count ≠ +Inf: {line}"
            );
            counted += 1;
        }
    }
    assert_eq!(counted, inf.len(), "every histogram series has a _count");
    assert!(counted > 0, "no histogram checked");
}

#[test]
#[should_panic(expected = "duplicate series")]
fn checker_catches_duplicate_series() {
    check_exposition(
        "# HELP leadx_a_total A.\n# TYPE leadx_a_total counter\nleadx_a_total 1\nleadx_a_total 2\n",
    );
}

#[test]
#[should_panic(expected = "not cumulative")]
fn checker_catches_non_cumulative_buckets() {
    check_histograms(
        "leadx_h_bucket{le=\"1\"} 2\nleadx_h_bucket{le=\"+Inf\"} 1\nleadx_h_count 1\n",
    );
}

#[test]
fn exposition_follows_the_text_format() {
    let text = render(&busy_registry());
    check_exposition(&text);
    check_histograms(&text);
    assert!(text.contains("status=\"other\""), "418 counted as other");
    assert!(text.contains("buyer=\"new\\nline\""), "newline escaped");
}

#[test]
fn empty_registry_exposition_is_valid_too() {
    let text = render(&Registry::new());
    check_exposition(&text);
    check_histograms(&text);
}

/// True when a tool is on PATH. In CI a missing tool is a failure, not a
/// reason to skip: `.ci/run` installs it.
pub(crate) fn have_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("CI").is_some() {
        panic!("{tool} is required when CI is set (apt-get install the package that has it)");
    }
    if !found {
        eprintln!("{tool} not installed; skipping (this would fail under CI)");
    }
    found
}

pub(crate) fn promtool_check(text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.txt");
    std::fs::write(&path, text).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(file)
        .output()
        .expect("running promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{report}"
    );
    assert!(
        report.trim().is_empty(),
        "promtool lint findings:\n{report}"
    );
}

#[test]
fn promtool_accepts_the_exposition() {
    if !have_tool("promtool") {
        return;
    }
    promtool_check(&render(&busy_registry()));
    promtool_check(&render(&Registry::new()));
}

/// Env var that turns `notify_child` into the child side of the test below.
const NOTIFY_CHILD_ENV: &str = "LEADX_TEST_NOTIFY_CHILD";

/// Child side: runs in a re-executed copy of this test binary, so
/// `NOTIFY_SOCKET` is set for that process alone and no other test's
/// environment changes under it.
#[test]
fn notify_child() {
    match std::env::var(NOTIFY_CHILD_ENV).as_deref() {
        Ok("send") => {
            leadx::notify::status("serving");
            leadx::notify::ready();
            leadx::notify::stopping();
        }
        Ok("noop") => {
            assert!(!leadx::notify::notify("READY=1").expect("no socket is no error"));
        }
        // Run as an ordinary test: the parent side covers it.
        _ => {}
    }
}

fn run_notify_child(mode: &str, socket: Option<&std::path::Path>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["ops::notify_child", "--exact", "--test-threads=1"])
        .env(NOTIFY_CHILD_ENV, mode)
        .env_remove("NOTIFY_SOCKET");
    if let Some(socket) = socket {
        cmd.env("NOTIFY_SOCKET", socket);
    }
    let out = cmd.output().expect("re-running the test binary");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn notify_sends_ready_through_notify_socket() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    run_notify_child("send", Some(&path));
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    for _ in 0..3 {
        let n = sock.recv(&mut buf).expect("datagram from the child");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(got, ["STATUS=serving", "READY=1", "STOPPING=1"]);
    run_notify_child("noop", None);
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `key=value` directives of a unit file; repeated keys keep every value.
fn unit_directives(text: &str) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with(['#', ';', '[']) || line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').expect("directive is key=value");
        map.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    map
}

#[test]
fn unit_file_has_the_required_directives() {
    let text = std::fs::read_to_string(repo_file("systemd/leadx.service")).unwrap();
    let d = unit_directives(&text);
    let one = |k: &str| -> &str {
        let v = d.get(k).unwrap_or_else(|| panic!("{k}= missing"));
        assert_eq!(v.len(), 1, "{k}= set more than once");
        &v[0]
    };
    for (k, v) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "10s"),
        ("Restart", "on-failure"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "leadx"),
        ("ConfigurationDirectory", "leadx"),
        ("KillSignal", "SIGTERM"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("ExecStart", "/usr/bin/leadx serve --config ${LEADX_CONFIG}"),
        (
            "ExecStartPre",
            "/usr/bin/leadx check-config --config ${LEADX_CONFIG}",
        ),
        ("CapabilityBoundingSet", ""),
        ("UMask", "0077"),
        ("LimitNOFILE", "65536"),
    ] {
        assert_eq!(one(k), v, "{k}=");
    }
    // The stop timeout must outlast a drain: in-flight posts run at most
    // auction.post_timeout_ms (3 s by default), plus the final store flush.
    let stop_s: u64 = one("TimeoutStopSec").trim_end_matches('s').parse().unwrap();
    assert!(
        stop_s >= 10,
        "TimeoutStopSec={stop_s}s leaves no room for draining"
    );
    assert!(d.contains_key("EnvironmentFile"));
    assert!(
        text.contains("LoadCredential="),
        "credentials example documented"
    );
}

#[test]
fn unit_file_passes_systemd_analyze() {
    if !have_tool("systemd-analyze") {
        return;
    }
    let out = Command::new("bash")
        .arg(repo_file("tests/systemd_check.sh"))
        .output()
        .expect("running tests/systemd_check.sh");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd_check.sh failed:\n{report}");
    assert!(report.contains("exposure level"), "{report}");
}

#[test]
fn example_config_has_every_section_and_no_secret() {
    let text = std::fs::read_to_string(repo_file("systemd/leadx.toml")).unwrap();
    let v: toml::Value = toml::from_str(&text).expect("example config is TOML");
    for section in [
        "server",
        "admin",
        "auction",
        "vertical",
        "publisher",
        "buyer",
    ] {
        assert!(v.get(section).is_some(), "[{section}] missing");
    }
    let hashes = [
        v["admin"]["token_sha256"].as_str().unwrap(),
        v["publisher"][0]["api_key_sha256"].as_str().unwrap(),
    ];
    for h in hashes {
        assert_eq!(h.len(), 64, "a SHA-256 is 64 hex digits");
        assert!(h.bytes().all(|b| b == b'0'), "placeholders match no secret");
    }
    let header = v["buyer"][0]["headers"]["X-Api-Key"].as_str().unwrap();
    assert!(
        header.starts_with("${"),
        "buyer credentials come from env or credentials"
    );
    assert_eq!(
        v["server"]["data_dir"].as_str(),
        Some("/var/lib/leadx"),
        "matches StateDirectory"
    );
}

/// Once `leadx check-config` is wired, the shipped example must pass it
/// (contract §1: exit 0 when valid).
#[test]
fn example_config_passes_check_config() {
    let out = Command::new(env!("CARGO_BIN_EXE_leadx"))
        .args(["check-config", "--config"])
        .arg(repo_file("systemd/leadx.toml"))
        .env("B1_KEY", "example-key")
        .output()
        .expect("running leadx");
    assert!(
        out.status.success(),
        "check-config refused the example:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
