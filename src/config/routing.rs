//! A buyer's routing controls (contract §10): `timezone`, `[buyer.filter]`
//! (with `[buyer.filter.attributes]`), `[buyer.caps]`, `[buyer.schedule]`
//! and `[buyer.health]`. Kept apart from `buyer` so the buyer reader only
//! calls one function per section; the checks that use these values at run
//! time live in the pure `crate::routing` core and `exchange::caps`.
//!
//! Every bad value is an error naming its key; what cannot be right (a cap
//! of 0, `25:00`, an inverted or overlapping range, `age_min > age_max`, an
//! unknown zone) is refused here, before traffic sees it.

use jiff::tz::TimeZone;
use toml::Value;

use super::walk::{Section, Walker};
use super::{Caps, Filter};
use crate::lead::Credit;
use crate::limits;
use crate::money::{cents_from_f64, Cents};

/// The filter keys of contract §10, plus the `exclude_` twins of the set
/// filters (`exclude_credit`, `exclude_attributes` are leadx's own).
const FILTER_KEYS: &[&str] = &[
    "states",
    "exclude_states",
    "zips",
    "exclude_zips",
    "age_min",
    "age_max",
    "income_min",
    "income_max",
    "credit",
    "exclude_credit",
    "homeowner",
    "publishers",
    "exclude_publishers",
    "sub_ids",
    "exclude_sub_ids",
    "attributes",
    "exclude_attributes",
];

const CAPS_KEYS: &[&str] = &[
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "daily_budget",
    "weekly_budget",
    "monthly_budget",
];

const HEALTH_KEYS: &[&str] = &["concurrency_max", "breaker_failures", "breaker_cooldown_ms"];

/// `[buyer.schedule]` keys, Monday first (index = days from Monday).
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Zips to match: exact five-digit codes and prefixes (`941*`), each sorted
/// so a lookup is a binary search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZipSet {
    pub exact: Vec<String>,
    /// The digits before the `*`, 1 to 4 of them.
    pub prefixes: Vec<String>,
}

/// One `[buyer.filter.attributes]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrRule {
    pub key: String,
    pub test: AttrTest,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttrTest {
    /// The lead's value is one of these (strings exact, numbers by value).
    OneOf(Vec<AttrValue>),
    /// The lead's value is a number within the bounds (inclusive).
    Range { min: Option<f64>, max: Option<f64> },
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Num(f64),
    Bool(bool),
}

/// `f64` bounds that are never NaN (refused at load), so equality is total.
impl Eq for AttrRule {}

/// `[buyer.schedule]`: open minutes per weekday (Monday first), each range
/// `[start, end)` in minutes after local midnight, sorted, disjoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    pub days: [Vec<(u16, u16)>; 7],
}

/// `[buyer.health]`. Everything off by default: a v1 config behaves as
/// before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Calls in flight to this buyer; `None` = only the global budget.
    pub concurrency_max: Option<u32>,
    /// Failures in a row that open the breaker; `None` = no breaker.
    pub breaker_failures: Option<u32>,
    pub breaker_cooldown_ms: u64,
}

/// `timezone`: an IANA name from the bundled tz database; default UTC.
pub(super) fn timezone(w: &mut Walker, s: &Section) -> Option<TimeZone> {
    if !s.has("timezone") {
        return Some(TimeZone::UTC);
    }
    let text = s.string(w, "timezone")?;
    match TimeZone::get(&text.value) {
        Ok(tz) => Some(tz),
        Err(_) => {
            w.error(
                s.key("timezone"),
                format!(
                    "unknown time zone {} (an IANA name such as \"America/New_York\")",
                    text.shown()
                ),
            );
            None
        }
    }
}

