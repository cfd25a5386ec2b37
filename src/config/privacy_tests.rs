//! `[privacy]`, `[[suppression]]` and the §12 publisher keys: a full
//! example, a v1 config unchanged, and one bad snippet per rule with the
//! exact line `check-config` prints.

use std::time::{Duration, SystemTime};

use super::super::{hash_key, parse, Config};
use super::*;

const KEY_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const KEY_B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
const SIGNING: &str = "pub1-signing-secret-0123456789";

fn secrets(name: &str) -> Option<String> {
    match name {
        "LEADX_DATA_KEY" => Some(KEY_A.into()),
        "OLD_KEY" => Some(KEY_B.into()),
        "PUB1_SIGNING" => Some(SIGNING.into()),
        "SHORT" => Some("short".into()),
        "NOT_HEX" => Some("z".repeat(64)),
        _ => None,
    }
}

/// A v1 config with one vertical and one publisher, then `extra`.
fn config(publisher_extra: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:8080\"\ndata_dir = \"/var/lib/leadx\"\n\
         [[vertical]]\nid = \"auto_insurance\"\n\
         [[publisher]]\nid = \"pub1\"\nrevenue_share = 0.8\nverticals = [\"auto_insurance\"]\n{publisher_extra}\n\
         {extra}\n",
    )
}

fn one_key() -> String {
    format!("api_key_sha256 = \"{}\"", hash_key(b"pub1-key"))
}

fn errors(text: &str) -> Vec<String> {
    match parse(text, &secrets) {
        Ok(_) => vec![],
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

fn ok(text: &str) -> Config {
    parse(text, &secrets).unwrap_or_else(|e| panic!("{e:?}"))
}

/// A list file whose mtime is `age_days` in the past.
fn list_file(dir: &std::path::Path, name: &str, age_days: u64) -> String {
    let path = dir.join(name);
    std::fs::write(&path, "5552345678\n").unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    // wall clock: a file's age, as check-config sees it.
    let then = SystemTime::now() - Duration::from_secs(age_days * 86_400);
    file.set_modified(then).unwrap();
    path.display().to_string()
}

#[test]
fn a_v1_config_reads_as_before_and_warns_that_pii_is_in_clear() {
    let c = ok(&config(&one_key(), ""));
    assert_eq!(c.privacy, Privacy::default());
    assert!(c.suppressions.is_empty());
    assert_eq!(c.publishers[0].api_keys_sha256.len(), 1);
    assert!(c.publishers[0].signing_secret.is_none());
    assert_eq!(
        c.publisher_by_key(b"pub1-key").map(|p| p.id.as_str()),
        Some("pub1")
    );
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("privacy.data_key: not set: PII"),
        "{warnings:?}"
    );
    let on_purpose = ok(&config(&one_key(), "[privacy]\nplaintext_pii = true"));
    assert!(on_purpose.warnings().is_empty());
}

#[test]
fn the_contract_example_reads_with_both_api_keys_and_no_secret_in_debug() {
    let dir = tempfile::tempdir().unwrap();
    let list = list_file(dir.path(), "dnc.txt", 3);
    let publisher = format!(
        "api_key_sha256 = [\"{}\", \"{}\"]\nsigning_secret = \"${{PUB1_SIGNING}}\"",
        hash_key(b"old-key"),
        hash_key(b"new-key")
    );
    let extra = format!(
        "[privacy]\ndata_key = \"${{LEADX_DATA_KEY}}\"\nold_data_keys = [\"${{OLD_KEY}}\"]\n\
         pii_retention_days = 90\nping_retention_days = 7\n\
         [[suppression]]\nid = \"national_dnc\"\npath = \"{list}\"\nmax_age_days = 31\n\
         verticals = [\"auto_insurance\"]\n"
    );
    let c = ok(&config(&publisher, &extra));
    assert_eq!(
        c.privacy,
        Privacy {
            data_key: DataKey::from_hex(KEY_A),
            old_data_keys: vec![DataKey::from_hex(KEY_B).unwrap()],
            plaintext_pii: false,
            pii_retention_days: Some(90),
            ping_retention_days: Some(7),
        }
    );
    assert!(c.privacy.key_ring().is_some());
    assert_eq!(
        c.suppressions,
        [Suppression {
            id: "national_dnc".into(),
            path: list.into(),
            max_age_days: Some(31),
            verticals: vec!["auto_insurance".into()],
        }]
    );
    for key in [&b"old-key"[..], b"new-key"] {
        assert_eq!(c.publisher_by_key(key).map(|p| p.id.as_str()), Some("pub1"));
    }
    assert!(c.publisher_by_key(b"pub1-key").is_none());
    let p = &c.publishers[0];
    let signed = p.signing_secret.as_ref().unwrap().key().sign(1, b"x");
    assert_eq!(signed, SigningKey::new(SIGNING.as_bytes()).sign(1, b"x"));
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    let debug = format!("{c:?}");
    for secret in [KEY_A, KEY_B, SIGNING] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
}

#[test]
fn bad_privacy_keys_are_named_and_never_echo_a_secret() {
    let cases: &[(&str, &[&str])] = &[
        (
            "[privacy]\ndata_key = \"${NOT_HEX}\"",
            &["privacy.data_key: not a data key: 64 hex digits (32 bytes), as `openssl rand -hex 32` prints"],
        ),
        (
            "[privacy]\ndata_key = \"${LEADX_DATA_KEY}\"\nold_data_keys = [\"${OLD_KEY}\", \"${LEADX_DATA_KEY}\", \"${OLD_KEY}\"]",
            &[
                "privacy.old_data_keys[1]: the same key as privacy.data_key",
                "privacy.old_data_keys[2]: the same key as privacy.old_data_keys[0]",
            ],
        ),
        (
            "[privacy]\nold_data_keys = [\"${OLD_KEY}\"]",
            &["privacy.old_data_keys: needs privacy.data_key (the key that seals new PII)"],
        ),
        (
            "[privacy]\ndata_key = \"${LEADX_DATA_KEY}\"\nplaintext_pii = true",
            &["privacy.plaintext_pii: true contradicts privacy.data_key (PII is sealed when a data key is set)"],
        ),
        (
            "[privacy]\npii_retention_days = 0\nping_retention_days = 36501\nkey = 1",
            &[
                "privacy.key: unknown key",
                "privacy.pii_retention_days: must be between 1 and 36500",
                "privacy.ping_retention_days: must be between 1 and 36500",
            ],
        ),
    ];
    for (extra, want) in cases {
        let got = errors(&config(&one_key(), extra));
        assert_eq!(got, *want, "{extra}");
        for line in &got {
            assert!(!line.contains(KEY_A) && !line.contains(KEY_B), "{line}");
        }
    }
}

#[test]
fn bad_suppression_lists_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = list_file(dir.path(), "fresh.txt", 1);
    let stale = list_file(dir.path(), "stale.txt", 40);
    let missing = dir.path().join("missing.txt").display().to_string();
    let list = |id: &str, path: &str, more: &str| {
        format!("[[suppression]]\nid = \"{id}\"\npath = \"{path}\"\n{more}\n")
    };
    let v = "verticals = [\"auto_insurance\"]";
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            list("dnc", &stale, &format!("max_age_days = 31\n{v}")),
            vec!["suppression[0].path: last modified 40 days ago, more than max_age_days = 31: update the list".into()],
        ),
        (list("dnc", &stale, v), vec![]),
        (
            list("dnc", &missing, v),
            vec![format!("suppression[0].path: cannot read {missing:?}: No such file or directory (os error 2)")],
        ),
        (
            list("dnc", &fresh, "verticals = [\"mortgage\"]\nmax_age_days = 0"),
            vec![
                "suppression[0].max_age_days: must be between 1 and 3650".into(),
                "suppression[0].verticals[0]: unknown vertical \"mortgage\"".into(),
            ],
        ),
        (
            list("internal", &fresh, v),
            vec!["suppression[0].id: \"internal\" is the store's own list (POST /v1/admin/suppressions)".into()],
        ),
        (
            format!("{}{}", list("dnc", &fresh, v), list("dnc", &fresh, v)),
            vec!["suppression[1].id: duplicate id \"dnc\"".into()],
        ),
        (
            format!("[[suppression]]\nid = \"dnc\"\n{v}"),
            vec!["suppression[0].path: required".into()],
        ),
    ];
    for (extra, want) in cases {
        assert_eq!(errors(&config(&one_key(), &extra)), want, "{extra}");
    }
}

