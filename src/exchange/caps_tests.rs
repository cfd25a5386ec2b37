//! Tests of the §10 ledger: each limit with its reason, period changes in
//! the buyer's zone, and model checks — sequential (exact) and concurrent
//! with restarts (never over a cap or budget) — against a plain list of
//! sales, as the store holds them.

use super::*;
use crate::routing::period::Period;
use jiff::civil::date;

fn ny() -> TimeZone {
    TimeZone::get("America/New_York").unwrap()
}

fn ny_ms(y: i16, m: i8, d: i8, h: i8, min: i8) -> u64 {
    let z = date(y, m, d).at(h, min, 0, 0).to_zoned(ny()).unwrap();
    z.timestamp().as_millisecond() as u64
}

fn ledger(tz: TimeZone, now: u64, sales: &[(u64, Cents)]) -> Arc<Ledger> {
    Arc::new(Ledger::new(tz, now, sales))
}

#[test]
fn each_limit_refuses_with_its_own_reason() {
    let now = ny_ms(2026, 12, 9, 10, 0);
    let cases: [(Caps, Reason); 7] = [
        (
            Caps {
                hourly: Some(2),
                ..Caps::default()
            },
            Reason::CapHourly,
        ),
        (
            Caps {
                daily: Some(2),
                ..Caps::default()
            },
            Reason::CapDaily,
        ),
        (
            Caps {
                weekly: Some(2),
                ..Caps::default()
            },
            Reason::CapWeekly,
        ),
        (
            Caps {
                monthly: Some(2),
                ..Caps::default()
            },
            Reason::CapMonthly,
        ),
        (
            Caps {
                daily_budget: Some(250),
                ..Caps::default()
            },
            Reason::CapDailyBudget,
        ),
        (
            Caps {
                weekly_budget: Some(250),
                ..Caps::default()
            },
            Reason::CapWeeklyBudget,
        ),
        (
            Caps {
                monthly_budget: Some(250),
                ..Caps::default()
            },
            Reason::CapMonthlyBudget,
        ),
    ];
    for (caps, why) in cases {
        let l = ledger(ny(), now, &[]);
        let a = l.reserve(&caps, now, 100).unwrap();
        let b = l.reserve(&caps, now, 100).unwrap();
        assert_eq!(l.reserve(&caps, now, 100).err(), Some(why));
        assert_eq!(l.check(&caps, now, Some(100)), Err(why));
        drop(a);
        assert_eq!(l.check(&caps, now, Some(100)), Ok(()));
        let _c = l.reserve(&caps, now, 100).unwrap();
        drop(b);
    }
}

#[test]
fn a_budget_refuses_the_price_that_would_pass_it_and_takes_a_smaller_one() {
    let now = ny_ms(2026, 12, 9, 10, 0);
    let caps = Caps {
        daily_budget: Some(1000),
        ..Caps::default()
    };
    let l = ledger(ny(), now, &[(now - 1, 700)]);
    assert_eq!(l.check(&caps, now, Some(301)), Err(Reason::CapDailyBudget));
    assert_eq!(
        l.reserve(&caps, now, 301).err(),
        Some(Reason::CapDailyBudget)
    );
    let r = l.reserve(&caps, now, 300).unwrap();
    assert_eq!(l.usage(now).daily_spent, 1000);
    let (key, value) = r.commit("b1", "L1");
    assert_eq!(keys::parse_buyer_sale("b1", &key, &value), Some((now, 300)));
    assert_eq!(l.usage(now).daily_spent, 1000, "a committed sale stays");
}

/// A refusal by a later cell gives back what the earlier cells took.
#[test]
fn a_refused_reservation_leaves_every_cell_as_it_was() {
    let now = ny_ms(2026, 12, 9, 10, 0);
    let caps = Caps {
        monthly_budget: Some(500),
        ..Caps::default()
    };
    let l = ledger(ny(), now, &[]);
    let before = l.usage(now);
    assert_eq!(
        l.reserve(&caps, now, 501).err(),
        Some(Reason::CapMonthlyBudget)
    );
    assert_eq!(l.usage(now), before);
}

