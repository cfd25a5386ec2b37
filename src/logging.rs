//! Logging: one line per event on stderr, in logfmt, for journald.
//!
//! Format: `level=info target=leadx::api msg="lead sold" buyer=b1 price_cents=950`.
//! Values are quoted and escaped when they need it, so a message carrying a
//! newline or a quote still makes exactly one line — one journal entry.
//!
//! Under systemd (`JOURNAL_STREAM` set) there is no timestamp, because
//! journald stamps every line itself, and each line starts with a `<N>`
//! syslog priority prefix, which journald strips and turns into the entry's
//! PRIORITY (so `journalctl -p warning` works). Elsewhere each line starts
//! with `ts=` and an RFC 3339 UTC time.
//!
//! Lines are written by a logger thread of their own, never by the code
//! that logs: a stalled stderr (journald slow, a pipe nobody reads) must not
//! block a may worker, which would stall every request on it. The queue is
//! bounded; when it is full a line is dropped and counted, and the thread
//! reports the count once stderr moves again. Errors have a lane of their
//! own that other lines cannot fill.
//!
//! The level comes from `LEADX_LOG` (`error`, `warn`, `info`, `debug`,
//! `trace`; default `info`).
//!
//! **Convention: never log PII.** No names, phone numbers, emails, street
//! addresses or consumer IP addresses — not in messages and not in
//! key-values. Log ids instead (`lead_id`, `ping_id`, `buyer`, `publisher`),
//! which an operator can look up through the admin API, where access is
//! authenticated. Buyer credentials and API keys are never logged either.
//! Structured fields go in key-values: `log::info!(buyer = id; "post accepted")`,
//! with `:%` for anything that implements Display: `log::warn!(error:% = e; "…")`.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::OnceLock;

use log::kv::{Key, Value, VisitSource};
use log::{Level, LevelFilter, Log, Metadata, Record};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// Env var that sets the level.
pub const LEVEL_ENV: &str = "LEADX_LOG";

const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// The process logger: filters by level, formats, queues the line for the
/// logger thread (started with the first line).
#[derive(Debug)]
pub struct Logger {
    level: LevelFilter,
    journald: bool,
    lanes: OnceLock<Lanes>,
}

impl Logger {
    pub fn new(level: LevelFilter, journald: bool) -> Self {
        Logger {
            level,
            journald,
            lanes: OnceLock::new(),
        }
    }

    fn lanes(&self) -> &Lanes {
        self.lanes
            .get_or_init(|| Lanes::start(Box::new(std::io::stderr())))
    }
}

/// What the logger thread receives.
enum Msg {
    Line(String),
    /// Answer once every line queued before it is written.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// The two bounded queues to the logger thread and the count of lines
/// dropped because they were full.
#[derive(Debug)]
struct Lanes {
    errors: crossbeam::channel::Sender<Msg>,
    rest: crossbeam::channel::Sender<Msg>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Line(_) => "Line",
            Msg::Flush(_) => "Flush",
        })
    }
}

