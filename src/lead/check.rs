//! Format checks on single lead and consent values: phone, email, times,
//! IP addresses, page URLs. Pure functions on `&str`, so the rules can be
//! tested in a table without building a request.

use crate::limits;

/// A US phone number in any common spelling to `+1XXXXXXXXXX`.
///
/// Accepts digits with spaces, dashes, dots and parentheses as separators,
/// an optional leading `+`, and an optional country code `1`. NANP rules: the
/// area code and the exchange each start with 2–9. Anything else (letters,
/// extensions, other countries, wrong length) is `None`: a number we cannot
/// be sure of is worth nothing to a buyer.
pub fn normalize_phone(s: &str) -> Option<String> {
    if s.len() > limits::PHONE_BYTES_MAX {
        return None;
    }
    let number = phone_number(s.trim().as_bytes())?;
    Some(format!("+1{number}"))
}

/// The 10-digit NANP number (area code, exchange, line: `5552345678`) of a
/// phone spelled as [`normalize_phone`] accepts, surrounding ASCII
/// whitespace ignored. One rule for leads and suppression lists
/// (`suppress`), so a listed number matches a lead however either spells
/// it. Reads at most 12 digits before it gives up: cost bounded by the
/// input, no allocation.
pub fn phone_number(s: &[u8]) -> Option<u64> {
    let s = s.trim_ascii();
    let (plus, body) = match s.strip_prefix(b"+") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let mut digits = [0u8; 11];
    let mut n = 0;
    for &b in body {
        match b {
            b'0'..=b'9' if n < digits.len() => {
                digits[n] = b - b'0';
                n += 1;
            }
            b' ' | b'-' | b'.' | b'(' | b')' => {}
            _ => return None,
        }
    }
    let national = match (n, plus) {
        (11, _) if digits[0] == 1 => &digits[1..11],
        (10, false) => &digits[..10],
        _ => return None,
    };
    if national[0] < 2 || national[3] < 2 {
        return None;
    }
    Some(
        national
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d)),
    )
}

/// A plausible email address: one `@`, a local part of 1–64 bytes, a domain
/// with a dot and no empty label, at most 254 bytes, no whitespace or control
/// characters. Deliverability is the buyer's business; this only stops typos
/// and junk.
pub fn valid_email(s: &str) -> bool {
    if s.len() > limits::EMAIL_BYTES_MAX || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > limits::EMAIL_LOCAL_BYTES_MAX || domain.contains('@') {
        return false;
    }
    domain.contains('.') && domain.split('.').all(|label| !label.is_empty())
}

/// True for an RFC 3339 date-time (`2024-05-01T12:00:00Z`, offsets allowed).
pub fn parse_rfc3339(s: &str) -> bool {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

/// An IPv4 or IPv6 literal (no brackets, no port).
pub fn valid_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

/// An `http://` or `https://` URL with a host and no whitespace. Fragments
/// and queries are fine: this is the page the consumer saw, not one we call.
pub fn valid_page_url(s: &str) -> bool {
    let lower_prefix =
        |p: &str| s.len() >= p.len() && s.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    let rest = if lower_prefix("https://") {
        &s[8..]
    } else if lower_prefix("http://") {
        &s[7..]
    } else {
        return false;
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    host_end > 0 && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_spellings_normalise() {
        for s in [
            "(555) 234-5678",
            "555.234.5678",
            "+1 555 234 5678",
            "1-555-234-5678",
            "5552345678",
            "+15552345678",
            "15552345678",
            " 555-234-5678 ",
            "+1 (555) 234-5678",
        ] {
            assert_eq!(normalize_phone(s).as_deref(), Some("+15552345678"), "{s}");
            assert_eq!(phone_number(s.as_bytes()), Some(5_552_345_678), "{s}");
        }
    }

    #[test]
    fn phone_junk_is_refused() {
        for s in [
            "",
            "555234567",      // 9 digits
            "25552345678",    // 11 digits, not country 1
            "+5552345678",    // + without the country code
            "155523456789",   // 12 digits
            "(155) 234-5678", // area code starts with 1
            "(055) 234-5678", // area code starts with 0
            "555-134-5678",   // exchange starts with 1
            "555-034-5678",   // exchange starts with 0
            "555-234-5678 x12",
            "555/234/5678",
            "+44 20 7946 0958",
            "5552345678+",
            "１５５５２３４５６７８", // full-width digits
        ] {
            assert_eq!(normalize_phone(s), None, "{s:?}");
            assert_eq!(phone_number(s.as_bytes()), None, "{s:?}");
        }
        assert_eq!(normalize_phone(&"5".repeat(2_000_000)), None);
        assert_eq!(phone_number("5".repeat(2_000_000).as_bytes()), None);
    }

    #[test]
    fn email_rules() {
        for s in ["a@b.co", "first.last+tag@example.com", "X@Sub.Example.ORG"] {
            assert!(valid_email(s), "{s}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}.com", "b".repeat(250));
        for s in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@b.",
            "a@.b",
            "a@b..c",
            "a@@b.c",
            "a@b@c.d",
            "a b@c.d",
            "a@b.c ",
            "a\u{0}@b.c",
            &long_local,
            &long_total,
        ] {
            assert!(!valid_email(s), "{s:?}");
        }
        assert!(valid_email(&format!("{}@example.com", "a".repeat(64))));
    }

    #[test]
    fn rfc3339_times() {
        assert!(parse_rfc3339("2024-05-01T12:00:00Z"));
        assert!(parse_rfc3339("2024-05-01T12:00:00.123-07:00"));
        for s in [
            "2024-05-01",
            "2024-05-01 12:00:00",
            "yesterday",
            "2024-13-01T12:00:00Z",
            "",
        ] {
            assert!(!parse_rfc3339(s), "{s}");
        }
    }

    #[test]
    fn ips_and_page_urls() {
        assert!(valid_ip("203.0.113.9") && valid_ip("2001:db8::1"));
        assert!(!valid_ip("203.0.113") && !valid_ip("[2001:db8::1]") && !valid_ip("localhost"));
        assert!(valid_page_url("https://example.com/quote?x=1#top"));
        assert!(valid_page_url("HTTP://example.com"));
        for s in [
            "ftp://example.com",
            "https://",
            "https:///path",
            "https://exa mple.com",
            "example.com",
        ] {
            assert!(!valid_page_url(s), "{s}");
        }
    }
}
