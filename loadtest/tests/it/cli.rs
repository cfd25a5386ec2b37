//! The binary from the outside: exit codes and messages for bad input, the
//! buyer fleet's port line, and a whole bench against a stand-in leadx.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_leadx-loadtest");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unreachable_target_exits_1_with_a_clear_message() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = run(&[
        "run",
        "--target",
        &format!("http://127.0.0.1:{port}"),
        "--rate",
        "10",
        "--duration-s",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot connect to http://127.0.0.1:"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn non_loopback_target_is_refused_with_exit_2() {
    let o = run(&["run", "--target", "http://10.1.2.3:80", "--rate", "10"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("only targets 127.0.0.1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_rate_list_exits_2_naming_the_item() {
    let o = run(&["bench", "--rates", "10,,x", "--leadx-bin", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--rates \"10,,x\": item 2 is empty"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_or_dying_leadx_binary_fails_the_bench_clearly() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let o = run(&["bench", "--leadx-bin", "/nonexistent/leadx", "--out", dir]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("leadx binary not found at /nonexistent/leadx"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "bench",
        "--leadx-bin",
        "/bin/false",
        "--out",
        dir,
        "--ready-timeout-s",
        "5",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("exited (exit status: 1) before /readyz answered 200"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn buyer_fleet_prints_ports_serves_and_stops_when_stdin_closes() {
    let mut child = Command::new(BIN)
        .args([
            "buyers",
            "--count",
            "2",
            "--latency",
            "fixed:0",
            "--bid-rate",
            "1",
            "--until-stdin-closes",
            "--lifetime-s",
            "30",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let buyers = v["buyers"].as_array().unwrap();
    assert_eq!(buyers.len(), 2);
    let port = buyers[0]["port"].as_u64().unwrap();
    assert_eq!(
        buyers[0]["ping_url"],
        format!("http://127.0.0.1:{port}/ping")
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
    s.write_all(
        b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    assert!(answer.contains(r#""status":"bid""#), "{answer}");
    drop(child.stdin.take());
    let mut last = String::new();
    out.read_line(&mut last).unwrap();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["buyers"][0]["pings"], 1);
    assert!(v["cpu_us"].is_u64());
    assert!(child.wait().unwrap().success());
}

#[test]
fn bench_end_to_end_against_a_stand_in_leadx() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("leadx");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexec {BIN} fake-leadx \"$@\"\n"),
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&script)
        .status()
        .unwrap();
    let out = tmp.path().join("run");
    let o = run(&[
        "bench",
        "--leadx-bin",
        script.to_str().unwrap(),
        "--rates",
        "50,100",
        "--duration-s",
        "1",
        "--buyers",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--healthz-concurrency",
        "4",
        "--connections",
        "16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let names: Vec<&str> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ping-post@50",
            "ping-post@100",
            "direct@50",
            "direct@100",
            "healthz-c4"
        ]
    );
    let pp = &report["scenarios"][1];
    assert_eq!(pp["errors"], 0);
    assert!(pp["leadx"]["cpu_us_per_request"].as_f64().is_some());
    assert!(pp["leadx"]["rss_peak_kib"].as_u64().unwrap() > 0);
    assert_eq!(report["scenarios"][3]["outcomes"]["direct:sold"], 100);
    let config = std::fs::read_to_string(out.join("leadx.toml")).unwrap();
    assert_eq!(config.matches("[[buyer]]").count(), 3);
    assert!(std::fs::read_to_string(out.join("latency.svg"))
        .unwrap()
        .starts_with("<svg"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("p99.9"));
}

#[test]
fn overload_refuses_a_bad_mix_and_names_a_missing_leadx_binary() {
    let o = run(&[
        "overload",
        "--mix",
        "healthz",
        "--leadx-bin",
        "/nonexistent/leadx",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--mix \"healthz\": expected ping, ping-post or direct"),
        "{}",
        stderr(&o)
    );
    let out = tempfile::tempdir().unwrap();
    let o = run(&[
        "overload",
        "--leadx-bin",
        "/nonexistent/leadx",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("leadx binary not found at /nonexistent/leadx"),
        "{}",
        stderr(&o)
    );
}