impl Lanes {
    /// Starts the logger thread writing to `out`.
    fn start(mut out: Box<dyn std::io::Write + Send>) -> Lanes {
        use crossbeam::channel::bounded;
        let (errors, error_rx) = bounded::<Msg>(crate::limits::LOG_ERROR_LINES_QUEUED_MAX);
        let (rest, rest_rx) = bounded::<Msg>(crate::limits::LOG_LINES_QUEUED_MAX);
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let lost = dropped.clone();
        let spawned = std::thread::Builder::new().name("leadx-log".into()).spawn(move || {
            let mut buf = Vec::with_capacity(64 * 1024);
            loop {
                // own thread: the logger's; errors first when both wait.
                let first = crossbeam::select! {
                    recv(error_rx) -> m => m,
                    recv(rest_rx) -> m => m,
                };
                let Ok(first) = first else { return };
                let mut flushes = Vec::new();
                let mut take = |m: Msg, buf: &mut Vec<u8>| match m {
                    Msg::Line(l) => buf.extend_from_slice(l.as_bytes()),
                    Msg::Flush(done) => flushes.push(done),
                };
                take(first, &mut buf);
                while buf.len() < 60 * 1024 {
                    match error_rx.try_recv().or_else(|_| rest_rx.try_recv()) {
                        Ok(m) => take(m, &mut buf),
                        Err(_) => break,
                    }
                }
                let n = lost.swap(0, std::sync::atomic::Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        buf,
                        "level=warn target=leadx::logging msg=\"log lines dropped: stderr did not keep up\" dropped={n}"
                    );
                }
                // One write for many lines; if it fails there is nowhere
                // left to report it.
                let _ = out.write_all(&buf).and_then(|()| out.flush());
                buf.clear();
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        if let Err(e) = spawned {
            // Without the thread every line is dropped and counted.
            eprintln!("leadx: cannot start the logger thread: {e}");
        }
        Lanes {
            errors,
            rest,
            dropped,
        }
    }

    /// Queues a line without ever waiting.
    fn send(&self, level: Level, line: String) {
        let lane = if level == Level::Error {
            &self.errors
        } else {
            &self.rest
        };
        if lane.try_send(Msg::Line(line)).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Waits (bounded) until the lines queued so far are written: for the
    /// process's last words, on a plain thread.
    fn flush(&self, timeout: std::time::Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        // Called at exit on the main thread, never on a worker.
        let queued = self.errors.send_timeout(Msg::Flush(tx), timeout).is_ok();
        queued && rx.recv_timeout(timeout).is_ok() // own thread: main, at exit
    }
}

/// A `LEADX_LOG` value that is not a level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLevel(pub String);

impl std::fmt::Display for UnknownLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{LEVEL_ENV}={:?} is not error|warn|info|debug|trace",
            self.0
        )
    }
}

impl std::error::Error for UnknownLevel {}

/// Parses a `LEADX_LOG` value; unset or empty means `info`.
pub fn parse_level(value: Option<&str>) -> Result<LevelFilter, UnknownLevel> {
    match value.map(str::trim).unwrap_or("") {
        "" | "info" => Ok(LevelFilter::Info),
        "error" => Ok(LevelFilter::Error),
        "warn" => Ok(LevelFilter::Warn),
        "debug" => Ok(LevelFilter::Debug),
        "trace" => Ok(LevelFilter::Trace),
        other => Err(UnknownLevel(other.to_owned())),
    }
}

/// Installs the logger for the process (later calls do nothing). A bad
/// `LEADX_LOG` falls back to `info` and says so in the log.
pub fn init() {
    static LOGGER: OnceLock<Logger> = OnceLock::new();
    let env = std::env::var(LEVEL_ENV).ok();
    let parsed = parse_level(env.as_deref());
    let level = parsed.clone().unwrap_or(LevelFilter::Info);
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let logger = LOGGER.get_or_init(|| Logger::new(level, journald));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
        if let Err(e) = parsed {
            log::warn!("{e}; logging at info");
        }
    }
}

/// may logs every socket it adds to or removes from epoll at `info`: a line
/// per buyer connection, formatted and written to stderr on a worker. Its
/// warnings and errors still get through.
fn level_for(target: &str, level: LevelFilter) -> LevelFilter {
    if target == "may" || target.starts_with("may::") {
        level.min(LevelFilter::Warn)
    } else {
        level
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= level_for(metadata.target(), self.level)
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = String::with_capacity(256);
        if self.journald {
            line.push_str(syslog_prefix(record.level()));
            format_line(&mut line, record, None);
        } else {
            format_line(&mut line, record, Some(OffsetDateTime::now_utc()));
        }
        line.push('\n');
        self.lanes().send(record.level(), line);
    }

    /// Bounded: a stderr that does not move cannot hold up the exit.
    fn flush(&self) {
        if let Some(lanes) = self.lanes.get() {
            lanes.flush(std::time::Duration::from_secs(2));
        }
    }
}

/// The `<N>` prefix journald reads as the entry's syslog priority.
fn syslog_prefix(level: Level) -> &'static str {
    match level {
        Level::Error => "<3>",
        Level::Warn => "<4>",
        Level::Info => "<6>",
        Level::Debug | Level::Trace => "<7>",
    }
}

