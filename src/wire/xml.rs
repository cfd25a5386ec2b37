//! Publishers' XML bodies (contract §11), read into the same simd-json tree
//! a JSON body parses into, so that `wire`'s walk and `lead`'s validator
//! check both formats with the very same code.
//!
//! The document mirrors the JSON request: root `<request>`, one child per
//! key, `<lead>` / `<consent>` one element per field, `<attributes>` one
//! element per attribute. An element holding elements is an object; one
//! holding text is a value, typed by where it sits (contract §3):
//!
//! - `test`, `lead.homeowner`: `true` / `false` (or `1` / `0`) → a bool;
//! - `floor`, `lead.age`, `lead.income`: a number written as JSON writes
//!   one → a number;
//! - `lead.attributes.*`: exactly `true` / `false` → a bool, exactly a JSON
//!   number → a number, anything else → the string as written (so a
//!   leading-zero code such as `01234` stays a string);
//! - everything else: the text, exactly as written (no trimming).
//!
//! Typed fields are trimmed of surrounding whitespace first; text that does
//! not read as its type is passed on as a string, and the validator answers
//! it as it answers a JSON string there (`422 invalid_field`). An empty
//! `<lead/>`, `<consent/>` or `<attributes/>` is an empty object.
//!
//! Refused with 400 `bad_request` (and `field` where one element is at
//! fault): anything `crate::xml::read` refuses (DOCTYPE and so every entity
//! declaration, processing instructions after the XML declaration, nesting
//! deeper than `limits::JSON_DEPTH_MAX`, not well-formed), a root other than
//! `<request>`, attributes on an element (namespaces included: leadx's
//! requests have none), mixed content (text beside elements). An element
//! given twice under one parent is 422 `invalid_field` naming it: JSON's
//! last-wins would silently drop one value of a document that means two.

use std::borrow::Cow;

use quick_xml::events::BytesStart;
use simd_json::borrowed::{Object, Value};
use simd_json::StaticNode;

use crate::lead::value::truncate;
use crate::lead::Invalid;
use crate::limits;
use crate::xml::{self, utf8, Rules, Sink, XmlError};

impl From<XmlError> for Invalid {
    fn from(e: XmlError) -> Invalid {
        Invalid::bad_request(None, e.message(limits::JSON_DEPTH_MAX))
    }
}

/// Reads `body` into the tree a JSON request would parse into.
pub(super) fn tree(body: &[u8]) -> Result<Value<'static>, Invalid> {
    let rules = Rules {
        depth_max: limits::JSON_DEPTH_MAX,
        instructions: false,
    };
    let mut t = Tree::default();
    xml::read(body, rules, &mut t)?;
    t.root
        .ok_or_else(|| Invalid::bad_request(None, "the body has no <request> element"))
}

/// An element being read: its name, its children once it has one, its text.
struct Frame {
    name: String,
    children: Option<Object<'static>>,
    text: String,
}

#[derive(Default)]
struct Tree {
    /// Open elements below the root (the root is `root_open`).
    stack: Vec<Frame>,
    root_open: bool,
    root: Option<Value<'static>>,
    /// Whether the root holds a child yet (text beside one is mixed).
    root_children: Option<Object<'static>>,
}

impl Tree {
    /// `lead.zip` for the open elements (below the root) and `more`.
    fn path(&self, more: Option<&str>) -> String {
        let names = self.stack.iter().map(|f| f.name.as_str()).chain(more);
        let parts: Vec<&str> = names
            .map(|n| truncate(n, limits::ERROR_PATH_KEY_BYTES_MAX))
            .collect();
        parts.join(".")
    }

    fn names(&self) -> Vec<&str> {
        self.stack.iter().map(|f| f.name.as_str()).collect()
    }

    fn mixed(&self) -> Invalid {
        let at = self.path(None);
        let field = (!at.is_empty()).then(|| at.clone());
        let at = if at.is_empty() { "request".into() } else { at };
        Invalid::bad_request(field, format!("<{at}> mixes text with elements"))
    }

    /// The children map of the innermost open element, made on first use.
    fn parent_children(&mut self) -> &mut Object<'static> {
        match self.stack.last_mut() {
            Some(f) => f.children.get_or_insert_with(Object::default),
            None => self.root_children.get_or_insert_with(Object::default),
        }
    }

    fn parent_text_is_blank(&self) -> bool {
        match self.stack.last() {
            Some(f) => f.text.trim().is_empty(),
            None => true, // root text is checked as it arrives
        }
    }
}

impl Sink for Tree {
    type Error = Invalid;