/// Midnight in New York, not UTC, frees the daily cap; the hourly cap
/// frees on the hour; the weekly and monthly ones hold across both.
#[test]
fn counts_reset_at_the_zones_boundaries_and_an_older_period_is_refused() {
    let caps = Caps {
        hourly: Some(1),
        daily: Some(2),
        weekly: Some(3),
        ..Caps::default()
    };
    let t0 = ny_ms(2026, 12, 9, 22, 30); // 03:30 UTC on the 10th
    let l = ledger(ny(), t0, &[]);
    let _a = l.reserve(&caps, t0, 1).unwrap().commit("b", "1");
    assert_eq!(
        l.reserve(&caps, t0 + 60_000, 1).err(),
        Some(Reason::CapHourly)
    );
    let t1 = ny_ms(2026, 12, 9, 23, 0);
    let _b = l.reserve(&caps, t1, 1).unwrap().commit("b", "2");
    assert_eq!(
        l.reserve(&caps, ny_ms(2026, 12, 9, 23, 59), 1).err(),
        Some(Reason::CapHourly)
    );
    // 00:00 in New York: a new day; the week still holds two of three.
    let t2 = ny_ms(2026, 12, 10, 0, 0);
    let _c = l.reserve(&caps, t2, 1).unwrap().commit("b", "3");
    assert_eq!(
        l.reserve(&caps, ny_ms(2026, 12, 10, 5, 0), 1).err(),
        Some(Reason::CapWeekly)
    );
    // A reservation stamped before the cells' period does not reset them.
    assert_eq!(l.reserve(&caps, t1, 1).err(), Some(Reason::CapHourly));
    assert_eq!(l.usage(t2).daily, 1);
}

#[test]
fn a_ledger_counts_only_the_stored_sales_of_its_periods() {
    let now = ny_ms(2026, 3, 8, 12, 0); // spring-forward Sunday
    let sales = [
        (ny_ms(2026, 2, 28, 23, 59), 1),    // last month, last week
        (ny_ms(2026, 3, 1, 0, 0), 10),      // this month, last week (Mon 2 Mar starts it)
        (ny_ms(2026, 3, 2, 0, 0), 100),     // this week
        (ny_ms(2026, 3, 8, 0, 0), 1000),    // today (midnight EST)
        (ny_ms(2026, 3, 8, 12, 5), 10_000), // this hour
    ];
    let u = Ledger::new(ny(), now, &sales).usage(now);
    assert_eq!(
        u,
        Usage {
            hourly: 1,
            daily: 2,
            weekly: 3,
            monthly: 4,
            daily_spent: 11_000,
            weekly_spent: 11_100,
            monthly_spent: 11_110,
        }
    );
    assert_eq!(
        Periods::at(&ny(), now).earliest_start_ms(),
        ny_ms(2026, 3, 1, 0, 0)
    );
}

#[test]
fn the_book_keeps_live_ledgers_recounts_on_a_zone_change_and_attaches_nothing_on_error() {
    let book = LedgerBook::default();
    let (utc, zone) = (TimeZone::UTC, ny());
    let now = ny_ms(2026, 12, 9, 10, 0);
    let mut counted = Vec::new();
    let first = book
        .attach::<()>(&[("a", &utc), ("b", &utc)], now, |b, _| {
            counted.push(b.to_string());
            Ok(vec![(now, 5)])
        })
        .unwrap();
    let again = book
        .attach::<()>(&[("b", &utc), ("a", &zone)], now, |b, from| {
            counted.push(b.to_string());
            assert_eq!(from, Periods::at(&ny(), now).earliest_start_ms());
            Ok(vec![])
        })
        .unwrap();
    assert_eq!(counted, ["a", "b", "a"]);
    assert!(Arc::ptr_eq(&first[1], &again[0]));
    assert!(!Arc::ptr_eq(&first[0], &again[1]));
    assert_eq!(
        (again[0].usage(now).daily, again[1].usage(now).daily),
        (1, 0)
    );
    assert_eq!(
        book.attach(&[("c", &utc)], now, |_, _| Err("disk"))
            .unwrap_err(),
        "disk"
    );
    let c = book
        .attach::<()>(&[("c", &utc)], now, |_, _| Ok(vec![(now, 1)]))
        .unwrap();
    assert_eq!(c[0].usage(now).daily, 1);
}

/// Sales written the way a sale writes them are counted back from a real
/// store, also after it is closed and reopened, and never under the
/// book's lock.
#[test]
fn stored_sales_are_counted_from_the_store_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let now = ny_ms(2026, 12, 9, 10, 0);
    let from = Periods::at(&ny(), now).earliest_start_ms();
    {
        let store = Store::open(dir.path(), crate::store::StoreOptions::default()).unwrap();
        let mut batch = crate::store::Batch::default();
        for (i, at) in [from - 1, from, now].into_iter().enumerate() {
            let value = keys::buyer_sale_value(250);
            batch.insert(
                Tree::Caps,
                keys::buyer_sale("b1", at, &format!("L{i}")),
                value,
            );
        }
        batch.insert(
            Tree::Caps,
            keys::buyer_sale("b2", now, "L9"),
            keys::buyer_sale_value(1),
        );
        batch.insert(Tree::Caps, keys::cap_sale("b1", 20_000, "L8"), Vec::new());
        store.write_durable(batch).unwrap();
        store.close().unwrap();
    }
    let store = Store::open(dir.path(), crate::store::StoreOptions::default()).unwrap();
    let sales = stored_sales(&store, "b1", from).unwrap();
    assert_eq!(sales, [(from, 250), (now, 250)]);
    // Through the book, as a runtime build does: counting waits for the
    // store writer, which panics in debug builds under a held lock (#7).
    let book = LedgerBook::default();
    let zone = ny();
    let l = book
        .attach(&[("b1", &zone)], now, |b, from| {
            stored_sales(&store, b, from)
        })
        .unwrap();
    assert_eq!(
        (l[0].usage(now).monthly, l[0].usage(now).monthly_spent),
        (2, 500)
    );
    let mut bad = crate::store::Batch::default();
    bad.insert(Tree::Caps, keys::buyer_sale("b1", now, "L7"), vec![1, 2]);
    store.write_durable(bad).unwrap();
    assert!(matches!(
        stored_sales(&store, "b1", from),
        Err(CountError::Malformed(_))
    ));
}

