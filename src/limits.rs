//! Every bound leadx enforces, in one place, with the relations between them
//! checked at compile time. A limit that is not here is a bug.

/// Deepest JSON nesting accepted in a request body. A lead is at most three
/// levels deep (`{"lead":{"attributes":{}}}`); anything deeper is hostile.
pub const JSON_DEPTH_MAX: usize = 8;
/// Largest request head (request line + headers) in bytes; more is 431.
pub const HEADER_BYTES_MAX: usize = 16 * 1024;
/// Most request headers in one request; more is 431.
pub const HEADERS_MAX: usize = 64;
/// Default for `server.body_bytes_max`.
pub const BODY_BYTES_MAX_DEFAULT: usize = 64 * 1024;
/// Hard ceiling for `server.body_bytes_max`, whatever the config says.
pub const BODY_BYTES_MAX_CEILING: usize = 1024 * 1024;
/// Largest response body read from a buyer; more is a failed call.
pub const BUYER_RESPONSE_BYTES_MAX: usize = 64 * 1024;
/// Most buyers in one config (and so in one auction).
pub const BUYERS_MAX: usize = 1024;
/// Most keep-alive connections kept open to one buyer.
pub const BUYER_CONNECTIONS_MAX: usize = 256;
/// Idle keep-alive connections kept per buyer (default `idle_max`). As many
/// as may be in use: a lower bound closed every connection past it after
/// each call at high concurrency, so each call paid a connect, a close and
/// their epoll updates (12 % of a ping's CPU at 256 pings in flight). Idle
/// ones still close after `BUYER_IDLE_TIMEOUT_MS`, and the peak open count
/// is `BUYER_CONNECTIONS_MAX` either way.
pub const BUYER_IDLE_CONNECTIONS_MAX: usize = BUYER_CONNECTIONS_MAX;
/// An idle buyer connection older than this is closed, not reused: servers
/// commonly drop idle keep-alive after 5 s, and reusing one just as the
/// buyer closes it would lose the call.
pub const BUYER_IDLE_TIMEOUT_MS: u64 = 4_000;
/// Connections warmed per buyer host when a runtime is built (start-up,
/// reload): default of `server.buyer_preconnect`; 0 turns warming off.
pub const BUYER_PRECONNECT_DEFAULT: usize = 1;
/// Most connections `server.buyer_preconnect` may warm per host.
pub const BUYER_PRECONNECT_MAX: usize = 16;
/// Time one host's warming (DNS is already done; TCP connect and TLS
/// handshake) may take. All hosts warm at once, so this also bounds how
/// long a start or reload waits for warming, however many buyers.
pub const BUYER_PRECONNECT_TIMEOUT_MS: u64 = 2_000;
/// Period of the keep-warm pass (`server.buyer_keep_warm`): each pass
/// replaces warmed connections idle for `BUYER_IDLE_TIMEOUT_MS` less this,
/// so a pool always holds one the idle time-out has not closed; a quiet
/// host costs one connect (and handshake) per that much time, 3 s.
pub const BUYER_KEEP_WARM_PERIOD_MS: u64 = 1_000;
/// TLS reads an idle buyer connection's staleness check may make to take
/// in records waiting on its socket (session tickets: usually one or two).
pub const BUYER_STALE_TLS_READS_MAX: usize = 8;
/// Largest response head (status line + headers) read from a buyer.
pub const BUYER_RESPONSE_HEAD_BYTES_MAX: usize = 16 * 1024;
/// Most headers in a buyer's response.
pub const BUYER_RESPONSE_HEADERS_MAX: usize = 64;
/// Most interim (1xx) responses skipped before a buyer's final answer; a
/// buyer sending more is malformed (one `100 Continue` and a `102` or
/// `103` or two are all HTTP gives a reason for).
pub const BUYER_INTERIM_RESPONSES_MAX: usize = 4;
/// Longest chunk-size line (size plus extensions) or trailer line in a
/// buyer's chunked answer; more is a failed call (`response_too_large`).
pub const BUYER_CHUNK_LINE_BYTES_MAX: usize = 256;
/// Framing bytes (size lines, CRLFs, trailers) a buyer's chunked answer may
/// add to its body; bounds the time an endless trailer section or a flood
/// of tiny chunks can take, not only the memory.
pub const BUYER_CHUNKED_OVERHEAD_BYTES_MAX: usize = 16 * 1024;
/// Capacity the client's read buffer for one call never exceeds: it holds
/// at most one head (or line) plus a read; body bytes pass through it in
/// reads of a few KiB into the body, which `response_bytes_max` bounds.
pub const BUYER_READ_BUFFER_BYTES_MAX: usize = BUYER_RESPONSE_HEAD_BYTES_MAX + 4 * 1024;
/// Most attributes in `lead.attributes`.
pub const LEAD_ATTRIBUTES_MAX: usize = 64;
/// Longest string field in a lead (other than ones with tighter bounds).
pub const LEAD_STRING_BYTES_MAX: usize = 1024;
/// Coroutine stack size. Deep JSON is refused before it can recurse; simd-json's
/// tape builder and a TLS handshake are the deepest frames. Debug builds use
/// several times the stack of release builds, so they get more.
pub const COROUTINE_STACK_BYTES: usize = if cfg!(debug_assertions) {
    256 * 1024
} else {
    64 * 1024
};
/// Most client connections served at once; more are closed at accept.
pub const CONNECTIONS_MAX: usize = 16 * 1024;
/// Most writes waiting for the store's writer thread; more is 503 overloaded.
pub const STORE_QUEUE_MAX: usize = 64 * 1024;
/// How long opening the store waits for a just-closed store's directory
/// lock. sled releases it from its global I/O thread pool once the closed
/// store's last writes are done, which under heavy fsync load (a busy
/// machine, many stores in one test process) was seen to take over 3 s.
pub const STORE_LOCK_WAIT_MS: u64 = 20_000;
/// Most rows returned by one admin listing.
pub const ADMIN_LIST_MAX: usize = 1000;
/// Most sold leads in one page of the reconciliation export (about 20 MB
/// of CSV); a `Link` header names the next page.
pub const EXPORT_ROWS_MAX: usize = 100_000;

