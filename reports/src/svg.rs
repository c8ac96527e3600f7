//! Hand-written SVG for the campaign page: a histogram and a bar chart with interval
//! whiskers. No scripts, no external references: the markup stands alone.

use std::fmt::Write;

use super::stats::Rate;

/// Escapes text for HTML/SVG content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Number of histogram bins.
pub const BINS: usize = 20;

/// A histogram of `values` (ms) with `BINS` equal bins from the minimum to the maximum.
pub fn histogram(title: &str, values: &[u64], unit: &str) -> String {
    let (w, h, left, bottom, top) = (640.0, 240.0, 50.0, 40.0, 28.0);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    let _ = write!(
        o,
        r#"<text x="{left}" y="18" class="ptitle">{}</text>"#,
        esc(title)
    );
    if values.is_empty() {
        let _ = write!(
            o,
            r#"<text x="{left}" y="{}">no data</text></svg>"#,
            h / 2.0
        );
        return o;
    }
    let min = values.iter().copied().min().unwrap_or(0);
    let max = values.iter().copied().max().unwrap_or(0).max(min + 1);
    let width = ((max - min) as f64 / BINS as f64).max(1.0);
    let mut counts = [0u64; BINS];
    for &v in values {
        let i = (((v - min) as f64 / width) as usize).min(BINS - 1);
        counts[i] += 1;
    }
    let cmax = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let plot_w = w - left - 10.0;
    let plot_h = h - bottom - top;
    let bw = plot_w / BINS as f64;
    for (i, &c) in counts.iter().enumerate() {
        let bh = plot_h * c as f64 / cmax;
        let x = left + i as f64 * bw;
        let y = top + plot_h - bh;
        let lo = min + (i as f64 * width) as u64;
        let hi = min + ((i + 1) as f64 * width) as u64;
        let _ = write!(
            o,
            r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}"><title>{lo}–{hi} {unit}: {c}</title></rect>"#,
            bw - 1.0
        );
    }
    axis(&mut o, left, top, plot_w, plot_h);
    let _ = write!(
        o,
        r#"<text x="{left}" y="{:.1}" class="tick">{min} {unit}</text><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{max} {unit}</text><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text></svg>"#,
        top + plot_h + 14.0,
        left + plot_w,
        top + plot_h + 14.0,
        left - 4.0,
        top + 10.0,
        cmax as u64
    );
    o
}

fn axis(o: &mut String, left: f64, top: f64, plot_w: f64, plot_h: f64) {
    let _ = write!(
        o,
        r#"<line class="axis" x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/><line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{:.1}"/>"#,
        top + plot_h,
        left + plot_w,
        top + plot_h,
        top + plot_h
    );
}

/// Horizontal bars of rates with their Wilson intervals as whiskers, one per label.
pub fn rate_bars(title: &str, rows: &[(String, Rate)]) -> String {
    let row_h = 22.0;
    let (w, left, top) = (640.0, 260.0, 30.0);
    let h = top + row_h * rows.len().max(1) as f64 + 24.0;
    let plot_w = w - left - 70.0;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><title>{t}</title><text x="10" y="18" class="ptitle">{t}</text>"#,
        t = esc(title)
    );
    for (i, (name, r)) in rows.iter().enumerate() {
        let y = top + i as f64 * row_h;
        let bw = plot_w * r.p();
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text><rect class="bar{}" x="{left}" y="{:.1}" width="{bw:.1}" height="{:.1}"><title>{}</title></rect>"#,
            left - 6.0,
            y + 14.0,
            esc(&super::trace::short_middle(name, 40)),
            if r.k > 0 { " bad" } else { "" },
            y + 4.0,
            row_h - 8.0,
            esc(&r.text())
        );
        let (x1, x2, yc) = (left + plot_w * r.lo, left + plot_w * r.hi, y + row_h / 2.0);
        let _ = write!(
            o,
            r#"<line class="ci" x1="{x1:.1}" y1="{yc:.1}" x2="{x2:.1}" y2="{yc:.1}"/><line class="ci" x1="{x1:.1}" y1="{:.1}" x2="{x1:.1}" y2="{:.1}"/><line class="ci" x1="{x2:.1}" y1="{:.1}" x2="{x2:.1}" y2="{:.1}"/><text x="{:.1}" y="{:.1}" class="tick">{}</text>"#,
            yc - 5.0,
            yc + 5.0,
            yc - 5.0,
            yc + 5.0,
            left + plot_w + 6.0,
            y + 14.0,
            super::stats::pct(r.p())
        );
    }
    let _ = write!(
        o,
        r#"<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{:.1}"/><text x="{left}" y="{:.1}" class="tick">0%</text><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">100%</text></svg>"#,
        h - 20.0,
        h - 6.0,
        left + plot_w,
        h - 6.0
    );
    o
}
