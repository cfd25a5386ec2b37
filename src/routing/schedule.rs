//! `[buyer.schedule]`: the hours a buyer takes leads, by weekday, on the
//! buyer's own clock (contract §10). A day not listed is closed; no
//! schedule at all is always open. On a fall-back night the repeated
//! hour is open (or closed) both times; on a spring-forward night the
//! skipped hour never comes.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::config::Schedule;

/// Whether `schedule` is open at `now_ms` in `tz` (ranges are `[start,
/// end)` in minutes after local midnight). An instant the zone cannot
/// place (none between years 1970 and 9999) counts as closed.
pub fn is_open(schedule: &Schedule, tz: &TimeZone, now_ms: u64) -> bool {
    let Some(ts) = i64::try_from(now_ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
    else {
        return false;
    };
    let local = ts.to_zoned(tz.clone());
    let day = local.weekday().to_monday_zero_offset() as usize;
    let minute = local.hour() as u16 * 60 + local.minute() as u16;
    schedule.days[day]
        .iter()
        .any(|&(start, end)| (start..end).contains(&minute))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_range;
    use jiff::civil::date;

    fn ms(tz: &TimeZone, y: i16, m: i8, d: i8, h: i8, min: i8) -> u64 {
        let z = date(y, m, d).at(h, min, 0, 0).to_zoned(tz.clone()).unwrap();
        z.timestamp().as_millisecond() as u64
    }

    fn weekdays_8_to_20_and_saturday_morning() -> Schedule {
        let mut s = Schedule::default();
        for d in 0..5 {
            s.days[d] = vec![
                parse_range("08:00-12:00").unwrap(),
                parse_range("13:00-20:00").unwrap(),
            ];
        }
        s.days[5] = vec![parse_range("09:00-12:00").unwrap()];
        s
    }

    #[test]
    fn open_inside_a_range_closed_outside_and_on_unlisted_days() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let s = weekdays_8_to_20_and_saturday_morning();
        // 2026-12-07 is a Monday.
        let cases = [
            ((2026, 12, 7, 7, 59), false),
            ((2026, 12, 7, 8, 0), true),
            ((2026, 12, 7, 12, 0), false),
            ((2026, 12, 7, 12, 59), false),
            ((2026, 12, 7, 13, 0), true),
            ((2026, 12, 7, 19, 59), true),
            ((2026, 12, 7, 20, 0), false),
            ((2026, 12, 12, 10, 0), true),
            ((2026, 12, 12, 12, 0), false),
            ((2026, 12, 13, 10, 0), false),
        ];
        for ((y, m, d, h, min), open) in cases {
            assert_eq!(
                is_open(&s, &tz, ms(&tz, y, m, d, h, min)),
                open,
                "{d} {h}:{min}"
            );
        }
        // 08:30 in New York is 13:30 UTC: the zone decides, not UTC.
        assert!(is_open(&s, &tz, ms(&TimeZone::UTC, 2026, 12, 7, 13, 30)));
        assert!(!is_open(
            &s,
            &TimeZone::UTC,
            ms(&TimeZone::UTC, 2026, 12, 7, 7, 30)
        ));
    }

    #[test]
    fn a_range_to_midnight_and_an_empty_schedule() {
        let tz = TimeZone::UTC;
        let mut s = Schedule::default();
        s.days[6] = vec![parse_range("22:00-24:00").unwrap()];
        // 2026-12-13 is a Sunday.
        assert!(is_open(&s, &tz, ms(&tz, 2026, 12, 13, 23, 59)));
        assert!(!is_open(&s, &tz, ms(&tz, 2026, 12, 14, 0, 0)));
        assert!(!is_open(
            &Schedule::default(),
            &tz,
            ms(&tz, 2026, 12, 13, 23, 0)
        ));
    }

    /// Opening at 03:00 on spring-forward Sunday in New York: 01:59 EST is
    /// closed, the next minute is 03:00 EDT, open.
    #[test]
    fn a_schedule_follows_the_zones_dst_change() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let mut s = Schedule::default();
        s.days[6] = vec![parse_range("03:00-04:00").unwrap()];
        let before = ms(&tz, 2026, 3, 8, 1, 59);
        assert!(!is_open(&s, &tz, before));
        assert!(is_open(&s, &tz, before + 60_000));
    }
}
