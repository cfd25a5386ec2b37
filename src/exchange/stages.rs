//! The stages an endpoint calls — ONE each: `Exchange::ping` (the auction,
//! recorded), `Exchange::post` (a pinged lead sold) and `Exchange::direct`
//! (both in one call); the reads are in `reads`. Each takes
//! parsed, validated input and returns the record to render or a
//! [`Refusal`]; the api only parses and renders.
//!
//! Here live the checks between parsing and the I/O stages: vertical,
//! consent and its evidence (`exchange::consent`), the ping's claim and lookup (store first, then the cache),
//! expiry, publisher and ping-field match, a direct post's idempotency key,
//! and settled outcomes answered again without calling any buyer.

use std::sync::Arc;
use std::time::Instant;

use super::admission::Budgets;
use super::fanout::{self, AuctionInput, AuctionResult};
use super::suppression::{self, Blocked};
use super::{consent, report, sale, Exchange, Refusal, Runtime};
use crate::config::{Config, Publisher};
use crate::ids;
use crate::lead::Lead;
use crate::metrics::LiveStats;
use crate::records::{self, keys, LeadRecord, PingRecord, StoredBid};
use crate::store::{Batch, Tree};
use crate::wire::{DirectRequest, PingRequest, PostRequest};

/// Whether a request runs as test traffic (contract §4): asked for with
/// `"test": true`, or always for a sandbox publisher (§13), whose traffic
/// counts toward nothing either — the one gate both go through.
fn is_test(publisher: &Publisher, asked: bool) -> bool {
    asked || publisher.sandbox
}

impl Exchange {
    /// `POST /v1/ping`: runs the auction on `req` for `publisher` and
    /// records it; the deadline counts from `received_at`.
    pub fn ping(
        &self,
        rt: &Arc<Runtime>,
        publisher: &Publisher,
        req: &PingRequest,
        received_at: Instant,
    ) -> Result<Arc<PingRecord>, Refusal> {
        // A ping never waits for a flush (debug builds panic if it tries).
        let _mark = crate::sync::no_store_wait();
        let rt = rt.serving(publisher)?;
        check_vertical(&rt.config, publisher, &req.vertical)?;
        let ping_id = ids::new_id();
        let input = AuctionInput {
            ping_id: &ping_id,
            publisher,
            vertical: &req.vertical,
            lead: &req.lead,
            test: is_test(publisher, req.test),
            floor: req.floor,
            started: received_at,
        };
        self.auction(rt, &input, false)
    }

    /// `POST /v1/post`: sells the lead of a ping. A ping is posted at most
    /// once: the first post claims it, a concurrent one is refused
    /// `PostInProgress`, and a later one gets the stored outcome with the
    /// same lead id without any buyer being contacted — also after a
    /// restart.
    pub fn post(
        &self,
        rt: &Arc<Runtime>,
        publisher: &Publisher,
        req: &PostRequest,
    ) -> Result<LeadRecord, Refusal> {
        if !ids::looks_like_id(&req.ping_id) {
            return Err(Refusal::UnknownPing);
        }
        let rt = rt.serving(publisher)?;
        let _claim = self
            .posting
            .claim(req.ping_id.clone())
            .ok_or(Refusal::PostInProgress)?;
        let ping = self
            .find_ping(&req.ping_id)?
            .filter(|ping| ping.publisher == publisher.id)
            .ok_or(Refusal::UnknownPing)?;
        if let Some(lead_id) = &ping.lead_id {
            return self.settled(lead_id);
        }
        if self.now_ms() > ping.expires_ms {
            return Err(Refusal::PingExpired);
        }
        require_consent(&rt.config, &ping.vertical, req.consent.is_some())?;
        self.check_consent(&rt.config, &ping.vertical, req.consent.as_ref())?;
        let pinged = records::ping_lead(&ping).map_err(|e| {
            log::error!(target: "leadx::store", "stored ping lead invalid ping_id={} error=\"{e}\"", ping.ping_id);
            Refusal::Corrupt
        })?;
        if let Some(field) = pinged.ping_field_mismatch(&req.lead) {
            return Err(Refusal::PingMismatch { field });
        }
        if let Err(refusal) = self.check_suppression(rt, &ping.ping_id, &ping.vertical, &req.lead) {
            let record = Suppressed {
                lead: &req.lead,
                consent: req.consent.as_ref(),
                idem_key: None,
            };
            self.record_suppressed(rt, &ping, &refusal, record);
            return Err(refusal);
        }
        let started = Instant::now();
        let input = sale::PostInput {
            ping: &ping,
            lead: &req.lead,
            consent: req.consent.as_ref(),
            started,
            with_outcome: &|_, _| {},
        };
        let result = sale::run(self, rt, &input);
        // A post shed for load or failed on the store leaves the ping as it
        // was; its record may not have reached the store yet, so the cache
        // keeps it for the publisher's retry.
        if !matches!(result, Err(Refusal::Overloaded | Refusal::Store(_))) {
            self.pings.remove(&ping.ping_id);
        }
        settle(&self.stats, result, ping.test, started)
    }

