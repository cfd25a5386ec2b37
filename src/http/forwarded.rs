//! The client address of a request behind trusted proxies (contract §12,
//! `server.trusted_proxies`). Pure: the caller says which addresses are
//! trusted; nothing here reads config, sockets or clocks.
//!
//! Rule: when the TCP peer is trusted, walk the `X-Forwarded-For` entries
//! from the right (several headers are joined in their order) and take
//! the first entry that is not trusted; when every entry is trusted, the
//! leftmost. An untrusted peer's header is ignored: anyone can send one.
//!
//! Malformed entries (not a bare IP address: empty, a port, garbage,
//! non-UTF-8) stop the walk, and the answer is the last hop reached so
//! far — the address of the trusted hop that handed us the bad entry. We
//! never skip past a bad entry to a "real" address further left, since
//! what lies left of it was written by whoever wrote the garbage.

use std::net::IpAddr;

/// The header, compared case-insensitively.
pub const HEADER: &str = "x-forwarded-for";

/// The client of a request from `peer` carrying `headers`, given which
/// addresses are trusted proxies.
pub fn client_ip(
    peer: IpAddr,
    headers: &[httparse::Header<'_>],
    trusted: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    if !trusted(peer) {
        return peer;
    }
    let values = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(HEADER))
        .map(|h| h.value);
    let mut hop = peer;
    // Headers right to left, entries right to left within each.
    for value in values.collect::<Vec<_>>().into_iter().rev() {
        let Ok(value) = std::str::from_utf8(value) else {
            return hop;
        };
        for entry in value.rsplit(',') {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                return hop;
            };
            if !trusted(ip) {
                return ip;
            }
            hop = ip;
        }
    }
    hop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Trusted: 10.0.0.0/8 and ::1.
    fn trusted(a: IpAddr) -> bool {
        match a.to_canonical() {
            IpAddr::V4(v4) => v4.octets()[0] == 10,
            IpAddr::V6(v6) => v6.is_loopback(),
        }
    }

    fn client(peer: &str, xff: &[&str]) -> IpAddr {
        let headers: Vec<httparse::Header<'_>> = xff
            .iter()
            .map(|v| httparse::Header {
                name: "X-Forwarded-For",
                value: v.as_bytes(),
            })
            .collect();
        client_ip(ip(peer), &headers, trusted)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        assert_eq!(client("203.0.113.5", &["198.51.100.1"]), ip("203.0.113.5"));
        assert_eq!(client("203.0.113.5", &[]), ip("203.0.113.5"));
        assert_eq!(client("203.0.113.5", &["10.0.0.1"]), ip("203.0.113.5"));
    }

    #[test]
    fn rightmost_untrusted_entry_behind_a_trusted_peer() {
        assert_eq!(client("10.0.0.2", &["198.51.100.1"]), ip("198.51.100.1"));
        // The client spoofs a leftmost entry; the proxy appends the real one.
        assert_eq!(
            client("10.0.0.2", &["1.2.3.4, 198.51.100.1, 10.0.0.9"]),
            ip("198.51.100.1")
        );
        assert_eq!(
            client("::1", &["2001:db8::7 , ::1"]),
            ip("2001:db8::7"),
            "v6 and spaces"
        );
        assert_eq!(client("10.0.0.2", &[]), ip("10.0.0.2"), "no header");
    }

    #[test]
    fn several_headers_are_joined_in_order() {
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1", "10.1.1.1"]),
            ip("198.51.100.1")
        );
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1", "192.0.2.9, 10.1.1.1"]),
            ip("192.0.2.9")
        );
    }

    #[test]
    fn all_trusted_gives_the_leftmost() {
        assert_eq!(client("10.0.0.2", &["10.0.0.3, 10.0.0.4"]), ip("10.0.0.3"));
    }

    #[test]
    fn a_malformed_entry_stops_at_the_last_trusted_hop() {
        assert_eq!(client("10.0.0.2", &["198.51.100.1, junk"]), ip("10.0.0.2"));
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1, junk, 10.0.0.3"]),
            ip("10.0.0.3")
        );
        assert_eq!(client("10.0.0.2", &[""]), ip("10.0.0.2"));
        assert_eq!(client("10.0.0.2", &["1.2.3.4:80"]), ip("10.0.0.2"));
        assert_eq!(client("10.0.0.2", &["1.2.3.4,"]), ip("10.0.0.2"));
        let bad = [httparse::Header {
            name: "x-forwarded-for",
            value: b"\xff1.2.3.4",
        }];
        assert_eq!(client_ip(ip("10.0.0.2"), &bad, trusted), ip("10.0.0.2"));
    }
}
