//! The buyer simulator: what a simulated buyer is (its spec) and what it
//! decides to do with each call, as pure functions of a seeded generator.
//!
//! The I/O lives in `server`; keeping the decisions pure lets the tests check
//! bid, no-bid and fault rates exactly for a seed without a socket.

pub mod server;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::limits;
use crate::rng::Rng;
use crate::Error;

/// How long a buyer takes to answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LatencyDist {
    Fixed {
        ms: f64,
    },
    Uniform {
        min_ms: f64,
        max_ms: f64,
    },
    /// Log-normal: most answers near the median, a long slow tail.
    Lognormal {
        median_ms: f64,
        sigma: f64,
    },
}

impl LatencyDist {
    /// Parses the CLI form: `fixed:MS`, `uniform:MIN:MAX`, `lognormal:MEDIAN:SIGMA`.
    pub fn parse(s: &str) -> Result<LatencyDist, Error> {
        let bad = || {
            Error::Usage(format!(
            "--latency {s:?}: expected fixed:MS, uniform:MIN_MS:MAX_MS or lognormal:MEDIAN_MS:SIGMA"
        ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let nums: Vec<f64> = parts[1..]
            .iter()
            .map(|p| p.parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        let d = match (parts[0], nums.as_slice()) {
            ("fixed", [ms]) => LatencyDist::Fixed { ms: *ms },
            ("uniform", [a, b]) => LatencyDist::Uniform {
                min_ms: *a,
                max_ms: *b,
            },
            ("lognormal", [m, s]) => LatencyDist::Lognormal {
                median_ms: *m,
                sigma: *s,
            },
            _ => return Err(bad()),
        };
        d.validate()
            .map_err(|why| Error::Usage(format!("--latency {s:?}: {why}")))?;
        Ok(d)
    }

    fn validate(&self) -> Result<(), String> {
        let ok = |v: f64| v.is_finite() && v >= 0.0 && v <= limits::BUYER_LATENCY_MS_MAX as f64;
        match *self {
            LatencyDist::Fixed { ms } if ok(ms) => Ok(()),
            LatencyDist::Uniform { min_ms, max_ms }
                if ok(min_ms) && ok(max_ms) && min_ms <= max_ms =>
            {
                Ok(())
            }
            LatencyDist::Lognormal { median_ms, sigma }
                if ok(median_ms) && (0.0..=5.0).contains(&sigma) =>
            {
                Ok(())
            }
            _ => Err(format!(
                "latency out of range (0..={} ms, sigma 0..=5, min <= max)",
                limits::BUYER_LATENCY_MS_MAX
            )),
        }
    }

    /// Draws one latency, capped at `limits::BUYER_LATENCY_MS_MAX`.
    pub fn draw(&self, r: &mut Rng) -> Duration {
        let ms = match *self {
            LatencyDist::Fixed { ms } => ms,
            LatencyDist::Uniform { min_ms, max_ms } => min_ms + (max_ms - min_ms) * r.unit(),
            LatencyDist::Lognormal { median_ms, sigma } => r.lognormal(median_ms, sigma),
        };
        Duration::from_secs_f64(ms.clamp(0.0, limits::BUYER_LATENCY_MS_MAX as f64) / 1000.0)
    }
}

/// Probabilities of each fault, per call (ping or post).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Answer 500 with an error body.
    pub http_500: f64,
    /// Answer 200 with a body that is not the protocol's JSON.
    pub garbage: f64,
    /// Read the call and never answer; hold the connection `hang_ms`.
    pub hang: f64,
    /// Reset the connection (RST) instead of answering.
    pub reset: f64,
}

/// One simulated buyer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuyerSpec {
    pub id: String,
    pub latency: LatencyDist,
    /// Probability a ping is answered with a bid.
    pub bid_rate: f64,
    /// Bid prices are uniform in [price_min, price_max] USD, whole cents.
    pub price_min: f64,
    pub price_max: f64,
    /// Probability a post is accepted.
    pub accept_rate: f64,
    pub faults: Faults,
    pub hang_ms: u64,
}

impl Default for BuyerSpec {
    fn default() -> Self {
        BuyerSpec {
            id: String::new(),
            latency: LatencyDist::Lognormal {
                median_ms: 15.0,
                sigma: 0.6,
            },
            bid_rate: 0.7,
            price_min: 1.0,
            price_max: 25.0,
            accept_rate: 0.9,
            faults: Faults::default(),
            hang_ms: limits::HANG_MS_DEFAULT,
        }
    }
}

/// A fleet: buyers plus where they listen and the seed of their decisions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSpec {
    #[serde(default)]
    pub seed: u64,
    /// First port; buyer i listens on base_port + i. 0: any free ports.
    #[serde(default)]
    pub base_port: u16,
    pub buyers: Vec<BuyerSpec>,
}

impl FleetSpec {
    /// Checks every bound and fills empty ids with `b<index>`.
    pub fn validated(mut self) -> Result<FleetSpec, Error> {
        if self.buyers.is_empty() || self.buyers.len() > limits::BUYERS_MAX {
            return Err(Error::Usage(format!(
                "buyer count must be 1..={}",
                limits::BUYERS_MAX
            )));
        }
        if self.base_port != 0 && self.base_port as usize + self.buyers.len() > 65_536 {
            return Err(Error::Usage("base port + buyer count exceeds 65535".into()));
        }
        for (i, b) in self.buyers.iter_mut().enumerate() {
            if b.id.is_empty() {
                b.id = format!("b{i}");
            }
            b.validate()
                .map_err(|why| Error::Usage(format!("buyer[{i}] ({}): {why}", b.id)))?;
        }
        Ok(self)
    }
}

impl BuyerSpec {
    fn validate(&self) -> Result<(), String> {
        self.latency.validate()?;
        let p = |v: f64| (0.0..=1.0).contains(&v);
        let f = &self.faults;
        if !(p(self.bid_rate)
            && p(self.accept_rate)
            && p(f.http_500)
            && p(f.garbage)
            && p(f.hang)
            && p(f.reset))
        {
            return Err("rates must be within 0..=1".into());
        }
        if f.http_500 + f.garbage + f.hang + f.reset > 1.0 + 1e-9 {
            return Err("fault rates add up to more than 1".into());
        }
        if !(self.price_min >= 0.0
            && self.price_min <= self.price_max
            && self.price_max <= 10_000.0)
        {
            return Err("prices must satisfy 0 <= price_min <= price_max <= 10000".into());
        }
        if self.hang_ms > limits::BUYER_LATENCY_MS_MAX {
            return Err(format!("hang_ms above {}", limits::BUYER_LATENCY_MS_MAX));
        }
        Ok(())
    }

