//! Reading typed values out of a parsed JSON tree, with the field's path at
//! hand for the error. Shared by `lead` and `wire` so that every request
//! field is checked the same way and every error names its path.
//!
//! The path is built only when something is wrong: a valid request never
//! allocates a path string.

use simd_json::borrowed::{Object, Value};
use simd_json::StaticNode;

use crate::lead::Invalid;
use crate::limits;

/// Where a value sits: its parent's path (`"lead"`, or `""` at the top) and
/// its key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loc<'a> {
    pub parent: &'a str,
    pub key: &'a str,
}

impl<'a> Loc<'a> {
    pub fn new(parent: &'a str, key: &'a str) -> Self {
        Loc { parent, key }
    }

    /// `lead.age`, or just `colour` at the top. A hostile key (megabytes
    /// long) is cut so that the error body stays small.
    pub fn path(&self) -> String {
        let key = truncate(self.key, limits::ERROR_PATH_KEY_BYTES_MAX);
        if self.parent.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.parent, key)
        }
    }

    pub fn invalid(&self, message: impl Into<String>) -> Invalid {
        Invalid::bad_value(self.path(), message)
    }
    pub fn missing(&self) -> Invalid {
        Invalid::missing(self.path())
    }
    pub fn unknown(&self) -> Invalid {
        Invalid::unknown(self.path())
    }
}

/// The longest prefix of `s` of at most `bytes_max` bytes that ends on a
/// character boundary.
pub(crate) fn truncate(s: &str, bytes_max: usize) -> &str {
    if s.len() <= bytes_max {
        return s;
    }
    let mut end = bytes_max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn object<'a, 'v>(v: &'a Value<'v>, at: Loc<'_>) -> Result<&'a Object<'v>, Invalid> {
    match v {
        Value::Object(o) => Ok(o),
        _ => Err(at.invalid("must be an object")),
    }
}

/// A string of at most `bytes_max` bytes (empty allowed).
pub(crate) fn string<'a>(
    v: &'a Value<'_>,
    at: Loc<'_>,
    bytes_max: usize,
) -> Result<&'a str, Invalid> {
    match v {
        Value::String(s) if s.len() <= bytes_max => Ok(s),
        Value::String(_) => Err(at.invalid(format!("must be at most {bytes_max} bytes"))),
        _ => Err(at.invalid("must be a string")),
    }
}

/// A non-empty string of at most `bytes_max` bytes.
pub(crate) fn nonempty<'a>(
    v: &'a Value<'_>,
    at: Loc<'_>,
    bytes_max: usize,
) -> Result<&'a str, Invalid> {
    let s = string(v, at, bytes_max)?;
    if s.is_empty() {
        return Err(at.invalid("must not be empty"));
    }
    Ok(s)
}

/// A JSON integer (no fraction, no exponent) within `min..=max`.
pub(crate) fn integer(v: &Value<'_>, at: Loc<'_>, min: i64, max: i64) -> Result<i64, Invalid> {
    let n = match v {
        Value::Static(StaticNode::I64(n)) => Some(*n),
        Value::Static(StaticNode::U64(n)) => i64::try_from(*n).ok(),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(at.invalid(format!("must be an integer from {min} to {max}"))),
    }
}

pub(crate) fn boolean(v: &Value<'_>, at: Loc<'_>) -> Result<bool, Invalid> {
    match v {
        Value::Static(StaticNode::Bool(b)) => Ok(*b),
        _ => Err(at.invalid("must be true or false")),
    }
}

/// Any JSON number as a float, `None` for other types.
pub(crate) fn number(v: &Value<'_>) -> Option<f64> {
    match v {
        Value::Static(StaticNode::I64(n)) => Some(*n as f64),
        Value::Static(StaticNode::U64(n)) => Some(*n as f64),
        Value::Static(StaticNode::F64(n)) => Some(*n),
        _ => None,
    }
}

pub(crate) fn is_null(v: &Value<'_>) -> bool {
    matches!(v, Value::Static(StaticNode::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_joins_and_cuts_long_keys_on_a_char_boundary() {
        assert_eq!(Loc::new("lead", "age").path(), "lead.age");
        assert_eq!(Loc::new("", "colour").path(), "colour");
        let long = "é".repeat(100); // 200 bytes, 2 per char
        let p = Loc::new("lead", &long).path();
        assert_eq!(p.len(), "lead.".len() + limits::ERROR_PATH_KEY_BYTES_MAX);
        assert_eq!(truncate("aé", 2), "a");
    }

    #[test]
    fn integer_refuses_floats_and_out_of_range() {
        let at = Loc::new("lead", "age");
        assert_eq!(integer(&Value::from(30i64), at, 18, 120), Ok(30));
        assert_eq!(integer(&Value::from(30u64), at, 18, 120), Ok(30));
        assert!(integer(&Value::from(30.0f64), at, 18, 120).is_err());
        assert!(integer(&Value::from(u64::MAX), at, 0, i64::MAX).is_err());
        assert!(integer(&Value::from(17i64), at, 18, 120).is_err());
        assert!(integer(&Value::from("30"), at, 18, 120).is_err());
    }
}
