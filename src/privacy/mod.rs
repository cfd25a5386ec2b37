//! Security and compliance building blocks (contract §12), pure and
//! tested on their own; nothing here does I/O beyond asking the OS for
//! random bytes.
//!
//! - [`seal`]: PII at rest — AES-256-GCM under keys derived from
//!   `privacy.data_key`, each sealed value tagged with its key's id so that
//!   `old_data_keys` still open what they sealed after a rotation.
//! - [`dedupe`]: the stored dedupe keys — HMAC-SHA256 under a key derived
//!   from the data key; never a plain hash of a phone or an email (there
//!   are only 8 billion US numbers to try).
//! - [`signature`]: `Leadx-Signature` on publishers' requests — strict
//!   parse, HMAC-SHA256 over `"<t>.<raw body>"` with a constant-time
//!   compare, a ±300 s window on the exchange's clock, and a bounded replay
//!   cache.
//!
//! Every key used for a job is derived from the data key with HKDF-SHA256
//! and a label of its own ([`DataKey::derive`]): the raw data key never
//! encrypts or hashes anything, and a key for one job says nothing about
//! another's.
//!
//! Wired: `signature` (in `api`), `seal` and `dedupe` (through
//! `records`), `KeyRing::reseal` by the re-seal job (`exchange::reseal`);
//! retention is `exchange::retention` — see ARCHITECTURE.md, "Security and
//! compliance".

pub mod dedupe;
pub mod seal;
pub mod signature;

use std::fmt;

use ring::hkdf;

pub use dedupe::DedupeField;
pub use seal::{KeyId, KeyRing, KeyRingError, OpenError, SealError};
pub use signature::{ReplayCache, SignatureError, SigningKey};

/// A 32-byte data key (`privacy.data_key`, `old_data_keys`). `Debug`
/// never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; 32]);

impl DataKey {
    pub const fn new(bytes: [u8; 32]) -> DataKey {
        DataKey(bytes)
    }

    /// Exactly 64 hex digits (either case), as `openssl rand -hex 32`
    /// prints; anything else is `None`.
    pub fn from_hex(s: &str) -> Option<DataKey> {
        crate::ids::unhex32(s).map(DataKey)
    }

    /// `out.len()` bytes of key for the job named `label`, by HKDF-SHA256
    /// (RFC 5869) with a fixed salt. Distinct labels give independent keys.
    pub(crate) fn derive(&self, label: &[u8], out: &mut [u8]) {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT);
        let prk = salt.extract(&self.0);
        let info = [label];
        let okm = prk
            .expand(&info, Len(out.len()))
            .expect("HKDF-SHA256 gives up to 8160 bytes; leadx asks for 32 at most");
        okm.fill(out)
            .expect("HKDF fill of the length asked for cannot fail");
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(***)")
    }
}

/// HKDF salt: fixed, public, names the scheme (RFC 5869 §3.1 allows a
/// constant salt; the data key itself is uniformly random).
const SALT: &[u8] = b"leadx data key v1";

/// HKDF output length, as ring wants it.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// Lowercase hex of `bytes` (signatures in tests and tools).
pub use crate::ids::hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_are_64_hex_digits_and_never_printed() {
        let hex64 = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let k = DataKey::from_hex(hex64).unwrap();
        assert_eq!(k.0[1], 0x11);
        assert_eq!(k.0[31], 0xff);
        assert_eq!(format!("{k:?}"), "DataKey(***)");
        assert!(DataKey::from_hex(&hex64[..62]).is_none());
        assert!(DataKey::from_hex(&format!("{hex64}00")).is_none());
        assert!(DataKey::from_hex(&hex64.replace('a', "g")).is_none());
        assert!(DataKey::from_hex(&"é".repeat(32)).is_none());
        assert!(DataKey::from_hex("").is_none());
    }

    #[test]
    fn derived_keys_differ_by_label_and_by_key() {
        let (a, b) = (DataKey::new([1; 32]), DataKey::new([2; 32]));
        let get = |k: &DataKey, label: &[u8]| {
            let mut out = [0u8; 32];
            k.derive(label, &mut out);
            out
        };
        assert_eq!(get(&a, b"x"), get(&a, b"x"));
        assert_ne!(get(&a, b"x"), get(&a, b"y"));
        assert_ne!(get(&a, b"x"), get(&b, b"x"));
        assert_ne!(get(&a, b"x"), [1; 32], "never the raw key");
        assert_eq!(hex(&[0x0f, 0xa0]), "0fa0");
    }
}
