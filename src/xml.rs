//! XML, the parts every reader and writer of it shares: one pull loop over
//! `quick-xml` ([`read`]) with the safety rules in one place, and one
//! escaper ([`escape`]) for everything leadx writes. Buyers' XML and SOAP
//! answers (`buyer::spec::xml`) and publishers' XML requests (`wire::xml`,
//! contract §11) are two [`Sink`]s over the same loop.
//!
//! Why `quick-xml`: the maintained pull parser of the ecosystem, no unsafe
//! in its parsing path, and it never expands anything but the five
//! predefined entities and character references — so no entity expansion
//! (billion laughs) whatever a document declares. On top of it [`read`]
//! refuses a DOCTYPE outright (neither side has a use for one, and refusing
//! it refuses every entity declaration with it), bounds nesting, refuses an
//! unknown entity reference, a second root and text outside the root, and —
//! where asked — processing instructions.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Why a document is refused, before any sink looked at its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XmlError {
    /// Not well-formed (or not UTF-8, or no root, or an unknown entity).
    Malformed,
    /// A `<!DOCTYPE …>`, with or without entity declarations.
    Doctype,
    /// Elements nested deeper than the reader's bound.
    TooDeep,
    /// A processing instruction (`<?…?>`) other than the XML declaration.
    Instruction,
}

impl XmlError {
    /// The word a buyer's call record carries for it (contract §10: "a
    /// parse failure").
    pub fn reason(self) -> &'static str {
        match self {
            XmlError::Malformed => "malformed_xml",
            XmlError::Doctype => "xml_doctype",
            XmlError::TooDeep => "xml_too_deep",
            XmlError::Instruction => "xml_instruction",
        }
    }

    /// A sentence for a publisher's error body.
    pub fn message(self, depth_max: usize) -> String {
        match self {
            XmlError::Malformed => "the body is not well-formed UTF-8 XML".into(),
            XmlError::Doctype => "DOCTYPE and entity declarations are not accepted".into(),
            XmlError::TooDeep => format!("XML nested deeper than {depth_max} levels"),
            XmlError::Instruction => {
                "processing instructions other than the XML declaration are not accepted".into()
            }
        }
    }
}

/// What a document may hold besides elements and text.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Elements nested at most this deep (the root is depth 1).
    pub depth_max: usize,
    /// Whether `<?target …?>` instructions are skipped (else refused).
    pub instructions: bool,
}

