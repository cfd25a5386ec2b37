//! Contract §12: a suppressed post is *recorded* — a lead record with
//! status `suppressed` and its list, PII sealed, no buyer called, not a
//! sale — and a repeated post answers the same 422.

use std::sync::Arc;

use leadx::clock::ManualClock;
use leadx::store::Tree;
use serde_json::json;

use crate::privacy::{admin_lead, start_with_text, suppressed};
use crate::support::*;

#[test]
fn a_suppressed_post_leaves_a_record_and_a_repeat_gets_the_same_422() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let lists = tempfile::tempdir().unwrap();
    let list = lists.path().join("dnc.txt");
    std::fs::write(&list, "5552345678\n").unwrap();
    let extra = format!(
        "\n[[suppression]]\nid = \"dnc\"\npath = \"{}\"\nverticals = [\"auto\"]\n\n[privacy]\ndata_key = \"{}\"\n",
        list.display(),
        "5a".repeat(32)
    );
    let clock = Arc::new(ManualClock::new());
    let l = start_with_text(|t| t + &extra, &buyer_toml("a", &a, ""), clock);

    // Ping and post: refused, recorded, and a repeat is refused the same.
    let p = ping(&l)["ping_id"].as_str().unwrap().to_string();
    suppressed(&post(&l, &p, "+15552345678"), "post");
    suppressed(&post(&l, &p, "+15552345678"), "the same post again");
    assert_eq!(a.buyer.posts(), 0, "no buyer saw it");
    let rec = l.ex().ping_record(&p).unwrap().expect("ping kept");
    let lead_id = rec.lead_id.expect("the ping links its lead");
    let view = admin_lead(&l, &lead_id);
    assert_eq!(view["status"], "suppressed", "{view}");
    assert_eq!(view["suppression_list"], "dnc", "{view}");
    assert_eq!(view["data"]["lead"]["phone"], "+15552345678", "{view}");
    assert!(view.get("price").is_none_or(|p| p.is_null()), "{view}");
    let stored = l.ex().lead(&lead_id).unwrap().unwrap();
    assert!(
        stored.pii_json.starts_with("sealed:"),
        "PII sealed like any lead"
    );
    let tx = get(l.addr, "/v1/admin/transactions", ADMIN).json();
    let row = tx["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["ping_id"] == p.as_str())
        .cloned()
        .expect("in transactions");
    assert_eq!(
        (&row["post_status"], &row["suppression_list"]),
        (&"suppressed".into(), &"dnc".into()),
        "{row}"
    );

    // Direct post with an idempotency key: recorded under the key.
    let auth = format!("Bearer {KEY}");
    let body = json!({"vertical": "auto", "lead": full_lead("555-234-5678", "ann@example.com"), "consent": consent()});
    let send = || {
        request(
            l.addr,
            "POST",
            "/v1/leads",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "k-suppressed-1"),
            ],
            body.to_string().as_bytes(),
        )
    };
    suppressed(&send(), "direct");
    let key = leadx::records::keys::idempotency("pub1", "k-suppressed-1");
    let idem = l.ex().store().get(Tree::Idempotency, &key).unwrap();
    assert!(idem.is_some(), "the key names the suppressed lead");
    suppressed(&send(), "the same direct post again");
    assert_eq!(a.buyer.posts(), 0);

    // Never a sale.
    let sales = l
        .ex()
        .store()
        .scan_prefix(Tree::Sales, b"", usize::MAX)
        .unwrap();
    assert!(sales.is_empty(), "{sales:?}");
}