/// `[buyer.filter]`. Reports every bad key; `None` if any.
pub(super) fn filter(w: &mut Walker, s: &Section) -> Option<Filter> {
    if !s.has("filter") {
        return Some(Filter::default());
    }
    let (path, table) = s.table(w, "filter")?;
    let f = Section { path: &path, table };
    let before = w.errors.len();
    f.only(w, FILTER_KEYS);
    let ages = i64::from(limits::AGE_YEARS_MIN)..=i64::from(limits::AGE_YEARS_MAX);
    let age = |w: &mut Walker, k| f.int(w, k, ages.clone()).map(|n| n as u16);
    let income = |w: &mut Walker, k| f.int(w, k, 0..=i64::MAX);
    let out = Filter {
        states: opt(&f, "states", |k| states(w, &f, k)),
        exclude_states: opt(&f, "exclude_states", |k| states(w, &f, k)),
        zips: opt(&f, "zips", |k| zips(w, &f, k)),
        exclude_zips: opt(&f, "exclude_zips", |k| zips(w, &f, k)),
        age_min: opt(&f, "age_min", |k| age(w, k)),
        age_max: opt(&f, "age_max", |k| age(w, k)),
        income_min: opt(&f, "income_min", |k| income(w, k)),
        income_max: opt(&f, "income_max", |k| income(w, k)),
        credit: opt(&f, "credit", |k| credits(w, &f, k)),
        exclude_credit: opt(&f, "exclude_credit", |k| credits(w, &f, k)),
        homeowner: opt(&f, "homeowner", |k| f.boolean(w, k)),
        publishers: opt(&f, "publishers", |k| ids(w, &f, k, "publisher")),
        exclude_publishers: opt(&f, "exclude_publishers", |k| ids(w, &f, k, "publisher")),
        sub_ids: opt(&f, "sub_ids", |k| ids(w, &f, k, "sub_id")),
        exclude_sub_ids: opt(&f, "exclude_sub_ids", |k| ids(w, &f, k, "sub_id")),
        attributes: opt(&f, "attributes", |k| attributes(w, &f, k)).unwrap_or_default(),
        exclude_attributes: opt(&f, "exclude_attributes", |k| attributes(w, &f, k))
            .unwrap_or_default(),
    };
    ordered(w, &f, ("age_min", out.age_min), ("age_max", out.age_max));
    ordered(
        w,
        &f,
        ("income_min", out.income_min),
        ("income_max", out.income_max),
    );
    (w.errors.len() == before).then_some(out)
}

/// `Some(read(name))` when `name` is present (its errors recorded by
/// `read`), `None` when absent. The caller checks the error count.
fn opt<T>(
    f: &Section,
    name: &'static str,
    read: impl FnOnce(&'static str) -> Option<T>,
) -> Option<T> {
    if f.has(name) {
        read(name)
    } else {
        None
    }
}

fn ordered<T: PartialOrd>(
    w: &mut Walker,
    f: &Section,
    lo: (&str, Option<T>),
    hi: (&str, Option<T>),
) {
    if let (Some(a), Some(b)) = (&lo.1, &hi.1) {
        if a > b {
            w.error(f.key(lo.0), format!("greater than {}", hi.0));
        }
    }
}

/// A list that must not be empty: leaving the key out says "any".
fn listed(
    w: &mut Walker,
    f: &Section,
    name: &str,
    max: usize,
    noun: &str,
) -> Option<Vec<(String, String)>> {
    let before = w.errors.len();
    let items = f.strings(w, name, max)?;
    if items.is_empty() && w.errors.len() == before {
        w.error(
            f.key(name),
            format!("must not be empty (leave it out to accept every {noun})"),
        );
        return None;
    }
    Some(items.into_iter().map(|(k, t)| (k, t.value)).collect())
}

fn states(w: &mut Walker, f: &Section, name: &str) -> Option<Vec<String>> {
    let before = w.errors.len();
    let mut out = Vec::new();
    for (key, code) in listed(w, f, name, limits::FILTER_STATES_MAX, "state")? {
        if crate::usps::is_state(&code) {
            out.push(code);
        } else {
            w.error(key, format!("not a USPS state code {code:?}"));
        }
    }
    (w.errors.len() == before).then_some(out)
}

/// `"94105"` (exact) or `"941*"` (1 to 4 digits, then `*`).
fn zips(w: &mut Walker, f: &Section, name: &str) -> Option<ZipSet> {
    let before = w.errors.len();
    let mut set = ZipSet::default();
    for (key, zip) in listed(w, f, name, limits::FILTER_ZIPS_MAX, "zip")? {
        let digits = zip.strip_suffix('*').unwrap_or(&zip);
        let all_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        match (all_digits, digits.len(), zip.ends_with('*')) {
            (true, 5, false) => set.exact.push(zip),
            (true, 1..=4, true) => set.prefixes.push(digits.to_string()),
            _ => w.error(
                key,
                format!("not a zip {zip:?} (5 digits, or 1 to 4 digits then *)"),
            ),
        }
    }
    set.exact.sort();
    set.exact.dedup();
    set.prefixes.sort();
    set.prefixes.dedup();
    (w.errors.len() == before).then_some(set)
}

fn credits(w: &mut Walker, f: &Section, name: &str) -> Option<Vec<Credit>> {
    let before = w.errors.len();
    let mut out = Vec::new();
    for (key, word) in listed(w, f, name, 4, "credit rating")? {
        match Credit::parse(&word) {
            Some(c) => out.push(c),
            None => w.error(
                key,
                format!("not a credit rating {word:?} (excellent, good, fair, poor)"),
            ),
        }
    }
    (w.errors.len() == before).then_some(out)
}

/// Publisher or sub-id values: compared as given, sorted for lookup.
fn ids(w: &mut Walker, f: &Section, name: &str, noun: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = listed(w, f, name, limits::FILTER_IDS_MAX, noun)?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    out.sort();
    out.dedup();
    Some(out)
}

/// `[buyer.filter.attributes]`: `key = [values…]` or `key = { min, max }`.
fn attributes(w: &mut Walker, f: &Section, name: &str) -> Option<Vec<AttrRule>> {
    let (path, table) = f.table(w, name)?;
    if table.len() > limits::FILTER_ATTRIBUTES_MAX {
        w.error(
            path,
            format!("at most {} attributes", limits::FILTER_ATTRIBUTES_MAX),
        );
        return None;
    }
    let a = Section { path: &path, table };
    let before = w.errors.len();
    let mut out = Vec::with_capacity(table.len());
    for (key, value) in table {
        if key.is_empty() || key.len() > limits::LEAD_ATTRIBUTE_KEY_BYTES_MAX {
            w.error(a.key(key), "not an attribute name (1 to 64 bytes)");
            continue;
        }
        let test = match value {
            Value::Array(items) => one_of(w, &a.key(key), items),
            Value::Table(_) => range(w, &a, key),
            _ => {
                w.error(a.key(key), "expected an array of values or { min, max }");
                None
            }
        };
        out.extend(test.map(|test| AttrRule {
            key: key.clone(),
            test,
        }));
    }
    out.sort_by(|x, y| x.key.cmp(&y.key));
    (w.errors.len() == before).then_some(out)
}

fn one_of(w: &mut Walker, key: &str, items: &[Value]) -> Option<AttrTest> {
    if items.is_empty() || items.len() > limits::FILTER_IDS_MAX {
        w.error(
            key,
            format!("must hold 1 to {} values", limits::FILTER_IDS_MAX),
        );
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) => out.push(AttrValue::Str(s.clone())),
            Value::Integer(n) => out.push(AttrValue::Num(*n as f64)),
            Value::Float(x) if x.is_finite() => out.push(AttrValue::Num(*x)),
            Value::Boolean(b) => out.push(AttrValue::Bool(*b)),
            _ => w.error(
                format!("{key}[{i}]"),
                "expected a string, a finite number or a boolean",
            ),
        }
    }
    Some(AttrTest::OneOf(out))
}

