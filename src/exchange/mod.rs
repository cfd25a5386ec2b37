//! The exchange's live state and its stages. Endpoints call one stage each
//! (`stages`: `ping`, `post`, `direct`; `reads`: `lead`, `transactions`,
//! `sales_page`), which return a record or a `Refusal`. Under them run the
//! two I/O stages: the ping auction (`fanout`) and the post with failover
//! that makes a sale durable (`sale`), both under the permits of
//! `admission`, with `outcomes` keeping a sale whose outcome write failed.
//! `returns` reverses a sale and `postbacks` tells publishers (contract §13).
//! `report` is where per-lead metrics and events leave, test traffic
//! filtered out once.
//!
//! `Runtime` is one immutable config with everything built from it (buyer
//! connection pools, metric handles); a reload builds a new one and swaps it
//! in atomically, and every request keeps the `Arc<Runtime>` it started
//! with. State that must outlive a reload (caps ledgers, breakers and
//! gates, claims, the ping cache) lives in `Exchange`.

pub mod admission;
pub mod caps;
pub mod claims;
pub mod consent;
pub mod fanout;
pub mod health;
pub mod outcomes;
pub mod pings;
pub mod postbacks;
pub mod preconnect;
mod reads;
mod refusal;
mod report;
pub mod reseal;
pub mod retention;
mod returns;
pub mod sale;
pub mod sandbox;
mod stages;
pub mod suppression;

pub use refusal::Refusal;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::buyer::{self, Integration};
use crate::clock::Clock;
use crate::config::{Buyer, Config, ConfigError, Publisher};
use crate::http::client::{BuyerClient, ClientOptions};
use crate::metrics::{self, BuyerMetrics, LiveStats};
use crate::store::Store;

/// A buyer with everything needed to call it: its config and what was
/// built from it, in one struct (`Runtime::buyers` is the one list).
pub struct BuyerRt {
    pub cfg: Buyer,
    /// Its pools; kept across a reload while the endpoint is unchanged
    /// (`BuyerClient::same_endpoint`), so a reload does not cool them.
    pub ping: Option<Arc<BuyerClient>>,
    pub post: Arc<BuyerClient>,
    pub metrics: Arc<BuyerMetrics>,
    /// Its format, built with the runtime (`buyer::for_buyer`); stateless
    /// formats share one object, so buyers speaking them share a ping body.
    pub integration: Arc<dyn Integration>,
    /// Its sales and spend per period in its zone (live traffic), capped
    /// or not: checked and reserved lock-free on the request path, counted
    /// from the store when a runtime first named it.
    pub ledger: Arc<caps::Ledger>,
    /// Its circuit breaker and concurrency gate (`[buyer.health]`), kept
    /// across reloads by buyer id.
    pub health: health::BuyerHealth,
    /// Its own posting spec (contract §9), when it has a `[buyer.ping]` or
    /// `[buyer.post]` table: a stage it describes is rendered and read by
    /// this instead of `integration` (`fanout`, `sale`); a stage it does not
    /// describe stays native.
    pub spec: Option<buyer::spec::SpecIntegration>,
}

impl BuyerRt {
    /// Contract §10: open by its `[buyer.schedule]` at `now_ms`, in its zone.
    pub(crate) fn schedule_open(&self, now_ms: u64) -> Result<(), crate::routing::Reason> {
        match &self.cfg.schedule {
            Some(s) if !crate::routing::schedule::is_open(s, &self.cfg.timezone, now_ms) => {
                Err(crate::routing::Reason::Schedule)
            }
            _ => Ok(()),
        }
    }

