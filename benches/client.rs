//! Buyer client round trip: one keep-alive POST to a loopback mock buyer,
//! plain and over TLS, from inside a leadx coroutine. Besides criterion's
//! wall-clock numbers it prints the client's CPU time per call, read with
//! getrusage(RUSAGE_THREAD) on the single may worker the calls run on (the
//! mock buyer's own CPU is on another thread and not counted).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use leadx::http::client::{BuyerClient, ClientOptions};

const BID: &str = r#"{"status":"bid","price":12.50,"ref":"r-1234"}"#;
const PING: &[u8] = br#"{"ping_id":"p-0123456789","vertical":"auto_insurance","lead":{"zip":"90210","state":"CA","age":34},"test":false}"#;

/// A keep-alive mock buyer on its own threads; returns its base URL.
fn mock_buyer(tls: Option<Arc<rustls::ServerConfig>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            tcp.set_nodelay(true).unwrap();
            let tls = tls.clone();
            std::thread::spawn(move || match tls {
                Some(cfg) => serve(rustls::StreamOwned::new(
                    rustls::ServerConnection::new(cfg).unwrap(),
                    tcp,
                )),
                None => serve(tcp),
            });
        }
    });
    format!("{scheme}://{addr}/ping")
}

fn serve<S: Read + Write>(stream: S) {
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BID}",
        BID.len()
    );
    let mut rd = BufReader::new(stream);
    let mut line = String::new();
    loop {
        let mut len = 0;
        loop {
            line.clear();
            if rd.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        if rd.read_exact(&mut body).is_err() || rd.get_mut().write_all(answer.as_bytes()).is_err() {
            return;
        }
        let _ = rd.get_mut().flush();
    }
}

fn tls_server() -> (Arc<rustls::ServerConfig>, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der());
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key.into())
    .unwrap();
    (Arc::new(cfg), ck.cert.pem().into_bytes())
}

fn client(tls: bool) -> Arc<BuyerClient> {
    let (cfg, pem) = match tls {
        true => {
            let (cfg, pem) = tls_server();
            (Some(cfg), Some(pem))
        }
        false => (None, None),
    };
    let url = leadx::http::url::parse(&mock_buyer(cfg)).unwrap();
    let opts = ClientOptions {
        extra_root_pem: pem,
        ..ClientOptions::default()
    };
    Arc::new(BuyerClient::new(&url, opts).unwrap())
}

/// `n` sequential calls in one coroutine: (wall time, this thread's CPU).
fn run(c: &Arc<BuyerClient>, n: u64) -> (Duration, Duration) {
    let c = c.clone();
    leadx::rt::spawn(move || {
        let cpu0 = thread_cpu();
        let start = Instant::now();
        run_in_place(&c, n);
        (start.elapsed(), thread_cpu() - cpu0)
    })
    .join()
    .unwrap()
}

/// `coroutines` × `each` calls, all in flight together on the one worker:
/// (wall time, the worker's CPU). Closer to production, where a worker is
/// rarely idle, than one call after another.
fn run_parallel(c: &Arc<BuyerClient>, coroutines: usize, each: u64) -> (Duration, Duration) {
    let c = c.clone();
    leadx::rt::spawn(move || {
        let cpu0 = thread_cpu();
        let start = Instant::now();
        let handles: Vec<_> = (0..coroutines)
            .map(|_| {
                let c = c.clone();
                leadx::rt::spawn(move || run_in_place(&c, each))
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        (start.elapsed(), thread_cpu() - cpu0)
    })
    .join()
    .unwrap()
}

fn run_in_place(c: &BuyerClient, n: u64) {
    for _ in 0..n {
        let r = c
            .post(
                "/ping",
                &[],
                "application/json",
                PING,
                Instant::now() + Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(r.status, 200);
    }
}

fn report(name: &str, calls: u64, (wall, cpu): (Duration, Duration)) {
    println!(
        "{name}: {calls} calls, {:.1} us wall/call, {:.1} us worker CPU/call",
        wall.as_secs_f64() * 1e6 / calls as f64,
        cpu.as_secs_f64() * 1e6 / calls as f64
    );
}

/// User + system CPU time of the calling OS thread.
fn thread_cpu() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given,
    // which points at a zeroed, properly aligned rusage we own.
    #[allow(unsafe_code)]
    let ru = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr()), 0);
        ru.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn bench_client(crit: &mut Criterion) {
    // One worker: every call runs on the same OS thread, so RUSAGE_THREAD
    // sees all of the client's CPU.
    leadx::rt::configure(1);
    for (name, tls) in [
        ("post_keepalive_http", false),
        ("post_keepalive_https", true),
    ] {
        let c = client(tls);
        run(&c, 100); // warm: connect, handshake
        report(&format!("{name} sequential"), 20_000, run(&c, 20_000));
        report(
            &format!("{name} 32 in flight"),
            32 * 1000,
            run_parallel(&c, 32, 1000),
        );
        let st = c.stats();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "{name} pool: created {} reused {} closed {}",
            load(&st.created),
            load(&st.reused),
            load(&st.closed)
        );
        crit.bench_function(name, |b| b.iter_custom(|iters| run(&c, iters).0));
    }
}

criterion_group!(benches, bench_client);
criterion_main!(benches);
