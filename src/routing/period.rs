//! The hour, day, week (Monday first) and month that an instant falls in,
//! in a buyer's time zone: the periods caps and budgets are counted in
//! (contract §10: "midnight and DST resets happen in that zone").
//!
//! A period is a span of instants `[start_ms, end_ms)`. Days start at the
//! zone's midnight (or the first instant of the day where midnight does not
//! exist); a spring-forward day is 23 hours long and a fall-back day 25. An
//! hour is the local clock's hour, and the two hours of a fall-back night
//! that both read 1:xx are two periods. Keys are the start instant in
//! minutes since the epoch, so a period is named the same by every thread
//! and by a restart.

use jiff::tz::TimeZone;
use jiff::{civil::Date, Timestamp, ToSpan};

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// Which period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Hour,
    Day,
    Week,
    Month,
}

/// The instants `[start_ms, end_ms)` of one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start_ms: u64,
    pub end_ms: u64,
}

impl Span {
    pub fn contains(&self, now_ms: u64) -> bool {
        (self.start_ms..self.end_ms).contains(&now_ms)
    }

    /// The period's name: its start in minutes since the epoch.
    pub fn key(&self) -> u32 {
        (self.start_ms / 60_000) as u32
    }
}

/// The four periods an instant falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    pub hour: Span,
    pub day: Span,
    pub week: Span,
    pub month: Span,
}

impl Periods {
    /// The periods holding `now_ms` in `tz`. Never fails: an instant jiff
    /// cannot place in the zone (none between years 1970 and 9999) gets
    /// UTC periods.
    pub fn at(tz: &TimeZone, now_ms: u64) -> Periods {
        zoned(tz, now_ms).unwrap_or_else(|| utc(now_ms))
    }

    pub fn get(&self, p: Period) -> Span {
        match p {
            Period::Hour => self.hour,
            Period::Day => self.day,
            Period::Week => self.week,
            Period::Month => self.month,
        }
    }

    /// True while `now_ms` is in all four (a cache of them is still good).
    pub fn contains(&self, now_ms: u64) -> bool {
        self.hour.contains(now_ms)
            && self.day.contains(now_ms)
            && self.week.contains(now_ms)
            && self.month.contains(now_ms)
    }

    /// The earliest instant any of the four covers (a week may start in
    /// the month before): counting sales from here counts all four.
    pub fn earliest_start_ms(&self) -> u64 {
        self.week.start_ms.min(self.month.start_ms)
    }
}

fn zoned(tz: &TimeZone, now_ms: u64) -> Option<Periods> {
    let ts = Timestamp::from_millisecond(i64::try_from(now_ms).ok()?).ok()?;
    let zdt = ts.to_zoned(tz.clone());
    let offset_ms = i64::from(tz.to_offset(ts).seconds()) * 1000;
    let local_ms = now_ms as i64 + offset_ms;
    let hour_start = now_ms - local_ms.rem_euclid(HOUR_MS as i64) as u64;
    let date = zdt.date();
    let monday = date
        .checked_sub(i64::from(zdt.weekday().to_monday_zero_offset()).days())
        .ok()?;
    let first = date.first_of_month();
    Some(Periods {
        hour: Span {
            start_ms: hour_start,
            end_ms: hour_start + HOUR_MS,
        },
        day: days(tz, date, date.tomorrow().ok()?)?,
        week: days(tz, monday, monday.checked_add(7.days()).ok()?)?,
        month: days(tz, first, first.checked_add(1.month()).ok()?)?,
    })
}

/// From the start of day `from` to the start of day `to`, in `tz`.
fn days(tz: &TimeZone, from: Date, to: Date) -> Option<Span> {
    Some(Span {
        start_ms: day_start_ms(tz, from)?,
        end_ms: day_start_ms(tz, to)?,
    })
}

fn day_start_ms(tz: &TimeZone, d: Date) -> Option<u64> {
    let start = d.to_zoned(tz.clone()).ok()?.start_of_day().ok()?;
    u64::try_from(start.timestamp().as_millisecond()).ok()
}

