//! Simulated buyers: small HTTP servers on loopback (leadx's own HTTP
//! layer with a random-but-plausible handler) that bid, refuse, answer
//! slowly and accept like real buyers. `leadx demo` runs the exchange
//! against them; a `sandbox = true` publisher (contract §13) is served by
//! them only (`exchange::sandbox`), through the same fan-out, pools and
//! deadlines as production.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::http::server::{self, Handler, Request, Response, ServerHandle, ServerOptions};

/// How one simulated buyer behaves.
#[derive(Clone, Copy)]
pub struct SimBuyer {
    pub delay_ms_min: u64,
    pub delay_ms_max: u64,
    /// Out of 100.
    pub bid_pct: u64,
    pub price_cents_min: u64,
    pub price_cents_max: u64,
    /// Out of 100.
    pub accept_pct: u64,
}

/// The demo's ping buyers, by id: fast and cheap to slow and dear.
pub const BUYERS: [(&str, SimBuyer); 4] = [
    (
        "acme_auto",
        SimBuyer {
            delay_ms_min: 20,
            delay_ms_max: 80,
            bid_pct: 90,
            price_cents_min: 800,
            price_cents_max: 1400,
            accept_pct: 85,
        },
    ),
    (
        "bluebird",
        SimBuyer {
            delay_ms_min: 40,
            delay_ms_max: 140,
            bid_pct: 75,
            price_cents_min: 900,
            price_cents_max: 1600,
            accept_pct: 70,
        },
    ),
    (
        "carrier_one",
        SimBuyer {
            delay_ms_min: 10,
            delay_ms_max: 40,
            bid_pct: 60,
            price_cents_min: 500,
            price_cents_max: 1100,
            accept_pct: 95,
        },
    ),
    (
        "slowpoke",
        SimBuyer {
            delay_ms_min: 150,
            delay_ms_max: 450,
            bid_pct: 80,
            price_cents_min: 1500,
            price_cents_max: 2500,
            accept_pct: 90,
        },
    ),
];

/// A simulated buyer speaking the native protocol (`/ping`, `/post`), a
/// form post answered in plain text `OK:<id>` / `ERR:<reason>` (`/form`),
/// or XML with its own status words and the price in an attribute
/// (`/xml/ping`, `/xml/post`) — the demo's spec buyers, contract §9.
pub struct SimHandler {
    pub sim: SimBuyer,
    seed: AtomicU64,
    leads: AtomicU64,
}

impl SimHandler {
    pub fn new(sim: SimBuyer, seed: u64) -> SimHandler {
        SimHandler {
            sim,
            seed: AtomicU64::new(seed | 1),
            leads: AtomicU64::new(0),
        }
    }

    fn roll(&self, n: u64) -> u64 {
        // xorshift: good enough for a simulation, lock-free across coroutines.
        let mut x = self.seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.store(x, Ordering::Relaxed);
        x % n.max(1)
    }
}

