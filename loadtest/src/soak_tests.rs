//! The soak scenario's pure parts: windows, CSV, axis and plot.

use super::*;

fn stats_with(latencies_us: &[u64], answered: u64, errors: u64) -> Stats {
    let mut s = Stats::default();
    for &v in latencies_us {
        s.first.record_us(v);
    }
    s.answered = answered;
    s.errors = errors;
    s
}

#[test]
fn windows_turn_cumulative_stats_into_per_window_numbers() {
    let mut w = Windows::default();
    let mut cumulative = stats_with(&[1_000; 100], 100, 1);
    let a = w.next(Duration::from_secs(5), &cumulative, 10_240);
    assert_eq!(
        (a.t_s, a.rss_kib, a.answers_per_s, a.errors),
        (5.0, 10_240, 20.0, 1)
    );
    assert_eq!(a.p50_us, 1_000);
    // The second window holds only the slow answers that came after.
    for _ in 0..50 {
        cumulative.first.record_us(40_000);
    }
    cumulative.answered = 150;
    cumulative.errors = 4;
    let b = w.next(Duration::from_secs(10), &cumulative, 20_480);
    assert_eq!((b.answers_per_s, b.errors), (10.0, 3));
    assert!((39_900..=40_100).contains(&b.p50_us), "{}", b.p50_us);
    assert_eq!(b.p99_us, b.p50_us);
}

#[test]
fn csv_has_a_header_and_one_row_per_sample_in_mib_and_ms() {
    let s = Sample {
        t_s: 5.0,
        rss_kib: 2048,
        answers_per_s: 1500.4,
        p50_us: 12_345,
        p99_us: 250_000,
        max_us: 300_000,
        errors: 2,
        non_2xx: 3,
    };
    let text = csv(&[s, Sample { t_s: 10.0, ..s }]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "t_s,rss_mib,answers_per_s,ping_p50_ms,ping_p99_ms,ping_max_ms,errors,non_2xx"
    );
    assert_eq!(lines[1], "5,2.0,1500,12.35,250.00,300.00,2,3");
    assert_eq!(lines.len(), 3);
}

#[test]
fn nice_ceilings_are_round_and_not_below_the_value() {
    let cases = [
        (0.0, 1.0),
        (1.0, 1.0),
        (1.2, 2.0),
        (2.2, 2.5),
        (3.0, 5.0),
        (7.0, 10.0),
        (180.0, 200.0),
        (256.0, 500.0),
        (0.03, 0.05),
    ];
    for (v, want) in cases {
        assert!(
            (nice_ceiling(v) - want).abs() < 1e-9,
            "{v} -> {} (want {want})",
            nice_ceiling(v)
        );
    }
}

/// Pulls the `points` of the n-th polyline out of the SVG.
fn polyline_points(svg: &str, n: usize) -> Vec<(f64, f64)> {
    let line = svg
        .lines()
        .filter(|l| l.starts_with("<polyline"))
        .nth(n)
        .expect("polyline");
    let pts = line
        .split("points=\"")
        .nth(1)
        .unwrap()
        .trim_end_matches("\"/>");
    pts.split(' ')
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

#[test]
fn the_plot_scales_every_series_into_its_panel_and_stays_small() {
    // An hour sampled every 5 s.
    let samples: Vec<Sample> = (1..=720)
        .map(|i: u32| Sample {
            t_s: 5.0 * f64::from(i),
            rss_kib: 100 * 1024 + u64::from(i) * 100,
            p50_us: 2_000,
            p99_us: 50_000,
            ..Sample::default()
        })
        .collect();
    let svg = svg(&samples, "soak <test> & co", Some(256.0));
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.contains("soak &lt;test&gt; &amp; co"),
        "the title is escaped"
    );
    assert!(svg.len() < 100 * 1024, "{} bytes", svg.len());
    // Goal line, RSS, p50, p99.
    assert_eq!(
        svg.lines().filter(|l| l.starts_with("<polyline")).count(),
        4
    );
    let rss = polyline_points(&svg, 1);
    assert_eq!(rss.len(), 720);
    assert_eq!(
        rss.last().unwrap().0,
        RIGHT,
        "the last sample is at the right edge"
    );
    assert!(rss
        .iter()
        .all(|&(x, y)| (LEFT..=RIGHT).contains(&x) && (50.0..=210.0).contains(&y)));
    assert!(
        rss.windows(2).all(|w| w[1].1 <= w[0].1),
        "a growing RSS climbs (y falls)"
    );
    let p99 = polyline_points(&svg, 3);
    // 50 ms on a 50 ms axis: the top of the latency panel.
    assert!(
        p99.iter().all(|&(_, y)| (y - 260.0).abs() < 0.05),
        "{:?}",
        &p99[..2]
    );
}

#[test]
fn an_empty_soak_still_draws() {
    let svg = svg(&[], "nothing", None);
    assert!(svg.contains("</svg>"));
    assert_eq!(csv(&[]).lines().count(), 1);
}
