//! The post stage: offer the lead to the ranked bidders in turn until one
//! accepts or the post deadline runs out, and make the outcome durable
//! before anyone is told. The sale (lead, buyer, price, the buyer's lead id)
//! goes to the store in one atomic batch together with the cap unit and the
//! dedupe keys it consumes, and the caller answers only after the flush that
//! covers it — a `sold` survives `kill -9` the moment after it is sent.
//! If that write fails after a buyer accepted, the sale is kept and retried
//! (`exchange::outcomes`) rather than dropped. A running post stage holds a
//! `PostTicket`, so a drain closes the store only after its outcome.
//!
//! A sale's postback event (`exchange::postbacks`) is part of that batch.
//!
//! A buyer with a `[buyer.post]` spec (contract §9) is posted its own
//! rendered request and its answer is read by its `SpecIntegration`; the
//! others get the native body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::buyer::spec::{Request, Vars};
use crate::buyer::{PostAnswer, PostCtx};
use crate::exchange::admission::Budgets;
use crate::exchange::claims::Claim;
use crate::exchange::outcomes::KeptSale;
use crate::exchange::{caps, BuyerRt, Exchange, Refusal, Runtime};
use crate::ids;
use crate::lead::{Consent, Lead};
use crate::metrics::PostResult;
use crate::records::{self, CallOutcome, CallRecord, CallStage, LeadRecord, PingRecord, StoredBid};
use crate::routing::{gate::GatePermit, Reason};
use crate::store::{Batch, StoreError, Tree};

pub struct PostInput<'a> {
    pub ping: &'a PingRecord,
    pub lead: &'a Lead,
    pub consent: Option<&'a Consent>,
    pub started: Instant,
    /// Extra writes to make durable with the outcome (the idempotency key of
    /// a direct post), given the new lead id.
    pub with_outcome: &'a dyn Fn(&str, &mut Batch),
}

/// Runs the post stage and returns the durable lead record.
pub fn run(ex: &Exchange, rt: &Arc<Runtime>, input: &PostInput<'_>) -> Result<LeadRecord, Refusal> {
    let ping = input.ping;
    // A drain that closed posts refuses this one (503 draining) before any
    // buyer sees the lead; else the drain waits for this ticket.
    let _ticket = ex.begin_post().ok_or(Refusal::Store(StoreError::Closed))?;
    let dedupe_keys = dedupe_keys(rt, ping, input.lead);
    let selling = match &dedupe_keys {
        Some((keys, window_ms)) => Some(claim_unsold(ex, keys, *window_ms)?),
        None => None,
    };
    let dedupe_keys = dedupe_keys.map(|(keys, window_ms)| (keys.write, window_ms));
    // Taken before anything is durable, held through the whole failover:
    // a post refused for load must stay sellable, never be walked to a
    // lower bidder or settled unsold.
    let _call = if ping.bids.is_empty() {
        None
    } else {
        Some(
            ex.admission
                .post_call(&Budgets::of(&rt.config.server))
                .map_err(|_| Refusal::Overloaded)?,
        )
    };
    let now = ex.now_ms();
    let lead_id = ids::new_id();
    let pii_json = records::seal_pii(
        rt.key_ring.as_ref(),
        &lead_id,
        records::pii_json(input.lead, input.consent),
    );
    // The lead's claim (`claims`), held from its first write to its
    // outcome (by a kept sale until that is durable): no sweep rewrites a
    // `posting` record under a running post. A fresh id is never claimed.
    let lead_claim = ex.leads.claim(lead_id.clone()).ok_or(Refusal::Overloaded)?;
    let mut rec = LeadRecord::for_ping(ping, lead_id, now, records::LeadStatus::Posting, pii_json);
    if ping.bids.is_empty() {
        rec.status = records::LeadStatus::Unsold;
        rec.reason = Some("no_bid".into());
        ex.store.write_durable(outcome(
            ex.now_ms(),
            input,
            &mut rec,
            None,
            &[],
            &lead_claim,
        ))?;
        return Ok(rec);
    }
    // Before any buyer sees the lead, make it durable that this ping (and
    // idempotency key) is being posted as this lead. After a crash mid-post
    // a retry then finds the `posting` remnant and settles it as
    // interrupted, instead of offering the lead again and maybe selling it
    // twice. Costs one group-commit wait per post with bids.
    let mut intent = Batch::default();
    add_links(input, &rec, &mut intent, &lead_claim);
    ex.store.write_durable(intent)?;
    let sale = offer(ex, rt, input, &mut rec);
    let dedupe: &[Vec<u8>] = match (&sale, &dedupe_keys) {
        (Some(_), Some((keys, _))) => keys,
        _ => &[],
    };
    let sold = sale.is_some();
    let mut batch = outcome(ex.now_ms(), input, &mut rec, sale, dedupe, &lead_claim);
    let mut event = false;
    if let (true, Some(at)) = (sold, rec.sold_ms) {
        // In the sale's own batch: durable (or kept) exactly with it.
        event = super::postbacks::add(rt, &rec, super::postbacks::Event::Sold, at, &mut batch);
    }
    match ex.store.write_durable(batch.clone()) {
        Ok(()) => {
            if event {
                super::postbacks::written(ex);
            }
            Ok(rec)
        }
        Err(e) if sold => {
            ex.kept.keep(
                KeptSale {
                    rec,
                    batch,
                    dedupe_claim: selling,
                    lead_claim: Some(lead_claim),
                },
                &e,
            );
            Err(Refusal::SaleKept)
        }
        Err(e) => Err(e.into()),
    }
}

