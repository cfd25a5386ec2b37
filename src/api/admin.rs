//! The admin API (contract §7), behind the admin bearer token: lead lookup
//! with PII, recent transactions without, reload, stats, and the
//! reconciliation export.

use super::{bearer_token, json, rfc3339, Api, ApiError};
use crate::exchange::{caps, Exchange};
use crate::http::server::{Head, Request, Response};
use crate::json::Answer;
use crate::limits;
use crate::metrics::{LatencySummary, PartyStats};
use crate::records::{self, LeadRecord, PingRecord};

/// The head check of an admin request (`Api::screen`): the admin token,
/// then, for a request with a body, the route (404 / 405 first) and
/// whether it takes a body at all — only `POST` and `DELETE
/// /v1/admin/suppressions` do, as JSON (`routes::ROUTES`).
pub fn screen(api: &Api, head: &Head<'_>) -> Result<(), ApiError> {
    check_token(api, head)?;
    if head.has_body() {
        let (entry, _) = super::routes::find(head.method, head.path)?;
        if !entry.takes_body {
            return Err(super::no_body_here());
        }
        return super::require_json_type(head.header("content-type"));
    }
    Ok(())
}

/// 401 unless `head` carries the admin token; a refusal is a failed
/// authentication, counted and logged with the client address.
fn check_token(api: &Api, head: &Head<'_>) -> Result<(), ApiError> {
    let rt = api.ex.runtime();
    let ok = match (
        head.header("authorization").and_then(bearer_token),
        rt.config.admin.token_sha256,
    ) {
        (Some(token), Some(hash)) => crate::config::verify_key(token.as_bytes(), &hash),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    api.caller(&rt, head).failed("admin_token");
    Err(ApiError::unauthorized())
}

pub fn route(api: &Api, req: &mut Request<'_>) -> Result<Response, ApiError> {
    use super::routes::Route;
    check_token(api, &req.head())?;
    let (entry, param) = super::routes::find(req.method, req.path)?;
    match entry.route {
        Route::AdminStats => Ok(json(200, stats(&api.ex))),
        Route::AdminDashboard => Ok(json(200, super::dashboard::data(&api.ex)?)),
        Route::AdminReload => reload(api),
        Route::AdminResealStart => reseal(api),
        Route::AdminResealStatus => Ok(json(200, reseal_status(&api.ex))),
        Route::AdminSuppressionsAdd | Route::AdminSuppressionsRemove => suppressions(api, req),
        Route::AdminTransactions => transactions(&api.ex, req.query),
        Route::AdminExport => export(&api.ex, req.query),
        Route::AdminLead => lead(api, param.unwrap_or_default()),
        Route::AdminReturn => return_lead(api, req, param.unwrap_or_default()),
        // Not an admin route: `Api::route` answers those.
        _ => Err(ApiError::not_found()),
    }
}

/// `POST /v1/admin/leads/{lead_id}/return` `{"reason": "…"}` (contract
/// §13): answers `{"lead_id","status":"returned","returned_at","reason",
/// "price","payout","buyer"}` once the return is durable; the same body for
/// a lead already returned. Refusals come from `Exchange::return_lead`.
fn return_lead(api: &Api, req: &mut Request<'_>, lead_id: &str) -> Result<Response, ApiError> {
    super::require_json(req)?;
    let reason = crate::wire::parse_return(req.body)?;
    if !crate::ids::looks_like_id(lead_id) {
        return Err(ApiError::not_found());
    }
    let rec = api.ex.return_lead(lead_id, &reason)?;
    let mut o = Answer::new()
        .str("lead_id", &rec.lead_id)
        .str("status", rec.status.as_str())
        .str(
            "returned_at",
            &rec.returned_ms.map(rfc3339).unwrap_or_default(),
        )
        .str("reason", rec.return_reason.as_deref().unwrap_or(""))
        .cents("price", rec.price)
        .cents("payout", rec.payout);
    if let Some(b) = &rec.buyer {
        o = o.str("buyer", b);
    }
    Ok(json(200, o.finish()))
}

fn lead(api: &Api, lead_id: &str) -> Result<Response, ApiError> {
    if !crate::ids::looks_like_id(lead_id) {
        return Err(ApiError::not_found());
    }
    let rec = api.ex.lead(lead_id)?.ok_or_else(ApiError::not_found)?;
    let ping = api.ex.ping_record(&rec.ping_id)?;
    let rt = api.ex.runtime();
    // Opened here, for this answer only; the record stays sealed.
    let pii = records::open_pii(rt.key_ring.as_ref(), &rec.lead_id, &rec.pii_json)
        .unwrap_or_else(|e| {
            log::error!(target: "leadx::privacy", "PII cannot be opened lead_id={} error=\"{e}\"", rec.lead_id);
            "null".to_string()
        });
    Ok(json(200, full_view(&rec, ping.as_ref(), &pii)))
}

/// Everything about a lead, PII (`pii`, in clear) included (the admin's
/// view): with its ping's calls (`ping_calls`, every buyer with its reason,
/// contract §10) when the ping record is there.
fn full_view(rec: &LeadRecord, ping: Option<&PingRecord>, pii: &str) -> Vec<u8> {
    let calls = records::calls_json(&rec.post_calls);
    let mut o = Answer::new()
        .str("lead_id", &rec.lead_id)
        .str("ping_id", &rec.ping_id)
        .str("publisher", &rec.publisher)
        .str("vertical", &rec.vertical)
        .str("status", rec.status.as_str())
        .cents("price", rec.price)
        .cents("payout", rec.payout)
        .str("created_at", &rfc3339(rec.created_ms))
        .raw("test", if rec.test { b"true" } else { b"false" });
    for (k, v) in [
        ("reason", &rec.reason),
        ("buyer", &rec.buyer),
        ("buyer_lead_id", &rec.buyer_lead_id),
    ] {
        if let Some(v) = v {
            o = o.str(k, v);
        }
    }
    if let Some(ms) = rec.sold_ms {
        o = o.str("sold_at", &rfc3339(ms));
    }
    // Retention erased the PII (`data` is then null); a suppressed lead
    // names its list.
    if let Some(ms) = rec.pii_erased_ms {
        o = o.str("pii_erased_at", &rfc3339(ms));
    }
    if let Some(list) = &rec.suppression_list {
        o = o.str("suppression_list", list);
    }
    if let Some(ms) = rec.returned_ms {
        o = o.str("returned_at", &rfc3339(ms));
    }
    if let Some(r) = &rec.return_reason {
        o = o.str("return_reason", r);
    }
    if let Some(ping) = ping {
        o = o.raw("ping_calls", &records::calls_json(&ping.calls));
    }
    o.raw("post_calls", &calls)
        .raw("data", pii.as_bytes())
        .finish()
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
    })
}