/// Keep-alive connection idle between requests before the server closes it.
pub const SERVER_IDLE_TIMEOUT_MS: u64 = 30_000;
/// From a request's first byte to its last; slower is 408 and close (slowloris).
pub const SERVER_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Longest a single response write may stall on a client that does not read.
pub const SERVER_WRITE_TIMEOUT_MS: u64 = 10_000;
/// Listen backlog passed explicitly to listen(2).
pub const SERVER_LISTEN_BACKLOG: i32 = 1024;
/// Initial per-connection read buffer; grows for larger requests, then shrinks
/// back to this as soon as it is empty.
pub const SERVER_READ_BUFFER_BYTES: usize = 4 * 1024;
/// Write-buffer capacity a connection keeps between answers; a larger
/// one (a big answer) is freed once written.
pub const SERVER_WRITE_BUFFER_KEEP_BYTES: usize = 4 * 1024;
/// Longest chunk-size line (size plus extensions) in a chunked request body.
pub const CHUNK_LINE_BYTES_MAX: usize = 256;
/// Framing bytes (size lines, CRLFs, trailers) a chunked body may add on top
/// of its decoded size; bounds the read buffer against 1-byte-chunk floods.
pub const CHUNKED_OVERHEAD_BYTES_MAX: usize = 16 * 1024;
/// After an error answer, how long unread request bytes are drained before the
/// close, so the client sees the answer rather than a reset.
pub const SERVER_LINGER_MS: u64 = 500;
/// Most bytes drained during that linger.
pub const SERVER_LINGER_BYTES_MAX: usize = 256 * 1024;
/// Connections served at once on the loopback probe listener (the systemd
/// watchdog's `/healthz`), outside `server.connections_max`.
pub const PROBE_CONNECTIONS_MAX: usize = 4;
/// Pause after an accept error that signals exhaustion (EMFILE, ENOBUFS).
pub const SERVER_ACCEPT_BACKOFF_MS: u64 = 10;
/// Poll period of `ServerHandle::wait_idle`.
pub const SERVER_WAIT_IDLE_POLL_MS: u64 = 5;
/// Period of the info-level traffic summary in the log (`logging::events`):
/// per-lead events are debug, so journald's rate limit is never reached.
pub const LOG_SUMMARY_INTERVAL_MS: u64 = 10_000;
/// Youngest and oldest `lead.age` accepted (contract §3, inclusive).
pub const LEAD_AGE_MIN: i64 = 18;
pub const LEAD_AGE_MAX: i64 = 120;
/// Highest `lead.income` (USD a year) accepted; more is a typo or hostile.
pub const LEAD_INCOME_MAX: i64 = 100_000_000;
/// Longest `lead.sub_id`, `lead.first_name`, `lead.last_name` (contract §3).
pub const LEAD_SHORT_STRING_BYTES_MAX: usize = 64;
/// Longest key in `lead.attributes`.
pub const LEAD_ATTRIBUTE_KEY_BYTES_MAX: usize = 64;
/// Longest string value in `lead.attributes`.
pub const LEAD_ATTRIBUTE_VALUE_BYTES_MAX: usize = 1024;
/// Longest phone spelling looked at; `+1 (555) 234-5678` is 17 bytes.
pub const PHONE_BYTES_MAX: usize = 32;
/// Longest email address (RFC 5321 path limit) and its local part.
pub const EMAIL_BYTES_MAX: usize = 254;
pub const EMAIL_LOCAL_BYTES_MAX: usize = 64;
/// Longest `consent.text`: a full TCPA disclosure with a seller list fits.
pub const CONSENT_TEXT_BYTES_MAX: usize = 16 * 1024;
/// Longest URL in a consent (`page_url`, `trustedform_cert_url`).
pub const URL_BYTES_MAX: usize = 2048;
/// Longest `ping_id` a publisher may send back and longest vertical id.
pub const PING_ID_BYTES_MAX: usize = 64;
pub const VERTICAL_ID_BYTES_MAX: usize = 64;
/// Longest string kept from a buyer's answer (`ref`, `lead_id`, `reason`).
pub const BUYER_ANSWER_STRING_BYTES_MAX: usize = 256;
/// Longest RFC 3339 time looked at (`captured_at`); real ones are ~35 bytes.
pub const TIME_BYTES_MAX: usize = 64;
/// Longest IP literal looked at (`consent.ip`); IPv6 text is at most 45.
pub const IP_BYTES_MAX: usize = 64;
/// Longest key echoed back in an error's `field` path.
pub const ERROR_PATH_KEY_BYTES_MAX: usize = 64;

