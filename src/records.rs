//! What the store keeps, as versioned records, and their encoding: this
//! module alone turns a record into stored bytes and back (`encode_*` /
//! `decode_*`; `layering::only_records_encode_records` keeps it so).
//! Pings and leads are serialised with serde_json: the records are small,
//! human-readable in a pinch, and the version field lets a later leadx read
//! (or refuse) what an earlier one wrote. The other trees hold a lead id
//! (idempotency), a sale time (dedupe) or nothing (cap units, sales index).
//! The bytes are pinned by `tests::records_written_before_the_codec_moved_here_still_decode`.
//!
//! PII lives in exactly one place: `LeadRecord::pii_json`, sealed with the
//! data key when there is one (`seal_pii` / `open_pii`). Pings hold only
//! ping fields; call records hold outcomes and timings, never lead data.

use serde::{Deserialize, Serialize};

use crate::lead::{Consent, Lead, Stage};
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

/// Where a lead stands. Stored as the lower-case word (`"posting"`,
/// `"sold"`, `"unsold"`, `"returned"`), the same bytes the earlier string
/// field held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeadStatus {
    /// The post stage is running, or was cut off by a crash (then settled
    /// `unsold` / `interrupted` on the next look).
    Posting,
    Sold,
    Unsold,
    /// Refused before any buyer saw it: its phone is on a suppression list
    /// (`LeadRecord::suppression_list` names which). Kept so the refusal is
    /// recorded (contract §12); never a sale.
    Suppressed,
    /// Sold, then returned by its buyer (contract §13, `exchange::returns`):
    /// price and payout stay in the record and are reversed in the numbers.
    Returned,
}

impl LeadStatus {
    /// The contract's word for it (`GET /v1/leads/{id}`, admin views).
    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::Posting => "posting",
            LeadStatus::Sold => "sold",
            LeadStatus::Unsold => "unsold",
            LeadStatus::Suppressed => "suppressed",
            LeadStatus::Returned => "returned",
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
    /// When a sold lead was returned (contract §13), business time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned_ms: Option<u64>,
    /// The admin's reason for the return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_reason: Option<String>,
    pub post_calls: Vec<CallRecord>,
    /// The full lead and consent as JSON: the only PII leadx keeps.
    /// `"null"` once erased by retention (`pii_erased_ms` says when).
    pub pii_json: String,
    /// When retention erased the PII (`privacy.pii_retention_days`):
    /// `pii_json` is `null` from then on; outcome, money, ids stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii_erased_ms: Option<u64>,
    /// For a `Suppressed` lead: the id of the list its phone was on
    /// (`internal` for the admin API's list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppression_list: Option<String>,
}

impl LeadRecord {
    /// A new lead of `ping` in `status`, with its sealed (or clear)
    /// `pii_json`, and no outcome, money, return or erasure yet: the record a
    /// post starts (`Posting`) and a suppressed post keeps (`Suppressed`).
    pub fn for_ping(
        ping: &PingRecord,
        lead_id: String,
        created_ms: u64,
        status: LeadStatus,
        pii_json: String,
    ) -> LeadRecord {
        LeadRecord {
            v: RECORD_VERSION,
            lead_id,
            ping_id: ping.ping_id.clone(),
            publisher: ping.publisher.clone(),
            vertical: ping.vertical.clone(),
            test: ping.test,
            created_ms,
            status,
            reason: None,
            price: None,
            payout: None,
            buyer: None,
            buyer_lead_id: None,
            sold_ms: None,
            returned_ms: None,
            return_reason: None,
            post_calls: Vec::new(),
            pii_json,
            pii_erased_ms: None,
            suppression_list: None,
        }
    }

    /// Erases the PII (retention): the sealed or clear `pii_json` (the
    /// consumer IP is inside it, in the consent) becomes `null`. Returns
    /// false when it was erased already.
    pub fn erase_pii(&mut self, now_ms: u64) -> bool {
        if self.pii_erased_ms.is_some() {
            return false;
        }
        self.pii_json = ERASED_PII.to_string();
        self.pii_erased_ms = Some(now_ms);
        true
    }
}

/// What `LeadRecord::pii_json` holds once retention erased it.
pub const ERASED_PII: &str = "null";

