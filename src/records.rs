//! What the store keeps, as versioned records. Serialised with serde_json:
//! the records are small, human-readable in a pinch, and the version field
//! lets a later leadx read (or refuse) what an earlier one wrote.
//!
//! PII lives in exactly one place: `LeadRecord::pii_json`. Pings hold only
//! ping fields; call records hold outcomes and timings, never lead data.

use serde::{Deserialize, Serialize};

use crate::money::Cents;

pub const RECORD_VERSION: u32 = 1;

/// One buyer's part in an auction or a post: called or not, why, and what
/// it answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CallRecord {
    pub buyer: String,
    pub stage: CallStage,
    pub outcome: CallOutcome,
    /// Why, for anything but a plain bid or acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub latency_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Cents>,
}

/// Which call a record is about. Stored as the snake_case word, the same
/// bytes the earlier string field held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStage {
    Ping,
    Post,
    /// Not called (ineligible, cap reached, …); the reason says why.
    Skip,
}

/// What a call (or a decision not to call) came to. Stored as the
/// snake_case word, as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    Bid,
    NoBid,
    /// A direct-post buyer's fixed price, bid without a call.
    FixedPrice,
    Ineligible,
    /// An answer that is not a usable bid.
    Invalid,
    Timeout,
    /// The call failed (connect, I/O, framing).
    Error,
    Accepted,
    Rejected,
    /// A post that failed (error or unusable answer): the next bidder's turn.
    Failed,
    /// A bidder passed over at the post (cap reached, buyer removed).
    Skipped,
}

impl CallStage {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStage::Ping => "ping",
            CallStage::Post => "post",
            CallStage::Skip => "skip",
        }
    }
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Bid => "bid",
            CallOutcome::NoBid => "no_bid",
            CallOutcome::FixedPrice => "fixed_price",
            CallOutcome::Ineligible => "ineligible",
            CallOutcome::Invalid => "invalid",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Error => "error",
            CallOutcome::Accepted => "accepted",
            CallOutcome::Rejected => "rejected",
            CallOutcome::Failed => "failed",
            CallOutcome::Skipped => "skipped",
        }
    }
}

/// A ranked bid kept with its ping, so the post stage can walk them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredBid {
    pub buyer: String,
    pub price: Cents,
    pub payout: Cents,
    pub priority: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_ref: Option<String>,
}

/// A ping auction (also the first stage of a direct post).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PingRecord {
    pub v: u32,
    pub ping_id: String,
    pub publisher: String,
    pub vertical: String,
    pub test: bool,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// The ping fields of the lead as JSON (no PII), for `ping_mismatch`.
    pub lead_json: String,
    /// Best first; empty when nobody bid.
    pub bids: Vec<StoredBid>,
    pub calls: Vec<CallRecord>,
    /// Set once the ping was posted: the outcome lives in the lead record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<String>,
    #[serde(default)]
    pub direct: bool,
    #[serde(default)]
    pub auction_us: u64,
}

/// Status of a lead record.
/// Where a lead stands. Stored as the lower-case word (`"posting"`,
/// `"sold"`, `"unsold"`), the same bytes the earlier string field held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeadStatus {
    /// The post stage is running, or was cut off by a crash (then settled
    /// `unsold` / `interrupted` on the next look).
    Posting,
    Sold,
    Unsold,
}

impl LeadStatus {
    /// The contract's word for it (`GET /v1/leads/{id}`, admin views).
    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::Posting => "posting",
            LeadStatus::Sold => "sold",
            LeadStatus::Unsold => "unsold",
        }
    }
}

/// A posted lead and its outcome. Written `posting` before the first buyer
/// is called and rewritten durably with the outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeadRecord {
    pub v: u32,
    pub lead_id: String,
    pub ping_id: String,
    pub publisher: String,
    pub vertical: String,
    pub test: bool,
    pub created_ms: u64,
    pub status: LeadStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the buyer pays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Cents>,
    /// What the publisher earns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payout: Option<Cents>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_lead_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sold_ms: Option<u64>,
    pub post_calls: Vec<CallRecord>,
    /// The full lead and consent as JSON: the only PII leadx keeps.
    pub pii_json: String,
}