fn transactions(ex: &Exchange, query: &str) -> Result<Response, ApiError> {
    let limit = match query_param(query, "limit") {
        None => 50,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=limits::ADMIN_LIST_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::field(
                    400,
                    "bad_request",
                    "limit",
                    format!("limit must be 1 to {}", limits::ADMIN_LIST_MAX),
                )
            })?,
    };
    let rows = ex.transactions(limit)?;
    let mut out = b"{\"transactions\":[".to_vec();
    for (i, (ping, lead)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&transaction(ping, lead.as_ref()));
    }
    out.extend_from_slice(b"]}");
    Ok(json(200, out))
}

/// One ping and its post, with per-buyer results and timings, no PII.
pub(super) fn transaction(ping: &PingRecord, lead: Option<&LeadRecord>) -> Vec<u8> {
    let calls = records::calls_json(&ping.calls);
    let mut o = Answer::new()
        .str("ping_id", &ping.ping_id)
        .str("publisher", &ping.publisher)
        .str("vertical", &ping.vertical)
        .str("created_at", &rfc3339(ping.created_ms))
        .raw("test", if ping.test { b"true" } else { b"false" })
        .raw("direct", if ping.direct { b"true" } else { b"false" })
        .str(
            "ping_status",
            if ping.bids.is_empty() {
                "no_bid"
            } else {
                "bid"
            },
        )
        .cents("best_price", ping.bids.first().map(|b| b.price))
        .cents("best_payout", ping.bids.first().map(|b| b.payout))
        .raw("auction_us", ping.auction_us.to_string().as_bytes())
        .raw("ping_calls", &calls);
    if let Some(lead) = lead {
        let post_calls = records::calls_json(&lead.post_calls);
        o = o
            .str("lead_id", &lead.lead_id)
            .str("post_status", lead.status.as_str())
            .cents("price", lead.price)
            .cents("payout", lead.payout);
        if let Some(b) = &lead.buyer {
            o = o.str("buyer", b);
        }
        if let Some(list) = &lead.suppression_list {
            o = o.str("suppression_list", list);
        }
        o = o.raw("post_calls", &post_calls);
    }
    o.finish()
}

