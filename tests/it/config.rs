//! Config from files: the commented example in `tests/fixtures/leadx.toml`,
//! secrets from the environment and from a systemd credentials directory,
//! and a broken file whose every problem is reported.

use leadx::config::{self, ConfigError};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/leadx.toml")
}

fn demo_secrets(name: &str) -> Option<String> {
    match name {
        "B1_KEY" => Some("b1-secret".into()),
        "DIRECT1_TOKEN" => Some("d1-token".into()),
        _ => None,
    }
}

#[test]
fn the_example_file_is_valid() {
    let c = config::load_with(&fixture(), &demo_secrets).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.workers, 2);
    assert!(config::verify_key(
        b"admin-demo-token",
        c.admin.token_sha256.as_ref().unwrap()
    ));
    assert_eq!(
        c.publisher_by_key(b"pub1-demo-key").map(|p| p.id.as_str()),
        Some("pub1")
    );
    assert_eq!(
        c.publisher_by_key(b"pub2-demo-key")
            .map(|p| p.revenue_share_ppm),
        Some(750_000)
    );
    let pub1 = c.publisher_by_key(b"pub1-demo-key").unwrap();
    assert!(pub1
        .allowed_ips
        .iter()
        .any(|n| n.contains("10.20.30.40".parse().unwrap())));
    assert!(!pub1
        .allowed_ips
        .iter()
        .any(|n| n.contains("192.168.0.1".parse().unwrap())));
    assert_eq!(
        config::hash_key(b"pub1-demo-key\n"),
        hex(&pub1.api_keys_sha256[0])
    );
    let b1 = c.buyer("b1").unwrap();
    assert_eq!(
        b1.headers,
        [("X-Api-Key".to_string(), "b1-secret".to_string())]
    );
    assert_eq!(b1.caps.daily, Some(100));
    let direct = c.buyer("direct1").unwrap();
    assert_eq!(
        (
            direct.ping_url.is_none(),
            direct.fixed_price,
            direct.priority
        ),
        (true, Some(500), 5)
    );
    assert_eq!(
        direct.headers,
        [("Authorization".to_string(), "Bearer d1-token".to_string())]
    );
    assert_eq!(direct.post_timeout_ms, c.auction.post_timeout_ms);
    assert!(c
        .vertical("home_insurance")
        .is_some_and(|v| !v.require_consent));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn unset_secrets_are_named_by_key_without_values() {
    let errors = config::load_with(&fixture(), &|_: &str| None).unwrap_err();
    let lines: Vec<String> = errors.iter().map(ConfigError::to_string).collect();
    assert_eq!(
        lines,
        [
            "buyer[0].headers.X-Api-Key: environment variable B1_KEY is not set",
            "buyer[1].headers.Authorization: environment variable DIRECT1_TOKEN is not set",
        ]
    );
}

#[test]
fn a_broken_file_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(fixture())
        .unwrap()
        .replace("listen = \"127.0.0.1:8080\"", "lisen = \"127.0.0.1:8080\"")
        .replace("bid_ttl_s = 120", "bid_ttl_s = 0")
        .replace("revenue_share = 0.75", "revenue_share = \"75%\"")
        .replace(
            "verticals = [\"auto_insurance\"]\nping_url",
            "verticals = [\"auto\"]\nping_url",
        )
        .replace(
            "post_url = \"https://direct.example.com",
            "post_url = \"htps://direct.example.com",
        );
    std::fs::write(&path, text).unwrap();
    let errors = config::load_with(&path, &demo_secrets).unwrap_err();
    let lines: Vec<String> = errors.iter().map(ConfigError::to_string).collect();
    assert_eq!(
        lines,
        [
            "server.lisen: unknown key",
            "server.listen: required",
            "auction.bid_ttl_s: must be between 1 and 86400",
            "publisher[1].revenue_share: expected a number",
            "buyer[0].verticals[0]: unknown vertical \"auto\"",
            "buyer[1].post_url: not a URL (scheme must be http:// or https://)",
        ]
    );
}

#[test]
fn an_unreadable_path_is_the_key() {
    let errors = config::load(Path::new("/nonexistent/leadx.toml")).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, "/nonexistent/leadx.toml");
}

/// Set in the child process that [`secrets_from_credentials_directory`]
/// starts, so that the environment is changed only in a fresh process.
const CHILD: &str = "LEADX_IT_CONFIG_CHILD";

#[test]
fn secrets_from_credentials_directory() {
    if std::env::var_os(CHILD).is_some() {
        let c = config::load(&fixture()).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(c.buyer("b1").unwrap().headers[0].1, "from-file");
        assert_eq!(c.buyer("direct1").unwrap().headers[0].1, "Bearer from-env");
        println!("child-ok");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("B1_KEY"), "from-file\n").unwrap();
    std::fs::write(dir.path().join("DIRECT1_TOKEN"), "file-loses\n").unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "config::secrets_from_credentials_directory",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("CREDENTIALS_DIRECTORY", dir.path())
        .env_remove("B1_KEY")
        .env("DIRECT1_TOKEN", "from-env")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("child-ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
