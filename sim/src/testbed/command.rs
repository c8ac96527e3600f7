//! `mimi-sim testbed`: runs and `--compare`, their output folder, report and exit codes.
//!
//! The output folder is laid out as a campaign folder (`runs.jsonl`, `traces/`), so the
//! simulator's report code writes `report/index.html`, `report/summary.md` and a page per
//! run; `runs/<key>/` keeps each run's certificates, peers files, node state and logs.
//! `--compare` adds `compare.md` and `compare.json` and puts the table into the summary.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::collections::BTreeMap;

use mimi_reports::records::run::CellRef;
use serde::Serialize;

use super::compare::{self, Distribution, Row};
use super::proxy::ProxyStats;
use super::runner::{run_once, RunOptions, RunnerError, TestbedRun};
use super::TestbedArgs;
use crate::campaign::{run_key, trace_file_name};
use crate::cli::{print_summary, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK};
use crate::scenario::Scenario;
use crate::world::run::{Outcome, RunReport};

fn bad(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("mimi-sim testbed: {msg}");
    ExitCode::from(EXIT_BAD_INPUT)
}

/// The output folder's files.
struct Out {
    dir: PathBuf,
    runs: std::fs::File,
}

impl Out {
    fn create(dir: &Path) -> Result<Out, String> {
        std::fs::create_dir_all(dir.join("traces"))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let p = dir.join("runs.jsonl");
        let runs =
            std::fs::File::create(&p).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        Ok(Out {
            dir: dir.to_path_buf(),
            runs,
        })
    }

    /// Appends a run's record and writes its trace.
    fn record(&mut self, file: &str, level: &str, r: &TestbedRun) -> Result<(), String> {
        let key = run_key(file, level, r.report.seed);
        let line = TestbedRecord {
            report: &r.report,
            run_key: key.clone(),
            cell: CellRef {
                scenario_file: file.to_string(),
                enforcement: level.to_string(),
                variant: String::new(),
            },
            testbed: TestbedNotes {
                proxies: &r.proxies,
                fault_notes: &r.fault_notes,
                pids: &r.pids,
                unreadable_lines: r.unreadable_lines,
            },
        };
        let v = crate::cli::record(&line);
        writeln!(self.runs, "{v}").map_err(|e| format!("cannot write runs.jsonl: {e}"))?;
        let p = self.dir.join("traces").join(trace_file_name(&key));
        std::fs::write(&p, r.trace.join("\n") + "\n")
            .map_err(|e| format!("cannot write {}: {e}", p.display()))
    }
}

/// A testbed run's line of `runs.jsonl`: the run record the simulator writes, keyed as a
/// campaign's, with what the testbed did.
#[derive(Debug, Serialize)]
struct TestbedRecord<'a> {
    #[serde(flatten)]
    report: &'a RunReport,
    run_key: String,
    cell: CellRef,
    testbed: TestbedNotes<'a>,
}

/// What a testbed run did beyond the simulator's record.
#[derive(Debug, Serialize)]
struct TestbedNotes<'a> {
    /// Per directed link: what its proxy did.
    proxies: &'a BTreeMap<String, ProxyStats>,
    /// How each fault kind was injected over TCP.
    fault_notes: &'a BTreeMap<String, String>,
    /// Every node process started.
    pids: &'a [u32],
    /// Journal lines that were not JSON or that the judge could not read.
    unreadable_lines: u64,
}

/// `compare.json`: the runs per cell and the rows of the table.
#[derive(Debug, Serialize)]
struct CompareFile<'a> {
    runs: u64,
    rows: &'a [Row],
}

fn options(
    args: &TestbedArgs,
    dir: PathBuf,
    seed: u64,
    level: Option<String>,
) -> Result<RunOptions, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    Ok(RunOptions {
        exe,
        time_scale: args.time_scale,
        dir,
        seed,
        enforcement: level,
        variants: args.variants.clone(),
    })
}