impl Handler for SimHandler {
    fn handle(&self, req: &mut Request<'_>) -> Response {
        let s = self.sim;
        let delay = s.delay_ms_min + self.roll(s.delay_ms_max - s.delay_ms_min + 1);
        crate::sync::sleep(Duration::from_millis(delay));
        let body = match req.path {
            "/ping" if self.roll(100) < s.bid_pct => {
                let cents =
                    s.price_cents_min + self.roll(s.price_cents_max - s.price_cents_min + 1);
                format!(
                    r#"{{"status":"bid","price":{}.{:02},"ref":"r{}"}}"#,
                    cents / 100,
                    cents % 100,
                    self.roll(1_000_000)
                )
            }
            "/ping" => r#"{"status":"no_bid"}"#.to_string(),
            "/post" if self.roll(100) < s.accept_pct => {
                let n = self.leads.fetch_add(1, Ordering::Relaxed);
                format!(r#"{{"status":"accepted","lead_id":"sim-{n}"}}"#)
            }
            "/post" => r#"{"status":"rejected","reason":"filtered"}"#.to_string(),
            "/xml/ping" | "/xml/post" => return xml_answer(self, req.path == "/xml/ping"),
            "/form" => {
                let text = if self.roll(100) < s.accept_pct {
                    format!("OK:sim-{}", self.leads.fetch_add(1, Ordering::Relaxed))
                } else {
                    "ERR:filtered".to_string()
                };
                return Response {
                    status: 200,
                    content_type: "text/plain",
                    headers: Vec::new(),
                    body: text.into_bytes(),
                };
            }
            _ => {
                return Response {
                    status: 404,
                    content_type: "application/json",
                    headers: Vec::new(),
                    body: b"{}".to_vec(),
                }
            }
        };
        Response {
            status: 200,
            content_type: "application/json",
            headers: Vec::new(),
            body: body.into_bytes(),
        }
    }
}

/// The XML buyer's answer: `<QuoteResponse status="Accepted">` with
/// `<Offer price="12.50" token="…"/>` to a ping, `status="Sold"` with an
/// `<Id>` to a post; `Declined` / `Rejected` with a `<Message>` otherwise.
fn xml_answer(h: &SimHandler, ping: bool) -> Response {
    let s = h.sim;
    let body = if ping && h.roll(100) < s.bid_pct {
        let cents = s.price_cents_min + h.roll(s.price_cents_max - s.price_cents_min + 1);
        format!(
            r#"<?xml version="1.0"?><QuoteResponse status="Accepted"><Offer price="{}.{:02}" token="q{}"/></QuoteResponse>"#,
            cents / 100,
            cents % 100,
            h.roll(1_000_000)
        )
    } else if ping {
        r#"<QuoteResponse status="Declined"><Message>no coverage there</Message></QuoteResponse>"#
            .to_string()
    } else if h.roll(100) < s.accept_pct {
        let n = h.leads.fetch_add(1, Ordering::Relaxed);
        format!(r#"<QuoteResponse status="Sold"><Id>xml-{n}</Id></QuoteResponse>"#)
    } else {
        r#"<QuoteResponse status="Rejected"><Message>filtered</Message></QuoteResponse>"#
            .to_string()
    };
    Response {
        status: 200,
        content_type: "application/xml",
        headers: Vec::new(),
        body: body.into_bytes(),
    }
}

/// Starts one simulated buyer on an ephemeral loopback port.
pub fn start_buyer(sim: SimBuyer, seed: u64) -> std::io::Result<ServerHandle> {
    let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    server::start(
        listener,
        ServerOptions::default(),
        Arc::new(SimHandler::new(sim, seed)),
    )
}

/// The sandbox's buyers: the demo's ping buyers and one that always bids
/// its fixed range and always accepts, so a sandbox lead can always sell.
pub const SANDBOX_ALWAYS: (&str, SimBuyer) = (
    "steady",
    SimBuyer {
        delay_ms_min: 5,
        delay_ms_max: 30,
        bid_pct: 100,
        price_cents_min: 300,
        price_cents_max: 400,
        accept_pct: 100,
    },
);

/// The sandbox's simulated buyers as (id, address): started once per
/// process, on first use, and kept for its life (a reload reuses them, so
/// a request on the old config still reaches a live buyer).
pub fn sandbox_buyers() -> Result<&'static [(&'static str, SocketAddr)], String> {
    static BUYERS_RUNNING: OnceLock<Result<Running, String>> = OnceLock::new();
    BUYERS_RUNNING
        .get_or_init(|| {
            let mut running = Running::default();
            let all = BUYERS.iter().chain(std::iter::once(&SANDBOX_ALWAYS));
            for (i, (id, sim)) in all.enumerate() {
                let h = start_buyer(*sim, 0x5a4d_b0c5 + i as u64)
                    .map_err(|e| format!("starting simulated buyer {id}: {e}"))?;
                running.addrs.push((*id, h.local_addr()));
                running.handles.push(h);
            }
            Ok(running)
        })
        .as_ref()
        .map(|r| r.addrs.as_slice())
        .map_err(Clone::clone)
}

#[derive(Default)]
struct Running {
    addrs: Vec<(&'static str, SocketAddr)>,
    handles: Vec<ServerHandle>,
}
