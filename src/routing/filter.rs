//! `[buyer.filter]` against a lead (contract §10). Every key given must
//! hold. An inclusion filter refuses a lead that lacks its field (a buyer
//! that asks for ages 25–40 does not want a lead of unknown age); an
//! `exclude_` filter refuses only a lead that has one of its values. Each
//! refusal names its key's reason (`filter_zip`, `filter_attribute`, …);
//! a twin shares its key's reason.

use super::Reason;
use crate::config::{AttrRule, AttrTest, AttrValue, Buyer, Filter, ZipSet};
use crate::lead::{Attr, Lead};

/// The static part of routing: does `buyer` buy `vertical`, and does its
/// filter admit `lead` from `publisher`? (Live checks — schedule, caps,
/// breaker, concurrency, time — come after, in the exchange.)
pub fn eligible(buyer: &Buyer, vertical: &str, lead: &Lead, publisher: &str) -> Result<(), Reason> {
    if !buyer.verticals.iter().any(|v| v == vertical) {
        return Err(Reason::VerticalNotBought);
    }
    check(&buyer.filter, lead, publisher)
}

/// Whether `f` admits `lead`, sent by `publisher` (the lead's own `sub_id`
/// is the sub-id filtered on). Cheapest and most selective checks first.
pub fn check(f: &Filter, lead: &Lead, publisher: &str) -> Result<(), Reason> {
    let state = lead.state.as_str();
    include(
        &f.states,
        |s| s.iter().any(|x| x == state),
        Reason::FilterState,
    )?;
    exclude(
        &f.exclude_states,
        |s| s.iter().any(|x| x == state),
        Reason::FilterState,
    )?;
    include(&f.zips, |z| zip_in(z, &lead.zip), Reason::FilterZip)?;
    exclude(&f.exclude_zips, |z| zip_in(z, &lead.zip), Reason::FilterZip)?;
    let sorted_has = |s: &Vec<String>, v: &str| s.binary_search_by(|x| x.as_str().cmp(v)).is_ok();
    include(
        &f.publishers,
        |s| sorted_has(s, publisher),
        Reason::FilterPublisher,
    )?;
    exclude(
        &f.exclude_publishers,
        |s| sorted_has(s, publisher),
        Reason::FilterPublisher,
    )?;
    let sub_id = lead.sub_id.as_deref();
    include(
        &f.sub_ids,
        |s| sub_id.is_some_and(|v| sorted_has(s, v)),
        Reason::FilterSubId,
    )?;
    exclude(
        &f.exclude_sub_ids,
        |s| sub_id.is_some_and(|v| sorted_has(s, v)),
        Reason::FilterSubId,
    )?;
    within(lead.age, f.age_min, f.age_max, Reason::FilterAge)?;
    within(
        lead.income,
        f.income_min,
        f.income_max,
        Reason::FilterIncome,
    )?;
    let credit = lead.credit;
    include(
        &f.credit,
        |c| credit.is_some_and(|v| c.contains(&v)),
        Reason::FilterCredit,
    )?;
    exclude(
        &f.exclude_credit,
        |c| credit.is_some_and(|v| c.contains(&v)),
        Reason::FilterCredit,
    )?;
    if let Some(want) = f.homeowner {
        if lead.homeowner != Some(want) {
            return Err(Reason::FilterHomeowner);
        }
    }
    for rule in &f.attributes {
        if attr(lead, &rule.key).is_none_or(|v| !holds(rule, v)) {
            return Err(Reason::FilterAttribute);
        }
    }
    for rule in &f.exclude_attributes {
        if attr(lead, &rule.key).is_some_and(|v| holds(rule, v)) {
            return Err(Reason::FilterAttribute);
        }
    }
    Ok(())
}

fn include<T>(rule: &Option<T>, has: impl FnOnce(&T) -> bool, why: Reason) -> Result<(), Reason> {
    match rule {
        Some(set) if !has(set) => Err(why),
        _ => Ok(()),
    }
}

fn exclude<T>(rule: &Option<T>, has: impl FnOnce(&T) -> bool, why: Reason) -> Result<(), Reason> {
    match rule {
        Some(set) if has(set) => Err(why),
        _ => Ok(()),
    }
}

/// A bounded field: absent fails when either bound is set.
fn within<T: PartialOrd + Copy>(
    value: Option<T>,
    min: Option<T>,
    max: Option<T>,
    why: Reason,
) -> Result<(), Reason> {
    if min.is_none() && max.is_none() {
        return Ok(());
    }
    let v = value.ok_or(why)?;
    if min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
        return Err(why);
    }
    Ok(())
}

/// Exact codes, or any prefix of 1 to 4 digits.
fn zip_in(set: &ZipSet, zip: &str) -> bool {
    if set.exact.binary_search_by(|z| z.as_str().cmp(zip)).is_ok() {
        return true;
    }
    (1..=4.min(zip.len())).any(|n| {
        zip.get(..n)
            .is_some_and(|p| set.prefixes.binary_search_by(|x| x.as_str().cmp(p)).is_ok())
    })
}

