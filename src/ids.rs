//! Ids for pings and leads: 48 bits of milliseconds then 80 random bits, in
//! lowercase hex. Time-ordered, so the store's key order is arrival order
//! (admin listings scan newest first without an index), and unguessable, so
//! an id alone grants nothing (lookups still check the owner).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A new 32-hex-digit id.
pub fn new_id() -> String {
    let mut random = [0u8; 10];
    // getrandom reads the kernel's CSPRNG without blocking once it is seeded
    // (always true long after boot); failure is an unusable system.
    getrandom::getrandom(&mut random).expect("the kernel's random source failed");
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&now_ms().to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&random);
    hex(&bytes)
}

/// The millisecond timestamp in an id made by `new_id`.
pub fn id_ms(id: &str) -> Option<u64> {
    let head = id.get(..12)?;
    u64::from_str_radix(head, 16).ok()
}

/// Exactly 64 hex digits (either case) as 32 bytes, as `openssl rand -hex
/// 32` or `sha256sum` print them; anything else is `None`.
pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// True for a string that `new_id` could have made: used to refuse junk ids
/// before touching the store.
pub fn looks_like_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_time_ordered_and_carry_their_time() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id();
        assert!(looks_like_id(&a) && looks_like_id(&b));
        assert!(a < b, "{a} should sort before {b}");
        let ms = id_ms(&a).unwrap();
        assert!(ms.abs_diff(now_ms()) < 60_000);
        assert!(!looks_like_id("../../etc") && !looks_like_id("ABCDEF"));
    }
}
