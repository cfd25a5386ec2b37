//! The two time renderings templates need: `now` as RFC 3339 UTC from the
//! exchange's clock (milliseconds; no wall-clock read here), and the
//! `date("%m/%d/%Y")` filter over an RFC 3339 value. Plain civil-date
//! arithmetic, so a template render allocates one short string at most.

/// One piece of a compiled `date(…)` format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(Box<str>),
    Year,
    Year2,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

/// `YYYY-MM-DDTHH:MM:SSZ` for `ms` since the Unix epoch.
pub fn rfc3339_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let t = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats the date and time written in `s` (`YYYY-MM-DD`, optionally
/// followed by `THH:MM:SS` and anything after — fraction, offset), as
/// written: no zone conversion. `None` when `s` does not start that way.
pub fn format_date(s: &str, parts: &[Part]) -> Option<String> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<&str> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then_some(t)
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let clock = if b.len() > 10 {
        if !matches!(b[10], b'T' | b't' | b' ') || b.get(13) != Some(&b':') {
            return None;
        }
        if b.get(16) != Some(&b':') {
            return None;
        }
        (num(11..13)?, num(14..16)?, num(17..19)?)
    } else {
        ("00", "00", "00")
    };
    let mut out = String::with_capacity(24);
    for p in parts {
        out.push_str(match p {
            Part::Lit(l) => l,
            Part::Year => year,
            Part::Year2 => &year[2..],
            Part::Month => month,
            Part::Day => day,
            Part::Hour => clock.0,
            Part::Minute => clock.1,
            Part::Second => clock.2,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        // 2024-02-29T23:59:59.999Z, a leap day.
        assert_eq!(rfc3339_utc(1_709_251_199_999), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339_utc(1_735_689_600_000), "2025-01-01T00:00:00Z");
    }

    #[test]
    fn dates_format_as_written() {
        let us = [
            Part::Month,
            Part::Lit("/".into()),
            Part::Day,
            Part::Lit("/".into()),
            Part::Year,
        ];
        let at = "2024-05-01T12:34:56-07:00";
        assert_eq!(format_date(at, &us).as_deref(), Some("05/01/2024"));
        let clock = [Part::Hour, Part::Minute, Part::Second, Part::Year2];
        assert_eq!(format_date(at, &clock).as_deref(), Some("12345624"));
        assert_eq!(
            format_date("2024-05-01", &us).as_deref(),
            Some("05/01/2024")
        );
        for bad in [
            "",
            "2024/05/01",
            "May 1",
            "2024-05-01X",
            "2024-05-01T1:2:3",
            "20é4-05-01",
        ] {
            assert_eq!(format_date(bad, &us), None, "{bad}");
        }
    }
}
