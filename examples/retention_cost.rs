//! What a retention sweep costs the ping latency (issue #10: goal ≤ +1 ms
//! on the ping p99). Starts leadx in-process on a store pre-filled with
//! expired records (`PREFILL` unposted pings 10 days old and `PREFILL / 5`
//! leads 100 days old with PII), then drives the same closed-loop ping load
//! twice — without a sweep, and while a paced retention pass
//! (`Exchange::sweep_retention`, the production pacing) works through the
//! expired records — and prints p50/p99/max of each.
//!
//!     cargo run --release --example retention_cost -- [PREFILL] [PINGS_PER_CLIENT]
//!     cargo run --release --example retention_cost -- soak [ROUNDS] [PINGS_PER_CLIENT]
//!
//! `soak` instead sends pings that are never posted, moves the clock a day
//! per round and runs a retention pass: the pings stored (and the bytes
//! under `data_dir`) per round show whether the store stays flat.
//!
//! A measurement, not a test: results go to docs/performance.md with the
//! machine and date.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadx::clock::ManualClock;
use leadx::http::server::{self, Handler, Request, Response, ServerOptions};
use leadx::records::{self, LeadRecord, LeadStatus, PingRecord};
use leadx::store::{Batch, Tree};

const CLIENTS: usize = 4;
const DAY_MS: u64 = 86_400_000;

struct Bidder;

impl Handler for Bidder {
    fn handle(&self, _req: &mut Request<'_>) -> Response {
        Response {
            status: 200,
            content_type: "application/json",
            headers: vec![],
            body: br#"{"status":"bid","price":10}"#.to_vec(),
        }
    }
}

fn main() {
    let soak = std::env::args().nth(1).as_deref() == Some("soak");
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let buyer = server::start(
        server::bind("127.0.0.1:0".parse().unwrap()).unwrap(),
        ServerOptions::default(),
        Arc::new(Bidder),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = "pub1-measure-key";
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"
data_dir = "{dir}"
[admin]
token_sha256 = "{h}"
[auction]
[[vertical]]
id = "auto"
[[publisher]]
id = "pub1"
api_key_sha256 = "{h}"
revenue_share = 0.8
verticals = ["auto"]
[[buyer]]
id = "b"
verticals = ["auto"]
ping_url = "http://{b}/ping"
post_url = "http://{b}/post"
[privacy]
data_key = "{k}"
pii_retention_days = 90
ping_retention_days = 7
"#,
        dir = dir.path().join("data").display(),
        h = leadx::config::hash_key(key.as_bytes()),
        b = buyer.local_addr(),
        k = "5e".repeat(32),
    );
    let config = leadx::config::parse(&text, &|_| None).expect("config");
    // wall clock: business time starts at the real now, ids look ordinary.
    let clock = Arc::new(ManualClock::new());
    let running = leadx::daemon::start_with_clock(config, None, clock.clone()).unwrap();
    let ex = running.ex.clone();
    ex.retention().pause_background(true);
    if soak {
        let rounds = args.first().copied().unwrap_or(20);
        let per_client = args.get(1).copied().unwrap_or(250) as usize;
        run_soak(
            &running,
            &clock,
            &dir.path().join("data"),
            rounds,
            per_client,
        );
        running.shutdown().unwrap();
        return;
    }
    let prefill = args.first().copied().unwrap_or(100_000) as usize;
    let per_client = args.get(1).copied().unwrap_or(2_000) as usize;
    let now = ex.now_ms();
    let t = Instant::now();
    fill(&ex, prefill, now);
    println!(
        "prefilled {prefill} pings and {} leads in {:?}",
        prefill / 5,
        t.elapsed()
    );

    let addr = running.local_addr();
    let t = Instant::now();
    let base = load(addr, key, per_client);
    println!("without a sweep: {} ({:?})", summary(&base), t.elapsed());
    let sweeper = {
        let ex = ex.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let pace = Duration::from_millis(leadx::limits::RETENTION_TICK_MS);
            let r = ex.sweep_retention(u64::MAX, pace);
            (r, t.elapsed())
        })
    };
    let t = Instant::now();
    let with = load(addr, key, per_client);
    let load_took = t.elapsed();
    println!("during a sweep:  {} ({load_took:?})", summary(&with));
    let (r, took) = sweeper.join().unwrap();
    println!(
        "sweep: scanned {} pii_erased {} pings_deleted {} in {took:?} (the load ran inside it: {})",
        r.scanned,
        r.pii_erased,
        r.pings_deleted,
        load_took < took
    );
    running.shutdown().unwrap();
}

