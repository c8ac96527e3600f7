//! The per-run sequence diagram and per-client epoch timeline, as SVG.
//!
//! # Choices
//! * Rows, not linear time: one row per drawn message or event in trace order, with
//!   the simulated time at the left whenever it changes. Bursts of messages in the same
//!   millisecond stay readable; fault windows become bands over the rows inside them.
//! * At most [`MAX_ARROWS`] arrows and [`MAX_MARKS`] point events are drawn; anything a
//!   violation's witness names is always drawn, and the page says how many were left out.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::svg::esc;
use super::trace::{short, Arrow, ArrowKind, Mark, RunModel, ViolationView};

/// Most arrows drawn on one diagram.
pub const MAX_ARROWS: usize = 400;
/// Most point events (hub decisions, client events, ops) drawn on one diagram.
pub const MAX_MARKS: usize = 300;

const ROW_H: f64 = 18.0;
const LANE_W: f64 = 170.0;
const LEFT: f64 = 80.0;
const TOP: f64 = 56.0;

/// What was drawn, and what was left out for the cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drawn {
    pub arrows: usize,
    pub arrows_total: usize,
    pub marks: usize,
    pub marks_total: usize,
}

enum Item {
    Arrow(usize),
    Mark(usize),
    Violation(usize),
}

/// The sequence diagram of a run and what it drew.
pub fn diagram(m: &RunModel) -> (String, Drawn) {
    let witness = m.witness_lines();
    let (items, drawn) = chosen_items(m, &witness);
    let lay = Layout::new(m, &items);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg id="sequence" class="seq" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="sequence diagram"><title>Sequence diagram: {} seed {}</title>"#,
        esc(&m.scenario),
        m.seed.unwrap_or(0),
        w = lay.w,
        h = lay.h
    );
    o.push_str(
        r#"<defs><marker id="ah" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>"#,
    );
    // Fault bands first, under everything.
    fault_bands(&mut o, m, &lay);
    lifelines(&mut o, m, &lay);
    let mut last_t = None;
    for (r, (t, _, item)) in items.iter().enumerate() {
        let y = row_y(r);
        if last_t != Some(*t) {
            let _ = write!(
                o,
                r#"<text class="time" x="{:.1}" y="{:.1}" text-anchor="end">{t} ms</text>"#,
                LEFT - 8.0,
                y + 4.0
            );
            last_t = Some(*t);
        }
        match item {
            Item::Arrow(i) => {
                if let Some(a) = m.arrows.get(*i) {
                    arrow(&mut o, a, y, &lay, &witness);
                }
            }
            Item::Mark(i) => {
                if let Some(k) = m.marks.get(*i) {
                    mark(&mut o, k, y, &lay, &witness);
                }
            }
            Item::Violation(i) => {
                if let Some(v) = m.violations.get(*i) {
                    violation(&mut o, v, y, &lay);
                }
            }
        }
    }
    o.push_str("</svg>");
    (o, drawn)
}

/// The rows to draw, as (time, trace line, item) in that order, within the caps; and
/// what was drawn of how many.
fn chosen_items(m: &RunModel, witness: &BTreeSet<u64>) -> (Vec<(u64, u64, Item)>, Drawn) {
    let mut items: Vec<(u64, u64, Item)> = Vec::new();
    let mut drawn = Drawn {
        arrows_total: m.arrows.len(),
        marks_total: m.marks.len(),
        ..Drawn::default()
    };
    for (i, a) in m.arrows.iter().enumerate() {
        let named = a.lines.iter().any(|l| witness.contains(l));
        if named || drawn.arrows < MAX_ARROWS {
            drawn.arrows += 1;
            items.push((
                a.t_send,
                a.lines.first().copied().unwrap_or(0),
                Item::Arrow(i),
            ));
        }
    }
    for (i, k) in m.marks.iter().enumerate() {
        if witness.contains(&k.line) || drawn.marks < MAX_MARKS {
            drawn.marks += 1;
            items.push((k.t, k.line, Item::Mark(i)));
        }
    }
    for (i, v) in m.violations.iter().enumerate() {
        items.push((v.at_ms, u64::MAX, Item::Violation(i)));
    }
    items.sort_by_key(|(t, line, _)| (*t, *line));
    (items, drawn)
}

