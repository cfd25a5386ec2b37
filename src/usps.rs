//! USPS two-letter codes accepted in `lead.state` and `buyer.filter.states`:
//! the 50 states, DC, the inhabited territories and the military "states".

const CODES: [&str; 62] = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY",
    "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV",
    "WI", "WY", "DC", "PR", "VI", "GU", "AS", "MP", "AA", "AE", "AP", "FM", "MH", "PW",
];

/// True for an upper-case USPS code (`"CA"`); lower case is refused so that
/// buyers' filters and leads compare byte for byte.
pub fn is_state(s: &str) -> bool {
    CODES.contains(&s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn knows_states_and_refuses_others() {
        assert!(super::is_state("CA") && super::is_state("DC") && super::is_state("PR"));
        assert!(!super::is_state("ca") && !super::is_state("XX") && !super::is_state("C"));
    }
}