/// Keys. Pings and leads use their ids (time-ordered, so a reverse scan is
/// newest first); the rest are composed here so that no other module
/// invents a key layout.
pub mod keys {
    pub fn idempotency(publisher: &str, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(publisher.len() + key.len() + 1);
        k.extend_from_slice(publisher.as_bytes());
        k.push(0);
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// Prefix of a buyer's sales on one UTC day; one key per sale below it.
    pub fn cap_day(buyer: &str, day: u32) -> Vec<u8> {
        let mut k = Vec::with_capacity(buyer.len() + 6);
        k.extend_from_slice(buyer.as_bytes());
        k.push(0);
        k.extend_from_slice(&day.to_be_bytes());
        k
    }

    pub fn cap_sale(buyer: &str, day: u32, lead_id: &str) -> Vec<u8> {
        let mut k = cap_day(buyer, day);
        k.extend_from_slice(lead_id.as_bytes());
        k
    }

    /// Marks a §10 sale key in `Tree::Caps` (after `buyer \0`): a v1
    /// `cap_day` key has a day number there, whose first byte stays 0 for
    /// the next 45,000 years, so the two layouts never mix.
    const SALE_MARK: u8 = 0x01;

    /// One accepted sale for caps and budgets (contract §10): `buyer \0
    /// 0x01 at_ms lead_id`, the value its price in cents (8 bytes, big
    /// endian). `at_ms` is when its cap unit was reserved, so a restart
    /// counts it in the same hour, day, week and month the live counter
    /// did (`exchange::caps::Reservation::at_ms`).
    pub fn buyer_sale(buyer: &str, at_ms: u64, lead_id: &str) -> Vec<u8> {
        let mut k = buyer_sales_from(buyer, at_ms);
        k.extend_from_slice(lead_id.as_bytes());
        k
    }

    /// Where `buyer`'s sales reserved at or after `from_ms` begin.
    pub fn buyer_sales_from(buyer: &str, from_ms: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(buyer.len() + 10);
        k.extend_from_slice(buyer.as_bytes());
        k.push(0);
        k.push(SALE_MARK);
        k.extend_from_slice(&from_ms.to_be_bytes());
        k
    }

    /// Just past `buyer`'s last sale key (exclusive end of a range scan).
    pub fn buyer_sales_end(buyer: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(buyer.len() + 2);
        k.extend_from_slice(buyer.as_bytes());
        k.push(0);
        k.push(SALE_MARK + 1);
        k
    }

    /// The value of a `buyer_sale` key.
    pub fn buyer_sale_value(price: crate::money::Cents) -> Vec<u8> {
        price.to_be_bytes().to_vec()
    }

    /// `(at_ms, price)` of a `buyer_sale` key and value of `buyer`, or
    /// `None` if they are not one.
    pub fn parse_buyer_sale(buyer: &str, key: &[u8], value: &[u8]) -> Option<(u64, u64)> {
        let rest = key
            .strip_prefix(buyer.as_bytes())?
            .strip_prefix(&[0, SALE_MARK])?;
        let at_ms = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let price = u64::from_be_bytes(value.try_into().ok()?);
        Some((at_ms, price))
    }

    pub fn dedupe(vertical: &str, hash: &[u8; 32]) -> Vec<u8> {
        let mut k = Vec::with_capacity(vertical.len() + 33);
        k.extend_from_slice(vertical.as_bytes());
        k.push(0);
        k.extend_from_slice(hash);
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_keys_of_one_day_share_the_prefix_and_other_days_do_not() {
        let day = keys::cap_day("b1", 20_000);
        assert!(keys::cap_sale("b1", 20_000, "L1").starts_with(&day));
        assert!(!keys::cap_sale("b1", 20_001, "L1").starts_with(&day));
        assert!(!keys::cap_sale("b10", 20_000, "L1").starts_with(&day));
    }

    /// §10 sale keys sort by time within a buyer, never fall inside a v1
    /// day range or another buyer's range, and read back.
    #[test]
    fn buyer_sale_keys_sort_by_time_and_stay_apart_from_day_keys() {
        let (from, end) = (
            keys::buyer_sales_from("b1", 1000),
            keys::buyer_sales_end("b1"),
        );
        let k = keys::buyer_sale("b1", 1500, "L1");
        assert!(from <= k && k < end);
        assert!(keys::buyer_sale("b1", 999, "L9") < from);
        assert!(keys::buyer_sale("b1", u64::MAX, "L9") < end);
        for other in [
            keys::buyer_sale("b10", 1500, "L1"),
            keys::buyer_sale("b", 1500, "L1"),
            keys::cap_sale("b1", u32::MAX >> 8, "L1"),
        ] {
            assert!(!(from <= other && other < end), "{other:?}");
        }
        assert!(!k.starts_with(&keys::cap_day("b1", 0)[..4]));
        let v = keys::buyer_sale_value(1250);
        assert_eq!(keys::parse_buyer_sale("b1", &k, &v), Some((1500, 1250)));
        assert_eq!(keys::parse_buyer_sale("b1", &k, &v[1..]), None);
        assert_eq!(keys::parse_buyer_sale("b2", &k, &v), None);
    }

    #[test]
    fn lead_record_round_trips() {
        let r = LeadRecord {
            v: RECORD_VERSION,
            lead_id: "L".into(),
            ping_id: "P".into(),
            publisher: "pub1".into(),
            vertical: "auto".into(),
            test: false,
            created_ms: 1,
            status: LeadStatus::Sold,
            reason: None,
            price: Some(1200),
            payout: Some(960),
            buyer: Some("b1".into()),
            buyer_lead_id: Some("x".into()),
            sold_ms: Some(2),
            post_calls: vec![],
            pii_json: "{}".into(),
        };
        let bytes = serde_json::to_vec(&r).unwrap();
        assert_eq!(serde_json::from_slice::<LeadRecord>(&bytes).unwrap(), r);
    }

    /// The enum is stored as the very words the string field held, so
    /// records written before it read back and new ones read the same.
    #[test]
    fn lead_status_is_stored_as_the_same_words() {
        for (status, word) in [
            (LeadStatus::Posting, "posting"),
            (LeadStatus::Sold, "sold"),
            (LeadStatus::Unsold, "unsold"),
        ] {
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{word}\"")
            );
            assert_eq!(status.as_str(), word);
        }
        let old = r#"{"v":1,"lead_id":"L","ping_id":"P","publisher":"p","vertical":"auto","test":false,"created_ms":1,"status":"posting","post_calls":[],"pii_json":"{}"}"#;
        let rec: LeadRecord = serde_json::from_str(old).unwrap();
        assert_eq!(rec.status, LeadStatus::Posting);
        assert!(serde_json::from_str::<LeadRecord>(&old.replace("posting", "lost")).is_err());
    }

    /// Call records too: the enums are stored as the words the string
    /// fields held (`"skip"`, `"no_bid"`, `"fixed_price"`, …).
    #[test]
    fn call_stage_and_outcome_are_stored_as_the_same_words() {
        let old = r#"{"buyer":"b","stage":"skip","outcome":"ineligible","reason":"filter","latency_us":0}"#;
        let rec: CallRecord = serde_json::from_str(old).unwrap();
        assert_eq!(
            (rec.stage, rec.outcome),
            (CallStage::Skip, CallOutcome::Ineligible)
        );
        assert_eq!(serde_json::to_string(&rec).unwrap(), old);
        for o in [
            CallOutcome::Bid,
            CallOutcome::NoBid,
            CallOutcome::FixedPrice,
            CallOutcome::Ineligible,
            CallOutcome::Invalid,
            CallOutcome::Timeout,
            CallOutcome::Error,
            CallOutcome::Accepted,
            CallOutcome::Rejected,
            CallOutcome::Failed,
            CallOutcome::Skipped,
        ] {
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
        for s in [CallStage::Ping, CallStage::Post, CallStage::Skip] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }
}
