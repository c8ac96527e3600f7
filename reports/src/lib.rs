//! # mimi-reports — rendering of mimi-sim runs and campaigns
//!
//! `mimi-sim report`: HTML pages with inline SVG, a Markdown summary and Perfetto
//! trace-event JSON from a campaign folder or a single run's trace.
//!
//! * [`records`] — the records read: run records (runs.jsonl), campaign.json, bench.json
//!   and trace lines, as typed structs.
//! * [`campaign`] — run records into cells; [`stats`] — Wilson intervals, quantiles.
//! * [`trace`] — a JSONL trace into lifelines, arrows, faults, epochs, violations.
//! * [`sequence`], [`svg`] — the figures; [`html`], [`markdown`], [`perfetto`] — outputs;
//!   [`bench`] — the performance section.
//!
//! The rendering modules are pure (records in, text out); the entry points here read
//! and write the files. The simulator depends on this crate, never the reverse.
//!
//! # Choices
//! * A trace in `traces/` is tied to its run record by trace hash (the hash of its
//!   lines, [`records::trace::hash_lines`]), not by file name, so the campaign's way of
//!   sanitising run keys does not matter here; the page keeps the trace's file stem.
//! * The replay command is `mimi-sim run FILE --seed S [--enforcement L] --trace …`;
//!   the shrink command has the same arguments under `mimi-sim shrink`.

pub mod bench;
pub mod campaign;
pub mod html;
pub mod markdown;
pub mod perfetto;
pub mod records;
pub mod sequence;
pub mod stats;
pub mod svg;
pub mod trace;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use records::bench::BenchReport;
use records::campaign::CampaignRecord;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Trace {
        path: String,
        source: trace::TraceError,
    },
    #[error("{path}: {source}")]
    Runs {
        path: String,
        source: campaign::CampaignError,
    },
    #[error("{path}: not a campaign record: {source}")]
    Campaign {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: not a bench record (mimi-sim bench --out): {source}")]
    Bench {
        path: String,
        source: serde_json::Error,
    },
    #[error("{0} is neither a campaign folder (with runs.jsonl) nor a trace file")]
    NotAReportInput(String),
}

/// What `report` wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The page to open: index.html for a campaign, the run page for a trace.
    pub index: PathBuf,
    /// The Markdown summary (campaigns only).
    pub markdown: Option<String>,
}

fn read(p: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(p).map_err(|source| ReportError::Read {
        path: p.display().to_string(),
        source,
    })
}

fn write(p: &Path, text: &str) -> Result<(), ReportError> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(|source| ReportError::Write {
            path: d.display().to_string(),
            source,
        })?;
    }
    std::fs::write(p, text).map_err(|source| ReportError::Write {
        path: p.display().to_string(),
        source,
    })
}

/// Writes `<out>/<stem>.html` and `<out>/<stem>.perfetto.json` for one trace.
fn write_run(
    m: &trace::RunModel,
    out: &Path,
    stem: &str,
    record: Option<&campaign::Run>,
    back: Option<&str>,
) -> Result<PathBuf, ReportError> {
    let pj = format!("{stem}.perfetto.json");
    let doc = perfetto::trace_events(m);
    write(&out.join(&pj), &doc.to_string())?;
    let html = html::run_page(m, record.map(|r| r.run_key.as_str()), record, &pj, back);
    let page = out.join(format!("{stem}.html"));
    write(&page, &html)?;
    Ok(page)
}

