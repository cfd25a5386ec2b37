//! The auction's pure rules (contract §6), with no I/O so they can be tested
//! with plain values: how bids rank, what the publisher earns and which bids
//! clear the floor. Who may be pinged is `routing` (contract §10).

use std::cmp::Ordering;

use crate::money::{payout, Cents, SharePpm};

/// A bid in an auction.
#[derive(Debug, Clone, PartialEq)]
pub struct Bid {
    /// Index of the buyer in the config the auction ran on.
    pub buyer: usize,
    pub price: Cents,
    pub payout: Cents,
    pub priority: i64,
    /// How long the buyer took to answer (0 for a fixed-price buyer).
    pub answered_us: u64,
    pub buyer_ref: Option<String>,
}

impl Bid {
    pub fn new(
        buyer: usize,
        price: Cents,
        share: SharePpm,
        priority: i64,
        answered_us: u64,
        buyer_ref: Option<String>,
    ) -> Bid {
        Bid {
            buyer,
            price,
            payout: payout(price, share),
            priority,
            answered_us,
            buyer_ref,
        }
    }
}

/// Best first: higher price, then higher priority, then the faster answer.
pub fn rank_order(a: &Bid, b: &Bid) -> Ordering {
    b.price
        .cmp(&a.price)
        .then(b.priority.cmp(&a.priority))
        .then(a.answered_us.cmp(&b.answered_us))
        .then(a.buyer.cmp(&b.buyer))
}

/// Drops bids whose payout is under the floor (a payout equal to it counts)
/// and sorts the rest best first.
pub fn rank(mut bids: Vec<Bid>, floor: Option<Cents>) -> Vec<Bid> {
    if let Some(floor) = floor {
        bids.retain(|b| b.payout >= floor);
    }
    bids.sort_by(rank_order);
    bids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::share_from_f64;

    #[test]
    fn ranks_by_price_then_priority_then_speed() {
        let s = share_from_f64(0.8).unwrap();
        let bids = vec![
            Bid::new(0, 1000, s, 0, 50, None),
            Bid::new(1, 1200, s, 0, 90, None),
            Bid::new(2, 1000, s, 5, 80, None),
            Bid::new(3, 1000, s, 5, 20, None),
        ];
        let order: Vec<usize> = rank(bids, None).iter().map(|b| b.buyer).collect();
        assert_eq!(order, vec![1, 3, 2, 0]);
    }

    #[test]
    fn floor_compares_with_payout_and_equal_counts() {
        let s = share_from_f64(0.8).unwrap();
        let bids = vec![
            Bid::new(0, 1000, s, 0, 1, None),
            Bid::new(1, 999, s, 0, 1, None),
        ];
        // payouts 8.00 and 7.99
        let kept = rank(bids, Some(800));
        assert_eq!(kept.len(), 1);
        assert_eq!((kept[0].buyer, kept[0].payout), (0, 800));
    }
}
