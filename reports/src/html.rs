//! The HTML pages: self-contained (inline CSS, inline SVG, one small inline script that
//! marks the page as rendered), no external references, readable offline.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::campaign::{Cell, Run, LEVELS, MAX_FAILING_LISTED};
use super::sequence::{self, MAX_ARROWS, MAX_MARKS};
use super::stats::quantiles_text;
use super::svg::{esc, histogram, rate_bars};
use super::trace::RunModel;
use crate::records::bench::BenchReport;
use crate::records::campaign::CampaignRecord;
use crate::records::run::RunOutcome;

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fff0f0}code,pre{font:12px ui-monospace,Menlo,Consolas,monospace}
pre.lines{background:#fafafa;border:1px solid #ddd;padding:6px;overflow-x:auto;white-space:pre}
.witness-line{background:#ffe08a;display:block}
.status-passed{color:#176f2c;font-weight:bold}.status-failed{color:#b00;font-weight:bold}.status-incomplete{color:#a05a00;font-weight:bold}
.plot{background:#fff;border:1px solid #eee;margin:6px 12px 6px 0}
.ptitle{font-weight:bold;font-size:13px}.tick{font-size:11px;fill:#444}
.bar{fill:#4a7fb5}.bar.bad{fill:#c9463d}.axis{stroke:#666}.ci{stroke:#111;stroke-width:1.5}
.seqwrap{overflow:auto;max-height:1200px;border:1px solid #ddd}
.seq text{font-size:10px}.life{stroke:#999;stroke-dasharray:4 3}
.head{fill:#eef3fa;stroke:#7a9cc6}.head.hub{fill:#fdebd0;stroke:#d68910}.head.client{fill:#eafaf1;stroke:#52be80}
.lname{font-weight:bold;font-size:11px!important}.lrole{fill:#555}
.arrow line{stroke-width:1.3}.req line{stroke:#1f4e8c}.resp line{stroke:#1f4e8c;stroke-dasharray:5 3}
.lost line{stroke:#b00;stroke-dasharray:2 2}.lostx{fill:#b00;font-size:12px!important}
.c2p line{stroke:#2e7d32}.p2c line{stroke:#6a1b9a}.arrow text{fill:#333}
.mark circle{fill:#777}.mark.bad circle{fill:#c62828}.mark text{fill:#444}
.witness line{stroke:#c00!important;stroke-width:2.5}.witness circle{fill:#c00;r:6}.witness text{font-weight:bold;fill:#900}
.wband{fill:#ffe08a;opacity:.55}.violation text{fill:#b00;font-weight:bold;font-size:12px!important}.violation circle{fill:none;stroke:#c00;stroke-width:2}
.fault.down{fill:#555;opacity:.16}.fault.link{fill:#e67e22;opacity:.14}.flabel{fill:#7a4100;font-style:italic}
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:22px;height:10px;vertical-align:middle;margin-right:4px}
#render-check{color:#888;font-size:12px}
"#;

/// The script: every SVG on the page must have a non-empty box; then the marker element
/// gets `data-ok="yes"` (a script error leaves it without).
const CHECK_SCRIPT: &str = r#"<script>
(function(){var s=document.querySelectorAll('svg'),bad=0;
for(var i=0;i<s.length;i++){var r=s[i].getBoundingClientRect();if(!(r.width>0&&r.height>0))bad++;}
var m=document.getElementById('render-check');
if(s.length>0&&bad===0){m.setAttribute('data-ok','yes');m.textContent='Rendered: '+s.length+' SVG figures.';}
else{m.setAttribute('data-ok','no');m.textContent='Render check failed: '+bad+' of '+s.length+' SVG figures are empty.';}})();
</script>"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style></head><body>\n{body}\n<p id=\"render-check\">Render check did not run.</p>\n{CHECK_SCRIPT}\n</body></html>\n",
        esc(title)
    )
}

/// What the campaign page shows about the campaign itself (campaign.json), if present.
pub struct CampaignMeta<'a> {
    pub dir: &'a str,
    pub campaign: Option<&'a CampaignRecord>,
    /// `DIR/bench.json` (from `mimi-sim bench --out`), if there is one.
    pub bench: Option<&'a BenchReport>,
}

/// The campaign page (`report/index.html`). `pages` maps a run_key to its page (relative).
pub fn campaign_page(
    meta: &CampaignMeta,
    runs: &[Run],
    cells: &[Cell],
    pages: &BTreeMap<String, String>,
    orphans: &[(String, String)],
) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>mimi-sim campaign report</h1><p>Folder: <code>{}</code></p>",
        esc(meta.dir)
    );
    summary_section(&mut b, meta.campaign, runs);
    cells_section(&mut b, cells);
    variants_section(&mut b, cells);
    plots_section(&mut b, runs, cells);
    failing_section(&mut b, runs, pages);
    orphans_section(&mut b, orphans);
    if let Some(bench) = meta.bench {
        b.push_str(&super::bench::section(bench));
    }
    b.push_str("<p>Per-run pages draw the trace as a sequence diagram; each has a <code>.perfetto.json</code> beside it for ui.perfetto.dev or chrome://tracing. See <code>reports/README.md</code>.</p>");
    page("mimi-sim campaign report", &b)
}

/// Runs per outcome, then what campaign.json says about the campaign.
fn summary_section(b: &mut String, campaign: Option<&CampaignRecord>, runs: &[Run]) {
    b.push_str("<h2 id=\"summary\">Summary</h2><table id=\"summary-table\">");
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    for r in runs {
        *outcomes.entry(r.outcome.name()).or_default() += 1;
    }
    let _ = write!(
        b,
        "<tr><th>runs</th><td class=\"num\">{}</td></tr>",
        runs.len()
    );
    for (o, n) in &outcomes {
        let _ = write!(b, "<tr><th>{}</th><td class=\"num\">{n}</td></tr>", esc(o));
    }
    let unexpected = runs.iter().filter(|r| !r.as_expected).count();
    let _ = write!(
        b,
        "<tr><th>not as expected</th><td class=\"num\">{unexpected}</td></tr>"
    );
    match campaign {
        Some(c) => campaign_rows(b, c),
        None => b.push_str("<tr><th>campaign.json</th><td>absent</td></tr>"),
    }
    b.push_str("</table>");
}

/// The summary's rows from campaign.json: status, verdict, plan, determinism, build,
/// failures and fault kinds that never fired.
fn campaign_rows(b: &mut String, c: &CampaignRecord) {
    let _ = write!(
        b,
        "<tr><th>status</th><td class=\"status-{0}\">{0}</td></tr>",
        esc(c.status.name())
    );
    // What passed and why (campaign.json `verdict`).
    for v in &c.verdict {
        let _ = write!(b, "<tr><th>verdict</th><td>{}</td></tr>", esc(v));
    }
    let p = &c.plan;
    let _ = write!(
        b,
        "<tr><th>plan</th><td>{} scenario files, {} cells (file × level), seeds {}, levels {}, {} runs planned{}</td></tr>",
        p.scenarios.len(),
        p.cells.len(),
        esc(&p.seeds),
        esc(&p.levels.join(", ")),
        p.runs_planned,
        match &p.shard {
            Some(sh) => format!(", shard {}", esc(sh)),
            None => String::new(),
        }
    );
    let d = &c.determinism;
    let _ = write!(
        b,
        "<tr><th>determinism</th><td>{} of {} chosen runs re-run in another process; {} trace-hash mismatches</td></tr>",
        d.rerun,
        d.sampled,
        d.mismatches.len()
    );
    let bd = &c.build;
    let _ = write!(
        b,
        "<tr><th>build</th><td>commit <code>{}</code>{}, {}, {} profile, Cargo.lock <code>{}</code></td></tr>",
        esc(&bd.git_commit),
        if bd.git_dirty { " (dirty)" } else { "" },
        esc(&bd.rustc),
        esc(&bd.profile),
        esc(&bd.cargo_lock_sha256.chars().take(16).collect::<String>()),
    );
    for f in &c.failures {
        let _ = write!(
            b,
            "<tr class=\"bad\"><th>failure</th><td>{}</td></tr>",
            esc(f)
        );
    }
    for f in &c.faults_never_fired {
        let _ = write!(
            b,
            "<tr><th>faults never fired</th><td><code>{}</code></td></tr>",
            esc(&serde_json::to_string(f).unwrap_or_default())
        );
    }
}

/// One row per cell (scenario file × enforcement level).
fn cells_section(b: &mut String, cells: &[Cell]) {
    b.push_str("<h2 id=\"cells\">Cells</h2><p>Rates with Wilson 95% intervals; times as nearest-rank quantiles.</p><table id=\"cells-table\"><tr><th>scenario file</th><th>enforcement</th><th>runs</th><th>violation rate</th><th>liveness failure rate</th><th>timeouts</th><th>not as expected</th><th>convergence time</th><th>sim time</th></tr>");
    for c in cells {
        let _ = write!(
            b,
            "<tr class=\"cell{}\"><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            if c.unexpected > 0 { " bad" } else { "" },
            esc(&c.scenario_file),
            esc(&c.enforcement),
            c.n,
            c.violation.text(),
            c.liveness.text(),
            c.timeouts,
            c.unexpected,
            quantiles_text(&c.convergence_ms),
            quantiles_text(&c.sim_ms)
        );
    }
    b.push_str("</table>");
}

/// Violation rates: a row per scenario file, a column per level that has a cell.
fn variants_section(b: &mut String, cells: &[Cell]) {
    b.push_str("<h2 id=\"variants\">Variants side by side</h2><p>Violation rate [Wilson 95%] per enforcement level.</p><table id=\"variants-table\"><tr><th>scenario file</th>");
    let levels: Vec<&str> = LEVELS
        .iter()
        .copied()
        .filter(|l| cells.iter().any(|c| c.enforcement == *l))
        .collect();
    for l in &levels {
        let _ = write!(b, "<th>{l}</th>");
    }
    b.push_str("</tr>");
    let files: BTreeSet<&str> = cells.iter().map(|c| c.scenario_file.as_str()).collect();
    for f in &files {
        let _ = write!(b, "<tr><td>{}</td>", esc(f));
        for l in &levels {
            match cells
                .iter()
                .find(|c| c.scenario_file == *f && c.enforcement == *l)
            {
                Some(c) => {
                    let _ = write!(b, "<td>{}</td>", c.violation.text());
                }
                None => b.push_str("<td>—</td>"),
            }
        }
        b.push_str("</tr>");
    }
    b.push_str("</table>");
}

/// Convergence and simulated-time histograms, and violation rate per cell.
fn plots_section(b: &mut String, runs: &[Run], cells: &[Cell]) {
    b.push_str("<h2 id=\"plots\">Plots</h2>");
    let conv: Vec<u64> = runs.iter().filter_map(|r| r.converged_at_ms).collect();
    b.push_str(&histogram(
        "Convergence time (all runs that converged)",
        &conv,
        "ms",
    ));
    let sims: Vec<u64> = runs.iter().map(|r| r.sim_time_ms).collect();
    b.push_str(&histogram("Simulated time per run", &sims, "ms"));
    let rows: Vec<(String, super::stats::Rate)> = cells
        .iter()
        .map(|c| {
            (
                format!(
                    "{} [{}]",
                    c.scenario_file
                        .rsplit('/')
                        .next()
                        .unwrap_or("")
                        .replace(".toml", ""),
                    c.enforcement
                ),
                c.violation,
            )
        })
        .collect();
    b.push_str(&rate_bars("Violation rate per cell (Wilson 95%)", &rows));
}

/// The failing or unexpected runs (at most [`MAX_FAILING_LISTED`]), with how to replay
/// and shrink each and a link to its page if its trace was kept.
fn failing_section(b: &mut String, runs: &[Run], pages: &BTreeMap<String, String>) {
    let failing: Vec<&Run> = runs.iter().filter(|r| r.failing()).collect();
    let _ = write!(
        b,
        "<h2 id=\"failing\">Failing or unexpected runs ({})</h2>",
        failing.len()
    );
    if failing.len() > MAX_FAILING_LISTED {
        let _ = write!(b, "<p>Only the first {MAX_FAILING_LISTED} are listed.</p>");
    }
    b.push_str("<table id=\"failing-table\"><tr><th>run key</th><th>outcome</th><th>expected</th><th>violations / liveness</th><th>replay</th><th>shrink</th><th>page</th></tr>");
    for r in failing.iter().take(MAX_FAILING_LISTED) {
        let why = r.why();
        let link = pages
            .get(&r.run_key)
            .map(|p| format!("<a href=\"{0}\">sequence diagram</a>", esc(p)))
            .unwrap_or_else(|| "no trace".into());
        let _ = write!(
            b,
            "<tr class=\"run{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{link}</td></tr>",
            if r.as_expected { "" } else { " bad" },
            esc(&r.run_key),
            esc(r.outcome.name()),
            esc(r.expected.name()),
            esc(&why),
            esc(&r.replay_command()),
            esc(&r.shrink_command())
        );
    }
    b.push_str("</table>");
}

/// Links to the pages of traces no run record matches (nothing if there are none).
fn orphans_section(b: &mut String, orphans: &[(String, String)]) {
    if orphans.is_empty() {
        return;
    }
    b.push_str("<h2>Traces without a run record</h2><ul>");
    for (name, page) in orphans {
        let _ = write!(b, "<li><a href=\"{}\">{}</a></li>", esc(page), esc(name));
    }
    b.push_str("</ul>");
}

/// A run's page (`report/runs/<key>.html`); `perfetto` is the JSON's file name beside it.
pub fn run_page(
    m: &RunModel,
    run_key: Option<&str>,
    record: Option<&Run>,
    perfetto: &str,
    back: Option<&str>,
) -> String {
    let mut b = String::new();
    if let Some(bk) = back {
        let _ = write!(b, "<p><a href=\"{}\">← campaign</a></p>", esc(bk));
    }
    run_table(&mut b, m, run_key, record, perfetto);
    violations_section(&mut b, m);
    sequence_section(&mut b, m);
    b.push_str("<h2 id=\"epoch-timeline\">Epoch timeline</h2>");
    b.push_str(&sequence::epoch_timeline(m));
    faults_section(&mut b, m);
    page(
        &format!("mimi-sim run {} seed {}", m.scenario, m.seed.unwrap_or(0)),
        &b,
    )
}

/// The heading and the run's table: outcome, time, hash, and, with its run record,
/// what was expected and how to replay and shrink it.
fn run_table(
    b: &mut String,
    m: &RunModel,
    run_key: Option<&str>,
    record: Option<&Run>,
    perfetto: &str,
) {
    let _ = write!(
        b,
        "<h1>Run: {} seed {}</h1><table id=\"run-table\"><tr><th>run key</th><td><code>{}</code></td></tr><tr><th>variant</th><td><code>{}</code></td></tr><tr><th>outcome</th><td class=\"status-{}\">{}</td></tr><tr><th>simulated time</th><td>{} ms</td></tr><tr><th>trace hash</th><td><code>{}</code></td></tr>",
        esc(&m.scenario),
        m.seed.unwrap_or(0),
        esc(run_key.unwrap_or("—")),
        esc(&m.variant.to_string()),
        if m.outcome == Some(RunOutcome::Ok) { "passed" } else { "failed" },
        esc(m.outcome.map_or("", RunOutcome::name)),
        m.end_ms,
        esc(&m.trace_hash)
    );
    if let Some(l) = &m.liveness {
        let _ = write!(
            b,
            "<tr class=\"bad\"><th>liveness</th><td>{}</td></tr>",
            esc(l)
        );
    }
    if let Some(r) = record {
        let _ = write!(b, "<tr><th>expected</th><td>{} (as expected: {})</td></tr><tr><th>replay</th><td><code>{}</code></td></tr><tr><th>shrink</th><td><code>{}</code></td></tr>", esc(r.expected.name()), r.as_expected, esc(&r.replay_command()), esc(&r.shrink_command()));
    }
    let _ = write!(b, "<tr><th>timeline JSON</th><td><a href=\"{0}\">{0}</a> (open in ui.perfetto.dev or chrome://tracing)</td></tr></table>", esc(perfetto));
}

/// Each violation with the trace lines its witness names.
fn violations_section(b: &mut String, m: &RunModel) {
    let _ = write!(
        b,
        "<h2 id=\"violations\">Violations ({})</h2>",
        m.violations.len()
    );
    for v in &m.violations {
        let _ = write!(
            b,
            "<div class=\"violation-box\"><p><b>{}</b>: {} — at {} ms; nodes {}; epochs {:?}; witness lines {:?}</p>",
            esc(&v.id),
            esc(&v.message),
            v.at_ms,
            esc(&v.nodes.join(", ")),
            v.epochs,
            v.lines
        );
        b.push_str("<pre class=\"lines witness\">");
        for no in &v.lines {
            if let Some(l) = m.lines.get((*no as usize).saturating_sub(1)) {
                let _ = write!(
                    b,
                    "<span class=\"witness-line\">{:>6}: {}</span>",
                    no,
                    esc(&super::trace::short(&l.text, 400))
                );
            }
        }
        b.push_str("</pre></div>");
    }
}

/// The sequence diagram with its legend and how much of the run it draws.
fn sequence_section(b: &mut String, m: &RunModel) {
    let (svg, drawn) = sequence::diagram(m);
    b.push_str("<h2 id=\"sequence-diagram\">Sequence diagram</h2><p class=\"legend\"><span><i class=\"sw\" style=\"background:#1f4e8c\"></i>provider request/response (dashed)</span><span><i class=\"sw\" style=\"background:#2e7d32\"></i>client → provider</span><span><i class=\"sw\" style=\"background:#6a1b9a\"></i>provider → client</span><span><i class=\"sw\" style=\"background:#b00\"></i>lost request ✕</span><span><i class=\"sw\" style=\"background:#ccc\"></i>crash / offline</span><span><i class=\"sw\" style=\"background:#f5cba7\"></i>link fault</span><span><i class=\"sw\" style=\"background:#ffe08a\"></i>violation witness</span></p>");
    let _ = write!(
        b,
        "<p id=\"cap-note\">Drawn: {} of {} arrows (limit {MAX_ARROWS}), {} of {} events (limit {MAX_MARKS}); witness lines are always drawn.{}</p>",
        drawn.arrows,
        drawn.arrows_total,
        drawn.marks,
        drawn.marks_total,
        if drawn.arrows < drawn.arrows_total || drawn.marks < drawn.marks_total {
            " Later messages are left out; the Perfetto JSON has all of them."
        } else {
            ""
        }
    );
    let _ = write!(b, "<div class=\"seqwrap\">{svg}</div>");
}

/// The fault windows as the trace recorded them.
fn faults_section(b: &mut String, m: &RunModel) {
    b.push_str("<h2 id=\"faults\">Faults</h2><table id=\"faults-table\"><tr><th>line</th><th>fault</th><th>from</th><th>to</th></tr>");
    for f in &m.faults {
        let _ = write!(b, "<tr><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{} ms</td><td class=\"num\">{}</td></tr>", f.line, esc(&f.text), f.start, f.end.map_or("open".to_string(), |e| format!("{e} ms")));
    }
    b.push_str("</table>");
}