fn range(w: &mut Walker, a: &Section, name: &str) -> Option<AttrTest> {
    let (path, table) = a.table(w, name)?;
    let r = Section { path: &path, table };
    r.only(w, &["min", "max"]);
    if !r.has("min") && !r.has("max") {
        w.error(path.clone(), "needs min, max or both");
        return None;
    }
    let bound = |w: &mut Walker, k: &str| -> Option<Option<f64>> {
        if !r.has(k) {
            return Some(None);
        }
        let x = r.number(w, k)?;
        if !x.is_finite() {
            w.error(r.key(k), "must be a finite number");
            return None;
        }
        Some(Some(x))
    };
    let (min, max) = (bound(w, "min")?, bound(w, "max")?);
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            w.error(r.key("min"), "greater than max");
            return None;
        }
    }
    Some(AttrTest::Range { min, max })
}

/// `[buyer.caps]`: every count at least 1, every budget a positive price.
pub(super) fn caps(w: &mut Walker, s: &Section) -> Option<Caps> {
    if !s.has("caps") {
        return Some(Caps::default());
    }
    let (path, table) = s.table(w, "caps")?;
    let c = Section { path: &path, table };
    let before = w.errors.len();
    c.only(w, CAPS_KEYS);
    let count = |w: &mut Walker, k: &'static str| {
        opt(&c, k, |k| {
            c.int(w, k, 1..=i64::from(limits::CAP_COUNT_MAX))
                .map(|n| n as u32)
        })
    };
    let budget = |w: &mut Walker, k: &'static str| opt(&c, k, |k| budget(w, &c, k));
    let out = Caps {
        hourly: count(w, "hourly"),
        daily: count(w, "daily"),
        weekly: count(w, "weekly"),
        monthly: count(w, "monthly"),
        daily_budget: budget(w, "daily_budget"),
        weekly_budget: budget(w, "weekly_budget"),
        monthly_budget: budget(w, "monthly_budget"),
    };
    (w.errors.len() == before).then_some(out)
}

