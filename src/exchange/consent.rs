//! Consent evidence (issue #10): what a vertical's `consent_*` keys ask of
//! a post's consent object — a TrustedForm certificate URL and a Jornaya
//! LeadiD of their real shapes, and a `captured_at` neither in the future
//! (beyond `limits::CONSENT_CLOCK_SKEW_MS`) nor older than the vertical
//! allows. Pure: the stage passes the exchange clock's `now_ms`, so tests
//! drive the age rule with a `ManualClock`. Only the shape is checked here;
//! whether a certificate exists is the buyer's (or a claim service's) call.

use super::Refusal;
use crate::config::ConsentEvidence;
use crate::lead::Consent;
use crate::limits;

const TRUSTEDFORM_PREFIX: &str = "https://cert.trustedform.com/";
const MS_PER_DAY: u64 = 24 * 60 * 60 * 1000;

/// Checks `consent` against `rules` at `now_ms` (unix ms); the first
/// failure names its field.
pub fn check(rules: &ConsentEvidence, consent: &Consent, now_ms: u64) -> Result<(), Refusal> {
    if rules.trustedform {
        let url = consent.trustedform_cert_url.as_deref();
        evidence("trustedform_cert_url", url, is_trustedform_cert_url)?;
    }
    if rules.jornaya {
        evidence(
            "jornaya_leadid",
            consent.jornaya_leadid.as_deref(),
            is_leadid,
        )?;
    }
    if rules.max_age_days > 0 {
        captured_in_window(&consent.captured_at, rules.max_age_days, now_ms)?;
    }
    Ok(())
}

fn evidence(field: &'static str, value: Option<&str>, ok: fn(&str) -> bool) -> Result<(), Refusal> {
    match value {
        None => Err(Refusal::ConsentEvidence {
            field,
            reason: "required by this vertical",
        }),
        Some(v) if ok(v) => Ok(()),
        Some(_) => Err(Refusal::ConsentEvidence {
            field,
            reason: match field {
                "trustedform_cert_url" => {
                    "not a TrustedForm certificate URL (https://cert.trustedform.com/<40 hex>)"
                }
                _ => "not a Jornaya LeadiD (a UUID: 8-4-4-4-12 hex digits)",
            },
        }),
    }
}

