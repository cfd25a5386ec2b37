//! What the read-only endpoints ask the exchange, one call each: a lead by
//! id (`GET /v1/leads/{id}`, admin lead view, settled outcomes), the
//! newest transactions and a page of sales (admin). Records come back
//! decoded (`records`); the api renders them.

use super::{Exchange, Refusal};
use crate::records::{self, LeadRecord, PingRecord};
use crate::store::Tree;

impl Exchange {
    /// A stored lead record by id (`None`: no such lead).
    pub fn lead(&self, lead_id: &str) -> Result<Option<LeadRecord>, Refusal> {
        let Some(bytes) = self.store.get(Tree::Leads, lead_id.as_bytes())? else {
            return Ok(None);
        };
        records::decode_lead(&bytes).map(Some).map_err(|e| {
            log::error!(target: "leadx::store", "lead record unreadable lead_id={lead_id} error=\"{e}\"");
            Refusal::Corrupt
        })
    }

    /// The stored ping `ping_id` (the admin lead view shows its calls), or
    /// `None` when absent or unreadable (logged): the lead is still shown.
    pub fn ping_record(&self, ping_id: &str) -> Result<Option<PingRecord>, Refusal> {
        let Some(bytes) = self.store.get(Tree::Pings, ping_id.as_bytes())? else {
            return Ok(None);
        };
        match records::decode_ping(&bytes) {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                log::error!(target: "leadx::store", "ping record unreadable ping_id={ping_id} error=\"{e}\"");
                Ok(None)
            }
        }
    }

    /// The newest `limit` pings, newest first, each with its lead once
    /// posted (admin transactions). A ping record that does not decode is
    /// logged and left out.
    pub fn transactions(
        &self,
        limit: usize,
    ) -> Result<Vec<(PingRecord, Option<LeadRecord>)>, Refusal> {
        let rows = self.store.scan_range_rev(Tree::Pings, b"", b"g", limit)?;
        let mut out = Vec::with_capacity(rows.len());
        for (key, bytes) in &rows {
            let Ok(ping) = records::decode_ping(bytes) else {
                log::warn!(target: "leadx::store", "ping record unreadable, left out of transactions ping_id={}", String::from_utf8_lossy(key));
                continue;
            };
            let lead = match ping.lead_id.as_deref() {
                Some(id) => self.lead(id)?,
                None => None,
            };
            out.push((ping, lead));
        }
        Ok(out)
    }

    /// Sold leads whose ids fall in `[lo, hi)`, oldest first, at most
    /// `limit` (the reconciliation export), and the last id of this page
    /// when more remain (the next page starts after it).
    pub fn sales_page(
        &self,
        lo: &[u8],
        hi: &[u8],
        limit: usize,
    ) -> Result<(Vec<LeadRecord>, Option<String>), Refusal> {
        let mut rows = self.store.scan_range(Tree::Sales, lo, hi, limit + 1)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = rows
            .last()
            .filter(|_| more)
            .map(|(key, _)| String::from_utf8_lossy(key).into_owned());
        let mut leads = Vec::with_capacity(rows.len());
        for (key, _) in &rows {
            if let Some(rec) = self.lead(&String::from_utf8_lossy(key))? {
                leads.push(rec);
            }
        }
        Ok((leads, next))
    }
}