    /// `POST /v1/leads`: a direct post — the ping stage and the post stage
    /// in one call. An `idempotency_key` (scoped to the publisher) makes a
    /// retry return the first outcome, also after a restart: the key is
    /// written in the same durable batch as the outcome.
    pub fn direct(
        &self,
        rt: &Arc<Runtime>,
        publisher: &Publisher,
        idempotency_key: Option<&str>,
        req: &DirectRequest,
        received_at: Instant,
    ) -> Result<LeadRecord, Refusal> {
        let idem_key = idempotency_key.map(|k| keys::idempotency(&publisher.id, k));
        let rt = rt.serving(publisher)?;
        let test = is_test(publisher, req.test);
        check_vertical(&rt.config, publisher, &req.vertical)?;
        require_consent(&rt.config, &req.vertical, req.consent.is_some())?;
        let _claim = match &idem_key {
            Some(k) => {
                let claim = self
                    .idempotency
                    .claim(k.clone())
                    .ok_or(Refusal::IdempotencyKeyInProgress)?;
                if let Some(lead_id) = self.store.get(Tree::Idempotency, k)? {
                    return self.settled(&records::decode_idempotency(&lead_id));
                }
                Some(claim)
            }
            None => None,
        };
        // After the idempotency lookup: a retry gets its first outcome even
        // once its consent has aged past the vertical's window.
        self.check_consent(&rt.config, &req.vertical, req.consent.as_ref())?;
        let ping_id = ids::new_id();
        if let Err(refusal) = self.check_suppression(rt, &ping_id, &req.vertical, &req.lead) {
            let now = self.now_ms();
            let ping = PingRecord {
                v: records::RECORD_VERSION,
                ping_id,
                publisher: publisher.id.clone(),
                vertical: req.vertical.clone(),
                test: req.test,
                created_ms: now,
                expires_ms: now,
                lead_json: records::ping_lead_json(&req.lead),
                bids: Vec::new(),
                calls: Vec::new(),
                lead_id: None,
                direct: true,
                auction_us: 0,
            };
            let record = Suppressed {
                lead: &req.lead,
                consent: req.consent.as_ref(),
                idem_key: idem_key.as_deref(),
            };
            self.record_suppressed(rt, &ping, &refusal, record);
            return Err(refusal);
        }
        let input = AuctionInput {
            ping_id: &ping_id,
            publisher,
            vertical: &req.vertical,
            lead: &req.lead,
            test,
            floor: None,
            started: received_at,
        };
        let ping = self.auction(rt, &input, true)?;
        let with_outcome = |lead_id: &str, batch: &mut Batch| {
            if let Some(k) = &idem_key {
                batch.insert(
                    Tree::Idempotency,
                    k.clone(),
                    records::encode_idempotency(lead_id),
                );
            }
        };
        let started = Instant::now();
        let input = sale::PostInput {
            ping: &ping,
            lead: &req.lead,
            consent: req.consent.as_ref(),
            started,
            with_outcome: &with_outcome,
        };
        settle(&self.stats, sale::run(self, rt, &input), test, started)
    }

    /// The vertical's consent evidence checks (`exchange::consent`), on the
    /// exchange clock, before any buyer is called. Without a consent object
    /// there is nothing to check (`require_consent`, implied by any check,
    /// has refused that already).
    fn check_consent(
        &self,
        config: &Config,
        vertical: &str,
        consent: Option<&crate::lead::Consent>,
    ) -> Result<(), Refusal> {
        let rules = config.vertical(vertical).map(|v| v.consent_evidence);
        match (rules, consent) {
            (Some(rules), Some(c)) if rules.any() => consent::check(&rules, c, self.now_ms()),
            _ => Ok(()),
        }
    }