const _: () = assert!(BODY_BYTES_MAX_DEFAULT <= BODY_BYTES_MAX_CEILING);
const _: () = assert!(JSON_DEPTH_MAX >= 3);
const _: () = assert!(HEADER_BYTES_MAX >= 1024);

/// Default for `server.ping_cache_bytes`: what the in-memory ping cache may
/// hold (the store has every ping; the cache is what makes a post right
/// after its ping independent of write lag). A ping with 8 buyers holds
/// about 3 KiB, so this keeps ~10,000 pings, several seconds of traffic at
/// the 2-core box's maximum — the store's writer lags by milliseconds.
pub const PING_CACHE_BYTES_DEFAULT: usize = 32 * 1024 * 1024;
/// Smallest `server.ping_cache_bytes`: room for a few hundred pings.
pub const PING_CACHE_BYTES_MIN: usize = 1024 * 1024;
/// Ceiling for `server.ping_cache_bytes`.
pub const PING_CACHE_BYTES_CEILING: usize = 4 * 1024 * 1024 * 1024;
/// Default for `server.auctions_in_flight_max`: ping auctions (and the
/// auction stage of direct posts) running at once; more are shed with 503
/// `overloaded`. Sized in docs/performance.md ("Overload (issue #7)"): on
/// the 2-core box 256 let the CPU saturate before the limit bit (answered
/// p99 1.2 s at 2× max), 128 and 64 kept the same goodput with p99 0.58 s
/// and 0.49 s; by Little's law 64 would cap a quiet 2-core box (~1,700
/// cycles/s × ~60 ms auctions ≈ 100 in flight) below its maximum, 128 not.
pub const AUCTIONS_IN_FLIGHT_MAX_DEFAULT: usize = 128;
/// Ceiling for `server.auctions_in_flight_max`.
pub const AUCTIONS_IN_FLIGHT_MAX_CEILING: usize = 1024 * 1024;
/// Default for `server.buyer_calls_in_flight_max`: buyer calls (ping and
/// post) running at once. A quarter of it is kept for posts (pings may use
/// the rest), so pings cannot starve sales.
pub const BUYER_CALLS_IN_FLIGHT_MAX_DEFAULT: usize = 2048;
/// Ceiling for `server.buyer_calls_in_flight_max`.
pub const BUYER_CALLS_IN_FLIGHT_MAX_CEILING: usize = 1024 * 1024;
/// The part of `server.buyer_calls_in_flight_max` only posts may use:
/// one `1 / BUYER_CALLS_POST_RESERVE_DIVISOR` of it, at least one call.
pub const BUYER_CALLS_POST_RESERVE_DIVISOR: usize = 4;
/// A ping that reaches its auction with less than this share of its
/// deadline left (per cent of `auction.ping_timeout_ms`) is shed at once:
/// its buyers would mostly time out, and the work would only delay the
/// pings behind it.
pub const SHED_DEADLINE_LEFT_PCT_MIN: u64 = 50;

