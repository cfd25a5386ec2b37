//! `leadx demo`: the exchange with a built-in config and simulated buyers in
//! the same process, data in a fresh temporary directory, and curl commands
//! that work as pasted.
//!
//! The simulated buyers (`sim`, shared with sandbox publishers) are real
//! HTTP servers on loopback, so the demo exercises the same fan-out, pools
//! and deadlines as production.

use std::net::SocketAddr;

use crate::sim::{start_buyer, SimBuyer, BUYERS};

pub const DEMO_API_KEY: &str = "demo-publisher-key";
pub const DEMO_ADMIN_TOKEN: &str = "demo-admin-token";

/// 32 random bytes as hex: the demo's data key (it lives as long as the
/// demo's temporary data directory).
fn demo_data_key() -> String {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).expect("the kernel's random source failed");
    crate::ids::hex(&key)
}

/// The demo config for buyers at these addresses.
pub fn config_text(
    listen: SocketAddr,
    data_dir: &std::path::Path,
    buyers: &[(&str, SocketAddr)],
    direct: SocketAddr,
    xml: SocketAddr,
) -> String {
    let mut t = format!(
        r#"[server]
listen = "{listen}"
data_dir = "{}"

[admin]
token_sha256 = "{}"

[privacy]
# A fresh key per demo run: the demo's PII is sealed at rest, as in production.
data_key = "{}"

[auction]
ping_timeout_ms = 300
post_timeout_ms = 3000
bid_ttl_s = 120

[[vertical]]
id = "auto_insurance"
require_consent = true
dedupe_window_days = 0

[[publisher]]
id = "demo_pub"
api_key_sha256 = "{}"
revenue_share = 0.8
verticals = ["auto_insurance"]
"#,
        data_dir.display(),
        crate::config::hash_key(DEMO_ADMIN_TOKEN.as_bytes()),
        demo_data_key(),
        crate::config::hash_key(DEMO_API_KEY.as_bytes()),
    );
    for (i, (id, addr)) in buyers.iter().enumerate() {
        t.push_str(&format!(
            "\n[[buyer]]\nid = \"{id}\"\nverticals = [\"auto_insurance\"]\nping_url = \"http://{addr}/ping\"\npost_url = \"http://{addr}/post\"\nping_timeout_ms = 250\npost_timeout_ms = 1000\npriority = {i}\n"
        ));
    }
    // A direct-post buyer with its own spec (contract §9): a form post
    // answered in plain text.
    t.push_str(
        &r#"
[[buyer]]
id = "flat_fee"
verticals = ["auto_insurance"]
fixed_price = 4.00
[buyer.filter]
states = ["CA", "TX", "FL", "NY"]
[buyer.post]
url = "http://DIRECT/form"
format = "form"
[buyer.post.fields]
first_name = "{{ lead.first_name }}"
last_name = "{{ lead.last_name }}"
phone = "{{ lead.phone | phone('dashed') }}"
email = "{{ lead.email }}"
zip = "{{ lead.zip }}"
tcpa_text = "{{ consent.text }}"
[buyer.post.response]
accepted = { regex = "^OK:(\\S+)$" }
lead_id = { regex = "^OK:(\\S+)$" }
reason = { regex = "^ERR:(.*)$" }
"#
        .replace("DIRECT", &direct.to_string()),
    );
    t.push_str(&XML_BUYER.replace("XMLBUYER", &xml.to_string()));
    t
}

/// A buyer with its own XML spec for both stages (contract §9): its status
/// words, the price and token in attributes, the token echoed in the post.
const XML_BUYER: &str = r#"
[[buyer]]
id = "quote_xml"
verticals = ["auto_insurance"]
ping_timeout_ms = 250
post_timeout_ms = 1000
[buyer.ping]
url = "http://XMLBUYER/xml/ping"
format = "xml"
body = """<?xml version="1.0" encoding="UTF-8"?>
<QuoteRequest><Zip>{{ lead.zip }}</Zip><State>{{ lead.state }}</State><Age>{{ lead.age }}</Age><Credit>{{ lead.credit | upper }}</Credit></QuoteRequest>"""
[buyer.ping.response]
bid = { path = "/QuoteResponse/@status", equals = ["Accepted"] }
price = { path = "/QuoteResponse/Offer/@price" }
ref = { path = "/QuoteResponse/Offer/@token" }
reason = { path = "/QuoteResponse/Message" }
[buyer.post]
url = "http://XMLBUYER/xml/post"
format = "xml"
body = """<?xml version="1.0" encoding="UTF-8"?>
<QuoteOrder token="{{ ref }}"><Name>{{ lead.first_name }} {{ lead.last_name }}</Name><Phone>{{ lead.phone | phone('digits') }}</Phone><Email>{{ lead.email }}</Email><Zip>{{ lead.zip }}</Zip><Consent>{{ consent.text }}</Consent></QuoteOrder>"""
[buyer.post.response]
accepted = { path = "/QuoteResponse/@status", equals = ["Sold"] }
lead_id = { path = "/QuoteResponse/Id" }
reason = { path = "/QuoteResponse/Message" }
"#;

