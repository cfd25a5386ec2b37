//! Buyer specs (contract §9): the CPU a templated buyer adds to a call —
//! rendering its request and reading its answer — per format, next to the
//! native protocol's. Inputs are the fixture specs of
//! `tests/fixtures/buyers/` plus a 30-field body, so runs compare.
//! Results: docs/performance.md, "Buyer specs".

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use leadx::buyer::native::{parse_bid_answer, Native};
use leadx::buyer::spec::{Request, SpecIntegration, Vars};
use leadx::buyer::{Integration, PingCtx, PostCtx};
use leadx::wire;

const BASE: &str = r#"
[server]
listen = "127.0.0.1:0"
data_dir = "/tmp/leadx-bench"
[[vertical]]
id = "auto_insurance"
[[vertical]]
id = "mortgage"
"#;

const POST: &[u8] = include_bytes!("../tests/fixtures/buyers/auto_json_post_accepted/lead.json");
const PING: &[u8] = include_bytes!("../tests/fixtures/buyers/auto_json_ping_bid/lead.json");

/// A 30-field post body, every value through a variable and most through
/// a filter: the issue's "30-field body" goal.
const THIRTY: &str = r#"
[[buyer]]
id = "thirty"
verticals = ["auto_insurance"]
fixed_price = 10
[buyer.post]
url = "http://127.0.0.1:1/post"
format = "json"
body = """{"a1": {{ lead.zip }}, "a2": {{ lead.state }}, "a3": {{ lead.city | upper }}, "a4": {{ lead.age }},
"a5": {{ lead.credit | lookup("c") }}, "a6": {{ lead.homeowner }}, "a7": {{ lead.sub_id }}, "a8": {{ lead.first_name }},
"a9": {{ lead.last_name }}, "a10": {{ lead.phone | phone("digits") }}, "a11": {{ lead.email | lower }}, "a12": {{ lead.address }},
"a13": {{ lead.attributes.vehicle_year }}, "a14": {{ lead.attributes.vehicle_make }}, "a15": {{ lead.attributes.insured }},
"a16": {{ consent.text }}, "a17": {{ consent.captured_at | date("%m/%d/%Y") }}, "a18": {{ consent.ip }}, "a19": {{ consent.user_agent }},
"a20": {{ consent.page_url }}, "a21": {{ consent.trustedform_cert_url }}, "a22": {{ consent.jornaya_leadid | default("none") }},
"a23": {{ ping_id }}, "a24": {{ vertical }}, "a25": {{ publisher }}, "a26": {{ test }}, "a27": {{ ref }}, "a28": {{ price }},
"a29": {{ lead.income | default(0) }}, "a30": {{ lead.phone | phone("dashed") }}}"""
[buyer.post.response]
accepted = { path = "/result", equals = ["success"] }
[buyer.maps]
c = { excellent = "A", good = "B", fair = "C", poor = "D" }
"#;

fn spec(buyer_toml: &str) -> SpecIntegration {
    let secrets = |_: &str| Some("secret-key".to_string());
    let config = leadx::config::parse(&format!("{BASE}{buyer_toml}"), &secrets).unwrap();
    SpecIntegration::for_buyer(&config.buyers[0]).unwrap()
}