/// `GET /v1/admin/leads?from=…&to=…&format=csv[&limit=N][&after=ID]`: sold
/// leads for reconciliation, oldest first, no PII. Times are RFC 3339;
/// `from` inclusive, `to` exclusive. A page holds at most `limit` rows
/// (default and most `limits::EXPORT_ROWS_MAX`); when more remain, a
/// `Link: <…&after=ID>; rel="next"` header names the next page (`after` is
/// the last lead id of this page, exclusive) instead of cutting silently.
fn export(ex: &Exchange, query: &str) -> Result<Response, ApiError> {
    let time = |name: &str| -> Result<Option<u64>, ApiError> {
        let Some(v) = query_param(query, name) else {
            return Ok(None);
        };
        let v = v
            .replace("%3A", ":")
            .replace("%3a", ":")
            .replace("%2B", "+")
            .replace("%2b", "+");
        let t = time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339)
            .map_err(|_| {
                ApiError::field(
                    400,
                    "bad_request",
                    name,
                    format!("{name} must be an RFC 3339 time"),
                )
            })?;
        Ok(Some((t.unix_timestamp_nanos() / 1_000_000).max(0) as u64))
    };
    let (from, to) = (time("from")?.unwrap_or(0), time("to")?.unwrap_or(u64::MAX));
    match query_param(query, "format") {
        None | Some("csv") => {}
        Some(_) => {
            return Err(ApiError::field(
                400,
                "bad_request",
                "format",
                "format must be csv",
            ))
        }
    }
    let limit = match query_param(query, "limit") {
        None => limits::EXPORT_ROWS_MAX,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=limits::EXPORT_ROWS_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::field(
                    400,
                    "bad_request",
                    "limit",
                    format!("limit must be 1 to {}", limits::EXPORT_ROWS_MAX),
                )
            })?,
    };
    let mut lo = crate::ids::hex(&from.to_be_bytes()[2..]).into_bytes();
    if let Some(after) = query_param(query, "after") {
        if !crate::ids::looks_like_id(after) {
            return Err(ApiError::field(
                400,
                "bad_request",
                "after",
                "after must be a lead id from a Link header",
            ));
        }
        // The smallest key above `after`.
        let mut above = after.as_bytes().to_vec();
        above.push(0);
        lo = lo.max(above);
    }
    let hi = crate::ids::hex(&to.min(0xffff_ffff_ffff).to_be_bytes()[2..]);
    let (leads, next) = ex.sales_page(&lo, hi.as_bytes(), limit)?;
    let mut out =
        b"lead_id,publisher,vertical,buyer,price,payout,buyer_lead_id,created_at,sold_at,returned_at\n"
            .to_vec();
    for rec in &leads {
        csv_row(&mut out, rec);
    }
    let mut headers = Vec::new();
    if let Some(last) = next {
        headers.push(("Link", next_page_link(query, &last)));
    }
    Ok(Response {
        status: 200,
        content_type: "text/csv; charset=utf-8",
        headers,
        body: out,
    })
}

/// `</v1/admin/leads?…&after=ID>; rel="next"`: this page's query with its
/// `after` replaced.
fn next_page_link(query: &str, after: &str) -> String {
    let mut q: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("after=") && *kv != "after")
        .collect();
    let after = format!("after={after}");
    q.push(&after);
    format!("</v1/admin/leads?{}>; rel=\"next\"", q.join("&"))
}

fn csv_row(out: &mut Vec<u8>, rec: &LeadRecord) {
    let cents = |c: Option<u64>| {
        c.map(|c| format!("{}.{:02}", c / 100, c % 100))
            .unwrap_or_default()
    };
    let fields = [
        rec.lead_id.clone(),
        rec.publisher.clone(),
        rec.vertical.clone(),
        rec.buyer.clone().unwrap_or_default(),
        cents(rec.price),
        cents(rec.payout),
        rec.buyer_lead_id.clone().unwrap_or_default(),
        rfc3339(rec.created_ms),
        rec.sold_ms.map(rfc3339).unwrap_or_default(),
        // Appended last (contract §13), so earlier columns keep their place.
        rec.returned_ms.map(rfc3339).unwrap_or_default(),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_cell(out, f);
    }
    out.push(b'\n');
}