/// Fixed UTC periods (weeks from Monday, months as 30 days): only for an
/// instant outside what a time zone can place.
fn utc(now_ms: u64) -> Periods {
    let floor = |len: u64, shift: u64| {
        let start = ((now_ms + shift) / len * len).saturating_sub(shift);
        Span {
            start_ms: start,
            end_ms: start + len,
        }
    };
    // 1970-01-01 was a Thursday: weeks start 4 days later (shift 3 days).
    Periods {
        hour: floor(HOUR_MS, 0),
        day: floor(DAY_MS, 0),
        week: floor(7 * DAY_MS, 3 * DAY_MS),
        month: floor(30 * DAY_MS, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    /// Milliseconds of a wall-clock time in New York, resolved as jiff's
    /// `compatible` does (the earlier of a repeated time).
    fn at(y: i16, m: i8, d: i8, h: i8, min: i8) -> u64 {
        let z = date(y, m, d).at(h, min, 0, 0).to_zoned(ny()).unwrap();
        z.timestamp().as_millisecond() as u64
    }

    fn utc_ms(y: i16, m: i8, d: i8, h: i8) -> u64 {
        let z = date(y, m, d)
            .at(h, 0, 0, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap();
        z.timestamp().as_millisecond() as u64
    }

    /// 2026-03-08: clocks go from 2:00 EST to 3:00 EDT. The day runs from
    /// 05:00 UTC to 04:00 UTC the next day (23 h) and 1:59 and 3:00 are
    /// consecutive hours.
    #[test]
    fn a_spring_forward_day_is_23_hours_and_resets_at_new_york_midnight() {
        let p = Periods::at(&ny(), at(2026, 3, 8, 12, 0));
        assert_eq!(p.day.start_ms, utc_ms(2026, 3, 8, 5));
        assert_eq!(p.day.end_ms, utc_ms(2026, 3, 9, 4));
        assert_eq!(p.day.end_ms - p.day.start_ms, 23 * HOUR_MS);
        let before = Periods::at(&ny(), at(2026, 3, 8, 1, 59));
        let after = Periods::at(&ny(), at(2026, 3, 8, 3, 0));
        assert_eq!(before.hour.start_ms, utc_ms(2026, 3, 8, 6));
        assert_eq!(after.hour.start_ms, utc_ms(2026, 3, 8, 7));
        assert_eq!(before.day, after.day);
        // One millisecond before New York's midnight is still the 7th.
        let eve = Periods::at(&ny(), utc_ms(2026, 3, 8, 5) - 1);
        assert_eq!(eve.day.end_ms, p.day.start_ms);
        assert_ne!(eve.day.key(), p.day.key());
    }

    /// 2026-11-01: clocks go from 2:00 EDT back to 1:00 EST. The day is
    /// 25 h; the two hours that read 1:xx are two periods.
    #[test]
    fn a_fall_back_day_is_25_hours_and_its_repeated_hour_is_two_periods() {
        let p = Periods::at(&ny(), at(2026, 11, 1, 12, 0));
        assert_eq!(p.day.start_ms, utc_ms(2026, 11, 1, 4));
        assert_eq!(p.day.end_ms, utc_ms(2026, 11, 2, 5));
        assert_eq!(p.day.end_ms - p.day.start_ms, 25 * HOUR_MS);
        let first = Periods::at(&ny(), utc_ms(2026, 11, 1, 5) + 30 * 60_000); // 1:30 EDT
        let second = Periods::at(&ny(), utc_ms(2026, 11, 1, 6) + 30 * 60_000); // 1:30 EST
        assert_eq!(first.hour.start_ms, utc_ms(2026, 11, 1, 5));
        assert_eq!(second.hour.start_ms, utc_ms(2026, 11, 1, 6));
        assert_ne!(first.hour.key(), second.hour.key());
        assert_eq!(first.day, second.day);
    }

    /// Weeks start on Monday at the zone's midnight; a week may straddle
    /// two months, and counting from `earliest_start_ms` covers both.
    #[test]
    fn weeks_start_on_monday_and_months_on_the_first_in_the_zone() {
        // Sunday 2026-03-01 23:30 in New York is 04:30 UTC on Monday the 2nd.
        let sun = Periods::at(&ny(), at(2026, 3, 1, 23, 30));
        assert_eq!(sun.week.start_ms, at(2026, 2, 23, 0, 0));
        assert_eq!(sun.week.end_ms, at(2026, 3, 2, 0, 0));
        assert_eq!(sun.month.start_ms, at(2026, 3, 1, 0, 0));
        assert_eq!(sun.month.end_ms, at(2026, 4, 1, 0, 0));
        assert_eq!(sun.earliest_start_ms(), sun.week.start_ms);
        let utc_sun = Periods::at(&TimeZone::UTC, at(2026, 3, 1, 23, 30));
        assert_eq!(utc_sun.week.start_ms, utc_ms(2026, 3, 2, 0));
        let mon = Periods::at(&ny(), at(2026, 3, 2, 0, 0));
        assert_eq!(mon.week.start_ms, sun.week.end_ms);
        assert_eq!(mon.month, sun.month);
        // Month end: the 31st at 23:59 and the 1st at 00:00.
        let jan = Periods::at(&ny(), at(2026, 1, 31, 23, 59));
        let feb = Periods::at(&ny(), at(2026, 2, 1, 0, 0));
        assert_eq!(jan.month.end_ms, feb.month.start_ms);
        assert_ne!(jan.month.key(), feb.month.key());
        // The week containing 2026-11-01 (fall back) is 7 days + 1 hour.
        let fall = Periods::at(&ny(), at(2026, 11, 1, 12, 0));
        assert_eq!(fall.week.end_ms - fall.week.start_ms, 7 * DAY_MS + HOUR_MS);
    }

    #[test]
    fn every_instant_is_inside_its_periods_and_a_period_is_named_by_its_start() {
        let tz = ny();
        let mut t = at(2026, 2, 27, 0, 0);
        let end = at(2026, 3, 10, 0, 0);
        while t < end {
            let p = Periods::at(&tz, t);
            assert!(p.contains(t), "{t}");
            for q in [Period::Hour, Period::Day, Period::Week, Period::Month] {
                let s = p.get(q);
                assert_eq!(Periods::at(&tz, s.start_ms).get(q), s);
                assert_eq!(Periods::at(&tz, s.end_ms - 1).get(q), s);
            }
            t += 7 * 60_000 + 13;
        }
    }

    #[test]
    fn an_instant_no_zone_can_place_gets_utc_periods() {
        let p = Periods::at(&ny(), u64::MAX / 2);
        assert!(p.contains(u64::MAX / 2));
        assert_eq!(p.day.end_ms - p.day.start_ms, DAY_MS);
    }
}
