//! Buyer connections set up off the lead's clock (issue #9): when a runtime
//! is built — at start-up and in the reload thread, never on a request's
//! coroutine and never under a lock — each buyer's pools (ping and post
//! host, http and https) get `server.buyer_preconnect` connections: TCP
//! connected, TLS handshaken, pooled idle. The first lead then finds them.
//!
//! DNS is already done (`BuyerClient::new` resolves at build). Every host
//! warms in its own coroutine at once, each bounded by
//! `limits::BUYER_PRECONNECT_TIMEOUT_MS`, so a start or reload waits at
//! most that long whatever the number of buyers. A failure is counted
//! (`leadx_buyer_preconnect_total{result="failed"}`) and logged once per
//! host per build; it never fails the build, and that buyer's first call
//! connects as it always did. Pools a reload keeps (endpoint unchanged)
//! are not warmed again.
//!
//! A warmed connection ages like any idle one: it is not reused past
//! `limits::BUYER_IDLE_TIMEOUT_MS` (4 s, under the common 5 s server-side
//! keep-alive: a request written as the buyer closes is lost). So that a
//! lead after a quiet spell still finds one, the keep-warm thread
//! (`spawn_keeper`, `server.buyer_keep_warm`) replaces, every
//! `limits::BUYER_KEEP_WARM_PERIOD_MS`, warmed connections about to reach
//! that age; a pool in use stays young by itself and costs nothing
//! (docs/ops.md, "Buyer connections: pre-connect").

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{BuyerRt, Exchange, Runtime};
use crate::http::client::BuyerClient;
use crate::limits;

/// Warms the pools of `rt`'s live buyers that are not carried over from
/// `previous` (the buyers of the runtime it replaces). Blocks until every
/// host is warm or past its deadline: call it from a plain thread.
pub(super) fn warm(rt: &Runtime, previous: &[BuyerRt]) {
    let kept = |c: &Arc<BuyerClient>| {
        previous
            .iter()
            .any(|o| Arc::ptr_eq(&o.post, c) || o.ping.as_ref().is_some_and(|p| Arc::ptr_eq(p, c)))
    };
    let fresh_for = Duration::from_millis(limits::BUYER_IDLE_TIMEOUT_MS);
    pass(rt, fresh_for, |c| !kept(c), true);
}

/// Starts the keep-warm thread: every `limits::BUYER_KEEP_WARM_PERIOD_MS`,
/// each live pool of the current runtime is topped up to
/// `server.buyer_preconnect` connections young enough to outlive the next
/// period, while `server.buyer_keep_warm` is on; until the exchange is
/// dropped or drains.
pub fn spawn_keeper(ex: &Arc<Exchange>) {
    let weak: Weak<Exchange> = Arc::downgrade(ex);
    let period = Duration::from_millis(limits::BUYER_KEEP_WARM_PERIOD_MS);
    let fresh_for = Duration::from_millis(limits::BUYER_IDLE_TIMEOUT_MS) - period;
    let spawned = std::thread::Builder::new()
        .name("leadx-keepwarm".into())
        .spawn(move || loop {
            crate::sync::sleep(period);
            let Some(ex) = weak.upgrade() else { return };
            if ex.posts_closed() {
                return;
            }
            let rt = ex.runtime();
            drop(ex);
            if rt.config.server.buyer_keep_warm {
                pass(&rt, fresh_for, |_| true, false);
            }
        });
    if let Err(e) = spawned {
        log::error!(target: "leadx::buyer", "cannot start the keep-warm thread; pools warm at start and reload only error=\"{e}\"");
    }
}

/// One warming pass over `rt`'s pools that `pick` selects: one coroutine
/// per pool, all bounded by one deadline; counted per buyer. `loud`: a
/// failure is logged at warn (a build, rare), else at debug (keep-warm
/// runs every second).
fn pass(rt: &Runtime, fresh_for: Duration, pick: impl Fn(&Arc<BuyerClient>) -> bool, loud: bool) {
    let want = rt.config.server.buyer_preconnect;
    if want == 0 {
        return;
    }
    // wall clock: a connect deadline, not business time.
    let deadline = Instant::now() + Duration::from_millis(limits::BUYER_PRECONNECT_TIMEOUT_MS);
    let mut calls = Vec::new();
    for (i, b) in rt.buyers.iter().enumerate() {
        for (stage, client) in [("ping", b.ping.as_ref()), ("post", Some(&b.post))] {
            let Some(client) = client.filter(|c| pick(c)) else {
                continue;
            };
            let c = client.clone();
            let call = crate::rt::spawn(move || c.warm(want, fresh_for, deadline));
            calls.push((i, stage, call));
        }
    }
    for (i, stage, call) in calls {
        let b = &rt.buyers[i];
        // A panic in the coroutine counts as a failure, never the caller's.
        let reason = match call.join() {
            Ok(Ok(opened)) => {
                b.metrics.preconnected(opened as u64, 0);
                continue;
            }
            Ok(Err(e)) => e.reason(),
            Err(_) => "panic",
        };
        b.metrics.preconnected(0, 1);
        if loud {
            log::warn!(target: "leadx::buyer", "pre-connect failed buyer={} stage={stage} reason={reason}", b.cfg.id);
        } else {
            log::debug!(target: "leadx::buyer", "keep-warm connect failed buyer={} stage={stage} reason={reason}", b.cfg.id);
        }
    }
}
