//! Walking a `toml::Table` by hand. serde would stop at the first problem;
//! an operator fixing a config wants them all at once, each named by its full
//! key (`buyer[2].filter.age_min`). So every getter here records what is
//! wrong in a shared [`Walker`] and returns `None`, and the caller carries on.

use std::ops::RangeInclusive;
use toml::{Table, Value};

use super::secrets::{self, SubstError};
use super::ConfigError;

/// Collects problems while a config is read, and resolves `${NAME}`.
pub(super) struct Walker<'s> {
    pub errors: Vec<ConfigError>,
    secrets: &'s dyn Fn(&str) -> Option<String>,
}

impl<'s> Walker<'s> {
    pub fn new(secrets: &'s dyn Fn(&str) -> Option<String>) -> Self {
        Walker {
            errors: Vec::new(),
            secrets,
        }
    }

    pub fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            key: key.into(),
            message: message.into(),
        });
    }

    /// A string value after `${NAME}` substitution; `None` (with errors) if
    /// a name is unset or malformed.
    fn text(&mut self, key: &str, raw: &str) -> Option<Text> {
        match secrets::substitute(raw, self.secrets) {
            Ok((value, secret)) => Some(Text { value, secret }),
            Err(errors) => {
                for e in errors {
                    self.error(key, SubstError::message(&e));
                }
                None
            }
        }
    }
}

/// A string read from the config. `secret` is set when a `${NAME}` went into
/// it, so that error messages show a placeholder instead of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Text {
    pub value: String,
    pub secret: bool,
}

impl Text {
    /// The value as it may appear in an error message.
    pub fn shown(&self) -> String {
        if self.secret {
            "(from a secret)".to_string()
        } else {
            format!("{:?}", self.value)
        }
    }
}

/// One TOML table and the key path that names it in errors (`""` at the
/// root, `buyer[0]`, `buyer[0].filter`).
#[derive(Clone, Copy)]
pub(super) struct Section<'t> {
    pub path: &'t str,
    pub table: &'t Table,
}

impl<'t> Section<'t> {
    /// The full key of `name` inside this table.
    /// A name that is not a TOML bare key (`"X Bad"`, `"a.b"`) is quoted, so
    /// the printed key is unambiguous and can be pasted back into the file.
    pub fn key(&self, name: &str) -> String {
        let bare = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let name = if bare {
            name.to_string()
        } else {
            format!("{name:?}")
        };
        if self.path.is_empty() {
            name
        } else {
            format!("{}.{name}", self.path)
        }
    }

    fn get(&self, name: &str) -> Option<&'t Value> {
        self.table.get(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.table.contains_key(name)
    }

    /// Names every key not in `known` as `unknown key`.
    pub fn only(&self, w: &mut Walker, known: &[&str]) {
        for name in self.table.keys() {
            if !known.contains(&name.as_str()) {
                w.error(self.key(name), "unknown key");
            }
        }
    }

    /// Records `required` when `name` is absent; returns whether present.
    pub fn need(&self, w: &mut Walker, name: &str) -> bool {
        let present = self.has(name);
        if !present {
            w.error(self.key(name), "required");
        }
        present
    }

    pub fn string(&self, w: &mut Walker, name: &str) -> Option<Text> {
        let key = self.key(name);
        match self.get(name)? {
            Value::String(s) => w.text(&key, s),
            _ => wrong(w, key, "a string"),
        }
    }

    pub fn boolean(&self, w: &mut Walker, name: &str) -> Option<bool> {
        match self.get(name)? {
            Value::Boolean(b) => Some(*b),
            _ => wrong(w, self.key(name), "a boolean"),
        }
    }

    /// An integer within `range` (inclusive).
    pub fn int(&self, w: &mut Walker, name: &str, range: RangeInclusive<i64>) -> Option<i64> {
        let n = match self.get(name)? {
            Value::Integer(n) => *n,
            _ => return wrong(w, self.key(name), "an integer"),
        };
        if !range.contains(&n) {
            w.error(self.key(name), range_message(&range));
            return None;
        }
        Some(n)
    }

    /// Like [`Section::int`], but `Some(default)` when absent.
    pub fn int_or(
        &self,
        w: &mut Walker,
        name: &str,
        range: RangeInclusive<i64>,
        default: i64,
    ) -> Option<i64> {
        if self.has(name) {
            self.int(w, name, range)
        } else {
            Some(default)
        }
    }

