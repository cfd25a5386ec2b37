use super::*;
use crate::buyer::spec::roundtrip;
use crate::lead::Credit;

fn maps() -> Maps {
    let mut credit = Map::default();
    credit
        .entries
        .insert("excellent".into(), Lit::Str("A".into()));
    credit.entries.insert("good".into(), Lit::Int(2));
    credit.fallback = Some(Lit::Str("U".into()));
    let mut yn = Map::default();
    yn.entries.insert("true".into(), Lit::Str("Y".into()));
    let mut m = Maps::new();
    m.insert("credit".into(), Arc::new(credit));
    m.insert("yn".into(), Arc::new(yn));
    m
}

fn lead() -> Lead {
    Lead {
        zip: "90210".into(),
        state: "CA".into(),
        age: Some(30),
        credit: Some(Credit::Good),
        homeowner: Some(true),
        captured_at: Some("2024-05-01T12:34:56Z".into()),
        first_name: Some("Ann".into()),
        phone: Some("+13105550142".into()),
        attributes: vec![
            ("make".into(), Attr::Str("Ford".into())),
            ("n".into(), Attr::Int(2)),
        ],
        ..Lead::default()
    }
}

fn render(src: &str, format: Format, kind: StageKind) -> String {
    let l = lead();
    let vars = Vars {
        ping_id: "p1",
        vertical: "auto",
        publisher: "pub1",
        lead: &l,
        consent: None,
        test: false,
        buyer_ref: Some("r-9"),
        price: Some(1250),
        now_ms: 1_735_689_600_000,
    };
    let t = Template::compile(src, kind, &maps()).unwrap();
    let mut out = Vec::new();
    t.render(format, &vars, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn json_values_render_typed_and_missing_is_null() {
    let src = r#"{"zip":{{lead.zip}},"age":{{ lead.age }},"own":{{lead.homeowner}},"inc":{{lead.income}},"n":{{lead.attributes.n}},"p":{{price}},"t":{{test}},"c":{{ lead.credit | lookup("credit") }}}"#;
    assert_eq!(
        render(src, Format::Json, StageKind::Post),
        r#"{"zip":"90210","age":30,"own":true,"inc":null,"n":2,"p":12.50,"t":false,"c":2}"#
    );
}

#[test]
fn filters_do_what_the_contract_says() {
    let r = |s: &str| render(s, Format::Xml, StageKind::Post);
    assert_eq!(r("{{ lead.phone | phone('digits') }}"), "3105550142");
    assert_eq!(r("{{ lead.phone | phone(\"e164\") }}"), "+13105550142");
    assert_eq!(r("{{ lead.phone | phone('dashed') }}"), "310-555-0142");
    assert_eq!(
        r("{{ lead.captured_at | date('%m/%d/%Y %H:%M') }}"),
        "05/01/2024 12:34"
    );
    assert_eq!(
        r("{{ lead.city | default('LA') }}|{{ lead.zip | default('x') }}"),
        "LA|90210"
    );
    assert_eq!(
        r("{{ lead.first_name | upper }}{{ lead.state | lower }}"),
        "ANNca"
    );
    assert_eq!(r("{{ lead.credit | lookup('credit') }}"), "2");
    assert_eq!(
        r("{{ lead.state | lookup('credit') }}"),
        "U",
        "not in the map: its _ entry"
    );
    assert_eq!(
        r("{{ lead.state | lookup('yn') }}"),
        "CA",
        "no _ entry: unchanged"
    );
    assert_eq!(r("{{ lead.homeowner | lookup('yn') }}"), "Y");
    assert_eq!(
        r("{{ lead.attributes.make | upper }}/{{ lead.attributes.no }}"),
        "FORD/"
    );
    assert_eq!(
        r("{{ now }} {{ ref }} {{ publisher }} {{ vertical }}"),
        "2025-01-01T00:00:00Z r-9 pub1 auto"
    );
    assert_eq!(r("{{ lead.email | default(7) }}"), "7");
}

#[test]
fn form_encodes_literals_and_values() {
    assert_eq!(
        render(
            "{{ lead.first_name }} & {{ price }}",
            Format::Form,
            StageKind::Post
        ),
        "Ann%20%26%2012.50"
    );
}

#[test]
fn compile_errors_name_the_problem() {
    let err = |s: &str, kind| Template::compile(s, kind, &maps()).unwrap_err();
    let post = StageKind::Post;
    for (src, want) in [
        ("{{ lead.zip", "unclosed {{"),
        ("{{ leed.zip }}", "unknown variable leed"),
        ("{{ lead.zipcode }}", "unknown field lead.zipcode"),
        ("{{ lead }}", "expected lead.<field>"),
        ("{{ lead.attributes }}", "expected lead.attributes.<name>"),
        ("{{ ping_id.x }}", "ping_id has no fields"),
        ("{{ lead.zip | shout }}", "unknown filter shout"),
        ("{{ lead.zip | lookup('nope') }}", "unknown map \"nope\""),
        (
            "{{ lead.zip | lookup }}",
            "lookup takes one string argument",
        ),
        ("{{ lead.zip | phone('intl') }}", "phone: unknown format"),
        ("{{ lead.zip | date('%Q') }}", "date: unsupported %Q"),
        ("{{ lead.zip | upper(1) }}", "upper takes no arguments"),
        ("{{ lead.zip | default('a' }}", "expected , or )"),
        ("{{ lead.zip upper }}", "expected | between filters"),
        ("{{ }}", "expected a variable"),
        ("{{ lead.zip | default('x) }}", "unclosed string literal"),
        ("{{ lead.zip ; }}", "unexpected character ';'"),
    ] {
        let e = err(src, post);
        assert!(e.contains(want), "{src}: {e}");
    }
    for src in ["{{ ref }}", "{{ price }}", "{{ consent.ip }}"] {
        assert!(
            err(src, StageKind::Ping).contains("only in the post"),
            "{src}"
        );
    }
}

#[test]
fn check_renders_refuses_placeholders_where_no_value_fits() {
    let c = |src: &str, f| {
        let t = Template::compile(src, StageKind::Post, &maps()).unwrap();
        super::super::check_renders(&t, f, StageKind::Post)
    };
    assert!(c(r#"{"a": {{ lead.zip }}}"#, Format::Json).is_ok());
    assert!(
        c(r#"{"a": "{{ lead.zip }}"}"#, Format::Json).is_err(),
        "inside a string"
    );
    assert!(
        c(r#"{ {{ lead.city }}: 1}"#, Format::Json).is_err(),
        "a key, null when missing"
    );
    assert!(c(r#"{"a": 1"#, Format::Json).is_err());
    assert!(c("<a x=\"{{ lead.zip }}\">{{ lead.city }}</a>", Format::Xml).is_ok());
    assert!(c("<{{ lead.zip }}/>", Format::Xml).is_err(), "a tag name");
    assert!(
        c("<a {{ lead.zip }}/>", Format::Xml).is_err(),
        "an attribute name"
    );
    assert!(c("<a>", Format::Soap).is_err());
}

/// A deterministic stream of adversarial strings: every character each
/// format must escape, look-alike escapes, controls, unicode, long runs.
struct Nasty(u64);

impl Nasty {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn string(&mut self) -> String {
        const BITS: &[&str] = &[
            "\"",
            "'",
            "<",
            ">",
            "&",
            "]]>",
            "<![CDATA[",
            "<!--",
            "-->",
            "\\",
            "\\u0000",
            "\\\"",
            "&amp;",
            "&#x41;",
            "&lt;",
            "&bogus;",
            "%",
            "%2",
            "%zz",
            "%41",
            "+",
            "=",
            "&a=b",
            "?",
            "#",
            "\n",
            "\r",
            "\r\n",
            "\t",
            "\u{0}",
            "\u{1}",
            "\u{1f}",
            "\u{7f}",
            "é",
            "日本",
            "😀",
            "\u{2028}",
            "\u{fffe}",
            "\u{ffff}",
            "\u{feff}",
            "{{",
            "}}",
            "</a>",
            "<a>",
            "\"}",
            "null",
            "}",
            "]",
            " ",
            "a",
            "Z",
            "0",
        ];
        let n = (self.next() % 24) as usize;
        let mut s = String::new();
        for _ in 0..n {
            let r = self.next();
            if r % 7 == 0 {
                s.push(char::from_u32((r >> 8) as u32 % 0x11_0000).unwrap_or('x'));
            } else {
                s.push_str(BITS[(r >> 8) as usize % BITS.len()]);
            }
        }
        if self.next() % 50 == 0 {
            s = s.repeat(2000 / s.len().max(1) + 1);
        }
        s
    }
}

/// The escaping property for every format (see `roundtrip::check`), over
/// 3,000 adversarial pairs and the hand-picked worst ones.
#[test]
fn whatever_the_lead_holds_each_format_parses_and_carries_it_as_data() {
    for (a, b) in [
        ("", ""),
        ("\"},\"x\":{\"", "</A><C>1</C><A>"),
        ("]]>", "&a=b&c"),
        ("\u{0}\u{1}\r\n\t", "\u{fffe}\u{ffff}😀"),
        ("\\u0022", "&#x3c;"),
    ] {
        roundtrip::check(a, b);
    }
    let mut g = Nasty(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let (a, b) = (g.string(), g.string());
        roundtrip::check(&a, &b);
    }
}