/// The lead's attribute `key` (the lead keeps them sorted by key).
fn attr<'l>(lead: &'l Lead, key: &str) -> Option<&'l Attr> {
    let i = lead
        .attributes
        .binary_search_by(|(k, _)| k.as_str().cmp(key))
        .ok()?;
    Some(&lead.attributes[i].1)
}

fn holds(rule: &AttrRule, value: &Attr) -> bool {
    let number = match value {
        Attr::Int(n) => Some(*n as f64),
        Attr::Float(x) => Some(*x),
        _ => None,
    };
    match &rule.test {
        AttrTest::Range { min, max } => {
            number.is_some_and(|x| min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m))
        }
        AttrTest::OneOf(values) => values.iter().any(|want| match (want, value) {
            (AttrValue::Str(w), Attr::Str(v)) => w == v,
            (AttrValue::Bool(w), Attr::Bool(v)) => w == v,
            (AttrValue::Num(w), _) => number == Some(*w),
            _ => false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::Credit;

    fn lead() -> Lead {
        Lead {
            zip: "94105".into(),
            state: "CA".into(),
            age: Some(30),
            income: Some(60_000),
            credit: Some(Credit::Good),
            homeowner: Some(true),
            sub_id: Some("s1".into()),
            attributes: vec![
                ("make".into(), Attr::Str("Ford".into())),
                ("vehicles".into(), Attr::Int(2)),
            ],
            ..Lead::default()
        }
    }

    fn zips(list: &[&str]) -> Option<ZipSet> {
        let mut set = ZipSet::default();
        for z in list {
            match z.strip_suffix('*') {
                Some(p) => set.prefixes.push(p.into()),
                None => set.exact.push(z.to_string()),
            }
        }
        set.exact.sort();
        set.prefixes.sort();
        Some(set)
    }

    fn strs(list: &[&str]) -> Option<Vec<String>> {
        let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        v.sort();
        Some(v)
    }

    fn rule(key: &str, test: AttrTest) -> Vec<AttrRule> {
        vec![AttrRule {
            key: key.into(),
            test,
        }]
    }

    /// One filter per key, and its twin: the lead passes when the rule is
    /// written to admit it and is refused, with that key's reason, when
    /// written to refuse it.
    #[test]
    fn every_key_and_its_twin_admits_and_refuses_with_its_reason() {
        let l = lead();
        let f = Filter::default;
        let pass_fail: Vec<(Filter, Filter, Reason)> = vec![
            (
                Filter {
                    states: strs(&["CA", "TX"]),
                    ..f()
                },
                Filter {
                    states: strs(&["TX"]),
                    ..f()
                },
                Reason::FilterState,
            ),
            (
                Filter {
                    exclude_states: strs(&["TX"]),
                    ..f()
                },
                Filter {
                    exclude_states: strs(&["CA"]),
                    ..f()
                },
                Reason::FilterState,
            ),
            (
                Filter {
                    zips: zips(&["941*"]),
                    ..f()
                },
                Filter {
                    zips: zips(&["9411*", "94106", "95*"]),
                    ..f()
                },
                Reason::FilterZip,
            ),
            (
                Filter {
                    zips: zips(&["94105"]),
                    exclude_zips: zips(&["9*0"]),
                    ..f()
                },
                Filter {
                    exclude_zips: zips(&["9*"]),
                    ..f()
                },
                Reason::FilterZip,
            ),
            (
                Filter {
                    age_min: Some(30),
                    age_max: Some(30),
                    ..f()
                },
                Filter {
                    age_min: Some(31),
                    ..f()
                },
                Reason::FilterAge,
            ),
            (
                Filter {
                    income_min: Some(50_000),
                    ..f()
                },
                Filter {
                    income_max: Some(59_999),
                    ..f()
                },
                Reason::FilterIncome,
            ),
            (
                Filter {
                    credit: Some(vec![Credit::Good]),
                    exclude_credit: Some(vec![Credit::Poor]),
                    ..f()
                },
                Filter {
                    credit: Some(vec![Credit::Excellent]),
                    ..f()
                },
                Reason::FilterCredit,
            ),
            (
                Filter {
                    exclude_credit: Some(vec![Credit::Poor]),
                    ..f()
                },
                Filter {
                    exclude_credit: Some(vec![Credit::Good]),
                    ..f()
                },
                Reason::FilterCredit,
            ),
            (
                Filter {
                    homeowner: Some(true),
                    ..f()
                },
                Filter {
                    homeowner: Some(false),
                    ..f()
                },
                Reason::FilterHomeowner,
            ),
            (
                Filter {
                    publishers: strs(&["pub1", "pub2"]),
                    ..f()
                },
                Filter {
                    publishers: strs(&["pub2"]),
                    ..f()
                },
                Reason::FilterPublisher,
            ),
            (
                Filter {
                    exclude_publishers: strs(&["pub2"]),
                    ..f()
                },
                Filter {
                    exclude_publishers: strs(&["pub1"]),
                    ..f()
                },
                Reason::FilterPublisher,
            ),
            (
                Filter {
                    sub_ids: strs(&["s1"]),
                    ..f()
                },
                Filter {
                    sub_ids: strs(&["s2"]),
                    ..f()
                },
                Reason::FilterSubId,
            ),
            (
                Filter {
                    exclude_sub_ids: strs(&["s2"]),
                    ..f()
                },
                Filter {
                    exclude_sub_ids: strs(&["s1"]),
                    ..f()
                },
                Reason::FilterSubId,
            ),
            (
                Filter {
                    attributes: rule("make", AttrTest::OneOf(vec![AttrValue::Str("Ford".into())])),
                    ..f()
                },
                Filter {
                    attributes: rule("make", AttrTest::OneOf(vec![AttrValue::Str("ford".into())])),
                    ..f()
                },
                Reason::FilterAttribute,
            ),
            (
                Filter {
                    attributes: rule(
                        "vehicles",
                        AttrTest::Range {
                            min: Some(1.0),
                            max: Some(3.0),
                        },
                    ),
                    ..f()
                },
                Filter {
                    attributes: rule(
                        "vehicles",
                        AttrTest::Range {
                            min: Some(3.0),
                            max: None,
                        },
                    ),
                    ..f()
                },
                Reason::FilterAttribute,
            ),
            (
                Filter {
                    exclude_attributes: rule(
                        "vehicles",
                        AttrTest::OneOf(vec![AttrValue::Num(3.0)]),
                    ),
                    ..f()
                },
                Filter {
                    exclude_attributes: rule(
                        "vehicles",
                        AttrTest::OneOf(vec![AttrValue::Num(2.0)]),
                    ),
                    ..f()
                },
                Reason::FilterAttribute,
            ),
        ];
        for (pass, fail, why) in pass_fail {
            assert_eq!(check(&pass, &l, "pub1"), Ok(()), "{pass:?}");
            assert_eq!(check(&fail, &l, "pub1"), Err(why), "{fail:?}");
        }
    }

    /// An inclusion filter refuses a lead without the field; an exclusion
    /// filter lets it through.
    #[test]
    fn a_missing_field_fails_inclusion_and_passes_exclusion() {
        let bare = Lead {
            zip: "94105".into(),
            state: "CA".into(),
            ..Lead::default()
        };
        let f = Filter::default;
        let cases: Vec<(Filter, Option<Reason>)> = vec![
            (
                Filter {
                    age_max: Some(50),
                    ..f()
                },
                Some(Reason::FilterAge),
            ),
            (
                Filter {
                    income_min: Some(1),
                    ..f()
                },
                Some(Reason::FilterIncome),
            ),
            (
                Filter {
                    credit: Some(vec![Credit::Good]),
                    ..f()
                },
                Some(Reason::FilterCredit),
            ),
            (
                Filter {
                    homeowner: Some(false),
                    ..f()
                },
                Some(Reason::FilterHomeowner),
            ),
            (
                Filter {
                    sub_ids: strs(&["s1"]),
                    ..f()
                },
                Some(Reason::FilterSubId),
            ),
            (
                Filter {
                    attributes: rule(
                        "make",
                        AttrTest::Range {
                            min: None,
                            max: Some(1.0),
                        },
                    ),
                    ..f()
                },
                Some(Reason::FilterAttribute),
            ),
            (
                Filter {
                    exclude_credit: Some(vec![Credit::Poor]),
                    ..f()
                },
                None,
            ),
            (
                Filter {
                    exclude_sub_ids: strs(&["s1"]),
                    ..f()
                },
                None,
            ),
            (
                Filter {
                    exclude_attributes: rule("make", AttrTest::OneOf(vec![AttrValue::Bool(true)])),
                    ..f()
                },
                None,
            ),
        ];
        for (filter, want) in cases {
            assert_eq!(check(&filter, &bare, "p").err(), want, "{filter:?}");
        }
    }

    #[test]
    fn a_string_attribute_is_not_a_number_and_numbers_compare_by_value() {
        let mut l = lead();
        l.attributes = vec![
            ("n".into(), Attr::Str("2".into())),
            ("x".into(), Attr::Float(2.0)),
        ];
        let range = |k: &str| Filter {
            attributes: rule(
                k,
                AttrTest::Range {
                    min: Some(1.0),
                    max: Some(3.0),
                },
            ),
            ..Filter::default()
        };
        assert_eq!(check(&range("n"), &l, "p"), Err(Reason::FilterAttribute));
        assert_eq!(check(&range("x"), &l, "p"), Ok(()));
        let two = Filter {
            attributes: rule("x", AttrTest::OneOf(vec![AttrValue::Num(2.0)])),
            ..Filter::default()
        };
        assert_eq!(check(&two, &l, "p"), Ok(()));
    }
}
