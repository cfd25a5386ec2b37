//! The buyer fleet's I/O: one may listener per buyer on 127.0.0.1, one
//! coroutine per keep-alive connection, latency simulated with coroutine
//! sleeps so a thousand slow answers in flight cost memory, not threads.
//!
//! Accepted connections carry no may socket timeout: may 0.3.51's per-socket
//! io timers are not safe when completions race across worker threads (it
//! panics in its timer list and can corrupt the heap; evidence and the stress
//! program in docs/performance.md, "A crash under load"). A connection ends
//! when leadx closes it or the fleet's bounded lifetime ends.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{render, Action, BuyerSpec, Call, FleetSpec, Reply};
use crate::http::{Conn, HttpError};
use crate::rng::Rng;
use crate::{limits, rt, Error};

/// What one buyer has done so far.
#[derive(Debug, Default)]
pub struct Counters {
    pub pings: AtomicU64,
    pub posts: AtomicU64,
    pub bids: AtomicU64,
    pub no_bids: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub faults: AtomicU64,
    pub connections: AtomicU64,
    /// Connections open right now.
    pub open: AtomicUsize,
}

/// A snapshot of `Counters` for printing.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub id: String,
    pub pings: u64,
    pub posts: u64,
    pub bids: u64,
    pub no_bids: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub faults: u64,
    pub connections: u64,
}

/// One listening buyer (also what the fleet prints and the orchestrator
/// reads back).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listening {
    pub id: String,
    pub port: u16,
    pub ping_url: String,
    pub post_url: String,
    #[serde(skip, default)]
    pub counters: Arc<Counters>,
}

impl Listening {
    pub fn snapshot(&self) -> CounterSnapshot {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            id: self.id.clone(),
            pings: g(&c.pings),
            posts: g(&c.posts),
            bids: g(&c.bids),
            no_bids: g(&c.no_bids),
            accepted: g(&c.accepted),
            rejected: g(&c.rejected),
            faults: g(&c.faults),
            connections: g(&c.connections),
        }
    }
}

/// Binds every buyer of the fleet and starts serving. The listeners live as
/// long as the process (the fleet command bounds that).
pub fn start(spec: &FleetSpec) -> Result<Vec<Listening>, Error> {
    let mut out = Vec::with_capacity(spec.buyers.len());
    for (i, b) in spec.buyers.iter().enumerate() {
        let port = if spec.base_port == 0 {
            0
        } else {
            spec.base_port + i as u16
        };
        let listener = may::net::TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| Error::io(format!("binding buyer {} on 127.0.0.1:{port}", b.id), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("local_addr", e))?
            .port();
        let counters = Arc::new(Counters::default());
        let base = format!("http://127.0.0.1:{port}");
        out.push(Listening {
            id: b.id.clone(),
            port,
            ping_url: format!("{base}/ping"),
            post_url: format!("{base}/post"),
            counters: counters.clone(),
        });
        let (spec, seed) = (b.clone(), spec.seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
        rt::spawn(move || accept_loop(listener, Arc::new(spec), seed, counters));
    }
    Ok(out)
}

fn accept_loop(
    listener: may::net::TcpListener,
    spec: Arc<BuyerSpec>,
    seed: u64,
    counters: Arc<Counters>,
) {
    let mut n = 0u64;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if counters.open.load(Ordering::Relaxed) >= limits::BUYER_CONNECTIONS_MAX {
            continue; // dropped: over the connection bound
        }
        counters.open.fetch_add(1, Ordering::Relaxed);
        counters.connections.fetch_add(1, Ordering::Relaxed);
        let (spec, counters) = (spec.clone(), counters.clone());
        let rng = Rng::derive(seed, n);
        n += 1;
        rt::spawn(move || {
            if let Ok(conn) = buyer_conn(stream) {
                serve_connection(conn, &spec, rng, &counters);
            }
            counters.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Wraps an accepted connection. No read or write timeout (see the module
/// doc): arming one would put every wait of this connection on may's io
/// timer list, whose bookkeeping races across workers.
pub(crate) fn buyer_conn(stream: may::net::TcpStream) -> std::io::Result<Conn> {
    Conn::new(stream, None)
}

/// Serves calls on one connection until the peer closes, an error, or a
/// fault that ends the connection.
fn serve_connection(mut conn: Conn, spec: &BuyerSpec, mut rng: Rng, c: &Counters) {
    let mut seq = 0u64;
    loop {
        let req = match conn.read_request() {
            Ok(Some(r)) => r,
            Ok(None)
            | Err(
                HttpError::Timeout | HttpError::Closed | HttpError::Io(_) | HttpError::Malformed(_),
            ) => return,
        };
        let call = Call::from_request(&req.method, &req.path);
        let action = spec.decide(&mut rng, call);
        count(c, call, action.reply);
        seq += 1;
        if !answer(&mut conn, spec, action, seq) || req.close {
            return;
        }
    }
}

/// Carries out one action; false when the connection must end.
fn answer(conn: &mut Conn, spec: &BuyerSpec, action: Action, seq: u64) -> bool {
    may::coroutine::sleep(action.delay);
    match action.reply {
        Reply::Hang => false, // held for `delay` (hang_ms) without a word, then closed
        Reply::Reset => {
            // Linger 0 makes close() send RST instead of FIN.
            let _ = socket2::SockRef::from(conn.stream().inner()).set_linger(Some(Duration::ZERO));
            false
        }
        reply => match render(reply, &spec.id, seq) {
            Some(bytes) => conn.send(&bytes).is_ok(),
            None => false,
        },
    }
}

fn count(c: &Counters, call: Call, reply: Reply) {
    let inc = |a: &AtomicU64| {
        a.fetch_add(1, Ordering::Relaxed);
    };
    match call {
        Call::Ping => inc(&c.pings),
        Call::Post => inc(&c.posts),
        Call::Health | Call::Other => {}
    }
    match reply {
        Reply::Bid { .. } => inc(&c.bids),
        Reply::NoBid => inc(&c.no_bids),
        Reply::Accepted => inc(&c.accepted),
        Reply::Rejected => inc(&c.rejected),
        Reply::Http500 | Reply::Garbage | Reply::Hang | Reply::Reset => inc(&c.faults),
        Reply::NotFound | Reply::Healthy => {}
    }
}