/// A deterministic pseudo-random sequence (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn model_caps() -> Caps {
    Caps {
        hourly: Some(6),
        daily: Some(30),
        weekly: Some(90),
        monthly: Some(120),
        daily_budget: Some(30_000),
        weekly_budget: Some(80_000),
        monthly_budget: Some(100_000),
    }
}

/// The model's view: what every period holding `now` holds among `sales`.
fn model_usage(tz: &TimeZone, sales: &[(u64, Cents)], now: u64) -> Usage {
    let p = Periods::at(tz, now);
    let n = |period: Period| {
        let span = p.get(period);
        sales.iter().filter(|(at, _)| span.contains(*at)).count() as u64
    };
    let s = |period: Period| {
        let span = p.get(period);
        sales
            .iter()
            .filter(|(at, _)| span.contains(*at))
            .map(|(_, c)| c)
            .sum::<u64>()
    };
    Usage {
        hourly: n(Period::Hour),
        daily: n(Period::Day),
        weekly: n(Period::Week),
        monthly: n(Period::Month),
        daily_spent: s(Period::Day),
        weekly_spent: s(Period::Week),
        monthly_spent: s(Period::Month),
    }
}

/// What the model says a reservation of `price` at `now` gets.
fn model_reserve(
    tz: &TimeZone,
    held: &[(u64, Cents)],
    now: u64,
    price: Cents,
) -> Result<(), Reason> {
    let u = model_usage(tz, held, now);
    let c = model_caps();
    let over = |used: u64, add: u64, limit: Option<u64>| limit.is_some_and(|l| used + add > l);
    let checks = [
        (
            over(u.hourly, 1, c.hourly.map(u64::from)),
            Reason::CapHourly,
        ),
        (over(u.daily, 1, c.daily.map(u64::from)), Reason::CapDaily),
        (
            over(u.weekly, 1, c.weekly.map(u64::from)),
            Reason::CapWeekly,
        ),
        (
            over(u.monthly, 1, c.monthly.map(u64::from)),
            Reason::CapMonthly,
        ),
        (
            over(u.daily_spent, price, c.daily_budget),
            Reason::CapDailyBudget,
        ),
        (
            over(u.weekly_spent, price, c.weekly_budget),
            Reason::CapWeeklyBudget,
        ),
        (
            over(u.monthly_spent, price, c.monthly_budget),
            Reason::CapMonthlyBudget,
        ),
    ];
    checks
        .into_iter()
        .find(|(over, _)| *over)
        .map_or(Ok(()), |(_, why)| Err(why))
}

/// Every period any sale falls in holds no more than its cap and budget.
fn assert_never_over(tz: &TimeZone, sales: &[(u64, Cents)]) {
    let c = model_caps();
    for &(at, _) in sales {
        let u = model_usage(tz, sales, at);
        assert!(
            u.hourly <= u64::from(c.hourly.unwrap()),
            "hour of {at}: {u:?}"
        );
        assert!(u.daily <= u64::from(c.daily.unwrap()), "day of {at}: {u:?}");
        assert!(
            u.weekly <= u64::from(c.weekly.unwrap()),
            "week of {at}: {u:?}"
        );
        assert!(
            u.monthly <= u64::from(c.monthly.unwrap()),
            "month of {at}: {u:?}"
        );
        assert!(
            u.daily_spent <= c.daily_budget.unwrap(),
            "day of {at}: {u:?}"
        );
        assert!(
            u.weekly_spent <= c.weekly_budget.unwrap(),
            "week of {at}: {u:?}"
        );
        assert!(
            u.monthly_spent <= c.monthly_budget.unwrap(),
            "month of {at}: {u:?}"
        );
    }
}