    /// Decides what to do with one call.
    pub fn decide(&self, r: &mut Rng, call: Call) -> Action {
        if call == Call::Health {
            // Liveness is never delayed or faulted: it is the cross-check
            // endpoint for wrk, not part of the simulated behaviour.
            return Action {
                delay: Duration::ZERO,
                reply: Reply::Healthy,
            };
        }
        let f = &self.faults;
        let u = r.unit();
        let fault = [
            (f.http_500, Reply::Http500),
            (f.garbage, Reply::Garbage),
            (f.hang, Reply::Hang),
            (f.reset, Reply::Reset),
        ]
        .into_iter()
        .scan(0.0, |acc, (p, reply)| {
            *acc += p;
            Some((*acc, reply))
        })
        .find(|(acc, _)| u < *acc)
        .map(|(_, reply)| reply);
        let delay = self.latency.draw(r);
        let reply = match (fault, call) {
            (Some(Reply::Hang), _) => {
                return Action {
                    delay: Duration::from_millis(self.hang_ms),
                    reply: Reply::Hang,
                }
            }
            (Some(fault), _) => fault,
            (None, Call::Ping) if r.chance(self.bid_rate) => Reply::Bid {
                price_cents: self.draw_price_cents(r),
            },
            (None, Call::Ping) => Reply::NoBid,
            (None, Call::Post) if r.chance(self.accept_rate) => Reply::Accepted,
            (None, Call::Post) => Reply::Rejected,
            (None, Call::Other) => Reply::NotFound,
            (None, Call::Health) => Reply::Healthy,
        };
        Action { delay, reply }
    }

    fn draw_price_cents(&self, r: &mut Rng) -> u64 {
        let lo = (self.price_min * 100.0).round() as u64;
        let hi = (self.price_max * 100.0).round() as u64;
        r.range(lo, hi.max(lo))
    }
}

/// Which endpoint was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Ping,
    Post,
    /// `GET /healthz`.
    Health,
    Other,
}

impl Call {
    pub fn from_request(method: &str, path: &str) -> Call {
        match (method, path.split('?').next().unwrap_or("")) {
            ("POST", "/ping") => Call::Ping,
            ("POST", "/post") => Call::Post,
            ("GET", "/healthz") => Call::Health,
            _ => Call::Other,
        }
    }
}

/// What the buyer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Bid { price_cents: u64 },
    NoBid,
    Accepted,
    Rejected,
    NotFound,
    Healthy,
    Http500,
    Garbage,
    Hang,
    Reset,
}

/// A decision: wait `delay`, then give `reply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub delay: Duration,
    pub reply: Reply,
}

/// The bytes of an HTTP answer, or `None` for replies that send nothing
/// (hang, reset). `seq` makes refs and lead ids unique per connection.
pub fn render(reply: Reply, buyer_id: &str, seq: u64) -> Option<Vec<u8>> {
    use crate::http::response;
    let body = match reply {
        Reply::Bid { price_cents } => format!(
            r#"{{"status":"bid","price":{}.{:02},"ref":"{buyer_id}-r{seq}"}}"#,
            price_cents / 100,
            price_cents % 100
        ),
        Reply::NoBid => r#"{"status":"no_bid"}"#.to_string(),
        Reply::Accepted => format!(r#"{{"status":"accepted","lead_id":"{buyer_id}-L{seq}"}}"#),
        Reply::Rejected => r#"{"status":"rejected","reason":"not_interested"}"#.to_string(),
        Reply::Healthy => r#"{"status":"ok"}"#.to_string(),
        Reply::NotFound => return Some(response(404, "Not Found", br#"{"error":"not_found"}"#)),
        Reply::Http500 => {
            return Some(response(
                500,
                "Internal Server Error",
                br#"{"error":"simulated"}"#,
            ))
        }
        Reply::Garbage => return Some(response(200, "OK", b"<html>oops {\"status\":\"bi")),
        Reply::Hang | Reply::Reset => return None,
    };
    Some(response(200, "OK", body.as_bytes()))
}

#[cfg(test)]
mod tests;
