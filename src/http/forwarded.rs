//! The client address of a request behind trusted proxies (contract §12,
//! `server.trusted_proxies`). Pure: the caller says which addresses are
//! trusted; nothing here reads config, sockets or clocks.
//!
//! Rule: when the TCP peer is trusted, walk the hops the proxies recorded
//! from the right (several headers are joined in their order) and take
//! the first hop that is not trusted; when every hop is trusted, the
//! leftmost. An untrusted peer's headers are ignored: anyone can send one.
//!
//! The hops come from `X-Forwarded-For` (bare addresses) or RFC 7239
//! `Forwarded` (the `for=` parameter of each element: `for=192.0.2.60`,
//! `for="192.0.2.60:4711"`, `for="[2001:db8::17]:4711"`, quoted or not).
//! With only one of the two headers, that one is read. With both, each is
//! walked and they must name the same client; if they disagree, neither is
//! believed and the client is the TCP peer. A proxy writes one of them (or
//! both alike), so the other, when it disagrees, came from the client:
//! letting either header win would let a client spoof through a proxy that
//! passes the other header along untouched.
//!
//! Malformed hops (not an address: empty, garbage, non-UTF-8, an
//! unbracketed IPv6 in `Forwarded`, an element without `for`) stop the
//! walk, and the answer is the last hop reached so far — the address of
//! the trusted hop that handed us the bad entry. We never skip past a bad
//! entry to a "real" address further left, since what lies left of it was
//! written by whoever wrote the garbage. RFC 7239's `for=unknown` and
//! obfuscated identifiers (`for=_hidden`) name a hop that is no trusted
//! proxy (those are addresses), so it is the rightmost untrusted hop —
//! the client — but it has no address: the walk stops there the same way,
//! at the trusted hop that reported it.

use std::net::{IpAddr, Ipv6Addr};

/// The header, compared case-insensitively.
pub const HEADER: &str = "x-forwarded-for";

/// RFC 7239's header, compared case-insensitively.
pub const FORWARDED: &str = "forwarded";

/// One recorded hop, as read from a header.
enum Hop {
    Ip(IpAddr),
    /// Malformed, `unknown` or obfuscated: the walk stops.
    Stop,
}

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
    let named = |name: &str| headers.iter().any(|h| h.name.eq_ignore_ascii_case(name));
    match (named(HEADER), named(FORWARDED)) {
        (false, false) => peer,
        (true, false) => walk(peer, xff_hops(headers), &trusted),
        (false, true) => walk(peer, forwarded_hops(headers), &trusted),
        (true, true) => {
            let xff = walk(peer, xff_hops(headers), &trusted);
            let fwd = walk(peer, forwarded_hops(headers), &trusted);
            if xff == fwd {
                xff
            } else {
                peer
            }
        }
    }
}

/// The rightmost untrusted hop of `hops` (given right to left), else the
/// leftmost; a `Stop` answers the last hop reached.
fn walk(peer: IpAddr, hops: Vec<Hop>, trusted: &impl Fn(IpAddr) -> bool) -> IpAddr {
    let mut last = peer;
    for hop in hops {
        let Hop::Ip(ip) = hop else {
            return last;
        };
        if !trusted(ip) {
            return ip;
        }
        last = ip;
    }
    last
}

/// The values of every `name` header, right to left.
fn values_rev<'h>(headers: &'h [httparse::Header<'h>], name: &str) -> Vec<&'h [u8]> {
    let mut values: Vec<_> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
        .collect();
    values.reverse();
    values
}

/// `X-Forwarded-For` hops, right to left.
fn xff_hops(headers: &[httparse::Header<'_>]) -> Vec<Hop> {
    let mut hops = Vec::new();
    for value in values_rev(headers, HEADER) {
        let Ok(value) = std::str::from_utf8(value) else {
            hops.push(Hop::Stop);
            return hops;
        };
        for entry in value.rsplit(',') {
            match entry.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(Hop::Ip(ip)),
                Err(_) => {
                    hops.push(Hop::Stop);
                    return hops;
                }
            }
        }
    }
    hops
}

/// `Forwarded` hops (each element's `for=`), right to left.
fn forwarded_hops(headers: &[httparse::Header<'_>]) -> Vec<Hop> {
    let mut hops = Vec::new();
    for value in values_rev(headers, FORWARDED) {
        let Ok(value) = std::str::from_utf8(value) else {
            hops.push(Hop::Stop);
            return hops;
        };
        for element in split_unquoted(value, b',').into_iter().rev() {
            let hop = element_for(element).map_or(Hop::Stop, |node| node_ip(&node));
            let stop = matches!(hop, Hop::Stop);
            hops.push(hop);
            if stop {
                return hops;
            }
        }
    }
    hops
}

/// `s` split at `sep` where it is not inside a quoted string.
fn split_unquoted(s: &str, sep: u8) -> Vec<&str> {
    let (mut parts, mut from) = (Vec::new(), 0);
    let (mut quoted, mut escaped) = (false, false);
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == sep && !quoted => {
                parts.push(&s[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[from..]);
    parts
}

/// The one `for` parameter of a `Forwarded` element, unquoted; None if it
/// has none, more than one, or a malformed pair.
fn element_for(element: &str) -> Option<String> {
    let mut found = None;
    for pair in split_unquoted(element, b';') {
        let (name, value) = pair.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            continue;
        }
        if found.is_some() {
            return None;
        }
        found = Some(unquote(value.trim())?);
    }
    found
}

/// A token as is, a quoted string without its quotes and escapes.
fn unquote(v: &str) -> Option<String> {
    let Some(inner) = v.strip_prefix('"') else {
        return (!v.is_empty() && !v.contains('"')).then(|| v.to_string());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next()? } else { c });
    }
    Some(out)
}

/// An RFC 7239 node: `IPv4[:port]` or `[IPv6][:port]`; `unknown`, an
/// obfuscated `_name` and anything else are `Stop`.
fn node_ip(node: &str) -> Hop {
    let (ip, port) = if let Some(rest) = node.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Hop::Stop;
        };
        let Ok(v6) = v6.parse::<Ipv6Addr>() else {
            return Hop::Stop;
        };
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Hop::Stop,
        };
        (IpAddr::V6(v6), port)
    } else {
        let (host, port) = match node.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (node, None),
        };
        let Ok(v4) = host.parse::<std::net::Ipv4Addr>() else {
            return Hop::Stop;
        };
        (IpAddr::V4(v4), port)
    };
    match port {
        None => Hop::Ip(ip),
        Some(p) if is_port(p) => Hop::Ip(ip),
        Some(_) => Hop::Stop,
    }
}