/// One CSV cell. A cell a spreadsheet would read as a formula (starting
/// with `=`, `+`, `-`, `@`, tab or CR — OWASP's "CSV injection" list) gets a
/// leading `'`, so a buyer's lead id such as `=HYPERLINK(…)` shows as text;
/// no cell leadx itself writes (ids, prices, times) starts with one of them.
fn csv_cell(out: &mut Vec<u8>, f: &str) {
    let formula = f.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = f.contains([',', '"', '\n', '\r']);
    if quote {
        out.push(b'"');
    }
    if formula {
        out.push(b'\'');
    }
    if quote {
        out.extend_from_slice(f.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(f.as_bytes());
    }
}

/// `POST` / `DELETE /v1/admin/suppressions` `{"phones": [...]}`: adds to
/// or removes from the durable internal list (contract §12). Every phone
/// must be a US number in any common spelling, or nothing changes (422
/// naming `phones[i]`; `wire::parse_phones`). Answers how many numbers the request named and the
/// list's size after it.
fn suppressions(api: &Api, req: &mut Request<'_>) -> Result<Response, ApiError> {
    super::require_json(req)?;
    let numbers = crate::wire::parse_phones(req.body)?;
    let add = req.method == "POST";
    api.ex.change_suppressions(&numbers, add)?;
    log::info!(target: "leadx::suppress", "internal list changed added={add} numbers={} size={}", numbers.len(), api.ex.internal_suppressions());
    let body = Answer::new()
        .str("status", if add { "added" } else { "removed" })
        .raw("phones", numbers.len().to_string().as_bytes())
        .raw(
            "size",
            api.ex.internal_suppressions().to_string().as_bytes(),
        )
        .finish();
    Ok(json(200, body))
}

/// `POST /v1/admin/reseal`: starts re-sealing every lead sealed under an
/// old data key (`exchange::reseal`), or lets the running job go on;
/// answers 202 with its status. Without a data key: 409 `no_data_key`.
fn reseal(api: &Api) -> Result<Response, ApiError> {
    if !api
        .ex
        .start_reseal()
        .map_err(crate::exchange::Refusal::Store)?
    {
        return Err(ApiError::new(
            409,
            "no_data_key",
            "privacy.data_key is not set: there is nothing to seal under",
        ));
    }
    log::info!(target: "leadx::privacy", "re-seal job started by the admin API");
    Ok(json(202, reseal_status(&api.ex)))
}

/// The re-seal job's status: `running` or not, and what it did —
/// `scanned`, `resealed`, `failed` (logged by lead id), `done`.
fn reseal_status(ex: &Exchange) -> Vec<u8> {
    let job = ex.reseal_job();
    let p = job.progress();
    let flag = |b: bool| if b { &b"true"[..] } else { &b"false"[..] };
    Answer::new()
        .raw("running", flag(job.is_running()))
        .raw("scanned", p.scanned.to_string().as_bytes())
        .raw("resealed", p.resealed.to_string().as_bytes())
        .raw("failed", p.failed.to_string().as_bytes())
        .raw("done", flag(p.done))
        .finish()
}

fn reload(api: &Api) -> Result<Response, ApiError> {
    match (api.reload)() {
        Ok(ignored) if ignored.is_empty() => Ok(json(200, br#"{"status":"reloaded"}"#.to_vec())),
        Ok(ignored) => {
            // Applied but for these keys: say so, so nobody believes a
            // moved listener moved.
            let mut body = br#"{"status":"reloaded","restart_needed":["#.to_vec();
            for (i, key) in ignored.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                crate::json::write_str(&mut body, key);
            }
            body.extend_from_slice(b"]}");
            Ok(json(200, body))
        }
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            let mut body = ApiError::new(
                422,
                "invalid_config",
                "the config file is invalid; the running config stays",
            )
            .body();
            // {"error":{…}} → {"error":{…},"problems":[…]}
            body.pop();
            body.extend_from_slice(b",\"problems\":");
            body.push(b'[');
            for (i, line) in lines.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                crate::json::write_str(&mut body, line);
            }
            body.push(b']');
            body.push(b'}');
            Ok(json(422, body))
        }
    }
}

