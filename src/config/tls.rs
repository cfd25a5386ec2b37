//! `[server.tls]` (contract §12): the certificate chain and private key of
//! the HTTPS listener, read, parsed and checked when the config loads (at
//! start-up, by `check-config`, and on the reload thread), and built into
//! the `rustls::ServerConfig` the server swaps in. Nothing here runs on a
//! request.
//!
//! `cert` is a PEM file's path. `key` is a path too, or — when the value
//! (usually a `${NAME}` secret, e.g. from systemd `LoadCredential=`) is
//! itself PEM — the key. A problem is an error naming the key: missing or
//! unreadable file, no PEM, a key that does not match the certificate. An
//! expired certificate is a warning (`Config::warnings`): leadx still
//! starts, so a renewal that arrives late is a SIGHUP away.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use sha2::{Digest, Sha256};

use super::walk::{Section, Walker};
use crate::limits;

/// `[server.tls]`, loaded.
#[derive(Clone)]
pub struct Tls {
    pub cert_path: PathBuf,
    /// The key's file, or None when the key came inline (from a secret).
    pub key_path: Option<PathBuf>,
    /// Built once per load; `http::server::ServerTls` serves it.
    pub server_config: Arc<ServerConfig>,
    /// The leaf certificate's notAfter, in Unix seconds (None: unreadable).
    pub not_after_s: Option<i64>,
    /// SHA-256 over the chain and the key as read, so two loads of the same
    /// files compare equal (never shown).
    digest: [u8; 32],
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key, nor its digest.
        f.debug_struct("Tls")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("not_after_s", &self.not_after_s)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Tls {
    fn eq(&self, other: &Self) -> bool {
        self.cert_path == other.cert_path
            && self.key_path == other.key_path
            && self.digest == other.digest
    }
}
impl Eq for Tls {}

impl Tls {
    /// Builds from PEM text (tests and benches; the config reads files).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Tls, String> {
        let chain = certs(cert_pem).ok_or("no PEM certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| "no PEM private key")?;
        build(Path::new(""), None, chain, key, cert_pem, key_pem).map_err(|(_, m)| m)
    }

    /// The warning for a certificate past its notAfter at `now_s`.
    pub fn expiry_warning(&self, now_s: i64) -> Option<String> {
        let not_after = self.not_after_s?;
        (not_after < now_s).then(|| {
            format!(
                "server.tls.cert: the certificate in {} expired on {}; clients will refuse it (renew it, then SIGHUP)",
                self.cert_path.display(),
                date(not_after)
            )
        })
    }
}

/// `YYYY-MM-DD` (UTC) of Unix seconds `s`.
fn date(s: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(s).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day]");
    t.format(&f).unwrap_or_default()
}

/// `[server.tls]` inside `[server]`; None when absent or wrong (errors
/// recorded).
pub(super) fn read(w: &mut Walker, server: &Section) -> Option<Option<Tls>> {
    if !server.has("tls") {
        return Some(None);
    }
    let (path, table) = server.table(w, "tls")?;
    let s = Section { path: &path, table };
    s.only(w, &["cert", "key"]);
    let cert_key = s.key("cert");
    let key_key = s.key("key");
    let cert = s.need(w, "cert").then(|| s.string(w, "cert")).flatten();
    let key = s.need(w, "key").then(|| s.string(w, "key")).flatten();
    let (cert, key) = (cert?, key?);
    let cert_path = PathBuf::from(&cert.value);
    let cert_pem = read_pem_file(w, &cert_key, &cert_path, &cert.shown())?;
    let Some(chain) = certs(&cert_pem) else {
        w.error(
            cert_key,
            format!("no PEM certificate (BEGIN CERTIFICATE) in {}", cert.shown()),
        );
        return None;
    };
    let (key_path, key_pem) = if key.value.trim_start().starts_with("-----BEGIN") {
        (None, key.value.clone().into_bytes())
    } else {
        let p = PathBuf::from(&key.value);
        let pem = read_pem_file(w, &key_key, &p, &key.shown())?;
        (Some(p), pem)
    };
    let Ok(private) = PrivateKeyDer::from_pem_slice(&key_pem) else {
        w.error(
            key_key,
            "no PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
        );
        return None;
    };
    match build(&cert_path, key_path, chain, private, &cert_pem, &key_pem) {
        Ok(tls) => Some(Some(tls)),
        Err((on_key, message)) => {
            w.error(if on_key { key_key } else { cert_key }, message);
            None
        }
    }
}

/// Every certificate in `pem`, in order; None if there is none or one is
/// malformed.
fn certs(pem: &[u8]) -> Option<Vec<CertificateDer<'static>>> {
    let chain: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .ok()?;
    (!chain.is_empty()).then_some(chain)
}

