//! Parse + encode cost of one typical publisher request through the HTTP
//! server's codec, without sockets: the per-request CPU floor of the server.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use leadx::http::server::{decode, decode_resume, encode, Decoded, Limits, Progress, Response};

/// A ~600-byte `POST /v1/ping` as a publisher's HTTP client sends it.
fn ping_request() -> Vec<u8> {
    let body = br#"{"vertical":"auto_insurance","test":false,"floor":2.5,"lead":{"zip":"94107","state":"CA","city":"San Francisco","age":34,"income":85000,"credit":"good","homeowner":true,"sub_id":"campaign-42","attributes":{"vehicle_year":2019,"vehicle_make":"Toyota","insured":true},"captured_at":"2024-05-01T12:00:00Z"}}"#;
    let mut req = Vec::new();
    req.extend_from_slice(
        b"POST /v1/ping HTTP/1.1\r\nHost: exchange.example.com\r\nUser-Agent: pub-client/2.3\r\n",
    );
    req.extend_from_slice(b"Authorization: Bearer 0123456789abcdef0123456789abcdef\r\nContent-Type: application/json\r\n");
    req.extend_from_slice(b"Accept: application/json\r\nAccept-Encoding: gzip\r\nX-Request-Id: 7f1c2a9e-5b7d-4c55-9a0e-3f1d2c4b5a69\r\n");
    req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    req.extend_from_slice(body);
    req
}

fn bench_codec(c: &mut Criterion) {
    let mut input = ping_request();
    let lim = Limits {
        body_bytes_max: 64 * 1024,
        header_bytes_max: 16 * 1024,
        headers_max: 64,
    };
    let response = Response {
        status: 200,
        content_type: "application/json",
        headers: Vec::new(),
        body: br#"{"status":"bid","ping_id":"p_01HXYZABCDEF","price":9.6,"expires_at":"2024-05-01T12:02:00Z"}"#.to_vec(),
    };
    let mut out = Vec::with_capacity(1024);
    let mut group = c.benchmark_group("http_server");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function(format!("decode+encode {} B POST", input.len()), |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let Ok(Decoded::Complete(req)) = decode(black_box(&mut input), &lim, &mut headers)
            else {
                panic!("the fixture is a complete request");
            };
            black_box((req.method, req.path, req.headers.len(), req.body.len()));
            out.clear();
            encode(&response, req.keep_alive, req.http10, false, &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

/// A 15 KB head arriving a byte per read (slowloris, or a pathological
/// client): decoding every prefix afresh (what the server did before issue
/// #7 point 8) against resuming with `Progress` (what it does now).
fn bench_trickled_head(c: &mut Criterion) {
    let lim = Limits {
        body_bytes_max: 64 * 1024,
        header_bytes_max: 16 * 1024,
        headers_max: 64,
    };
    let mut input = b"GET /v1/leads HTTP/1.1\r\n".to_vec();
    for i in 0..10 {
        input.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "a".repeat(1_500)).as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    let mut buf = input.clone();
    let mut group = c.benchmark_group("http_server");
    group.sample_size(10);
    for resumed in [false, true] {
        let name = format!(
            "{} B head a byte per read, {}",
            input.len(),
            if resumed { "resumed" } else { "afresh" }
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut progress = Progress::default();
                for cut in 1..=buf.len() {
                    let mut headers = [httparse::EMPTY_HEADER; 64];
                    if !resumed {
                        progress = Progress::default();
                    }
                    let done = matches!(
                        decode_resume(&mut buf[..cut], &lim, &mut headers, &mut progress),
                        Ok(Decoded::Complete(_))
                    );
                    black_box(done);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_codec, bench_trickled_head);
criterion_main!(benches);
