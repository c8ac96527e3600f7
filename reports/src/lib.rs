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