/// Period of the scheduling-lag probe (`exchange::admission`): how often
/// leadx checks how late a ready coroutine gets to run.
pub const SCHED_LAG_PROBE_MS: u64 = 5;

const _: () = assert!(AUCTIONS_IN_FLIGHT_MAX_DEFAULT <= AUCTIONS_IN_FLIGHT_MAX_CEILING);
const _: () = assert!(BUYER_CALLS_IN_FLIGHT_MAX_DEFAULT <= BUYER_CALLS_IN_FLIGHT_MAX_CEILING);
const _: () = assert!(BUYER_CALLS_POST_RESERVE_DIVISOR >= 2);
// The default budget fits an auction that calls every buyer a config may hold.
const _: () = assert!(
    BUYER_CALLS_IN_FLIGHT_MAX_DEFAULT
        - BUYER_CALLS_IN_FLIGHT_MAX_DEFAULT / BUYER_CALLS_POST_RESERVE_DIVISOR
        >= BUYERS_MAX
);
const _: () = assert!(SHED_DEADLINE_LEFT_PCT_MIN < 100);

/// Time kept back from the auction deadline to rank and answer.
pub const RESPONSE_MARGIN_MS: u64 = 2;
/// Longest `Idempotency-Key` accepted.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 128;
// --- configuration (src/config) ---

