//! Contract §12 `[server.tls]`, over real sockets: leadx serving HTTPS with
//! a certificate from a test CA (rcgen), a rustls client trusting that CA.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadx::clock::ManualClock;
use rustls::pki_types::ServerName;

use crate::privacy::start_with_text;
use crate::support::*;

/// A test CA that signs leaf certificates for 127.0.0.1.
pub struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    pub fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "leadx test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A leaf for 127.0.0.1 named `cn`: (cert PEM, key PEM, cert DER).
    pub fn leaf(&self, cn: &str) -> (String, String, Vec<u8>) {
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    /// The CA certificate, PEM (for `server.buyer_ca_file`).
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A rustls client config trusting only this CA, offering `http/1.1`.
    pub fn client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

pub type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A handshaken HTTPS connection to `addr`.
pub fn connect(addr: SocketAddr, cfg: &Arc<rustls::ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s
}

/// The leaf certificate the server presented.
pub fn presented(s: &Tls) -> Vec<u8> {
    s.conn.peer_certificates().unwrap()[0].as_ref().to_vec()
}

/// One keep-alive request on `s`; reads exactly one answer.
pub fn call(s: &mut Tls, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: leadx\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    s.flush().unwrap();
    let mut raw = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "closed before an answer");
        raw.extend_from_slice(&b[..n]);
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let reply = parse_reply(&raw);
            let len: usize = reply
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if raw.len() >= split + 4 + len {
                return reply;
            }
        }
    }
}

/// Writes the CA's leaf `cn` to dir/cert.pem and dir/key.pem; its DER.
fn write_leaf(ca: &Ca, dir: &Path, cn: &str) -> Vec<u8> {
    let (cert, key, der) = ca.leaf(cn);
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    der
}

/// leadx with `[server.tls]` on files in a fresh dir (kept alive by the
/// returned TempDir), with `server_extra` added to `[server]`.
fn start_tls(ca: &Ca, server_extra: &str) -> (Leadx, tempfile::TempDir, Vec<u8>) {
    let certs = tempfile::tempdir().unwrap();
    let der = write_leaf(ca, certs.path(), "leadx-1");
    let tls = format!(
        "workers = 2\n{server_extra}\n[server.tls]\ncert = \"{c}\"\nkey = \"{k}\"\n",
        c = certs.path().join("cert.pem").display(),
        k = certs.path().join("key.pem").display(),
    );
    let l = start_with_text(
        |text| text.replacen("workers = 2\n", &tls, 1),
        "",
        Arc::new(ManualClock::at(1_800_000_000_000)),
    );
    (l, certs, der)
}

#[test]
fn https_serves_health_and_a_ping_to_a_client_trusting_the_ca() {
    let ca = Ca::new();
    let (l, _certs, der) = start_tls(&ca, "");
    let client = ca.client();
    let mut s = connect(l.addr, &client);
    assert_eq!(presented(&s), der);
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(call(&mut s, "GET", "/healthz", &[], b"").status, 200);
    let auth = format!("Bearer {KEY}");
    let body = serde_json::json!({"vertical": "auto", "lead": ping_lead()}).to_string();
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = call(&mut s, "POST", "/v1/ping", &headers, body.as_bytes());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["ping_id"].is_string(), "{}", r.json());
}

