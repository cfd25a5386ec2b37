//! Contract §12's configuration: `[privacy]`, `[[suppression]]`, and the
//! publisher's `api_key_sha256` as one hash or two (key rotation) and
//! `signing_secret`. Every key is optional, so a v1 config reads as before
//! (no data key: PII in clear, which [`super::Config::warnings`] says).
//!
//! Secrets (`data_key`, `old_data_keys`, `signing_secret`) normally come
//! from `${NAME}`; no error message ever shows their values.
//!
//! A suppression file is looked at here (it must exist, and be younger
//! than `max_age_days` by its mtime), not read: loading millions of
//! numbers is `suppress::load`'s job, on the thread that builds a runtime.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use toml::Value;

use super::secrets::parse_sha256_hex;
use super::sections::{id, unique_ids, vertical_refs};
use super::walk::{Section, Text, Walker};
use crate::limits;
use crate::privacy::{DataKey, KeyRing, SigningKey};

/// `[privacy]`. `Default` is a v1 config's: no key, nothing erased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Privacy {
    /// Seals PII at rest; `None`: PII in clear (a v1 config).
    pub data_key: Option<DataKey>,
    /// Earlier keys, still opened after a rotation (need `data_key`).
    pub old_data_keys: Vec<DataKey>,
    /// Says that PII in clear is intended (no start-up warning).
    pub plaintext_pii: bool,
    /// `None`: PII is kept (v1 behaviour).
    pub pii_retention_days: Option<u32>,
    /// `None`: unposted pings are kept (v1 behaviour).
    pub ping_retention_days: Option<u32>,
}

impl Privacy {
    /// The key ring PII is sealed with, if there is a data key. Checked
    /// when the config was read, so it builds.
    pub fn key_ring(&self) -> Option<KeyRing> {
        let current = self.data_key.as_ref()?;
        KeyRing::new(current, &self.old_data_keys).ok()
    }
}

/// One `[[suppression]]` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub id: String,
    pub path: PathBuf,
    /// `None`: any age. Checked against the file's mtime.
    pub max_age_days: Option<u32>,
    /// The verticals whose leads the list applies to.
    pub verticals: Vec<String>,
}

/// A publisher's `signing_secret`, with its HMAC key built once when the
/// config is read (never on a request). `Debug` never shows it.
#[derive(Clone)]
pub struct SigningSecret {
    bytes: Vec<u8>,
    key: SigningKey,
}

impl SigningSecret {
    fn new(bytes: Vec<u8>) -> SigningSecret {
        let key = SigningKey::new(&bytes);
        SigningSecret { bytes, key }
    }

    /// The HMAC key requests are checked with (`privacy::signature`).
    pub fn key(&self) -> &SigningKey {
        &self.key
    }
}

impl PartialEq for SigningSecret {
    fn eq(&self, other: &SigningSecret) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for SigningSecret {}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(***)")
    }
}

/// The id no `[[suppression]]` may take: the durable list kept in the
/// store (`POST /v1/admin/suppressions`) goes by it.
pub const INTERNAL_LIST_ID: &str = "internal";