/// `GET /v1/admin/stats`: live (non-test) statistics per publisher and per
/// buyer of the running config, since the process started — counts, bid
/// rate, fill rate, post success rate, revenue, payout, margin (USD, gross),
/// returns, return rate, returned revenue and payout, and the net revenue,
/// payout and margin with returns reversed (contract §13),
/// response times (ms) and time-outs; every definition is in
/// `metrics::live`. Each buyer also has `sold_today` (its sales today in its
/// zone) and `caps` (`caps_usage`): its usage per period against its limit,
/// from its ledger, so it survives restarts.
fn stats(ex: &Exchange) -> Vec<u8> {
    let rt = ex.runtime();
    let live = ex.live_stats();
    let now = ex.now_ms();
    let mut out = b"{\"publishers\":[".to_vec();
    for (i, p) in rt.config.publishers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&party(&live.publisher(&p.id), Answer::new()).finish());
    }
    out.extend_from_slice(b"],\"buyers\":[");
    for (i, brt) in rt.buyers.iter().enumerate() {
        let b = &brt.cfg;
        if i > 0 {
            out.push(b',');
        }
        let usage = brt.ledger.usage(now);
        let o = party(&live.buyer(&b.id), Answer::new())
            .raw("sold_today", usage.daily.to_string().as_bytes())
            .raw("caps", &caps_usage(&b.caps, &usage));
        out.extend_from_slice(&o.finish());
    }
    out.extend_from_slice(b"]}");
    out
}

/// A buyer's usage per period against its limit (contract §10), in its
/// zone: `{"hourly":{"used":3,"limit":20},…,"daily_budget":{"used":12.5,
/// "limit":1500.0},…}` (money in USD); `limit` is `null` where none is set.
pub(super) fn caps_usage(c: &crate::config::Caps, u: &caps::Usage) -> Vec<u8> {
    let count = |used: u64, limit: Option<u32>| {
        let limit = limit.map_or_else(|| "null".to_string(), |l| l.to_string());
        Answer::new()
            .raw("used", used.to_string().as_bytes())
            .raw("limit", limit.as_bytes())
            .finish()
    };
    let money = |used: u64, limit: Option<u64>| {
        Answer::new()
            .cents("used", Some(used))
            .cents("limit", limit)
            .finish()
    };
    Answer::new()
        .raw("hourly", &count(u.hourly, c.hourly))
        .raw("daily", &count(u.daily, c.daily))
        .raw("weekly", &count(u.weekly, c.weekly))
        .raw("monthly", &count(u.monthly, c.monthly))
        .raw("daily_budget", &money(u.daily_spent, c.daily_budget))
        .raw("weekly_budget", &money(u.weekly_spent, c.weekly_budget))
        .raw("monthly_budget", &money(u.monthly_spent, c.monthly_budget))
        .finish()
}

/// One publisher's or buyer's numbers as JSON fields.
pub(super) fn party(s: &PartyStats, o: Answer) -> Answer {
    let count = |n: u64| n.to_string().into_bytes();
    o.str("id", &s.id)
        .raw("pings", &count(s.pings))
        .raw("bids", &count(s.bids))
        .raw("bid_rate", &rate(s.bid_rate()))
        .raw("posts", &count(s.posts))
        .raw("sold", &count(s.sold))
        .raw("post_success_rate", &rate(s.post_success_rate()))
        .raw("fill_rate", &rate(s.fill_rate()))
        .cents("revenue", Some(s.revenue_cents))
        .cents("payout", Some(s.payout_cents))
        .raw("margin", &signed_usd(s.margin_cents()))
        .raw("returns", &count(s.returns))
        .raw("return_rate", &rate(s.return_rate()))
        .cents("returned_revenue", Some(s.returned_revenue_cents))
        .cents("returned_payout", Some(s.returned_payout_cents))
        .raw("net_revenue", &signed_usd(s.net_revenue_cents()))
        .raw("net_payout", &signed_usd(s.net_payout_cents()))
        .raw("net_margin", &signed_usd(s.net_margin_cents()))
        .raw("timeouts", &count(s.timeouts))
        .raw("response_ms", &latency_ms(&s.ping_latency))
        .raw("post_response_ms", &latency_ms(&s.post_latency))
}

/// A ratio with four decimals, `null` when its denominator is 0.
pub(super) fn rate(r: Option<f64>) -> Vec<u8> {
    r.map_or_else(|| b"null".to_vec(), |r| format!("{r:.4}").into_bytes())
}

fn signed_usd(cents: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    if cents < 0 {
        out.push(b'-');
    }
    crate::money::write_cents(&mut out, cents.unsigned_abs());
    out
}

