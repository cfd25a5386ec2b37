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
const _: () = assert!(CONSENT_TEXT_BYTES_MAX < BODY_BYTES_MAX_DEFAULT);
const _: () = assert!(LEAD_AGE_MIN <= LEAD_AGE_MAX);
