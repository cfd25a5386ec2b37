//! The target URL: only `http://127.0.0.1:PORT` is accepted.
//!
//! A load generator pointed at someone else's host is an attack; refusing
//! anything but loopback makes that impossible by mistake.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use crate::Error;

/// A loopback HTTP target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
}

impl Target {
    /// Parses `http://127.0.0.1:PORT` (a trailing `/` is allowed).
    pub fn parse(url: &str) -> Result<Target, Error> {
        let refuse = |why: &str| Error::Usage(format!("--target {url:?}: {why}"));
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| refuse("must start with http:// (plain HTTP to 127.0.0.1 only)"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(refuse("give the base URL only, no path"));
        }
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| refuse("port is required"))?;
        if host != "127.0.0.1" {
            return Err(refuse(&format!(
                "host {host:?} refused: the load tester only targets 127.0.0.1"
            )));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| refuse("port is not a number 1..65535"))?;
        if port == 0 {
            return Err(refuse("port 0 is not a target"));
        }
        Ok(Target {
            addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
        })
    }

    /// Loopback target on `port` (for the orchestrator, which picked it).
    pub fn local(port: u16) -> Target {
        Target {
            addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
        }
    }

    /// The `Host` header value.
    pub fn host_header(&self) -> String {
        self.addr.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_ip_with_port_is_accepted() {
        let t = Target::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(t.addr.port(), 8080);
        assert_eq!(t.host_header(), "127.0.0.1:8080");
    }

    #[test]
    fn every_other_host_or_shape_is_refused_with_a_reason() {
        for (url, why) in [
            ("http://10.0.0.1:80", "only targets 127.0.0.1"),
            ("http://localhost:80", "only targets 127.0.0.1"),
            ("http://example.com:80", "only targets 127.0.0.1"),
            ("https://127.0.0.1:443", "http://"),
            ("http://127.0.0.1", "port is required"),
            ("http://127.0.0.1:x", "not a number"),
            ("http://127.0.0.1:0", "port 0"),
            ("http://127.0.0.1:80/v1/ping", "no path"),
        ] {
            let e = Target::parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
    }
}