    /// Contract §10's checks just before a call, shared by ping and post:
    /// enough time left for a call of `timeout_ms` before `deadline`
    /// (`no_time`), a slot at its concurrency gate (the permit travels with
    /// the call), and its breaker last, so a trial call is never spent on a
    /// buyer another check skips.
    pub(crate) fn admit_call(
        &self,
        timeout_ms: u64,
        deadline: std::time::Instant,
        now_ms: u64,
    ) -> Result<Option<crate::routing::gate::GatePermit>, crate::routing::Reason> {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        crate::routing::budget::call_ms(timeout_ms, left.as_millis() as u64, 0)?;
        let gate = self
            .health
            .gate
            .as_ref()
            .map(|g| g.try_enter())
            .transpose()?;
        if let Some(breaker) = &self.health.breaker {
            breaker.admit(now_ms)?;
        }
        Ok(gate)
    }
}

/// One config and what was built from it.
pub struct Runtime {
    /// The config, its `buyers` moved into `Runtime::buyers` (empty here;
    /// `layering::runtime_buyers_are_one_list` keeps code off it).
    pub config: Config,
    /// Every buyer, in config order; a `Bid`'s `buyer` indexes this.
    pub buyers: Vec<BuyerRt>,
    /// The `[[suppression]]` files, loaded with this runtime.
    pub suppression: suppression::Lists,
    /// The data key ring PII is sealed with (`[privacy]`); `None`: in
    /// clear (a v1 config).
    pub key_ring: Option<crate::privacy::KeyRing>,
    /// The runtime sandbox publishers run on (`exchange::sandbox`): this
    /// config with the simulated buyers as its buyers; `None` when no
    /// publisher is a sandbox publisher.
    pub sandbox: Option<Arc<Runtime>>,
}

impl Runtime {
    /// Builds connection pools for every buyer and attaches its caps ledger
    /// and health controls from `books` (new buyers are counted in `store`). Resolves host names
    /// and waits for the store, so it blocks: call it from a plain thread
    /// (start-up, the reload thread), never on a request.
    ///
    /// Pools of buyers whose endpoint is unchanged from `previous` are kept;
    /// new ones are warmed here, before the runtime is returned
    /// (`preconnect::warm`, bounded by `limits::BUYER_PRECONNECT_TIMEOUT_MS`).
    fn build(
        config: Config,
        books: (&caps::LedgerBook, &health::HealthBook),
        store: &Store,
        now_ms: u64,
        previous: Option<&Runtime>,
    ) -> Result<Runtime, Vec<ConfigError>> {
        let sandbox = if sandbox::wanted(&config) {
            let mut simulated = config.clone();
            simulated.buyers = sandbox::buyers(&config)?;
            // Books of its own: no state is shared with a configured buyer,
            // even one whose id happens to match.
            let books = (&caps::LedgerBook::default(), &health::HealthBook::default());
            let sandbox = Runtime::build_one(simulated, books, store, now_ms, None)?;
            Some(Arc::new(sandbox))
        } else {
            None
        };
        let previous = previous.map(|p| p.buyers.as_slice()).unwrap_or(&[]);
        let mut rt = Runtime::build_one(config, books, store, now_ms, Some(previous))?;
        rt.sandbox = sandbox;
        preconnect::warm(&rt, previous);
        Ok(rt)
    }

