//! `publisher.allowed_ips` entries: an IP address or a CIDR block, v4 or v6.
//! Small enough to write here rather than pull a crate for one `contains`.

use std::fmt;
use std::net::IpAddr;

/// An address block: `addr/prefix_len`, with no bits set past the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix_len: u8,
}

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
        let bits = bits_of(addr);
        let prefix_len = match prefix {
            None => bits,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() && p.len() <= 3 => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= bits)
                .ok_or("prefix length too long")?,
            Some(_) => return Err("bad prefix length"),
        };
        let net = IpNet { addr, prefix_len };
        if to_bits(addr) & !net.mask() != 0 {
            return Err("host bits set past the prefix length");
        }
        Ok(net)
    }

    /// True when `ip` is inside the block. An IPv4-mapped IPv6 address
    /// (`::ffff:1.2.3.4`, what a dual-stack listener reports) counts as
    /// its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        (to_bits(ip) & self.mask()) == to_bits(self.addr)
    }

    /// The prefix as a mask aligned like [`to_bits`].
    fn mask(&self) -> u128 {
        let width = bits_of(self.addr);
        let ones = if self.prefix_len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix_len))
        };
        // Shift down so that an IPv4 mask lines up with the low 32 bits.
        ones >> (128 - u32::from(width))
    }
}

fn bits_of(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

fn to_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
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