#[test]
fn plain_http_on_the_tls_port_gets_a_plain_400_and_silence_is_closed() {
    let ca = Ca::new();
    let (l, _certs, _) = start_tls(&ca, "idle_timeout_ms = 300\nrequest_timeout_ms = 300");
    let r = request(l.addr, "GET", "/healthz", &[], b"");
    assert_eq!(r.status, 400);
    assert!(
        String::from_utf8_lossy(&r.body).contains("HTTPS"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // A client that opens TCP and never speaks TLS is closed like a
    // slowloris, after the handshake's deadline.
    let mut silent = TcpStream::connect(l.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut b = [0u8; 16];
    let n = silent.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A hello trickled byte by byte is bounded by the same deadline.
    let mut trickle = TcpStream::connect(l.addr).unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    for byte in [0x16u8, 0x03, 0x01, 0x00, 0x50, 0x01] {
        if trickle.write_all(&[byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = trickle.read(&mut b);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The server still works.
    let mut s = connect(l.addr, &ca.client());
    assert_eq!(call(&mut s, "GET", "/healthz", &[], b"").status, 200);
}

#[test]
fn a_reloaded_certificate_reaches_new_connections_and_open_ones_keep_working() {
    let ca = Ca::new();
    let (l, certs, first) = start_tls(&ca, "");
    let client = ca.client();
    let mut before = connect(l.addr, &client);
    assert_eq!(call(&mut before, "GET", "/healthz", &[], b"").status, 200);
    let second = write_leaf(&ca, certs.path(), "leadx-2");
    assert_ne!(first, second);
    let auth = format!("Bearer {ADMIN}");
    let mut admin = connect(l.addr, &client);
    let r = call(
        &mut admin,
        "POST",
        "/v1/admin/reload",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let after = connect(l.addr, &client);
    assert_eq!(
        presented(&after),
        second,
        "a new connection sees the new certificate"
    );
    assert_eq!(presented(&before), first);
    assert_eq!(
        call(&mut before, "GET", "/healthz", &[], b"").status,
        200,
        "the connection opened before the reload still works"
    );
}

#[test]
fn bad_tls_files_are_config_errors_naming_the_key() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    write_leaf(&ca, dir.path(), "leadx-1");
    let (_, other_key, _) = ca.leaf("other");
    std::fs::write(dir.path().join("other.pem"), other_key).unwrap();
    std::fs::write(dir.path().join("junk.pem"), "not pem at all").unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let cases = [
        (
            p("missing.pem"),
            p("key.pem"),
            "server.tls.cert",
            "cannot read",
        ),
        (
            p("junk.pem"),
            p("key.pem"),
            "server.tls.cert",
            "no PEM certificate",
        ),
        (
            p("cert.pem"),
            p("missing.pem"),
            "server.tls.key",
            "cannot read",
        ),
        (
            p("cert.pem"),
            p("junk.pem"),
            "server.tls.key",
            "no PEM private key",
        ),
        (
            p("cert.pem"),
            p("other.pem"),
            "server.tls.key",
            "does not match",
        ),
        (
            p("key.pem"),
            p("key.pem"),
            "server.tls.cert",
            "no PEM certificate",
        ),
    ];
    for (cert, key, want_key, want) in cases {
        let text = base_toml(&dir.path().join("data"), "", "").replacen(
            "workers = 2\n",
            &format!("workers = 2\n[server.tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n"),
            1,
        );
        let errors = leadx::config::parse(&text, &|_| None).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.key == want_key && e.message.contains(want)),
            "{cert} {key}: {errors:?}"
        );
        for e in &errors {
            assert!(!e.message.contains("PRIVATE KEY-----"), "{e}");
        }
    }
}

#[test]
fn the_key_may_come_inline_from_a_secret_and_an_expired_cert_is_a_warning() {
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    let text = base_toml(&dir.path().join("data"), "", "").replacen(
        "workers = 2\n",
        &format!(
            "workers = 2\n[server.tls]\ncert = \"{}\"\nkey = \"${{TLS_KEY}}\"\n",
            dir.path().join("cert.pem").display()
        ),
        1,
    );
    let pem = key.serialize_pem();
    let config = leadx::config::parse(&text, &|name| (name == "TLS_KEY").then(|| pem.clone()))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let tls = config.server.tls.as_ref().unwrap();
    assert_eq!(tls.key_path, None);
    assert!(!format!("{config:?}").contains("PRIVATE"));
    let warnings = config.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("server.tls.cert:") && w.contains("expired on 2001-01-01")),
        "{warnings:?}"
    );
}