    /// `build` for one buyer list (no sandbox runtime). `live` (the buyers
    /// of the runtime being replaced, if any): its buyers' series are in
    /// `/metrics` and unchanged pools are kept; `None`: the sandbox's
    /// simulated buyers, with counters of their own, seen nowhere (test
    /// traffic counts nothing).
    fn build_one(
        mut config: Config,
        books: (&caps::LedgerBook, &health::HealthBook),
        store: &Store,
        now_ms: u64,
        live: Option<&[BuyerRt]>,
    ) -> Result<Runtime, Vec<ConfigError>> {
        let cfgs = std::mem::take(&mut config.buyers);
        let zones: Vec<(&str, &jiff::tz::TimeZone)> =
            cfgs.iter().map(|b| (b.id.as_str(), &b.timezone)).collect();
        let ledgers = books.0.attach(&zones, now_ms, |buyer, from| {
            let count = || -> Result<Vec<(u64, crate::money::Cents)>, caps::CountError> {
                let mut sales = caps::stored_sales(store, buyer, from)?;
                sales.extend(caps::v1_sales_today(store, buyer, now_ms, from)?);
                Ok(sales)
            };
            count().map_err(|e| {
                let i = zones.iter().position(|(b, _)| *b == buyer).unwrap_or(0);
                vec![ConfigError {
                    key: format!("buyer[{i}]"),
                    message: format!("counting its sales in the store failed: {e}"),
                }]
            })
        })?;
        let healths: Vec<(&str, &crate::config::Health)> =
            cfgs.iter().map(|b| (b.id.as_str(), &b.health)).collect();
        let healths = books.1.attach(&healths);
        let mut buyers = Vec::with_capacity(cfgs.len());
        let mut errors = Vec::new();
        for ((i, b), (ledger, health)) in cfgs
            .iter()
            .enumerate()
            .zip(ledgers.into_iter().zip(healths))
        {
            let old = live.and_then(|old| old.iter().find(|o| o.cfg.id == b.id));
            let opts = ClientOptions {
                extra_root_pem: config.server.buyer_ca_pem.clone(),
                ..ClientOptions::default()
            };
            let client =
                |url: &crate::http::url::Url, key: &str, kept: Option<&Arc<BuyerClient>>| {
                    let new = BuyerClient::new(url, opts.clone()).map_err(|e| ConfigError {
                        key: format!("buyer[{i}].{key}"),
                        message: format!("cannot reach buyer: {}", e.reason()),
                    })?;
                    Ok(match kept {
                        Some(kept) if kept.same_endpoint(&new) => kept.clone(),
                        _ => Arc::new(new),
                    })
                };
            let ping = b
                .ping_url
                .as_ref()
                .map(|u| client(u, "ping_url", old.and_then(|o| o.ping.as_ref())))
                .transpose();
            let post = client(&b.post_url, "post_url", old.map(|o| &o.post));
            match (ping, post) {
                (Ok(ping), Ok(post)) => buyers.push(BuyerRt {
                    cfg: b.clone(),
                    ping,
                    post,
                    metrics: if live.is_some() {
                        metrics::global().buyer(&b.id)
                    } else {
                        Arc::new(BuyerMetrics::default())
                    },
                    integration: buyer::for_buyer(b),
                    ledger,
                    health,
                    spec: buyer::spec::SpecIntegration::for_buyer(b),
                }),
                (ping, post) => errors.extend(ping.err().into_iter().chain(post.err())),
            }
        }
        let suppression = suppression::Lists::load(&config.suppressions);
        match suppression {
            Ok(suppression) if errors.is_empty() => Ok(Runtime {
                key_ring: config.privacy.key_ring(),
                config,
                buyers,
                suppression,
                sandbox: None,
            }),
            Ok(_) => Err(errors),
            Err(e) => {
                errors.extend(e);
                Err(errors)
            }
        }
    }

    /// The runtime `publisher`'s requests run on: for a sandbox publisher
    /// the sandbox runtime, never this one's configured buyers (a sandbox
    /// publisher without one is refused `Overloaded`; `build` makes one
    /// whenever a publisher is a sandbox publisher).
    pub fn serving<'a>(
        self: &'a Arc<Runtime>,
        publisher: &Publisher,
    ) -> Result<&'a Arc<Runtime>, Refusal> {
        match (publisher.sandbox, &self.sandbox) {
            (false, _) => Ok(self),
            (true, Some(sandbox)) => Ok(sandbox),
            (true, None) => Err(Refusal::Overloaded),
        }
    }

    pub fn buyer_index(&self, id: &str) -> Option<usize> {
        self.buyers.iter().position(|b| b.cfg.id == id)
    }
}

