//! Returns (contract §13): a buyer gives a sold lead back, and the sale's
//! price and payout are reversed. `Exchange::return_lead` is the one stage;
//! `POST /v1/admin/leads/{id}/return` calls it.
//!
//! A return is durable like a sale: the rewritten lead record (status
//! `returned`, `returned_ms`, `return_reason`) is written as one batch and
//! the caller answers only after the flush that covers it
//! (`it::returns::a_returned_answer_survives_kill_9`). The lead stays in
//! the sales index (the reconciliation export lists it with `returned_at`),
//! its dedupe keys stay (the consumer was still sold) and its cap unit
//! stays (the buyer received the lead). The publisher's `returned`
//! postback is written in the same batch (`exchange::postbacks`).
//!
//! The return holds the lead's claim (`exchange::claims`) from its read to
//! its durable write, so a retention or re-seal sweep never writes back a
//! copy from before it (`it::claims`).
//!
//! Business time comes from the exchange's `Clock`: the window is
//! `sold_ms + return_window_days` of the buyer that bought it, inclusive;
//! a buyer no longer in the config gets the default window.

use super::{Exchange, Refusal};
use crate::limits;
use crate::records::{self, LeadRecord, LeadStatus};
use crate::store::{Batch, Tree};

const DAY_MS: u64 = 86_400_000;

impl Exchange {
    /// Returns the sold lead `lead_id` for `reason` and gives back its
    /// record, durable. A lead already returned is answered as it was
    /// (the first reason and time stay). Refused: no such lead
    /// (`UnknownLead`), not sold or test traffic (`NotReturnable`), past
    /// the buyer's window (`ReturnWindowClosed`), a return of it running
    /// (`ReturnInProgress`).
    pub fn return_lead(&self, lead_id: &str, reason: &str) -> Result<LeadRecord, Refusal> {
        let _claim = self
            .returning
            .claim(lead_id.to_string())
            .ok_or(Refusal::ReturnInProgress)?;
        let seen = self.lead(lead_id)?.ok_or(Refusal::UnknownLead)?;
        if returnable(&seen)? {
            return Ok(seen);
        }
        // The lead's claim from the read to the applied write: a sweep
        // (retention, re-seal) cannot put its older copy back over this
        // return (`claims`). Read again under it.
        let _lead = self.claim_lead(lead_id).ok_or(Refusal::ReturnInProgress)?;
        let mut rec = self.lead(lead_id)?.ok_or(Refusal::UnknownLead)?;
        if returnable(&rec)? {
            return Ok(rec);
        }
        let rt = self.runtime();
        let window_days = rec
            .buyer
            .as_deref()
            .and_then(|b| rt.buyer_index(b))
            .map_or(limits::RETURN_WINDOW_DAYS_DEFAULT, |i| {
                rt.buyers[i].cfg.return_window_days
            });
        let now = self.now_ms();
        let sold_ms = rec.sold_ms.unwrap_or(rec.created_ms);
        if now.saturating_sub(sold_ms) > u64::from(window_days) * DAY_MS {
            return Err(Refusal::ReturnWindowClosed { window_days });
        }
        rec.status = LeadStatus::Returned;
        rec.returned_ms = Some(now);
        rec.return_reason = Some(reason.to_string());
        let mut batch = Batch::default();
        batch.insert(
            Tree::Leads,
            rec.lead_id.as_bytes().to_vec(),
            records::encode_lead(&rec),
        );
        // The publisher's `returned` postback, in the return's own batch.
        let event = super::postbacks::add(
            &rt,
            &rec,
            super::postbacks::Event::Returned,
            now,
            &mut batch,
        );
        self.store.write_durable(batch)?;
        if event {
            super::postbacks::written(self);
        }
        super::report::lead_returned(&rt, &self.stats, &rec);
        Ok(rec)
    }
}

/// Whether `rec` may be returned: `Ok(true)` when it is returned already
/// (answered as it is), `Ok(false)` when it is a live sale.
fn returnable(rec: &LeadRecord) -> Result<bool, Refusal> {
    match rec.status {
        LeadStatus::Returned => Ok(true),
        LeadStatus::Sold if !rec.test => Ok(false),
        _ => Err(Refusal::NotReturnable),
    }
}
