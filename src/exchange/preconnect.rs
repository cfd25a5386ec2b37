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
//! keep-alive), so a buyer whose first lead comes later connects then, as
//! before (docs/buyers.md, "Pre-connect").

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{BuyerRt, Runtime};
use crate::http::client::BuyerClient;
use crate::limits;

/// Warms the pools of `rt`'s live buyers that are not carried over from
/// `previous` (the buyers of the runtime it replaces). Blocks until every
/// host is warm or past its deadline: call it from a plain thread.
pub(super) fn warm(rt: &Runtime, previous: &[BuyerRt]) {
    let want = rt.config.server.buyer_preconnect;
    if want == 0 {
        return;
    }
    let kept = |c: &Arc<BuyerClient>| {
        previous
            .iter()
            .any(|o| Arc::ptr_eq(&o.post, c) || o.ping.as_ref().is_some_and(|p| Arc::ptr_eq(p, c)))
    };
    // wall clock: a connect deadline, not business time.
    let deadline = Instant::now() + Duration::from_millis(limits::BUYER_PRECONNECT_TIMEOUT_MS);
    let fresh_for = Duration::from_millis(limits::BUYER_IDLE_TIMEOUT_MS);
    let mut calls = Vec::new();
    for (i, b) in rt.buyers.iter().enumerate() {
        for (stage, client) in [("ping", b.ping.as_ref()), ("post", Some(&b.post))] {
            let Some(client) = client.filter(|c| !kept(c)) else {
                continue;
            };
            let c = client.clone();
            let call = crate::rt::spawn(move || c.warm(want, fresh_for, deadline));
            calls.push((i, stage, call));
        }
    }
    for (i, stage, call) in calls {
        let b = &rt.buyers[i];
        // A panic in the coroutine counts as a failure, never the build's.
        match call.join() {
            Ok(Ok(opened)) => b.metrics.preconnected(opened as u64, 0),
            Ok(Err(e)) => {
                b.metrics.preconnected(0, 1);
                log::warn!(target: "leadx::buyer", "pre-connect failed buyer={} stage={stage} reason={}", b.cfg.id, e.reason());
            }
            Err(_) => b.metrics.preconnected(0, 1),
        }
    }
}