/// The running exchange: its runtime, its store and its live state, all
/// private. Endpoints call one stage each (`ping`, `post`, `direct`,
/// `lead`, the admin reads); the daemon starts, reloads and drains it.
pub struct Exchange {
    runtime: ArcSwap<Runtime>,
    store: Store,
    ledgers: caps::LedgerBook,
    health: health::HealthBook,
    /// Pings (by id) whose post is running.
    posting: claims::Claims<String>,
    /// Direct posts (by publisher and idempotency key) running.
    idempotency: claims::Claims<Vec<u8>>,
    /// Dedupe keys (vertical + contact hash) of leads being sold.
    selling: claims::Claims<Vec<u8>>,
    /// Leads (by id) whose return is running (`returns`): a second return
    /// of one is refused at once.
    returning: claims::Claims<String>,
    /// The lead's claim (by lead id): held by every read-modify-write of a
    /// lead record until its write is applied (`claims`).
    leads: claims::Claims<String>,
    /// The postback outbox's live state (`postbacks`).
    outbox: postbacks::Outbox,
    pings: pings::PingCache,
    /// Permits for auctions and buyer calls (overload is shed, not queued).
    admission: Arc<admission::Admission>,
    /// Sales whose outcome write failed, retried until durable.
    kept: outcomes::KeptSales,
    /// Post stages running (`begin_post`); a drain waits for them.
    posts_in_flight: AtomicUsize,
    /// Set by a drain once it waits for the posts: no post starts after.
    posts_closed: AtomicBool,
    draining: AtomicBool,
    ready: AtomicBool,
    clock: Arc<dyn Clock>,
    /// Business statistics per publisher and buyer (`/v1/admin/stats`),
    /// live traffic since this exchange started; fed by `report` only.
    stats: LiveStats,
    /// The durable internal suppression list (admin API).
    suppressed: suppression::Internal,
    /// Retention sweep counters and the pass flag (`retention`).
    retention: retention::Sweeps,
    /// The re-seal job after a data-key rotation (`reseal`).
    reseal: reseal::Job,
}

