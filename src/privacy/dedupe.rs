//! Keyed dedupe hashes (contract §12): what the store keys a consumer's
//! phone and email by, to refuse the same consumer twice within a
//! vertical's window. A plain SHA-256 of a phone is no secret — all 8
//! billion US numbers hash in minutes — so the hash is HMAC-SHA256 under a
//! key derived from the data key (HKDF label `dedupe-hmac-sha256`), never
//! the data key itself.
//!
//! The field is part of the hashed message, so a phone and an email can
//! never hash alike. Callers hash the *normalised* value: the phone as
//! `lead::normalize_phone` writes it, the email lower-cased.
//!
//! After a data-key rotation a consumer seen under the old key must still
//! count: [`KeyRing::dedupe_hashes`] gives the hash under every key of the
//! ring, current first. Write under the first; look up all of them until
//! the old key's dedupe window has passed.

use ring::hmac;

use super::{DataKey, KeyRing};

/// Which lead field a dedupe hash is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupeField {
    Phone,
    Email,
}

impl DedupeField {
    fn label(self) -> &'static [u8] {
        match self {
            DedupeField::Phone => b"phone",
            DedupeField::Email => b"email",
        }
    }
}

/// The HMAC key for dedupe hashes of one data key.
pub(crate) struct DedupeKey(hmac::Key);

impl DedupeKey {
    pub(super) fn new(data_key: &DataKey) -> DedupeKey {
        let mut key = [0u8; 32];
        data_key.derive(b"dedupe-hmac-sha256", &mut key);
        DedupeKey(hmac::Key::new(hmac::HMAC_SHA256, &key))
    }

    fn hash(&self, field: DedupeField, value: &[u8]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(field.label());
        ctx.update(&[0]);
        ctx.update(value);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

impl KeyRing {
    /// The dedupe hash of a normalised `value` under the current key: what
    /// a sale writes.
    pub fn dedupe_hash(&self, field: DedupeField, value: &[u8]) -> [u8; 32] {
        self.dedupe_hashes(field, value)
            .next()
            .expect("a key ring has a current key")
    }

    /// The hash under every key of the ring, current first: what a dedupe
    /// lookup checks.
    pub fn dedupe_hashes<'a>(
        &'a self,
        field: DedupeField,
        value: &'a [u8],
    ) -> impl Iterator<Item = [u8; 32]> + 'a {
        self.dedupe_keys().map(move |k| k.hash(field, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn ring(current: u8, old: &[u8]) -> KeyRing {
        let old: Vec<DataKey> = old.iter().map(|&b| DataKey::new([b; 32])).collect();
        KeyRing::new(&DataKey::new([current; 32]), &old).unwrap()
    }

    #[test]
    fn dedupe_hashes_are_keyed_never_plain() {
        let a = ring(1, &[]);
        let phone = b"+15552345678";
        let h = a.dedupe_hash(DedupeField::Phone, phone);
        assert_eq!(h, a.dedupe_hash(DedupeField::Phone, phone), "stable");
        let plain: [u8; 32] = Sha256::digest(phone).into();
        assert_ne!(h, plain, "not a plain SHA-256");
        // Not an HMAC under the raw data key either.
        let raw = hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]);
        let mut ctx = hmac::Context::with_key(&raw);
        ctx.update(b"phone\0");
        ctx.update(phone);
        assert_ne!(&h[..], ctx.sign().as_ref());
        assert_ne!(h, ring(2, &[]).dedupe_hash(DedupeField::Phone, phone));
        assert_ne!(
            h,
            a.dedupe_hash(DedupeField::Email, phone),
            "field in the hash"
        );
        assert_ne!(h, a.dedupe_hash(DedupeField::Phone, b"+15552345679"));
    }

    #[test]
    fn after_a_rotation_lookups_see_hashes_written_under_the_old_key() {
        let before = ring(1, &[]);
        let written = before.dedupe_hash(DedupeField::Email, b"jo@example.com");
        let after = ring(2, &[1]);
        let looked_up: Vec<[u8; 32]> = after
            .dedupe_hashes(DedupeField::Email, b"jo@example.com")
            .collect();
        assert_eq!(looked_up.len(), 2);
        assert_eq!(
            looked_up[0],
            after.dedupe_hash(DedupeField::Email, b"jo@example.com")
        );
        assert_eq!(looked_up[1], written);
    }
}