const LEAD: &str = r#""zip":"90210","state":"CA","city":"Beverly Hills","age":34,"credit":"good","homeowner":true"#;
const PII: &str = r#""first_name":"Ada","last_name":"Lovelace","phone":"(310) 555-0142","email":"ada@example.com""#;
const CONSENT: &str = r#""consent":{"text":"I agree to be contacted by up to 4 insurers.","captured_at":"2026-11-27T12:00:00Z","ip":"203.0.113.7","user_agent":"Mozilla/5.0","page_url":"https://quotes.example.com/auto"}"#;

/// The commands printed for the user.
pub fn instructions(addr: SocketAddr) -> String {
    let auth =
        format!("-H 'Authorization: Bearer {DEMO_API_KEY}' -H 'Content-Type: application/json'");
    format!(
        r#"leadx demo is serving on http://{addr} (Ctrl-C stops it). Buyers, side by side:
  acme_auto, bluebird, carrier_one, slowpoke — native JSON (contract §5);
  quote_xml — its own XML spec: status words, price in an attribute (§9);
  flat_fee  — fixed-price direct-post buyer posted as a form, answered OK:/ERR: (§9).

# 1. Ping (no PII) — answers within 300 ms with the best payout:
curl -s http://{addr}/v1/ping {auth} -d '{{"vertical":"auto_insurance","lead":{{{LEAD}}}}}'; echo

# 2. Ping, then post the full lead to the winner (the ping_id is taken from the ping's answer):
PING_ID=$(curl -s http://{addr}/v1/ping {auth} -d '{{"vertical":"auto_insurance","lead":{{{LEAD}}}}}' | sed -E 's/.*"ping_id":"([0-9a-f]+)".*/\1/'); echo "ping_id=$PING_ID"
curl -s http://{addr}/v1/post {auth} -d '{{"ping_id":"'"$PING_ID"'","lead":{{{LEAD},{PII}}},{CONSENT}}}'; echo

# 3. Direct post (ping and post in one call), idempotent by key:
curl -s http://{addr}/v1/leads {auth} -H 'Idempotency-Key: demo-1' -d '{{"vertical":"auto_insurance","lead":{{{LEAD},{PII}}},{CONSENT}}}'; echo

# 4. The same ping in XML (contract §11); the answer is XML too:
curl -s http://{addr}/v1/ping -H 'Authorization: Bearer {DEMO_API_KEY}' -H 'Content-Type: application/xml' -d '<request><vertical>auto_insurance</vertical><lead><zip>90210</zip><state>CA</state><age>34</age><credit>good</credit></lead></request>'; echo

# Live dashboard (asks for the admin token: {DEMO_ADMIN_TOKEN}):
#   http://{addr}/dashboard

# Admin view of recent transactions (every buyer's call and reason), and metrics:
curl -s 'http://{addr}/v1/admin/transactions?limit=5' -H 'Authorization: Bearer {DEMO_ADMIN_TOKEN}'; echo
curl -s http://{addr}/metrics | head -20
"#
    )
}

/// Runs the demo until SIGINT/SIGTERM.
pub fn run(listen: SocketAddr) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|e| e.to_string())?;
    crate::rt::configure(crate::rt::default_workers());
    let data_dir = std::env::temp_dir().join(format!("leadx-demo-{}", crate::ids::new_id()));
    let mut sims = Vec::new();
    let mut addrs = Vec::new();
    for (i, (id, sim)) in BUYERS.iter().enumerate() {
        let h = start_buyer(*sim, 0x5eed + i as u64)
            .map_err(|e| format!("starting simulated buyer: {e}"))?;
        addrs.push((*id, h.local_addr()));
        sims.push(h);
    }
    let flat = SimBuyer {
        delay_ms_min: 5,
        delay_ms_max: 30,
        bid_pct: 100,
        price_cents_min: 400,
        price_cents_max: 400,
        accept_pct: 100,
    };
    let direct =
        start_buyer(flat, 0xd1ec7).map_err(|e| format!("starting simulated buyer: {e}"))?;
    let xml_sim = SimBuyer {
        delay_ms_min: 15,
        delay_ms_max: 60,
        bid_pct: 85,
        price_cents_min: 1000,
        price_cents_max: 1700,
        accept_pct: 80,
    };
    let xml = start_buyer(xml_sim, 0x3c31).map_err(|e| format!("starting simulated buyer: {e}"))?;
    let text = config_text(
        listen,
        &data_dir,
        &addrs,
        direct.local_addr(),
        xml.local_addr(),
    );
    let config = crate::config::parse(&text, &crate::config::default_secrets).map_err(|errs| {
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let running = crate::daemon::start(config, None).map_err(|e| e.to_string())?;
    println!("{}", instructions(running.local_addr()));
    let _ = signals.forever().next();
    let result = running.shutdown();
    let _ = std::fs::remove_dir_all(&data_dir);
    drop((sims, direct, xml));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_loads_with_its_form_buyer() {
        let a = SocketAddr::from(([127, 0, 0, 1], 9));
        let text = config_text(a, std::path::Path::new("/tmp/x"), &[("acme_auto", a)], a, a);
        let config = crate::config::parse(&text, &crate::config::default_secrets)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let flat = config.buyers.iter().find(|b| b.id == "flat_fee").unwrap();
        assert!(flat.spec.post.is_some() && flat.ping_url.is_none());
        assert_eq!(flat.post_url.target, "/form");
        assert!(config.privacy.data_key.is_some(), "the demo seals PII");
        assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    }
}