    fn open(&mut self, e: &BytesStart<'_>, depth: usize) -> Result<(), Invalid> {
        let name = utf8(e.name().as_ref())?.to_string();
        let has_attributes = e.attributes().next().is_some();
        if depth == 1 {
            if name != "request" {
                return Err(Invalid::bad_request(
                    None,
                    "the root element must be <request>",
                ));
            }
            if has_attributes {
                return Err(Invalid::bad_request(
                    None,
                    "<request> takes no attributes (values are elements)",
                ));
            }
            self.root_open = true;
            return Ok(());
        }
        if has_attributes {
            let at = self.path(Some(&name));
            let msg = format!("<{at}> takes no attributes (values are elements)");
            return Err(Invalid::bad_request(Some(at), msg));
        }
        if !self.parent_text_is_blank() {
            return Err(self.mixed());
        }
        self.parent_children();
        self.stack.push(Frame {
            name,
            children: None,
            text: String::new(),
        });
        Ok(())
    }

    fn text(&mut self, text: &str) -> Result<(), Invalid> {
        let blank = text.trim().is_empty();
        match self.stack.last_mut() {
            Some(f) => {
                if f.children.is_some() && !blank {
                    return Err(self.mixed());
                }
                f.text.push_str(text);
            }
            None if blank => {}
            None => return Err(self.mixed()),
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), Invalid> {
        let Some(frame) = self.stack.pop() else {
            let obj = self.root_children.take().unwrap_or_default();
            self.root = Some(Value::Object(Box::new(obj)));
            return Ok(());
        };
        let value = {
            let mut names = self.names();
            names.push(&frame.name);
            match frame.children {
                Some(obj) => Value::Object(Box::new(obj)),
                None if frame.text.is_empty() && is_object_path(&names) => {
                    Value::Object(Box::default())
                }
                None => leaf(&names, frame.text),
            }
        };
        if self.parent_children().contains_key(frame.name.as_str()) {
            let at = self.path(Some(&frame.name));
            let msg = format!("<{at}> is given more than once");
            return Err(Invalid::bad_value(at, msg));
        }
        self.parent_children().insert(Cow::Owned(frame.name), value);
        Ok(())
    }
}

/// Where an element holds fields rather than a value.
fn is_object_path(names: &[&str]) -> bool {
    matches!(names, ["lead"] | ["consent"] | ["lead", "attributes"])
}

/// The value `text` is where `names` puts it (contract §3 types).
fn leaf(names: &[&str], text: String) -> Value<'static> {
    let typed = match names {
        ["test"] | ["lead", "homeowner"] => boolean(text.trim()),
        ["floor"] | ["lead", "age"] | ["lead", "income"] => number(text.trim()),
        ["lead", "attributes", _] => match text.as_str() {
            "true" => Some(Value::Static(StaticNode::Bool(true))),
            "false" => Some(Value::Static(StaticNode::Bool(false))),
            t => number(t),
        },
        _ => None,
    };
    typed.unwrap_or(Value::String(Cow::Owned(text)))
}

fn boolean(t: &str) -> Option<Value<'static>> {
    match t {
        "true" | "1" => Some(Value::Static(StaticNode::Bool(true))),
        "false" | "0" => Some(Value::Static(StaticNode::Bool(false))),
        _ => None,
    }
}

/// A number as JSON writes one (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`):
/// an integer when it has no fraction or exponent and fits, else a float.
fn number(t: &str) -> Option<Value<'static>> {
    if !is_json_number(t.as_bytes()) {
        return None;
    }
    if let Ok(n) = t.parse::<i64>() {
        return Some(Value::Static(StaticNode::I64(n)));
    }
    if let Ok(n) = t.parse::<u64>() {
        return Some(Value::Static(StaticNode::U64(n)));
    }
    let f = t.parse::<f64>().ok().filter(|f| f.is_finite())?;
    Some(Value::Static(StaticNode::F64(f)))
}

fn is_json_number(b: &[u8]) -> bool {
    let digits = |b: &[u8], i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    let mut i = usize::from(b.first() == Some(&b'-'));
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(b, &mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(b, &mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(b, &mut i) {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_number_syntax_only() {
        for ok in [
            "0",
            "-0",
            "12",
            "-3.25",
            "1e3",
            "2.5E-2",
            "9223372036854775808",
        ] {
            assert!(number(ok).is_some(), "{ok}");
        }
        for no in [
            "", "-", "01234", "1.", ".5", "1e", "+1", "0x10", "NaN", "inf", " 1",
        ] {
            assert!(number(no).is_none(), "{no}");
        }
        assert_eq!(number("30"), Some(Value::Static(StaticNode::I64(30))));
        assert_eq!(number("2.50"), Some(Value::Static(StaticNode::F64(2.5))));
    }
}

#[cfg(test)]
#[path = "xml_tests.rs"]
mod parity;
