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
/// Most attributes in `lead.attributes`.
pub const LEAD_ATTRIBUTES_MAX: usize = 64;
/// Longest string field in a lead (other than ones with tighter bounds).
pub const LEAD_STRING_BYTES_MAX: usize = 1024;
/// Coroutine stack size. Deep JSON is refused before it can recurse, and a
/// TLS handshake was measured at ~31 KiB, so 64 KiB leaves headroom.
pub const COROUTINE_STACK_BYTES: usize = 64 * 1024;
/// Most client connections served at once; more are closed at accept.
pub const CONNECTIONS_MAX: usize = 16 * 1024;
/// Most writes waiting for the store's writer thread; more is 503 overloaded.
pub const STORE_QUEUE_MAX: usize = 64 * 1024;
/// Most rows returned by one admin listing.
pub const ADMIN_LIST_MAX: usize = 1000;

const _: () = assert!(BODY_BYTES_MAX_DEFAULT <= BODY_BYTES_MAX_CEILING);
const _: () = assert!(JSON_DEPTH_MAX >= 3);
const _: () = assert!(HEADER_BYTES_MAX >= 1024);

/// Default sled page-cache size for the store. Hot keys (caps, dedupe,
/// idempotency) must stay in memory so reads on coroutines rarely touch disk.
pub const STORE_CACHE_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;
/// Most operations the store's writer applies before one flush (group
/// commit). Bounds how long a waiter can be held behind other writes.
pub const STORE_BATCH_OPS_MAX: usize = 8 * 1024;

const _: () = assert!(STORE_BATCH_OPS_MAX >= 1);
const _: () = assert!(STORE_QUEUE_MAX >= STORE_BATCH_OPS_MAX);