#[test]
fn bad_publisher_keys_are_named() {
    let h = |k: &[u8]| hash_key(k);
    let cases: Vec<(String, String, Vec<&str>)> = vec![
        (
            format!("api_key_sha256 = [\"{}\", \"{}\", \"{}\"]", h(b"a"), h(b"b"), h(b"c")),
            String::new(),
            vec!["publisher[0].api_key_sha256: expected 1 to 2 hashes"],
        ),
        (
            "api_key_sha256 = []".into(),
            String::new(),
            vec!["publisher[0].api_key_sha256: expected 1 to 2 hashes"],
        ),
        (
            format!("api_key_sha256 = [\"{}\", \"{}\"]", h(b"a"), h(b"a")),
            String::new(),
            vec!["publisher[0].api_key_sha256[1]: the same key as [0]"],
        ),
        (
            format!("api_key_sha256 = [\"{}\", 7, \"xy\"]", h(b"a")).replace(", \"xy\"", ""),
            String::new(),
            vec!["publisher[0].api_key_sha256[1]: expected a string"],
        ),
        (
            "api_key_sha256 = 7".into(),
            String::new(),
            vec!["publisher[0].api_key_sha256: expected a string or an array of up to two strings"],
        ),
        (
            format!("api_key_sha256 = [\"{}\", \"{}\"]", h(b"a"), h(b"shared")),
            format!(
                "[[publisher]]\nid = \"pub2\"\nrevenue_share = 0.5\nverticals = [\"auto_insurance\"]\napi_key_sha256 = [\"{}\"]",
                h(b"shared")
            ),
            vec!["publisher[1].api_key_sha256[0]: the same key as publisher[0]"],
        ),
        (
            format!("{}\nsigning_secret = \"${{SHORT}}\"", one_key()),
            String::new(),
            vec!["publisher[0].signing_secret: must be 16 to 65536 bytes (a random one: `openssl rand -hex 32`)"],
        ),
    ];
    for (publisher, extra, want) in cases {
        assert_eq!(errors(&config(&publisher, &extra)), want, "{publisher}");
    }
}