    /// Suppression (contract §12), before any buyer is called: a stale
    /// list of `vertical` refuses every lead (`ListStale`), a phone on a
    /// list of `vertical` or on the internal list refuses this one
    /// (`Suppressed`). Logged by id and list, never the number, and
    /// counted in `leadx_suppression_refusals_total`; the caller stores
    /// the suppressed lead (`record_suppressed`).
    fn check_suppression(
        &self,
        rt: &Runtime,
        ping_id: &str,
        vertical: &str,
        lead: &Lead,
    ) -> Result<(), Refusal> {
        let number = lead
            .phone
            .as_deref()
            .and_then(|p| crate::lead::phone_number(p.as_bytes()));
        let blocked = match rt.suppression.check(vertical, number, self.now_ms()) {
            Err(b) => Some(b),
            Ok(()) if number.is_some_and(|n| self.suppressed.contains(n)) => {
                Some(Blocked::Suppressed {
                    list: suppression::INTERNAL.to_string(),
                })
            }
            Ok(()) => None,
        };
        match blocked {
            None => Ok(()),
            Some(Blocked::Suppressed { list }) => {
                crate::metrics::global().suppression_refusal(false);
                log::info!(target: "leadx::suppress", "lead suppressed ping_id={ping_id} vertical={vertical} list={list}");
                Err(Refusal::Suppressed { list })
            }
            Some(Blocked::Stale { list }) => {
                crate::metrics::global().suppression_refusal(true);
                log::error!(target: "leadx::suppress", "suppression list stale: no lead of its verticals is sold until it is updated ping_id={ping_id} vertical={vertical} list={list}");
                Err(Refusal::ListStale { list })
            }
        }
    }

    /// Contract §12: a suppressed lead is *recorded* — a lead record with
    /// status `suppressed` and the list's id (PII sealed like any lead's;
    /// no buyer was called, nothing is counted as a sale), linked from its
    /// ping (admin transactions and lead view show it) and, for a direct
    /// post, its idempotency key, so a repeated post answers the same 422
    /// (`settled`). Written durably; if that fails the refusal stands and
    /// the failure is logged (a retry is checked against the lists again).
    fn record_suppressed(
        &self,
        rt: &Runtime,
        ping: &PingRecord,
        refusal: &Refusal,
        s: Suppressed<'_>,
    ) {
        let Refusal::Suppressed { list } = refusal else {
            return;
        };
        let now = self.now_ms();
        let lead_id = ids::new_id();
        let pii = records::pii_json(s.lead, s.consent);
        let pii_json = records::seal_pii(rt.key_ring.as_ref(), &lead_id, pii);
        let mut rec = LeadRecord::for_ping(
            ping,
            lead_id,
            now,
            records::LeadStatus::Suppressed,
            pii_json,
        );
        rec.reason = Some("suppressed".into());
        rec.suppression_list = Some(list.clone());
        // A fresh id: its claim (`claims`) is free; held for the write.
        let Some(lead) = self.leads.claim(rec.lead_id.clone()) else {
            return;
        };
        let mut batch = Batch::default();
        super::sale::link_lead(ping, &rec, &mut batch, &lead);
        if let Some(k) = s.idem_key {
            batch.insert(
                Tree::Idempotency,
                k.to_vec(),
                records::encode_idempotency(&rec.lead_id),
            );
        }
        match self.store.write_durable(batch) {
            Ok(()) => self.pings.remove(&ping.ping_id),
            Err(e) => {
                log::error!(target: "leadx::suppress", "suppressed lead not recorded ping_id={} lead_id={} error=\"{e}\"", ping.ping_id, rec.lead_id);
            }
        }
    }

