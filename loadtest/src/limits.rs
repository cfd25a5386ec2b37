//! Every bound the load tester enforces, in one place. The tester must stop
//! by itself whatever the target does, so each loop and wait has a ceiling
//! here.

/// Highest offered rate of one run, requests (or lead cycles) a second.
pub const RATE_PER_S_MAX: u64 = 200_000;
/// Longest run of one scenario.
pub const DURATION_S_MAX: u64 = 3_600;
/// Most keep-alive connections the driver opens to the target.
pub const CONNECTIONS_MAX: usize = 4_096;
/// Default connection count in open-loop mode: enough for 2000 lead cycles a
/// second at ~100 ms each (ping + think + post) with headroom.
pub const CONNECTIONS_DEFAULT: usize = 256;
/// How long the driver waits for one answer before counting a timeout.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// After the schedule ends, how long answers in flight may still arrive;
/// requests not yet sent by then are counted as `not_sent`.
pub const DRAIN_MS: u64 = 5_000;
/// Longest think time between ping and post.
pub const THINK_MS_MAX: u64 = 60_000;
/// Default think time between ping answer and post.
pub const THINK_MS_DEFAULT: u64 = 50;
/// Largest HTTP response head read by the driver or request head read by the
/// buyer simulator.
pub const HEAD_BYTES_MAX: usize = 16 * 1024;
/// Largest HTTP body read by either side.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Most headers parsed in one message.
pub const HEADERS_MAX: usize = 64;
/// Most simulated buyers in one fleet.
pub const BUYERS_MAX: usize = 1_024;
/// Most connections one simulated buyer serves at once; more are closed.
pub const BUYER_CONNECTIONS_MAX: usize = 4_096;
/// Longest simulated latency, whatever the distribution draws.
pub const BUYER_LATENCY_MS_MAX: u64 = 60_000;
/// Default time a `hang` fault holds a connection without answering: past
/// any leadx deadline (ping 300 ms, post 3 s).
pub const HANG_MS_DEFAULT: u64 = 30_000;
/// Longest a buyer fleet lives before it stops by itself.
pub const BUYERS_LIFETIME_S_MAX: u64 = 24 * 3_600;
/// Default lifetime of a buyer fleet.
pub const BUYERS_LIFETIME_S_DEFAULT: u64 = 600;
/// Longest wait for `GET /readyz` to answer 200 after starting leadx.
pub const READY_WAIT_MS: u64 = 20_000;
/// Longest wait for the buyer fleet to print its ports.
pub const FLEET_START_MS: u64 = 10_000;
/// After SIGTERM, how long a child may drain before it is killed.
pub const CHILD_STOP_MS: u64 = 10_000;
/// Most rates in one sweep.
pub const RATES_MAX: usize = 64;
/// Coroutine stack size: the driver and buyers parse small JSON and never
/// recurse deeply.
pub const COROUTINE_STACK_BYTES: usize = 64 * 1024;
/// Largest latency the histograms record; larger values are clamped to it.
pub const LATENCY_US_MAX: u64 = 120_000_000;

const _: () = assert!(CONNECTIONS_DEFAULT <= CONNECTIONS_MAX);
const _: () = assert!(THINK_MS_DEFAULT <= THINK_MS_MAX);
const _: () = assert!(BUYERS_LIFETIME_S_DEFAULT <= BUYERS_LIFETIME_S_MAX);
const _: () = assert!(HANG_MS_DEFAULT <= BUYER_LATENCY_MS_MAX);
