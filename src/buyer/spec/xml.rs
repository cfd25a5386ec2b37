//! Buyers' XML and SOAP answers, read with `quick-xml` into a flat list of
//! elements (local name, parent, attributes, own text) that the response
//! rules' slash paths walk. Namespace prefixes are dropped (`soap:Body` is
//! `Body`), as contract §9 asks.
//!
//! The reading rules (no DOCTYPE, so no entity declaration; only the five
//! predefined entities and character references; nesting bounded by
//! `limits::BUYER_XML_DEPTH_MAX`) are the shared loop's, `crate::xml::read`;
//! a buyer's answer may carry processing instructions, which are skipped.

use quick_xml::events::BytesStart;

use crate::limits;
use crate::xml::{self, utf8, Rules, Sink, XmlError};

/// A parsed XML document: elements in document order.
#[derive(Debug, Default)]
pub struct Dom {
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    name: String,
    parent: Option<usize>,
    depth: usize,
    attrs: Vec<(String, String)>,
    text: String,
}

/// Parses `body`; the error is the failure reason for the record.
pub fn parse(body: &[u8]) -> Result<Dom, &'static str> {
    let mut b = Builder::default();
    let rules = Rules {
        depth_max: limits::BUYER_XML_DEPTH_MAX,
        instructions: true,
    };
    xml::read(body, rules, &mut b).map_err(XmlError::reason)?;
    Ok(b.dom)
}

/// The sink that lays elements out flat.
#[derive(Default)]
struct Builder {
    dom: Dom,
    stack: Vec<usize>,
}

impl Sink for Builder {
    type Error = XmlError;

    fn open(&mut self, e: &BytesStart<'_>, _depth: usize) -> Result<(), XmlError> {
        let i = self.dom.open(e, &self.stack)?;
        self.stack.push(i);
        Ok(())
    }

    fn text(&mut self, text: &str) -> Result<(), XmlError> {
        let i = *self.stack.last().ok_or(XmlError::Malformed)?;
        self.dom.nodes[i].text.push_str(text);
        Ok(())
    }

    fn close(&mut self) -> Result<(), XmlError> {
        self.stack.pop().map(drop).ok_or(XmlError::Malformed)
    }
}

impl Dom {
    fn open(&mut self, e: &BytesStart<'_>, stack: &[usize]) -> Result<usize, XmlError> {
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|_| XmlError::Malformed)?;
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|_| XmlError::Malformed)?;
            attrs.push((
                utf8(a.key.local_name().as_ref())?.to_string(),
                value.into_owned(),
            ));
        }
        self.nodes.push(Node {
            name: utf8(e.local_name().as_ref())?.to_string(),
            parent: stack.last().copied(),
            depth: stack.len(),
            attrs,
            text: String::new(),
        });
        Ok(self.nodes.len() - 1)
    }

    /// Elements in the document.
    pub fn elements(&self) -> usize {
        self.nodes.len()
    }

    /// The text of the first element at `/e1/e2/…` (local names, from the
    /// root), or its attribute `attr`; `None` when nothing is there.
    pub fn find(&self, elems: &[String], attr: Option<&str>) -> Option<&str> {
        let (last, parents) = elems.split_last()?;
        let node = self.nodes.iter().find(|n| {
            n.depth == parents.len() && n.name == *last && self.ancestors_are(n, parents)
        })?;
        match attr {
            None => Some(&node.text),
            Some(a) => node
                .attrs
                .iter()
                .find(|(k, _)| k == a)
                .map(|(_, v)| v.as_str()),
        }
    }

    fn ancestors_are(&self, n: &Node, names: &[String]) -> bool {
        let mut at = n.parent;
        for name in names.iter().rev() {
            match at {
                Some(i) if self.nodes[i].name == *name => at = self.nodes[i].parent,
                _ => return false,
            }
        }
        at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn paths_ignore_prefixes_and_read_text_and_attributes() {
        let body = br#"<?xml version="1.0"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="urn:a">
  <soap:Body><a:PingResult a:token="t&amp;1"><a:Status>Accepted</a:Status>
  <a:Bid><![CDATA[12.50]]></a:Bid><a:Msg>a &lt; b &#233;</a:Msg></a:PingResult></soap:Body>
</soap:Envelope>"#;
        let d = parse(body).unwrap();
        let at = |p: &str, a: Option<&str>| d.find(&path(p), a).map(str::to_string);
        assert_eq!(
            at("/Envelope/Body/PingResult/Status", None).as_deref(),
            Some("Accepted")
        );
        assert_eq!(
            at("/Envelope/Body/PingResult/Bid", None).as_deref(),
            Some("12.50")
        );
        assert_eq!(
            at("/Envelope/Body/PingResult/Msg", None).as_deref(),
            Some("a < b é")
        );
        assert_eq!(
            at("/Envelope/Body/PingResult", Some("token")).as_deref(),
            Some("t&1")
        );
        assert_eq!(
            at("/Body/PingResult/Status", None),
            None,
            "paths start at the root"
        );
        assert_eq!(at("/Envelope/Body/PingResult/Nope", None), None);
    }

    #[test]
    fn bad_documents_are_failures_with_a_reason() {
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        let cases: &[(&[u8], &str)] = &[
            (b"", "malformed_xml"),
            (b"not xml", "malformed_xml"),
            (b"<a><b></a>", "malformed_xml"),
            (b"<a>", "malformed_xml"),
            (b"<a/><b/>", "malformed_xml"),
            (b"<a>&ent;</a>", "malformed_xml"),
            (b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", "xml_doctype"),
            (deep.as_bytes(), "xml_too_deep"),
            (b"<a>\xff</a>", "malformed_xml"),
        ];
        for (body, why) in cases {
            assert_eq!(
                parse(body).err(),
                Some(*why),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
