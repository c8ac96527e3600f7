//! The performance section of a campaign page: the record `mimi-sim bench --out
//! DIR/bench.json` writes ([`BenchReport`]), as tables and an SVG plot of one commit's
//! fan-out against room size.
//!
//! # Choices
//! * A figure that was not finite (written as null) shows as "—"; a fan-out size without
//!   finite times is left out of the table and the plot.
//! * The plot has logarithmic axes on both sides (room sizes 8..512 and times that grow
//!   faster than linearly), with a point per measured size.

use std::fmt::Write;

use super::svg::esc;
use crate::records::bench::{BenchReport, Measured};

fn num(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "—".into()
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.0} %", x * 100.0)
    } else {
        "—".into()
    }
}

/// The HTML section (heading, tables, plot) for a bench record.
pub fn section(b: &BenchReport) -> String {
    let mut o =
        String::from("<h2 id=\"performance\">Performance (<code>mimi-sim bench</code>)</h2>");
    o.push_str("<table id=\"bench-table\"><tr><th>scenario</th><th>clients</th><th>seeds</th><th>wall ms</th><th>seeds/s/core</th><th>simulated/wall</th><th>inside openmls</th><th>overhead over MLS</th></tr>");
    let measured: [Option<&Measured>; 2] = [Some(&b.standard), b.room_256.as_ref()];
    for m in measured.into_iter().flatten() {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}×</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&m.scenario),
            m.clients,
            m.seeds,
            num(m.wall_ms, 0),
            num(m.seeds_per_sec_per_core, 1),
            num(m.sim_speedup, 0),
            pct(m.mls_share),
            pct(m.overhead_over_mls),
        );
    }
    o.push_str("</table>");
    if let Some(p) = &b.parallel {
        let _ = write!(
            o,
            "<p id=\"bench-parallel\">Parallel efficiency: {} seeds in one worker process took {} ms, in two processes {} ms: efficiency t1 / (2 × t2) = <b>{}</b>.</p>",
            p.seeds,
            num(p.t1_ms, 0),
            num(p.t2_ms, 0),
            num(p.efficiency, 2)
        );
    }
    let rows: Vec<(f64, f64, f64)> = b
        .fanout
        .iter()
        .map(|f| (f.clients as f64, f.commit_wall_ms, f.commit_mls_ms))
        .filter(|(_, w, m)| w.is_finite() && m.is_finite())
        .collect();
    if !rows.is_empty() {
        o.push_str("<table id=\"bench-fanout\"><tr><th>room size (clients)</th><th>one commit's fan-out, wall ms</th><th>of which in openmls, ms</th></tr>");
        for (c, w, m) in &rows {
            let _ = write!(
                o,
                "<tr><td class=\"num\">{c}</td><td class=\"num\">{w:.1}</td><td class=\"num\">{m:.1}</td></tr>"
            );
        }
        o.push_str("</table>");
        o.push_str(&fanout_plot(&rows));
    }
    o
}

