//! The auction's pure rules (contract §6), with no I/O so they can be tested
//! with plain values: who may be pinged, how bids rank, what the publisher
//! earns and which bids clear the floor.

use std::cmp::Ordering;

use crate::config::Buyer;
use crate::lead::Lead;
use crate::money::{payout, Cents, SharePpm};

/// Why a buyer is not called for a lead. The string is what the call record
/// and the admin views show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Vertical,
    State,
    AgeMissing,
    AgeOutOfRange,
    CapReached,
}

impl Skip {
    pub fn reason(self) -> &'static str {
        match self {
            Skip::Vertical => "vertical_not_bought",
            Skip::State => "filter_state",
            Skip::AgeMissing => "filter_age_missing",
            Skip::AgeOutOfRange => "filter_age",
            Skip::CapReached => "cap_reached",
        }
    }
}

/// Whether `buyer`'s vertical and filter admit `lead`. Caps are live state
/// and checked by the caller; a lead without a filtered field does not match.
pub fn eligible(buyer: &Buyer, vertical: &str, lead: &Lead) -> Result<(), Skip> {
    if !buyer.verticals.iter().any(|v| v == vertical) {
        return Err(Skip::Vertical);
    }
    let f = &buyer.filter;
    if let Some(states) = &f.states {
        if !states.contains(&lead.state) {
            return Err(Skip::State);
        }
    }
    if f.age_min.is_some() || f.age_max.is_some() {
        let age = lead.age.ok_or(Skip::AgeMissing)?;
        let low = f.age_min.is_some_and(|min| age < min);
        let high = f.age_max.is_some_and(|max| age > max);
        if low || high {
            return Err(Skip::AgeOutOfRange);
        }
    }
    Ok(())
}

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
    use crate::config::{Caps, Filter};
    use crate::money::share_from_f64;

    fn buyer(states: Option<Vec<&str>>, age_min: Option<u16>, age_max: Option<u16>) -> Buyer {
        Buyer {
            id: "b".into(),
            verticals: vec!["auto".into()],
            ping_url: None,
            post_url: crate::http::url::parse("http://127.0.0.1:1/post").unwrap(),
            fixed_price: Some(100),
            ping_timeout_ms: 100,
            post_timeout_ms: 100,
            priority: 0,
            headers: vec![],
            filter: Filter {
                states: states.map(|s| s.into_iter().map(String::from).collect()),
                age_min,
                age_max,
                ..Filter::default()
            },
            caps: Caps::default(),
            spec: Default::default(),
            timezone: jiff::tz::TimeZone::UTC,
            schedule: None,
            health: crate::config::Health::default(),
        }
    }

    fn lead(state: &str, age: Option<u16>) -> Lead {
        Lead {
            zip: "90210".into(),
            state: state.into(),
            age,
            ..Lead::default()
        }
    }

    #[test]
    fn filters_hold_and_missing_fields_do_not_match() {
        let b = buyer(Some(vec!["CA", "TX"]), Some(18), Some(30));
        assert_eq!(eligible(&b, "auto", &lead("CA", Some(30))), Ok(()));
        assert_eq!(eligible(&b, "auto", &lead("CA", Some(18))), Ok(()));
        assert_eq!(
            eligible(&b, "auto", &lead("CA", Some(31))),
            Err(Skip::AgeOutOfRange)
        );
        assert_eq!(
            eligible(&b, "auto", &lead("CA", None)),
            Err(Skip::AgeMissing)
        );
        assert_eq!(
            eligible(&b, "auto", &lead("NY", Some(20))),
            Err(Skip::State)
        );
        assert_eq!(
            eligible(&b, "home", &lead("CA", Some(20))),
            Err(Skip::Vertical)
        );
        assert_eq!(
            eligible(&buyer(None, None, None), "auto", &lead("NY", None)),
            Ok(())
        );
    }

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
