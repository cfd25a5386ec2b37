//! Buyer-spec fixtures (contract §9), in the manner of Prebid Server's
//! adapter tests: every folder of `tests/fixtures/buyers/` is one case,
//! pure bytes in and out — no server, no socket. A new case is a new
//! folder; this file does not change.
//!
//! A case folder holds:
//! - `buyer.toml` — one `[[buyer]]` table as an operator would write it
//!   (`${KEY}` reads the secret `KEY` = `secret-key`);
//! - `case.toml` — `stage` (`ping` or `post`), `publisher`, `now_ms`, and
//!   for a ping `ping_id`, for a post `vertical`, `ref`, `price`, `test`;
//! - `lead.json` — the publisher's request body (`/v1/ping` or `/v1/post`),
//!   validated as leadx validates it;
//! - `request.txt` — the exact request expected: `METHOD target`, then one
//!   `Name: value` line per header (Content-Type first; Host and
//!   Content-Length are the client's), a blank line, then the body bytes
//!   (one final newline of the file is not part of it);
//! - `answer.toml` — the buyer's answer: `status`, optional `headers`,
//!   `body`; `gzip = true` sends the body gzipped (`repeat = N` repeats
//!   it first, for a bomb);
//! - `outcome.toml` — `outcome` (`bid`, `no_bid`, `invalid`, `accepted`,
//!   `rejected`) and what goes with it: `price`, `ref`, `reason`, `lead_id`.

use std::io::Write;
use std::path::{Path, PathBuf};

use leadx::buyer::spec::{Request, SpecIntegration, Vars};
use leadx::buyer::{BidAnswer, PingCtx, PostAnswer, PostCtx};
use toml::{Table, Value};

const BASE: &str = r#"
[server]
listen = "127.0.0.1:0"
data_dir = "/tmp/leadx-fixtures"
[[vertical]]
id = "auto_insurance"
[[vertical]]
id = "mortgage"
[[publisher]]
id = "pub1"
api_key_sha256 = "d0f8bb24eef7b983c9a7ae325120969e30bfc8ef3cc5edcae0e67fa657e4d5c1"
revenue_share = 0.8
verticals = ["auto_insurance", "mortgage"]
"#;

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/buyers");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()))
}

fn table(dir: &Path, name: &str) -> Table {
    read(dir, name)
        .parse()
        .unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()))
}

fn str_of<'t>(t: &'t Table, key: &str) -> Option<&'t str> {
    t.get(key).and_then(Value::as_str)
}

fn cents(t: &Table, key: &str) -> Option<u64> {
    let v = t.get(key)?;
    let f = v.as_float().or_else(|| v.as_integer().map(|n| n as f64))?;
    leadx::money::cents_from_f64(f)
}

/// The request as the fixture writes it.
fn request_text(r: &Request) -> String {
    let mut out = format!("{} {}\n", r.method, r.target);
    if let Some(ct) = &r.content_type {
        out.push_str(&format!("Content-Type: {ct}\n"));
    }
    for (k, v) in r.headers.iter() {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out.push('\n');
    out.push_str(&String::from_utf8_lossy(&r.body));
    out
}

/// (status, content-encoding, body) of `answer.toml`.
fn answer(dir: &Path) -> (u16, Option<String>, Vec<u8>) {
    let a = table(dir, "answer.toml");
    let status = a["status"].as_integer().unwrap() as u16;
    let mut encoding = a
        .get("headers")
        .and_then(Value::as_table)
        .and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
        })
        .and_then(|(_, v)| v.as_str())
        .map(|v| v.to_ascii_lowercase());
    let repeat = a.get("repeat").and_then(Value::as_integer).unwrap_or(1) as usize;
    let mut body = str_of(&a, "body").unwrap_or("").as_bytes().repeat(repeat);
    if a.get("gzip").and_then(Value::as_bool) == Some(true) {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&body).unwrap();
        body = gz.finish().unwrap();
        encoding = Some("gzip".into());
    }
    (status, encoding, body)
}

/// What the outcome file says, in the same words the runner derives.
fn expected(dir: &Path) -> Table {
    table(dir, "outcome.toml")
}

fn bid_outcome(a: &leadx::buyer::spec::BidRead) -> Table {
    let mut t = Table::new();
    let mut set = |k: &str, v: Value| {
        t.insert(k.into(), v);
    };
    match &a.answer {
        BidAnswer::Bid { price, buyer_ref } => {
            set("outcome", "bid".into());
            set("price", Value::Float(*price as f64 / 100.0));
            if let Some(r) = buyer_ref {
                set("ref", r.as_str().into());
            }
        }
        BidAnswer::NoBid => set("outcome", "no_bid".into()),
        BidAnswer::Invalid(why) => {
            set("outcome", "invalid".into());
            set("reason", (*why).into());
        }
    }
    if let Some(r) = &a.buyer_reason {
        set("buyer_reason", r.as_str().into());
    }
    t
}

fn post_outcome(a: &PostAnswer) -> Table {
    let mut t = Table::new();
    match a {
        PostAnswer::Accepted { buyer_lead_id } => {
            t.insert("outcome".into(), "accepted".into());
            if let Some(id) = buyer_lead_id {
                t.insert("lead_id".into(), id.as_str().into());
            }
        }
        PostAnswer::Rejected { reason } => {
            t.insert("outcome".into(), "rejected".into());
            t.insert("reason".into(), reason.as_str().into());
        }
        PostAnswer::Invalid(why) => {
            t.insert("outcome".into(), "invalid".into());
            t.insert("reason".into(), (*why).into());
        }
    }
    t
}