/// Log-log plot of fan-out wall time and openmls time against room size.
fn fanout_plot(rows: &[(f64, f64, f64)]) -> String {
    let (w, h, left, bottom, top, right) = (640.0, 260.0, 60.0, 40.0, 28.0, 20.0);
    let lx = |x: f64| x.max(1.0).log10();
    let (x0, x1) = rows.iter().fold((f64::MAX, f64::MIN), |(a, b), r| {
        (a.min(lx(r.0)), b.max(lx(r.0)))
    });
    let (y0, y1) = rows.iter().fold((f64::MAX, f64::MIN), |(a, b), r| {
        (a.min(lx(r.2.max(0.1))), b.max(lx(r.1.max(0.1))))
    });
    let (x1, y1) = (x1.max(x0 + 0.1), y1.max(y0 + 0.1));
    let px = |x: f64| left + (lx(x) - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| h - bottom - (lx(y.max(0.1)) - y0) / (y1 - y0) * (h - bottom - top);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="plot" id="fanout-plot" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="one commit's fan-out vs room size"><title>one commit's fan-out vs room size (log-log)</title><text x="{left}" y="18" font-size="13">One commit's fan-out vs room size (log–log): wall (blue), inside openmls (orange)</text>"#
    );
    let _ = write!(
        o,
        r##"<line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="#333"/><line x1="{left}" y1="{top}" x2="{left}" y2="{b}" stroke="#333"/>"##,
        b = h - bottom,
        r = w - right
    );
    for (i, (series, colour)) in [(1usize, "#1f77b4"), (2, "#ff7f0e")].iter().enumerate() {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| {
                let y = if *series == 1 { r.1 } else { r.2 };
                (px(r.0), py(y))
            })
            .collect();
        let path = pts
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            o,
            r#"<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" data-series="{i}"/>"#
        );
        for (x, y) in pts {
            let _ = write!(
                o,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
            );
        }
    }
    for r in rows {
        let _ = write!(
            o,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" font-size="10" fill="#1f77b4">{:.0} ms</text>"##,
            px(r.0),
            h - bottom + 16.0,
            r.0,
            px(r.0) + 4.0,
            py(r.1) - 6.0,
            r.1
        );
    }
    let _ = write!(
        o,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">clients in the room</text></svg>"#,
        (w + left) / 2.0,
        h - 4.0
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::bench::{Fanout, Parallel};

    fn measured(scenario: &str) -> Measured {
        Measured {
            scenario: scenario.into(),
            clients: 12,
            seeds: 10,
            ok_runs: 10,
            wall_ms: 1400.0,
            sim_ms: 151_200,
            mls_ms: 1064.0,
            mls_calls: 900,
            seeds_per_sec_per_core: 7.1,
            sim_speedup: 108.0,
            mls_share: 0.76,
            overhead_over_mls: 0.31,
            top_mls_ops: vec![("commit".into(), 40, 300.0)],
        }
    }

    fn fanout(clients: usize, wall: f64, mls: f64) -> Fanout {
        Fanout {
            clients,
            setup_wall_ms: 10.0 * wall,
            commit_wall_ms: wall,
            commit_mls_ms: mls,
            ok: true,
        }
    }

    #[test]
    fn the_section_shows_every_measured_size_and_the_efficiency() {
        let b = BenchReport {
            standard: measured("standard"),
            room_256: None,
            parallel: Some(Parallel {
                seeds: 20,
                t1_ms: 2000.0,
                t2_ms: 1100.0,
                efficiency: 0.91,
            }),
            fanout: vec![
                fanout(8, 14.2, 10.8),
                fanout(32, 87.0, 75.6),
                fanout(128, 900.0, 800.0),
            ],
        };
        let s = section(&b);
        assert!(s.contains("efficiency t1 / (2 × t2) = <b>0.91</b>"));
        assert_eq!(s.matches("<circle").count(), 6, "two series × three sizes");
        assert!(s.contains("<td class=\"num\">128</td><td class=\"num\">900.0</td>"));
        assert!(s.contains("76 %"));
        assert_eq!(s.matches("<tr><td>").count(), 1, "no room_256 row");
        // Without the optional parts: no parallel line, no plot.
        let s = section(&BenchReport {
            standard: measured("standard"),
            room_256: None,
            parallel: None,
            fanout: Vec::new(),
        });
        assert!(s.contains("<td>standard</td>") && !s.contains("<svg"));
        assert!(!s.contains("bench-parallel"));
    }

    /// serde_json writes a non-finite figure as null: it reads back and shows as "—",
    /// and a fan-out size without finite times is left out.
    #[test]
    fn null_figures_read_back_and_show_as_dashes() {
        let mut b = BenchReport {
            standard: measured("standard"),
            room_256: Some(measured("room-256")),
            parallel: None,
            fanout: vec![fanout(8, 14.2, 10.8), fanout(32, f64::NAN, 1.0)],
        };
        b.standard.overhead_over_mls = f64::INFINITY;
        let text = serde_json::to_string(&b).unwrap();
        assert!(text.contains("\"overhead_over_mls\":null"), "{text}");
        let back: BenchReport = serde_json::from_str(&text).unwrap();
        assert!(back.standard.overhead_over_mls.is_nan());
        let s = section(&back);
        assert!(s.contains("<td class=\"num\">—</td></tr>"), "{s}");
        assert!(s.contains("<td>room-256</td>"));
        assert_eq!(
            s.matches("<circle").count(),
            2,
            "one size with finite times"
        );
        // A record without a required figure is refused, not rendered with blanks.
        let err = serde_json::from_str::<BenchReport>(r#"{"standard": {"scenario": "s"}}"#);
        assert!(err.is_err());
    }
}