/// The sale's entry in `Tree::Caps` (key, value), for live traffic.
type CapEntry = Option<(Vec<u8>, Vec<u8>)>;

/// Walks the bids; returns the accepting bid and its committed cap entry.
fn offer(
    ex: &Exchange,
    rt: &Arc<Runtime>,
    input: &PostInput<'_>,
    rec: &mut LeadRecord,
) -> Option<(StoredBid, CapEntry)> {
    let ping = input.ping;
    let deadline = input.started + Duration::from_millis(rt.config.auction.post_timeout_ms);
    let mut body = Vec::with_capacity(1024);
    let mut attempted = false;
    for bid in &ping.bids {
        if Instant::now() >= deadline {
            rec.reason = Some("post_timeout".into());
            return None;
        }
        let Some(i) = rt.buyer_index(&bid.buyer) else {
            rec.post_calls.push(skip(&bid.buyer, "buyer_removed"));
            continue;
        };
        let brt = &rt.buyers[i];
        // Held through the call: the reservation is given back on drop
        // unless committed, the gate's slot always.
        let (reservation, _gate) = match admit(brt, ping.test, ex.now_ms(), bid.price, deadline) {
            Ok(taken) => taken,
            Err(reason) => {
                super::report::buyer_skip(&brt.metrics, ping.test, reason);
                rec.post_calls.push(skip(&bid.buyer, reason.as_str()));
                continue;
            }
        };
        attempted = true;
        let accepted = post_one(rt, i, bid, input, (deadline, ex.now_ms()), &mut body, rec);
        if let Some(breaker) = &brt.health.breaker {
            // A parsed answer, accepted or rejected, is a success.
            let answered = rec.post_calls.last().is_some_and(|c| {
                matches!(c.outcome, CallOutcome::Accepted | CallOutcome::Rejected)
            });
            if answered {
                breaker.success();
            } else {
                breaker.failure(ex.now_ms());
            }
        }
        if let Some(buyer_lead_id) = accepted {
            rec.buyer_lead_id = buyer_lead_id;
            let entry = reservation.map(|r| r.commit(&bid.buyer, &rec.lead_id));
            return Some((bid.clone(), entry));
        }
    }
    if rec.reason.is_none() {
        rec.reason = Some(
            if attempted {
                "rejected"
            } else {
                "no_eligible_buyer"
            }
            .into(),
        );
    }
    None
}

/// Contract §10's checks before a post call, in the ping's order:
/// schedule, caps and budgets (live traffic: every live sale reserves,
/// capped buyer or not, so a cap a reload adds starts from the true
/// count), time left, the concurrency gate, the breaker last.
fn admit(
    brt: &BuyerRt,
    test: bool,
    now_ms: u64,
    price: crate::money::Cents,
    deadline: Instant,
) -> Result<(Option<caps::Reservation>, Option<GatePermit>), Reason> {
    let buyer = &brt.cfg;
    brt.schedule_open(now_ms)?;
    let reservation = if test {
        None
    } else {
        Some(brt.ledger.reserve(&buyer.caps, now_ms, price)?)
    };
    let gate = brt.admit_call(buyer.post_timeout_ms, deadline, now_ms)?;
    Ok((reservation, gate))
}

