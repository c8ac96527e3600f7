//! The performance section of a campaign page: the JSON `mimi-sim bench --out
//! DIR/bench.json` writes (`crate::bench::BenchReport`), as tables and an SVG plot of one
//! commit's fan-out against room size.
//!
//! # Choices
//! * The section reads the JSON loosely (missing fields show as "—"): a bench file from
//!   an older build still renders.
//! * The plot has logarithmic axes on both sides (room sizes 8..512 and times that grow
//!   faster than linearly), with a point per measured size.

use std::fmt::Write;

use serde_json::Value;

use super::svg::esc;

fn num(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "—".into(),
    }
}

fn pct(v: &Value) -> String {
    match v.as_f64() {
        Some(x) => format!("{:.0} %", x * 100.0),
        None => "—".into(),
    }
}

/// The HTML section (heading, tables, plot) for a bench JSON value.
pub fn section(b: &Value) -> String {
    let mut o =
        String::from("<h2 id=\"performance\">Performance (<code>mimi-sim bench</code>)</h2>");
    o.push_str("<table id=\"bench-table\"><tr><th>scenario</th><th>clients</th><th>seeds</th><th>wall ms</th><th>seeds/s/core</th><th>simulated/wall</th><th>inside openmls</th><th>overhead over MLS</th></tr>");
    for key in ["standard", "room_256"] {
        let m = &b[key];
        if m.is_null() {
            continue;
        }
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}×</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(m["scenario"].as_str().unwrap_or(key)),
            m["clients"],
            m["seeds"],
            num(&m["wall_ms"], 0),
            num(&m["seeds_per_sec_per_core"], 1),
            num(&m["sim_speedup"], 0),
            pct(&m["mls_share"]),
            pct(&m["overhead_over_mls"]),
        );
    }
    o.push_str("</table>");
    let p = &b["parallel"];
    if !p.is_null() {
        let _ = write!(
            o,
            "<p id=\"bench-parallel\">Parallel efficiency: {} seeds in one worker process took {} ms, in two processes {} ms: efficiency t1 / (2 × t2) = <b>{}</b>.</p>",
            p["seeds"],
            num(&p["t1_ms"], 0),
            num(&p["t2_ms"], 0),
            num(&p["efficiency"], 2)
        );
    }
    let rows: Vec<(f64, f64, f64)> = b["fanout"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            Some((
                f["clients"].as_f64()?,
                f["commit_wall_ms"].as_f64()?,
                f["commit_mls_ms"].as_f64()?,
            ))
        })
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
    use serde_json::json;

    #[test]
    fn the_section_shows_every_measured_size_and_the_efficiency() {
        let b = json!({
            "standard": {"scenario": "standard", "clients": 12, "seeds": 10, "wall_ms": 1400.0,
                "seeds_per_sec_per_core": 7.1, "sim_speedup": 108.0, "mls_share": 0.76,
                "overhead_over_mls": 0.31},
            "room_256": null,
            "parallel": {"seeds": 20, "t1_ms": 2000.0, "t2_ms": 1100.0, "efficiency": 0.91},
            "fanout": [
                {"clients": 8, "commit_wall_ms": 14.2, "commit_mls_ms": 10.8},
                {"clients": 32, "commit_wall_ms": 87.0, "commit_mls_ms": 75.6},
                {"clients": 128, "commit_wall_ms": 900.0, "commit_mls_ms": 800.0}
            ]
        });
        let s = section(&b);
        assert!(s.contains("efficiency t1 / (2 × t2) = <b>0.91</b>"));
        assert_eq!(s.matches("<circle").count(), 6, "two series × three sizes");
        assert!(s.contains("<td class=\"num\">128</td><td class=\"num\">900.0</td>"));
        assert!(s.contains("76 %"));
        // A file without the optional parts still renders.
        let s = section(&json!({"standard": {"scenario": "standard"}}));
        assert!(s.contains("<td>standard</td>") && !s.contains("<svg"));
    }
}