/// How long an interrupted runner waits for its node processes to be gone.
const INTERRUPT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `fut` unless Ctrl-C comes first (then the future is dropped: its processes get
/// SIGKILL from `kill_on_drop`, and this waits until they are gone).
fn block_on<T>(
    fut: impl std::future::Future<Output = Result<T, RunnerError>>,
) -> Result<T, RunnerError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunnerError::Scenario(format!("cannot start tokio: {e}")))?;
    let r = rt.block_on(async {
        tokio::select! {
            r = fut => r,
            _ = tokio::signal::ctrl_c() => Err(RunnerError::Interrupted),
        }
    });
    if matches!(r, Err(RunnerError::Interrupted)) {
        let left = rt.block_on(super::runner::wait_gone(INTERRUPT_WAIT));
        if !left.is_empty() {
            eprintln!("mimi-sim testbed: node processes {left:?} still run after SIGKILL");
        }
    }
    r
}

/// `mimi-sim testbed`.
pub fn main(args: &TestbedArgs) -> ExitCode {
    // The runner's own logs (and the simulator's, under --compare) only when asked for.
    super::init_logging_at("warn");
    if args.compare {
        return compare_main(args);
    }
    let [file] = args.files.as_slice() else {
        return bad("give one scenario file (or --compare [FILES])");
    };
    if let Err(e) = Scenario::load(file) {
        return bad(e);
    }
    let mut out = match Out::create(&args.out) {
        Ok(o) => o,
        Err(e) => return bad(e),
    };
    let file_s = file.display().to_string();
    let level = args.enforcement.clone();
    let mut failed = false;
    let mut notes = std::collections::BTreeMap::new();
    for i in 0..args.runs {
        let seed = args.seed + i;
        let dir = args.out.join("runs").join(format!("s{seed}"));
        let opts = match options(args, dir, seed, level.clone()) {
            Ok(o) => o,
            Err(e) => return bad(e),
        };
        let r = match block_on(run_once(file, &opts)) {
            Ok(r) => r,
            Err(RunnerError::Scenario(e)) => return bad(e),
            Err(e) => {
                eprintln!("mimi-sim testbed: {e}");
                return ExitCode::from(EXIT_FAILED);
            }
        };
        print_summary(&r.report);
        println!(
            "testbed: wall {:.1} s, time scale {}, node pids {:?}",
            r.report.wall_ms as f64 / 1000.0,
            args.time_scale,
            r.pids
        );
        let lvl = r.report.variant["enforcement"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        if let Err(e) = out.record(&file_s, &lvl, &r) {
            return bad(e);
        }
        if r.report.outcome != Outcome::Ok {
            println!(
                "testbed reproduce: mimi-sim testbed {file_s} --seed {seed} --enforcement {lvl} \
                 --time-scale {} (a testbed run is not deterministic)",
                args.time_scale
            );
        }
        failed |= r.report.outcome != Outcome::Ok;
        notes.extend(r.fault_notes.clone());
    }
    report(&args.out);
    append_section(&args.out, "Testbed fault injection", &fault_section(&notes));
    ExitCode::from(if failed { EXIT_FAILED } else { EXIT_OK })
}

fn report(dir: &Path) {
    match mimi_reports::report_campaign(dir) {
        Ok(w) => println!("report: {}", w.index.display()),
        Err(e) => eprintln!("mimi-sim testbed: the report could not be written: {e}"),
    }
}

/// Adds a section (Markdown) to the report's summary.md and index.html.
fn append_section(dir: &Path, title: &str, markdown: &str) {
    let summary = dir.join("report").join("summary.md");
    if let Ok(text) = std::fs::read_to_string(&summary) {
        let _ = std::fs::write(&summary, format!("{text}\n## {title}\n\n{markdown}"));
    }
    let index = dir.join("report").join("index.html");
    if let Ok(html) = std::fs::read_to_string(&index) {
        let esc = markdown.replace('&', "&amp;").replace('<', "&lt;");
        let section = format!("<h2>{title}</h2>\n<pre>{esc}</pre>\n</body>");
        let _ = std::fs::write(&index, html.replacen("</body>", &section, 1));
    }
}

/// The fault kinds of the runs and how the testbed injected each.
fn fault_section(notes: &std::collections::BTreeMap<String, String>) -> String {
    if notes.is_empty() {
        return "No fault windows in these runs.\n".into();
    }
    notes.iter().map(|(k, v)| format!("* {k}: {v}\n")).collect()
}

fn compare_main(args: &TestbedArgs) -> ExitCode {
    let mut out = match Out::create(&args.out) {
        Ok(o) => o,
        Err(e) => return bad(e),
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut notes = std::collections::BTreeMap::new();
    for file in compare::files(&args.files) {
        let levels = match Scenario::load(&file) {
            Ok((s, _)) => s.levels(),
            Err(e) => return bad(e),
        };
        let file_s = file.display().to_string();
        for level in levels {
            let lname = level.name().to_string();
            if args.enforcement.as_deref().is_some_and(|l| l != lname) {
                continue;
            }
            let (mut sim, mut tb) = (Distribution::default(), Distribution::default());
            let mut tb_runs = Vec::new();
            let mut crashes = false;
            for i in 0..args.runs {
                let seed = args.seed + i;
                match crate::cli::load_and_run(&file, seed, false, Some(&lname), &args.variants) {
                    Ok(r) => sim.add(&r),
                    Err(e) => sim.errors.push(e),
                }
                let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("run");
                let dir = args
                    .out
                    .join("runs")
                    .join(format!("{stem}-{lname}-s{seed}"));
                let opts = match options(args, dir, seed, Some(lname.clone())) {
                    Ok(o) => o,
                    Err(e) => return bad(e),
                };
                match block_on(run_once(&file, &opts)) {
                    Ok(r) => {
                        tb.add(&r.report);
                        crashes |= r.report.faults.get("crash").copied().unwrap_or(0) > 0;
                        notes.extend(r.fault_notes.clone());
                        if let Err(e) = out.record(&file_s, &lname, &r) {
                            return bad(e);
                        }
                        eprintln!(
                            "{file_s} {lname} seed {seed}: testbed {} (wall {:.1} s)",
                            r.report.outcome.name(),
                            r.report.wall_ms as f64 / 1000.0
                        );
                        tb_runs.push(r.report);
                    }
                    Err(RunnerError::Interrupted) => {
                        eprintln!("mimi-sim testbed: interrupted");
                        return ExitCode::from(EXIT_FAILED);
                    }
                    Err(e) => tb.errors.push(e.to_string()),
                }
            }
            let agree = sim.class() == tb.class() && tb.errors.is_empty();
            let why =
                (!agree).then(|| compare::known_difference(&file_s, &sim, &tb, &tb_runs, crashes));
            rows.push(Row {
                file: file_s.clone(),
                level: lname,
                sim,
                testbed: tb,
                agree,
                why,
            });
        }
    }
    let table = compare::table(&rows, args.runs);
    println!("{table}");
    let json = CompareFile {
        runs: args.runs,
        rows: &rows,
    };
    let json = serde_json::to_string_pretty(&json).unwrap_or_default();
    for (name, text) in [("compare.md", &table), ("compare.json", &json)] {
        let p = args.out.join(name);
        if let Err(e) = std::fs::write(&p, text) {
            return bad(format!("cannot write {}: {e}", p.display()));
        }
    }
    report(&args.out);
    append_section(&args.out, "Simulator vs testbed", &table);
    append_section(&args.out, "Testbed fault injection", &fault_section(&notes));
    let all_agree = rows.iter().all(|r| r.agree);
    ExitCode::from(if all_agree { EXIT_OK } else { EXIT_FAILED })
}
