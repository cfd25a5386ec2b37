//! Issue #9: connections to buyers are warmed off the lead's clock — at
//! start and in the reload thread — over real sockets: a TLS mock buyer
//! (rcgen CA) that counts accepted TCP connections and completed
//! handshakes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadx::clock::ManualClock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::cli::eventually;
use crate::privacy::start_with_text;
use crate::support::*;
use crate::tls::Ca;

/// An https buyer on loopback that bids 5.00 on every ping and accepts
/// posts, keep-alive; counts TCP accepts and completed TLS handshakes.
struct TlsBuyer {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    handshakes: Arc<AtomicUsize>,
    pings: Arc<AtomicUsize>,
}

impl TlsBuyer {
    fn start(ca: &Ca) -> TlsBuyer {
        let (cert, key, _) = ca.leaf("buyer");
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let cfg = Arc::new(cfg);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let b = TlsBuyer {
            addr,
            accepts: Arc::default(),
            handshakes: Arc::default(),
            pings: Arc::default(),
        };
        let (accepts, handshakes, pings) =
            (b.accepts.clone(), b.handshakes.clone(), b.pings.clone());
        std::thread::spawn(move || {
            for tcp in l.incoming() {
                let Ok(mut tcp) = tcp else { return };
                accepts.fetch_add(1, Ordering::SeqCst);
                let (cfg, handshakes, pings) = (cfg.clone(), handshakes.clone(), pings.clone());
                std::thread::spawn(move || {
                    let mut conn = rustls::ServerConnection::new(cfg).unwrap();
                    while conn.is_handshaking() {
                        if conn.complete_io(&mut tcp).is_err() {
                            return;
                        }
                    }
                    handshakes.fetch_add(1, Ordering::SeqCst);
                    let mut r = BufReader::new(rustls::StreamOwned::new(conn, tcp));
                    loop {
                        let (mut len, mut is_ping) = (0usize, false);
                        loop {
                            let mut line = String::new();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            is_ping |= line.starts_with("POST /ping");
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap();
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; len];
                        if r.read_exact(&mut body).is_err() {
                            return;
                        }
                        let answer = if is_ping {
                            pings.fetch_add(1, Ordering::SeqCst);
                            r#"{"status":"bid","price":5.00}"#
                        } else {
                            r#"{"status":"accepted"}"#
                        };
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                        let s = r.get_mut();
                        if s.write_all(reply.as_bytes())
                            .and_then(|()| s.flush())
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        b
    }

    fn buyer_toml(&self, id: &str) -> String {
        format!(
            "[[buyer]]\nid = \"{id}\"\nverticals = [\"auto\"]\nping_url = \"https://{a}/ping\"\npost_url = \"https://{a}/post\"\n",
            a = self.addr
        )
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.accepts.load(Ordering::SeqCst),
            self.handshakes.load(Ordering::SeqCst),
        )
    }
}

/// leadx trusting `ca` for its buyers, `server_extra` added to `[server]`;
/// the CA file lives in the returned dir.
fn start_trusting(ca: &Ca, server_extra: &str, buyers: &str) -> (Leadx, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("buyers-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let extra = format!(
        "workers = 2\nbuyer_ca_file = \"{}\"\n{server_extra}\n",
        ca_file.display()
    );
    let l = start_with_text(
        |text| text.replacen("workers = 2\n", &extra, 1),
        buyers,
        Arc::new(ManualClock::at(1_800_000_000_000)),
    );
    (l, dir)
}

/// Exact connection counts need the keep-warm thread off (it replaces
/// connections about to age out, after about 3 s).
const NO_KEEPER: &str = "buyer_keep_warm = false";

fn metric(l: &Leadx, line: &str) -> bool {
    let m = request(l.addr, "GET", "/metrics", &[], b"");
    String::from_utf8_lossy(&m.body).contains(line)
}

/// Fails without warming: the ping would open (accept, handshake) the
/// buyer's first connections itself, on the lead's clock.
#[test]
fn an_https_buyer_is_handshaken_at_start_and_the_first_ping_reuses_it() {
    let ca = Ca::new();
    let buyer = TlsBuyer::start(&ca);
    let (l, _dir) = start_trusting(&ca, NO_KEEPER, &buyer.buyer_toml("warm_start"));
    // ping and post URLs share a host but have a pool each: two.
    assert!(
        eventually(Duration::from_secs(5), || buyer.counts() == (2, 2)),
        "warmed before any lead: {:?}",
        buyer.counts()
    );
    let answer = ping(&l);
    assert_eq!(answer["status"], "bid", "{answer}");
    assert_eq!(buyer.pings.load(Ordering::SeqCst), 1);
    assert_eq!(
        buyer.counts(),
        (2, 2),
        "the first ping opened no connection and made no handshake"
    );
    assert!(metric(
        &l,
        "leadx_buyer_preconnect_total{buyer=\"warm_start\",result=\"warmed\"} 2\n"
    ));
}

#[test]
fn buyer_preconnect_0_warms_nothing() {
    let ca = Ca::new();
    let buyer = TlsBuyer::start(&ca);
    let (l, _dir) = start_trusting(&ca, "buyer_preconnect = 0", &buyer.buyer_toml("warm_zero"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(buyer.counts(), (0, 0));
    assert_eq!(ping(&l)["status"], "bid");
    assert_eq!(buyer.counts(), (1, 1), "the ping connected itself");
}

/// A reload adding an https buyer warms it in the reload thread, before the
/// reload answers; the unchanged buyer's pool is kept, not warmed again.
#[test]
fn a_reload_warms_a_new_https_buyer_and_keeps_unchanged_pools() {
    let ca = Ca::new();
    let first = TlsBuyer::start(&ca);
    let second = TlsBuyer::start(&ca);
    let (l, _dir) = start_trusting(&ca, NO_KEEPER, &first.buyer_toml("reload_a"));
    assert!(eventually(Duration::from_secs(5), || first.counts() == (2, 2)));
    assert_eq!(second.counts(), (0, 0));
    let text = std::fs::read_to_string(&l.config_path).unwrap();
    std::fs::write(&l.config_path, text + &second.buyer_toml("reload_b")).unwrap();
    reload_ok(l.addr);
    assert!(
        eventually(Duration::from_secs(5), || second.counts() == (2, 2)),
        "{:?}",
        second.counts()
    );
    assert_eq!(first.counts(), (2, 2), "reload_a's pools were kept");
    assert_eq!(ping(&l)["status"], "bid");
    assert_eq!(
        (first.counts(), second.counts()),
        ((2, 2), (2, 2)),
        "both pinged on warm connections"
    );
}

/// A buyer host that accepts TCP and never answers the TLS handshake, and
/// one on a closed port: start is not failed and waits at most about
/// `limits::BUYER_PRECONNECT_TIMEOUT_MS` (all hosts at once); each failure
/// is counted.
#[test]
fn a_silent_or_closed_buyer_host_neither_fails_nor_stalls_start() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let buyers: String = (0..6)
        .map(|i| {
            let a = if i % 2 == 0 { silent_addr } else { closed };
            format!(
                "[[buyer]]\nid = \"dead{i}\"\nverticals = [\"auto\"]\nping_url = \"https://{a}/ping\"\npost_url = \"https://{a}/post\"\n"
            )
        })
        .collect();
    let ca = Ca::new();
    let began = Instant::now();
    let (l, _dir) = start_trusting(&ca, NO_KEEPER, &buyers);
    let took = began.elapsed();
    let bound = Duration::from_millis(leadx::limits::BUYER_PRECONNECT_TIMEOUT_MS);
    // Not a speed assert: a serial warm of 12 hosts would take 6 bounds.
    assert!(took < bound * 3, "start took {took:?}");
    assert_eq!(get(l.addr, "/readyz", "").status, 200);
    for i in 0..6 {
        assert!(metric(
            &l,
            &format!("leadx_buyer_preconnect_total{{buyer=\"dead{i}\",result=\"failed\"}} 2\n")
        ));
    }
    drop(silent);
}

/// A quiet spell longer than the pool's idle time-out (4 s): the keep-warm
/// thread has replaced the warmed connection before it aged out, so the
/// first ping after the spell still runs on a pooled one. Fails with
/// `buyer_keep_warm = false`, the default (the ping then connects: created,
/// not reused).
#[test]
fn a_warm_pool_stays_warm_across_a_quiet_spell() {
    let ca = Ca::new();
    let buyer = TlsBuyer::start(&ca);
    let (l, _dir) = start_trusting(
        &ca,
        "buyer_keep_warm = true",
        &buyer.buyer_toml("keep_warm"),
    );
    assert!(eventually(Duration::from_secs(5), || buyer.counts().1 >= 2));
    let idle = Duration::from_millis(leadx::limits::BUYER_IDLE_TIMEOUT_MS);
    std::thread::sleep(idle + Duration::from_millis(1_500));
    assert!(
        buyer.counts().1 > 2,
        "replaced while quiet: {:?}",
        buyer.counts()
    );
    assert_eq!(ping(&l)["status"], "bid");
    let reused = "leadx_buyer_pool_events{buyer=\"keep_warm\",stage=\"ping\",event=\"reused\"} 1\n";
    assert!(metric(&l, reused), "the ping ran on a pooled connection");
}
