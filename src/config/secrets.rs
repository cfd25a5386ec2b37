//! Secrets: where `${NAME}` values come from, how a string's `${NAME}`s are
//! replaced, and the SHA-256 hashes that stand in for API keys and the admin
//! token. The config file never holds a secret in clear (contract §2), so
//! everything that touches one lives here, and nothing here ever puts a
//! secret's value into an error.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

use crate::limits;

/// The secret NAME: env var `NAME`, else the file
/// `$CREDENTIALS_DIRECTORY/NAME` (systemd `LoadCredential=`), with one
/// trailing newline stripped. Names that are not `[A-Za-z_][A-Za-z0-9_]*`
/// are never looked up, so a name cannot walk out of the directory.
///
/// Blocking: reads the environment and maybe a file. Call it from a plain
/// thread (start-up, the SIGHUP handler), never from a may worker.
pub fn default_secrets(name: &str) -> Option<String> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(std::path::PathBuf::from);
    lookup(name, &|n| std::env::var(n).ok(), dir.as_deref())
}

/// [`default_secrets`] with the environment and the directory passed in, so
/// that tests need not mutate the process environment.
fn lookup(name: &str, env: &dyn Fn(&str) -> Option<String>, dir: Option<&Path>) -> Option<String> {
    if !is_name(name) {
        return None;
    }
    if let Some(v) = env(name) {
        return Some(v);
    }
    let file = std::fs::File::open(dir?.join(name)).ok()?;
    let mut bytes = Vec::new();
    // One byte more than allowed tells an oversized file from a full one.
    file.take(limits::SECRET_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() > limits::SECRET_BYTES_MAX {
        return None;
    }
    let text = String::from_utf8(bytes).ok()?;
    Some(strip_newline(&text).to_string())
}

/// A variable name as accepted inside `${…}`: a shell-style identifier.
pub(super) fn is_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Strips ONE trailing `"\n"` or `"\r\n"`: what `echo` or an editor adds.
fn strip_newline(s: &str) -> &str {
    s.strip_suffix("\r\n")
        .or_else(|| s.strip_suffix('\n'))
        .unwrap_or(s)
}

/// Why a string's `${…}` could not be replaced; each becomes one
/// `ConfigError` on the string's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SubstError {
    Unclosed,
    BadName,
    Unset(String),
}

impl SubstError {
    pub(super) fn message(&self) -> String {
        match self {
            SubstError::Unclosed => "unclosed ${ (write $${ for a literal ${)".to_string(),
            SubstError::BadName => {
                "bad name inside ${…} (expected [A-Za-z_][A-Za-z0-9_]*)".to_string()
            }
            SubstError::Unset(name) => format!("environment variable {name} is not set"),
        }
    }
}

