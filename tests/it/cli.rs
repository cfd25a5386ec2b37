//! `leadx` as a program (contract §1, issue #4): exit codes and messages of
//! every command, and `leadx serve` as a child process — SIGHUP reload,
//! SIGTERM drain under load, logs free of PII, the systemd watchdog.
//! Children are always killed by a guard, every wait is bounded, and the
//! only fixed port is one the test holds on purpose.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

pub fn leadx_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_leadx"));
    c.env_remove("LEADX_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM");
    c
}

/// Runs `leadx args…` with `stdin`, bounded by a kill after 30 s.
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = leadx_cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            signal(pid, libc::SIGKILL);
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = tx.send(());
    out
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

/// Polls `cond` every few milliseconds until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// A `leadx serve` child: its address (read from its log), all of its
/// stderr, and a kill when dropped.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Served {
        let mut cmd = leadx_cmd();
        cmd.args(["serve", "--config"])
            .arg(config)
            .env("LEADX_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                    .and_then(|a| a.trim_matches('"').parse::<SocketAddr>().ok())
                {
                    let _ = tx.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let mut served = Served {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
        };
        served.addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("leadx logged no address: {}", served.log_text()));
        served
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits for the exit (bounded); None if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        eventually(timeout, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config for a child: the shared fixture, `listen` as given.
pub fn write_config(
    dir: &Path,
    listen: &str,
    buyers: &str,
    server_extra: &str,
) -> std::path::PathBuf {
    let text = base_toml(&dir.join("data"), "", "").replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{listen}\"\n{server_extra}"),
    ) + buyers;
    let path = dir.join("leadx.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn unknown_or_missing_command_exits_2_with_usage() {
    for args in [
        &["frobnicate"][..],
        &[],
        &["serve", "--bogus"],
        &["hash-key", "extra"],
    ] {
        let out = run(args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("usage:") && text(&out.stderr).contains("leadx serve"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

const BAD_BUYERS: &str = "[[buyer]]\nid = \"a\"\nverticals = [\"auto\"]\npost_url = \"http://127.0.0.1:1/p\"\nfixed_price = 1.00\n\
[[buyer]]\nid = \"b\"\nverticals = [\"auto\"]\npost_url = \"http://127.0.0.1:1/p\"\nfixed_price = 1.00\n\
[[buyer]]\nid = \"c\"\nverticals = [\"auto\"]\npost_url = \"not a url\"\nfixed_price = 1.00\n";

#[test]
fn check_config_and_serve_name_every_problem_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(dir.path(), "127.0.0.1:0", "", "");
    let out = run(&["check-config", "--config", good.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let bad_text = std::fs::read_to_string(&good).unwrap().replacen(
        "revenue_share = 0.8",
        "revenue_share = 3",
        1,
    ) + BAD_BUYERS;
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, bad_text).unwrap();
    for args in [
        vec!["check-config", "--config", bad.to_str().unwrap()],
        vec!["serve", "--config", bad.to_str().unwrap()],
    ] {
        let out = run(&args, b"");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.contains(": ")).collect();
        assert!(
            lines.iter().any(|l| l.starts_with("buyer[2].post_url: ")),
            "{args:?}: {err}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("publisher[0].revenue_share: ")),
            "{args:?}: {err}"
        );
    }
    let out = run(
        &[
            "check-config",
            "--config",
            dir.path().join("none.toml").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing file is a configuration error"
    );
}

#[test]
fn hash_key_strips_exactly_one_trailing_newline() {
    const SHA_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let hash = |input: &[u8]| {
        let out = run(&["hash-key"], input);
        assert_eq!(out.status.code(), Some(0));
        text(&out.stdout).trim_end().to_string()
    };
    assert_eq!(hash(b"abc\n"), SHA_ABC);
    assert_eq!(hash(b"abc"), SHA_ABC);
    let two = hash(b"abc\n\n");
    assert_ne!(two, SHA_ABC, "only one newline is stripped");
    assert_eq!(
        two, "edeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd18cb",
        "sha256(\"abc\\n\")"
    );
}

#[test]
fn serve_on_a_port_in_use_fails_clearly() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &taken.local_addr().unwrap().to_string(), "", "");
    let out = run(&["serve", "--config", path.to_str().unwrap()], b"");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("already in use"), "{err}");
}

fn ping_price(addr: SocketAddr) -> f64 {
    let r = post_json(
        addr,
        "/v1/ping",
        KEY,
        &json!({"vertical": "auto", "lead": ping_lead()}),
    );
    assert_eq!(r.status, 200, "{}", text(&r.body));
    r.json()["price"].as_f64().unwrap()
}

#[test]
fn sighup_reloads_and_an_invalid_file_keeps_the_running_config() {
    let b = mock(Act::NoBid, Act::Accept("H"));
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "127.0.0.1:0",
        &direct_buyer_toml("flat", &b, "3.00", ""),
        "",
    );
    let leadx = Served::start(&path, &[]);
    assert_eq!(ping_price(leadx.addr), 2.4);
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        original.replace("fixed_price = 3.00", "fixed_price = 5.00"),
    )
    .unwrap();
    signal(leadx.pid(), libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || ping_price(leadx.addr) == 4.0),
        "new config in effect"
    );
    std::fs::write(
        &path,
        original.replace("fixed_price = 3.00", "fixed_price = \"lots\""),
    )
    .unwrap();
    signal(leadx.pid(), libc::SIGHUP);
    let refused = || {
        leadx.log_text().lines().any(|l| {
            l.contains("level=error")
                && l.contains("reload refused")
                && l.contains("buyer[0].fixed_price")
        })
    };
    assert!(
        eventually(Duration::from_secs(10), refused),
        "error logged: {}",
        leadx.log_text()
    );
    assert_eq!(ping_price(leadx.addr), 4.0, "the running config stays");
}