/// What [`read`] hands over, in document order. Text arrives in pieces
/// (runs, CDATA sections, resolved references), always inside the root.
pub trait Sink {
    type Error: From<XmlError>;
    /// An element opens, `depth` elements deep (the root is 1).
    fn open(&mut self, e: &BytesStart<'_>, depth: usize) -> Result<(), Self::Error>;
    fn text(&mut self, text: &str) -> Result<(), Self::Error>;
    /// The element opened last closes (also right after an empty one).
    fn close(&mut self) -> Result<(), Self::Error>;
}

/// Reads `body` into `sink` under `rules`: one root element, nothing but
/// whitespace, comments (and allowed instructions) around it.
pub fn read<S: Sink>(body: &[u8], rules: Rules, sink: &mut S) -> Result<(), S::Error> {
    let mut r = Reader::from_reader(body);
    r.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut roots = 0usize;
    loop {
        let event = r.read_event().map_err(|_| XmlError::Malformed)?;
        match event {
            Event::Start(_) | Event::Empty(_) if depth == 0 && roots > 0 => {
                return Err(XmlError::Malformed.into()); // a second root
            }
            Event::Start(e) => {
                depth += 1;
                roots += usize::from(depth == 1);
                if depth > rules.depth_max {
                    return Err(XmlError::TooDeep.into());
                }
                sink.open(&e, depth)?;
            }
            Event::Empty(e) => {
                roots += usize::from(depth == 0);
                if depth + 1 > rules.depth_max {
                    return Err(XmlError::TooDeep.into());
                }
                sink.open(&e, depth + 1)?;
                sink.close()?;
            }
            Event::End(_) => {
                depth = depth.checked_sub(1).ok_or(XmlError::Malformed)?;
                sink.close()?;
            }
            Event::Text(t) => {
                let text = t.xml10_content().map_err(|_| XmlError::Malformed)?;
                text_in(depth, &text, sink)?;
            }
            Event::CData(c) => {
                let text = c.decode().map_err(|_| XmlError::Malformed)?;
                text_in(depth, &text, sink)?;
            }
            Event::GeneralRef(e) => {
                let c = if e.is_char_ref() {
                    e.resolve_char_ref().ok().flatten()
                } else {
                    predefined(&e.decode().map_err(|_| XmlError::Malformed)?)
                };
                let c = c.ok_or(XmlError::Malformed)?;
                text_in(depth, c.encode_utf8(&mut [0; 4]), sink)?;
            }
            Event::DocType(_) => return Err(XmlError::Doctype.into()),
            Event::PI(_) if !rules.instructions => return Err(XmlError::Instruction.into()),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if depth != 0 || roots == 0 {
        return Err(XmlError::Malformed.into());
    }
    Ok(())
}

/// Text goes to the sink inside the root; outside it only whitespace may be.
fn text_in<S: Sink>(depth: usize, text: &str, sink: &mut S) -> Result<(), S::Error> {
    if depth > 0 {
        sink.text(text)
    } else if text.trim().is_empty() {
        Ok(())
    } else {
        Err(XmlError::Malformed.into())
    }
}

/// The five entities XML predefines; nothing else is ever expanded.
fn predefined(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

/// `b` as UTF-8, or a malformed document.
pub fn utf8(b: &[u8]) -> Result<&str, XmlError> {
    std::str::from_utf8(b).map_err(|_| XmlError::Malformed)
}

/// XML text or attribute content. `<`, `>`, `&` and both quotes become
/// entities; tab, LF and CR become character references so an attribute
/// keeps them (attribute-value normalisation would turn them into spaces);
/// characters XML 1.0 cannot carry at all (other C0 controls, U+FFFE,
/// U+FFFF) become U+FFFD rather than an ill-formed document ([`carried`]).
pub fn escape(out: &mut Vec<u8>, s: &str) {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let rep: &str = match c {
            '<' => "&lt;",
            '>' => "&gt;",
            '&' => "&amp;",
            '"' => "&quot;",
            '\'' => "&apos;",
            '\t' => "&#9;",
            '\n' => "&#10;",
            '\r' => "&#13;",
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => "\u{fffd}",
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[start..i]);
        out.extend_from_slice(rep.as_bytes());
        start = i + c.len_utf8();
    }
    out.extend_from_slice(&s.as_bytes()[start..]);
}

/// What XML can carry of `s`, i.e. what reading [`escape`]'s output gives
/// back: characters XML 1.0 cannot hold become U+FFFD.
pub fn carried(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// `<name>escaped text</name>`; `name` is a literal that needs no escaping.
pub fn element(out: &mut Vec<u8>, name: &str, text: &str) {
    out.push(b'<');
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
    escape(out, text);
    out.extend_from_slice(b"</");
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Collects text per element, for the loop's own tests.
    #[derive(Default)]
    struct Texts(Vec<(String, String)>, Vec<usize>);

    impl Sink for Texts {
        type Error = XmlError;
        fn open(&mut self, e: &BytesStart<'_>, _depth: usize) -> Result<(), XmlError> {
            let name = utf8(e.name().as_ref())?.to_string();
            self.1.push(self.0.len());
            self.0.push((name, String::new()));
            Ok(())
        }
        fn text(&mut self, text: &str) -> Result<(), XmlError> {
            let i = *self.1.last().ok_or(XmlError::Malformed)?;
            self.0[i].1.push_str(text);
            Ok(())
        }
        fn close(&mut self) -> Result<(), XmlError> {
            self.1.pop().map(drop).ok_or(XmlError::Malformed)
        }
    }

    fn run(body: &[u8], instructions: bool) -> Result<Vec<(String, String)>, XmlError> {
        let mut t = Texts::default();
        let rules = Rules {
            depth_max: 4,
            instructions,
        };
        read(body, rules, &mut t).map(|()| t.0)
    }

    /// Every element's name and own text, in document order (for tests of
    /// what leadx writes).
    pub(crate) fn texts(body: &[u8]) -> Result<Vec<(String, String)>, XmlError> {
        run(body, false)
    }

    #[test]
    fn the_loop_refuses_what_no_reader_should_take() {
        let deep = b"<a><b><c><d><e/></d></c></b></a>";
        let laughs = b"<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"ha\"><!ENTITY b \"&a;&a;\">]><l>&b;</l>";
        let cases: &[(&[u8], bool, XmlError)] = &[
            (b"", true, XmlError::Malformed),
            (b"text", true, XmlError::Malformed),
            (b"<a/><b/>", true, XmlError::Malformed),
            (b"<a/>x", true, XmlError::Malformed),
            (b"<a>&ent;</a>", true, XmlError::Malformed),
            (b"<a>\xff</a>", true, XmlError::Malformed),
            (laughs, true, XmlError::Doctype),
            (deep, true, XmlError::TooDeep),
            (
                b"<?xml version=\"1.0\"?><?pi x?><a/>",
                false,
                XmlError::Instruction,
            ),
        ];
        for (body, pi, want) in cases {
            let got = run(body, *pi).err();
            assert_eq!(got, Some(*want), "{}", String::from_utf8_lossy(body));
        }
        let ok = run(
            b"<?xml version=\"1.0\"?><?pi x?><a>1<!-- c -->&amp;<b/></a>",
            true,
        );
        assert_eq!(ok.unwrap()[0], ("a".to_string(), "1&".to_string()));
    }

    #[test]
    fn escaped_text_reads_back_as_what_xml_carries() {
        let hostile = "a<b>&c\"d'e\tf\ng\rh\u{0}i\u{1f}j\u{fffe}k é </x>]]>";
        let mut out = Vec::new();
        element(&mut out, "v", hostile);
        let got = run(&out, false).unwrap();
        assert_eq!(got[0].1, carried(hostile));
    }
}