    /// Runs the auction and records it (store and, for a ping, the ping
    /// cache). The ping record is written without waiting for a flush:
    /// losing a ping to a crash costs an `unknown_ping` on its post, never
    /// a sale.
    ///
    /// Overload is shed here, before any buyer is called: a ping whose
    /// deadline is mostly gone, or that finds no auction or buyer-call
    /// permit, is refused `Overloaded` at once (`exchange::admission`).
    fn auction(
        &self,
        rt: &Arc<Runtime>,
        input: &AuctionInput<'_>,
        direct: bool,
    ) -> Result<Arc<PingRecord>, Refusal> {
        let budgets = Budgets::of(&rt.config.server);
        let _auction = self
            .admission
            .auction(&budgets, input.started, rt.config.auction.ping_timeout_ms)
            .map_err(|_| Refusal::Overloaded)?;
        let AuctionResult { bids, calls } =
            fanout::run(self, rt, input).map_err(|_| Refusal::Overloaded)?;
        let now = self.now_ms();
        let ping = Arc::new(PingRecord {
            v: records::RECORD_VERSION,
            ping_id: input.ping_id.to_string(),
            publisher: input.publisher.id.clone(),
            vertical: input.vertical.to_string(),
            test: input.test,
            created_ms: now,
            expires_ms: now + rt.config.auction.bid_ttl_s * 1000,
            lead_json: records::ping_lead_json(input.lead),
            bids: bids
                .iter()
                .map(|b| StoredBid {
                    buyer: rt.buyers[b.buyer].cfg.id.clone(),
                    price: b.price,
                    payout: b.payout,
                    priority: b.priority,
                    buyer_ref: b.buyer_ref.clone(),
                })
                .collect(),
            calls,
            lead_id: None,
            direct,
            auction_us: input.started.elapsed().as_micros() as u64,
        });
        report::auction_done(&self.stats, &ping);
        let mut batch = Batch::default();
        batch.insert(
            Tree::Pings,
            ping.ping_id.as_bytes().to_vec(),
            records::encode_ping(&ping),
        );
        self.store.write(batch)?;
        if !direct {
            self.pings.insert(ping.clone(), now);
        }
        Ok(ping)
    }

    /// The stored outcome of a lead, answered again. A kept sale (its
    /// outcome write failed) is written now, or refused `SaleKept` again.
    /// The caller holds the claim on its ping or idempotency key, so a lead
    /// still `posting` and not kept is a crash remnant and is settled as
    /// interrupted.
    fn settled(&self, lead_id: &str) -> Result<LeadRecord, Refusal> {
        match self.kept.retry_one(&self.store, &self.stats, lead_id) {
            Ok(Some(rec)) => return Ok(rec),
            Ok(None) => {}
            Err(_) => return Err(Refusal::SaleKept),
        }
        let mut rec = self.lead(lead_id)?.ok_or_else(|| {
            log::error!(target: "leadx::store", "lead record missing lead_id={lead_id}");
            Refusal::Corrupt
        })?;
        if rec.status == records::LeadStatus::Suppressed {
            let list = rec.suppression_list.unwrap_or_default();
            return Err(Refusal::Suppressed { list });
        }
        sale::settle_interrupted(self, &mut rec)?;
        Ok(rec)
    }

    /// The store is the authority once it has the ping (it holds the outcome
    /// link); the cache covers the moment before the writer applied it.
    fn find_ping(&self, ping_id: &str) -> Result<Option<Arc<PingRecord>>, Refusal> {
        if let Some(bytes) = self.store.get(Tree::Pings, ping_id.as_bytes())? {
            let ping = records::decode_ping(&bytes).map_err(|e| {
                log::error!(target: "leadx::store", "ping record unreadable ping_id={ping_id} error=\"{e}\"");
                Refusal::Corrupt
            })?;
            return Ok(Some(Arc::new(ping)));
        }
        Ok(self.pings.get(ping_id))
    }
}

/// What `record_suppressed` stores besides the ping: the lead, its
/// consent, and a direct post's idempotency key.
struct Suppressed<'a> {
    lead: &'a Lead,
    consent: Option<&'a crate::lead::Consent>,
    idem_key: Option<&'a [u8]>,
}

/// The outcome of a finished post stage (of `test` traffic or not),
/// counted and logged (`report`).
fn settle(
    stats: &LiveStats,
    result: Result<LeadRecord, Refusal>,
    test: bool,
    started: Instant,
) -> Result<LeadRecord, Refusal> {
    let latency_us = started.elapsed().as_micros() as u64;
    match &result {
        Ok(rec) => report::post_done(stats, rec, latency_us),
        Err(Refusal::DuplicateLead) => report::post_duplicate(test, latency_us),
        Err(_) => {}
    }
    result
}

/// An unknown vertical is the publisher's typo; a known one it may not sell
/// is a permission problem.
fn check_vertical(config: &Config, publisher: &Publisher, vertical: &str) -> Result<(), Refusal> {
    if config.vertical(vertical).is_none() {
        return Err(Refusal::UnknownVertical(vertical.to_string()));
    }
    if !publisher.verticals.iter().any(|v| v == vertical) {
        return Err(Refusal::VerticalNotAllowed(vertical.to_string()));
    }
    Ok(())
}

fn require_consent(config: &Config, vertical: &str, has_consent: bool) -> Result<(), Refusal> {
    let required = config.vertical(vertical).is_some_and(|v| v.require_consent);
    if required && !has_consent {
        return Err(Refusal::ConsentRequired);
    }
    Ok(())
}
