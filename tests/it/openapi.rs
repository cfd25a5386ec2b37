//! `GET /openapi.json` and the API reference (issue #11): the document is
//! served without auth, byte for byte; a 405 names the allowed methods; a
//! method no route has is 405 before a body is refused; docs/api.md has a
//! heading for every path of the document and a row for every error code.

use leadx::api::openapi::DOCUMENT;

use crate::support::{self, ADMIN};

fn doc() -> serde_json::Value {
    serde_json::from_str(DOCUMENT).unwrap()
}

#[test]
fn the_document_is_served_without_auth_byte_for_byte() {
    let l = support::start("", "", "");
    let r = support::request(l.addr, "GET", "/openapi.json", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, DOCUMENT.as_bytes());
    assert_eq!(r.json()["openapi"], "3.1.0");
    let r = support::request(l.addr, "POST", "/openapi.json", &[], b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
}

/// Found by schemathesis (`unsupported_method`, `allow_header_conformance`):
/// an undeclared method with a body on an admin route answered 413
/// `body_too_large` instead of 405; every 405 carries `Allow`.
#[test]
fn an_undeclared_method_is_405_with_allow_whatever_the_body() {
    let l = support::start("", "", "");
    let auth = format!("Bearer {ADMIN}");
    let hdrs = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let body = br#"{"phones":["2125550199"]}"#;
    let r = support::request(l.addr, "TRACE", "/v1/admin/suppressions", &hdrs, body);
    assert_eq!((r.status, r.code().as_str()), (405, "method_not_allowed"));
    assert_eq!(r.header("allow"), Some("POST, DELETE"));
    let r = support::request(l.addr, "PUT", "/v1/ping", &hdrs, body);
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let r = support::request(l.addr, "PATCH", "/v1/leads/abc", &hdrs, b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    // A known route that takes no body still refuses one, unread.
    let r = support::request(l.addr, "GET", "/v1/admin/stats", &hdrs, body);
    assert_eq!((r.status, r.code().as_str()), (413, "body_too_large"));
    let r = support::request(l.addr, "GET", "/v1/nope", &hdrs, b"");
    assert_eq!((r.status, r.header("allow")), (404, None));
}

fn api_md() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap()
}

/// docs/api.md describes every operation of the document under a heading
/// `### METHOD /path`, and no operation the document lacks.
#[test]
fn docs_api_md_has_a_heading_for_every_operation() {
    let md = api_md();
    let headings: std::collections::BTreeSet<String> = md
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .filter(|h| h.starts_with(['G', 'P', 'D']) && h.contains(" /"))
        .map(|h| h.trim_matches('`').replace('`', ""))
        .collect();
    let mut ops = std::collections::BTreeSet::new();
    for (path, item) in doc()["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                ops.insert(format!("{} {path}", method.to_ascii_uppercase()));
            }
        }
    }
    let missing: Vec<_> = ops.difference(&headings).collect();
    assert!(
        missing.is_empty(),
        "docs/api.md lacks headings for {missing:?}"
    );
    let extra: Vec<_> = headings.difference(&ops).collect();
    assert!(
        extra.is_empty(),
        "docs/api.md describes {extra:?}, openapi.json does not"
    );
}

/// Every error code of the document's `ErrorCode` enum is a row of
/// docs/api.md's error table (`` | 4xx | `code` | ``).
#[test]
fn docs_api_md_lists_every_error_code() {
    let md = api_md();
    let d = doc();
    for code in d["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
    {
        let code = code.as_str().unwrap();
        assert!(
            md.contains(&format!("| `{code}` |")),
            "docs/api.md lacks `{code}`"
        );
    }
}

/// README and docs link to docs/api.md, not to a contract file a clone
/// of the repository does not have.
#[test]
fn no_doc_points_at_the_shared_contract() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = vec![
        format!("{root}/README.md"),
        format!("{root}/ARCHITECTURE.md"),
    ];
    for f in std::fs::read_dir(format!("{root}/docs")).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p.display().to_string());
        }
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("shared/CONTRACT"),
            "{f} points at shared/CONTRACT.md"
        );
    }
}
