//! The routing controls of contract §10 as `check-config` reads them: the
//! contract's example, v1 sections unchanged, and one bad snippet per rule
//! with the exact lines printed.

use super::super::{parse, Caps, Config, Filter};
use super::*;

const HEAD: &str = "[server]\nlisten = \"127.0.0.1:8080\"\ndata_dir = \"/d\"\n\
    [[vertical]]\nid = \"v\"\n\
    [[buyer]]\nid = \"b\"\nverticals = [\"v\"]\npost_url = \"https://h/p\"\nfixed_price = 1\n";

fn with(buyer_tail: &str) -> Result<Config, Vec<String>> {
    let none = |_: &str| None;
    parse(&format!("{HEAD}{buyer_tail}"), &none)
        .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
}

#[test]
fn the_contracts_example_reads_into_every_control() {
    let c = with(
        r#"timezone = "America/New_York"
[buyer.filter]
states = ["CA", "TX"]
exclude_states = ["NY"]
zips = ["94105", "941*"]
exclude_zips = ["9410*"]
age_min = 18
income_min = 20000
income_max = 90000
credit = ["excellent", "good"]
exclude_credit = ["poor"]
homeowner = true
publishers = ["pub2", "pub1"]
exclude_publishers = ["pub9"]
sub_ids = ["s1"]
exclude_sub_ids = ["s9"]
[buyer.filter.attributes]
make = ["Ford", "Toyota"]
vehicles = { min = 1, max = 3 }
[buyer.filter.exclude_attributes]
salvage = [true]
[buyer.caps]
hourly = 20
daily = 100
weekly = 400
monthly = 1500
daily_budget = 1500.00
weekly_budget = 6000
monthly_budget = 20000.5
[buyer.schedule]
mon = ["08:00-12:00", "13:00-20:00"]
sat = ["10:00-14:00"]
sun = []
[buyer.health]
concurrency_max = 64
breaker_failures = 20
breaker_cooldown_ms = 5000
"#,
    )
    .unwrap();
    let b = &c.buyers[0];
    assert_eq!(b.timezone.iana_name(), Some("America/New_York"));
    let f = &b.filter;
    assert_eq!(f.states, Some(vec!["CA".into(), "TX".into()]));
    assert_eq!(
        f.zips,
        Some(ZipSet {
            exact: vec!["94105".into()],
            prefixes: vec!["941".into()]
        })
    );
    assert_eq!(f.publishers, Some(vec!["pub1".into(), "pub2".into()]));
    assert_eq!(
        (f.income_min, f.income_max, f.homeowner),
        (Some(20_000), Some(90_000), Some(true))
    );
    assert_eq!(
        f.attributes,
        [
            AttrRule {
                key: "make".into(),
                test: AttrTest::OneOf(vec![
                    AttrValue::Str("Ford".into()),
                    AttrValue::Str("Toyota".into())
                ])
            },
            AttrRule {
                key: "vehicles".into(),
                test: AttrTest::Range {
                    min: Some(1.0),
                    max: Some(3.0)
                }
            },
        ]
    );
    assert_eq!(
        f.exclude_attributes[0].test,
        AttrTest::OneOf(vec![AttrValue::Bool(true)])
    );
    assert_eq!(
        b.caps,
        Caps {
            hourly: Some(20),
            daily: Some(100),
            weekly: Some(400),
            monthly: Some(1500),
            daily_budget: Some(150_000),
            weekly_budget: Some(600_000),
            monthly_budget: Some(2_000_050),
        }
    );
    let s = b.schedule.as_ref().unwrap();
    assert_eq!(s.days[0], [(480, 720), (780, 1200)]);
    assert_eq!(s.days[5], [(600, 840)]);
    assert!(s.days[1].is_empty() && s.days[6].is_empty());
    assert_eq!(
        b.health,
        Health {
            concurrency_max: Some(64),
            breaker_failures: Some(20),
            breaker_cooldown_ms: 5000
        }
    );
}

/// A v1 buyer (no §10 keys) gets UTC, no schedule, no breaker, no gate.
#[test]
fn a_v1_buyer_keeps_its_meaning() {
    let c = with(
        "[buyer.filter]\nstates = [\"CA\"]\nage_min = 18\nage_max = 30\n[buyer.caps]\ndaily = 5\n",
    )
    .unwrap();
    let b = &c.buyers[0];
    assert_eq!(b.timezone, jiff::tz::TimeZone::UTC);
    assert_eq!(
        (
            b.schedule.clone(),
            b.health.breaker_failures,
            b.health.concurrency_max
        ),
        (None, None, None)
    );
    assert_eq!(
        b.filter,
        Filter {
            states: Some(vec!["CA".into()]),
            age_min: Some(18),
            age_max: Some(30),
            ..Filter::default()
        }
    );
    assert_eq!(
        b.caps,
        Caps {
            daily: Some(5),
            ..Caps::default()
        }
    );
}