/// `mimi-sim report TRACE.jsonl [--out D]`: the run page and Perfetto JSON of one trace
/// (default folder: the trace's folder).
pub fn report_trace(trace_file: &Path, out: Option<&Path>) -> Result<Written, ReportError> {
    let text = read(trace_file)?;
    let m = trace::RunModel::parse(&text).map_err(|source| ReportError::Trace {
        path: trace_file.display().to_string(),
        source,
    })?;
    let stem = trace_file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("run")
        .to_string();
    let dir = out
        .map(Path::to_path_buf)
        .or_else(|| trace_file.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let index = write_run(&m, &dir, &stem, None, None)?;
    Ok(Written {
        index,
        markdown: None,
    })
}

/// `mimi-sim report DIR`: DIR/report/index.html, runs/<key>.html and .perfetto.json per
/// trace in DIR/traces/, and summary.md.
pub fn report_campaign(dir: &Path) -> Result<Written, ReportError> {
    let runs_path = dir.join("runs.jsonl");
    if !runs_path.is_file() {
        return Err(ReportError::NotAReportInput(dir.display().to_string()));
    }
    let mut runs =
        campaign::parse_runs(&read(&runs_path)?).map_err(|source| ReportError::Runs {
            path: runs_path.display().to_string(),
            source,
        })?;
    for r in &mut runs {
        r.runs_file = runs_path.display().to_string();
    }
    let cjson = dir.join("campaign.json");
    let campaign: Option<CampaignRecord> = if cjson.is_file() {
        Some(
            serde_json::from_str(&read(&cjson)?).map_err(|source| ReportError::Campaign {
                path: cjson.display().to_string(),
                source,
            })?,
        )
    } else {
        None
    };
    // `mimi-sim bench --out DIR/bench.json` puts the performance figures beside the runs.
    let bjson = dir.join("bench.json");
    let bench: Option<BenchReport> = if bjson.is_file() {
        Some(
            serde_json::from_str(&read(&bjson)?).map_err(|source| ReportError::Bench {
                path: bjson.display().to_string(),
                source,
            })?,
        )
    } else {
        None
    };
    let out = dir.join("report");
    let runs_out = out.join("runs");
    let by_hash: BTreeMap<&str, &campaign::Run> = runs
        .iter()
        .filter_map(|r| Some((r.trace_hash.as_deref()?, r)))
        .collect();
    let mut pages = BTreeMap::new();
    let mut orphans = Vec::new();
    let traces = dir.join("traces");
    if traces.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&traces)
            .map_err(|source| ReportError::Read {
                path: traces.display().to_string(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        for f in files {
            let text = read(&f)?;
            let m = trace::RunModel::parse(&text).map_err(|source| ReportError::Trace {
                path: f.display().to_string(),
                source,
            })?;
            let stem = f
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("run")
                .to_string();
            let record = by_hash.get(m.trace_hash.as_str()).copied();
            write_run(&m, &runs_out, &stem, record, Some("../index.html"))?;
            let rel = format!("runs/{stem}.html");
            match record {
                Some(r) => {
                    pages.insert(r.run_key.clone(), rel);
                }
                None => orphans.push((stem, rel)),
            }
        }
    }
    let cells = campaign::cells(&runs);
    let dir_text = dir.display().to_string();
    let meta = html::CampaignMeta {
        dir: &dir_text,
        campaign: campaign.as_ref(),
        bench: bench.as_ref(),
    };
    let index = out.join("index.html");
    write(
        &index,
        &html::campaign_page(&meta, &runs, &cells, &pages, &orphans),
    )?;
    let md = markdown::summary(&dir_text, &runs, &cells);
    write(&out.join("summary.md"), &md)?;
    Ok(Written {
        index,
        markdown: Some(md),
    })
}

/// `report` on a folder or a trace file.
pub fn report(input: &Path, out: Option<&Path>) -> Result<Written, ReportError> {
    if input.is_dir() {
        report_campaign(input)
    } else if input.is_file() {
        report_trace(input, out)
    } else {
        Err(ReportError::NotAReportInput(input.display().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run record as `mimi-sim campaign` writes it (fields the reports ignore included).
    const RUN: &str = r#"{"as_expected":true,"build":{"cargo_lock_sha256":"d82b","features":[],"git_commit":"26e6","git_dirty":false,"mimi_sim_version":"0.1.0","profile":"debug","rustc":"rustc 1.95.0"},"cell":{"enforcement":"full","scenario_file":"scenarios/a.toml"},"converged_at_ms":14101,"expected":"ok","faults":{},"faults_never_fired":[],"hub_rejections":{"notAllowed":1},"liveness":null,"messages_accepted":4,"messages_received":5,"ops":{"abandoned":1,"failed":0,"issued":13,"refused":0,"succeeded":13},"outcome":"ok","run_key":"scenarios/a.toml|full|3","scenario":"a","scenario_file":"scenarios/a.toml","scenario_sha256":"764f","seed":3,"sim_time_ms":14101,"state_table":[],"steps_done":12,"steps_not_done":[{"adversary":true,"at_ms":7000,"client":"cathy/2","declared":true,"op":"remove","status":"abandoned","step":9},{"at_ms":9000,"client":"erin","declared":false,"op":"send","status":"refused","rule":"mute","step":12}],"steps_total":14,"timed_out":false,"trace_events":429,"trace_hash":"59dc","variant":{"adversaries":[],"bugs":[],"disabled_rules":[],"enforcement":"full"},"violations":[],"wall_ms":266}"#;

    /// The stand-in record of a run its worker did not finish.
    const TIMEOUT: &str = r#"{"as_expected":false,"cell":{"enforcement":"off","scenario_file":"scenarios/a.toml","variant":"leave_order=exiting"},"converged_at_ms":null,"expected":"violation","faults":{},"faults_never_fired":[],"hub_rejections":{},"liveness":null,"messages_accepted":0,"messages_received":0,"ops":null,"outcome":"timeout","run_key":"scenarios/a.toml|off,leave_order=exiting|4","scenario":"a","scenario_file":"scenarios/a.toml","scenario_sha256":"764f","seed":4,"sim_time_ms":0,"state_table":[],"timed_out":true,"trace_events":0,"trace_hash":null,"variant":{"enforcement":"off"},"violations":[],"wall_ms":1}"#;

    const CAMPAIGN: &str = r#"{"budget_exhausted":false,"build":{"cargo_lock_sha256":"d82ba1f4fb2a366e2a35","features":[],"git_commit":"26e6","git_dirty":true,"mimi_sim_version":"0.1.0","profile":"debug","rustc":"rustc 1.95.0"},"cell_verdicts":[],"determinism":{"mismatches":[{"run_key":"scenarios/a.toml|full|3","hash":"59dc","child_hash":"timeout"}],"rerun":1,"sampled":2},"failures":["1 runs gave another trace hash when re-run in another process"],"faults_never_fired":[{"kinds":["crash"],"scenario_file":"scenarios/a.toml"}],"format":"mimi-sim-campaign/1","jobs":1,"outcomes":{"ok":1,"timeout":1},"plan":{"cells":[{"enforcement":"full","expect":{"outcome":"ok","violations":[],"within_seeds":null},"scenario_file":"scenarios/a.toml"}],"levels":["full","off"],"runs_planned":2,"scenarios":["scenarios/a.toml"],"seeds":"3..4","shard":null},"runs":2,"status":"failed","unexpected":[],"verdict":["expectations: 1/2 cells met"],"wall_ms":9}"#;

    fn folder(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mimi-reports-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_campaign_folder_renders_from_its_records() {
        let d = folder("ok");
        std::fs::write(d.join("runs.jsonl"), format!("{RUN}\n\n{TIMEOUT}\n")).unwrap();
        std::fs::write(d.join("campaign.json"), CAMPAIGN).unwrap();
        let w = report_campaign(&d).unwrap();
        let html = std::fs::read_to_string(&w.index).unwrap();
        for want in [
            "<td class=\"status-failed\">failed</td>",
            "<tr><th>verdict</th><td>expectations: 1/2 cells met</td></tr>",
            "1 scenario files, 1 cells (file × level), seeds 3..4, levels full, off, 2 runs planned</td>",
            "1 of 2 chosen runs re-run in another process; 1 trace-hash mismatches",
            "commit <code>26e6</code> (dirty), rustc 1.95.0, debug profile, Cargo.lock <code>d82ba1f4fb2a366e</code>",
            "<code>{&quot;kinds&quot;:[&quot;crash&quot;],&quot;scenario_file&quot;:&quot;scenarios/a.toml&quot;}</code>",
            "<td>scenarios/a.toml (leave_order=exiting)</td><td>off</td>",
            "mimi-sim run scenarios/a.toml --seed 4 --enforcement off --variant leave_order=exiting",
        ] {
            assert!(html.contains(want), "the page shows {want}");
        }
        let md = w.markdown.unwrap();
        // The undeclared refusal is named; the declared abandonment is not.
        let runs = campaign::parse_runs(RUN).unwrap();
        assert_eq!(
            runs[0].incomplete.as_deref(),
            Some("script[12] send refused (mute)")
        );
        assert!(md.contains(
            "`scenarios/a.toml|off,leave_order=exiting|4` timeout (expected violation): —"
        ));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_run_record_read_and_written_again_keeps_every_field() {
        use crate::records::run::RunRecord;
        let violation = RUN.replace(
            "\"violations\":[]",
            "\"violations\":[{\"id\":\"no-split\",\"message\":\"m\",\"witness\":{\"epoch\":3,\"clients\":[\"a\",\"b\"],\"lag\":0.5}}]",
        );
        assert!(violation.contains("no-split"));
        for line in [RUN, TIMEOUT, &violation] {
            let rec: RunRecord = serde_json::from_str(line).unwrap();
            let again = serde_json::to_value(&rec).unwrap();
            let want: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(again, want);
        }
        // Written through a Value, the keys are sorted: the stand-in record (written so)
        // comes back byte for byte.
        let rec: RunRecord = serde_json::from_str(TIMEOUT).unwrap();
        assert_eq!(serde_json::to_value(&rec).unwrap().to_string(), TIMEOUT);
        assert_eq!(rec.steps_not_done, None);
        assert_eq!(rec.timed_out, Some(true));
        let rec: RunRecord = serde_json::from_str(RUN).unwrap();
        assert_eq!(rec.step_notes().len(), 2);
        assert_eq!(rec.hub_rejections.get("notAllowed"), Some(&1));
        assert_eq!(rec.rest["wall_ms"], 266);
    }

    #[test]
    fn a_malformed_record_is_an_error_naming_the_file_and_the_line() {
        let d = folder("bad");
        let bad = RUN.replace("\"seed\":3,", "");
        std::fs::write(d.join("runs.jsonl"), format!("{RUN}\n{bad}\n")).unwrap();
        let e = report_campaign(&d).unwrap_err().to_string();
        assert!(
            e.contains("runs.jsonl: runs.jsonl line 2 is not a run record: missing field `seed`"),
            "{e}"
        );
        let wrong = RUN.replace("\"outcome\":\"ok\"", "\"outcome\":\"fine\"");
        std::fs::write(d.join("runs.jsonl"), format!("{wrong}\n")).unwrap();
        let e = report_campaign(&d).unwrap_err().to_string();
        assert!(
            e.contains("line 1 is not a run record: unknown variant `fine`"),
            "{e}"
        );

        std::fs::write(d.join("runs.jsonl"), format!("{RUN}\n")).unwrap();
        std::fs::write(
            d.join("campaign.json"),
            CAMPAIGN.replace("\"status\":\"failed\",", ""),
        )
        .unwrap();
        let e = report_campaign(&d).unwrap_err().to_string();
        assert!(
            e.contains("campaign.json: not a campaign record: missing field `status`"),
            "{e}"
        );
        std::fs::write(d.join("campaign.json"), CAMPAIGN).unwrap();
        std::fs::write(d.join("bench.json"), "{\"standard\": {}}").unwrap();
        let e = report_campaign(&d).unwrap_err().to_string();
        assert!(e.contains("bench.json: not a bench record"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
