//! What routing controls (contract §10) cost per buyer per lead: the
//! checks a ping runs for every buyer (filter, schedule, caps) and what a
//! post adds (a reservation given back), with the zone's periods cached and
//! not. Inputs are fixed, so runs compare.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use leadx::config::{parse, Buyer};
use leadx::exchange::caps::Ledger;
use leadx::lead::{Attr, Credit, Lead};
use leadx::routing::breaker::Breaker;
use leadx::routing::gate::Gate;
use leadx::routing::period::Periods;
use leadx::routing::{filter, schedule};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:8080"
data_dir = "/d"
[[vertical]]
id = "auto"
[[buyer]]
id = "b"
verticals = ["auto"]
post_url = "http://127.0.0.1:1/post"
fixed_price = 10
timezone = "America/New_York"
[buyer.filter]
states = ["CA", "TX", "FL", "NY", "WA"]
zips = ["941*", "900*", "10001", "98101"]
exclude_zips = ["94199"]
age_min = 21
age_max = 65
income_min = 20000
credit = ["excellent", "good"]
homeowner = true
publishers = ["pub1", "pub2", "pub3"]
exclude_sub_ids = ["bad"]
[buyer.filter.attributes]
make = ["Ford", "Toyota", "Honda"]
vehicles = { min = 1, max = 3 }
[buyer.caps]
hourly = 1000000
daily = 1000000
weekly = 1000000
monthly = 1000000
daily_budget = 1000000
weekly_budget = 1000000
monthly_budget = 1000000
[buyer.schedule]
mon = ["00:00-24:00"]
tue = ["00:00-24:00"]
wed = ["00:00-24:00"]
thu = ["00:00-24:00"]
fri = ["00:00-24:00"]
sat = ["08:00-12:00", "13:00-20:00"]
sun = ["08:00-12:00", "13:00-20:00"]
"#;

/// Wednesday 2026-12-09 15:00 UTC: open, mid-hour.
const NOW_MS: u64 = 1_796_828_400_000;

fn buyer() -> Buyer {
    let none = |_: &str| None;
    parse(CONFIG, &none).unwrap().buyers.remove(0)
}

fn lead() -> Lead {
    Lead {
        zip: "94105".into(),
        state: "CA".into(),
        age: Some(34),
        income: Some(85_000),
        credit: Some(Credit::Good),
        homeowner: Some(true),
        sub_id: Some("s1".into()),
        attributes: vec![
            ("make".into(), Attr::Str("Toyota".into())),
            ("vehicles".into(), Attr::Int(2)),
        ],
        ..Lead::default()
    }
}

fn bench(c: &mut Criterion) {
    let b = buyer();
    let l = lead();
    c.bench_function("filter::eligible (every key, passes)", |bench| {
        bench.iter(|| filter::eligible(&b, "auto", &l, "pub2"))
    });
    let sched = b.schedule.clone().unwrap();
    c.bench_function("schedule::is_open (New York)", |bench| {
        bench.iter(|| schedule::is_open(&sched, &b.timezone, NOW_MS))
    });
    c.bench_function("Periods::at (New York, uncached)", |bench| {
        bench.iter(|| Periods::at(&b.timezone, NOW_MS))
    });
    let ledger = Arc::new(Ledger::new(b.timezone.clone(), NOW_MS, &[]));
    c.bench_function("Ledger::check (7 limits, periods cached)", |bench| {
        bench.iter(|| ledger.check(&b.caps, NOW_MS, Some(1000)))
    });
    c.bench_function("Ledger::reserve + release (7 limits)", |bench| {
        bench.iter(|| drop(ledger.reserve(&b.caps, NOW_MS, 1000)))
    });
    let breaker = Breaker::new(20, 5000);
    let gate = Gate::new(64);
    c.bench_function("breaker admit + gate permit", |bench| {
        bench.iter(|| {
            let _ = breaker.admit(NOW_MS);
            drop(gate.try_enter());
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
