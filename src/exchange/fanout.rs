//! The ping auction: every eligible buyer is called at once, each in its own
//! coroutine on coroutine-aware sockets, and the answers come back over a
//! channel until the auction's deadline. The deadline starts when the
//! request arrived; each buyer gets min(its own time-out, the time left
//! minus a response margin); the answer goes out at the deadline whatever
//! the buyers do, and answers that come later are dropped and counted.
//!
//! The answers gather on a shared board, and the auction's coroutine parks
//! ONCE: until the last call has answered or the deadline, whichever comes
//! first. A timed wait per answer cost a may timer-thread wake-up each
//! (may wakes its timer thread on every timer cancelled early), which was
//! the largest single cost of a ping after the HTTP exchanges themselves.
//!
//! A buyer with a `[buyer.ping]` spec (contract §9) gets its own request,
//! rendered here before its call is spawned (pure, about a microsecond) and
//! its answer read by its `SpecIntegration`; native buyers share one body.
//!
//! Each call holds one of the ping's buyer-call permits (`admission`) until
//! it ends, answered or not, so the calls a late buyer keeps open count
//! against the budget; without a permit for every call, nobody is called.

use std::sync::Arc;

use crate::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auction::{self, Bid};
use crate::buyer::spec::{BidRead, Request, Vars};
use crate::buyer::{BidAnswer, PingCtx};
use crate::clock::Clock;
use crate::config::Publisher;
use crate::exchange::admission::{Budgets, Permit};
use crate::exchange::{BuyerRt, Exchange, Runtime};
use crate::lead::Lead;
use crate::limits;
use crate::metrics::{self, PingResult, ShedReason};
use crate::money::Cents;
use crate::records::{CallOutcome, CallRecord, CallStage};
use crate::routing::{self, gate::GatePermit, Reason};

/// One auction to run.
pub struct AuctionInput<'a> {
    pub ping_id: &'a str,
    pub publisher: &'a Publisher,
    pub vertical: &'a str,
    pub lead: &'a Lead,
    pub test: bool,
    pub floor: Option<Cents>,
    /// When the request arrived: the deadline counts from here.
    pub started: Instant,
}

/// Ranked bids (best first, floor applied) and what every buyer did.
pub struct AuctionResult {
    pub bids: Vec<Bid>,
    pub calls: Vec<CallRecord>,
}

/// What one buyer's call came to.
enum Answer {
    Bid {
        price: Cents,
        buyer_ref: Option<String>,
    },
    /// With the buyer's own words for it, when a spec reads them.
    NoBid { reason: Option<String> },
    Failed {
        outcome: CallOutcome,
        reason: &'static str,
    },
}

/// What one call sends: the shared native body and its content type, or
/// the buyer's own rendered request (`Err`: it could not be rendered).
enum Outgoing {
    Native(Arc<Vec<u8>>, &'static str),
    Spec(Result<Request, &'static str>),
}

struct Reply {
    buyer: usize,
    answer: Answer,
    latency_us: u64,
}

/// Where the calls of one auction leave their answers. The lock is held
/// for a push or a take, never across a yield.
struct Board {
    state: Mutex<BoardState>,
}

struct BoardState {
    replies: Vec<Reply>,
    /// Calls that have not answered yet.
    pending: usize,
    /// Set at the deadline: later answers are dropped and counted.
    closed: bool,
}

impl Board {
    fn new(pending: usize) -> Arc<Board> {
        Arc::new(Board {
            state: Mutex::new(BoardState {
                replies: Vec::with_capacity(pending),
                pending,
                closed: false,
            }),
        })
    }

    /// Leaves a call's answer; `Ok(true)` when it was the last one,
    /// `Err(())` when the auction had already closed.
    fn post(&self, reply: Reply) -> Result<bool, ()> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(());
        }
        st.replies.push(reply);
        st.pending -= 1;
        Ok(st.pending == 0)
    }

    /// Closes the auction and takes what came in, in arrival order.
    fn close(&self) -> (Vec<Reply>, usize) {
        let mut st = self.state.lock();
        st.closed = true;
        (std::mem::take(&mut st.replies), st.pending)
    }
}

