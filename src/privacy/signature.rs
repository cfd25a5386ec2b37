//! Signed requests (contract §12):
//!
//! ```text
//! Leadx-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
//! ```
//!
//! Checked in this order, each failure its own [`SignatureError`] kind for
//! the log (all are 401 `bad_signature` to the client):
//!
//! 1. **Parse, strictly**: exactly `t=` then `,v1=`, nothing else; `t` is
//!    1–12 ASCII digits, `v1` is 64 hex digits; surrounding whitespace
//!    is ignored, none inside. One `v1` only: a publisher has one signing
//!    secret, so a second signature could only be noise, and allowing
//!    several would let a client make leadx compute HMACs in a loop.
//! 2. **Fresh**: `|now − t| ≤ 300 s` on the exchange's clock (the caller
//!    passes `Exchange::now_ms()`), so a captured request stops working
//!    after five minutes.
//! 3. **Authentic**: HMAC-SHA256 over the bytes `t` as sent, `.`, the raw
//!    body, compared in constant time (`ring::hmac::verify`).
//! 4. **Not replayed**: the signature goes into a [`ReplayCache`]; the
//!    same one again within its five minutes is refused. Only authentic
//!    signatures get there, so nobody without the secret can fill it.

use std::collections::BTreeSet;
use std::fmt;

use ring::hmac;

use crate::limits;
use crate::sync::Mutex;

/// A publisher's signing key, built once from `signing_secret` when the
/// config is loaded.
#[derive(Clone)]
pub struct SigningKey(hmac::Key);

impl SigningKey {
    pub fn new(secret: &[u8]) -> SigningKey {
        SigningKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The header value a client sends for `body` at `t_s` (tests, the
    /// load tester, docs).
    pub fn sign(&self, t_s: u64, body: &[u8]) -> String {
        let t = t_s.to_string();
        let tag = hmac::sign(&self.0, &message(t.as_bytes(), body));
        format!("t={t},v1={}", super::hex(tag.as_ref()))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// Why a signed request is refused. `kind()` names it for logs and
/// metrics; every kind answers 401 `bad_signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// No `Leadx-Signature` header, from a publisher that must sign.
    Missing,
    /// The header is not `t=<digits>,v1=<64 hex>`.
    Malformed,
    /// `t` is more than 300 s from leadx's clock (`skew_s` = t − now).
    Stale { skew_s: i64 },
    /// The HMAC does not match: wrong secret, or body or `t` changed.
    Mismatch,
    /// This exact signature was already accepted.
    Replayed,
    /// The replay cache is full and `t` is no newer than the oldest
    /// signature it had to forget: it cannot tell, so it refuses.
    ReplayCacheFull,
}

impl SignatureError {
    pub fn kind(&self) -> &'static str {
        match self {
            SignatureError::Missing => "missing",
            SignatureError::Malformed => "malformed",
            SignatureError::Stale { .. } => "stale",
            SignatureError::Mismatch => "mismatch",
            SignatureError::Replayed => "replayed",
            SignatureError::ReplayCacheFull => "replay_cache_full",
        }
    }
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::Stale { skew_s } => write!(f, "signature stale ({skew_s:+} s)"),
            other => write!(f, "signature {}", other.kind()),
        }
    }
}

/// A parsed `Leadx-Signature` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader<'a> {
    /// `t` as sent: the HMAC covers these bytes.
    pub t_digits: &'a [u8],
    pub t_s: u64,
    pub v1: [u8; 32],
}

/// Parses a header value strictly (see the module doc).
pub fn parse_header(value: &[u8]) -> Result<SignatureHeader<'_>, SignatureError> {
    if value.len() > limits::SIGNATURE_HEADER_BYTES_MAX {
        return Err(SignatureError::Malformed);
    }
    let value = value.trim_ascii();
    let rest = value.strip_prefix(b"t=").ok_or(SignatureError::Malformed)?;
    let comma = rest
        .iter()
        .position(|&b| b == b',')
        .ok_or(SignatureError::Malformed)?;
    let (t_digits, rest) = (&rest[..comma], &rest[comma + 1..]);
    if !(1..=12).contains(&t_digits.len()) || !t_digits.iter().all(u8::is_ascii_digit) {
        return Err(SignatureError::Malformed);
    }
    let t_s = t_digits
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    let hex = rest.strip_prefix(b"v1=").ok_or(SignatureError::Malformed)?;
    if hex.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let mut v1 = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16);
        let lo = char::from(pair[1]).to_digit(16);
        let (Some(hi), Some(lo)) = (hi, lo) else {
            return Err(SignatureError::Malformed);
        };
        v1[i] = (hi * 16 + lo) as u8;
    }
    Ok(SignatureHeader { t_digits, t_s, v1 })
}