/// Largest config file read; a bigger one is refused before parsing.
pub const CONFIG_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Largest secret read from `$CREDENTIALS_DIRECTORY/NAME`.
pub const SECRET_BYTES_MAX: usize = 64 * 1024;
/// Largest `server.tls.cert` / `key` file read (a PEM chain is a few KiB).
pub const TLS_PEM_BYTES_MAX: usize = 1024 * 1024;
/// Longest vertical, publisher or buyer id.
pub const ID_BYTES_MAX: usize = 64;
/// Most verticals in one config.
pub const VERTICALS_MAX: usize = 256;
/// Most publishers in one config.
pub const PUBLISHERS_MAX: usize = 10_000;
/// Most entries in `publisher.allowed_ips`.
pub const PUBLISHER_IPS_MAX: usize = 1024;
/// Ceiling for `publisher.rate_limit_rps`.
pub const RATE_LIMIT_RPS_MAX: u32 = 1_000_000;
/// Most extra headers sent to one buyer.
pub const BUYER_HEADERS_MAX: usize = 32;
/// Buyer specs (contract §9): most `fields` in one stage, entries in one
/// `[buyer.maps]` table, words in one rule's `equals`.
pub const BUYER_FIELDS_MAX: usize = 128;
pub const BUYER_MAP_ENTRIES_MAX: usize = 1024;
pub const BUYER_EQUALS_MAX: usize = 32;
/// Compiled size of one response-rule regex (program and lazy DFA cache,
/// each): a bigger pattern is a config error, so no buyer pattern can
/// take a worker's memory. Matching is linear in the body whatever the size.
pub const BUYER_REGEX_BYTES_MAX: usize = 1 << 20;
/// Deepest element nesting read from a buyer's XML or SOAP answer.
pub const BUYER_XML_DEPTH_MAX: usize = 32;
/// Most entries in `buyer.filter.states` (there are 62 USPS codes).
pub const FILTER_STATES_MAX: usize = 64;
/// Ceiling for `auction.ping_timeout_ms` and `buyer.ping_timeout_ms`.
pub const PING_TIMEOUT_MS_MAX: u64 = 60_000;
/// Ceiling for `auction.post_timeout_ms` and `buyer.post_timeout_ms`.
pub const POST_TIMEOUT_MS_MAX: u64 = 300_000;
/// Ceiling for `auction.bid_ttl_s`: a day.
pub const BID_TTL_S_MAX: u64 = 86_400;
/// Ceiling for the server's idle, request and drain time-outs: an hour.
pub const SERVER_TIMEOUT_MS_MAX: u64 = 3_600_000;
/// Ceiling for `server.workers`.
pub const WORKERS_MAX: usize = 256;
/// Ceiling for `server.connections_max`.
pub const CONNECTIONS_MAX_CEILING: usize = 1024 * 1024;
/// Ceiling for `vertical.dedupe_window_days`: ten years.
pub const DEDUPE_WINDOW_DAYS_MAX: u32 = 3650;
/// Ceiling for `vertical.consent_max_age_days`: ten years.
pub const CONSENT_MAX_AGE_DAYS_MAX: u32 = 3650;
/// How far a consent's `captured_at` may lie in the future (the publisher's
/// clock may run ahead of ours): five minutes.
pub const CONSENT_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;
/// Youngest and oldest age a lead may carry (contract §3), so also the
/// bounds of `buyer.filter.age_min` / `age_max`.
pub const AGE_YEARS_MIN: u16 = 18;
pub const AGE_YEARS_MAX: u16 = 120;

