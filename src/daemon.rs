//! The daemon's life: open the store, bind, serve, tell systemd, reload on
//! SIGHUP, drain on SIGTERM/SIGINT, make the store durable, exit. A drain
//! closes the store only after every running post has written its outcome,
//! kept sales had a last try and the postback sender stopped.
//!
//! `start` does everything up to "serving" and returns a `Running` that
//! tests drive in-process; `run` adds the signal loop and the watchdog for
//! `leadx serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::api::{Api, Listener, Side};
use crate::config::{self, Config, ConfigError};
use crate::exchange::Exchange;
use crate::http::server::{self, ServerHandle, ServerOptions, ServerTls};
use crate::notify;
use crate::store::{Store, StoreOptions};

#[derive(Debug)]
pub enum StartError {
    /// The config is invalid (exit 2).
    Config(Vec<ConfigError>),
    Store(String),
    Bind(SocketAddr, std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(errors) => {
                for e in errors {
                    writeln!(f, "{e}")?;
                }
                Ok(())
            }
            StartError::Store(e) => write!(f, "cannot open the store: {e}"),
            StartError::Bind(addr, e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                write!(
                    f,
                    "cannot listen on {addr}: the address is already in use (another leadx?)"
                )
            }
            StartError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
        }
    }
}

/// A serving exchange.
pub struct Running {
    pub ex: Arc<Exchange>,
    server: ServerHandle,
    /// The `admin.listen` listener, when configured.
    admin: Option<ServerHandle>,
    /// The HTTPS listener's certificate, swapped by reloads.
    tls: Option<Arc<ServerTls>>,
    drain_timeout: Duration,
}

/// Binds, opens the store, builds the runtime and starts serving. `path` is
/// where reloads read the config from (none: reload answers an error).
/// Binding comes first so that a port in use fails at once, before the
/// store's lock wait (`limits::STORE_LOCK_WAIT_MS`).
pub fn start(config: Config, path: Option<PathBuf>) -> Result<Running, StartError> {
    start_with_clock(config, path, Arc::new(crate::clock::SystemClock))
}

/// `start` with the exchange's business time told by `clock` (tests move a
/// `clock::ManualClock` instead of sleeping).
pub fn start_with_clock(
    config: Config,
    path: Option<PathBuf>,
    clock: Arc<dyn crate::clock::Clock>,
) -> Result<Running, StartError> {
    crate::rt::configure(config.server.workers);
    log_warnings(&config);
    let listen = config.server.listen;
    let listener = server::bind(listen).map_err(|e| StartError::Bind(listen, e))?;
    let admin_listen = config.admin.listen;
    let admin_listener = admin_listen
        .map(|addr| server::bind(addr).map_err(|e| StartError::Bind(addr, e)))
        .transpose()?;
    let store_opts = StoreOptions {
        cache_bytes: config.server.store_cache_bytes,
        ..StoreOptions::default()
    };
    let store = Store::open(&config.server.data_dir, store_opts)
        .map_err(|e| StartError::Store(e.to_string()))?;
    let tls = config
        .server
        .tls
        .as_ref()
        .map(|t| Arc::new(ServerTls::new(t.server_config.clone())));
    let opts = ServerOptions {
        tls: tls.clone(),
        body_bytes_max: config.server.body_bytes_max,
        idle_timeout_ms: config.server.idle_timeout_ms,
        request_timeout_ms: config.server.request_timeout_ms,
        connections_max: config.server.connections_max,
        probe_listener: true,
        ..ServerOptions::default()
    };
    let drain_timeout = Duration::from_millis(config.server.drain_timeout_ms);
    let ex = Arc::new(Exchange::new(config, store, clock).map_err(StartError::Config)?);
    crate::exchange::outcomes::spawn_retrier(&ex);
    crate::exchange::retention::spawn(&ex);
    crate::exchange::preconnect::spawn_keeper(&ex);
    ex.resume_reseal();
    crate::exchange::postbacks::spawn_sender(&ex);
    let reload_ex = ex.clone();
    let reload_tls = tls.clone();
    let reload: Arc<crate::api::ReloadFn> =
        Arc::new(move || reload_from(&reload_ex, path.as_deref(), reload_tls.as_ref()));
    let api = Arc::new(Api::new(ex.clone(), reload));
    let (side, admin) = match (admin_listener, admin_listen) {
        (Some(l), Some(addr)) => {
            // Plain HTTP, no probe listener: operators reach it on loopback
            // or a private network (docs/ops.md, "Admin listener").
            let admin_opts = ServerOptions {
                tls: None,
                probe_listener: false,
                ..opts.clone()
            };
            let handler = Arc::new(Listener::new(api.clone(), Side::Admin));
            let admin =
                server::start(l, admin_opts, handler).map_err(|e| StartError::Bind(addr, e))?;
            log::info!(target: "leadx::daemon", "admin listener serving addr={}", admin.local_addr());
            (Side::Publishers, Some(admin))
        }
        _ => (Side::All, None),
    };
    let handler = Arc::new(Listener::new(api, side));
    let server = server::start(listener, opts, handler).map_err(|e| StartError::Bind(listen, e))?;
    ex.set_ready(true);
    log::info!(target: "leadx::daemon", "serving addr={}", server.local_addr());
    Ok(Running {
        ex,
        server,
        admin,
        tls,
        drain_timeout,
    })
}

