//! One lead cycle against the publisher API: what is sent for each mix, and
//! how answers are counted. A cycle is the unit the schedule fixes in time:
//! a healthz call, a ping, a direct post, or a ping then (after the think
//! time, only when it bid) its post.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::http::{self, Conn, HttpError, Response};
use crate::lead::{Consent, FullLead, Lead, PingLead};
use crate::schedule::latency_us;
use crate::stats::Stats;
use crate::target::Target;

/// What traffic a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mix {
    /// `POST /v1/ping` only.
    Ping,
    /// Ping, think, then post the pings that got a bid.
    PingPost,
    /// `POST /v1/leads` (direct post) with an `Idempotency-Key`.
    Direct,
    /// `GET /healthz`: the hello-world baseline.
    Healthz,
}

impl Mix {
    pub fn parse(s: &str) -> Option<Mix> {
        Some(match s {
            "ping" => Mix::Ping,
            "ping-post" => Mix::PingPost,
            "direct" => Mix::Direct,
            "healthz" => Mix::Healthz,
            _ => return None,
        })
    }
}

/// Everything a worker needs to build requests; shared read-only.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub target: Target,
    pub host: String,
    pub auth: String,
    pub vertical: String,
    pub mix: Mix,
    pub think: Duration,
    pub timeout: Duration,
    pub seed: u64,
}

#[derive(Serialize)]
struct PingBody<'a> {
    vertical: &'a str,
    lead: &'a PingLead,
    test: bool,
}

#[derive(Serialize)]
struct PostBody<'a> {
    ping_id: &'a str,
    lead: &'a FullLead,
    consent: &'a Consent,
}

#[derive(Serialize)]
struct DirectBody<'a> {
    vertical: &'a str,
    lead: &'a FullLead,
    consent: &'a Consent,
    test: bool,
}

/// The parts of a publisher-API answer the driver looks at.
#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    ping_id: Option<String>,
}

/// A keep-alive connection slot: connects on first use, forgets the
/// connection after any error so the next call reconnects.
pub struct Slot {
    conn: Option<Conn>,
}

impl Slot {
    pub fn new() -> Slot {
        Slot { conn: None }
    }

    /// Sends one request and reads its answer. No retry: a request that may
    /// have reached the target is never sent twice.
    pub fn exchange(&mut self, ctx: &Ctx, bytes: &[u8]) -> Result<Response, HttpError> {
        if self.conn.is_none() {
            self.conn = Some(Conn::connect(ctx.target.addr, ctx.timeout)?);
        }
        let conn = self.conn.as_mut().expect("just connected");
        let res = conn
            .send(bytes)
            .map_err(HttpError::from)
            .and_then(|_| conn.read_response());
        if !matches!(&res, Ok(r) if !r.close) {
            self.conn = None;
        }
        res
    }
}

impl Default for Slot {
    fn default() -> Self {
        Slot::new()
    }
}

/// The first request of a cycle, built before its intended send time.
pub fn first_request(ctx: &Ctx, lead: &Lead, index: u64) -> Vec<u8> {
    let auth = [("Authorization", ctx.auth.as_str())];
    match ctx.mix {
        Mix::Healthz => http::request("GET", &ctx.host, "/healthz", &[], b""),
        Mix::Ping | Mix::PingPost => {
            let body = PingBody {
                vertical: &ctx.vertical,
                lead: &lead.full.ping,
                test: false,
            };
            http::request("POST", &ctx.host, "/v1/ping", &auth, &to_json(&body))
        }
        Mix::Direct => {
            let body = DirectBody {
                vertical: &ctx.vertical,
                lead: &lead.full,
                consent: &lead.consent,
                test: false,
            };
            let key = format!("lt-{}-{index}", ctx.seed);
            let headers = [auth[0], ("Idempotency-Key", key.as_str())];
            http::request("POST", &ctx.host, "/v1/leads", &headers, &to_json(&body))
        }
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("plain structs always serialize")
}

/// Runs one cycle whose first request is due at `intended` (already reached)
/// and records everything into `stats`.
pub fn run_cycle(
    ctx: &Ctx,
    slot: &mut Slot,
    lead: &Lead,
    first: &[u8],
    intended: Instant,
    stats: &std::sync::Mutex<Stats>,
) {
    let name = match ctx.mix {
        Mix::Healthz => "healthz",
        Mix::Ping | Mix::PingPost => "ping",
        Mix::Direct => "direct",
    };
    let res = slot.exchange(ctx, first);
    let answered = Instant::now();
    let answer = record(
        stats,
        name,
        &res,
        |s, us| s.first.record_us(us),
        latency_us(intended, answered),
    );
    let Some(ping_id) = answer
        .and_then(|a| (ctx.mix == Mix::PingPost && a.status == "bid").then_some(a.ping_id))
        .flatten()
    else {
        return;
    };
    // Think time: the publisher decides to post. Holding the connection
    // meanwhile is what a simple publisher integration does.
    may::coroutine::sleep(ctx.think);
    let post_intended = answered + ctx.think;
    let body = PostBody {
        ping_id: &ping_id,
        lead: &lead.full,
        consent: &lead.consent,
    };
    let req = http::request(
        "POST",
        &ctx.host,
        "/v1/post",
        &[("Authorization", ctx.auth.as_str())],
        &to_json(&body),
    );
    let res = slot.exchange(ctx, &req);
    let done = Instant::now();
    record(
        stats,
        "post",
        &res,
        |s, us| s.post.record_us(us),
        latency_us(post_intended, done),
    );
    if matches!(&res, Ok(r) if r.status == 200) {
        stats
            .lock()
            .expect("stats lock")
            .cycle
            .record_us(latency_us(intended, done));
    }
}

/// Counts one answer (or failure) of `endpoint` and records its latency.
/// Returns the parsed answer of a 200.
fn record(
    stats: &std::sync::Mutex<Stats>,
    endpoint: &str,
    res: &Result<Response, HttpError>,
    hist: impl FnOnce(&mut Stats, u64),
    us: u64,
) -> Option<Answer> {
    let answer = match res {
        Ok(r) if r.status == 200 && endpoint != "healthz" => {
            serde_json::from_slice::<Answer>(&r.body).ok()
        }
        _ => None,
    };
    let mut s = stats.lock().expect("stats lock");
    match res {
        Ok(r) => {
            s.answered += 1;
            hist(&mut s, us);
            if endpoint != "post" {
                match r.status {
                    200 => s.first_ok.record_us(us),
                    503 => s.first_shed.record_us(us),
                    _ => {}
                }
            }
            if !(200..300).contains(&r.status) {
                s.non_2xx += 1;
            }
            let what = answer
                .as_ref()
                .map(|a| a.status.clone())
                .unwrap_or_else(|| r.status.to_string());
            s.count(&format!("{endpoint}:{what}"));
        }
        Err(e) => {
            s.errors += 1;
            s.count(&format!("{endpoint}:{}", e.label()));
        }
    }
    if endpoint == "ping" && matches!(res, Ok(r) if r.status == 200) {
        s.pings += 1;
        s.bids += answer.as_ref().is_some_and(|a| a.status == "bid") as u64;
    }
    answer
}