/// Checks a request's signature: `header` is the `Leadx-Signature` value
/// (`None` when absent), `body` the raw body bytes, `now_ms` the
/// exchange's clock. On success the signature is in `cache` and a second
/// use is refused.
pub fn verify(
    key: &SigningKey,
    header: Option<&[u8]>,
    body: &[u8],
    now_ms: u64,
    cache: &ReplayCache,
) -> Result<(), SignatureError> {
    let header = parse_header(header.ok_or(SignatureError::Missing)?)?;
    let now_s = now_ms / 1000;
    let skew_s = header.t_s as i64 - now_s as i64;
    if skew_s.unsigned_abs() > limits::SIGNATURE_TOLERANCE_S {
        return Err(SignatureError::Stale { skew_s });
    }
    // One copy of the body (bounded by `server.body_bytes_max`) so that
    // ring compares the whole tag in constant time for us.
    hmac::verify(&key.0, &message(header.t_digits, body), &header.v1)
        .map_err(|_| SignatureError::Mismatch)?;
    cache.insert(header.t_s, &header.v1, now_s)
}

/// `"<t>.<body>"`, the signed message.
fn message(t_digits: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(t_digits.len() + 1 + body.len());
    m.extend_from_slice(t_digits);
    m.push(b'.');
    m.extend_from_slice(body);
    m
}

/// Signatures accepted in the last [`limits::SIGNATURE_TOLERANCE_S`],
/// so that none is accepted twice.
///
/// Memory is bounded twice over: an entry goes once its `t` is too old to
/// pass the freshness check anyway, and there are never more than `cap`
/// entries (default [`limits::REPLAY_CACHE_ENTRIES_MAX`], about 48 bytes
/// each: 24 MiB). When full, the entry with the oldest `t` is forgotten
/// and that `t` becomes a floor: a signature with `t` at or below it might
/// be the forgotten one, so it is refused (`ReplayCacheFull`) rather than
/// risk a replay. Clients sign just before sending, so their `t` is near
/// the newest and a full cache costs honest traffic nothing until more
/// than `cap` signed requests arrive within one window.
///
/// A `crate::sync::Mutex` guards a B-tree insert and a few pops; nothing
/// parks under it.
pub struct ReplayCache {
    cap: usize,
    inner: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// (t, first 16 bytes of the tag): 2^-128 collisions are no concern.
    entries: BTreeSet<(u64, [u8; 16])>,
    /// Highest `t` forgotten for room, while it can still pass freshness.
    floor_t: Option<u64>,
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache::with_capacity(limits::REPLAY_CACHE_ENTRIES_MAX)
    }
}

impl ReplayCache {
    pub fn with_capacity(cap: usize) -> ReplayCache {
        assert!(cap > 0, "a replay cache holds at least one signature");
        ReplayCache {
            cap,
            inner: Mutex::new(Seen::default()),
        }
    }