/// One post call; `Some(buyer's lead id)` when the buyer accepted.
fn post_one(
    rt: &Runtime,
    i: usize,
    bid: &StoredBid,
    input: &PostInput<'_>,
    (deadline, now_ms): (Instant, u64),
    body: &mut Vec<u8>,
    rec: &mut LeadRecord,
) -> Option<Option<String>> {
    let brt = &rt.buyers[i];
    let buyer = &brt.cfg;
    let ping = input.ping;
    body.clear();
    let ctx = PostCtx {
        ping_id: &ping.ping_id,
        buyer_ref: bid.buyer_ref.as_deref(),
        vertical: &ping.vertical,
        lead: input.lead,
        consent: input.consent,
        price: bid.price,
        test: ping.test,
    };
    let t0 = Instant::now();
    let call_deadline = (t0 + Duration::from_millis(buyer.post_timeout_ms)).min(deadline);
    let answer = send_post(brt, &ctx, (&ping.publisher, now_ms), call_deadline, body);
    let latency_us = t0.elapsed().as_micros() as u64;
    let mut call = CallRecord {
        buyer: buyer.id.clone(),
        stage: CallStage::Post,
        // Set below from the answer.
        outcome: CallOutcome::Failed,
        reason: None,
        latency_us,
        price: Some(bid.price),
    };
    let (accepted, metric) = match answer {
        Ok(answer) => match answer {
            PostAnswer::Accepted { buyer_lead_id } => {
                call.outcome = CallOutcome::Accepted;
                (Some(buyer_lead_id), PostResult::Accepted)
            }
            PostAnswer::Rejected { reason } => {
                call.outcome = CallOutcome::Rejected;
                call.reason = Some(reason);
                (None, PostResult::Rejected)
            }
            PostAnswer::Invalid(reason) => {
                call.outcome = CallOutcome::Failed;
                call.reason = Some(reason.into());
                (None, PostResult::Failed)
            }
        },
        Err(reason) => {
            call.outcome = CallOutcome::Failed;
            call.reason = Some(reason.into());
            (None, PostResult::Failed)
        }
    };
    super::report::buyer_post(&brt.metrics, ping.test, metric, latency_us);
    rec.post_calls.push(call);
    accepted
}

/// Builds the post (native body into `body`, or the buyer's own request
/// from its spec), sends it and reads the answer; `Err` is why no answer
/// came (the call failed, or the request could not be rendered).
fn send_post(
    brt: &BuyerRt,
    ctx: &PostCtx<'_>,
    (publisher, now_ms): (&str, u64),
    deadline: Instant,
    body: &mut Vec<u8>,
) -> Result<PostAnswer, &'static str> {
    let buyer = &brt.cfg;
    match brt.spec.as_ref().filter(|s| s.has_post()) {
        Some(spec) => {
            let mut req = Request::default();
            spec.render_post(&Vars::post(ctx, publisher, now_ms), &mut req)?;
            let (method, ct) = (req.method, req.content_type.as_deref());
            let mut resp = brt
                .post
                .call(method, &req.target, &req.headers, ct, &req.body, deadline)
                .map_err(|e| e.reason())?;
            let encoding = resp.content_encoding.as_deref();
            Ok(spec.read_post(resp.status, encoding, &mut resp.body))
        }
        None => {
            let content_type = brt.integration.build_post(ctx, body);
            let target = &buyer.post_url.target;
            let mut resp = brt
                .post
                .post(target, &buyer.headers, content_type, body, deadline)
                .map_err(|e| e.reason())?;
            Ok(brt.integration.parse_result(resp.status, &mut resp.body))
        }
    }
}

fn skip(buyer: &str, reason: &str) -> CallRecord {
    CallRecord {
        buyer: buyer.into(),
        stage: CallStage::Post,
        outcome: CallOutcome::Skipped,
        reason: Some(reason.into()),
        latency_us: 0,
        price: None,
    }
}

/// Settles `rec` and returns its outcome batch, to be written durably: the
/// lead record, the ping's link to it, and for a sale the cap unit, the
/// dedupe keys and the sales index.
fn outcome(
    now: u64,
    input: &PostInput<'_>,
    rec: &mut LeadRecord,
    sale: Option<(StoredBid, CapEntry)>,
    dedupe: &[Vec<u8>],
    lead_claim: &Claim<String>,
) -> Batch {
    let mut batch = Batch::default();
    if let Some((bid, entry)) = sale {
        rec.status = records::LeadStatus::Sold;
        rec.reason = None;
        rec.price = Some(bid.price);
        rec.payout = Some(bid.payout);
        rec.buyer = Some(bid.buyer.clone());
        rec.sold_ms = Some(now);
        if let Some((k, v)) = entry {
            batch.insert(Tree::Caps, k, v);
        }
        if !rec.test {
            let lead_key = rec.lead_id.as_bytes().to_vec();
            batch.insert(Tree::Sales, lead_key, records::encode_marker());
            for k in dedupe {
                batch.insert(Tree::Dedupe, k.clone(), records::encode_dedupe(now));
            }
        }
    } else {
        rec.status = records::LeadStatus::Unsold;
    }
    add_links(input, rec, &mut batch, lead_claim);
    batch
}