/// Floats in outcome files may be written as integers (`price = 12`).
fn normalized(mut t: Table) -> Table {
    if let Some(Value::Integer(n)) = t.get("price") {
        let f = *n as f64;
        t.insert("price".into(), Value::Float(f));
    }
    t
}

fn run(dir: &Path) -> Result<(), String> {
    let config_text = format!("{BASE}\n{}", read(dir, "buyer.toml"));
    let secrets = |n: &str| (n == "KEY").then(|| "secret-key".to_string());
    let config = leadx::config::parse(&config_text, &secrets).map_err(|e| {
        let lines: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        format!("config: {}", lines.join("; "))
    })?;
    let spec = SpecIntegration::for_buyer(&config.buyers[0]).ok_or("no spec stage")?;
    let case = table(dir, "case.toml");
    let publisher = str_of(&case, "publisher").unwrap_or("pub1");
    let now_ms = case.get("now_ms").and_then(Value::as_integer).unwrap_or(0) as u64;
    let mut body = read(dir, "lead.json").into_bytes();
    let mut req = Request::default();
    let (status, encoding, mut answer_body) = answer(dir);
    let got = match str_of(&case, "stage") {
        Some("ping") => {
            let p = leadx::wire::parse_ping(&mut body).map_err(|e| format!("lead: {e:?}"))?;
            let ctx = PingCtx {
                ping_id: str_of(&case, "ping_id").unwrap_or("ping-1"),
                vertical: &p.vertical,
                lead: &p.lead,
                test: p.test,
            };
            spec.render_ping(&Vars::ping(&ctx, publisher, now_ms), &mut req)?;
            bid_outcome(&spec.read_bid(status, encoding.as_deref(), &mut answer_body))
        }
        Some("post") => {
            let p = leadx::wire::parse_post(&mut body).map_err(|e| format!("lead: {e:?}"))?;
            let ctx = PostCtx {
                ping_id: &p.ping_id,
                buyer_ref: str_of(&case, "ref"),
                vertical: str_of(&case, "vertical").unwrap_or("auto_insurance"),
                lead: &p.lead,
                consent: p.consent.as_ref(),
                price: cents(&case, "price").unwrap_or(0),
                test: case.get("test").and_then(Value::as_bool).unwrap_or(false),
            };
            spec.render_post(&Vars::post(&ctx, publisher, now_ms), &mut req)?;
            post_outcome(&spec.read_post(status, encoding.as_deref(), &mut answer_body))
        }
        other => return Err(format!("case.toml: stage {other:?}")),
    };
    let want_request = read(dir, "request.txt");
    let want_request = want_request.strip_suffix('\n').unwrap_or(&want_request);
    let got_request = request_text(&req);
    if got_request != want_request {
        return Err(format!(
            "request differs\n--- expected\n{want_request}\n--- got\n{got_request}\n---"
        ));
    }
    let want = normalized(expected(dir));
    if got != want {
        return Err(format!("outcome differs: expected {want:?}, got {got:?}"));
    }
    Ok(())
}

#[test]
fn every_buyer_fixture_renders_its_request_and_reads_its_answer() {
    let cases = cases();
    assert!(cases.len() >= 12, "fixtures missing: {}", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|dir| {
            run(dir)
                .err()
                .map(|e| format!("{}: {e}", dir.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// The fixtures cover every format, every method and every outcome.
#[test]
fn the_fixtures_cover_formats_methods_and_outcomes() {
    let mut seen = std::collections::BTreeSet::new();
    for dir in cases() {
        let b: Table = table(&dir, "buyer.toml");
        let buyer = &b["buyer"].as_array().unwrap()[0];
        for stage in ["ping", "post"] {
            if let Some(s) = buyer.get(stage) {
                seen.insert(format!("format:{}", s["format"].as_str().unwrap()));
                let method = s.get("method").and_then(Value::as_str).unwrap_or("POST");
                seen.insert(format!("method:{method}"));
            }
        }
        let o = expected(&dir);
        seen.insert(format!("outcome:{}", o["outcome"].as_str().unwrap()));
    }
    for want in [
        "format:json",
        "format:xml",
        "format:soap",
        "format:form",
        "method:GET",
        "method:POST",
        "method:PUT",
        "outcome:bid",
        "outcome:no_bid",
        "outcome:invalid",
        "outcome:accepted",
        "outcome:rejected",
    ] {
        assert!(seen.contains(want), "no fixture with {want}: {seen:?}");
    }
}

/// `leadx check-config` names a bad template, regex and rule by key, each
/// on its own line, and accepts every fixture's buyer.
#[test]
fn check_config_names_spec_problems_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = format!(
        "{BASE}\n{}",
        read(&cases()[0], "buyer.toml")
            .replace("{{ lead.zip }}", "{{ lead.zipcode }}")
            .replace("path = \"/result/bid/amount\"", "regex = \"(\"")
    );
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, bad).unwrap();
    let out = crate::cli::run(&["check-config", "--config", path.to_str().unwrap()], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for key in [
        "buyer[0].ping.body: ",
        "buyer[0].ping.response.price.regex: invalid regex",
    ] {
        assert!(
            err.lines().any(|l| l.starts_with(key)),
            "{key} missing in:\n{err}"
        );
    }
}
