//! Realistic, varied leads, each fixed by `(seed, index)` so a run is
//! reproducible and any worker can build lead `i` without coordination.
//!
//! Phones and emails are distinct for every index of a seed (below
//! `PHONES_DISTINCT`): leadx dedupes on phone and email per vertical, and a
//! load test that reuses them would measure 409s instead of sales.

use serde::Serialize;

use crate::rng::Rng;

/// (USPS code, first three zip digits, a city in that zip area).
const PLACES: &[(&str, u16, &str)] = &[
    ("AL", 352, "Birmingham"),
    ("AZ", 850, "Phoenix"),
    ("AR", 722, "Little Rock"),
    ("CA", 900, "Los Angeles"),
    ("CA", 941, "San Francisco"),
    ("CA", 921, "San Diego"),
    ("CO", 802, "Denver"),
    ("CT", 61, "Hartford"),
    ("DE", 198, "Wilmington"),
    ("DC", 200, "Washington"),
    ("FL", 331, "Miami"),
    ("FL", 328, "Orlando"),
    ("GA", 303, "Atlanta"),
    ("ID", 837, "Boise"),
    ("IL", 606, "Chicago"),
    ("IN", 462, "Indianapolis"),
    ("IA", 503, "Des Moines"),
    ("KS", 672, "Wichita"),
    ("KY", 402, "Louisville"),
    ("LA", 701, "New Orleans"),
    ("ME", 41, "Portland"),
    ("MD", 212, "Baltimore"),
    ("MA", 21, "Boston"),
    ("MI", 482, "Detroit"),
    ("MN", 554, "Minneapolis"),
    ("MS", 392, "Jackson"),
    ("MO", 631, "St. Louis"),
    ("MT", 591, "Billings"),
    ("NE", 681, "Omaha"),
    ("NV", 891, "Las Vegas"),
    ("NH", 31, "Manchester"),
    ("NJ", 71, "Newark"),
    ("NM", 871, "Albuquerque"),
    ("NY", 100, "New York"),
    ("NY", 142, "Buffalo"),
    ("NC", 282, "Charlotte"),
    ("ND", 581, "Fargo"),
    ("OH", 441, "Cleveland"),
    ("OH", 432, "Columbus"),
    ("OK", 731, "Oklahoma City"),
    ("OR", 972, "Portland"),
    ("PA", 191, "Philadelphia"),
    ("PA", 152, "Pittsburgh"),
    ("RI", 29, "Providence"),
    ("SC", 292, "Columbia"),
    ("SD", 571, "Sioux Falls"),
    ("TN", 372, "Nashville"),
    ("TX", 770, "Houston"),
    ("TX", 752, "Dallas"),
    ("TX", 787, "Austin"),
    ("UT", 841, "Salt Lake City"),
    ("VT", 54, "Burlington"),
    ("VA", 232, "Richmond"),
    ("WA", 981, "Seattle"),
    ("WV", 253, "Charleston"),
    ("WI", 532, "Milwaukee"),
    ("WY", 820, "Cheyenne"),
    ("AK", 995, "Anchorage"),
    ("HI", 968, "Honolulu"),
];
const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Maria",
    "Carlos",
    "Wei",
    "Aisha",
    "Nguyen",
    "Priya",
    "Olga",
    "Kwame",
];
const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Lee",
    "Chen",
    "Patel",
    "Okafor",
    "Kowalski",
];
const STREETS: &[&str] = &[
    "Main St",
    "Oak Ave",
    "Maple Dr",
    "Cedar Ln",
    "Park Blvd",
    "Elm St",
    "2nd St",
];
const CREDIT: &[&str] = &["excellent", "good", "fair", "poor"];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
];
const CONSENT_TEXT: &str = "By clicking Get Quotes, I agree to be contacted by insurance partners \
at the number provided, including by autodialer and text, for marketing. Consent is not a \
condition of purchase.";

/// Two-digit NANP suffixes usable after a leading `2` in area and exchange
/// codes: all of 00..=99 except 11 (`211` is a service code, not a number).
const SUFFIXES_2X: u64 = 99;
/// How many distinct phones a seed yields before they repeat.
pub const PHONES_DISTINCT: u64 = SUFFIXES_2X * SUFFIXES_2X * 10_000;
/// Multiplier of the index→phone bijection: coprime to 2, 3, 5 and 11, the
/// prime factors of `PHONES_DISTINCT`, so `i * M mod PHONES_DISTINCT` never
/// repeats within a seed.
const PHONE_STEP: u64 = 102_947;

/// The ping fields of a lead (contract §3): no PII.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PingLead {
    pub zip: String,
    pub state: &'static str,
    pub city: &'static str,
    pub age: u8,
    pub income: u32,
    pub credit: &'static str,
    pub homeowner: bool,
}

/// A full lead for post and direct post: the ping fields plus contact data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FullLead {
    #[serde(flatten)]
    pub ping: PingLead,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub phone: String,
    pub email: String,
    pub address: String,
}

/// The consent object required by verticals with `require_consent`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consent {
    pub text: &'static str,
    pub captured_at: String,
    pub ip: String,
    pub user_agent: &'static str,
    pub page_url: String,
}

