//! Parse + validate cost of request bodies and buyer answers — the work
//! every ping and post does before anything else. Inputs are fixed, so runs
//! compare.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use leadx::lead::Lead;
use leadx::wire;

const POST: &[u8] = br#"{"ping_id":"p_01HXYZ3K9Q7W2E4R6T8Y0U1I3O","lead":{"zip":"90210","state":"CA","city":"Beverly Hills","age":34,"income":85000,"credit":"good","homeowner":true,"sub_id":"aff-17","attributes":{"vehicle_year":2019,"vehicle_make":"Toyota","coverage":"full","drivers":2,"sr22":false},"captured_at":"2024-05-01T12:00:00Z","first_name":"Ann","last_name":"Lee","phone":"(555) 234-5678","email":"ann.lee@example.com","address":"1 Main St"},"consent":{"text":"By clicking Get Quotes I agree to be contacted by up to 5 insurance partners at the number provided, including by autodialer and prerecorded message. Consent is not a condition of purchase.","captured_at":"2024-05-01T11:59:41Z","ip":"203.0.113.9","user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36","page_url":"https://quotes.example.com/auto?utm_source=aff-17","trustedform_cert_url":"https://cert.trustedform.com/0123456789abcdef0123456789abcdef01234567"}}"#;

const PING: &[u8] = br#"{"vertical":"auto_insurance","lead":{"zip":"90210","state":"CA","city":"Beverly Hills","age":34,"income":85000,"credit":"good","homeowner":true,"attributes":{"vehicle_year":2019,"vehicle_make":"Toyota","coverage":"full"}},"test":false,"floor":2.50}"#;

/// `PING` as a publisher's XML (contract §11): the same request, element
/// for key.
const PING_XML: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<request><vertical>auto_insurance</vertical><lead><zip>90210</zip><state>CA</state><city>Beverly Hills</city><age>34</age><income>85000</income><credit>good</credit><homeowner>true</homeowner><attributes><vehicle_year>2019</vehicle_year><vehicle_make>Toyota</vehicle_make><coverage>full</coverage></attributes></lead><test>false</test><floor>2.50</floor></request>"#;

const BID: &[u8] = br#"{"status":"bid","price":12.50,"ref":"b1-7781"}"#;

fn bench(c: &mut Criterion) {
    c.bench_function("parse_post (typical, 1.2 KB)", |b| {
        b.iter_batched_ref(
            || POST.to_vec(),
            |body| wire::parse_post(body).unwrap(),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("parse_ping (typical)", |b| {
        b.iter_batched_ref(
            || PING.to_vec(),
            |body| wire::parse_ping(body).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let (json, xml) = (
        wire::parse_ping(&mut PING.to_vec()).unwrap(),
        wire::parse_ping_as(&mut PING_XML.to_vec(), wire::Format::Xml).unwrap(),
    );
    assert_eq!(json, xml, "the XML twin is the same ping");
    c.bench_function("parse_ping XML (typical, same ping)", |b| {
        b.iter_batched_ref(
            || PING_XML.to_vec(),
            |body| wire::parse_ping_as(body, wire::Format::Xml).unwrap(),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("parse_bid_answer", |b| {
        b.iter_batched_ref(
            || BID.to_vec(),
            |body| leadx::buyer::native::parse_bid_answer(body),
            BatchSize::SmallInput,
        )
    });
    let lead: Lead = wire::parse_post(&mut POST.to_vec()).unwrap().lead;
    let mut out = Vec::with_capacity(1024);
    c.bench_function("Lead::write_json (with PII)", |b| {
        b.iter(|| {
            out.clear();
            lead.write_json(&mut out, true);
            out.len()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