/// The lead record and what points at it: the ping's link and, for a direct
/// post, its idempotency key. Written under the lead's claim (`claims`):
/// the caller shows it holds it.
fn add_links(input: &PostInput<'_>, rec: &LeadRecord, batch: &mut Batch, held: &Claim<String>) {
    link_lead(input.ping, rec, batch, held);
    (input.with_outcome)(&rec.lead_id, batch);
}

/// The lead record and its ping, linked to it, into `batch` (a sale's
/// intent and outcome; a suppressed lead's record), under the lead's claim.
pub(super) fn link_lead(
    ping: &PingRecord,
    rec: &LeadRecord,
    batch: &mut Batch,
    _held: &Claim<String>,
) {
    let mut ping = ping.clone();
    ping.lead_id = Some(rec.lead_id.clone());
    batch.insert(
        Tree::Pings,
        ping.ping_id.as_bytes().to_vec(),
        records::encode_ping(&ping),
    );
    batch.insert(
        Tree::Leads,
        rec.lead_id.as_bytes().to_vec(),
        records::encode_lead(rec),
    );
}

/// A lead found still `posting` when no post of it is running (its ping or
/// idempotency key is claimed by the caller) was cut off by a crash: the
/// buyers' answers are unknown, so it is settled `unsold` / `interrupted`
/// for reconciliation rather than offered again.
/// Under the lead's claim (`claims`), read again: a sweep may have just
/// rewritten the remnant (erased or re-sealed its PII).
pub fn settle_interrupted(ex: &Exchange, rec: &mut LeadRecord) -> Result<(), Refusal> {
    if rec.status != records::LeadStatus::Posting {
        return Ok(());
    }
    let _lead = ex.claim_lead(&rec.lead_id).ok_or(Refusal::PostInProgress)?;
    match ex.lead(&rec.lead_id)? {
        Some(now) => *rec = now,
        None => return Err(Refusal::Corrupt),
    }
    if rec.status != records::LeadStatus::Posting {
        return Ok(());
    }
    rec.status = records::LeadStatus::Unsold;
    rec.reason = Some("interrupted".into());
    let mut batch = Batch::default();
    batch.insert(
        Tree::Leads,
        rec.lead_id.as_bytes().to_vec(),
        records::encode_lead(rec),
    );
    Ok(ex.store.write_durable(batch)?)
}

/// The dedupe keys of a live lead in a vertical with a window (keyed with
/// the data key when there is one: `records::dedupe_keys`), and the window
/// in milliseconds.
fn dedupe_keys(rt: &Runtime, ping: &PingRecord, lead: &Lead) -> Option<(records::DedupeKeys, u64)> {
    if ping.test {
        return None;
    }
    let days = rt.config.vertical(&ping.vertical)?.dedupe_window_days;
    if days == 0 {
        return None;
    }
    let keys = records::dedupe_keys(rt.key_ring.as_ref(), &ping.vertical, lead);
    Some((keys, u64::from(days) * 86_400_000))
}

/// Claims the lead's contacts for this sale (its `write` keys); a
/// duplicate when another sale of them is running or one was sold within
/// the window under any `lookup` key.
fn claim_unsold(
    ex: &Exchange,
    keys: &records::DedupeKeys,
    window_ms: u64,
) -> Result<crate::exchange::claims::Claim<Vec<u8>>, Refusal> {
    let claim = ex
        .selling
        .claim_all(keys.write.clone())
        .ok_or(Refusal::DuplicateLead)?;
    let now = ex.now_ms();
    for k in &keys.lookup {
        if let Some(v) = ex.store.get(Tree::Dedupe, k)? {
            let sold_ms = records::decode_dedupe(&v);
            if now.saturating_sub(sold_ms) < window_ms {
                return Err(Refusal::DuplicateLead);
            }
        }
    }
    Ok(claim)
}
