//! What warming saves the first ping to an https buyer (issue #9): a TLS
//! buyer on loopback (a test CA from rcgen, answering a bid at once); for
//! each of `ROUNDS` fresh `BuyerClient`s, the first call's latency, cold
//! (it connects and handshakes on the call's clock) and warmed
//! (`BuyerClient::warm` first, as `exchange::preconnect` does at start and
//! reload). Prints p50/p90/max of each.
//!
//!     cargo run --release --example preconnect_first_ping -- [ROUNDS]
//!
//! A measurement, not a test: results go to docs/performance.md with the
//! machine and date. Loopback has no network round trip; a real buyer adds
//! one RTT for TCP and one or two for TLS on the cold path.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadx::http::client::{BuyerClient, ClientOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let (ca_pem, server) = test_ca_and_server_config();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || serve(l, server));
    let url = leadx::http::url::parse(&format!("https://{addr}/ping")).unwrap();
    let opts = ClientOptions {
        extra_root_pem: Some(ca_pem.into_bytes()),
        ..ClientOptions::default()
    };
    leadx::rt::configure(2);
    let mut cold = Vec::with_capacity(rounds);
    let mut warm = Vec::with_capacity(rounds);
    for i in 0..rounds * 2 {
        let c = Arc::new(BuyerClient::new(&url, opts.clone()).unwrap());
        let warmed = i % 2 == 1;
        let us = leadx::rt::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(5);
            if warmed {
                c.warm(1, Duration::from_secs(4), deadline).unwrap();
            }
            let t = Instant::now();
            let r = c.post("/ping", &[], "application/json", b"{}", deadline);
            assert_eq!(r.map(|r| r.status), Ok(200));
            t.elapsed().as_micros() as u64
        })
        .join()
        .unwrap();
        if warmed { &mut warm } else { &mut cold }.push(us);
    }
    for (name, v) in [
        ("cold (connect + TLS on the call)", &mut cold),
        ("warmed", &mut warm),
    ] {
        v.sort_unstable();
        let q = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
        println!(
            "{name:<34} n={} p50={} µs p90={} µs max={} µs",
            v.len(),
            q(50),
            q(90),
            v[v.len() - 1]
        );
    }
}

fn test_ca_and_server_config() -> (String, Arc<rustls::ServerConfig>) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = params.self_signed(&ca_key).unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(leaf.pem().as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(leaf_key.serialize_pem().as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    (ca.pem(), Arc::new(server))
}

/// Answers every request on every connection with a bid, keep-alive.
fn serve(l: TcpListener, cfg: Arc<rustls::ServerConfig>) {
    for tcp in l.incoming() {
        let Ok(tcp) = tcp else { return };
        // Like a real buyer's server; Nagle would add 40 ms here.
        let _ = tcp.set_nodelay(true);
        let cfg = cfg.clone();
        std::thread::spawn(move || {
            let conn = rustls::ServerConnection::new(cfg).unwrap();
            let mut r = BufReader::new(rustls::StreamOwned::new(conn, tcp));
            loop {
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                let answer = r#"{"status":"bid","price":5.00}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
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
}
