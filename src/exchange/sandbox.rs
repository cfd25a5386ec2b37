//! Sandbox publishers (contract §13): a publisher with `sandbox = true` is
//! served by leadx's built-in simulated buyers (`sim`, the demo's) and
//! never by a configured buyer, so it can integrate before going live.
//!
//! How: a runtime with a sandbox publisher carries a second runtime,
//! `Runtime::sandbox` — the same config (verticals, publishers, auction,
//! privacy, suppression) with the simulated buyers as its buyer list,
//! built with it at start and at every reload. `Runtime::serving` picks
//! the runtime a publisher's request runs on, once, in `exchange::stages`;
//! every later stage only sees that runtime's buyers.
//!
//! Counting toward nothing is test mode's gate, not a second one: the
//! stages mark a sandbox publisher's traffic `test`, so `exchange::report`
//! keeps it out of every live statistic and series, caps are neither
//! checked nor consumed, dedupe keys and the sales index (billing) are
//! never written (`exchange::sale`). Guarded by
//! `it::sandbox::a_sandbox_publisher_never_reaches_a_configured_buyer`.

use std::fmt::Write as _;

use crate::config::{self, Buyer, Config, ConfigError};

/// The id prefix of every sandbox buyer, so logs and transactions show at
/// a glance that no real buyer was involved.
pub const ID_PREFIX: &str = "sandbox_";

/// True when some publisher of `config` is a sandbox publisher.
pub fn wanted(config: &Config) -> bool {
    config.publishers.iter().any(|p| p.sandbox)
}

/// The simulated buyers (started on first use, `sim::sandbox_buyers`) as
/// configured buyers of every vertical of `config`.
pub fn buyers(config: &Config) -> Result<Vec<Buyer>, Vec<ConfigError>> {
    let fail = |message: String| {
        let i = config
            .publishers
            .iter()
            .position(|p| p.sandbox)
            .unwrap_or(0);
        vec![ConfigError {
            key: format!("publisher[{i}].sandbox"),
            message,
        }]
    };
    let sims = crate::sim::sandbox_buyers().map_err(fail)?;
    config::parse(&buyers_toml(config, sims), &|_| None)
        .map(|c| c.buyers)
        .map_err(|e| {
            let problems: Vec<String> = e.iter().map(ToString::to_string).collect();
            fail(format!(
                "the simulated buyers' config is invalid: {}",
                problems.join("; ")
            ))
        })
}

/// A config holding only what the simulated buyers need: the verticals
/// they buy and their addresses.
fn buyers_toml(config: &Config, sims: &[(&str, std::net::SocketAddr)]) -> String {
    let mut t = String::from("[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"/nonexistent\"\n");
    let mut verticals = Vec::new();
    for v in &config.verticals {
        let id = toml::Value::String(v.id.clone()).to_string();
        let _ = write!(t, "\n[[vertical]]\nid = {id}\n");
        verticals.push(id);
    }
    let verticals = verticals.join(", ");
    for (priority, (id, addr)) in sims.iter().enumerate() {
        let _ = write!(
            t,
            "\n[[buyer]]\nid = \"{ID_PREFIX}{id}\"\nverticals = [{verticals}]\n\
             ping_url = \"http://{addr}/ping\"\npost_url = \"http://{addr}/post\"\n\
             priority = {priority}\n"
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_buyers_buy_every_vertical() {
        let a = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
        let text = "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"/tmp/x\"\n\
                    [[vertical]]\nid = \"auto\"\n[[vertical]]\nid = \"home\"\n";
        let config = config::parse(text, &|_| None).unwrap_or_else(|e| panic!("{e:?}"));
        let parsed = config::parse(&buyers_toml(&config, &[("x", a), ("y", a)]), &|_| None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let ids: Vec<&str> = parsed.buyers.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["sandbox_x", "sandbox_y"]);
        assert_eq!(parsed.buyers[0].verticals, ["auto", "home"]);
        assert!(!wanted(&config));
    }
}
