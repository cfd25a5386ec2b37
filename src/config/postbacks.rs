//! Postbacks (contract §13): a publisher's `postback_url` (with
//! `allow_plain_http`, the buyers' rule) and the `[postbacks]` table that
//! tunes delivery. Every key is optional; a config without them sends no
//! postback.
//!
//! ```toml
//! [postbacks]
//! retry_base_ms = 1000       # first retry after ~1 s, doubling …
//! retry_max_ms = 600000      # … to at most 10 min between tries
//! give_up_after_s = 86400    # then marked failed 24 h after the event
//! per_publisher_max = 4      # deliveries in flight per publisher
//! timeout_ms = 5000          # one delivery, connect to answer
//! ```

use super::walk::{Section, Walker};
use crate::http::url::{self, Url};
use crate::limits;

/// `[postbacks]`: how the outbox sender retries (`exchange::postbacks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postbacks {
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub give_up_after_s: u64,
    pub per_publisher_max: usize,
    pub timeout_ms: u64,
}

impl Default for Postbacks {
    fn default() -> Self {
        Postbacks {
            retry_base_ms: limits::POSTBACK_RETRY_BASE_MS_DEFAULT,
            retry_max_ms: limits::POSTBACK_RETRY_MAX_MS_DEFAULT,
            give_up_after_s: limits::POSTBACK_GIVE_UP_S_DEFAULT,
            per_publisher_max: limits::POSTBACK_PER_PUBLISHER_DEFAULT,
            timeout_ms: limits::POSTBACK_TIMEOUT_MS_DEFAULT,
        }
    }
}

const KEYS: &[&str] = &[
    "retry_base_ms",
    "retry_max_ms",
    "give_up_after_s",
    "per_publisher_max",
    "timeout_ms",
];

/// `[postbacks]`, every key optional.
pub(super) fn postbacks(w: &mut Walker, top: &Section) -> Option<Postbacks> {
    let d = Postbacks::default();
    if !top.has("postbacks") {
        return Some(d);
    }
    let (path, table) = top.table(w, "postbacks")?;
    let s = Section { path: &path, table };
    s.only(w, KEYS);
    let ms = |w: &mut Walker, name: &str, max: u64, default: u64| {
        s.int_or(w, name, 1..=max as i64, default as i64)
            .map(|n| n as u64)
    };
    let base = ms(w, "retry_base_ms", 3_600_000, d.retry_base_ms);
    let max = ms(w, "retry_max_ms", 86_400_000, d.retry_max_ms);
    let give_up = ms(w, "give_up_after_s", 30 * 86_400, d.give_up_after_s);
    let per = ms(
        w,
        "per_publisher_max",
        limits::POSTBACK_PER_PUBLISHER_MAX as u64,
        d.per_publisher_max as u64,
    );
    let timeout = ms(w, "timeout_ms", 60_000, d.timeout_ms);
    if let (Some(b), Some(m)) = (base, max) {
        if m < b {
            w.error(s.key("retry_max_ms"), "must be at least retry_base_ms");
            return None;
        }
    }
    Some(Postbacks {
        retry_base_ms: base?,
        retry_max_ms: max?,
        give_up_after_s: give_up?,
        per_publisher_max: per? as usize,
        timeout_ms: timeout?,
    })
}

/// A publisher's `postback_url`: an http(s) URL; plain http only to a
/// loopback host or with `allow_plain_http = true`, as for buyers
/// (`config::buyer::clear_text_ok`). `Some(None)` when absent.
pub(super) fn postback_url(w: &mut Walker, s: &Section) -> Option<Option<Url>> {
    const KEY: &str = "postback_url";
    let allowed = if s.has("allow_plain_http") {
        s.boolean(w, "allow_plain_http")?
    } else {
        false
    };
    if !s.has(KEY) {
        return Some(None);
    }
    let text = s.string(w, KEY)?;
    let u = match url::parse(&text.value) {
        Ok(u) => u,
        Err(why) => {
            w.error(s.key(KEY), format!("not a URL ({why})"));
            return None;
        }
    };
    if !super::buyer::clear_text_ok(&u, allowed) {
        w.error(
            s.key(KEY),
            "plain http:// to a non-loopback host sends postbacks in clear; use https:// or set allow_plain_http = true",
        );
        return None;
    }
    Some(Some(u))
}