/// Replaces every `${NAME}` in `s` with `secrets(NAME)`; `$${` stands for a
/// literal `${`, and any other `$` is kept as is. One pass: a secret's value
/// is never itself expanded. Returns the text and whether a secret went into
/// it (so callers never echo that text in an error).
pub(super) fn substitute(
    s: &str,
    secrets: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, bool), Vec<SubstError>> {
    let mut out = String::with_capacity(s.len());
    let mut errors = Vec::new();
    let mut used_secret = false;
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                errors.push(SubstError::Unclosed);
                break;
            };
            let name = &after[..end];
            match (
                is_name(name),
                is_name(name).then(|| secrets(name)).flatten(),
            ) {
                (false, _) => errors.push(SubstError::BadName),
                (true, None) => errors.push(SubstError::Unset(name.to_string())),
                (true, Some(v)) => {
                    out.push_str(&v);
                    used_secret = true;
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    out.push_str(rest);
    Ok((out, used_secret))
}

/// What `leadx hash-key` prints for a secret read from stdin: one trailing
/// newline stripped, then lowercase hex SHA-256.
pub fn hash_key(secret: &[u8]) -> String {
    let trimmed = secret
        .strip_suffix(b"\r\n")
        .or_else(|| secret.strip_suffix(b"\n"))
        .unwrap_or(secret);
    let digest = Sha256::digest(trimmed);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        hex.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    hex
}

/// SHA-256 of a presented bearer token (as sent, nothing stripped).
pub(super) fn sha256(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// True when `secret` hashes to `sha256`. The comparison takes the same time
/// whichever byte differs, so response timing tells nothing about the hash.
pub fn verify_key(secret: &[u8], sha256_expected: &[u8; 32]) -> bool {
    let got = sha256(secret);
    got.iter()
        .zip(sha256_expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Parses exactly 64 hex digits (either case) into a hash.
pub(super) fn parse_sha256_hex(s: &str) -> Option<[u8; 32]> {
    crate::ids::unhex32(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn substitutes_names_and_escapes() {
        let s = env(&[("A", "1"), ("B_2", "two")]);
        assert_eq!(
            substitute("x${A}y${B_2}", &s),
            Ok(("x1ytwo".to_string(), true))
        );
        assert_eq!(
            substitute("cost $5 $${A}", &s),
            Ok(("cost $5 ${A}".to_string(), false))
        );
        assert_eq!(substitute("$", &s), Ok(("$".to_string(), false)));
        assert_eq!(substitute("${A}$", &s), Ok(("1$".to_string(), true)));
        assert_eq!(substitute("", &s), Ok((String::new(), false)));
    }

    #[test]
    fn a_secret_value_is_not_expanded_again() {
        let s = env(&[("A", "${B}"), ("B", "no")]);
        assert_eq!(substitute("${A}", &s), Ok(("${B}".to_string(), true)));
    }

    #[test]
    fn reports_every_bad_reference() {
        let s = env(&[("A", "1")]);
        assert_eq!(
            substitute("${X}${A}${1x}${Y}", &s),
            Err(vec![
                SubstError::Unset("X".into()),
                SubstError::BadName,
                SubstError::Unset("Y".into())
            ])
        );
        assert_eq!(substitute("${A", &s), Err(vec![SubstError::Unclosed]));
        assert_eq!(substitute("${}", &s), Err(vec![SubstError::BadName]));
    }

    #[test]
    fn hash_key_strips_one_newline() {
        // sha256("secret")
        let want = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
        assert_eq!(hash_key(b"secret"), want);
        assert_eq!(hash_key(b"secret\n"), want);
        assert_eq!(hash_key(b"secret\r\n"), want);
        assert_ne!(hash_key(b"secret\n\n"), want);
        assert_eq!(
            parse_sha256_hex(want).map(|h| verify_key(b"secret", &h)),
            Some(true)
        );
        assert_eq!(
            parse_sha256_hex(want).map(|h| verify_key(b"secret\n", &h)),
            Some(false)
        );
    }

    #[test]
    fn parses_only_64_hex_digits() {
        let upper = "2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25B";
        assert_eq!(
            parse_sha256_hex(upper),
            parse_sha256_hex(&upper.to_lowercase())
        );
        assert!(parse_sha256_hex(upper).is_some());
        assert!(parse_sha256_hex(&upper[..63]).is_none());
        assert!(parse_sha256_hex(&format!("{}0", upper)).is_none());
        assert!(parse_sha256_hex(&upper.replace('B', "g")).is_none());
        assert!(parse_sha256_hex(&"é".repeat(32)).is_none());
    }

    #[test]
    fn secrets_come_from_env_then_credentials_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("FROM_FILE"), "s3cret\n").unwrap();
        std::fs::write(dir.path().join("BOTH"), "file").unwrap();
        std::fs::write(
            dir.path().join("HUGE"),
            vec![b'x'; limits::SECRET_BYTES_MAX + 1],
        )
        .unwrap();
        let e = env(&[("BOTH", "env")]);
        assert_eq!(
            lookup("FROM_FILE", &e, Some(dir.path())).as_deref(),
            Some("s3cret")
        );
        assert_eq!(lookup("BOTH", &e, Some(dir.path())).as_deref(), Some("env"));
        assert_eq!(lookup("MISSING", &e, Some(dir.path())), None);
        assert_eq!(lookup("FROM_FILE", &e, None), None);
        assert_eq!(lookup("HUGE", &e, Some(dir.path())), None);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert_eq!(
            lookup("../FROM_FILE", &e, Some(&dir.path().join("sub"))),
            None
        );
    }

    #[test]
    fn default_secrets_reads_the_process_environment() {
        // PATH is set in every test environment; no env mutation needed.
        assert_eq!(default_secrets("PATH"), std::env::var("PATH").ok());
        assert_eq!(default_secrets("not a name"), None);
    }
}