/// `[privacy]`: optional.
pub(super) fn privacy(w: &mut Walker, top: &Section) -> Option<Privacy> {
    let Some((path, table)) = top.table(w, "privacy") else {
        return (!top.has("privacy")).then(Privacy::default);
    };
    let s = Section { path: &path, table };
    s.only(
        w,
        &[
            "data_key",
            "old_data_keys",
            "plaintext_pii",
            "pii_retention_days",
            "ping_retention_days",
        ],
    );
    let before = w.errors.len();
    // A wrong key is reported here and fails the section below.
    let data_key = if s.has("data_key") {
        let text = s.string(w, "data_key");
        data_key(w, &s.key("data_key"), text)
    } else {
        None
    };
    let old = old_data_keys(w, &s, data_key.as_ref());
    let plaintext_pii = if s.has("plaintext_pii") {
        s.boolean(w, "plaintext_pii")
    } else {
        Some(false)
    };
    if plaintext_pii == Some(true) && data_key.is_some() {
        w.error(
            s.key("plaintext_pii"),
            "true contradicts privacy.data_key (PII is sealed when a data key is set)",
        );
    }
    let days = 1..=limits::RETENTION_DAYS_MAX;
    let pii_days = s.int(w, "pii_retention_days", days.clone());
    let ping_days = s.int(w, "ping_retention_days", days);
    if w.errors.len() > before {
        return None;
    }
    if let (Some(current), Some(old)) = (&data_key, &old) {
        if let Err(e) = KeyRing::new(current, old) {
            w.error(s.key("old_data_keys"), e.to_string());
            return None;
        }
    }
    Some(Privacy {
        data_key,
        old_data_keys: old?,
        plaintext_pii: plaintext_pii?,
        pii_retention_days: pii_days.map(|d| d as u32),
        ping_retention_days: ping_days.map(|d| d as u32),
    })
}

fn data_key(w: &mut Walker, key: &str, text: Option<Text>) -> Option<DataKey> {
    let k = DataKey::from_hex(&text?.value);
    if k.is_none() {
        w.error(
            key,
            "not a data key: 64 hex digits (32 bytes), as `openssl rand -hex 32` prints",
        );
    }
    k
}

fn old_data_keys(w: &mut Walker, s: &Section, current: Option<&DataKey>) -> Option<Vec<DataKey>> {
    if !s.has("old_data_keys") {
        return Some(Vec::new());
    }
    let items = s.strings(w, "old_data_keys", limits::OLD_DATA_KEYS_MAX)?;
    if !items.is_empty() && current.is_none() && !s.has("data_key") {
        w.error(
            s.key("old_data_keys"),
            "needs privacy.data_key (the key that seals new PII)",
        );
        return None;
    }
    let mut out: Vec<DataKey> = Vec::with_capacity(items.len());
    for (key, text) in items {
        let Some(k) = data_key(w, &key, Some(text)) else {
            continue;
        };
        if current == Some(&k) {
            w.error(key, "the same key as privacy.data_key");
        } else if let Some(j) = out.iter().position(|o| *o == k) {
            w.error(
                key,
                format!("the same key as {}[{j}]", s.key("old_data_keys")),
            );
        } else {
            out.push(k);
        }
    }
    Some(out)
}

/// `[[suppression]]`; `known` are the vertical ids.
pub(super) fn suppressions(
    w: &mut Walker,
    top: &Section,
    known: &HashSet<String>,
) -> Option<Vec<Suppression>> {
    let items = top.array_of_tables(w, "suppression", limits::SUPPRESSION_LISTS_MAX);
    let before = w.errors.len();
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for (path, table) in &items {
        let s = Section { path, table };
        s.only(w, &["id", "path", "max_age_days", "verticals"]);
        let id_text = id(w, &s);
        if let Some(t) = id_text.as_ref().filter(|t| t.value == INTERNAL_LIST_ID) {
            w.error(
                s.key("id"),
                format!(
                    "{} is the store's own list (POST /v1/admin/suppressions)",
                    t.shown()
                ),
            );
        }
        ids.extend(id_text.clone().map(|t| (s.key("id"), t)));
        let days = s.int(w, "max_age_days", 1..=limits::SUPPRESSION_MAX_AGE_DAYS_MAX);
        let file = list_path(w, &s, days.map(|d| d as u32));
        let verticals = vertical_refs(w, &s, known);
        out.push((|| {
            Some(Suppression {
                id: id_text?.value,
                path: file?,
                max_age_days: days.map(|d| d as u32),
                verticals: verticals?,
            })
        })());
    }
    unique_ids(w, &ids);
    if w.errors.len() > before {
        return None;
    }
    out.into_iter().collect()
}