/// Formats one event as a logfmt line (without the trailing newline).
pub fn format_line(out: &mut String, record: &Record, now: Option<OffsetDateTime>) {
    if let Some(now) = now {
        out.push_str("ts=");
        match now.format(TIMESTAMP) {
            Ok(ts) => out.push_str(&ts),
            Err(_) => out.push_str("unknown"),
        }
        out.push(' ');
    }
    out.push_str("level=");
    out.push_str(&record.level().as_str().to_ascii_lowercase());
    out.push_str(" target=");
    write_value(out, record.target());
    out.push_str(" msg=");
    let msg = record.args().to_string();
    write_quoted(out, &msg);
    let mut pairs = PairWriter { out };
    // The visitor never fails.
    let _ = record.key_values().visit(&mut pairs);
}

struct PairWriter<'a> {
    out: &'a mut String,
}

impl<'kvs> VisitSource<'kvs> for PairWriter<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        self.out.push(' ');
        write_key(self.out, key.as_str());
        self.out.push('=');
        let value = value.to_string();
        write_value(self.out, &value);
        Ok(())
    }
}

/// Keys are written as given when they are plain identifiers; any other
/// character becomes `_`, since a key cannot be quoted in logfmt.
fn write_key(out: &mut String, key: &str) {
    if key.is_empty() {
        out.push('_');
    }
    for c in key.chars() {
        let plain = c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        out.push(if plain { c } else { '_' });
    }
}

/// A value bare when it can be (`b1`, `950`), quoted otherwise.
pub fn write_value(out: &mut String, value: &str) {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !matches!(c, '"' | '=' | '\\'));
    if bare {
        out.push_str(value);
    } else {
        write_quoted(out, value);
    }
}