/// Soak: each round `CLIENTS × per_client` pings (never posted), then one
/// day passes on the clock and a retention pass runs; prints the pings
/// stored and the bytes under `data_dir` per round. With
/// `ping_retention_days = 7` the count must level off after 8 rounds.
fn run_soak(
    running: &leadx::daemon::Running,
    clock: &ManualClock,
    data: &std::path::Path,
    rounds: u64,
    per_client: usize,
) {
    let ex = &running.ex;
    println!("round,pings_sent,pings_stored,deleted,data_dir_bytes");
    for round in 1..=rounds {
        load(running.local_addr(), "pub1-measure-key", per_client);
        ex.store().sync().unwrap();
        clock.advance_ms(DAY_MS);
        let r = ex.sweep_retention(u64::MAX, Duration::ZERO);
        ex.store().sync().unwrap();
        let stored = ex.store().count_prefix(Tree::Pings, b"").unwrap();
        println!(
            "{round},{},{stored},{},{}",
            round as usize * CLIENTS * per_client,
            r.pings_deleted,
            dir_bytes(data)
        );
    }
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    n
}

fn fill(ex: &leadx::exchange::Exchange, prefill: usize, now: u64) {
    let ring = ex.runtime().config.privacy.key_ring();
    for chunk in 0..prefill.div_ceil(1000) {
        let mut batch = Batch::default();
        for i in chunk * 1000..((chunk + 1) * 1000).min(prefill) {
            let created = now - 10 * DAY_MS;
            let id = format!("{:012x}{:020x}", created - 100 * DAY_MS, i);
            let ping = PingRecord {
                v: records::RECORD_VERSION,
                ping_id: id.clone(),
                publisher: "pub1".into(),
                vertical: "auto".into(),
                test: false,
                created_ms: created,
                expires_ms: created + 120_000,
                lead_json: r#"{"zip":"90210","state":"CA","age":30}"#.into(),
                bids: vec![],
                calls: vec![],
                lead_id: None,
                direct: false,
                auction_us: 900,
            };
            batch.insert(
                Tree::Pings,
                id.clone().into_bytes(),
                records::encode_ping(&ping),
            );
            if i % 5 == 0 {
                let pii = r#"{"lead":{"first_name":"Ann","last_name":"Lee","phone":"+15552345678","email":"ann@example.com","zip":"90210"},"consent":{"ip":"203.0.113.9"}}"#;
                let lead = LeadRecord {
                    v: records::RECORD_VERSION,
                    pii_json: records::seal_pii(ring.as_ref(), &id, pii.into()),
                    lead_id: id.clone(),
                    ping_id: id.clone(),
                    publisher: "pub1".into(),
                    vertical: "auto".into(),
                    test: false,
                    created_ms: now - 100 * DAY_MS,
                    status: LeadStatus::Unsold,
                    reason: Some("no_bid".into()),
                    price: None,
                    payout: None,
                    buyer: None,
                    buyer_lead_id: None,
                    sold_ms: None,
                    post_calls: vec![],
                    returned_ms: None,
                    return_reason: None,
                    pii_erased_ms: None,
                    suppression_list: None,
                };
                batch.insert(Tree::Leads, id.into_bytes(), records::encode_lead(&lead));
            }
        }
        ex.store().write_durable(batch).unwrap();
    }
}

/// `CLIENTS` closed loops of `per_client` pings each, one keep-alive
/// connection per client; every ping's latency in µs.
fn load(addr: SocketAddr, key: &str, per_client: usize) -> Vec<u64> {
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let key = key.to_string();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                let body = br#"{"vertical":"auto","lead":{"zip":"90210","state":"CA","age":30,"credit":"good"}}"#;
                let head = format!("POST /v1/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
                let mut out = Vec::with_capacity(per_client);
                let mut buf = vec![0u8; 8192];
                for _ in 0..per_client {
                    let t = Instant::now();
                    s.write_all(head.as_bytes()).unwrap();
                    s.write_all(body).unwrap();
                    read_answer(&mut s, &mut buf);
                    out.push(t.elapsed().as_micros() as u64);
                }
                out
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

/// Reads one answer (head + Content-Length body) and checks it is a 200.
fn read_answer(s: &mut TcpStream, buf: &mut [u8]) {
    let mut got = 0;
    loop {
        let n = s.read(&mut buf[got..]).unwrap();
        assert!(n > 0, "connection closed");
        got += n;
        let text = String::from_utf8_lossy(&buf[..got]);
        if let Some(end) = text.find("\r\n\r\n") {
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got >= end + 4 + len {
                return;
            }
        }
    }
}

fn summary(lat: &[u64]) -> String {
    let mut v = lat.to_vec();
    v.sort_unstable();
    let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    format!(
        "{} pings p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        v.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    )
}