fn read_pem_file(w: &mut Walker, key: &str, path: &Path, shown: &str) -> Option<Vec<u8>> {
    let read = std::fs::File::open(path).and_then(|f| {
        let mut bytes = Vec::new();
        f.take(limits::TLS_PEM_BYTES_MAX as u64 + 1)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    });
    match read {
        Ok(bytes) if bytes.len() > limits::TLS_PEM_BYTES_MAX => {
            w.error(
                key,
                format!(
                    "{shown} is larger than {} bytes: not a PEM file",
                    limits::TLS_PEM_BYTES_MAX
                ),
            );
            None
        }
        Ok(bytes) => Some(bytes),
        Err(e) => {
            w.error(key, format!("cannot read {shown}: {e}"));
            None
        }
    }
}

/// The rustls config: ring, TLS 1.3 and 1.2, ALPN `http/1.1`. Err((on the
/// key?, message)).
fn build(
    cert_path: &Path,
    key_path: Option<PathBuf>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Tls, (bool, String)> {
    let not_after_s = not_after(&chain[0]);
    let digest: [u8; 32] = Sha256::new()
        .chain_update(cert_pem)
        .chain_update([0])
        .chain_update(key_pem)
        .finalize()
        .into();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| (false, format!("TLS setup: {e}")))?
        .with_no_client_auth();
    let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => (
            true,
            "does not match the certificate in server.tls.cert".to_string(),
        ),
        rustls::Error::General(_) => (true, "not a usable private key".to_string()),
        other => (false, format!("not a usable certificate: {other}")),
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        cert_path: cert_path.to_path_buf(),
        key_path,
        server_config: Arc::new(config),
        not_after_s,
        digest,
    })
}

/// The notAfter of an X.509 certificate (RFC 5280 §4.1), in Unix seconds:
/// Certificate → tbsCertificate → [version], serial, signature, issuer,
/// validity → notAfter. A small DER walk rather than an X.509 crate: this
/// one field is all leadx reads.
fn not_after(cert: &[u8]) -> Option<i64> {
    let (_, cert, _) = der(cert)?;
    let (_, mut tbs, _) = der(cert)?;
    let (tag, _, rest) = der(tbs)?;
    if tag == 0xa0 {
        tbs = rest; // explicit [0] version
    }
    for _ in 0..3 {
        let (_, _, rest) = der(tbs)?; // serial, signature, issuer
        tbs = rest;
    }
    let (_, validity, _) = der(tbs)?;
    let (_, _, rest) = der(validity)?; // notBefore
    let (tag, time, _) = der(rest)?;
    let text = std::str::from_utf8(time).ok()?;
    let text = match tag {
        0x17 => {
            // UTCTime YYMMDDHHMMSSZ: 50..99 → 19YY, else 20YY (RFC 5280).
            let yy: u32 = text.get(..2)?.parse().ok()?;
            format!("{}{text}", if yy >= 50 { "19" } else { "20" })
        }
        0x18 => text.to_string(),
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<u32>().ok();
    if text.len() != 15 || !text.ends_with('Z') {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(num(0..4)?).ok()?,
        month,
        u8::try_from(num(6..8)?).ok()?,
    )
    .ok()?;
    let t = date
        .with_hms(
            u8::try_from(num(8..10)?).ok()?,
            u8::try_from(num(10..12)?).ok()?,
            u8::try_from(num(12..14)?).ok()?,
        )
        .ok()?;
    Some(t.assume_utc().unix_timestamp())
}

/// One DER TLV: (tag, contents, what follows). Definite lengths only.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_after: time::OffsetDateTime) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = not_after;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn not_after_is_read_from_utc_and_generalized_times() {
        for (y, m, d) in [(2001, 2, 3), (2049, 12, 31), (2051, 1, 1), (2999, 6, 7)] {
            let at = rcgen::date_time_ymd(y, m, d);
            let (pem, key) = cert(at);
            let tls = Tls::from_pem(pem.as_bytes(), key.as_bytes()).unwrap();
            assert_eq!(tls.not_after_s, Some(at.unix_timestamp()), "{y}-{m}-{d}");
        }
    }

    #[test]
    fn an_expired_certificate_is_a_warning_and_a_key_of_another_cert_an_error() {
        let (pem, key) = cert(rcgen::date_time_ymd(2001, 2, 3));
        let tls = Tls::from_pem(pem.as_bytes(), key.as_bytes()).unwrap();
        let now = rcgen::date_time_ymd(2026, 1, 1).unix_timestamp();
        let warning = tls.expiry_warning(now).unwrap();
        assert!(warning.contains("expired on 2001-02-03"), "{warning}");
        assert_eq!(tls.expiry_warning(0), None);
        let (_, other_key) = cert(rcgen::date_time_ymd(2999, 1, 1));
        let e = Tls::from_pem(pem.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(e.contains("does not match"), "{e}");
        assert!(!e.contains("PRIVATE"), "{e}");
    }

    #[test]
    fn truncated_der_is_none_never_a_panic() {
        let (pem, _) = cert(rcgen::date_time_ymd(2030, 1, 1));
        let der = certs(pem.as_bytes()).unwrap().remove(0);
        for cut in 0..der.len() {
            let _ = not_after(&der[..cut]);
        }
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
