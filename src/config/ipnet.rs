//! `publisher.allowed_ips` entries: an IP address or a CIDR block, v4 or v6.
//! The block arithmetic is the `ipnet` crate's (well kept, used by the
//! HTTP stacks we compared); this file keeps leadx's stricter reading of a
//! config value: a bare address is a one-host block, a prefix is 1–3
//! digits, host bits past the prefix are refused, and an IPv4-mapped IPv6
//! peer counts as its IPv4 address.

use std::fmt;
use std::net::IpAddr;

/// An address block: `addr/prefix_len`, with no bits set past the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet(ipnet::IpNet);

impl IpNet {
    /// Parses `1.2.3.4`, `10.0.0.0/8`, `::1` or `2001:db8::/32`. A block
    /// with host bits set (`10.0.0.1/8`) is refused: it is almost always a
    /// typo for something else, and the config says what it means.
    pub fn parse(s: &str) -> Result<IpNet, &'static str> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| "not an IP address")?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => bits,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| "prefix length too long")?
            }
            Some(_) => return Err("bad prefix length"),
        };
        let net = ipnet::IpNet::new(addr, prefix_len).map_err(|_| "prefix length too long")?;
        if net.trunc() != net {
            return Err("host bits set past the prefix length");
        }
        Ok(IpNet(net))
    }

    /// True when `ip` is inside the block. An IPv4-mapped IPv6 address
    /// (`::ffff:1.2.3.4`, what a dual-stack listener reports) counts as
    /// its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.addr(), self.0.prefix_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_blocks() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.255.7")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(
            net.contains(ip("::ffff:10.1.2.3")),
            "v4-mapped v6 counts as v4"
        );
        let one = IpNet::parse("192.0.2.7").unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all = IpNet::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::1")));
        assert_eq!(net.to_string(), "10.1.0.0/16");
    }

    #[test]
    fn v6_blocks() {
        let net = IpNet::parse("2001:db8::/32").unwrap();
        assert!(net.contains(ip("2001:db8:ffff::1")));
        assert!(!net.contains(ip("2001:db9::1")));
        assert!(!net.contains(ip("10.0.0.1")));
        assert!(IpNet::parse("::1").unwrap().contains(ip("::1")));
        assert!(IpNet::parse("::/0").unwrap().contains(ip("fe80::1")));
    }

    #[test]
    fn refuses_bad_blocks() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.1/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/a",
            "host",
            "10.0.0.0/8/8",
            "1.2.3",
        ] {
            assert!(IpNet::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