/// `{"count","mean","p50","p95","p99"}` in milliseconds; quantiles come
/// from an HDR histogram (`metrics::quantiles`), `null` when empty.
fn latency_ms(l: &LatencySummary) -> Vec<u8> {
    let ms = |us: u64| format!("{}.{:03}", us / 1000, us % 1000).into_bytes();
    let q = |v: Option<u64>| v.map_or_else(|| b"null".to_vec(), ms);
    let mean = if l.count == 0 {
        b"null".to_vec()
    } else {
        ms(l.mean_us)
    };
    Answer::new()
        .raw("count", l.count.to_string().as_bytes())
        .raw("mean", &mean)
        .raw("p50", &q(l.p50_us))
        .raw("p95", &q(l.p95_us))
        .raw("p99", &q(l.p99_us))
        .finish()
}

/// Gauges only the exchange knows, appended to `/metrics`.
pub fn runtime_gauges(ex: &Exchange, out: &mut Vec<u8>) {
    use crate::metrics::write_gauge;
    let rt = ex.runtime();
    let now = ex.now_ms();
    for brt in &rt.buyers {
        let b = &brt.cfg;
        if let Some(cap) = b.caps.daily {
            let left = u64::from(cap).saturating_sub(brt.ledger.usage(now).daily);
            write_gauge(
                out,
                "leadx_buyer_cap_remaining",
                "Leads a buyer may still buy today (in its zone) under its daily cap.",
                &[("buyer", &b.id)],
                left as f64,
            );
        }
        if let Some(breaker) = &brt.health.breaker {
            write_gauge(
                out,
                "leadx_buyer_breaker_state",
                "A buyer's circuit breaker: 0 closed, 1 open, 2 half-open (a trial is due).",
                &[("buyer", &b.id)],
                f64::from(breaker.state(now) as u8),
            );
        }
        if let Some(gate) = &brt.health.gate {
            write_gauge(
                out,
                "leadx_buyer_in_flight",
                "Calls in flight to a buyer, under its concurrency_max.",
                &[("buyer", &b.id)],
                f64::from(gate.in_flight()),
            );
        }
        for (stage, client) in [("ping", brt.ping.as_ref()), ("post", Some(&brt.post))] {
            let Some(c) = client else { continue };
            let s = c.stats();
            for (name, v) in [
                ("created", &s.created),
                ("reused", &s.reused),
                ("waited", &s.waited),
            ] {
                let help = "Buyer connection pool events since start.";
                let v = v.load(std::sync::atomic::Ordering::Relaxed) as f64;
                write_gauge(
                    out,
                    "leadx_buyer_pool_events",
                    help,
                    &[("buyer", &b.id), ("stage", stage), ("event", name)],
                    v,
                );
            }
        }
    }
    postback_metrics(ex, &rt, out);
    let s = ex.store_stats();
    let (pings_cached, pings_cached_bytes) = ex.pings_cached();
    write_gauge(
        out,
        "leadx_store_queue_depth",
        "Writes waiting for the store's writer thread.",
        &[],
        s.queue_depth as f64,
    );
    write_gauge(
        out,
        "leadx_pings_cached",
        "Pings held in memory awaiting their post.",
        &[],
        pings_cached as f64,
    );
    let help = "Bytes the ping cache holds (bounded by server.ping_cache_bytes).";
    write_gauge(
        out,
        "leadx_pings_cached_bytes",
        help,
        &[],
        pings_cached_bytes as f64,
    );
    retention_metrics(ex, out);
}

/// `leadx_retention_erased_total{kind}` and the last finished pass's end
/// time and duration (`exchange::retention`).
fn retention_metrics(ex: &Exchange, out: &mut Vec<u8>) {
    use crate::exchange::retention::Job;
    use crate::metrics::{write_gauge, write_header, write_sample};
    let r = ex.retention();
    write_header(
        out,
        "leadx_retention_erased_total",
        "Records retention changed since start: pii (a lead's PII erased), ping (an unposted ping deleted), dedupe (a dedupe key past its window deleted).",
        "counter",
    );
    for job in Job::ALL {
        let n = r.erased_total(job);
        write_sample(
            out,
            "leadx_retention_erased_total",
            &[("kind", job.as_str())],
            n,
        );
    }
    let (at_ms, took_us) = r.last_pass();
    write_gauge(
        out,
        "leadx_retention_last_sweep_timestamp_seconds",
        "When the last finished retention pass ended (Unix seconds; 0: none yet).",
        &[],
        at_ms as f64 / 1000.0,
    );
    write_gauge(
        out,
        "leadx_retention_last_sweep_duration_seconds",
        "How long the last finished retention pass took, its pauses included.",
        &[],
        took_us as f64 / 1e6,
    );
}