/// RFC 7239 `node-port`: 1–5 digits, or `_` and an obfuscated name.
fn is_port(p: &str) -> bool {
    if let Some(obf) = p.strip_prefix('_') {
        return !obf.is_empty()
            && obf
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    }
    (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
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

    fn with(peer: &str, headers: &[(&'static str, &str)]) -> IpAddr {
        let headers: Vec<httparse::Header<'_>> = headers
            .iter()
            .map(|(name, v)| httparse::Header {
                name,
                value: v.as_bytes(),
            })
            .collect();
        client_ip(ip(peer), &headers, trusted)
    }

    fn fwd(peer: &str, values: &[&str]) -> IpAddr {
        let headers: Vec<_> = values.iter().map(|v| ("Forwarded", *v)).collect();
        with(peer, &headers)
    }

    #[test]
    fn forwarded_for_is_walked_like_x_forwarded_for() {
        assert_eq!(fwd("10.0.0.2", &["for=198.51.100.1"]), ip("198.51.100.1"));
        assert_eq!(
            fwd(
                "10.0.0.2",
                &["for=1.2.3.4, For=\"198.51.100.1:4711\";proto=https;by=10.0.0.2, for=10.0.0.9"]
            ),
            ip("198.51.100.1"),
            "a spoofed leftmost element does not matter; quoted with a port"
        );
        assert_eq!(
            fwd("::1", &["for=\"[2001:db8:cafe::17]:4711\""]),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(fwd("::1", &["for=\"[2001:db8::1]\""]), ip("2001:db8::1"));
        assert_eq!(
            fwd(
                "10.0.0.2",
                &["for=198.51.100.1", "for=192.0.2.9;by=\"x,y\""]
            ),
            ip("192.0.2.9"),
            "several headers in order; a comma inside quotes is not a separator"
        );
        assert_eq!(
            fwd("10.0.0.2", &["for=10.0.0.3, for=10.0.0.4"]),
            ip("10.0.0.3")
        );
        assert_eq!(
            fwd("203.0.113.5", &["for=198.51.100.1"]),
            ip("203.0.113.5"),
            "an untrusted peer's Forwarded is ignored"
        );
    }

    #[test]
    fn unknown_obfuscated_and_malformed_forwarded_nodes_stop_at_the_last_trusted_hop() {
        for bad in [
            "for=unknown",
            "for=_hidden",
            "for=\"_SEVKISEK:4711\"",
            "for=2001:db8::1",
            "for=\"[2001:db8::1\"",
            "for=\"1.2.3.4:http\"",
            "for=\"[2001:db8::1]x\"",
            "proto=https",
            "for=1.2.3.4;for=5.6.7.8",
            "for=",
            "garbage",
        ] {
            assert_eq!(fwd("10.0.0.2", &[bad]), ip("10.0.0.2"), "{bad}");
            assert_eq!(
                fwd(
                    "10.0.0.2",
                    &[&format!("for=198.51.100.1, {bad}, for=10.0.0.3")]
                ),
                ip("10.0.0.3"),
                "{bad}"
            );
        }
        // An unclosed quote swallows the rest of the header: one bad element.
        assert_eq!(
            fwd(
                "10.0.0.2",
                &["for=198.51.100.1, for=\"1.2.3.4, for=10.0.0.3"]
            ),
            ip("10.0.0.2")
        );
        assert_eq!(
            fwd("10.0.0.2", &["for=\"1.2.3.4:_port\""]),
            ip("1.2.3.4"),
            "an obfuscated port is fine"
        );
    }

    #[test]
    fn with_both_headers_they_must_agree_or_the_peer_is_the_client() {
        let both =
            |xff: &str, f: &str| with("10.0.0.2", &[("X-Forwarded-For", xff), ("Forwarded", f)]);
        assert_eq!(both("198.51.100.1", "for=198.51.100.1"), ip("198.51.100.1"));
        assert_eq!(
            both("198.51.100.1", "for=203.0.113.66"),
            ip("10.0.0.2"),
            "a client-sent header the proxy passed along cannot win"
        );
        assert_eq!(
            both("203.0.113.66, 198.51.100.1", "for=198.51.100.1"),
            ip("198.51.100.1")
        );
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