const _: () = assert!(CONNECTIONS_MAX <= CONNECTIONS_MAX_CEILING);
const _: () = assert!(PING_TIMEOUT_MS_MAX <= POST_TIMEOUT_MS_MAX);
const _: () = assert!(AGE_YEARS_MIN <= AGE_YEARS_MAX);
const _: () = assert!(CHUNK_LINE_BYTES_MAX < HEADER_BYTES_MAX);
const _: () = assert!(SERVER_REQUEST_TIMEOUT_MS <= SERVER_IDLE_TIMEOUT_MS);
const _: () = assert!(BUYER_IDLE_CONNECTIONS_MAX <= BUYER_CONNECTIONS_MAX);
const _: () = assert!(BUYER_KEEP_WARM_PERIOD_MS < BUYER_IDLE_TIMEOUT_MS);
const _: () = assert!(BUYER_CHUNK_LINE_BYTES_MAX < BUYER_CHUNKED_OVERHEAD_BYTES_MAX);
const _: () = assert!(BUYER_RESPONSE_HEAD_BYTES_MAX < BUYER_READ_BUFFER_BYTES_MAX);
/// Default sled page-cache size for the store (`server.store_cache_bytes`).
/// Hot keys (caps, dedupe, idempotency) must stay in memory so reads on
/// coroutines rarely touch disk; they are small. The pings tree is written
/// far more than read, and a larger cache mostly keeps cold pings resident
/// (sled's real use runs above this figure: see docs/ops.md).
pub const STORE_CACHE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// Bounds of `server.store_cache_bytes`.
pub const STORE_CACHE_BYTES_MIN: u64 = 1024 * 1024;
pub const STORE_CACHE_BYTES_CEILING: u64 = 64 * 1024 * 1024 * 1024;
/// Most operations the store's writer applies before one flush (group
/// commit). Bounds how long a waiter can be held behind other writes.
pub const STORE_BATCH_OPS_MAX: usize = 8 * 1024;
/// Longest the store's writer holds writes nobody waits for (pings, call
/// records) to gather more before one apply and flush: every sled
/// `apply_batch` writes and syncs sled's log buffer, so one per ping was
/// about half of leadx's CPU per ping. A waiting write ends the wait at
/// once; a crash can lose at most this much of the unwaited writes.
pub const STORE_WRITE_DEFER_MS: u64 = 20;

/// Share (percent) of the store's queue that writes nobody waits for
/// (pings, call records) may fill. The rest is kept for waited writes — a
/// sale's outcome above all — which are never refused for queue depth: a
/// buyer that accepted must not lose its sale to a burst of pings.
pub const STORE_QUEUE_UNWAITED_PCT: usize = 75;
/// While the store is unwritable (a write failed: disk full, I/O error), how
/// often its writer reopens sled and probes whether writes work again.
pub const STORE_PROBE_MS: u64 = 500;
/// What a probe writes (then removes) and flushes: enough that a nearly
/// full disk does not pass it only to fail the next sale.
pub const STORE_PROBE_BYTES: usize = 64 * 1024;
/// How often a sale kept after its outcome write failed (`exchange::outcomes`)
/// is retried in the background.
pub const KEPT_SALE_RETRY_MS: u64 = 1_000;
/// Default `[[buyer]] return_window_days` (contract §13).
pub const RETURN_WINDOW_DAYS_DEFAULT: u32 = 7;
/// Longest `return_window_days` accepted: a year.
pub const RETURN_WINDOW_DAYS_MAX: u32 = 366;
/// Longest return `reason`, in bytes.
pub const RETURN_REASON_BYTES_MAX: usize = 500;
/// `[postbacks]` defaults (contract §13): first retry after about a
/// second, doubling (with jitter) to at most ten minutes apart, given up
/// (marked failed, kept) a day after the event.
pub const POSTBACK_RETRY_BASE_MS_DEFAULT: u64 = 1_000;
pub const POSTBACK_RETRY_MAX_MS_DEFAULT: u64 = 600_000;
pub const POSTBACK_GIVE_UP_S_DEFAULT: u64 = 86_400;
/// Deliveries in flight to one publisher at once (default and most), so a
/// dead endpoint holds at most this many coroutines and never starves the
/// other publishers.
pub const POSTBACK_PER_PUBLISHER_DEFAULT: usize = 4;
pub const POSTBACK_PER_PUBLISHER_MAX: usize = 64;
/// One delivery's deadline, connect to answer.
pub const POSTBACK_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// How often the postback sender looks for due events (wall clock).
pub const POSTBACK_POLL_MS: u64 = 50;
/// Longest answer body read from a postback endpoint (it is ignored).
pub const POSTBACK_RESPONSE_BYTES_MAX: usize = 16 * 1024;
/// At shutdown, how long the sender's deliveries in flight may finish
/// before the store closes (one not finished is delivered again later).
pub const POSTBACK_DRAIN_WAIT_MS: u64 = 2_000;
/// A drain waits for in-flight posts to write their outcome at most
/// `auction.post_timeout_ms` plus this (the outcome's group commit).
pub const DRAIN_OUTCOME_GRACE_MS: u64 = 5_000;
/// After waiting for such posts, how long a drain lets their answers be
/// written before the store closes and the process may exit.
pub const DRAIN_ANSWER_WAIT_MS: u64 = 1_000;

