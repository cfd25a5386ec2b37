//! Writing JSON by hand where the key order, the omitted options and the
//! speed matter — answers to publishers, bodies for buyers: one escaper
//! ([`write_str`]) and one object writer ([`Obj`], borrowed; [`Answer`] is
//! the same writer owning its buffer, for answer bodies built in one
//! expression). Reading JSON is `wire::parse_json`'s job.

use std::io::Write;

use crate::money::{self, Cents};

/// RFC 3339 UTC with milliseconds, as every answer and postback writes a
/// time (`2023-11-14T22:13:20.123Z`).
pub fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// Appends `s` as a JSON string, with every escape JSON needs.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// A JSON object written into a buffer it borrows. Keys are literals that
/// need no escaping; values are escaped; absent options are omitted.
pub struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    pub fn open(out: &'a mut Vec<u8>) -> Obj<'a> {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// Writes `"key":` (after a comma but for the first key) and returns the
    /// buffer for the value.
    pub fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    pub fn str(&mut self, key: &str, v: &str) -> &mut Self {
        write_str(self.key(key), v);
        self
    }

    pub fn opt_str(&mut self, key: &str, v: Option<&str>) -> &mut Self {
        if let Some(v) = v {
            self.str(key, v);
        }
        self
    }

    pub fn int(&mut self, key: &str, v: i64) -> &mut Self {
        let _ = write!(self.key(key), "{v}");
        self
    }

    pub fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        let v: &[u8] = if v { b"true" } else { b"false" };
        self.key(key).extend_from_slice(v);
        self
    }

    /// Money with two decimals, `null` when absent.
    pub fn cents(&mut self, key: &str, v: Option<Cents>) -> &mut Self {
        let out = self.key(key);
        match v {
            Some(c) => money::write_cents(out, c),
            None => out.extend_from_slice(b"null"),
        }
        self
    }

    /// A value that is JSON already.
    pub fn raw(&mut self, key: &str, json: &[u8]) -> &mut Self {
        self.key(key).extend_from_slice(json);
        self
    }

    pub fn close(self) {
        self.out.push(b'}');
    }
}

/// The same object writer owning its buffer, chained by value:
/// `Answer::new().str("status", "bid").cents("price", p).finish()`.
pub struct Answer {
    out: Vec<u8>,
    first: bool,
}

impl Default for Answer {
    fn default() -> Self {
        Answer::new()
    }
}

impl Answer {
    pub fn new() -> Answer {
        Answer {
            out: b"{".to_vec(),
            first: true,
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Obj<'_>)) -> Answer {
        let mut o = Obj {
            out: &mut self.out,
            first: self.first,
        };
        f(&mut o);
        self.first = o.first;
        self
    }

    pub fn str(self, key: &str, v: &str) -> Answer {
        self.with(|o| {
            o.str(key, v);
        })
    }

    pub fn cents(self, key: &str, v: Option<Cents>) -> Answer {
        self.with(|o| {
            o.cents(key, v);
        })
    }

    pub fn raw(self, key: &str, json: &[u8]) -> Answer {
        self.with(|o| {
            o.raw(key, json);
        })
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_fronts_write_the_same_escaped_object() {
        let hostile = "quote \" backslash \\ newline \n nul \u{0} é";
        let mut borrowed = b"prefix ".to_vec();
        let mut o = Obj::open(&mut borrowed);
        o.str("a", hostile)
            .opt_str("skip", None)
            .int("n", -3)
            .bool("t", true);
        o.cents("p", Some(1250)).cents("q", None).raw("r", b"[1]");
        o.close();
        let owned = Answer::new()
            .str("a", hostile)
            .str("x", "y")
            .cents("p", Some(5))
            .raw("r", b"{}")
            .finish();
        let v: serde_json::Value = serde_json::from_slice(&borrowed[7..]).unwrap();
        assert_eq!(v["a"], hostile);
        assert!(v.get("skip").is_none());
        assert_eq!((v["n"].as_i64(), v["t"].as_bool()), (Some(-3), Some(true)));
        assert_eq!((v["p"].as_f64(), v["q"].is_null()), (Some(12.5), true));
        assert_eq!(
            &borrowed[..7],
            b"prefix ",
            "appends after what the buffer held"
        );
        let w: serde_json::Value = serde_json::from_slice(&owned).unwrap();
        assert_eq!(
            (w["a"].as_str(), w["p"].as_f64()),
            (Some(hostile), Some(0.05))
        );
        assert_eq!(Answer::new().finish(), b"{}");
    }
}
