//! The time a buyer call gets (issue #9, "time budget per call"): its own
//! time-out, cut to what is left of the auction (or of the post's
//! failover) after leadx's answer margin. A buyer that would get less than
//! leadx needs to call it is not called — skipped as `no_time` — rather
//! than called with a deadline it cannot meet, which would cost a
//! connection and count as its failure (and toward its breaker).

use super::Reason;
use crate::limits;

/// Milliseconds the call may take: `min(own_timeout_ms, left_ms -
/// margin_ms)`, where `left_ms` is what is left of the stage's deadline.
/// `NoTime` when that is under `limits::BUYER_CALL_MIN_MS` (or under the
/// buyer's own time-out, if that is smaller still: such a buyer is called
/// whenever its whole time-out fits).
pub fn call_ms(own_timeout_ms: u64, left_ms: u64, margin_ms: u64) -> Result<u64, Reason> {
    let available = left_ms.saturating_sub(margin_ms);
    let needed = limits::BUYER_CALL_MIN_MS.min(own_timeout_ms).max(1);
    if available < needed {
        return Err(Reason::NoTime);
    }
    Ok(own_timeout_ms.min(available))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_gets_its_own_time_out_or_what_is_left_after_the_margin() {
        assert_eq!(call_ms(150, 300, 20), Ok(150));
        assert_eq!(call_ms(150, 100, 20), Ok(80));
        let min = limits::BUYER_CALL_MIN_MS;
        assert_eq!(call_ms(150, 20 + min, 20), Ok(min));
        assert_eq!(call_ms(150, 20 + min - 1, 20), Err(Reason::NoTime));
        assert_eq!(call_ms(150, 10, 20), Err(Reason::NoTime));
        assert_eq!(call_ms(150, 0, 0), Err(Reason::NoTime));
    }

    #[test]
    fn a_buyer_whose_time_out_is_below_the_minimum_is_called_when_it_fits() {
        assert_eq!(call_ms(3, 3, 0), Ok(3));
        assert_eq!(call_ms(3, 2, 0), Err(Reason::NoTime));
        assert_eq!(call_ms(1, 1, 0), Ok(1));
    }
}