/// `https://cert.trustedform.com/` and a 40-hex-digit certificate id,
/// nothing after it.
pub fn is_trustedform_cert_url(s: &str) -> bool {
    s.strip_prefix(TRUSTEDFORM_PREFIX)
        .is_some_and(|id| id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A LeadiD token: 36 characters, hex groups of 8-4-4-4-12, either case.
pub fn is_leadid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn captured_in_window(captured_at: &str, max_age_days: u32, now_ms: u64) -> Result<(), Refusal> {
    let refuse = |reason| {
        Err(Refusal::ConsentEvidence {
            field: "captured_at",
            reason,
        })
    };
    let Some(at_ms) = unix_ms(captured_at) else {
        return refuse("not an RFC 3339 time");
    };
    if at_ms > now_ms as i128 + limits::CONSENT_CLOCK_SKEW_MS as i128 {
        return refuse("in the future");
    }
    if (now_ms as i128) - at_ms > i128::from(max_age_days) * MS_PER_DAY as i128 {
        return refuse("older than this vertical's consent_max_age_days");
    }
    Ok(())
}

/// Unix milliseconds of an RFC 3339 time (any offset).
fn unix_ms(s: &str) -> Option<i128> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "https://cert.trustedform.com/0123456789abcdef0123456789ABCDEF01234567";
    const LEADID: &str = "3F2504E0-4F89-11d3-9a0c-0305e82c3301";
    /// 2026-12-07T12:00:00Z.
    const NOW_MS: u64 = 1_796_644_800_000;

    fn consent(cert: Option<&str>, leadid: Option<&str>, at: &str) -> Consent {
        Consent {
            text: "ok".into(),
            captured_at: at.into(),
            ip: "203.0.113.7".into(),
            user_agent: "ua".into(),
            page_url: "https://x.example/".into(),
            trustedform_cert_url: cert.map(Into::into),
            jornaya_leadid: leadid.map(Into::into),
        }
    }

    fn field(r: Result<(), Refusal>) -> Option<&'static str> {
        match r {
            Ok(()) => None,
            Err(Refusal::ConsentEvidence { field, .. }) => Some(field),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn now_constant_is_what_it_says() {
        assert_eq!(unix_ms("2026-12-07T12:00:00Z"), Some(NOW_MS as i128));
    }

    #[test]
    fn shapes() {
        assert!(is_trustedform_cert_url(CERT));
        for bad in [
            "http://cert.trustedform.com/0123456789abcdef0123456789abcdef01234567",
            "https://cert.trustedform.com/0123456789abcdef0123456789abcdef0123456",
            "https://cert.trustedform.com/0123456789abcdef0123456789abcdef012345678",
            "https://cert.trustedform.com/0123456789abcdef0123456789abcdef0123456g",
            "https://cert.trustedform.com.evil/0123456789abcdef0123456789abcdef01234567",
            "https://cert.trustedform.com/0123456789abcdef0123456789abcdef01234567/x",
        ] {
            assert!(!is_trustedform_cert_url(bad), "{bad}");
        }
        assert!(is_leadid(LEADID));
        assert!(is_leadid(&LEADID.to_ascii_lowercase()));
        for bad in [
            "3F2504E04F8911d39a0c0305e82c3301",
            "3F2504E0-4F89-11d3-9a0c-0305e82c330",
            "3F2504E0-4F89-11d3-9a0c-0305e82c33011",
            "3F2504E0-4F89-11d3-9a0c-0305e82c330g",
            "3F2504E0_4F89-11d3-9a0c-0305e82c3301",
            "",
        ] {
            assert!(!is_leadid(bad), "{bad}");
        }
    }

    #[test]
    fn off_checks_nothing() {
        let c = consent(Some("junk"), Some("junk"), "1999-01-01T00:00:00Z");
        assert_eq!(field(check(&ConsentEvidence::default(), &c, NOW_MS)), None);
    }

    #[test]
    fn each_rule_names_its_field() {
        let all = ConsentEvidence {
            trustedform: true,
            jornaya: true,
            max_age_days: 30,
        };
        let ok_at = "2026-12-01T00:00:00Z";
        assert_eq!(
            field(check(
                &all,
                &consent(Some(CERT), Some(LEADID), ok_at),
                NOW_MS
            )),
            None
        );
        let cases = [
            (consent(None, Some(LEADID), ok_at), "trustedform_cert_url"),
            (
                consent(Some("https://x/"), Some(LEADID), ok_at),
                "trustedform_cert_url",
            ),
            (consent(Some(CERT), None, ok_at), "jornaya_leadid"),
            (consent(Some(CERT), Some("nope"), ok_at), "jornaya_leadid"),
            (
                consent(Some(CERT), Some(LEADID), "2026-11-06T11:59:59Z"),
                "captured_at",
            ),
            (
                consent(Some(CERT), Some(LEADID), "2026-12-07T12:05:01Z"),
                "captured_at",
            ),
        ];
        for (c, want) in cases {
            assert_eq!(field(check(&all, &c, NOW_MS)), Some(want), "{c:?}");
        }
    }

    #[test]
    fn age_bounds_are_inclusive() {
        let rules = ConsentEvidence {
            max_age_days: 30,
            ..Default::default()
        };
        let at = |s| consent(None, None, s);
        // Exactly 30 days old, exactly 5 minutes ahead (with an offset): fine.
        assert_eq!(
            field(check(&rules, &at("2026-11-07T12:00:00Z"), NOW_MS)),
            None
        );
        assert_eq!(
            field(check(&rules, &at("2026-12-07T07:05:00-05:00"), NOW_MS)),
            None
        );
        assert_eq!(
            field(check(&rules, &at("2026-12-07T07:05:00.001-05:00"), NOW_MS)),
            Some("captured_at")
        );
    }
}