/// Stored bytes that do not decode as the record expected there; the text
/// is for logs (with the key), never for clients.
#[derive(Debug)]
pub struct Undecodable(pub String);

impl std::fmt::Display for Undecodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Undecodable> {
    serde_json::from_slice(bytes).map_err(|e| Undecodable(e.to_string()))
}

/// A ping record as stored in `Tree::Pings` (key: its ping id).
pub fn encode_ping(ping: &PingRecord) -> Vec<u8> {
    serde_json::to_vec(ping).expect("record serialises")
}

pub fn decode_ping(bytes: &[u8]) -> Result<PingRecord, Undecodable> {
    decode(bytes)
}

/// A lead record as stored in `Tree::Leads` (key: its lead id).
pub fn encode_lead(lead: &LeadRecord) -> Vec<u8> {
    serde_json::to_vec(lead).expect("record serialises")
}

pub fn decode_lead(bytes: &[u8]) -> Result<LeadRecord, Undecodable> {
    decode(bytes)
}

/// Call records as JSON, exactly as they sit inside a stored record (the
/// admin views show them so).
pub fn calls_json(calls: &[CallRecord]) -> Vec<u8> {
    serde_json::to_vec(calls).expect("records serialise")
}

/// `Tree::Idempotency` value (key: `keys::idempotency`): the lead id the
/// key's first post made.
pub fn encode_idempotency(lead_id: &str) -> Vec<u8> {
    lead_id.as_bytes().to_vec()
}

