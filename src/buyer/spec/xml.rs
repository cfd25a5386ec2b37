//! Buyers' XML and SOAP answers, read with `quick-xml` into a flat list of
//! elements (local name, parent, attributes, own text) that the response
//! rules' slash paths walk. Namespace prefixes are dropped (`soap:Body` is
//! `Body`), as contract §9 asks.
//!
//! Why `quick-xml`: the maintained pull parser of the ecosystem, no
//! unsafe in its parsing path, borrowing from the input, and it never
//! expands anything but the five predefined entities and character
//! references — so no entity expansion attack. A DOCTYPE is refused outright
//! (a buyer answer has no use for one) and nesting is bounded by
//! `limits::BUYER_XML_DEPTH_MAX`.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::limits;

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
    let mut r = Reader::from_reader(body);
    r.config_mut().check_end_names = true;
    let mut dom = Dom::default();
    let mut stack: Vec<usize> = Vec::new();
    loop {
        let event = r.read_event().map_err(|_| "malformed_xml")?;
        match event {
            Event::Start(e) => {
                let i = dom.open(&e, &stack)?;
                stack.push(i);
                if stack.len() > limits::BUYER_XML_DEPTH_MAX {
                    return Err("xml_too_deep");
                }
            }
            Event::Empty(e) => {
                dom.open(&e, &stack)?;
            }
            Event::End(_) => {
                stack.pop().ok_or("malformed_xml")?;
            }
            Event::Text(t) => {
                let text = t.xml10_content().map_err(|_| "malformed_xml")?;
                dom.text(&stack, &text)?;
            }
            Event::CData(c) => {
                let text = c.decode().map_err(|_| "malformed_xml")?;
                dom.text(&stack, &text)?;
            }
            Event::GeneralRef(e) => {
                let c = if e.is_char_ref() {
                    e.resolve_char_ref().ok().flatten()
                } else {
                    match e.decode().map_err(|_| "malformed_xml")?.as_ref() {
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "amp" => Some('&'),
                        "apos" => Some('\''),
                        "quot" => Some('"'),
                        _ => None,
                    }
                };
                let c = c.ok_or("malformed_xml")?;
                dom.text(&stack, c.encode_utf8(&mut [0; 4]))?;
            }
            Event::DocType(_) => return Err("xml_doctype"),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !stack.is_empty() || dom.nodes.is_empty() {
        return Err("malformed_xml");
    }
    Ok(dom)
}

fn utf8(b: &[u8]) -> Result<&str, &'static str> {
    std::str::from_utf8(b).map_err(|_| "malformed_xml")
}

impl Dom {
    fn open(&mut self, e: &BytesStart<'_>, stack: &[usize]) -> Result<usize, &'static str> {
        if stack.is_empty() && !self.nodes.is_empty() {
            return Err("malformed_xml"); // a second root
        }
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|_| "malformed_xml")?;
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|_| "malformed_xml")?;
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

    fn text(&mut self, stack: &[usize], text: &str) -> Result<(), &'static str> {
        match stack.last() {
            Some(&i) => {
                self.nodes[i].text.push_str(text);
                Ok(())
            }
            None if text.trim().is_empty() => Ok(()),
            None => Err("malformed_xml"), // text outside the root
        }
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