/// Logs what the config allows but is unwise (`Config::warnings`), at
/// start-up and after each reload.
fn log_warnings(config: &Config) {
    for w in config.warnings() {
        log::warn!(target: "leadx::daemon", "config warning problem=\"{w}\"");
    }
}

/// Reads, validates and swaps in the config file. Building the runtime can
/// block on DNS, so it runs on a plain thread while the caller (possibly a
/// coroutine) waits on a coroutine-aware channel. On an HTTPS listener the
/// certificate and key are read again (the config load builds them) and
/// swapped in for new connections once the rest of the config is accepted.
pub fn reload_from(
    ex: &Arc<Exchange>,
    path: Option<&std::path::Path>,
    server_tls: Option<&Arc<ServerTls>>,
) -> Result<Vec<&'static str>, Vec<ConfigError>> {
    let Some(path) = path.map(|p| p.to_path_buf()) else {
        return Err(vec![ConfigError {
            key: "config".into(),
            message: "this exchange was started without a config file".into(),
        }]);
    };
    let (tx, rx) = may::sync::mpsc::channel();
    let ex2 = ex.clone();
    let server_tls = server_tls.cloned();
    std::thread::spawn(move || {
        let result = config::load(&path).and_then(|c| {
            let old = ex2.runtime();
            let ignored = restart_only_changes(&old.config, &c);
            for key in &ignored {
                log::warn!(target: "leadx::daemon", "reload ignores a change that needs a restart key={key}");
            }
            log_warnings(&c);
            let cert = c.server.tls.as_ref().map(|t| t.server_config.clone());
            ex2.reload(c)?;
            if let (Some(server_tls), Some(cert)) = (&server_tls, cert) {
                server_tls.replace(cert);
                log::info!(target: "leadx::daemon", "TLS certificate reloaded; new connections use it");
            }
            Ok(ignored)
        });
        let _ = tx.send(result);
    });
    crate::sync::will_park("waiting for the reload thread");
    let result = rx.recv().unwrap_or_else(|_| {
        Err(vec![ConfigError {
            key: "config".into(),
            message: "reload failed".into(),
        }])
    });
    match &result {
        Ok(_) => log::info!(target: "leadx::daemon", "config reloaded"),
        Err(errors) => {
            for e in errors {
                log::error!(target: "leadx::daemon", "reload refused, running config stays problem=\"{e}\"");
            }
        }
    }
    result
}

/// The keys whose change a reload cannot apply (the listeners, the store):
/// the reload goes ahead without them and says so.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.server.listen != new.server.listen {
        keys.push("server.listen");
    }
    if old.server.data_dir != new.server.data_dir {
        keys.push("server.data_dir");
    }
    if old.server.tls.is_some() != new.server.tls.is_some() {
        keys.push("server.tls");
    }
    if old.admin.listen != new.admin.listen {
        keys.push("admin.listen");
    }
    keys
}

