//! PII sealing: AES-256-GCM (ring) under a key derived from the data key,
//! every sealed value carrying the id of the key that sealed it, so a
//! [`KeyRing`] of the current key and `old_data_keys` opens anything any
//! of them sealed, and a rotation sweep can tell what to seal again.
//!
//! A sealed value is
//!
//! ```text
//! 0x01 | key id (4) | nonce (12) | ciphertext | GCM tag (16)
//! ```
//!
//! 33 bytes more than the plaintext. The nonce is 96 random bits from the
//! OS (`getrandom`) for every seal: with random nonces one key may seal
//! about 2^32 values before the chance of a repeat stops being negligible
//! (NIST SP 800-38D §8.3) — billions of leads, far past any sane rotation.
//! The header and the caller's `context` (the lead id) are authenticated
//! as associated data: a value moved to another record, or its key id
//! edited, does not open.

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use super::dedupe::DedupeKey;
use super::DataKey;

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;
const TAG_LEN: usize = 16;
/// Bytes a sealed value has beyond its plaintext.
pub const SEAL_OVERHEAD_BYTES: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// Which data key sealed a value: derived from the key (HKDF, label
/// `key-id`), so it names the key without saying anything about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::hex(&self.0))
    }
}

/// One data key's AEAD key, id and dedupe key.
struct Key {
    id: KeyId,
    aead: LessSafeKey,
    dedupe: DedupeKey,
}

impl Key {
    fn new(data_key: &DataKey) -> Key {
        let mut id = [0u8; KEY_ID_LEN];
        data_key.derive(b"key-id", &mut id);
        let mut aead_key = [0u8; 32];
        data_key.derive(b"pii-aes-256-gcm", &mut aead_key);
        let unbound =
            UnboundKey::new(&AES_256_GCM, &aead_key).expect("AES-256-GCM takes a 32-byte key");
        Key {
            id: KeyId(id),
            aead: LessSafeKey::new(unbound),
            dedupe: DedupeKey::new(data_key),
        }
    }
}

/// The current data key (which seals) and the old ones (which still open).
pub struct KeyRing {
    current: Key,
    old: Vec<Key>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let old: Vec<KeyId> = self.old.iter().map(|k| k.id).collect();
        f.debug_struct("KeyRing")
            .field("current", &self.current.id)
            .field("old", &old)
            .finish()
    }
}

/// A key ring that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRingError {
    /// `old[index]` has the id of the current key or of an earlier old key:
    /// the same key listed twice (or, once in 4 billion, two keys whose ids
    /// collide — make a new key).
    DuplicateKey { old_index: usize },
}

impl fmt::Display for KeyRingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRingError::DuplicateKey { old_index } => write!(
                f,
                "old key {old_index} is the current key or an earlier old key"
            ),
        }
    }
}

/// Why a value did not seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    /// The OS gave no random bytes for the nonce.
    NoRandomness,
    /// Longer than AES-GCM can seal under one nonce (64 GiB).
    TooLong,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::NoRandomness => f.write_str("the OS gave no random bytes for a nonce"),
            SealError::TooLong => f.write_str("value too long to seal"),
        }
    }
}

/// Why a sealed value did not open. Each is a distinct case for the log;
/// none carries any of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than a header, a nonce and a tag.
    Truncated,
    /// A format this leadx does not know (written by a later one?).
    UnknownVersion(u8),
    /// Sealed under a key not in the ring: an old key was dropped from
    /// `old_data_keys` before everything it sealed was sealed again.
    UnknownKey(KeyId),
    /// The key is known but the value does not authenticate: tampered
    /// with, truncated, or moved from another record (context).
    Forged,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Truncated => f.write_str("sealed value truncated"),
            OpenError::UnknownVersion(v) => write!(f, "unknown sealed format {v}"),
            OpenError::UnknownKey(id) => write!(
                f,
                "sealed under key {id}, which is neither privacy.data_key nor in privacy.old_data_keys"
            ),
            OpenError::Forged => f.write_str("sealed value does not authenticate"),
        }
    }
}

impl std::error::Error for OpenError {}