    /// Signatures held now.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records an authentic signature; refuses one already recorded.
    fn insert(&self, t_s: u64, tag: &[u8; 32], now_s: u64) -> Result<(), SignatureError> {
        let mut key = (t_s, [0u8; 16]);
        key.1.copy_from_slice(&tag[..16]);
        let tolerance = limits::SIGNATURE_TOLERANCE_S;
        let mut seen = self.inner.lock();
        // Whatever cannot pass the freshness check any more can go.
        while let Some(&(t, _)) = seen.entries.first() {
            if t + tolerance >= now_s {
                break;
            }
            seen.entries.pop_first();
        }
        if seen.floor_t.is_some_and(|f| f + tolerance < now_s) {
            seen.floor_t = None;
        }
        if seen.entries.contains(&key) {
            return Err(SignatureError::Replayed);
        }
        if seen.floor_t.is_some_and(|f| t_s <= f) {
            return Err(SignatureError::ReplayCacheFull);
        }
        if seen.entries.len() >= self.cap {
            // The new entry may sort below the floor this sets; it is in
            // the cache, so `contains` still catches its replay.
            if let Some((t, _)) = seen.entries.pop_first() {
                seen.floor_t = Some(seen.floor_t.map_or(t, |f| f.max(t)));
            }
        }
        seen.entries.insert(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    const NOW_S: u64 = 1_800_000_000;
    const BODY: &[u8] = br#"{"vertical":"auto_insurance","lead":{"zip":"10001"}}"#;

    fn key() -> SigningKey {
        SigningKey::new(b"pub1-signing-secret-0123456789")
    }

    fn check(
        header: Option<&str>,
        body: &[u8],
        clock: &ManualClock,
        cache: &ReplayCache,
    ) -> Result<(), SignatureError> {
        verify(
            &key(),
            header.map(str::as_bytes),
            body,
            clock.now_ms(),
            cache,
        )
    }

    #[test]
    fn a_right_signature_passes_once() {
        let clock = ManualClock::at(NOW_S * 1000);
        let cache = ReplayCache::default();
        let h = key().sign(NOW_S, BODY);
        assert!(h.starts_with(&format!("t={NOW_S},v1=")), "{h}");
        assert_eq!(check(Some(&h), BODY, &clock, &cache), Ok(()));
        assert_eq!(
            check(Some(&h), BODY, &clock, &cache),
            Err(SignatureError::Replayed)
        );
        clock.advance_ms(299_000);
        assert_eq!(
            check(Some(&h), BODY, &clock, &cache),
            Err(SignatureError::Replayed)
        );
        // Surrounding whitespace and upper-case hex are the same signature.
        let (t, v1) = h.split_once(",v1=").unwrap();
        let upper = format!(" {t},v1={} ", v1.to_uppercase());
        assert_eq!(
            check(Some(&upper), BODY, &clock, &cache),
            Err(SignatureError::Replayed)
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_on_the_exchange_clock() {
        let clock = ManualClock::at(NOW_S * 1000);
        let cache = ReplayCache::default();
        let tol = limits::SIGNATURE_TOLERANCE_S;
        for t in [NOW_S - tol, NOW_S + tol] {
            assert_eq!(
                check(Some(&key().sign(t, BODY)), BODY, &clock, &cache),
                Ok(()),
                "t {t}"
            );
        }
        assert_eq!(
            check(
                Some(&key().sign(NOW_S - tol - 1, BODY)),
                BODY,
                &clock,
                &cache
            ),
            Err(SignatureError::Stale { skew_s: -301 })
        );
        assert_eq!(
            check(
                Some(&key().sign(NOW_S + tol + 1, BODY)),
                BODY,
                &clock,
                &cache
            ),
            Err(SignatureError::Stale { skew_s: 301 })
        );
        // A signature that passed goes stale when the clock moves on.
        let h = key().sign(NOW_S + 1, BODY);
        assert_eq!(check(Some(&h), BODY, &clock, &cache), Ok(()));
        clock.advance_ms((tol + 2) * 1000);
        assert_eq!(
            check(Some(&h), BODY, &clock, &cache),
            Err(SignatureError::Stale { skew_s: -301 })
        );
    }

    #[test]
    fn tampering_and_a_wrong_secret_are_a_mismatch() {
        let clock = ManualClock::at(NOW_S * 1000);
        let cache = ReplayCache::default();
        let h = key().sign(NOW_S, BODY);
        let mut body = BODY.to_vec();
        body[20] ^= 1;
        assert_eq!(
            check(Some(&h), &body, &clock, &cache),
            Err(SignatureError::Mismatch)
        );
        let moved_t = h.replace(&format!("t={NOW_S}"), &format!("t={}", NOW_S + 1));
        assert_eq!(
            check(Some(&moved_t), BODY, &clock, &cache),
            Err(SignatureError::Mismatch)
        );
        let flipped = format!(
            "{}{}",
            &h[..h.len() - 1],
            if h.ends_with('0') { '1' } else { '0' }
        );
        assert_eq!(
            check(Some(&flipped), BODY, &clock, &cache),
            Err(SignatureError::Mismatch)
        );
        let other = SigningKey::new(b"another-secret-0123456789").sign(NOW_S, BODY);
        assert_eq!(
            check(Some(&other), BODY, &clock, &cache),
            Err(SignatureError::Mismatch)
        );
        // t with leading zeros is other bytes: signed as sent, it passes.
        let padded = format!("t=0{NOW_S},v1={}", {
            let tag = hmac::sign(&key().0, &message(format!("0{NOW_S}").as_bytes(), BODY));
            crate::privacy::hex(tag.as_ref())
        });
        assert_eq!(check(Some(&padded), BODY, &clock, &cache), Ok(()));
        assert_eq!(cache.len(), 1, "failures never enter the cache");
    }

    #[test]
    fn anything_but_the_exact_shape_is_malformed() {
        let clock = ManualClock::at(NOW_S * 1000);
        let cache = ReplayCache::default();
        let h = key().sign(NOW_S, BODY);
        let v1 = h.split_once(",v1=").unwrap().1.to_string();
        let bad = [
            String::new(),
            "t=".into(),
            format!("v1={v1},t={NOW_S}"),
            format!("t={NOW_S}"),
            format!("t={NOW_S},v1={v1},v1={v1}"),
            format!("t={NOW_S}, v1={v1}"),
            format!("t= {NOW_S},v1={v1}"),
            format!("t=+{NOW_S},v1={v1}"),
            format!("t=-{NOW_S},v1={v1}"),
            format!("t=1234567890123,v1={v1}"),
            format!("t={NOW_S},v1={}", &v1[..63]),
            format!("t={NOW_S},v1={v1}0"),
            format!("t={NOW_S},v1={}g", &v1[..63]),
            format!("t={NOW_S},v0={v1}"),
            format!("t={NOW_S};v1={v1}"),
            format!("T={NOW_S},v1={v1}"),
            format!("t={NOW_S},v1={v1}{}", " ".repeat(300)),
            format!("t={NOW_S},v1={}é", &v1[..62]),
        ];
        for b in bad {
            assert_eq!(
                check(Some(&b), BODY, &clock, &cache),
                Err(SignatureError::Malformed),
                "{b:?}"
            );
        }
        assert_eq!(
            check(None, BODY, &clock, &cache),
            Err(SignatureError::Missing)
        );
        let kinds: Vec<&str> = [
            SignatureError::Missing,
            SignatureError::Malformed,
            SignatureError::Stale { skew_s: 1 },
            SignatureError::Mismatch,
            SignatureError::Replayed,
            SignatureError::ReplayCacheFull,
        ]
        .iter()
        .map(SignatureError::kind)
        .collect();
        let mut distinct = kinds.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 6, "{kinds:?}");
        assert_eq!(format!("{:?}", key()), "SigningKey(***)");
    }

    #[test]
    fn the_replay_cache_forgets_what_went_stale_and_stays_within_its_cap() {
        let clock = ManualClock::at(NOW_S * 1000);
        let cache = ReplayCache::with_capacity(4);
        let sign = |t: u64, i: u32| key().sign(t, format!("{{\"n\":{i}}}").as_bytes());
        let body = |i: u32| format!("{{\"n\":{i}}}");
        // Four fit.
        for i in 0..4 {
            assert_eq!(
                check(
                    Some(&sign(NOW_S - 10 + u64::from(i), i)),
                    body(i).as_bytes(),
                    &clock,
                    &cache
                ),
                Ok(())
            );
        }
        // A fifth, newer, makes room by forgetting the oldest (t = now-10)...
        assert_eq!(
            check(Some(&sign(NOW_S, 4)), body(4).as_bytes(), &clock, &cache),
            Ok(())
        );
        assert_eq!(cache.len(), 4);
        // ...which is then refused as possibly replayed, not accepted again,
        assert_eq!(
            check(
                Some(&sign(NOW_S - 10, 0)),
                body(0).as_bytes(),
                &clock,
                &cache
            ),
            Err(SignatureError::ReplayCacheFull)
        );
        // while what is still held is caught as a replay.
        assert_eq!(
            check(
                Some(&sign(NOW_S - 9, 1)),
                body(1).as_bytes(),
                &clock,
                &cache
            ),
            Err(SignatureError::Replayed)
        );
        // Once every entry can no longer pass freshness, all are dropped
        // and the floor with them.
        clock.advance_ms((limits::SIGNATURE_TOLERANCE_S + 1) * 1000);
        assert_eq!(
            check(
                Some(&sign(NOW_S + 301, 9)),
                body(9).as_bytes(),
                &clock,
                &cache
            ),
            Ok(())
        );
        assert_eq!(cache.len(), 1);
    }
}
