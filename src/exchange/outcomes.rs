//! Kept sales: a buyer accepted, but the outcome write failed (disk full, an
//! I/O error, the store closing). The buyer has the lead and will pay for
//! it, so the sale must not be dropped, nor the lead settled `interrupted`
//! and its lead id and price forgotten.
//!
//! The whole outcome batch is kept in memory, logged by ids (never PII),
//! and retried: about every `limits::KEPT_SALE_RETRY_MS` by a background
//! thread, when the publisher retries the same ping or idempotency key
//! (`exchange::stages`, answering a settled outcome), and once more at
//! shutdown. Until it is durable the publisher gets 503 `overloaded`
//! (`Refusal::SaleKept`); then `sold` with the same lead id. The
//! buyer is never posted again: a retry only writes. The batch is the same
//! every time (same keys, same values), so two retries racing are harmless.
//! What is kept is lost if the process dies before a retry succeeds; the
//! log line (lead, ping, buyer, the buyer's lead id, price) is what ops
//! reconciles it from then.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::sync::Mutex;

use crate::exchange::claims::Claim;
use crate::exchange::Exchange;
use crate::limits;
use crate::metrics::LiveStats;
use crate::records::LeadRecord;
use crate::store::{Batch, Store, StoreError};

/// A sold lead whose outcome is not durable yet.
pub struct KeptSale {
    /// The lead record as it will be stored (`sold`).
    pub rec: LeadRecord,
    /// The whole outcome batch (lead, links, cap unit, dedupe keys, sales
    /// index, idempotency key), written again as is.
    pub batch: Batch,
    /// The contacts' dedupe claim, held until the sale is durable so that
    /// the same consumer cannot be sold again meanwhile.
    pub dedupe_claim: Option<Claim<Vec<u8>>>,
    /// The lead's claim (`exchange::claims`), held until the sale is
    /// durable (every retry writes this very record): no sweep rewrites
    /// the `posting` record meanwhile.
    pub lead_claim: Option<Claim<String>>,
}

/// Every kept sale, by lead id.
#[derive(Default)]
pub struct KeptSales {
    by_lead: Mutex<HashMap<String, Arc<KeptSale>>>,
}

impl KeptSales {
    /// Keeps a sale whose outcome write failed with `error`.
    pub fn keep(&self, sale: KeptSale, error: &StoreError) {
        // The store logged the cause once; this names what is at stake.
        let msg = format!("sale kept: buyer accepted, outcome not durable yet ({error}); retrying");
        log_sale(&sale.rec, &msg, log::Level::Error);
        self.by_lead
            .lock()
            .insert(sale.rec.lead_id.clone(), Arc::new(sale));
    }

    pub fn len(&self) -> usize {
        self.by_lead.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tries to make the kept sale of `lead_id` durable now. `Ok(None)`:
    /// it is not kept (never was, or is durable already).
    pub fn retry_one(
        &self,
        store: &Store,
        stats: &LiveStats,
        lead_id: &str,
    ) -> Result<Option<LeadRecord>, StoreError> {
        // The lock guards the lookup only; the write waits without it.
        let Some(sale) = self.by_lead.lock().get(lead_id).cloned() else {
            return Ok(None);
        };
        self.write(store, stats, &sale)?;
        Ok(Some(sale.rec.clone()))
    }

    /// Tries every kept sale once; returns how many are still kept.
    pub fn retry_all(&self, store: &Store, stats: &LiveStats) -> usize {
        let sales: Vec<Arc<KeptSale>> = self.by_lead.lock().values().cloned().collect();
        for sale in sales {
            if self.write(store, stats, &sale).is_err() {
                // The store refuses the rest the same way; try again later.
                break;
            }
        }
        self.len()
    }

    /// Logs every sale still kept (at shutdown: they are lost with the
    /// process, and the log is what reconciles them).
    pub fn log_left(&self) {
        for sale in self.by_lead.lock().values() {
            log_sale(
                &sale.rec,
                "kept sale NOT recorded at shutdown; reconcile it with the buyer",
                log::Level::Error,
            );
        }
    }

    fn write(
        &self,
        store: &Store,
        stats: &LiveStats,
        sale: &Arc<KeptSale>,
    ) -> Result<(), StoreError> {
        store.write_durable(sale.batch.clone())?;
        if self.by_lead.lock().remove(&sale.rec.lead_id).is_some() {
            log_sale(&sale.rec, "kept sale recorded", log::Level::Info);
            // Counted now that it is a sale: its latency is the time until
            // the publisher could have been told `sold`.
            // wall clock: a latency for metrics, not business time.
            let latency_us = crate::ids::now_ms().saturating_sub(sale.rec.created_ms) * 1000;
            super::report::kept_sale_recorded(stats, &sale.rec, latency_us);
        }
        Ok(())
    }
}

/// Ids and money only: the buyer's lead id is the buyer's reference for
/// the sale, and no lead data is in the record fields logged here.
fn log_sale(rec: &LeadRecord, msg: &str, level: log::Level) {
    log::log!(target: "leadx::sale", level, lead_id = rec.lead_id.as_str(), ping_id = rec.ping_id.as_str(), buyer = rec.buyer.as_deref().unwrap_or(""),
        buyer_lead_id = rec.buyer_lead_id.as_deref().unwrap_or(""), price_cents = rec.price.unwrap_or(0), payout_cents = rec.payout.unwrap_or(0); "{msg}");
}

/// Starts the background retry thread. It holds the exchange weakly and
/// ends once the exchange is gone or its posts are closed (a drain, which
/// gives kept sales their last try itself).
pub fn spawn_retrier(ex: &Arc<Exchange>) {
    let weak: Weak<Exchange> = Arc::downgrade(ex);
    let spawned = std::thread::Builder::new()
        .name("leadx-kept-sales".into())
        .spawn(move || loop {
            // own thread: the kept-sales retrier
            std::thread::sleep(Duration::from_millis(limits::KEPT_SALE_RETRY_MS));
            let Some(ex) = weak.upgrade() else { return };
            if ex.posts_closed() {
                return;
            }
            if !ex.kept.is_empty() {
                ex.kept.retry_all(&ex.store, &ex.stats);
            }
        });
    if let Err(e) = spawned {
        log::error!(target: "leadx::sale", "cannot start the kept-sales retry thread; kept sales retry on the publisher's retry only error=\"{e}\"");
    }
}
