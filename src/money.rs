//! Money as whole cents. Floats only exist at the JSON edge; everything
//! inside (ranking, payout, floors) is integer arithmetic so that a payout
//! is exactly `floor(price × revenue_share)` to the cent.

/// An amount of USD in cents.
pub type Cents = u64;

/// Revenue share as parts per million (0.8 → 800_000), so payout arithmetic
/// never touches a float.
pub type SharePpm = u64;

pub const PPM: SharePpm = 1_000_000;

/// A JSON number to cents. `None` when negative, not finite, above a billion
/// dollars, or carrying more than two decimals (beyond float noise).
pub fn cents_from_f64(v: f64) -> Option<Cents> {
    if !v.is_finite() || !(0.0..=1e9).contains(&v) {
        return None;
    }
    let scaled = v * 100.0;
    let rounded = scaled.round();
    if (scaled - rounded).abs() > 1e-6 {
        return None;
    }
    Some(rounded as Cents)
}

/// A share in [0, 1] to parts per million, `None` outside the range.
pub fn share_from_f64(v: f64) -> Option<SharePpm> {
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        return None;
    }
    Some((v * PPM as f64).round() as SharePpm)
}

/// What the publisher earns on a sale at `price`: floor to the cent.
pub fn payout(price: Cents, share: SharePpm) -> Cents {
    price * share / PPM
}

/// Cents as a JSON number with two decimals (`960` → `9.60`).
pub fn write_cents(out: &mut Vec<u8>, c: Cents) {
    use std::io::Write;
    let _ = write!(out, "{}.{:02}", c / 100, c % 100);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_parse_exact_and_reject_noise() {
        assert_eq!(cents_from_f64(12.5), Some(1250));
        assert_eq!(cents_from_f64(0.07), Some(7));
        assert_eq!(cents_from_f64(19.99), Some(1999));
        assert_eq!(cents_from_f64(1.005), None);
        assert_eq!(cents_from_f64(-1.0), None);
        assert_eq!(cents_from_f64(f64::NAN), None);
    }

    #[test]
    fn payout_floors_to_the_cent() {
        let share = share_from_f64(0.8).unwrap();
        assert_eq!(payout(1200, share), 960);
        assert_eq!(payout(1299, share), 1039); // 10.392 → 10.39
        assert_eq!(payout(1, share), 0);
        assert_eq!(payout(1999, share_from_f64(0.333).unwrap()), 665); // 6.65667
    }

    #[test]
    fn writes_two_decimals() {
        let mut v = Vec::new();
        write_cents(&mut v, 960);
        v.push(b' ');
        write_cents(&mut v, 5);
        assert_eq!(v, b"9.60 0.05");
    }
}