/// How one request under a drain ended.
#[derive(Debug)]
enum Ended {
    /// Refused or reset before any byte of an answer: never processed.
    NoAnswer,
    Answer(u16, serde_json::Value),
    /// Some bytes of an answer, not all: what must never happen.
    Partial(String),
}

fn direct_post(addr: SocketAddr, phone: &str) -> Ended {
    let body =
        json!({"vertical": "auto", "lead": full_lead(phone, "t@d.co"), "consent": consent()})
            .to_string();
    let Ok(mut s) = TcpStream::connect(addr) else {
        return Ended::NoAnswer;
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /v1/leads HTTP/1.1\r\nHost: l\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body.as_bytes()))
        .is_err()
    {
        return Ended::NoAnswer;
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    if raw.is_empty() {
        return Ended::NoAnswer;
    }
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ended::Partial(text(&raw));
    };
    let r = parse_reply(&raw);
    let complete = r
        .header("content-length")
        .and_then(|n| n.parse::<usize>().ok())
        == Some(raw.len() - split - 4);
    match serde_json::from_slice(&r.body) {
        Ok(v) if complete => Ended::Answer(r.status, v),
        _ => Ended::Partial(text(&raw)),
    }
}

#[test]
fn sigterm_drains_in_flight_posts_and_exits_0() {
    const THREADS: usize = 6;
    let b = mock(Act::NoBid, Act::Delay(400, Box::new(Act::Accept("T"))));
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "127.0.0.1:0",
        &direct_buyer_toml("slow", &b, "3.00", ""),
        "drain_timeout_ms = 5000",
    );
    let mut leadx = Served::start(&path, &[]);
    let addr = leadx.addr;
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let results = Mutex::new(Vec::<(Instant, Instant, Ended)>::new());
    let (mut checked, mut signalled) = (Instant::now(), Instant::now());
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (results, answered) = (&results, &answered);
            s.spawn(move || {
                for i in 0.. {
                    let started = Instant::now();
                    let ended = direct_post(
                        addr,
                        &format!("{}5{i:06}", ["312", "415", "646", "713", "617", "206"][t]),
                    );
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let stop = !matches!(ended, Ended::Answer(200, _));
                    results
                        .lock()
                        .unwrap()
                        .push((started, Instant::now(), ended));
                    if stop || i > 200 {
                        break;
                    }
                }
            });
        }
        // Signal once a few rounds ran and every thread's post is at the
        // slow buyer (posts received = answers + one per thread).
        let at_buyer = || {
            b.buyer.posts() >= 2 * THREADS
                && b.buyer.posts() == answered.load(std::sync::atomic::Ordering::SeqCst) + THREADS
        };
        assert!(
            eventually(Duration::from_secs(30), at_buyer),
            "load did not build up"
        );
        checked = Instant::now();
        signal(leadx.pid(), libc::SIGTERM);
        signalled = Instant::now();
    });
    let status = leadx
        .wait_exit(Duration::from_secs(20))
        .expect("leadx exited after its drain");
    assert_eq!(status.code(), Some(0), "{}", leadx.log_text());
    let results = results.into_inner().unwrap();
    let mut sold = Vec::new();
    let mut drained_in_flight = 0;
    for (started, ended_at, ended) in &results {
        match ended {
            Ended::Partial(raw) => panic!("a broken answer: {raw:?}"),
            Ended::Answer(200, v) if v["status"] == "sold" => {
                sold.push(v["lead_id"].as_str().unwrap().to_string())
            }
            Ended::Answer(503, v) => assert_eq!(v["error"]["code"], "draining"),
            Ended::NoAnswer if *started > checked => {}
            other => panic!("unexpected {other:?} for a request started before the signal"),
        }
        if *started < checked && *ended_at > signalled {
            assert!(
                matches!(ended, Ended::Answer(200, _)),
                "a post in flight at SIGTERM must finish: {ended:?}"
            );
            drained_in_flight += 1;
        }
    }
    assert_eq!(
        drained_in_flight, THREADS,
        "every thread had a post in flight at SIGTERM"
    );
    let leadx = Served::start(&path, &[]);
    for id in &sold {
        let r = get(leadx.addr, &format!("/v1/leads/{id}"), KEY);
        assert_eq!(
            (r.status, r.json()["status"].as_str()),
            (200, Some("sold")),
            "sold lead {id} lost in the drain"
        );
    }
}

