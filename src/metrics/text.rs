//! Writing the Prometheus text exposition format (version 0.0.4).
//!
//! Kept apart from the registry so the rules of the format — one HELP/TYPE
//! pair per family, all of a family's samples together, escaped label values,
//! cumulative buckets — live in one place and are tested once.

use std::collections::HashMap;
use std::fmt::Display;
use std::io::Write;

use super::histogram::HistogramSnapshot;

/// Writes `# HELP` and `# TYPE` for a family. Call once, before its samples.
pub fn write_header(out: &mut Vec<u8>, name: &str, help: &str, kind: &str) {
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    for b in help.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
    out.extend_from_slice(b"\n# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(kind.as_bytes());
    out.push(b'\n');
}

/// Escapes a label value: backslash, double quote and newline, as the format
/// requires. Anything else (UTF-8 included) passes through.
pub fn write_label_value(out: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

/// Writes `{a="x",b="y"}` (nothing when there are no labels). `last` is an
/// extra label appended after `labels` — histograms use it for `le`.
fn write_labels(out: &mut Vec<u8>, labels: &[(&str, &str)], last: Option<(&str, &str)>) {
    if labels.is_empty() && last.is_none() {
        return;
    }
    out.push(b'{');
    for (i, (k, v)) in labels.iter().chain(last.iter()).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"=\"");
        write_label_value(out, v);
        out.push(b'"');
    }
    out.push(b'}');
}

/// Writes one sample line: `name{labels} value`.
pub fn write_sample(out: &mut Vec<u8>, name: &str, labels: &[(&str, &str)], value: impl Display) {
    write_sample_le(out, name, labels, None, value);
}

fn write_sample_le(
    out: &mut Vec<u8>,
    name: &str,
    labels: &[(&str, &str)],
    last: Option<(&str, &str)>,
    value: impl Display,
) {
    out.extend_from_slice(name.as_bytes());
    write_labels(out, labels, last);
    // Writing into a Vec cannot fail.
    let _ = writeln!(out, " {value}");
}

/// A float as the format spells it: `+Inf`, `-Inf`, `NaN`, else decimal.
pub struct PromFloat(pub f64);

impl Display for PromFloat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else {
            write!(f, "{v}")
        }
    }
}

/// Writes a histogram's `_bucket` (cumulative), `_sum` and `_count` series.
/// `divisor` turns the integer sum into the exposed unit (µs → s, ¢ → USD).
pub fn write_histogram<const N: usize>(
    out: &mut Vec<u8>,
    name: &str,
    labels: &[(&str, &str)],
    snap: &HistogramSnapshot<N>,
    le: &[&str; N],
    divisor: f64,
) {
    let bucket = format!("{name}_bucket");
    let cumulative = snap.cumulative();
    for (count, le) in cumulative.iter().zip(le) {
        write_sample_le(out, &bucket, labels, Some(("le", le)), count);
    }
    write_sample(
        out,
        &format!("{name}_sum"),
        labels,
        PromFloat(snap.sum as f64 / divisor),
    );
    // `_count` is the +Inf bucket by construction, never a separate read.
    write_sample(out, &format!("{name}_count"), labels, cumulative[N - 1]);
}

/// True when the last line in `out` is a sample of family `name`.
fn continues_family(out: &[u8], name: &str) -> bool {
    let Some(body) = out.strip_suffix(b"\n") else {
        return false;
    };
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let line = &body[start..];
    line.starts_with(name.as_bytes()) && matches!(line.get(name.len()), Some(b'{') | Some(b' '))
}

/// Appends one gauge sample, for the `extra` callback of `Registry::render`.
///
/// HELP and TYPE are written unless the previous line is already a sample
/// of `name`. Callers may interleave families (e.g. two gauges per buyer in
/// one loop): `Registry::render` passes `extra` a buffer of its own and
/// regroups it with [`regroup`], so each family still comes out whole with
/// one HELP/TYPE.
pub fn write_gauge(out: &mut Vec<u8>, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
    if !continues_family(out, name) {
        write_header(out, name, help, "gauge");
    }
    write_sample(out, name, labels, PromFloat(value));
}

/// One family gathered by `regroup`.
struct Family<'a> {
    help: Option<&'a [u8]>,
    kind: Option<&'a [u8]>,
    samples: Vec<&'a [u8]>,
}

/// The family a sample line belongs to: its metric name, or the name less
/// a `_bucket`/`_sum`/`_count` suffix when that family was declared.
fn family_name<'a>(name: &'a str, declared: &HashMap<&str, usize>) -> &'a str {
    if declared.contains_key(name) {
        return name;
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|base| declared.contains_key(base))
        .unwrap_or(name)
}