#[test]
fn every_bad_value_is_named_by_its_key() {
    let cases: &[(&str, &[&str])] = &[
        (
            "timezone = \"Mars/Olympus\"",
            &["buyer[0].timezone: unknown time zone \"Mars/Olympus\" (an IANA name such as \"America/New_York\")"],
        ),
        ("timezone = 5", &["buyer[0].timezone: expected a string"]),
        (
            "[buyer.filter]\nzips = [\"9410\", \"94*5\", \"*\", \"941051\", \"94105\"]\nexclude_zips = []\n\
             income_min = 5\nincome_max = 4\ncredit = [\"great\"]\nhomeowner = \"yes\"\npublishers = [1]\n\
             exclude_states = [\"XX\"]\nregion = 1",
            &[
                "buyer[0].filter.region: unknown key",
                "buyer[0].filter.exclude_states[0]: not a USPS state code \"XX\"",
                "buyer[0].filter.zips[0]: not a zip \"9410\" (5 digits, or 1 to 4 digits then *)",
                "buyer[0].filter.zips[1]: not a zip \"94*5\" (5 digits, or 1 to 4 digits then *)",
                "buyer[0].filter.zips[2]: not a zip \"*\" (5 digits, or 1 to 4 digits then *)",
                "buyer[0].filter.zips[3]: not a zip \"941051\" (5 digits, or 1 to 4 digits then *)",
                "buyer[0].filter.exclude_zips: must not be empty (leave it out to accept every zip)",
                "buyer[0].filter.credit[0]: not a credit rating \"great\" (excellent, good, fair, poor)",
                "buyer[0].filter.homeowner: expected a boolean",
                "buyer[0].filter.publishers[0]: expected a string",
                "buyer[0].filter.income_min: greater than income_max",
            ],
        ),
        (
            "[buyer.filter.attributes]\nmake = []\nvehicles = { min = 3, max = 1 }\nage = { low = 1 }\n\
             color = \"red\"\nmiles = { max = nan }\nlist = [[1]]",
            &[
                "buyer[0].filter.attributes.age.low: unknown key",
                "buyer[0].filter.attributes.age: needs min, max or both",
                "buyer[0].filter.attributes.color: expected an array of values or { min, max }",
                "buyer[0].filter.attributes.list[0]: expected a string, a finite number or a boolean",
                "buyer[0].filter.attributes.make: must hold 1 to 1024 values",
                "buyer[0].filter.attributes.miles.max: must be a finite number",
                "buyer[0].filter.attributes.vehicles.min: greater than max",
            ],
        ),
        (
            "[buyer.caps]\nhourly = 0\nweekly = -1\nmonthly = 1.5\ndaily_budget = 0\nweekly_budget = 1.005\n\
             monthly_budget = \"10\"\nyearly = 1",
            &[
                "buyer[0].caps.yearly: unknown key",
                "buyer[0].caps.hourly: must be between 1 and 4294967295",
                "buyer[0].caps.weekly: must be between 1 and 4294967295",
                "buyer[0].caps.monthly: expected an integer",
                "buyer[0].caps.daily_budget: not a budget (USD above 0, at most 1000000000, at most 2 decimals)",
                "buyer[0].caps.weekly_budget: not a budget (USD above 0, at most 1000000000, at most 2 decimals)",
                "buyer[0].caps.monthly_budget: expected a number",
            ],
        ),
        (
            "[buyer.schedule]\nmon = [\"25:00-26:00\"]\ntue = [\"08:00-12:00\", \"11:00-13:00\"]\n\
             wed = [\"20:00-08:00\"]\nthu = [\"8:00-12:00\"]\nfri = [\"24:00-24:00\"]\nsat = [\"09:60-10:00\"]\n\
             sun = \"always\"\nholiday = []",
            &[
                "buyer[0].schedule.holiday: unknown key",
                "buyer[0].schedule.mon[0]: not a time of day (00:00 to 24:00) in \"25:00-26:00\"",
                "buyer[0].schedule.tue[1]: overlaps buyer[0].schedule.tue[0]",
                "buyer[0].schedule.wed[0]: start is not before end (split a range past midnight in two days) in \"20:00-08:00\"",
                "buyer[0].schedule.thu[0]: expected HH:MM-HH:MM in \"8:00-12:00\"",
                "buyer[0].schedule.fri[0]: a range cannot start at 24:00 in \"24:00-24:00\"",
                "buyer[0].schedule.sat[0]: not a time of day (00:00 to 24:00) in \"09:60-10:00\"",
                "buyer[0].schedule.sun: expected an array of strings",
            ],
        ),
        (
            "[buyer.health]\nconcurrency_max = 0\nbreaker_cooldown_ms = 0\nretries = 1",
            &[
                "buyer[0].health.retries: unknown key",
                "buyer[0].health.concurrency_max: must be between 1 and 1000000",
                "buyer[0].health.breaker_cooldown_ms: must be between 1 and 3600000",
                "buyer[0].health.breaker_cooldown_ms: has no effect without breaker_failures",
            ],
        ),
        (
            "[buyer.health]\nbreaker_failures = 0",
            &["buyer[0].health.breaker_failures: must be between 1 and 1000000"],
        ),
    ];
    for (tail, want) in cases {
        let got = with(tail).expect_err(tail);
        assert_eq!(&got, want, "{tail}");
    }
}
