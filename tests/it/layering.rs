//! Source-level guards for ARCHITECTURE.md's invariants that the compiler
//! cannot check: they read `src/` and name the line that breaks a rule.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/`, as (path from the crate root, text).
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    walk(&root.join("src"), &mut out);
    assert!(out.len() > 40, "found the sources");
    out.into_iter()
        .map(|(path, text)| (path.strip_prefix(root).unwrap().display().to_string(), text))
        .collect()
}

/// Test modules in files of their own (`tests.rs`, `*_tests.rs`) are not
/// production code.
fn is_test_file(name: &str) -> bool {
    name.ends_with("tests.rs")
}

/// The production lines (not comments) of every non-test source file that
/// `skip` does not name, for which `offends(all lines, line number, line)`
/// holds, as `file:line: text`.
fn offending_lines(
    skip: impl Fn(&str) -> bool,
    offends: impl Fn(&[&str], usize, &str) -> bool,
) -> Vec<String> {
    let mut bad = Vec::new();
    for (name, text) in sources() {
        if is_test_file(&name) || skip(&name) {
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in production_lines(&text) {
            if !is_comment(line) && offends(&lines, n, line) {
                bad.push(format!("{name}:{n}: {}", line.trim()));
            }
        }
    }
    bad
}

/// Lines outside `#[cfg(test)]` modules (a test module opens at a
/// `#[cfg(test)]` line and runs to the end of the file, as in leadx).
fn production_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .map(|(i, l)| (i + 1, l))
}

fn is_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("//")
}