/// Copies exposition text from `src` to `out` with every family's lines
/// brought together (families in order of first appearance) and its HELP
/// and TYPE kept once. Other comment lines are dropped.
pub fn regroup(src: &[u8], out: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(src);
    let mut order: Vec<Family> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (name, header) = if let Some(rest) = line.strip_prefix("# HELP ") {
            (rest.split(' ').next().unwrap_or(""), Some(true))
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            (rest.split(' ').next().unwrap_or(""), Some(false))
        } else if line.starts_with('#') {
            continue;
        } else {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            (family_name(&line[..end], &index), None)
        };
        let i = *index.entry(name).or_insert_with(|| {
            order.push(Family {
                help: None,
                kind: None,
                samples: Vec::new(),
            });
            order.len() - 1
        });
        let family = &mut order[i];
        match header {
            Some(true) => family.help = family.help.or(Some(line.as_bytes())),
            Some(false) => family.kind = family.kind.or(Some(line.as_bytes())),
            None => family.samples.push(line.as_bytes()),
        }
    }
    for family in &order {
        for line in family
            .help
            .iter()
            .chain(family.kind.iter())
            .chain(family.samples.iter())
        {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::{latency, LATENCY_LE, US_PER_S};

    fn text(out: &[u8]) -> &str {
        std::str::from_utf8(out).unwrap()
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Vec::new();
        write_sample(&mut out, "m", &[("buyer", "a\"b\\c\nd")], 1);
        assert_eq!(text(&out), "m{buyer=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn gauge_header_written_once_per_consecutive_family() {
        let mut out = Vec::new();
        write_gauge(&mut out, "leadx_pool", "Pool size.", &[("buyer", "a")], 1.0);
        write_gauge(&mut out, "leadx_pool", "Pool size.", &[("buyer", "b")], 2.5);
        write_gauge(&mut out, "leadx_pool_idle", "Idle.", &[], 3.0);
        let t = text(&out);
        assert_eq!(t.matches("# TYPE leadx_pool gauge").count(), 1, "{t}");
        assert_eq!(t.matches("# TYPE leadx_pool_idle gauge").count(), 1, "{t}");
        assert!(t.contains("leadx_pool{buyer=\"b\"} 2.5\n"));
        assert!(t.ends_with("leadx_pool_idle 3\n"));
    }

    #[test]
    fn special_floats_use_prometheus_spelling() {
        assert_eq!(PromFloat(f64::INFINITY).to_string(), "+Inf");
        assert_eq!(PromFloat(f64::NEG_INFINITY).to_string(), "-Inf");
        assert_eq!(PromFloat(f64::NAN).to_string(), "NaN");
        assert_eq!(PromFloat(0.25).to_string(), "0.25");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches_inf() {
        let h = latency();
        h.observe(500);
        h.observe(3_000);
        h.observe(3_000);
        let mut out = Vec::new();
        write_histogram(
            &mut out,
            "x_seconds",
            &[("e", "ping")],
            &h.snapshot(),
            &LATENCY_LE,
            US_PER_S,
        );
        let t = text(&out);
        assert!(
            t.contains("x_seconds_bucket{e=\"ping\",le=\"0.001\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("x_seconds_bucket{e=\"ping\",le=\"0.005\"} 3\n"),
            "{t}"
        );
        assert!(
            t.contains("x_seconds_bucket{e=\"ping\",le=\"+Inf\"} 3\n"),
            "{t}"
        );
        assert!(t.contains("x_seconds_count{e=\"ping\"} 3\n"), "{t}");
        assert!(t.contains("x_seconds_sum{e=\"ping\"} 0.0065\n"), "{t}");
    }

    #[test]
    fn regroup_joins_interleaved_families_with_one_header() {
        let mut src = Vec::new();
        for buyer in ["a", "b"] {
            write_gauge(&mut src, "leadx_cap", "Cap.", &[("buyer", buyer)], 1.0);
            write_gauge(&mut src, "leadx_pool", "Pool.", &[("buyer", buyer)], 2.0);
        }
        let mut out = Vec::new();
        regroup(&src, &mut out);
        assert_eq!(
            text(&out),
            "# HELP leadx_cap Cap.\n# TYPE leadx_cap gauge\n\
             leadx_cap{buyer=\"a\"} 1\nleadx_cap{buyer=\"b\"} 1\n\
             # HELP leadx_pool Pool.\n# TYPE leadx_pool gauge\n\
             leadx_pool{buyer=\"a\"} 2\nleadx_pool{buyer=\"b\"} 2\n"
        );
    }

    #[test]
    fn regroup_keeps_histogram_series_with_their_family() {
        let h = latency();
        h.observe(10);
        let mut src = Vec::new();
        write_header(&mut src, "leadx_h_seconds", "H.", "histogram");
        write_histogram(
            &mut src,
            "leadx_h_seconds",
            &[],
            &h.snapshot(),
            &LATENCY_LE,
            US_PER_S,
        );
        write_gauge(&mut src, "leadx_g", "G.", &[], 1.0);
        let mut out = Vec::new();
        regroup(&src, &mut out);
        assert_eq!(text(&out), text(&src), "already grouped text is unchanged");
    }
}