/// `path`: required; the file must exist and, with `max_age_days`, have
/// been modified within that many days.
fn list_path(w: &mut Walker, s: &Section, max_age_days: Option<u32>) -> Option<PathBuf> {
    if !s.need(w, "path") {
        return None;
    }
    let text = s.string(w, "path")?;
    if text.value.is_empty() {
        w.error(s.key("path"), "must not be empty");
        return None;
    }
    let path = PathBuf::from(&text.value);
    let modified = std::fs::metadata(&path).and_then(|m| {
        if m.is_file() {
            m.modified()
        } else {
            Err(std::io::Error::other("not a file"))
        }
    });
    let modified = match modified {
        Ok(t) => t,
        Err(e) => {
            w.error(s.key("path"), format!("cannot read {}: {e}", text.shown()));
            return None;
        }
    };
    if let Some(days) = max_age_days {
        // wall clock: a file's age when the config is checked, not business time.
        let age = SystemTime::now()
            .duration_since(modified)
            .unwrap_or(Duration::ZERO);
        if age > Duration::from_secs(u64::from(days) * 86_400) {
            w.error(
                s.key("path"),
                format!(
                    "last modified {} days ago, more than max_age_days = {days}: update the list",
                    age.as_secs() / 86_400
                ),
            );
            return None;
        }
    }
    Some(path)
}

/// A publisher's `api_key_sha256`: one hash, or an array of one or two
/// (during a key rotation both authenticate). Errors name each element.
pub(super) fn api_keys(w: &mut Walker, s: &Section) -> Option<Vec<[u8; 32]>> {
    let name = "api_key_sha256";
    if !s.need(w, name) {
        return None;
    }
    let key = s.key(name);
    let one = |w: &mut Walker, key: String, v: &Value| -> Option<[u8; 32]> {
        let Value::String(text) = v else {
            w.error(key, "expected a string");
            return None;
        };
        let hash = parse_sha256_hex(text);
        if hash.is_none() {
            w.error(key, "not a hex SHA-256 (64 hex digits)");
        }
        hash
    };
    match s.table.get(name)? {
        Value::Array(items) => {
            if items.is_empty() || items.len() > limits::PUBLISHER_API_KEYS_MAX {
                w.error(
                    key,
                    format!("expected 1 to {} hashes", limits::PUBLISHER_API_KEYS_MAX),
                );
                return None;
            }
            let hashes: Vec<Option<[u8; 32]>> = items
                .iter()
                .enumerate()
                .map(|(i, v)| one(w, format!("{key}[{i}]"), v))
                .collect();
            let hashes: Vec<[u8; 32]> = hashes.into_iter().collect::<Option<_>>()?;
            if hashes.len() == 2 && hashes[0] == hashes[1] {
                w.error(format!("{key}[1]"), "the same key as [0]");
                return None;
            }
            Some(hashes)
        }
        Value::String(_) => one(w, key, s.table.get(name)?).map(|h| vec![h]),
        _ => {
            w.error(key, "expected a string or an array of up to two strings");
            None
        }
    }
}

/// A publisher's `signing_secret`: optional; at least
/// [`limits::SIGNING_SECRET_BYTES_MIN`] bytes.
pub(super) fn signing_secret(w: &mut Walker, s: &Section) -> Option<Option<SigningSecret>> {
    if !s.has("signing_secret") {
        return Some(None);
    }
    let text = s.string(w, "signing_secret")?;
    let len = text.value.len();
    if !(limits::SIGNING_SECRET_BYTES_MIN..=limits::SECRET_BYTES_MAX).contains(&len) {
        w.error(
            s.key("signing_secret"),
            format!(
                "must be {} to {} bytes (a random one: `openssl rand -hex 32`)",
                limits::SIGNING_SECRET_BYTES_MIN,
                limits::SECRET_BYTES_MAX
            ),
        );
        return None;
    }
    Some(Some(SigningSecret::new(text.value.into_bytes())))
}

#[cfg(test)]
#[path = "privacy_tests.rs"]
mod tests;