/// One generated lead with its consent.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    pub full: FullLead,
    pub consent: Consent,
}

/// Builds lead `index` of `seed`. `captured_at` is an RFC 3339 time passed
/// in (not read from the clock) so the output depends on its inputs only.
pub fn generate(seed: u64, index: u64, captured_at: &str) -> Lead {
    let mut r = Rng::derive(seed, index);
    let &(state, zip3, city) = r.pick(PLACES);
    let credit = r.pick_copy(CREDIT);
    let ping = PingLead {
        zip: format!("{:03}{:02}", zip3, r.range(0, 99)),
        state,
        city,
        age: r.range(18, 80) as u8,
        income: r.range(18, 250) as u32 * 1000,
        credit,
        homeowner: r.chance(0.6),
    };
    let (first, last) = (*r.pick(FIRST_NAMES), *r.pick(LAST_NAMES));
    let full = FullLead {
        ping,
        first_name: first,
        last_name: last,
        phone: phone(seed, index),
        email: format!(
            "{}.{}.{}@example.com",
            first.to_lowercase(),
            last.to_lowercase(),
            index
        ),
        address: format!("{} {}", r.range(1, 9999), r.pick(STREETS)),
    };
    let user_agent = r.pick_copy(AGENTS);
    let consent = Consent {
        text: CONSENT_TEXT,
        captured_at: captured_at.to_string(),
        ip: format!("198.51.100.{}", r.range(1, 254)),
        user_agent,
        page_url: format!(
            "https://quotes.example.com/auto?utm_source=lt&s={}",
            r.range(1, 99)
        ),
    };
    Lead { full, consent }
}

/// A valid US phone `+1 (2xx) 2xx-xxxx`, distinct for each index below
/// `PHONES_DISTINCT` within a seed.
pub fn phone(seed: u64, index: u64) -> String {
    let offset = seed % PHONES_DISTINCT;
    let n = ((index % PHONES_DISTINCT) as u128 * PHONE_STEP as u128 + offset as u128)
        % PHONES_DISTINCT as u128;
    let n = n as u64;
    let area = two_digits_not_11(n / 990_000);
    let exchange = two_digits_not_11((n / 10_000) % SUFFIXES_2X);
    format!("+1 (2{area:02}) 2{exchange:02}-{:04}", n % 10_000)
}

/// Maps 0..99 onto 00..=99 without 11.
fn two_digits_not_11(k: u64) -> u64 {
    if k < 11 {
        k
    } else {
        k + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const AT: &str = "2025-01-02T03:04:05Z";

    #[test]
    fn same_seed_and_index_give_the_same_lead() {
        assert_eq!(generate(42, 7, AT), generate(42, 7, AT));
        assert_ne!(generate(42, 7, AT), generate(43, 7, AT));
        assert_ne!(generate(42, 7, AT), generate(42, 8, AT));
    }

    #[test]
    fn leads_are_valid_per_contract_section_3() {
        let states: HashSet<&str> = PLACES.iter().map(|p| p.0).collect();
        for i in 0..2_000 {
            let l = generate(9, i, AT);
            let p = &l.full.ping;
            assert!(
                p.zip.len() == 5 && p.zip.bytes().all(|b| b.is_ascii_digit()),
                "{}",
                p.zip
            );
            assert!(states.contains(p.state) && p.state.len() == 2);
            assert!((18..=80).contains(&p.age));
            assert!(CREDIT.contains(&p.credit));
            assert!(l.full.first_name.len() <= 64 && l.full.last_name.len() <= 64);
            let digits: String = l
                .full
                .phone
                .chars()
                .filter(|c| c.is_ascii_digit())
                .collect();
            assert_eq!(digits.len(), 11, "{}", l.full.phone);
            assert!(digits.starts_with("12") && digits.as_bytes()[4] == b'2');
            assert_ne!(&digits[1..4], "211");
            assert!(l.full.email.contains('@'));
            assert!(!l.consent.text.is_empty() && l.consent.page_url.starts_with("https://"));
        }
    }

    #[test]
    fn ping_json_has_no_pii_and_post_json_has_it() {
        let l = generate(1, 1, AT);
        let ping = serde_json::to_value(&l.full.ping).unwrap();
        for k in ["first_name", "last_name", "phone", "email", "address"] {
            assert!(ping.get(k).is_none(), "{k} leaked into a ping");
        }
        let full = serde_json::to_value(&l.full).unwrap();
        assert_eq!(full["zip"], ping["zip"]);
        assert!(full["phone"].is_string() && full["email"].is_string());
    }

    #[test]
    fn phones_and_emails_are_distinct_across_indexes() {
        let mut phones = HashSet::new();
        let mut emails = HashSet::new();
        for i in 0..50_000 {
            assert!(phones.insert(phone(5, i)), "phone repeated at {i}");
            assert!(emails.insert(generate(5, i, AT).full.email));
        }
        // The bijection holds at the wrap point too.
        assert_ne!(phone(5, 0), phone(5, PHONES_DISTINCT - 1));
        assert_eq!(phone(5, 0), phone(5, PHONES_DISTINCT));
    }
}