impl Exchange {
    /// Builds the first runtime from `config` (blocking, see
    /// `Runtime::build`) and the exchange around it; `clock` tells business
    /// time (`clock::SystemClock` but in tests).
    pub fn new(
        config: Config,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Result<Exchange, Vec<ConfigError>> {
        let (ledgers, health) = (caps::LedgerBook::default(), health::HealthBook::default());
        let runtime = Runtime::build(config, (&ledgers, &health), &store, clock.now_ms(), None)?;
        let ping_cache_bytes = runtime.config.server.ping_cache_bytes;
        let suppressed = suppression::Internal::open(&store).map_err(|e| {
            vec![ConfigError {
                key: "server.data_dir".into(),
                message: format!("cannot read the internal suppression list: {e}"),
            }]
        })?;
        let admission = admission::Admission::new();
        admission::spawn_lag_probe(&admission);
        Ok(Exchange {
            runtime: ArcSwap::from_pointee(runtime),
            store,
            ledgers,
            health,
            posting: claims::Claims::default(),
            idempotency: claims::Claims::default(),
            selling: claims::Claims::default(),
            returning: claims::Claims::default(),
            leads: claims::Claims::default(),
            outbox: postbacks::Outbox::default(),
            pings: pings::PingCache::new(ping_cache_bytes),
            admission,
            kept: outcomes::KeptSales::default(),
            posts_in_flight: AtomicUsize::new(0),
            posts_closed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            clock,
            stats: LiveStats::new(),
            suppressed,
            retention: retention::Sweeps::default(),
            reseal: reseal::Job::default(),
        })
    }

    /// Business time, in milliseconds since the Unix epoch (see `clock`).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The config a request runs on, from start to finish.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Builds a runtime from `config` and swaps it in; requests already
    /// running finish on the one they started with. Blocking: call it from a
    /// plain thread (see `daemon::reload_from`).
    pub fn reload(&self, config: Config) -> Result<(), Vec<ConfigError>> {
        let old = self.runtime.load_full();
        let rt = Runtime::build(
            config,
            (&self.ledgers, &self.health),
            &self.store,
            self.now_ms(),
            Some(&old),
        )?;
        self.pings.set_bytes_max(rt.config.server.ping_cache_bytes);
        self.runtime.store(Arc::new(rt));
        Ok(())
    }

    /// Adds (`add`) or removes NANP `numbers` on the durable internal
    /// suppression list (`POST`/`DELETE /v1/admin/suppressions`).
    pub fn change_suppressions(&self, numbers: &[u64], add: bool) -> Result<(), Refusal> {
        self.suppressed.change(&self.store, numbers, add)?;
        Ok(())
    }

    /// Numbers on the internal suppression list.
    pub fn internal_suppressions(&self) -> usize {
        self.suppressed.len()
    }

    /// Whether the store accepts writes: false after a failed write until
    /// the writer's probe succeeds (requests are refused 503 meanwhile).
    pub fn is_writable(&self) -> bool {
        self.store.is_writable()
    }

    /// The store's counters (queue depth, outages) for `/metrics`.
    pub fn store_stats(&self) -> crate::store::StoreStats {
        self.store.stats()
    }

    /// Sales a buyer accepted whose outcome is not durable yet
    /// (`outcomes`), retried until it is.
    pub fn kept_sales(&self) -> usize {
        self.kept.len()
    }

    /// Pings held in memory awaiting their post, and the bytes charged for
    /// them (bounded by `server.ping_cache_bytes`).
    pub fn pings_cached(&self) -> (usize, usize) {
        (self.pings.len(), self.pings.bytes())
    }

    /// At shutdown, once posts are closed: kept sales get a last try, and
    /// any still not durable are logged by id for reconciliation.
    pub fn settle_kept_sales(&self) {
        if !self.kept.is_empty() && self.kept.retry_all(&self.store, &self.stats) > 0 {
            self.kept.log_left();
        }
    }

    /// Closes the store (the drain's last step).
    pub fn close_store(&self) -> Result<(), crate::store::StoreError> {
        self.store.close()
    }

    /// The business statistics of this exchange (admin stats): per
    /// publisher and per buyer, live traffic only, in memory since start.
    pub fn live_stats(&self) -> &LiveStats {
        &self.stats
    }

    /// Test seam: the store itself (fault injection, raw writes). Not for
    /// the request path, which goes through the stages.
    #[doc(hidden)]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Test seam: the permits (`admission`), to hold some in a test.
    #[doc(hidden)]
    pub fn admission(&self) -> &Arc<admission::Admission> {
        &self.admission
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.is_draining() && self.store.is_writable()
    }

    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Registers a post stage; `None` once a drain closed posts. The
    /// ticket is held until the outcome is written (or kept).
    pub fn begin_post(&self) -> Option<PostTicket<'_>> {
        // SeqCst on both sides (here and `close_posts`): either the drain
        // sees this post in flight, or this post sees the drain closed.
        self.posts_in_flight.fetch_add(1, Ordering::SeqCst);
        if self.posts_closed.load(Ordering::SeqCst) {
            self.posts_in_flight.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(PostTicket(self))
    }

    pub fn posts_closed(&self) -> bool {
        self.posts_closed.load(Ordering::SeqCst)
    }

    pub fn posts_in_flight(&self) -> usize {
        self.posts_in_flight.load(Ordering::SeqCst)
    }

    /// Refuses new posts and waits until every running one has written its
    /// outcome, at most `timeout`; returns how many are still running.
    /// Polls, so it works on a plain thread or a coroutine.
    pub fn close_posts(&self, timeout: std::time::Duration) -> usize {
        self.posts_closed.store(true, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + timeout;
        let poll = std::time::Duration::from_millis(crate::limits::SERVER_WAIT_IDLE_POLL_MS);
        loop {
            let n = self.posts_in_flight();
            let now = std::time::Instant::now();
            if n == 0 || now >= deadline {
                return n;
            }
            crate::sync::sleep(poll.min(deadline - now));
        }
    }
}

/// A running post stage (see `Exchange::begin_post`).
pub struct PostTicket<'a>(&'a Exchange);

impl Drop for PostTicket<'_> {
    fn drop(&mut self) {
        self.0.posts_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
