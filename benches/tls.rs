//! What HTTPS on the listener costs (contract §12 `[server.tls]`): the CPU
//! of a full handshake and of one request/answer's records, in memory (no
//! sockets: pure rustls work, both ends), and a keep-alive round trip to
//! the real server over loopback, plain against TLS.
//!
//! The server's config is the one leadx builds (`config::Tls::from_pem`:
//! ring, TLS 1.3 + 1.2, ALPN http/1.1), with an ECDSA P-256 certificate
//! from rcgen (what ACME clients issue by default). The client is rustls
//! with the same provider, so a handshake is TLS 1.3, X25519.
//!
//! Run: `cargo bench --bench tls -- --warm-up-time 1 --measurement-time 5`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use leadx::http::server::{self, Handler, Request, Response, ServerOptions, ServerTls};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConnection};

struct Setup {
    server: Arc<rustls::ServerConfig>,
    client: Arc<ClientConfig>,
}

fn setup() -> Setup {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let tls = leadx::config::Tls::from_pem(leaf.pem().as_bytes(), key.serialize_pem().as_bytes())
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    // No resumption: every handshake below is a full one.
    client.resumption = rustls::client::Resumption::disabled();
    Setup {
        server: tls.server_config,
        client: Arc::new(client),
    }
}

/// Moves every byte `from` wants to send into `to`.
fn pump(from: &mut Connection, to: &mut Connection) {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
        to.process_new_packets().unwrap();
    }
}

fn handshake(s: &Setup) -> (Connection, Connection) {
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut c = Connection::from(ClientConnection::new(s.client.clone(), name).unwrap());
    let mut v = Connection::from(ServerConnection::new(s.server.clone()).unwrap());
    while c.is_handshaking() || v.is_handshaking() {
        pump(&mut c, &mut v);
        pump(&mut v, &mut c);
    }
    pump(&mut v, &mut c);
    (c, v)
}

const REQUEST: usize = 704;
const ANSWER: usize = 250;

fn bench_in_memory(c: &mut Criterion) {
    let s = setup();
    let mut group = c.benchmark_group("tls");
    group.bench_function("full handshake, both ends (TLS 1.3, P-256, X25519)", |b| {
        b.iter(|| handshake(&s))
    });
    let (mut client, mut server) = handshake(&s);
    let (req, ans) = (vec![b'r'; REQUEST], vec![b'a'; ANSWER]);
    let mut buf = vec![0u8; 4096];
    group.bench_function(
        format!("records of a {REQUEST} B request + {ANSWER} B answer, both ends"),
        |b| {
            b.iter(|| {
                client.writer().write_all(&req).unwrap();
                pump(&mut client, &mut server);
                let n = server.reader().read(&mut buf).unwrap();
                assert_eq!(n, REQUEST);
                server.writer().write_all(&ans).unwrap();
                pump(&mut server, &mut client);
                let n = client.reader().read(&mut buf).unwrap();
                assert_eq!(n, ANSWER);
            })
        },
    );
    group.finish();
}

struct Ok200;

impl Handler for Ok200 {
    fn handle(&self, _req: &mut Request<'_>) -> Response {
        Response::json(200, vec![b'a'; ANSWER - 80])
    }
}

fn request_bytes() -> Vec<u8> {
    let mut r = b"POST /x HTTP/1.1\r\nHost: leadx\r\n".to_vec();
    let body = vec![b'b'; REQUEST - 60];
    r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    r.extend_from_slice(&body);
    r
}

/// Reads one answer (head + Content-Length body) from `s`.
fn read_answer(s: &mut impl Read, buf: &mut Vec<u8>) {
    buf.clear();
    let mut chunk = [0u8; 2048];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..at])
                .unwrap()
                .to_ascii_lowercase();
            let len: usize = head
                .split("content-length:")
                .nth(1)
                .and_then(|r| r.split("\r\n").next())
                .and_then(|v| v.trim().parse().ok())
                .unwrap();
            if buf.len() >= at + 4 + len {
                return;
            }
        }
    }
}

fn bench_loopback(c: &mut Criterion) {
    let s = setup();
    let start = |tls: Option<Arc<ServerTls>>| {
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let opts = ServerOptions {
            tls,
            ..ServerOptions::default()
        };
        server::start(listener, opts, Arc::new(Ok200)).unwrap()
    };
    let plain = start(None);
    let https = start(Some(Arc::new(ServerTls::new(s.server.clone()))));
    let req = request_bytes();
    let mut buf = Vec::new();
    let mut group = c.benchmark_group("tls loopback keep-alive round trip");
    let mut tcp = TcpStream::connect(plain.local_addr()).unwrap();
    tcp.set_nodelay(true).unwrap();
    group.bench_function("plain HTTP", |b| {
        b.iter(|| {
            tcp.write_all(&req).unwrap();
            read_answer(&mut tcp, &mut buf);
        })
    });
    let connect = || {
        let tcp = TcpStream::connect(https.local_addr()).unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = ClientConnection::new(s.client.clone(), name).unwrap();
        let mut t = rustls::StreamOwned::new(conn, tcp);
        while t.conn.is_handshaking() {
            t.conn.complete_io(&mut t.sock).unwrap();
        }
        t
    };
    let mut t = connect();
    group.bench_function("HTTPS", |b| {
        b.iter(|| {
            t.write_all(&req).unwrap();
            t.flush().unwrap();
            read_answer(&mut t, &mut buf);
        })
    });
    group.bench_function("HTTPS new connection: TCP + handshake + one request", |b| {
        b.iter(|| {
            let mut t = connect();
            t.write_all(&req).unwrap();
            t.flush().unwrap();
            read_answer(&mut t, &mut buf);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_in_memory, bench_loopback);
criterion_main!(benches);