fn bench(c: &mut Criterion) {
    let ping = wire::parse_ping(&mut PING.to_vec()).unwrap();
    let post = wire::parse_post(&mut POST.to_vec()).unwrap();
    let ping_ctx = PingCtx {
        ping_id: "ping-42",
        vertical: "auto_insurance",
        lead: &ping.lead,
        test: false,
    };
    let post_ctx = PostCtx {
        ping_id: "ping-42",
        buyer_ref: Some("tok-1"),
        vertical: "auto_insurance",
        lead: &post.lead,
        consent: post.consent.as_ref(),
        price: 1475,
        test: false,
    };
    let ping_vars = Vars::ping(&ping_ctx, "pub1", 1_796_644_800_000);
    let post_vars = Vars::post(&post_ctx, "pub1", 1_796_644_800_000);

    let mut out = Vec::with_capacity(2048);
    c.bench_function("render: native ping (baseline)", |b| {
        b.iter(|| {
            out.clear();
            Native.build_ping(black_box(&ping_ctx), &mut out)
        })
    });
    let mut req = Request::default();
    for (name, file) in [
        (
            "json (nested auto)",
            include_str!("../tests/fixtures/buyers/auto_json_ping_bid/buyer.toml"),
        ),
        (
            "xml",
            include_str!("../tests/fixtures/buyers/xml_declined_with_message/buyer.toml"),
        ),
        (
            "soap",
            include_str!("../tests/fixtures/buyers/soap_fault_500/buyer.toml"),
        ),
        (
            "GET query",
            include_str!("../tests/fixtures/buyers/get_ping_lead_in_query/buyer.toml"),
        ),
    ] {
        let s = spec(file);
        c.bench_function(&format!("render: spec ping {name}"), |b| {
            b.iter(|| s.render_ping(black_box(&ping_vars), &mut req).unwrap())
        });
    }
    let thirty = spec(THIRTY);
    c.bench_function("render: spec post json, 30 fields", |b| {
        b.iter(|| thirty.render_post(black_box(&post_vars), &mut req).unwrap())
    });
    let form = spec(include_str!(
        "../tests/fixtures/buyers/mortgage_form_post_ok/buyer.toml"
    ));
    c.bench_function("render: spec post form, 11 fields", |b| {
        b.iter(|| form.render_post(black_box(&post_vars), &mut req).unwrap())
    });

    const NATIVE_BID: &[u8] = br#"{"status":"bid","price":12.50,"ref":"b1-7781"}"#;
    c.bench_function("read: native bid (baseline)", |b| {
        b.iter_batched_ref(
            || NATIVE_BID.to_vec(),
            |body| parse_bid_answer(body),
            BatchSize::SmallInput,
        )
    });
    let gz_bid = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(br#"{"status": "bid", "price": 8.05}"#)
            .unwrap();
        gz.finish().unwrap()
    };
    let answers: [(&str, &str, &[u8], Option<&str>); 4] = [
        (
            "json pointer",
            include_str!("../tests/fixtures/buyers/auto_json_ping_bid/buyer.toml"),
            br#"{"result": {"status": "Accepted", "bid": {"amount": 14.759, "token": "abc-123"}, "message": null}}"#,
            None,
        ),
        (
            "xml path + attributes",
            include_str!("../tests/fixtures/buyers/xml_declined_with_message/buyer.toml"),
            br#"<?xml version="1.0"?><PingResponse result="Approved"><Bid amount="9.25" token="T-77"/><Message/></PingResponse>"#,
            None,
        ),
        (
            "soap envelope",
            include_str!("../tests/fixtures/buyers/soap_fault_500/buyer.toml"),
            br#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><PingResponse xmlns="http://soapins.example/ws/"><PingResult ConfirmationId="C-5512"><Status>Success</Status><Payout>11.40</Payout></PingResult></PingResponse></s:Body></s:Envelope>"#,
            None,
        ),
        (
            "json, gzip",
            include_str!("../tests/fixtures/buyers/gzip_answer/buyer.toml"),
            &gz_bid,
            Some("gzip"),
        ),
    ];
    for (name, file, body, enc) in answers {
        let s = spec(file);
        assert!(matches!(
            s.read_bid(200, enc, &mut body.to_vec()).answer,
            leadx::buyer::BidAnswer::Bid { .. }
        ));
        c.bench_function(&format!("read: spec bid {name}"), |b| {
            b.iter_batched_ref(
                || body.to_vec(),
                |body| s.read_bid(200, enc, body),
                BatchSize::SmallInput,
            )
        });
    }
    c.bench_function("read: spec post form regex", |b| {
        b.iter_batched_ref(
            || b"OK:LD99812\r\n".to_vec(),
            |body| form.read_post(200, None, body),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