const _: () = assert!(STORE_BATCH_OPS_MAX >= 1);
const _: () = assert!(
    PING_CACHE_BYTES_MIN <= PING_CACHE_BYTES_DEFAULT
        && PING_CACHE_BYTES_DEFAULT <= PING_CACHE_BYTES_CEILING
);
const _: () = assert!(
    STORE_CACHE_BYTES_MIN <= STORE_CACHE_BYTES_DEFAULT
        && STORE_CACHE_BYTES_DEFAULT <= STORE_CACHE_BYTES_CEILING
);
const _: () = assert!(STORE_QUEUE_MAX >= STORE_BATCH_OPS_MAX);
const _: () = assert!(STORE_QUEUE_UNWAITED_PCT > 0 && STORE_QUEUE_UNWAITED_PCT < 100);
const _: () = assert!(CONSENT_TEXT_BYTES_MAX < BODY_BYTES_MAX_DEFAULT);
const _: () = assert!(LEAD_AGE_MIN <= LEAD_AGE_MAX);

/// Log lines queued for the logger thread; more are dropped and counted
/// (see `logging`). At ~200 bytes a line, about 3 MiB at most.
pub const LOG_LINES_QUEUED_MAX: usize = 16 * 1024;
/// Error lines have a lane of their own that other lines cannot fill.
pub const LOG_ERROR_LINES_QUEUED_MAX: usize = 1024;

// Routing controls (contract §10; `config::routing`, `routing`).

/// Most entries in each of `buyer.filter.zips` / `exclude_zips`.
pub const FILTER_ZIPS_MAX: usize = 10_000;
/// Most entries in each id list of `buyer.filter` (`publishers`, `sub_ids`
/// and their `exclude_` twins) and in one attribute's value set.
pub const FILTER_IDS_MAX: usize = 1024;
/// Most attribute rules in `buyer.filter.attributes` (and its
/// `exclude_attributes`): a lead has at most this many attributes.
pub const FILTER_ATTRIBUTES_MAX: usize = LEAD_ATTRIBUTES_MAX;
/// Most time ranges on one day of `buyer.schedule`.
pub const SCHEDULE_RANGES_PER_DAY_MAX: usize = 24;
/// Ceiling for `buyer.health.concurrency_max` (a buyer's calls in flight).
pub const BUYER_CONCURRENCY_MAX_CEILING: u32 = 1_000_000;
/// Ceiling for `buyer.health.breaker_failures`.
pub const BREAKER_FAILURES_MAX: u32 = 1_000_000;
/// Ceiling for `buyer.health.breaker_cooldown_ms`: an hour.
pub const BREAKER_COOLDOWN_MS_MAX: u64 = 3_600_000;
/// `buyer.health.breaker_cooldown_ms` when only `breaker_failures` is given.
pub const BREAKER_COOLDOWN_MS_DEFAULT: u64 = 5_000;
/// The least time a buyer call is made with (`routing::budget`): with
/// less left, the buyer is skipped as `no_time` — a call that cannot
/// finish costs a connection and counts as the buyer's failure.
pub const BUYER_CALL_MIN_MS: u64 = 5;
/// Ceiling for a count cap (`buyer.caps.hourly` … `monthly`): a cap cell
/// holds its count in 40 bits (`exchange::caps`).
pub const CAP_COUNT_MAX: u32 = u32::MAX;
/// Ceiling for a budget (`buyer.caps.daily_budget` …), in cents: a cap cell
/// holds its sum in 40 bits, and a month's sales must fit beside it.
pub const CAP_BUDGET_CENTS_MAX: u64 = 100_000_000_000;

