//! Contract §12 `admin.listen`: with it, the admin API, `/metrics` and the
//! dashboard answer only on the admin port, the publishers' port answers
//! them 404; health on both; without it, v1 (one port for everything).

use std::net::SocketAddr;
use std::sync::Arc;

use leadx::clock::ManualClock;

use crate::privacy::start_with_text;
use crate::support::*;

fn start_apart() -> (Leadx, SocketAddr) {
    let l = start_with_text(
        |text| text.replacen("[admin]\n", "[admin]\nlisten = \"127.0.0.1:0\"\n", 1),
        "",
        Arc::new(ManualClock::at(1_800_000_000_000)),
    );
    let admin = l
        .running
        .as_ref()
        .unwrap()
        .admin_addr()
        .expect("admin listener");
    assert_ne!(admin, l.addr);
    (l, admin)
}

#[test]
fn operator_paths_answer_only_on_the_admin_port_and_health_on_both() {
    let (l, admin) = start_apart();
    for path in [
        "/metrics",
        "/v1/admin/stats",
        "/v1/admin/transactions",
        "/dashboard",
        "/dashboard.js",
        "/dashboard.css",
        "/v1/admin/dashboard",
        "/v1/admin/reseal",
    ] {
        let r = get(l.addr, path, ADMIN);
        assert_eq!(r.status, 404, "{path} on the publishers' port");
        assert_eq!(
            r.code(),
            "not_found",
            "{path}: the same JSON error as any unknown path"
        );
    }
    let r = request(
        l.addr,
        "POST",
        "/v1/admin/reload",
        &[("Authorization", &format!("Bearer {ADMIN}"))],
        b"",
    );
    assert_eq!(r.status, 404);
    assert_eq!(get(admin, "/metrics", "").status, 200);
    assert_eq!(get(admin, "/v1/admin/stats", ADMIN).status, 200);
    let r = get(admin, "/v1/admin/stats", "wrong");
    assert_eq!(r.status, 401, "the admin port still needs the token");
    assert_eq!(get(admin, "/v1/admin/stats", KEY).status, 401);
    reload_ok(admin);
    assert_eq!(get(admin, "/dashboard", "").status, 200);
    assert_eq!(get(admin, "/v1/admin/dashboard", ADMIN).status, 200);
    for addr in [l.addr, admin] {
        assert_eq!(get(addr, "/healthz", "").status, 200);
        assert_eq!(get(addr, "/readyz", "").status, 200);
        // The API's description is for both audiences.
        assert_eq!(get(addr, "/openapi.json", "").status, 200);
    }
    // Publisher calls are not on the admin port.
    let r = post_json(
        admin,
        "/v1/ping",
        KEY,
        &serde_json::json!({"vertical": "auto", "lead": ping_lead()}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "not_found");
    assert!(
        ping(&l)["ping_id"].is_string(),
        "publishers still ping on theirs"
    );
}

#[test]
fn without_admin_listen_one_port_answers_everything_as_in_v1() {
    let l = start("", "", "");
    assert!(l.running.as_ref().unwrap().admin_addr().is_none());
    assert_eq!(get(l.addr, "/metrics", "").status, 200);
    assert_eq!(get(l.addr, "/v1/admin/stats", ADMIN).status, 200);
    reload_ok(l.addr);
}

#[test]
fn an_admin_listen_change_is_applied_at_restart_and_the_reload_says_so() {
    let (l, admin) = start_apart();
    let text = std::fs::read_to_string(&l.config_path).unwrap();
    std::fs::write(
        &l.config_path,
        text.replacen(
            "listen = \"127.0.0.1:0\"\n",
            "listen = \"127.0.0.1:1\"\n",
            2,
        )
        .replacen(
            "[server]\nlisten = \"127.0.0.1:1\"",
            "[server]\nlisten = \"127.0.0.1:0\"",
            1,
        ),
    )
    .unwrap();
    let r = request(
        admin,
        "POST",
        "/v1/admin/reload",
        &[("Authorization", &format!("Bearer {ADMIN}"))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["restart_needed"],
        serde_json::json!(["admin.listen"])
    );
    assert_eq!(
        get(admin, "/metrics", "").status,
        200,
        "the running listener stays"
    );
}

#[test]
fn a_bad_or_clashing_admin_listen_is_a_config_error_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_toml(&dir.path().join("data"), "", "");
    let bad = base.replacen("[admin]\n", "[admin]\nlisten = \"nowhere\"\n", 1);
    let errors = leadx::config::parse(&bad, &|_| None).unwrap_err();
    assert!(errors.iter().any(|e| e.key == "admin.listen"), "{errors:?}");
    let same = base
        .replacen("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:8080\"", 1)
        .replacen("[admin]\n", "[admin]\nlisten = \"0.0.0.0:8080\"\n", 1);
    let errors = leadx::config::parse(&same, &|_| None).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.key == "admin.listen" && e.message.contains("differ")),
        "{errors:?}"
    );
}