impl KeyRing {
    pub fn new(current: &DataKey, old: &[DataKey]) -> Result<KeyRing, KeyRingError> {
        let current = Key::new(current);
        let mut keys: Vec<Key> = Vec::with_capacity(old.len());
        for (i, k) in old.iter().enumerate() {
            let k = Key::new(k);
            if k.id == current.id || keys.iter().any(|o| o.id == k.id) {
                return Err(KeyRingError::DuplicateKey { old_index: i });
            }
            keys.push(k);
        }
        Ok(KeyRing { current, old: keys })
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> KeyId {
        self.current.id
    }

    /// Seals `plaintext` under the current key; `context` (the record's id)
    /// must be given again to open it.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|_| SealError::NoRandomness)?;
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD_BYTES);
        out.push(VERSION);
        out.extend_from_slice(&self.current.id.0);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let aad = aad(&out[..HEADER_LEN], context);
        let start = HEADER_LEN + NONCE_LEN;
        let tag = self
            .current
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut out[start..],
            )
            .map_err(|_| SealError::TooLong)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a value any key of the ring sealed with this `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, OpenError> {
        let id = sealed_key_id(sealed)?;
        let key = self.key(id).ok_or(OpenError::UnknownKey(id))?;
        let nonce = Nonce::try_assume_unique_for_key(&sealed[HEADER_LEN..HEADER_LEN + NONCE_LEN])
            .map_err(|_| OpenError::Truncated)?;
        let aad = aad(&sealed[..HEADER_LEN], context);
        let mut buf = sealed[HEADER_LEN + NONCE_LEN..].to_vec();
        let len = key
            .aead
            .open_in_place(nonce, Aad::from(&aad), &mut buf)
            .map_err(|_| OpenError::Forged)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Whether `sealed` was sealed under an old key (a rotation sweep seals
    /// it again under the current one: [`KeyRing::reseal`]).
    pub fn needs_reseal(&self, sealed: &[u8]) -> Result<bool, OpenError> {
        Ok(sealed_key_id(sealed)? != self.current.id)
    }

    /// Opens `sealed` and seals it again under the current key.
    pub fn reseal(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, ResealError> {
        let plain = self.open(sealed, context).map_err(ResealError::Open)?;
        self.seal(&plain, context).map_err(ResealError::Seal)
    }

    /// The dedupe keys, current first (see `dedupe`).
    pub(super) fn dedupe_keys(&self) -> impl Iterator<Item = &DedupeKey> {
        std::iter::once(&self.current.dedupe).chain(self.old.iter().map(|k| &k.dedupe))
    }

    fn key(&self, id: KeyId) -> Option<&Key> {
        std::iter::once(&self.current)
            .chain(&self.old)
            .find(|k| k.id == id)
    }
}

/// [`KeyRing::reseal`] failed opening or sealing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResealError {
    Open(OpenError),
    Seal(SealError),
}

/// The key id of a sealed value, after checking its length and version.
pub fn sealed_key_id(sealed: &[u8]) -> Result<KeyId, OpenError> {
    if sealed.len() < SEAL_OVERHEAD_BYTES {
        return Err(OpenError::Truncated);
    }
    if sealed[0] != VERSION {
        return Err(OpenError::UnknownVersion(sealed[0]));
    }
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&sealed[1..HEADER_LEN]);
    Ok(KeyId(id))
}

/// Associated data: the header, then the context.
fn aad(header: &[u8], context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + context.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(context);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_of(current: u8, old: &[u8]) -> KeyRing {
        let old: Vec<DataKey> = old.iter().map(|&b| DataKey::new([b; 32])).collect();
        KeyRing::new(&DataKey::new([current; 32]), &old).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_with_its_context_and_hides_the_plaintext() {
        let ring = ring_of(1, &[]);
        let plain = b"{\"phone\":\"+15552345678\",\"email\":\"jo@example.com\"}";
        let sealed = ring.seal(plain, b"lead-1").unwrap();
        assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD_BYTES);
        assert!(!sealed.windows(10).any(|w| w == b"5552345678"));
        assert_eq!(ring.open(&sealed, b"lead-1").unwrap(), plain);
        assert_eq!(ring.open(&sealed, b"lead-2"), Err(OpenError::Forged));
        // Fresh nonce every time: the same plaintext never seals the same.
        assert_ne!(ring.seal(plain, b"lead-1").unwrap(), sealed);
        assert_eq!(ring.open(&ring.seal(b"", b"").unwrap(), b"").unwrap(), b"");
    }

    #[test]
    fn every_tampered_byte_is_refused() {
        let ring = ring_of(1, &[2]);
        let sealed = ring.seal(b"PII here", b"ctx").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            let err = ring.open(&bad, b"ctx").unwrap_err();
            let want = match i {
                0 => OpenError::UnknownVersion(VERSION ^ 1),
                1..HEADER_LEN => {
                    let mut id = ring.current_id().0;
                    id[i - 1] ^= 1;
                    OpenError::UnknownKey(KeyId(id))
                }
                _ => OpenError::Forged,
            };
            assert_eq!(err, want, "byte {i}");
        }
        for len in [0, 1, SEAL_OVERHEAD_BYTES - 1] {
            assert_eq!(ring.open(&sealed[..len], b"ctx"), Err(OpenError::Truncated));
        }
        assert_eq!(
            ring.open(&sealed[..sealed.len() - 1], b"ctx"),
            Err(OpenError::Forged)
        );
    }

    #[test]
    fn after_a_rotation_old_keys_open_and_a_dropped_key_is_named() {
        let before = ring_of(1, &[]);
        let sealed_by_1 = before.seal(b"old lead", b"l1").unwrap();
        let after = ring_of(2, &[1]);
        assert_eq!(after.open(&sealed_by_1, b"l1").unwrap(), b"old lead");
        assert_eq!(after.needs_reseal(&sealed_by_1), Ok(true));
        let resealed = after.reseal(&sealed_by_1, b"l1").unwrap();
        assert_eq!(after.needs_reseal(&resealed), Ok(false));
        assert_eq!(sealed_key_id(&resealed), Ok(after.current_id()));
        // Once key 1 is dropped, what it sealed names it, and what was
        // sealed again still opens.
        let dropped = ring_of(2, &[]);
        assert_eq!(dropped.open(&resealed, b"l1").unwrap(), b"old lead");
        let err = dropped.open(&sealed_by_1, b"l1").unwrap_err();
        assert_eq!(err, OpenError::UnknownKey(before.current_id()));
        assert!(err.to_string().contains("privacy.old_data_keys"), "{err}");
    }

    #[test]
    fn a_key_listed_twice_is_refused() {
        let k = |b| DataKey::new([b; 32]);
        assert_eq!(
            KeyRing::new(&k(1), &[k(2), k(1)]).unwrap_err(),
            KeyRingError::DuplicateKey { old_index: 1 }
        );
        assert_eq!(
            KeyRing::new(&k(1), &[k(2), k(3), k(2)]).unwrap_err(),
            KeyRingError::DuplicateKey { old_index: 2 }
        );
        let ring = KeyRing::new(&k(1), &[k(2)]).unwrap();
        assert!(!format!("{ring:?}").contains("[1, 1"), "{ring:?}");
    }
}