#[test]
fn logs_carry_ids_and_never_pii() {
    use crate::appliance::{pii_consent, pii_lead, PII};
    let pinged = mock(Act::Bid(10.0), Act::Accept("L1"));
    let direct = mock(Act::NoBid, Act::Accept("L2"));
    let dir = tempfile::tempdir().unwrap();
    let buyers = buyer_toml("b1", &pinged, "") + &direct_buyer_toml("flat", &direct, "3.00", "");
    let path = write_config(dir.path(), "127.0.0.1:0", &buyers, "");
    let mut leadx = Served::start(&path, &[("LEADX_LOG", "debug")]);
    let r = post_json(
        leadx.addr,
        "/v1/ping",
        KEY,
        &json!({"vertical": "auto", "lead": ping_lead()}),
    );
    let ping_id = r.json()["ping_id"].as_str().unwrap().to_string();
    let r = post_json(
        leadx.addr,
        "/v1/post",
        KEY,
        &json!({"ping_id": ping_id, "lead": pii_lead(), "consent": pii_consent()}),
    );
    let sold_post = r.json()["lead_id"].as_str().unwrap().to_string();
    pinged.buyer.set_post(Act::Status(500));
    let r = post_json(
        leadx.addr,
        "/v1/leads",
        KEY,
        &json!({"vertical": "auto", "lead": pii_lead(), "consent": pii_consent()}),
    );
    assert_eq!(
        r.json()["status"],
        "sold",
        "failed over to the direct buyer: {}",
        r.json()
    );
    let sold_direct = r.json()["lead_id"].as_str().unwrap().to_string();
    assert!(
        direct.buyer.last_post_json().to_string().contains(PII[4]),
        "the PII did flow to the buyer"
    );
    // Refused requests carrying PII: in a ping, and a malformed email.
    let r = post_json(
        leadx.addr,
        "/v1/ping",
        KEY,
        &json!({"vertical": "auto", "lead": pii_lead()}),
    );
    assert_eq!(r.code(), "pii_in_ping");
    let mut bad = pii_lead();
    bad["phone"] = "31255501870".into();
    let r = post_json(
        leadx.addr,
        "/v1/leads",
        KEY,
        &json!({"vertical": "auto", "lead": bad, "consent": pii_consent()}),
    );
    assert_eq!(r.status, 422);
    signal(leadx.pid(), libc::SIGTERM);
    assert_eq!(
        leadx
            .wait_exit(Duration::from_secs(20))
            .and_then(|s| s.code()),
        Some(0)
    );
    assert!(eventually(Duration::from_secs(5), || leadx
        .log_text()
        .contains("stopped; store closed")));
    let log = leadx.log_text();
    for line in log.lines() {
        for p in PII.iter().chain(&["3125550187", "31255501870"]) {
            assert!(!line.contains(p), "PII {p:?} in a log line: {line}");
        }
    }
    let has = |parts: &[&str]| log.lines().any(|l| parts.iter().all(|p| l.contains(p)));
    // Per-lead events are debug; info has the traffic summary (issue #7
    // point 8), written at the latest at shutdown.
    assert!(
        has(&[
            "level=debug",
            "msg=\"lead sold\"",
            &format!("lead_id={sold_post}"),
            "buyer=b1",
            "price_cents=1000"
        ]),
        "{log}"
    );
    assert!(
        has(&[
            "msg=\"lead sold\"",
            &format!("lead_id={sold_direct}"),
            "buyer=flat"
        ]),
        "{log}"
    );
    assert!(
        has(&[
            "level=debug",
            "msg=\"buyer post failed\"",
            "buyer=b1",
            "reason=http_500"
        ]),
        "{log}"
    );
    assert!(!has(&["level=info", "msg=\"lead sold\""]), "{log}");
    assert!(
        has(&["level=info", "msg=\"traffic summary\"", "pings=", "sold="]),
        "{log}"
    );
    assert!(
        has(&["level=warn", "msg=\"request refused\"", "code=pii_in_ping"]),
        "{log}"
    );
    assert!(
        has(&["level=warn", "code=invalid_field", "field=lead.phone"]),
        "{log}"
    );
    assert!(
        has(&[
            "level=debug",
            "msg=\"auction done\"",
            &format!("ping_id={ping_id}")
        ]),
        "{log}"
    );
}