pub fn decode_idempotency(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `Tree::Dedupe` value (key: `keys::dedupe`): when the consumer was sold,
/// in ms since the epoch, big-endian.
pub fn encode_dedupe(sold_ms: u64) -> Vec<u8> {
    sold_ms.to_be_bytes().to_vec()
}

/// The sale time of a dedupe value; 0 (long ago) if it is too short.
pub fn decode_dedupe(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// `Tree::Caps` (key: `keys::cap_sale`) and `Tree::Sales` (key: the lead
/// id) values: empty, the key is the record.
pub fn encode_marker() -> Vec<u8> {
    Vec::new()
}

/// A postback event in `Tree::Outbox` (contract §13): the exact body to
/// send, whom to, and how delivery went so far. Written in the same batch
/// as the sale or return it reports (`exchange::postbacks::add`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutboxEntry {
    pub v: u32,
    pub publisher: String,
    /// `lead_id:event` — unique per lead and event.
    pub event_id: String,
    /// The JSON body, signed and sent as it is.
    pub body: String,
    /// When the event happened (business time); retries end
    /// `[postbacks] give_up_after_s` later.
    pub created_ms: u64,
    #[serde(default)]
    pub attempts: u32,
    /// Why the last attempt failed (`timeout`, `http_503`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

pub fn encode_outbox(e: &OutboxEntry) -> Vec<u8> {
    serde_json::to_vec(e).expect("record serialises")
}

pub fn decode_outbox(bytes: &[u8]) -> Result<OutboxEntry, Undecodable> {
    decode(bytes)
}

/// `PingRecord::lead_json`: the ping fields of a lead (no PII), as JSON.
pub fn ping_lead_json(lead: &Lead) -> String {
    let mut out = Vec::with_capacity(256);
    lead.write_json(&mut out, false);
    String::from_utf8(out).expect("JSON writers emit UTF-8")
}

/// The lead a ping was run on, read back from `PingRecord::lead_json`
/// (for `ping_mismatch`), through `wire::parse_json` like any JSON.
pub fn ping_lead(ping: &PingRecord) -> Result<Lead, Undecodable> {
    let mut bytes = ping.lead_json.clone().into_bytes();
    let value = crate::wire::parse_json(&mut bytes).map_err(|e| Undecodable(e.to_string()))?;
    crate::lead::lead_from_value(&value, Stage::Ping, "lead")
        .map_err(|e| Undecodable(format!("{:?} at {:?}", e.kind, e.field)))
}

/// `LeadRecord::pii_json`: the full lead and its consent, as JSON — the
/// only PII leadx keeps.
pub fn pii_json(lead: &Lead, consent: Option<&Consent>) -> String {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"lead\":");
    lead.write_json(&mut out, true);
    out.extend_from_slice(b",\"consent\":");
    match consent {
        Some(c) => c.write_json(&mut out),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    String::from_utf8(out).expect("JSON writers emit UTF-8")
}

/// What `LeadRecord::pii_json` starts with when sealed: then the lowercase
/// hex of `KeyRing::seal`'s output, sealed with the lead id as context.
/// Anything else is PII in clear (a v1 config, or a record from before a
/// data key was set), read as it is.
pub const SEALED_PII_PREFIX: &str = "sealed:";

/// `pii_json` as it is to be stored: sealed under `ring` when there is a
/// data key, else as it is (v1). A seal cannot fail but for the OS's
/// randomness; then the PII is dropped (logged by lead id), never stored
/// in clear.
pub fn seal_pii(ring: Option<&crate::privacy::KeyRing>, lead_id: &str, pii_json: String) -> String {
    let Some(ring) = ring else {
        return pii_json;
    };
    match ring.seal(pii_json.as_bytes(), lead_id.as_bytes()) {
        Ok(sealed) => format!("{SEALED_PII_PREFIX}{}", crate::privacy::hex(&sealed)),
        Err(e) => {
            log::error!(target: "leadx::privacy", "PII not sealed, dropped lead_id={lead_id} error=\"{e}\"");
            format!("{SEALED_PII_PREFIX}-")
        }
    }
}

/// The stored `pii_json` in clear: opened under `ring` when sealed, as it
/// is when not. The error names what is wrong (no key, unknown key id,
/// tampered), never the data.
pub fn open_pii(
    ring: Option<&crate::privacy::KeyRing>,
    lead_id: &str,
    stored: &str,
) -> Result<String, String> {
    let Some(hex) = stored.strip_prefix(SEALED_PII_PREFIX) else {
        return Ok(stored.to_string());
    };
    let ring = ring.ok_or("sealed PII and no privacy.data_key to open it")?;
    let bytes = unhex(hex).ok_or("sealed PII is not hex")?;
    let clear = ring
        .open(&bytes, lead_id.as_bytes())
        .map_err(|e| e.to_string())?;
    String::from_utf8(clear).map_err(|_| "sealed PII is not UTF-8".to_string())
}

/// A stored `pii_json` sealed under an old key of `ring`, sealed again
/// under its current key (a rotation's re-seal sweep): `Ok(None)` when
/// there is nothing to do (in clear, erased, or sealed under the current
/// key already); `Err` names why it cannot be opened (an unknown key id:
/// the key left `old_data_keys` too early), never the data.
pub fn reseal_pii(
    ring: &crate::privacy::KeyRing,
    lead_id: &str,
    stored: &str,
) -> Result<Option<String>, String> {
    let Some(hex) = stored.strip_prefix(SEALED_PII_PREFIX).filter(|h| *h != "-") else {
        return Ok(None);
    };
    let bytes = unhex(hex).ok_or("sealed PII is not hex")?;
    if !ring.needs_reseal(&bytes).map_err(|e| e.to_string())? {
        return Ok(None);
    }
    let sealed = ring
        .reseal(&bytes, lead_id.as_bytes())
        .map_err(|e| match e {
            crate::privacy::seal::ResealError::Open(e) => e.to_string(),
            crate::privacy::seal::ResealError::Seal(e) => e.to_string(),
        })?;
    Ok(Some(format!(
        "{SEALED_PII_PREFIX}{}",
        crate::privacy::hex(&sealed)
    )))
}

/// The `Tree::Dedupe` keys of a lead in `vertical`: `write` is what a sale
/// stores (and claims), `lookup` what a post checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeKeys {
    pub write: Vec<Vec<u8>>,
    pub lookup: Vec<Vec<u8>>,
}

/// With a data key, dedupe keys are HMACs under the ring (contract §12):
/// written under the current key, looked up under every key of the ring
/// (a rotation keeps the window) and as the plain SHA-256 a store written
/// before the data key holds (migration: those age out with the window;
/// none is written any more). Without one (v1), the plain SHA-256 both.
pub fn dedupe_keys(
    ring: Option<&crate::privacy::KeyRing>,
    vertical: &str,
    lead: &Lead,
) -> DedupeKeys {
    use crate::privacy::DedupeField;
    let plain: Vec<Vec<u8>> = lead
        .dedupe_hashes()
        .iter()
        .flatten()
        .map(|h| keys::dedupe(vertical, h))
        .collect();
    let Some(ring) = ring else {
        return DedupeKeys {
            write: plain.clone(),
            lookup: plain,
        };
    };
    let email = lead.email.as_deref().map(str::to_lowercase);
    let values = [
        (DedupeField::Phone, lead.phone.as_deref()),
        (DedupeField::Email, email.as_deref()),
    ];
    let mut write = Vec::new();
    let mut lookup = Vec::new();
    for (field, value) in values {
        let Some(value) = value else { continue };
        for (i, h) in ring.dedupe_hashes(field, value.as_bytes()).enumerate() {
            let k = keys::dedupe(vertical, &h);
            if i == 0 {
                write.push(k.clone());
            }
            lookup.push(k);
        }
    }
    lookup.extend(plain);
    DedupeKeys { write, lookup }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| {
            let hi = char::from(p[0]).to_digit(16)?;
            let lo = char::from(p[1]).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
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

    /// Outbox states: the first byte of every `Tree::Outbox` key.
    const OUTBOX_PENDING: u8 = 0x00;
    const OUTBOX_FAILED: u8 = 0x01;

    /// A pending postback: `0x00 publisher \0 due_ms event_id`, so one
    /// publisher's events sort by when they are due and each publisher is
    /// its own range (`outbox_due_range`): a dead endpoint's backlog never
    /// hides another publisher's events.
    pub fn outbox_pending(publisher: &str, due_ms: u64, event_id: &str) -> Vec<u8> {
        let mut k = outbox_publisher(OUTBOX_PENDING, publisher);
        k.extend_from_slice(&due_ms.to_be_bytes());
        k.extend_from_slice(event_id.as_bytes());
        k
    }

    /// `[from, to)` of `publisher`'s pending events due at or before `now_ms`.
    pub fn outbox_due_range(publisher: &str, now_ms: u64) -> (Vec<u8>, Vec<u8>) {
        let from = outbox_publisher(OUTBOX_PENDING, publisher);
        let mut to = from.clone();
        to.extend_from_slice(&now_ms.saturating_add(1).to_be_bytes());
        (from, to)
    }

    /// Just past `publisher`'s pending events (exclusive end of its range).
    pub fn outbox_pending_end(publisher: &str) -> Vec<u8> {
        let mut k = outbox_publisher(OUTBOX_PENDING, publisher);
        *k.last_mut().expect("a separator byte") = 1;
        k
    }

    /// When the pending event under `key` of `publisher` is due.
    pub fn parse_outbox_due(publisher: &str, key: &[u8]) -> Option<u64> {
        let rest = key
            .strip_prefix(&[OUTBOX_PENDING])?
            .strip_prefix(publisher.as_bytes())?
            .strip_prefix(&[0])?;
        Some(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?))
    }

    /// Every pending event (all publishers) starts with this.
    pub fn outbox_pending_prefix() -> Vec<u8> {
        vec![OUTBOX_PENDING]
    }

    /// A postback given up after its retries: `0x01 publisher \0 event_id`.
    pub fn outbox_failed(publisher: &str, event_id: &str) -> Vec<u8> {
        let mut k = outbox_publisher(OUTBOX_FAILED, publisher);
        k.extend_from_slice(event_id.as_bytes());
        k
    }

    fn outbox_publisher(state: u8, publisher: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(publisher.len() + 24);
        k.push(state);
        k.extend_from_slice(publisher.as_bytes());
        k.push(0);
        k
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

    fn full_ping() -> PingRecord {
        PingRecord {
            v: RECORD_VERSION,
            ping_id: "0190a1b2c3d4e5f60718293a4b5c6d7e".into(),
            publisher: "pub1".into(),
            vertical: "auto".into(),
            test: false,
            created_ms: 1_700_000_000_123,
            expires_ms: 1_700_000_060_123,
            lead_json: r#"{"zip":"90210","state":"CA","age":30}"#.into(),
            bids: vec![StoredBid {
                buyer: "b1".into(),
                price: 1_250,
                payout: 1_000,
                priority: 2,
                buyer_ref: Some("ref-\"7\"".into()),
            }],
            calls: vec![
                CallRecord {
                    buyer: "b1".into(),
                    stage: CallStage::Ping,
                    outcome: CallOutcome::Bid,
                    reason: None,
                    latency_us: 4_200,
                    price: Some(1_250),
                },
                CallRecord {
                    buyer: "b2".into(),
                    stage: CallStage::Skip,
                    outcome: CallOutcome::Ineligible,
                    reason: Some("cap_reached".into()),
                    latency_us: 0,
                    price: None,
                },
            ],
            lead_id: Some("0190a1b2c3d4e5f60718293a4b5c6d7f".into()),
            direct: true,
            auction_us: 9_876,
        }
    }

    fn full_lead() -> LeadRecord {
        LeadRecord {
            v: RECORD_VERSION,
            lead_id: "0190a1b2c3d4e5f60718293a4b5c6d7f".into(),
            ping_id: "0190a1b2c3d4e5f60718293a4b5c6d7e".into(),
            publisher: "pub1".into(),
            vertical: "auto".into(),
            test: true,
            created_ms: 1_700_000_001_000,
            status: LeadStatus::Sold,
            reason: Some("x".into()),
            price: Some(1_250),
            payout: Some(1_000),
            buyer: Some("b1".into()),
            buyer_lead_id: Some("BL-9".into()),
            sold_ms: Some(1_700_000_001_500),
            returned_ms: None,
            return_reason: None,
            post_calls: vec![CallRecord {
                buyer: "b1".into(),
                stage: CallStage::Post,
                outcome: CallOutcome::Accepted,
                reason: None,
                latency_us: 12_000,
                price: Some(1_250),
            }],
            pii_json: r#"{"lead":{"email":"a@b.c"},"consent":null}"#.into(),
            pii_erased_ms: None,
            suppression_list: None,
        }
    }

    /// Bytes written by leadx before `records` owned the encoding (printed
    /// by `serde_json::to_vec` at 05aae72): they decode to the same records
    /// and today's encoders write them byte for byte.
    #[test]
    fn records_written_before_the_codec_moved_here_still_decode() {
        let ping: &[u8] = br#"{"v":1,"ping_id":"0190a1b2c3d4e5f60718293a4b5c6d7e","publisher":"pub1","vertical":"auto","test":false,"created_ms":1700000000123,"expires_ms":1700000060123,"lead_json":"{\"zip\":\"90210\",\"state\":\"CA\",\"age\":30}","bids":[{"buyer":"b1","price":1250,"payout":1000,"priority":2,"buyer_ref":"ref-\"7\""}],"calls":[{"buyer":"b1","stage":"ping","outcome":"bid","latency_us":4200,"price":1250},{"buyer":"b2","stage":"skip","outcome":"ineligible","reason":"cap_reached","latency_us":0}],"lead_id":"0190a1b2c3d4e5f60718293a4b5c6d7f","direct":true,"auction_us":9876}"#;
        let lead: &[u8] = br#"{"v":1,"lead_id":"0190a1b2c3d4e5f60718293a4b5c6d7f","ping_id":"0190a1b2c3d4e5f60718293a4b5c6d7e","publisher":"pub1","vertical":"auto","test":true,"created_ms":1700000001000,"status":"sold","reason":"x","price":1250,"payout":1000,"buyer":"b1","buyer_lead_id":"BL-9","sold_ms":1700000001500,"post_calls":[{"buyer":"b1","stage":"post","outcome":"accepted","latency_us":12000,"price":1250}],"pii_json":"{\"lead\":{\"email\":\"a@b.c\"},\"consent\":null}"}"#;
        assert_eq!(decode_ping(ping).unwrap(), full_ping());
        assert_eq!(encode_ping(&full_ping()), ping);
        assert_eq!(decode_lead(lead).unwrap(), full_lead());
        assert_eq!(encode_lead(&full_lead()), lead);
        let calls = br#"[{"buyer":"b1","stage":"post","outcome":"accepted","latency_us":12000,"price":1250}]"#;
        assert_eq!(calls_json(&full_lead().post_calls), calls);
        // A minimal ping of an early version (optional fields absent).
        let early = br#"{"v":1,"ping_id":"P","publisher":"p","vertical":"auto","test":false,"created_ms":1,"expires_ms":2,"lead_json":"{}","bids":[],"calls":[]}"#;
        let p = decode_ping(early).unwrap();
        assert_eq!((p.lead_id, p.direct, p.auction_us), (None, false, 0));
        assert!(decode_ping(b"{\"v\":1").is_err());
        assert!(decode_lead(ping).is_err(), "a ping is not a lead");
        // The other trees' values.
        assert_eq!(
            encode_dedupe(1_700_000_000_123),
            1_700_000_000_123u64.to_be_bytes()
        );
        assert_eq!(
            decode_dedupe(&1_700_000_000_123u64.to_be_bytes()),
            1_700_000_000_123
        );
        assert_eq!(decode_dedupe(b"short"), 0);
        assert_eq!(encode_idempotency("L1"), b"L1");
        assert_eq!(decode_idempotency(b"L1"), "L1");
        assert!(encode_marker().is_empty());
    }

    #[test]
    fn the_pinged_lead_reads_back_from_its_record() {
        let lead = Lead {
            zip: "90210".into(),
            state: "CA".into(),
            age: Some(30),
            ..Lead::default()
        };
        let mut p = full_ping();
        p.lead_json = ping_lead_json(&lead);
        let back = ping_lead(&p).unwrap();
        assert_eq!(back.ping_field_mismatch(&lead), None, "{}", p.lead_json);
        p.lead_json = "{".into();
        assert!(ping_lead(&p).is_err());
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
    fn outbox_keys_sort_by_due_time_within_a_publisher_and_stay_apart() {
        let (from, to) = keys::outbox_due_range("p1", 1_000);
        let due = keys::outbox_pending("p1", 1_000, "L:sold");
        assert!(from <= due && due < to);
        assert!(keys::outbox_pending("p1", 1_001, "L:sold") >= to);
        for other in [
            keys::outbox_pending("p10", 5, "L:sold"),
            keys::outbox_pending("p", 5, "L:sold"),
            keys::outbox_failed("p1", "L:sold"),
        ] {
            assert!(!(from <= other && other < to), "{other:?}");
        }
        assert!(due.starts_with(&keys::outbox_pending_prefix()));
        assert!(due < keys::outbox_pending_end("p1"));
        assert!(keys::outbox_pending("p1", u64::MAX, "z") < keys::outbox_pending_end("p1"));
        assert!(keys::outbox_pending("p1\u{1}", 0, "z") >= keys::outbox_pending_end("p1"));
        assert_eq!(keys::parse_outbox_due("p1", &due), Some(1_000));
        assert_eq!(keys::parse_outbox_due("p10", &due), None);
        assert!(!keys::outbox_failed("p1", "L:sold").starts_with(&keys::outbox_pending_prefix()));
        let e = OutboxEntry {
            v: RECORD_VERSION,
            publisher: "p1".into(),
            event_id: "L:sold".into(),
            body: r#"{"event":"sold"}"#.into(),
            created_ms: 7,
            attempts: 2,
            last_error: Some("timeout".into()),
        };
        assert_eq!(decode_outbox(&encode_outbox(&e)).unwrap(), e);
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
            returned_ms: None,
            return_reason: None,
            post_calls: vec![],
            pii_json: "{}".into(),
            pii_erased_ms: None,
            suppression_list: None,
        };
        assert_eq!(decode_lead(&encode_lead(&r)).unwrap(), r);
    }

    /// The enum is stored as the very words the string field held, so
    /// records written before it read back and new ones read the same.
    #[test]
    fn lead_status_is_stored_as_the_same_words() {
        for (status, word) in [
            (LeadStatus::Posting, "posting"),
            (LeadStatus::Sold, "sold"),
            (LeadStatus::Unsold, "unsold"),
            (LeadStatus::Returned, "returned"),
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

    /// A return (contract §13) adds two optional fields: records written
    /// before it decode with neither, and a sold record's bytes are the
    /// same as before; a returned one reads back whole.
    #[test]
    fn returned_leads_round_trip_and_records_written_before_returns_still_decode() {
        let old = br#"{"v":1,"lead_id":"0190a1b2c3d4e5f60718293a4b5c6d7f","ping_id":"0190a1b2c3d4e5f60718293a4b5c6d7e","publisher":"pub1","vertical":"auto","test":true,"created_ms":1700000001000,"status":"sold","reason":"x","price":1250,"payout":1000,"buyer":"b1","buyer_lead_id":"BL-9","sold_ms":1700000001500,"post_calls":[{"buyer":"b1","stage":"post","outcome":"accepted","latency_us":12000,"price":1250}],"pii_json":"{\"lead\":{\"email\":\"a@b.c\"},\"consent\":null}"}"#;
        let rec = decode_lead(old).unwrap();
        assert_eq!(
            (rec.returned_ms, rec.return_reason.as_deref()),
            (None, None)
        );
        assert_eq!(encode_lead(&rec), old, "a sold record is written as before");
        let mut returned = rec;
        returned.status = LeadStatus::Returned;
        returned.returned_ms = Some(1_700_000_100_000);
        returned.return_reason = Some("bad phone, \"disconnected\"".into());
        let bytes = encode_lead(&returned);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains(r#""status":"returned""#), "{text}");
        assert!(text.contains(r#""returned_ms":1700000100000"#), "{text}");
        assert_eq!(decode_lead(&bytes).unwrap(), returned);
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

    #[test]
    fn sealed_pii_opens_only_with_its_key_and_lead_id_and_clear_pii_reads_as_is() {
        use crate::privacy::{DataKey, KeyRing};
        let k1 = DataKey::new([7; 32]);
        let ring = KeyRing::new(&k1, &[]).unwrap();
        let pii = r#"{"lead":{"phone":"+15552345678"},"consent":null}"#;
        let sealed = seal_pii(Some(&ring), "L1", pii.to_string());
        assert!(sealed.starts_with(SEALED_PII_PREFIX), "{sealed}");
        assert!(!sealed.contains("5552345678"));
        assert_eq!(open_pii(Some(&ring), "L1", &sealed).unwrap(), pii);
        assert!(
            open_pii(Some(&ring), "L2", &sealed).is_err(),
            "another lead id"
        );
        assert!(open_pii(None, "L1", &sealed).is_err(), "no key");
        let other = KeyRing::new(&DataKey::new([8; 32]), &[]).unwrap();
        assert!(
            open_pii(Some(&other), "L1", &sealed).is_err(),
            "another key"
        );
        let rotated = KeyRing::new(&DataKey::new([8; 32]), &[k1]).unwrap();
        assert_eq!(open_pii(Some(&rotated), "L1", &sealed).unwrap(), pii);
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(open_pii(Some(&ring), "L1", &tampered).is_err(), "tampered");
        assert!(open_pii(Some(&ring), "L1", "sealed:zz").is_err());
        // v1: no key, stored and read as it is.
        assert_eq!(seal_pii(None, "L1", pii.to_string()), pii);
        assert_eq!(open_pii(Some(&ring), "L1", pii).unwrap(), pii);
    }

    /// A rotation's re-seal: an old key's value is sealed again under the
    /// current key and still opens; clear, erased, dropped and current
    /// values are left alone; a value under a key the ring lacks is an
    /// error naming the config keys, never the data.
    #[test]
    fn reseal_pii_moves_old_key_values_to_the_current_key_only() {
        use crate::privacy::{DataKey, KeyRing};
        let (a, b) = (DataKey::new([1; 32]), DataKey::new([2; 32]));
        let old = KeyRing::new(&a, &[]).unwrap();
        let rotated = KeyRing::new(&b, &[a]).unwrap();
        let pii = r#"{"lead":{"phone":"+15552345678"},"consent":null}"#;
        let under_a = seal_pii(Some(&old), "L1", pii.to_string());
        let under_b = reseal_pii(&rotated, "L1", &under_a).unwrap().unwrap();
        assert_ne!(under_a, under_b);
        let only_b = KeyRing::new(&DataKey::new([2; 32]), &[]).unwrap();
        assert_eq!(open_pii(Some(&only_b), "L1", &under_b).unwrap(), pii);
        for untouched in [pii, ERASED_PII, "sealed:-", under_b.as_str()] {
            assert_eq!(
                reseal_pii(&rotated, "L1", untouched),
                Ok(None),
                "{untouched}"
            );
        }
        let lost = reseal_pii(&only_b, "L1", &under_a).unwrap_err();
        assert!(
            lost.contains("old_data_keys") && !lost.contains("5552345678"),
            "{lost}"
        );
        let mut rec = full_lead();
        assert!(rec.erase_pii(7) && !rec.erase_pii(8));
        assert_eq!(
            (rec.pii_json.as_str(), rec.pii_erased_ms),
            (ERASED_PII, Some(7))
        );
    }
}