/// The diagram's size and where lanes and times are.
struct Layout<'m> {
    lanes: Vec<&'m str>,
    /// Each row's time, in row order.
    times: Vec<u64>,
    w: f64,
    h: f64,
}

impl<'m> Layout<'m> {
    fn new(m: &'m RunModel, items: &[(u64, u64, Item)]) -> Layout<'m> {
        let lanes: Vec<&str> = m.lifelines.iter().map(|l| l.name.as_str()).collect();
        Layout {
            w: LEFT + LANE_W * lanes.len().max(1) as f64 + 20.0,
            h: TOP + ROW_H * (items.len() as f64 + 1.0) + 10.0,
            times: items.iter().map(|(t, _, _)| *t).collect(),
            lanes,
        }
    }

    /// The centre of lifeline `n`'s lane.
    fn x_of(&self, n: &str) -> Option<f64> {
        self.lanes.iter().position(|l| *l == n).map(lane_x)
    }

    /// The top of the first row at or after `t` (or the end).
    fn y_at(&self, t: u64) -> f64 {
        let r = self.times.partition_point(|&x| x < t);
        TOP + ROW_H * r as f64
    }
}

/// The centre of lane `i`.
fn lane_x(i: usize) -> f64 {
    LEFT + LANE_W / 2.0 + i as f64 * LANE_W
}

/// The middle of row `r`.
fn row_y(r: usize) -> f64 {
    TOP + ROW_H * (r as f64 + 0.5)
}

/// A band per fault window over the rows inside it and the lanes it touches (all lanes
/// if it names none that is drawn).
fn fault_bands(o: &mut String, m: &RunModel, lay: &Layout) {
    for f in &m.faults {
        let y1 = lay.y_at(f.start);
        let y2 = f
            .end
            .map_or(lay.h - 10.0, |e| lay.y_at(e.saturating_add(1)));
        let xs: Vec<f64> = f.nodes.iter().filter_map(|n| lay.x_of(n)).collect();
        let (x1, x2) = match (
            xs.iter().copied().reduce(f64::min),
            xs.iter().copied().reduce(f64::max),
        ) {
            (Some(a), Some(b)) => (a - LANE_W * 0.4, b + LANE_W * 0.4),
            _ => (LEFT, lay.w - 20.0),
        };
        let class = match f.kind.as_str() {
            "crash" | "offline" => "fault down",
            _ => "fault link",
        };
        let _ = write!(
            o,
            r#"<rect class="{class}" data-line="{}" x="{x1:.1}" y="{y1:.1}" width="{:.1}" height="{:.1}"><title>{}</title></rect><text class="flabel" x="{:.1}" y="{:.1}">{}</text>"#,
            f.line,
            (x2 - x1).max(4.0),
            (y2 - y1).max(4.0),
            esc(&f.text),
            x1 + 3.0,
            y1 + 11.0,
            esc(&short(&f.text, 44))
        );
    }
}

/// Each lifeline's dashed line and its head (name and role).
fn lifelines(o: &mut String, m: &RunModel, lay: &Layout) {
    for (i, l) in m.lifelines.iter().enumerate() {
        let x = lane_x(i);
        let _ = write!(
            o,
            r#"<line class="life {role}" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/><rect class="head {role}" x="{:.1}" y="6" width="{:.1}" height="40" rx="4"/><text class="lname" x="{x:.1}" y="22" text-anchor="middle">{}</text><text class="lrole" x="{x:.1}" y="38" text-anchor="middle">{role}</text>"#,
            lay.h - 10.0,
            x - LANE_W / 2.0 + 6.0,
            LANE_W - 12.0,
            esc(&short(l.name.trim_start_matches("mimi://"), 26)),
            role = l.role.name()
        );
    }
}

/// A message on row `y` (nothing if either end is not a lane); a lost request stops
/// short with a cross.
fn arrow(o: &mut String, a: &Arrow, y: f64, lay: &Layout, witness: &BTreeSet<u64>) {
    let (Some(x1), Some(x2)) = (lay.x_of(&a.from), lay.x_of(&a.to)) else {
        return;
    };
    let hit = a.lines.iter().any(|l| witness.contains(l));
    if hit {
        highlight(o, y, lay.w);
    }
    let class = match a.kind {
        ArrowKind::Request => "req",
        ArrowKind::Response => "resp",
        ArrowKind::Lost => "lost",
        ArrowKind::ClientToProvider => "c2p",
        ArrowKind::ProviderToClient => "p2c",
    };
    let x2e = if a.kind == ArrowKind::Lost {
        x1 + (x2 - x1) * 0.6
    } else {
        x2
    };
    let lat = a.t_recv.saturating_sub(a.t_send);
    let text = if lat > 0 {
        format!("{} (+{lat} ms)", a.label)
    } else {
        a.label.clone()
    };
    let lines: Vec<String> = a.lines.iter().map(u64::to_string).collect();
    let _ = write!(
        o,
        r#"<g class="arrow {class}{}" data-line="{}"><line x1="{x1:.1}" y1="{y:.1}" x2="{x2e:.1}" y2="{y:.1}" marker-end="url(#ah)"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><title>line {}: {}</title></g>"#,
        if hit { " witness" } else { "" },
        lines.join(" "),
        (x1 + x2e) / 2.0,
        y - 3.0,
        esc(&short(&text, 34)),
        lines.join(", "),
        esc(&text)
    );
    if a.kind == ArrowKind::Lost {
        let _ = write!(
            o,
            r#"<text class="lostx" x="{:.1}" y="{:.1}">✕</text>"#,
            x2e + 2.0,
            y + 4.0
        );
    }
}

/// A point event on its lane at row `y` (nothing if its node is not a lane).
fn mark(o: &mut String, k: &Mark, y: f64, lay: &Layout, witness: &BTreeSet<u64>) {
    let Some(x) = lay.x_of(&k.node) else { return };
    let hit = witness.contains(&k.line);
    if hit {
        highlight(o, y, lay.w);
    }
    let _ = write!(
        o,
        r#"<g class="mark{}{}" data-line="{}"><circle cx="{x:.1}" cy="{y:.1}" r="4"/><text x="{:.1}" y="{:.1}">{}</text><title>line {}: {}</title></g>"#,
        if k.bad { " bad" } else { "" },
        if hit { " witness" } else { "" },
        k.line,
        x + 7.0,
        y + 4.0,
        esc(&short(&k.label, 26)),
        k.line,
        esc(&k.label)
    );
}

/// A violation across row `y`, with a ring on each node it names.
fn violation(o: &mut String, v: &ViolationView, y: f64, lay: &Layout) {
    highlight(o, y, lay.w);
    let _ = write!(
        o,
        r#"<g class="violation"><text x="{LEFT}" y="{:.1}">⚠ violation {}: {}</text>"#,
        y + 4.0,
        esc(&v.id),
        esc(&short(&v.message, 80))
    );
    for n in &v.nodes {
        if let Some(x) = lay.x_of(n) {
            let _ = write!(o, r#"<circle cx="{x:.1}" cy="{y:.1}" r="6"/>"#);
        }
    }
    o.push_str("</g>");
}

fn highlight(o: &mut String, y: f64, w: f64) {
    let _ = write!(
        o,
        r#"<rect class="wband" x="0" y="{:.1}" width="{w:.1}" height="{ROW_H}"/>"#,
        y - ROW_H / 2.0
    );
}

/// Per-client epoch over simulated time, as a step plot (a gap while removed).
pub fn epoch_timeline(m: &RunModel) -> String {
    let (w, left, top, bottom) = (900.0, 60.0, 30.0, 40.0);
    let clients: Vec<&String> = m.epochs.keys().collect();
    let legend_h = 18.0 * clients.len() as f64;
    let plot_h = 200.0;
    let h = top + plot_h + bottom + legend_h;
    let max_e = m
        .epochs
        .values()
        .flat_map(|v| v.iter().filter_map(|(_, e)| *e))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let s = EpochScale {
        left,
        top,
        plot_w: w - left - 20.0,
        plot_h,
        end: m.end_ms.max(1) as f64,
        max_e,
        legend_top: top + plot_h + bottom,
    };
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg id="epochs" class="plot" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="epoch timeline"><title>Epoch per client over simulated time</title><text x="{left}" y="18" class="ptitle">Epoch per client (step plot; gap = removed)</text>"#
    );
    epoch_fault_bands(&mut o, m, &s);
    epoch_axes(&mut o, m.end_ms, &s);
    for (ci, c) in clients.iter().enumerate() {
        let Some(pts) = m.epochs.get(*c) else {
            continue;
        };
        client_epochs(&mut o, &s, ci, c, pts, m.end_ms);
    }
    o.push_str("</svg>");
    o
}

/// Where the epoch plot puts a time, an epoch and the legend.
struct EpochScale {
    left: f64,
    top: f64,
    plot_w: f64,
    plot_h: f64,
    /// The last time (ms, at least 1).
    end: f64,
    /// The highest epoch (at least 1).
    max_e: f64,
    legend_top: f64,
}

impl EpochScale {
    fn x(&self, t: u64) -> f64 {
        self.left + self.plot_w * t as f64 / self.end
    }