/// Postbacks (contract §13): events pending in the outbox, and per
/// publisher with a `postback_url` the events delivered, given up after
/// their retries, and failed attempts (each retried) since start.
fn postback_metrics(ex: &Exchange, rt: &crate::exchange::Runtime, out: &mut Vec<u8>) {
    use crate::metrics::{write_gauge, write_header, write_sample};
    let outbox = ex.outbox();
    write_gauge(
        out,
        "leadx_postbacks_pending",
        "Postback events waiting in the outbox for delivery or a retry.",
        &[],
        outbox.pending() as f64,
    );
    let pubs: Vec<_> = rt
        .config
        .publishers
        .iter()
        .filter(|p| p.postback_url.is_some())
        .map(|p| (p.id.as_str(), outbox.counts(&p.id)))
        .collect();
    type Read = fn(&crate::exchange::postbacks::PostbackCounts) -> u64;
    let families: [(&str, &str, Read); 3] = [
        (
            "leadx_postbacks_delivered_total",
            "Postback events a publisher's endpoint answered 2xx.",
            |c| c.delivered,
        ),
        (
            "leadx_postbacks_failed_total",
            "Postback events given up after give_up_after_s of retries (kept in the outbox).",
            |c| c.failed,
        ),
        (
            "leadx_postback_attempts_failed_total",
            "Postback attempts that failed (time-out, error, non-2xx) and were retried or given up.",
            |c| c.attempts_failed,
        ),
    ];
    for (name, help, read) in families {
        write_header(out, name, help, "counter");
        for (id, c) in &pubs {
            write_sample(out, name, &[("publisher", id)], read(c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(f: &str) -> String {
        let mut out = Vec::new();
        csv_cell(&mut out, f);
        String::from_utf8(out).unwrap()
    }

    /// Issue #7 point 8: buyer-supplied text cannot become a formula.
    #[test]
    fn csv_cells_that_look_like_formulas_are_neutralised() {
        assert_eq!(
            cell("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        assert_eq!(cell("=1+1"), "'=1+1");
        for f in ["+1", "-2", "@SUM(A1)", "\tx"] {
            assert_eq!(cell(f), format!("'{f}"), "{f:?}");
        }
        assert_eq!(cell("\rx"), "\"'\rx\"");
        assert_eq!(cell("BL-1=2"), "BL-1=2", "only a leading character counts");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("12.50"), "12.50");
    }

    #[test]
    fn the_next_page_link_replaces_after() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            next_page_link("from=x&limit=2", id),
            format!("</v1/admin/leads?from=x&limit=2&after={id}>; rel=\"next\"")
        );
        assert_eq!(
            next_page_link("after=zz&limit=2", id),
            format!("</v1/admin/leads?limit=2&after={id}>; rel=\"next\"")
        );
        assert_eq!(
            next_page_link("", id),
            format!("</v1/admin/leads?after={id}>; rel=\"next\"")
        );
    }

    #[test]
    fn stats_numbers_are_json_with_nulls_for_the_unknown() {
        assert_eq!(rate(None), b"null");
        assert_eq!(rate(Some(2.0 / 3.0)), b"0.6667");
        assert_eq!(signed_usd(-205), b"-2.05");
        assert_eq!(signed_usd(1_000), b"10.00");
        let empty = LatencySummary {
            count: 0,
            mean_us: 0,
            p50_us: None,
            p95_us: None,
            p99_us: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&latency_ms(&empty)).unwrap();
        assert!(v["mean"].is_null() && v["p99"].is_null());
        let l = LatencySummary {
            count: 3,
            mean_us: 1_500,
            p50_us: Some(1_234),
            p95_us: Some(20_000),
            p99_us: Some(20_000),
        };
        let v: serde_json::Value = serde_json::from_slice(&latency_ms(&l)).unwrap();
        assert_eq!(
            (v["count"].as_u64(), v["mean"].as_f64(), v["p50"].as_f64()),
            (Some(3), Some(1.5), Some(1.234))
        );
    }
}