/// Runs the auction; `Err` (nothing called) when the buyer-call budget has
/// no room for every buyer it would call.
pub fn run(
    ex: &Exchange,
    rt: &Arc<Runtime>,
    input: &AuctionInput<'_>,
) -> Result<AuctionResult, ShedReason> {
    let deadline = input.started + Duration::from_millis(rt.config.auction.ping_timeout_ms);
    let answer_by = deadline - Duration::from_millis(limits::RESPONSE_MARGIN_MS);
    let now = ex.now_ms();
    let mut calls = Vec::new();
    let mut bids = Vec::new();
    let mut to_call = Vec::new();
    for (i, brt) in rt.buyers.iter().enumerate() {
        let buyer = &brt.cfg;
        let gate = match admit(brt, input, now, answer_by) {
            Ok(gate) => gate,
            Err(reason) => {
                super::report::buyer_skip(&brt.metrics, input.test, reason);
                calls.push(skip_record(&buyer.id, reason.as_str()));
                continue;
            }
        };
        if brt.ping.is_none() {
            // A direct-post buyer bids its fixed price without a call.
            let price = buyer.fixed_price.unwrap_or(0);
            bids.push(Bid::new(
                i,
                price,
                input.publisher.revenue_share_ppm,
                buyer.priority,
                0,
                None,
            ));
            calls.push(CallRecord {
                buyer: buyer.id.clone(),
                stage: CallStage::Ping,
                outcome: CallOutcome::FixedPrice,
                reason: None,
                latency_us: 0,
                price: Some(price),
            });
            continue;
        }
        to_call.push((i, gate));
    }
    let permits = ex
        .admission
        .ping_calls(&Budgets::of(&rt.config.server), to_call.len())?;
    let board = Board::new(to_call.len());
    let calling = !to_call.is_empty();
    let (done_tx, done_rx) = may::sync::mpsc::channel::<()>();
    let mut ping_body: Option<(usize, Arc<Vec<u8>>, &'static str)> = None;
    let now_ms = ex.now_ms();
    for ((i, gate), permit) in to_call.into_iter().zip(permits) {
        let out = match &rt.buyers[i].spec {
            Some(spec) if spec.has_ping() => Outgoing::Spec(spec_request(spec, input, now_ms)),
            _ => {
                let (body, ct) = shared_ping_body(&mut ping_body, rt, i, input);
                Outgoing::Native(body, ct)
            }
        };
        spawn_call(
            rt.clone(),
            i,
            out,
            (input.started, answer_by, input.test),
            (board.clone(), done_tx.clone()),
            (permit, gate, ex.clock.clone()),
        );
    }
    drop(done_tx);
    if calling {
        wait_for_answers(&done_rx, answer_by);
    }
    let (replies, pending) = board.close();
    record(rt, replies, pending, input, &mut bids, &mut calls);
    Ok(AuctionResult {
        bids: auction::rank(bids, input.floor),
        calls,
    })
}

/// Contract §10's checks for one buyer, cheapest and stateless first and
/// nothing taken that a later check could waste: vertical and filter,
/// schedule, caps (live traffic only: test mode neither checks nor
/// consumes them), and for a buyer that is called, time left (`no_time`),
/// its concurrency gate (the permit is returned, to travel with the call)
/// and its breaker, last, so a trial call is never spent on a buyer
/// another check skips.
fn admit(
    brt: &BuyerRt,
    input: &AuctionInput<'_>,
    now_ms: u64,
    answer_by: Instant,
) -> Result<Option<GatePermit>, Reason> {
    let buyer = &brt.cfg;
    routing::filter::eligible(buyer, input.vertical, input.lead, &input.publisher.id)?;
    brt.schedule_open(now_ms)?;
    if !input.test {
        brt.ledger.check(&buyer.caps, now_ms, buyer.fixed_price)?;
    }
    if brt.ping.is_none() {
        return Ok(None);
    }
    brt.admit_call(buyer.ping_timeout_ms, answer_by, now_ms)
}

fn skip_record(buyer: &str, reason: &str) -> CallRecord {
    CallRecord {
        buyer: buyer.into(),
        stage: CallStage::Skip,
        outcome: CallOutcome::Ineligible,
        reason: Some(reason.into()),
        latency_us: 0,
        price: None,
    }
}

/// Buyers speaking the same format get the same bytes: build once per format.
fn shared_ping_body(
    cache: &mut Option<(usize, Arc<Vec<u8>>, &'static str)>,
    rt: &Runtime,
    i: usize,
    input: &AuctionInput<'_>,
) -> (Arc<Vec<u8>>, &'static str) {
    let integration = &*rt.buyers[i].integration;
    let key = integration as *const dyn crate::buyer::Integration as *const () as usize;
    if let Some((k, body, ct)) = cache {
        if *k == key {
            return (body.clone(), ct);
        }
    }
    let mut out = Vec::with_capacity(512);
    let ctx = PingCtx {
        ping_id: input.ping_id,
        vertical: input.vertical,
        lead: input.lead,
        test: input.test,
    };
    let ct = integration.build_ping(&ctx, &mut out);
    let body = Arc::new(out);
    *cache = Some((key, body.clone(), ct));
    (body, ct)
}

/// A spec buyer's ping request, rendered from the lead.
fn spec_request(
    spec: &crate::buyer::spec::SpecIntegration,
    input: &AuctionInput<'_>,
    now_ms: u64,
) -> Result<Request, &'static str> {
    let ctx = PingCtx {
        ping_id: input.ping_id,
        vertical: input.vertical,
        lead: input.lead,
        test: input.test,
    };
    let mut req = Request::default();
    spec.render_ping(&Vars::ping(&ctx, &input.publisher.id, now_ms), &mut req)?;
    Ok(req)
}

fn spawn_call(
    rt: Arc<Runtime>,
    i: usize,
    out: Outgoing,
    (started, answer_by, test): (Instant, Instant, bool),
    (board, done): (Arc<Board>, may::sync::mpsc::Sender<()>),
    (permit, gate, clock): (Permit, Option<GatePermit>, Arc<dyn Clock>),
) {
    crate::rt::spawn(move || {
        // Given back when this coroutine ends, however it ends.
        let (_permit, _gate) = (permit, gate);
        let brt = &rt.buyers[i];
        let buyer = &brt.cfg;
        let t0 = Instant::now();
        let own = t0.max(started) + Duration::from_millis(buyer.ping_timeout_ms);
        let deadline = own.min(answer_by);
        let answer = call_buyer(brt, &out, deadline);
        let latency_us = t0.elapsed().as_micros() as u64;
        if let Some(breaker) = &brt.health.breaker {
            // A parsed answer (bid or no bid) is a success; a time-out, an
            // error, a non-2xx or an answer that does not parse, a failure.
            match answer {
                Answer::Failed { .. } => breaker.failure(clock.now_ms()),
                _ => breaker.success(),
            }
        }
        super::report::buyer_ping(&brt.metrics, test, ping_result(&answer), latency_us);
        match board.post(Reply {
            buyer: i,
            answer,
            latency_us,
        }) {
            // The auction may have closed meanwhile: then nobody listens.
            Ok(true) => drop(done.send(())),
            Ok(false) => {}
            Err(()) => metrics::global().late_answers(),
        }
    });
}

/// Sends one ping and reads its answer, native or by the buyer's spec.
fn call_buyer(brt: &BuyerRt, out: &Outgoing, deadline: Instant) -> Answer {
    let client = brt.ping.as_ref().expect("only ping buyers are called");
    let result = match out {
        Outgoing::Native(body, ct) => {
            let url = brt
                .cfg
                .ping_url
                .as_ref()
                .expect("ping buyer has a ping_url");
            client.post(&url.target, &brt.cfg.headers, ct, body, deadline)
        }
        Outgoing::Spec(Ok(req)) => client.call(
            req.method,
            &req.target,
            &req.headers,
            req.content_type.as_deref(),
            &req.body,
            deadline,
        ),
        Outgoing::Spec(Err(reason)) => {
            return Answer::Failed {
                outcome: CallOutcome::Error,
                reason,
            }
        }
    };
    match (result, &brt.spec) {
        (Ok(mut resp), Some(spec)) if matches!(out, Outgoing::Spec(_)) => answer_of(spec.read_bid(
            resp.status,
            resp.content_encoding.as_deref(),
            &mut resp.body,
        )),
        (Ok(mut resp), _) => answer_of(BidRead {
            answer: brt.integration.parse_bid(resp.status, &mut resp.body),
            buyer_reason: None,
        }),
        (Err(crate::http::client::CallError::Timeout), _) => Answer::Failed {
            outcome: CallOutcome::Timeout,
            reason: "timeout",
        },
        (Err(e), _) => Answer::Failed {
            outcome: CallOutcome::Error,
            reason: e.reason(),
        },
    }
}

fn answer_of(read: BidRead) -> Answer {
    match read.answer {
        BidAnswer::Bid { price, buyer_ref } => Answer::Bid { price, buyer_ref },
        BidAnswer::NoBid => Answer::NoBid {
            reason: read.buyer_reason,
        },
        BidAnswer::Invalid(reason) => Answer::Failed {
            outcome: CallOutcome::Invalid,
            reason,
        },
    }
}

fn ping_result(a: &Answer) -> PingResult {
    match a {
        Answer::Bid { price, .. } => PingResult::Bid {
            price_cents: *price,
        },
        Answer::NoBid { .. } => PingResult::NoBid,
        Answer::Failed {
            outcome: CallOutcome::Timeout,
            ..
        } => PingResult::Timeout,
        Answer::Failed { reason, .. } => PingResult::Error(reason),
    }
}

/// Parks until the last call has answered (one message) or `answer_by`.
/// The wait is whole milliseconds, rounded down, so that concurrent
/// auctions share may's timer lists (keyed by exact duration) and the
/// auction never runs past `answer_by`; less than 1 ms before it counts as
/// there.
fn wait_for_answers(done: &may::sync::mpsc::Receiver<()>, answer_by: Instant) {
    loop {
        let left = answer_by.saturating_duration_since(Instant::now());
        let wait = Duration::from_millis(u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
        if wait.is_zero() {
            return;
        }
        crate::sync::will_park("the auction's wait for answers");
        match done.recv_timeout(wait) {
            // A timer that fires early comes round again with what is left.
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            // All in, or every call gone (a panicked call sends nothing).
            _ => return,
        }
    }
}

/// Turns the answers that came in time into call records and bids; calls
/// still pending are recorded as timed out at the auction deadline.
fn record(
    rt: &Runtime,
    replies: Vec<Reply>,
    pending: usize,
    input: &AuctionInput<'_>,
    bids: &mut Vec<Bid>,
    calls: &mut Vec<CallRecord>,
) {
    let mut answered = vec![false; rt.buyers.len()];
    for reply in replies {
        answered[reply.buyer] = true;
        let buyer = &rt.buyers[reply.buyer].cfg;
        let mut rec = CallRecord {
            buyer: buyer.id.clone(),
            stage: CallStage::Ping,
            // Set below from the answer.
            outcome: CallOutcome::NoBid,
            reason: None,
            latency_us: reply.latency_us,
            price: None,
        };
        match reply.answer {
            Answer::Bid { price, buyer_ref } => {
                rec.outcome = CallOutcome::Bid;
                rec.price = Some(price);
                bids.push(Bid::new(
                    reply.buyer,
                    price,
                    input.publisher.revenue_share_ppm,
                    buyer.priority,
                    reply.latency_us,
                    buyer_ref,
                ));
            }
            Answer::NoBid { reason } => {
                rec.outcome = CallOutcome::NoBid;
                rec.reason = reason;
            }
            Answer::Failed { outcome, reason } => {
                rec.outcome = outcome;
                rec.reason = Some(reason.into());
            }
        }
        calls.push(rec);
    }
    if pending > 0 {
        for (i, brt) in rt.buyers.iter().enumerate() {
            let buyer = &brt.cfg;
            let called =
                brt.ping.is_some() && !answered[i] && !calls.iter().any(|c| c.buyer == buyer.id);
            if called {
                calls.push(CallRecord {
                    buyer: buyer.id.clone(),
                    stage: CallStage::Ping,
                    outcome: CallOutcome::Timeout,
                    reason: Some("auction_deadline".into()),
                    latency_us: input.started.elapsed().as_micros() as u64,
                    price: None,
                });
            }
        }
    }
}