    /// A number: TOML float or integer (`fixed_price = 5` means 5.00).
    pub fn number(&self, w: &mut Walker, name: &str) -> Option<f64> {
        match self.get(name)? {
            Value::Float(f) => Some(*f),
            Value::Integer(n) => Some(*n as f64),
            _ => wrong(w, self.key(name), "a number"),
        }
    }

    /// An array of strings, each with its own key (`verticals[1]`), at
    /// most `max` long. Elements that are not strings are reported and left out.
    pub fn strings(&self, w: &mut Walker, name: &str, max: usize) -> Option<Vec<(String, Text)>> {
        let key = self.key(name);
        let Value::Array(items) = self.get(name)? else {
            return wrong(w, key, "an array of strings");
        };
        if items.len() > max {
            w.error(key, format!("at most {max} entries"));
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            match item {
                Value::String(s) => out.extend(w.text(&item_key, s).map(|t| (item_key, t))),
                _ => w.error(item_key, "expected a string"),
            }
        }
        Some(out)
    }

    /// A sub-table (`[buyer.filter]` or an inline table).
    pub fn table(&self, w: &mut Walker, name: &str) -> Option<(String, &'t Table)> {
        match self.get(name)? {
            Value::Table(t) => Some((self.key(name), t)),
            _ => wrong(w, self.key(name), "a table"),
        }
    }

    /// `[[name]]`: the tables with their keys (`buyer[3]`), at most `max`.
    pub fn array_of_tables(
        &self,
        w: &mut Walker,
        name: &str,
        max: usize,
    ) -> Vec<(String, &'t Table)> {
        let key = self.key(name);
        let Some(value) = self.get(name) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            w.error(key, format!("expected an array of tables ([[{name}]])"));
            return Vec::new();
        };
        if items.len() > max {
            w.error(key, format!("at most {max} entries"));
            return Vec::new();
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::Table(t) => out.push((format!("{key}[{i}]"), t)),
                _ => w.error(format!("{key}[{i}]"), "expected a table"),
            }
        }
        out
    }
}

fn wrong<T>(w: &mut Walker, key: String, what: &str) -> Option<T> {
    w.error(key, format!("expected {what}"));
    None
}

fn range_message(range: &RangeInclusive<i64>) -> String {
    match (*range.start(), *range.end()) {
        (lo, i64::MAX) => format!("must be at least {lo}"),
        (lo, hi) => format!("must be between {lo} and {hi}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        text.parse().unwrap()
    }

    fn lines(w: &Walker) -> Vec<String> {
        w.errors.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn getters_name_the_full_key() {
        let t = table("s = 1\nn = \"x\"\nb = 2\na = [\"x\", 3]\nt = 5\nr = 0");
        let none = |_: &str| None;
        let mut w = Walker::new(&none);
        let s = Section {
            path: "buyer[2]",
            table: &t,
        };
        assert_eq!(s.string(&mut w, "s"), None);
        assert_eq!(s.int(&mut w, "n", 0..=5), None);
        assert_eq!(s.boolean(&mut w, "b"), None);
        let got = s.strings(&mut w, "a", 8).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "buyer[2].a[0]");
        assert!(s.table(&mut w, "t").is_none());
        assert_eq!(s.int(&mut w, "r", 1..=i64::MAX), None);
        assert_eq!(s.string(&mut w, "absent"), None);
        assert!(!s.need(&mut w, "absent"));
        s.only(&mut w, &["s", "n", "b", "a", "t"]);
        assert_eq!(
            lines(&w),
            [
                "buyer[2].s: expected a string",
                "buyer[2].n: expected an integer",
                "buyer[2].b: expected a boolean",
                "buyer[2].a[1]: expected a string",
                "buyer[2].t: expected a table",
                "buyer[2].r: must be at least 1",
                "buyer[2].absent: required",
                "buyer[2].r: unknown key",
            ]
        );
    }

    #[test]
    fn strings_are_substituted_and_marked_secret() {
        let t = table("k = \"Bearer ${TOKEN}\"\nplain = \"p\"");
        let secrets = |n: &str| (n == "TOKEN").then(|| "tok".to_string());
        let mut w = Walker::new(&secrets);
        let s = Section {
            path: "",
            table: &t,
        };
        let k = s.string(&mut w, "k").unwrap();
        assert_eq!(
            (k.value.as_str(), k.shown()),
            ("Bearer tok", "(from a secret)".to_string())
        );
        assert_eq!(s.string(&mut w, "plain").unwrap().shown(), "\"p\"");
        assert!(w.errors.is_empty());
    }
}