#[test]
fn watchdog_is_fed_while_serving_and_starves_when_stopped() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let path = write_config(dir.path(), "127.0.0.1:0", "", "");
    // No WATCHDOG_PID: systemd sets it to the service's pid, which a test
    // cannot know before the spawn; `notify::watchdog_interval` accepts its
    // absence.
    let leadx = Served::start(
        &path,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "300000"),
        ],
    );
    let recv = |timeout_ms: u64| -> Option<String> {
        sock.set_read_timeout(Some(Duration::from_millis(timeout_ms)))
            .unwrap();
        let mut buf = [0u8; 512];
        sock.recv(&mut buf).ok().map(|n| text(&buf[..n]))
    };
    let first = recv(10_000).expect("a notification");
    assert_eq!(first, "READY=1", "readiness comes first");
    assert!(
        TcpStream::connect(leadx.addr).is_ok(),
        "READY=1 only once the port accepts"
    );
    let fed = |n: usize, within_ms: u64| {
        let until = Instant::now() + Duration::from_millis(within_ms);
        let mut got = 0;
        while got < n && Instant::now() < until {
            got += usize::from(recv(50).as_deref() == Some("WATCHDOG=1"));
        }
        got >= n
    };
    assert!(fed(5, 3_000), "WATCHDOG=1 every ~100 ms while serving");
    signal(leadx.pid(), libc::SIGSTOP);
    // Anything sent before the stop is queued already: drain it, then expect
    // silence for several watchdog intervals.
    std::thread::sleep(Duration::from_millis(150));
    while recv(1).is_some() {}
    assert_eq!(recv(700), None, "a stopped leadx must starve the watchdog");
    signal(leadx.pid(), libc::SIGCONT);
    assert!(fed(2, 3_000), "feeding resumes after SIGCONT");
}

/// Contract §12: a config without a data key stores PII in clear, which
/// `check-config` says (stderr, exit 0) and `serve` logs at start, unless
/// `plaintext_pii = true` or a data key says otherwise.
#[test]
fn pii_in_clear_is_warned_by_check_config_and_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = write_config(dir.path(), "127.0.0.1:0", "", "");
    let v1_text = std::fs::read_to_string(&v1).unwrap();
    let check = |toml: &str| {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        let out = run(&["check-config", "--config", path.to_str().unwrap()], b"");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let warned = check(&v1_text);
    assert!(
        warned.contains("warning: privacy.data_key: not set: PII"),
        "{warned}"
    );
    let intended = check(&format!("{v1_text}\n[privacy]\nplaintext_pii = true\n"));
    assert!(!intended.contains("warning"), "{intended}");
    let key = "ab".repeat(32);
    let sealed = check(&format!("{v1_text}\n[privacy]\ndata_key = \"{key}\"\n"));
    assert!(!sealed.contains("warning"), "{sealed}");

    let served = Served::start(&v1, &[]);
    assert!(
        eventually(Duration::from_secs(10), || served
            .log_text()
            .contains("privacy.data_key: not set: PII")),
        "{}",
        served.log_text()
    );
}