/// Every lock is `sync::Mutex`/`sync::RwLock` (whose guards the debug
/// check counts), and every call that can park a coroutine or block a
/// thread is announced to `sync::will_park` on one of the three lines
/// before it — or stands on a plain thread of its own, said in a
/// `// own thread` comment on the line or the line before.
#[test]
fn locks_and_parks_go_through_sync() {
    let mut bad = Vec::new();
    for (name, text) in sources() {
        if name != "src/sync.rs" && !is_test_file(&name) {
            bad.extend(lock_and_park_violations(&name, &text));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

fn lock_and_park_violations(name: &str, text: &str) -> Vec<String> {
    let forbidden_locks = [
        "parking_lot::",
        "std::sync::Mutex",
        "std::sync::RwLock",
        "sync::{Mutex",
        "Condvar",
    ];
    let parks = [
        ".recv()",
        ".recv_timeout(",
        ".wait_timeout(",
        ".accept()",
        "TcpStream::connect_timeout(",
        "TcpStream::connect(",
        "thread::sleep(",
        "coroutine::sleep(",
        // rustls on a socket (the server's HTTPS connections).
        ".read_tls(",
        ".write_tls(",
    ];
    let mut bad = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in production_lines(text) {
        if is_comment(line) {
            continue;
        }
        if let Some(f) = forbidden_locks.iter().find(|f| line.contains(*f)) {
            bad.push(format!(
                "{name}:{n}: uses {f}; use crate::sync::{{Mutex, RwLock}}"
            ));
        }
        if let Some(p) = parks.iter().find(|p| line.contains(*p)) {
            let before = &lines[n.saturating_sub(4)..n - 1];
            let announced = before
                .iter()
                .any(|l| l.contains("will_park") || l.contains("will_wait_for_store"));
            let own_thread = line.contains("// own thread")
                || before.last().is_some_and(|l| l.contains("// own thread"));
            if !announced && !own_thread {
                bad.push(format!("{name}:{n}: `{p}` can park: call crate::sync::will_park first (or say `// own thread`)"));
            }
        }
    }
    bad
}

/// rustls reading or writing a socket parks like the socket would.
#[test]
fn the_park_guard_sees_a_bare_tls_socket_read_and_write() {
    let sample = "fn f() {\n    tls.read_tls(sock)?;\n    tls.write_tls(sock)?;\n    crate::sync::will_park(\"x\");\n    tls.write_tls(sock)?;\n}\n";
    let bad = lock_and_park_violations("x.rs", sample);
    assert_eq!(bad.len(), 2, "{bad:?}");
}

/// The guard must catch what it is for, and let through what it allows.
#[test]
fn the_lock_and_park_guard_sees_a_bare_lock_and_a_bare_park() {
    let sample = "use parking_lot::Mutex;\nfn f() {\n    rx.recv();\n    crate::sync::will_park(\"x\");\n    rx.recv();\n    std::thread::sleep(d); // own thread\n}\n#[cfg(test)]\nmod tests { use parking_lot::Mutex; }\n";
    let bad = lock_and_park_violations("x.rs", sample);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(
        bad[0].starts_with("x.rs:1: uses parking_lot::") && bad[1].starts_with("x.rs:3: `.recv()`"),
        "{bad:?}"
    );
}

/// Imports run downwards: nothing below `api` names `api` (its errors are
/// domain values that `api::error` alone maps to HTTP). Only the wiring
/// above it may: `daemon` (starts the API), `demo`, `main`.
#[test]
fn nothing_below_api_imports_api() {
    let above = ["src/daemon.rs", "src/demo.rs", "src/main.rs", "src/lib.rs"];
    let bad = offending_lines(
        |name| name.starts_with("src/api/") || above.contains(&name),
        |_, _, line| line.contains("crate::api"),
    );
    assert!(
        bad.is_empty(),
        "imports that run up into api:\n{}",
        bad.join("\n")
    );
}

/// Business time comes from the exchange's `Clock` (tests move a manual
/// one): outside `clock` and `ids`, a wall-clock read must say on the line
/// before why it is not business time (`// wall clock: …`).
#[test]
fn only_the_clock_reads_the_wall_clock_for_business_time() {
    let bad = offending_lines(
        |name| name == "src/clock.rs" || name == "src/ids.rs",
        |lines, n, line| {
            let reads = line.contains("ids::now_ms()") || line.contains("SystemTime::now");
            reads && !(n >= 2 && lines[n - 2].contains("wall clock:"))
        },
    );
    assert!(
        bad.is_empty(),
        "ask the exchange's clock (ex.now_ms()):\n{}",
        bad.join("\n")
    );
}

/// Buyer calls and server reads keep their deadlines on
/// `http::deadline::Watch`, never on a may socket timeout: may 0.3.51's io
/// timers break under load and corrupted a load run's heap
/// (docs/performance.md, "A crash under load"). Server writes keep may's
/// write timeout, armed only when a write would block.
#[test]
fn buyer_calls_and_server_reads_set_no_may_socket_timeout() {
    let client = [
        "set_read_timeout(",
        "set_write_timeout(",
        "connect_timeout(",
    ];
    let bad = offending_lines(
        |name| !name.starts_with("src/http/client") && !name.starts_with("src/http/server"),
        |_, _, line| client.iter().any(|f| line.contains(f)),
    );
    assert!(
        bad.is_empty(),
        "may socket timeouts on the buyer call path:\n{}",
        bad.join("\n")
    );
}

/// Buyer integrations are pure functions (bytes in, bytes out): nothing
/// under `src/buyer/` names a module or type that does I/O.
#[test]
fn buyer_integrations_do_no_io() {
    let io = [
        "crate::http",
        "crate::store",
        "crate::exchange",
        "std::net",
        "std::fs",
        "may::",
    ];
    let bad = offending_lines(
        |name| !name.starts_with("src/buyer/"),
        |_, _, line| io.iter().any(|m| line.contains(m)),
    );
    assert!(
        bad.is_empty(),
        "I/O in a buyer integration:\n{}",
        bad.join("\n")
    );
}

/// Per-lead metrics and log events leave the exchange through
/// `exchange::report` alone, the one place the test-traffic rule (contract
/// §4) is applied: nowhere else names an auction, post or per-buyer series,
/// the business statistics or a per-lead event, and nowhere else is a
/// metric gated on a `.test` flag.
#[test]
fn only_report_gates_metrics_on_test_traffic() {
    let home = |name: &str| {
        name == "src/exchange/report.rs"
            || name.starts_with("src/metrics/")
            || name == "src/logging.rs"
    };
    let bad = offending_lines(home, report_violation);
    assert!(
        bad.is_empty(),
        "per-lead metrics or test gating outside exchange::report:\n{}",
        bad.join("\n")
    );
}

/// A per-lead emission, or a `.test` check with a metric within the three
/// lines after it.
fn report_violation(lines: &[&str], n: usize, line: &str) -> bool {
    let emits = [
        ".live().",
        "stats.auction(",
        "stats.post(",
        "global().auction(",
        ".post_outcome(",
        "metrics.ping(",
        "metrics.post(",
        "events::auction(",
        "events::post(",
    ];
    if emits.iter().any(|e| line.contains(e)) {
        return true;
    }
    let gates = line.contains(".test") && (line.contains("if ") || line.contains(".then"));
    gates
        && lines[n.min(lines.len())..(n + 3).min(lines.len())]
            .iter()
            .any(|l| l.contains("metrics"))
}

/// The report guard catches the shape it replaced.
#[test]
fn the_report_guard_sees_test_gated_metrics() {
    let old = [
        "fn f() {",
        "    if !ping.test {",
        "        brt.metrics.ping(r, us);",
        "    }",
        "}",
    ];
    assert!(report_violation(&old, 2, old[1]), "a test-gated metric");
    assert!(report_violation(&old, 3, old[2]), "a per-buyer series");
    let gated = [
        "    if !rec.test {",
        "        crate::metrics::global().post_outcome(o, us);",
    ];
    assert!(report_violation(&gated, 1, gated[0]));
    let caps = [
        "    let counter = (!ping.test).then(|| &b.cap);",
        "    reserve(counter);",
    ];
    assert!(!report_violation(&caps, 1, caps[0]), "caps are not metrics");
}

/// `records` alone turns a stored record into bytes and back: no other
/// production line calls serde_json's (de)serialisers (JSON answers and
/// buyer bodies are written by `json`, requests read by `wire`/`lead`
/// through simd-json). Buyer formats (`src/buyer/`) may check that a
/// rendered buyer body parses as JSON: that is a buyer's document, never a
/// record.
#[test]
fn only_records_encode_records() {
    let home = |name: &str| name == "src/records.rs" || name.starts_with("src/buyer/");
    let bad = offending_lines(home, encodes_a_record);
    assert!(
        bad.is_empty(),
        "records encoded or decoded outside records (use records::encode_*/decode_*):\n{}",
        bad.join("\n")
    );
}

fn encodes_a_record(_: &[&str], _: usize, line: &str) -> bool {
    [
        "serde_json::to_vec",
        "serde_json::from_slice",
        "serde_json::to_string",
        "serde_json::from_str",
    ]
    .iter()
    .any(|f| line.contains(f))
}

/// The records guard catches the lines it replaced (api::ping, api::post,
/// exchange::sale, api::admin before the codec moved into records).
#[test]
fn the_records_guard_sees_the_old_encoders() {
    for old in [
        "        serde_json::to_vec(&*ping).expect(\"record serialises\"),",
        "        let ping: PingRecord = serde_json::from_slice(&bytes).map_err(|e| {",
        "    let calls = serde_json::to_vec(&ping.calls).expect(\"records serialise\");",
    ] {
        assert!(encodes_a_record(&[], 1, old), "{old}");
    }
    assert!(!encodes_a_record(
        &[],
        1,
        "    records::encode_ping(&ping),"
    ));
}

/// No rewrite of a lead record loses another (`exchange::claims`): every
/// production `encode_lead(` stands in a function that holds the lead's
/// claim — it calls `claim_lead(` / `sweep_claim(` / `leads.claim(`, or is
/// handed a `&Claim<String>` as proof. Behaviour: `it::claims`.
#[test]
fn lead_records_are_written_under_their_claim() {
    let bad = offending_lines(|name| name == "src/records.rs", unclaimed_lead_write);
    assert!(
        bad.is_empty(),
        "a lead record written without the lead's claim (exchange::claims):\n{}",
        bad.join("\n")
    );
}

fn unclaimed_lead_write(lines: &[&str], n: usize, line: &str) -> bool {
    if !line.contains("encode_lead(") {
        return false;
    }
    let is_fn = |l: &&str| {
        let t = l.trim_start();
        ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "]
            .iter()
            .any(|p| t.starts_with(p))
    };
    let start = lines[..n].iter().rposition(is_fn).unwrap_or(0);
    let body = lines[start..n].join("\n");
    let holds = [
        "claim_lead(",
        "sweep_claim(",
        "leads.claim(",
        "Claim<String>",
    ];
    !holds.iter().any(|h| body.contains(h))
}

/// The claim guard sees a bare read-modify-write, and lets a claimed one by.
#[test]
fn the_claim_guard_sees_an_unclaimed_lead_write() {
    let bare = [
        "    fn lead(&self, key: &[u8], value: &[u8], batch: &mut Batch) -> Verdict {",
        "        let mut rec = records::decode_lead(value)?;",
        "        batch.insert(Tree::Leads, key.to_vec(), records::encode_lead(&rec));",
    ];
    assert!(unclaimed_lead_write(&bare, 3, bare[2]));
    let claimed = [
        "    pub fn return_lead(&self, lead_id: &str) -> Result<LeadRecord, Refusal> {",
        "        let _lead = self.claim_lead(lead_id).ok_or(Refusal::ReturnInProgress)?;",
        "            records::encode_lead(&rec),",
    ];
    assert!(!unclaimed_lead_write(&claimed, 3, claimed[2]));
    let earlier_fn = [
        "fn other() { let _c = ex.claim_lead(id); }",
        "fn rewrite(rec: &LeadRecord) -> Vec<u8> {",
        "    records::encode_lead(rec)",
    ];
    assert!(unclaimed_lead_write(&earlier_fn, 3, earlier_fn[2]));
}

/// Runtime buyers are one list: each `exchange::BuyerRt` carries its
/// config (`cfg`), and `Runtime::build` moves `config.buyers` into it, so
/// nothing indexes a second, parallel vector.
#[test]
fn runtime_buyers_are_one_list() {
    let bad = offending_lines(|name| name.starts_with("src/config/"), names_config_buyers);
    assert!(
        bad.is_empty(),
        "config.buyers is empty in a runtime; use rt.buyers[i].cfg:\n{}",
        bad.join("\n")
    );
}

fn names_config_buyers(_: &[&str], _: usize, line: &str) -> bool {
    line.contains("config.buyers") && !line.contains("std::mem::take(&mut config.buyers)")
}

#[test]
fn the_buyer_list_guard_sees_a_parallel_index() {
    assert!(names_config_buyers(
        &[],
        1,
        "    let buyer = &rt.config.buyers[i];"
    ));
    assert!(!names_config_buyers(
        &[],
        1,
        "    let buyer = &rt.buyers[i].cfg;"
    ));
}

/// Contract §9: no buyer-supplied pattern can take a worker's memory or
/// time. Every regex is built by `buyer::spec::Source::regex` with size
/// limits (`RegexBuilder::size_limit`), never `Regex::new`.
#[test]
fn every_regex_is_built_with_size_limits() {
    let bad = offending_lines(
        |_| false,
        |_, _, line| line.contains("Regex::new(") || line.contains("regex::Regex"),
    );
    assert!(
        bad.is_empty(),
        "a regex without size limits:\n{}",
        bad.join("\n")
    );
}

/// The routing core (contract §10) is pure and lock-free: nothing under
/// `src/routing/` names a module that does I/O, a lock, or a clock — time
/// comes in as `now_ms` from the caller, so every rule is tested with plain
/// values and nothing on the request path can wait on it.
#[test]
fn the_routing_core_does_no_io_and_takes_no_lock() {
    let banned = [
        "crate::http",
        "crate::store",
        "crate::exchange",
        "crate::sync",
        "crate::clock",
        "crate::ids",
        "std::net",
        "std::fs",
        "std::thread::sleep",
        "may::",
        "Mutex",
        "RwLock",
        "Instant::now",
        "SystemTime",
        "Zoned::now",
        "Timestamp::now",
    ];
    let bad = offending_lines(
        |name| !name.starts_with("src/routing/"),
        |_, _, line| banned.iter().any(|m| line.contains(m)),
    );
    assert!(
        bad.is_empty(),
        "I/O, a lock or a clock in the routing core:\n{}",
        bad.join("\n")
    );
}

/// The security building blocks are pure (ARCHITECTURE.md, "Security and
/// compliance"): nothing under `src/privacy/` or `src/suppress/` does I/O,
/// except the list loader (`suppress/load.rs`), which reads its file.
#[test]
fn privacy_and_suppression_blocks_do_no_io() {
    let io = [
        "crate::http",
        "crate::store",
        "crate::exchange",
        "crate::api",
        "std::net",
        "std::fs",
        "may::",
    ];
    let bad = offending_lines(
        |name| {
            !(name.starts_with("src/privacy/") || name.starts_with("src/suppress/"))
                || name == "src/suppress/load.rs"
        },
        |_, _, line| io.iter().any(|m| line.contains(m)),
    );
    assert!(
        bad.is_empty(),
        "I/O in a security building block:\n{}",
        bad.join("\n")
    );
}

/// Contract §13: a sandbox publisher never reaches a configured buyer.
/// Each stage that calls buyers picks its runtime with
/// `Runtime::serving(publisher)` before it calls any, and only stages call
/// the auction or the sale (`it::sandbox` checks the behaviour).
#[test]
fn every_buyer_calling_stage_picks_the_publishers_runtime() {
    let stages = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/exchange/stages.rs"
    ))
    .unwrap();
    let bad = serving_violations(&stages);
    assert!(
        bad.is_empty(),
        "stages calling buyers before Runtime::serving: {bad:?}"
    );
    let elsewhere = offending_lines(
        |name| name == "src/exchange/stages.rs" || name == "src/exchange/sale.rs",
        |_, _, line| line.contains("sale::run(") || line.contains(".auction(rt"),
    );
    assert!(
        elsewhere.is_empty(),
        "buyers called outside the stages:\n{}",
        elsewhere.join("\n")
    );
}

/// The `pub fn`s of `text` that call the auction or the sale without a
/// `.serving(publisher)` before.
fn serving_violations(text: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for item in text.split("\n    pub fn ").skip(1) {
        let body = item.split("\n    }\n").next().unwrap_or("");
        let name = body.split('(').next().unwrap_or("").to_string();
        let first_call = [".auction(rt", "sale::run("]
            .iter()
            .filter_map(|c| body.find(c))
            .min();
        let serving = body.find(".serving(publisher)");
        if let Some(call) = first_call {
            if serving.is_none_or(|s| s > call) {
                bad.push(name);
            }
        }
    }
    bad
}

#[test]
fn the_serving_guard_sees_a_stage_without_it() {
    let ok = "\n    pub fn ping(\n        let rt = rt.serving(publisher)?;\n        self.auction(rt, &input)\n    }\n";
    assert!(serving_violations(ok).is_empty());
    let bad = "\n    pub fn post(\n        sale::run(self, rt, &input);\n        rt.serving(publisher)\n    }\n";
    assert_eq!(serving_violations(bad), ["post"]);
}

/// Retention and re-seal batches are unwaited writes (a sweep never holds
/// the writer's flush for itself, nor waits behind posts' flushes per
/// batch; a batch holding lead claims waits only for its apply,
/// `Store::write_applied`), and no request path calls a sweep: only the daemon starts them
/// (`retention::spawn`, `resume_reseal`) and the admin API starts a
/// re-seal job, which runs on its own thread.
#[test]
fn sweeps_write_unwaited_and_only_the_daemon_and_admin_start_them() {
    let mut bad = Vec::new();
    for (name, text) in sources() {
        let sweep = name == "src/exchange/retention.rs" || name == "src/exchange/reseal.rs";
        for (n, line) in production_lines(&text) {
            if sweep && line.contains("write_durable(") {
                bad.push(format!("{name}:{n}: a sweep waits for a flush per batch"));
            }
            let starts = ["sweep_retention(", "retention::spawn(", "start_reseal("];
            let allowed = sweep || name == "src/daemon.rs" || name == "src/api/admin.rs";
            if !allowed && !is_comment(line) && starts.iter().any(|s| line.contains(s)) {
                bad.push(format!(
                    "{name}:{n}: starts a sweep outside the daemon or admin API"
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Every XML document leadx reads — a buyer's answer, a publisher's request
/// (contract §11) — goes through `crate::xml::read`, the one loop that
/// refuses DOCTYPEs (so every entity declaration), bounds depth and expands
/// nothing but the predefined entities: no other file builds a quick-xml
/// reader that could skip those rules.
#[test]
fn only_the_shared_xml_loop_reads_xml() {
    let bad = offending_lines(
        |name| name == "src/xml.rs",
        |_, _, line| line.contains("Reader::from") || line.contains("quick_xml::Reader"),
    );
    assert!(
        bad.is_empty(),
        "an XML reader outside crate::xml::read:\n{}",
        bad.join("\n")
    );
}