/// Sequential model check: random reserve / commit / release / time steps
/// / restarts, from the last Saturday of October through fall-back Sunday
/// (25 h), a new week and a new month in New York. Every reservation gets
/// exactly what the model predicts, and the ledger's usage always equals
/// the model's.
#[test]
fn matches_a_plain_model_across_dst_week_and_month_boundaries_and_restarts() {
    let tz = ny();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut now = ny_ms(2026, 10, 30, 20, 0);
    let end = ny_ms(2026, 11, 3, 12, 0);
    let caps = model_caps();
    let mut stored: Vec<(u64, Cents)> = Vec::new();
    let mut open: Vec<Reservation> = Vec::new();
    let mut l = ledger(tz.clone(), now, &stored);
    let (mut steps, mut taken) = (0u64, 0u64);
    while now < end {
        steps += 1;
        match rng.below(20) {
            0..=7 => {
                let price = 100 + rng.below(3000);
                let held: Vec<(u64, Cents)> = stored
                    .iter()
                    .copied()
                    .chain(open.iter().map(|r| (r.at_ms(), r.price())))
                    .collect();
                let want = model_reserve(&tz, &held, now, price);
                let got = l.reserve(&caps, now, price);
                assert_eq!(
                    got.as_ref().map(|_| ()).map_err(|e| *e),
                    want,
                    "step {steps}"
                );
                taken += u64::from(got.is_ok());
                open.extend(got.ok());
            }
            8..=11 if !open.is_empty() => {
                let r = open.swap_remove(rng.below(open.len() as u64) as usize);
                stored.push((r.at_ms(), r.price()));
                r.commit("b", "L");
            }
            12..=14 if !open.is_empty() => {
                drop(open.swap_remove(rng.below(open.len() as u64) as usize))
            }
            15..=18 => now += rng.below(25 * 60_000),
            _ => {
                // A restart: what was reserved and not committed is lost
                // with the process; the new ledger counts the store.
                open.clear();
                let from = Periods::at(&tz, now).earliest_start_ms();
                let since: Vec<_> = stored
                    .iter()
                    .copied()
                    .filter(|(at, _)| *at >= from)
                    .collect();
                l = ledger(tz.clone(), now, &since);
            }
        }
        if open.is_empty() {
            assert_eq!(l.usage(now), model_usage(&tz, &stored, now), "step {steps}");
        }
    }
    assert_never_over(&tz, &stored);
    assert!(
        taken > 100 && stored.len() > 50,
        "the run sold: {taken} {}",
        stored.len()
    );
}

/// Concurrent model check: threads reserve, commit and release at random
/// while one of them moves the clock across the same boundaries; between
/// rounds the process "restarts" (a new ledger counted from the stored
/// sales). No period ever holds more than its cap or budget, and after each
/// round the ledger agrees with the stored sales exactly.
#[test]
fn concurrent_reservations_and_restarts_never_pass_a_cap_or_budget() {
    const THREADS: u64 = 4;
    let tz = ny();
    let caps = Arc::new(model_caps());
    let clock = Arc::new(AtomicU64::new(ny_ms(2026, 10, 31, 18, 0)));
    let stored = Arc::new(Mutex::new(Vec::<(u64, Cents)>::new()));
    let mut l = ledger(tz.clone(), clock.load(Ordering::Relaxed), &[]);
    for round in 0..12u64 {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (l, caps, clock, stored) =
                    (l.clone(), caps.clone(), clock.clone(), stored.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (round * 31 + t + 1));
                    let mut open: Vec<Reservation> = Vec::new();
                    for _ in 0..400 {
                        if t == 0 && rng.below(4) == 0 {
                            clock.fetch_add(rng.below(6 * 60_000), Ordering::Relaxed);
                        }
                        let now = clock.load(Ordering::Relaxed);
                        if let Ok(r) = l.reserve(&caps, now, 100 + rng.below(2000)) {
                            open.push(r);
                        }
                        if open.len() > 3 || (!open.is_empty() && rng.below(2) == 0) {
                            let r = open.swap_remove(rng.below(open.len() as u64) as usize);
                            if rng.below(3) > 0 {
                                stored.lock().push((r.at_ms(), r.price()));
                                r.commit("b", "L");
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let now = clock.load(Ordering::Relaxed);
        let sales = stored.lock().clone();
        assert_never_over(&tz, &sales);
        assert_eq!(l.usage(now), model_usage(&tz, &sales, now), "round {round}");
        let from = Periods::at(&tz, now).earliest_start_ms();
        let since: Vec<_> = sales
            .iter()
            .copied()
            .filter(|(at, _)| *at >= from)
            .collect();
        l = ledger(tz.clone(), now, &since);
        assert_eq!(
            l.usage(now),
            model_usage(&tz, &sales, now),
            "after restart {round}"
        );
    }
    let sales = stored.lock().clone();
    // Budgets bind (about 27 sales a day, 70 a week): some 110 sales in
    // the 60 simulated hours; far fewer means the run tested little.
    assert!(sales.len() > 60, "the run sold {}", sales.len());
}
