//! Buyer URLs: `http://host[:port]/path[?query]` or `https://…`. Only what a
//! buyer endpoint needs; userinfo and fragments are refused so that nothing
//! surprising hides in a config value.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Path plus query, always starting with `/`.
    pub target: String,
}

impl Url {
    /// The `Host` header value.
    pub fn authority(&self) -> String {
        let default = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Parses a buyer URL; the error is the reason, for `key: not a URL (…)`.
pub fn parse(s: &str) -> Result<Url, &'static str> {
    let (scheme, rest) = if let Some(r) = s.strip_prefix("http://") {
        (Scheme::Http, r)
    } else if let Some(r) = s.strip_prefix("https://") {
        (Scheme::Https, r)
    } else {
        return Err("scheme must be http:// or https://");
    };
    if s.bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err("contains whitespace");
    }
    if s.contains('#') {
        return Err("fragments are not allowed");
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(split);
    if authority.contains('@') {
        return Err("credentials in the URL are not allowed; use headers");
    }
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("bad port")?,
        None if scheme == Scheme::Http => 80,
        None => 443,
    };
    let target = match target {
        "" => "/".to_string(),
        t if t.starts_with('?') => format!("/{t}"),
        t => t.to_string(),
    };
    Ok(Url {
        scheme,
        host: host.to_string(),
        port,
        target,
    })
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed [ in host")?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("bad port")?),
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("bad IPv6 address");
        }
        return Ok((host, port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !valid {
        return Err("bad host");
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buyer_urls() {
        let u = parse("http://127.0.0.1:9001/ping").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.target.as_str()),
            (Scheme::Http, "127.0.0.1", 9001, "/ping")
        );
        let u = parse("https://buyer.example.com?a=1").unwrap();
        assert_eq!(
            (u.port, u.target.as_str(), u.authority()),
            (443, "/?a=1", "buyer.example.com".to_string())
        );
        let u = parse("http://[::1]:8080/x").unwrap();
        assert_eq!(
            (u.host.as_str(), u.authority()),
            ("::1", "[::1]:8080".to_string())
        );
    }

    #[test]
    fn refuses_what_is_not_a_buyer_url() {
        for bad in [
            "ftp://x/",
            "http://",
            "http://a b/",
            "http://u:p@h/",
            "http://h:0/",
            "http://h:99999/",
            "h/ping",
            "http://h/#f",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