fn budget(w: &mut Walker, c: &Section, name: &str) -> Option<Cents> {
    let cents = cents_from_f64(c.number(w, name)?);
    match cents {
        Some(n) if (1..=limits::CAP_BUDGET_CENTS_MAX).contains(&n) => Some(n),
        _ => {
            w.error(
                c.key(name),
                format!(
                    "not a budget (USD above 0, at most {}, at most 2 decimals)",
                    limits::CAP_BUDGET_CENTS_MAX / 100
                ),
            );
            None
        }
    }
}

/// `[buyer.schedule]`: absent = always open (`None`).
pub(super) fn schedule(w: &mut Walker, s: &Section) -> Option<Option<Schedule>> {
    if !s.has("schedule") {
        return Some(None);
    }
    let (path, table) = s.table(w, "schedule")?;
    let sc = Section { path: &path, table };
    let before = w.errors.len();
    sc.only(w, &DAYS);
    let mut out = Schedule::default();
    for (day, name) in DAYS.iter().enumerate() {
        if sc.has(name) {
            out.days[day] = day_ranges(w, &sc, name).unwrap_or_default();
        }
    }
    (w.errors.len() == before).then_some(Some(out))
}

/// One day's `["HH:MM-HH:MM", …]`: valid times, start before end (`24:00`
/// may end a range), no overlap.
fn day_ranges(w: &mut Walker, sc: &Section, name: &str) -> Option<Vec<(u16, u16)>> {
    let items = sc.strings(w, name, limits::SCHEDULE_RANGES_PER_DAY_MAX)?;
    let mut ranges: Vec<((u16, u16), String)> = Vec::with_capacity(items.len());
    for (key, text) in items {
        match parse_range(&text.value) {
            Ok(r) => ranges.push((r, key)),
            Err(why) => w.error(key, format!("{why} in {:?}", text.value)),
        }
    }
    ranges.sort();
    for pair in ranges.windows(2) {
        if pair[1].0 .0 < pair[0].0 .1 {
            w.error(pair[1].1.clone(), format!("overlaps {}", pair[0].1));
        }
    }
    Some(ranges.into_iter().map(|(r, _)| r).collect())
}

/// `"08:00-20:00"` → minutes `(480, 1200)`.
pub(crate) fn parse_range(text: &str) -> Result<(u16, u16), &'static str> {
    let (a, b) = text.split_once('-').ok_or("expected HH:MM-HH:MM")?;
    let (start, end) = (minutes(a.trim())?, minutes(b.trim())?);
    if start >= 24 * 60 {
        return Err("a range cannot start at 24:00");
    }
    if start >= end {
        return Err("start is not before end (split a range past midnight in two days)");
    }
    Ok((start, end))
}

fn minutes(hhmm: &str) -> Result<u16, &'static str> {
    let b = hhmm.as_bytes();
    let digits =
        b.len() == 5 && b[2] == b':' && [0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit());
    if !digits {
        return Err("expected HH:MM-HH:MM");
    }
    let num = |i: usize| u16::from(b[i] - b'0') * 10 + u16::from(b[i + 1] - b'0');
    let (h, m) = (num(0), num(3));
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err("not a time of day (00:00 to 24:00)");
    }
    Ok(h * 60 + m)
}

/// `[buyer.health]`.
pub(super) fn health(w: &mut Walker, s: &Section) -> Option<Health> {
    if !s.has("health") {
        return Some(Health {
            breaker_cooldown_ms: limits::BREAKER_COOLDOWN_MS_DEFAULT,
            ..Health::default()
        });
    }
    let (path, table) = s.table(w, "health")?;
    let h = Section { path: &path, table };
    let before = w.errors.len();
    h.only(w, HEALTH_KEYS);
    let concurrency = opt(&h, "concurrency_max", |k| {
        h.int(w, k, 1..=i64::from(limits::BUYER_CONCURRENCY_MAX_CEILING))
    });
    let failures = opt(&h, "breaker_failures", |k| {
        h.int(w, k, 1..=i64::from(limits::BREAKER_FAILURES_MAX))
    });
    let cooldown = h.int_or(
        w,
        "breaker_cooldown_ms",
        1..=limits::BREAKER_COOLDOWN_MS_MAX as i64,
        limits::BREAKER_COOLDOWN_MS_DEFAULT as i64,
    );
    if h.has("breaker_cooldown_ms") && !h.has("breaker_failures") {
        w.error(
            h.key("breaker_cooldown_ms"),
            "has no effect without breaker_failures",
        );
    }
    (w.errors.len() == before).then(|| Health {
        concurrency_max: concurrency.map(|n| n as u32),
        breaker_failures: failures.map(|n| n as u32),
        breaker_cooldown_ms: cooldown.unwrap_or_default() as u64,
    })
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