    fn y(&self, e: u64) -> f64 {
        self.top + self.plot_h - self.plot_h * e as f64 / self.max_e
    }
}

/// A full-height band per fault window (an open one lasts to the end).
fn epoch_fault_bands(o: &mut String, m: &RunModel, s: &EpochScale) {
    let (top, plot_h) = (s.top, s.plot_h);
    for f in &m.faults {
        let x1 = s.x(f.start);
        let x2 = s.x(f.end.unwrap_or(m.end_ms));
        let _ = write!(
            o,
            r#"<rect class="fault {}" x="{x1:.1}" y="{top}" width="{:.1}" height="{plot_h}"><title>{}</title></rect>"#,
            if matches!(f.kind.as_str(), "crash" | "offline") {
                "down"
            } else {
                "link"
            },
            (x2 - x1).max(1.0),
            esc(&f.text)
        );
    }
}

/// Both axes, with the time and epoch ranges at their ends.
fn epoch_axes(o: &mut String, end_ms: u64, s: &EpochScale) {
    let (left, top, plot_w, plot_h) = (s.left, s.top, s.plot_w, s.plot_h);
    let _ = write!(
        o,
        r#"<line class="axis" x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/><line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{:.1}"/><text class="tick" x="{left}" y="{:.1}">0 ms</text><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{} ms</text><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">e{}</text><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">e0</text>"#,
        top + plot_h,
        left + plot_w,
        top + plot_h,
        top + plot_h,
        top + plot_h + 14.0,
        left + plot_w,
        top + plot_h + 14.0,
        end_ms,
        left - 4.0,
        top + 8.0,
        s.max_e as u64,
        left - 4.0,
        top + plot_h
    );
}

/// Client number `ci`'s step line and its legend entry.
fn client_epochs(
    o: &mut String,
    s: &EpochScale,
    ci: usize,
    c: &str,
    pts: &[(u64, Option<u64>)],
    end_ms: u64,
) {
    // Each client's line sits a little lower than the previous one, so equal epochs
    // stay visible side by side.
    let dy = 2.5 * ci as f64;
    let x = |t: u64| s.x(t);
    let y = |e: u64| s.y(e) + dy;
    let mut path = String::new();
    let mut cur: Option<(u64, u64)> = None;
    for &(t, e) in pts {
        match (cur, e) {
            (Some((_, pe)), Some(ne)) => {
                let _ = write!(path, " L{:.1},{:.1} L{:.1},{:.1}", x(t), y(pe), x(t), y(ne));
                cur = Some((t, ne));
            }
            (None, Some(ne)) => {
                let _ = write!(path, " M{:.1},{:.1}", x(t), y(ne));
                cur = Some((t, ne));
            }
            (Some((_, pe)), None) => {
                let _ = write!(path, " L{:.1},{:.1}", x(t), y(pe));
                cur = None;
            }
            (None, None) => {}
        }
    }
    if let Some((_, pe)) = cur {
        let _ = write!(path, " L{:.1},{:.1}", x(end_ms), y(pe));
    }
    let colour = PALETTE[ci % PALETTE.len()];
    let _ = write!(
        o,
        r#"<path class="step" d="{}" stroke="{colour}" fill="none" stroke-width="2"><title>{}</title></path>"#,
        path.trim(),
        esc(c)
    );
    let ly = s.legend_top + 18.0 * ci as f64;
    let _ = write!(
        o,
        r#"<rect x="{}" y="{:.1}" width="14" height="4" fill="{colour}"/><text class="tick" x="{:.1}" y="{:.1}">{}</text>"#,
        s.left,
        ly - 6.0,
        s.left + 20.0,
        ly,
        esc(c)
    );
}

/// Colours for the clients' lines (distinguishable, print-safe).
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];