const _: () = assert!(BREAKER_COOLDOWN_MS_DEFAULT <= BREAKER_COOLDOWN_MS_MAX);
const _: () = assert!(CAP_BUDGET_CENTS_MAX < (1 << 40) / 2);
const _: () = assert!((CAP_COUNT_MAX as u64) < (1 << 40));

/// `[[suppression]]` lists in one config.
pub const SUPPRESSION_LISTS_MAX: usize = 64;
/// Numbers one suppression file may hold (the national DNC registry holds
/// about 250 million). Loading takes 4 bytes a number while it sorts, on
/// top of the finished set (`suppress`: about 2 bytes a number at 10
/// million).
pub const SUPPRESSION_NUMBERS_MAX: usize = 250_000_000;
/// A suppression file line longer than this is invalid (and skipped
/// without being buffered): a phone in any spelling is far shorter.
pub const SUPPRESSION_LINE_BYTES_MAX: usize = 64;
/// `suppression.max_age_days` ceiling.
pub const SUPPRESSION_MAX_AGE_DAYS_MAX: i64 = 3_650;
/// Numbers one `POST`/`DELETE /v1/admin/suppressions` may name (one
/// durable batch; bigger lists belong in a `[[suppression]]` file).
pub const SUPPRESSION_CHANGE_MAX: usize = 10_000;
/// `privacy.old_data_keys` entries.
pub const OLD_DATA_KEYS_MAX: usize = 8;
/// `privacy.pii_retention_days` / `ping_retention_days` ceiling.
pub const RETENTION_DAYS_MAX: i64 = 36_500;
/// Longest a request waits for a lead's claim (`exchange::claims`) that a
/// sweep batch or another writer holds, in 1 ms steps: a sweep holds it for
/// one batch (its re-reads and the writer's apply, about
/// `STORE_WRITE_DEFER_MS`). After that a return answers 409
/// `return_in_progress` (retry).
pub const LEAD_CLAIM_WAIT_MS: u64 = 2_000;
/// Records a retention or re-seal batch reads and rewrites at once
/// (`exchange::retention`, `exchange::reseal`): small, so one batch is a
/// few hundred µs of the writer's time and never fills its queue.
pub const RETENTION_BATCH_KEYS: usize = 256;
/// Pause between two batches of a sweep (pacing: at most
/// `RETENTION_BATCH_KEYS` per tick, about 12,800 records a second).
pub const RETENTION_TICK_MS: u64 = 20;
/// Most records one retention pass looks at; the next pass goes on from
/// the cursors.
pub const RETENTION_PASS_KEYS_MAX: u64 = 500_000;
/// Pause between two retention passes.
pub const RETENTION_IDLE_MS: u64 = 60_000;
/// `leadx reseal` (offline) waits this long for the store's lock before
/// it says a running leadx holds it.
pub const OFFLINE_LOCK_WAIT_MS: u64 = 2_000;
/// The first retention pass waits this long after start.
pub const RETENTION_START_DELAY_MS: u64 = 5_000;
/// A publisher's `signing_secret`: at least this many bytes (a shorter one
/// can be guessed), at most [`SECRET_BYTES_MAX`].
pub const SIGNING_SECRET_BYTES_MIN: usize = 16;
/// API key hashes one publisher may hold at once (key rotation).
pub const PUBLISHER_API_KEYS_MAX: usize = 2;
/// `Leadx-Signature`: how far `t` may be from leadx's clock.
pub const SIGNATURE_TOLERANCE_S: u64 = 300;
/// `Leadx-Signature` header bytes; the real one is about 80.
pub const SIGNATURE_HEADER_BYTES_MAX: usize = 256;
/// Signatures the replay cache remembers (`privacy::signature`). About 48
/// bytes each in the B-tree (a 24-byte entry plus node overhead), so about
/// 24 MiB at most; a full cache refuses only timestamps older than the
/// oldest one it still holds.
pub const REPLAY_CACHE_ENTRIES_MAX: usize = 512 * 1024;
