//! `GET /openapi.json` (contract §13): the OpenAPI 3.1 description of this
//! API. It is a file next to the code it describes (`openapi.json`, built
//! into the binary and served byte for byte), kept true by the tests below
//! against the route table (`routes::ROUTES`) and the error codes
//! (`error::CODES`), by docs/api.md's test (tests/it/openapi.rs), and by
//! schemathesis against a running leadx (tests/schemathesis/run.sh).

use crate::http::server::Response;

/// The document, as built into the binary.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// The answer to `GET /openapi.json`: no auth, the document as is.
pub fn document() -> Response {
    super::json(200, DOCUMENT.as_bytes().to_vec())
}

/// Operations the document describes from the contract that this build
/// does not route yet (they land from other branches). A route that
/// appears in the table must leave this list (the test says so).
#[cfg(test)]
const NOT_ROUTED_YET: &[(&str, &str)] = &[];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::api::{error, routes};

    fn doc() -> serde_json::Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    #[test]
    fn the_document_is_openapi_3_1_with_the_2020_12_dialect() {
        let d = doc();
        assert_eq!(d["openapi"], "3.1.0");
        assert_eq!(
            d["jsonSchemaDialect"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert!(d["info"]["title"].is_string() && d["info"]["version"].is_string());
        let resp = document();
        assert_eq!(resp.content_type, "application/json");
        assert_eq!(resp.body, DOCUMENT.as_bytes(), "served byte for byte");
    }

    /// Every `$ref` points at something the document defines.
    #[test]
    fn every_reference_resolves() {
        fn walk(v: &serde_json::Value, d: &serde_json::Value, seen: &mut usize) {
            match v {
                serde_json::Value::Object(o) => {
                    if let Some(r) = o.get("$ref").and_then(|r| r.as_str()) {
                        let ptr = r.strip_prefix('#').expect("local reference");
                        assert!(d.pointer(ptr).is_some(), "dangling {r}");
                        *seen += 1;
                    }
                    o.values().for_each(|v| walk(v, d, seen));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, d, seen)),
                _ => {}
            }
        }
        let d = doc();
        let mut seen = 0;
        walk(&d, &d, &mut seen);
        assert!(seen > 50, "{seen} references");
    }

    fn operations(d: &serde_json::Value) -> BTreeSet<(String, String)> {
        let mut ops = BTreeSet::new();
        for (path, item) in d["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                    ops.insert((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        ops
    }

    /// Every route of the router is in the document and every operation of
    /// the document is routed, but for the ones named in `NOT_ROUTED_YET`.
    #[test]
    fn the_document_and_the_route_table_name_the_same_operations() {
        let documented = operations(&doc());
        let routed: BTreeSet<(String, String)> = routes::ROUTES
            .iter()
            .map(|e| (e.method.to_string(), e.path.to_string()))
            .collect();
        let missing: Vec<_> = routed.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routed but not in openapi.json: {missing:?}"
        );
        for (method, path) in NOT_ROUTED_YET {
            let op = (method.to_string(), path.to_string());
            assert!(
                documented.contains(&op),
                "{method} {path} must stay documented"
            );
            assert!(
                !routed.contains(&op),
                "{method} {path} is routed now: take it off NOT_ROUTED_YET"
            );
        }
        let not_routed: Vec<_> = documented
            .difference(&routed)
            .filter(|(m, p)| !NOT_ROUTED_YET.contains(&(m.as_str(), p.as_str())))
            .collect();
        assert!(
            not_routed.is_empty(),
            "documented but not routed: {not_routed:?}"
        );
    }

    /// The `ErrorCode` enum is exactly `error::CODES`.
    #[test]
    fn the_error_code_enum_is_every_code_the_api_answers() {
        let d = doc();
        let documented: BTreeSet<&str> = d["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .expect("ErrorCode enum")
            .iter()
            .map(|c| c.as_str().expect("code"))
            .collect();
        let known: BTreeSet<&str> = error::CODES.iter().map(|(c, _)| *c).collect();
        assert_eq!(documented, known);
    }

    /// Every code literal the source hands to `ApiError` or `error_body`
    /// is in `error::CODES` (and so in the document): a code added
    /// anywhere without both fails here.
    #[test]
    fn every_code_in_the_source_is_a_known_code() {
        let pats = [
            r#"ApiError::(?:new|field)\(\s*\d{3},\s*"([a-z_]+)""#,
            r#"error_body\(\s*"([a-z_]+)""#,
            r#"\(\d{3}, "([a-z_]+)"\)"#,
            r#"H::\w+(?:\(_\))? => "([a-z_]+)""#,
        ];
        let pats: Vec<regex::Regex> = pats.iter().map(|p| regex::Regex::new(p).unwrap()).collect();
        let known: BTreeSet<&str> = error::CODES.iter().map(|(c, _)| *c).collect();
        let mut found = BTreeSet::new();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut dirs = vec![std::path::PathBuf::from(root)];
        while let Some(dir) = dirs.pop() {
            for f in std::fs::read_dir(&dir).unwrap() {
                let path = f.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for p in &pats {
                        for c in p.captures_iter(&text) {
                            let code = c[1].to_string();
                            assert!(known.contains(code.as_str()), "{code} in {path:?}");
                            found.insert(code);
                        }
                    }
                }
            }
        }
        // The scan sees the codes it should (it would pass vacuously on a
        // pattern that stopped matching).
        for code in [
            "rate_limited",
            "unknown_ping",
            "starting",
            "headers_too_large",
            "invalid_config",
        ] {
            assert!(found.contains(code), "the scan missed {code}");
        }
    }

    /// Each code's status in the document's description is its status in
    /// `error::CODES`.
    #[test]
    fn the_document_gives_each_code_its_status() {
        let d = doc();
        let text = d["components"]["schemas"]["ErrorCode"]["description"]
            .as_str()
            .unwrap();
        for (code, status) in error::CODES {
            assert!(
                text.contains(&format!("`{code}` {status}")),
                "{code} {status}"
            );
        }
    }
}