/// A quoted value, escaped so that it never spans more than one line.
pub fn write_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Other control characters (and the Unicode line and paragraph
            // separators some viewers break on) as escapes.
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Events about leads and buyers, logged by id only: the ping, lead,
/// publisher and buyer ids an operator looks up through the admin API, the
/// outcome, money in cents, and failure reasons from leadx's own closed sets.
/// A buyer's free-text rejection reason is *not* logged: a buyer may echo
/// lead data in it (it stays in the lead's call records, behind the admin
/// token).
///
/// Per-lead and per-call events are `debug`: at a few thousand sales a
/// second one info line each would hit journald's rate limit (and lose
/// lines that matter); every lead is in the store and counted in the
/// metrics anyway. `info` gets one `traffic summary` line per
/// `limits::LOG_SUMMARY_INTERVAL_MS` with the auctions, sales, unsold posts,
/// buyer errors and time-outs of that interval, test traffic included. It is
/// written by the first event after the interval ends (no timer thread), so
/// a quiet exchange writes none; `events::flush_summary` writes what is left
/// at shutdown.
pub mod events {
    use std::sync::atomic::{AtomicU64, Ordering};

    use crate::limits;
    use crate::records::{CallOutcome, LeadRecord, LeadStatus, PingRecord};

    const TARGET: &str = "leadx::exchange";

    /// One interval's counts.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Counts {
        pub pings: u64,
        pub sold: u64,
        pub unsold: u64,
        /// Buyer calls that failed (error, invalid answer, failed post).
        pub buyer_errors: u64,
        pub buyer_timeouts: u64,
    }

    /// Counters of the current interval; lock-free, shared by every worker.
    #[derive(Debug)]
    pub struct Summary {
        pub(super) pings: AtomicU64,
        pub(super) sold: AtomicU64,
        pub(super) unsold: AtomicU64,
        pub(super) buyer_errors: AtomicU64,
        pub(super) buyer_timeouts: AtomicU64,
        /// When the current interval began (ms since the epoch; 0: not yet).
        since_ms: AtomicU64,
    }

    impl Default for Summary {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Summary {
        pub const fn new() -> Self {
            Summary {
                pings: AtomicU64::new(0),
                sold: AtomicU64::new(0),
                unsold: AtomicU64::new(0),
                buyer_errors: AtomicU64::new(0),
                buyer_timeouts: AtomicU64::new(0),
                since_ms: AtomicU64::new(0),
            }
        }

        pub(super) fn add(counter: &AtomicU64, n: u64) {
            counter.fetch_add(n, Ordering::Relaxed);
        }

        /// The interval's counts, reset, if `interval_ms` has passed since it
        /// began at `now_ms` (one caller wins a given interval); the first
        /// call starts the first interval.
        pub fn take_due(&self, now_ms: u64, interval_ms: u64) -> Option<(Counts, u64)> {
            let since = self.since_ms.load(Ordering::Relaxed);
            if since == 0 {
                let _ =
                    self.since_ms
                        .compare_exchange(0, now_ms, Ordering::Relaxed, Ordering::Relaxed);
                return None;
            }
            if now_ms.saturating_sub(since) < interval_ms {
                return None;
            }
            self.since_ms
                .compare_exchange(since, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .ok()?;
            Some((self.take(), now_ms - since))
        }

        /// The counts so far, reset.
        pub fn take(&self) -> Counts {
            let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
            Counts {
                pings: take(&self.pings),
                sold: take(&self.sold),
                unsold: take(&self.unsold),
                buyer_errors: take(&self.buyer_errors),
                buyer_timeouts: take(&self.buyer_timeouts),
            }
        }
    }

    static SUMMARY: Summary = Summary::new();

    fn log_summary(c: Counts, interval_ms: u64) {
        if c == Counts::default() {
            return;
        }
        log::info!(target: TARGET, interval_ms = interval_ms, pings = c.pings, sold = c.sold, unsold = c.unsold,
            buyer_errors = c.buyer_errors, buyer_timeouts = c.buyer_timeouts; "traffic summary");
    }

    fn maybe_summarise() {
        if let Some((c, interval_ms)) =
            // wall clock: when the log summary is due, not business time.
            SUMMARY.take_due(crate::ids::now_ms(), limits::LOG_SUMMARY_INTERVAL_MS)
        {
            log_summary(c, interval_ms);
        }
    }

    /// Writes the counts of the interval in progress (at shutdown).
    pub fn flush_summary() {
        let since = SUMMARY.since_ms.swap(0, Ordering::Relaxed);
        let interval_ms = if since == 0 {
            0
        } else {
            // wall clock: the summary's interval.
            crate::ids::now_ms().saturating_sub(since)
        };
        log_summary(SUMMARY.take(), interval_ms);
    }

    /// An auction is over: debug for the auction and for each buyer call
    /// that failed; counted in the summary.
    pub fn auction(ping: &PingRecord) {
        let best = ping.bids.first().map(|b| b.price).unwrap_or(0);
        log::debug!(target: TARGET, ping_id = ping.ping_id.as_str(), publisher = ping.publisher.as_str(), vertical = ping.vertical.as_str(),
            bids = ping.bids.len(), best_price_cents = best, auction_us = ping.auction_us, test = ping.test; "auction done");
        Summary::add(&SUMMARY.pings, 1);
        for c in ping.calls.iter().filter(|c| {
            matches!(
                c.outcome,
                CallOutcome::Error | CallOutcome::Invalid | CallOutcome::Timeout
            )
        }) {
            let reason = c.reason.as_deref().unwrap_or("");
            let counter = if c.outcome == CallOutcome::Timeout {
                &SUMMARY.buyer_timeouts
            } else {
                &SUMMARY.buyer_errors
            };
            Summary::add(counter, 1);
            log::debug!(target: TARGET, ping_id = ping.ping_id.as_str(), buyer = c.buyer.as_str(), outcome = c.outcome.as_str(),
                reason = reason, latency_us = c.latency_us; "buyer ping failed");
        }
        maybe_summarise();
    }

    /// A post is settled (and durable): debug with the outcome and for each
    /// buyer post that failed; counted in the summary.
    pub fn post(rec: &LeadRecord) {
        for c in rec
            .post_calls
            .iter()
            .filter(|c| c.outcome == CallOutcome::Failed)
        {
            let timeout = c.reason.as_deref() == Some("timeout");
            Summary::add(
                if timeout {
                    &SUMMARY.buyer_timeouts
                } else {
                    &SUMMARY.buyer_errors
                },
                1,
            );
            // Failure reasons are leadx's own (client and parser reasons).
            log::debug!(target: TARGET, lead_id = rec.lead_id.as_str(), buyer = c.buyer.as_str(), reason = c.reason.as_deref().unwrap_or(""),
                latency_us = c.latency_us; "buyer post failed");
        }
        let rejected = rec
            .post_calls
            .iter()
            .filter(|c| c.outcome == CallOutcome::Rejected)
            .count();
        if rec.status == LeadStatus::Sold {
            Summary::add(&SUMMARY.sold, 1);
            log::debug!(target: TARGET, lead_id = rec.lead_id.as_str(), ping_id = rec.ping_id.as_str(), publisher = rec.publisher.as_str(),
                buyer = rec.buyer.as_deref().unwrap_or(""), price_cents = rec.price.unwrap_or(0), payout_cents = rec.payout.unwrap_or(0),
                rejected = rejected, test = rec.test; "lead sold");
        } else {
            Summary::add(&SUMMARY.unsold, 1);
            log::debug!(target: TARGET, lead_id = rec.lead_id.as_str(), ping_id = rec.ping_id.as_str(), publisher = rec.publisher.as_str(),
                reason = rec.reason.as_deref().unwrap_or("unsold"), rejected = rejected, test = rec.test; "lead unsold");
        }
        maybe_summarise();
    }

    /// A sold lead was returned (contract §13): rare and about money, so
    /// at info, by ids and cents (the admin's reason is free text and stays
    /// in the record).
    pub fn returned(rec: &LeadRecord) {
        log::info!(target: TARGET, lead_id = rec.lead_id.as_str(), ping_id = rec.ping_id.as_str(), publisher = rec.publisher.as_str(),
            buyer = rec.buyer.as_deref().unwrap_or(""), price_cents = rec.price.unwrap_or(0), payout_cents = rec.payout.unwrap_or(0),
            test = rec.test; "lead returned");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn line(
        level: Level,
        msg: std::fmt::Arguments,
        kvs: &[(&str, &str)],
        now: Option<OffsetDateTime>,
    ) -> String {
        let mut out = String::new();
        let record = Record::builder()
            .level(level)
            .target("leadx::api")
            .args(msg)
            .key_values(&kvs)
            .build();
        format_line(&mut out, &record, now);
        out
    }

    #[test]
    fn plain_event_is_logfmt() {
        let l = line(
            Level::Info,
            format_args!("lead sold"),
            &[("buyer", "b1"), ("price_cents", "950")],
            None,
        );
        assert_eq!(
            l,
            "level=info target=leadx::api msg=\"lead sold\" buyer=b1 price_cents=950"
        );
    }

    #[test]
    fn timestamp_is_rfc3339_utc_with_millis() {
        let now = datetime!(2026-03-01 12:34:56.789 UTC);
        let l = line(Level::Warn, format_args!("x"), &[], Some(now));
        assert_eq!(
            l,
            "ts=2026-03-01T12:34:56.789Z level=warn target=leadx::api msg=\"x\""
        );
    }

    #[test]
    fn newlines_and_quotes_never_break_the_line() {
        let l = line(
            Level::Error,
            format_args!("bad \"answer\"\nfrom buyer\r\t\u{7}"),
            &[
                ("reason", "two\nlines"),
                ("path", "C:\\x"),
                ("empty", ""),
                ("we ird", "a=b"),
            ],
            None,
        );
        assert!(!l.contains('\n') && !l.contains('\r'), "{l}");
        assert!(
            l.contains(r#"msg="bad \"answer\"\nfrom buyer\r\t\u{0007}""#),
            "{l}"
        );
        assert!(l.contains(r#" reason="two\nlines""#), "{l}");
        assert!(l.contains(r#" path="C:\\x""#), "{l}");
        assert!(l.contains(r#" empty="""#), "{l}");
        assert!(l.contains(r#" we_ird="a=b""#), "{l}");
    }

    #[test]
    fn levels_parse_and_default_to_info() {
        assert_eq!(parse_level(None), Ok(LevelFilter::Info));
        assert_eq!(parse_level(Some("")), Ok(LevelFilter::Info));
        assert_eq!(parse_level(Some("debug")), Ok(LevelFilter::Debug));
        assert_eq!(parse_level(Some("error")), Ok(LevelFilter::Error));
        assert_eq!(parse_level(Some("loud")), Err(UnknownLevel("loud".into())));
    }

    #[test]
    fn logger_filters_by_level() {
        let logger = Logger::new(LevelFilter::Warn, true);
        let meta = |level| Metadata::builder().level(level).target("leadx").build();
        assert!(logger.enabled(&meta(Level::Error)));
        assert!(logger.enabled(&meta(Level::Warn)));
        assert!(!logger.enabled(&meta(Level::Info)));
        assert_eq!(syslog_prefix(Level::Warn), "<4>");
    }

    /// Records the exchange events and auth-failure lines of this test
    /// binary (the only logger it has; other targets are dropped).
    struct Capture(parking_lot::Mutex<Vec<(Level, String)>>);

    impl Log for Capture {
        fn enabled(&self, m: &Metadata) -> bool {
            m.target() == "leadx::exchange" || m.target() == "leadx::auth"
        }
        fn log(&self, record: &Record) {
            if !self.enabled(record.metadata()) {
                return;
            }
            let mut line = String::new();
            format_line(&mut line, record, None);
            self.0.lock().push((record.level(), line));
        }
        fn flush(&self) {}
    }

    fn capture() -> &'static Capture {
        static CAPTURE: OnceLock<Capture> = OnceLock::new();
        let c = CAPTURE.get_or_init(|| Capture(parking_lot::Mutex::new(Vec::new())));
        if log::set_logger(c).is_ok() {
            log::set_max_level(LevelFilter::Trace);
        }
        c
    }

    /// Issue #7 point 8: no info line per lead (journald's rate limit);
    /// the lead still shows at debug.
    #[test]
    fn per_lead_events_are_debug_only() {
        let cap = capture();
        let lead_id = "ev0000000000000000000000000000ff";
        let rec = crate::records::LeadRecord {
            v: crate::records::RECORD_VERSION,
            lead_id: lead_id.into(),
            ping_id: "p".into(),
            publisher: "pub1".into(),
            vertical: "auto".into(),
            test: false,
            created_ms: 0,
            status: crate::records::LeadStatus::Sold,
            reason: None,
            price: Some(1_000),
            payout: Some(800),
            buyer: Some("b1".into()),
            buyer_lead_id: None,
            sold_ms: None,
            returned_ms: None,
            return_reason: None,
            post_calls: vec![crate::records::CallRecord {
                buyer: "b0".into(),
                stage: crate::records::CallStage::Post,
                outcome: crate::records::CallOutcome::Failed,
                reason: Some("status_500".into()),
                latency_us: 1,
                price: None,
            }],
            pii_json: String::new(),
            pii_erased_ms: None,
            suppression_list: None,
        };
        events::post(&rec);
        let mine: Vec<(Level, String)> = cap
            .0
            .lock()
            .iter()
            .filter(|(_, l)| l.contains(lead_id))
            .cloned()
            .collect();
        assert_eq!(mine.len(), 2, "{mine:?}");
        assert!(
            mine.iter().all(|(level, _)| *level == Level::Debug),
            "{mine:?}"
        );
    }

    /// Contract §12: a burst of 1,000 failed authentications makes a
    /// bounded number of lines, each with the client address and none with
    /// a secret; the next second's line reports how many were held back.
    #[test]
    fn a_burst_of_auth_failures_is_counted_and_rate_limited() {
        use crate::api::authfail::{failed, LINES_PER_SECOND};
        let cap = capture();
        let client: std::net::IpAddr = "192.0.2.77".parse().unwrap();
        let g = crate::metrics::global();
        let before = g.auth_failure_count("publisher_key");
        // A second of its own, far from any other test's clock.
        let t = 4_000_000_000_000;
        for _ in 0..1_000 {
            failed("publisher_key", "", client, "/v1/ping", t);
        }
        assert_eq!(g.auth_failure_count("publisher_key"), before + 1_000);
        failed("publisher_key", "", client, "/v1/ping", t + 1_000);
        let lines: Vec<String> = cap
            .0
            .lock()
            .iter()
            .filter(|(_, l)| l.contains("client=192.0.2.77"))
            .map(|(_, l)| l.clone())
            .collect();
        assert_eq!(lines.len() as u64, LINES_PER_SECOND + 1, "{lines:?}");
        assert!(lines.iter().all(|l| l.contains("kind=publisher_key")));
        let last = lines.last().unwrap();
        assert!(
            last.contains(&format!("suppressed={}", 1_000 - LINES_PER_SECOND)),
            "{last}"
        );
    }

    #[test]
    fn the_summary_covers_one_interval_then_starts_again() {
        use events::{Counts, Summary};
        let s = Summary::new();
        assert_eq!(
            s.take_due(1_000, 10_000),
            None,
            "the first call starts the interval"
        );
        Summary::add(&s.pings, 3);
        Summary::add(&s.sold, 2);
        Summary::add(&s.buyer_timeouts, 1);
        assert_eq!(s.take_due(10_999, 10_000), None, "not yet");
        let want = Counts {
            pings: 3,
            sold: 2,
            unsold: 0,
            buyer_errors: 0,
            buyer_timeouts: 1,
        };
        assert_eq!(s.take_due(11_000, 10_000), Some((want, 10_000)));
        assert_eq!(
            s.take_due(11_001, 10_000),
            None,
            "a new interval began at 11 000"
        );
        Summary::add(&s.unsold, 1);
        assert_eq!(
            s.take_due(21_500, 10_000),
            Some((
                Counts {
                    unsold: 1,
                    ..Counts::default()
                },
                10_500
            ))
        );
    }

    #[test]
    fn may_info_lines_are_dropped_but_its_warnings_kept() {
        let logger = Logger::new(LevelFilter::Info, false);
        let meta = |level, target| Metadata::builder().level(level).target(target).build();
        assert!(!logger.enabled(&meta(Level::Info, "may::io::sys::select")));
        assert!(logger.enabled(&meta(Level::Warn, "may::io::sys::select")));
        assert!(logger.enabled(&meta(Level::Info, "leadx::daemon")));
        assert!(
            logger.enabled(&meta(Level::Info, "mayhem")),
            "only may's own targets"
        );
    }
}

#[cfg(test)]
mod lane_tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// A stderr that blocks until `open` is set, then collects.
    struct Stuck {
        open: Arc<std::sync::atomic::AtomicBool>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl std::io::Write for Stuck {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            while !self.open.load(std::sync::atomic::Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1)); // own thread: the test's
            }
            self.got.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_stderr_never_blocks_the_caller_and_errors_keep_their_lane() {
        let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let lanes = Lanes::start(Box::new(Stuck {
            open: open.clone(),
            got: got.clone(),
        }));
        let t0 = Instant::now();
        let n = 3 * crate::limits::LOG_LINES_QUEUED_MAX;
        for i in 0..n {
            lanes.send(Level::Info, format!("info {i}\n"));
        }
        lanes.send(Level::Error, "the error\n".into());
        // Not a speed limit: a blocking send would never get here at all.
        eprintln!("{n} lines queued or dropped in {:?}", t0.elapsed());
        assert!(lanes.dropped.load(std::sync::atomic::Ordering::Relaxed) > 0);
        assert!(!lanes.flush(Duration::from_millis(50)), "flush is bounded");
        open.store(true, std::sync::atomic::Ordering::Release);
        assert!(lanes.flush(Duration::from_secs(10)));
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("the error\n"),
            "the error line was not dropped"
        );
        assert!(
            text.contains("msg=\"log lines dropped: stderr did not keep up\" dropped="),
            "drop reported"
        );
        assert!(text.contains("info 0\n"));
    }
}