impl Running {
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// Where the `admin.listen` listener took its port, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(ServerHandle::local_addr)
    }

    /// Where the watchdog asks `/healthz`: the loopback probe listener,
    /// which `server.connections_max` does not cover.
    pub fn watchdog_addr(&self) -> SocketAddr {
        self.server
            .probe_addr()
            .unwrap_or_else(|| self.local_addr())
    }

    /// Drains and stops: `/readyz` and new requests answer 503 at once, the
    /// listener closes, in-flight requests finish (bounded by the drain
    /// time-out). Then no post may start, and running ones get until their
    /// post deadline plus `limits::DRAIN_OUTCOME_GRACE_MS` to write their
    /// outcome, whatever the drain time-out; kept sales get a last try
    /// (those left are logged by id); then the store is flushed and closed.
    pub fn shutdown(self) -> Result<(), String> {
        let deadline = std::time::Instant::now() + self.drain_timeout;
        self.ex.begin_drain();
        notify::stopping();
        self.server.begin_drain();
        if let Some(admin) = &self.admin {
            admin.begin_drain();
            // An admin call (a reload, an export) finishes within the drain.
            admin.wait_idle(self.drain_timeout);
        }
        if !self.server.wait_idle(self.drain_timeout) {
            log::warn!(target: "leadx::daemon", "drain time-out; requests still in flight={}", self.server.in_flight());
        } else if !wait_connections_closed(&self.server, deadline) {
            log::warn!(target: "leadx::daemon", "drain time-out; connections still open={}", open_connections(&self.server));
        }
        if self.close_posts() {
            // Posts outlived the drain time-out: let their answers go out
            // (bounded) before the process may exit.
            let answers = Duration::from_millis(crate::limits::DRAIN_ANSWER_WAIT_MS);
            if self.server.wait_idle(answers) {
                wait_connections_closed(&self.server, std::time::Instant::now() + answers);
            }
        }
        let wait = Duration::from_millis(crate::limits::POSTBACK_DRAIN_WAIT_MS);
        let left = self.ex.stop_postbacks(wait);
        if left > 0 {
            log::warn!(target: "leadx::daemon", "drain: postbacks still in flight; they go again after a restart postbacks={left}");
        }
        self.ex.close_store().map_err(|e| e.to_string())?;
        crate::logging::events::flush_summary();
        log::info!(target: "leadx::daemon", "stopped; store closed");
        Ok(())
    }
}

impl Running {
    /// Closes posts and waits for the running ones (see `shutdown`); kept
    /// sales get their last try. True when posts were still running.
    fn close_posts(&self) -> bool {
        let waited = self.ex.posts_in_flight() > 0;
        let post_timeout_ms = self.ex.runtime().config.auction.post_timeout_ms;
        let bound = Duration::from_millis(post_timeout_ms + crate::limits::DRAIN_OUTCOME_GRACE_MS);
        let running = self.ex.close_posts(bound);
        if running > 0 {
            log::error!(target: "leadx::daemon", "drain: posts still running after their deadline; closing the store under them posts={running}");
        }
        self.ex.settle_kept_sales();
        waited
    }
}

fn open_connections(server: &ServerHandle) -> u64 {
    server
        .stats()
        .connections_open
        .load(std::sync::atomic::Ordering::SeqCst)
}

/// A handler that returned has not yet written its answer: the connection
/// does that next, then closes (no keep-alive while draining). Waiting for
/// the connections to close keeps the exit from cutting an answer short.
/// Polls like `ServerHandle::wait_idle`, so it works on any thread.
fn wait_connections_closed(server: &ServerHandle, deadline: std::time::Instant) -> bool {
    loop {
        if open_connections(server) == 0 {
            return true;
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return false;
        }
        let poll = Duration::from_millis(crate::limits::SERVER_WAIT_IDLE_POLL_MS);
        crate::sync::sleep(poll.min(deadline - now));
    }
}

/// `leadx serve`: start, signal readiness, reload on SIGHUP, stop on
/// SIGTERM/SIGINT.
pub fn run(config: Config, path: PathBuf) -> Result<(), StartError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // Register before starting so that no signal is lost in between.
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM])
        .expect("registering signal handlers");
    let running = start(config, Some(path.clone()))?;
    notify::ready();
    crate::watchdog::spawn(running.watchdog_addr());
    for sig in signals.forever() {
        match sig {
            SIGHUP => {
                notify::reloading();
                let _ = reload_from(&running.ex, Some(&path), running.tls.as_ref());
                notify::ready();
            }
            _ => {
                log::info!(target: "leadx::daemon", "signal received; draining signal={sig}");
                break;
            }
        }
    }
    running.shutdown().map_err(StartError::Store)
}
