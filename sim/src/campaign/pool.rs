//! The worker pool: `mimi-sim batch` processes, each running a few seeds of one cell and
//! printing one JSON record per seed to a file in the work folder. The parent polls the
//! files (no threads, no pipes that could fill): a worker whose current seed has run
//! longer than the per-seed timeout is killed, that seed is recorded as a timeout and a
//! new worker starts at the next seed.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mimi_reports::records::run::RunRecord;

use super::CellSpec;

/// A few seeds of one cell for one worker.
#[derive(Debug, Clone)]
pub struct Task {
    pub cell: usize,
    pub seeds: Vec<u64>,
}

/// What became of one seed.
#[derive(Debug, Clone)]
pub enum Got {
    /// The worker's record of the run (boxed: a record is large, the other cases small).
    Record(Box<RunRecord>),
    Timeout,
    Crash(String),
}

/// One seed's result: (cell index, seed, what became of it).
pub type Done = (usize, u64, Got);

/// How the pool runs.
pub struct Config<'a> {
    pub jobs: usize,
    pub timeout: Duration,
    pub deadline: Option<Instant>,
    pub trace_dir: Option<&'a Path>,
    pub work_dir: &'a Path,
}

struct Running {
    task: Task,
    child: Child,
    out: PathBuf,
    err: PathBuf,
    seen: usize,
    since: Instant,
}

/// Seeds per worker process (amortises start-up; small enough to balance the load).
pub const SEEDS_PER_TASK: usize = 4;

/// Splits `(cell, seed)` pairs into tasks of consecutive entries of one cell.
pub fn tasks(runs: &[(usize, u64)]) -> Vec<Task> {
    let mut out: Vec<Task> = Vec::new();
    for &(cell, seed) in runs {
        match out.last_mut() {
            Some(t) if t.cell == cell && t.seeds.len() < SEEDS_PER_TASK => t.seeds.push(seed),
            _ => out.push(Task {
                cell,
                seeds: vec![seed],
            }),
        }
    }
    out
}

fn complete_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    // The last piece is either empty (the text ended with a newline) or incomplete.
    lines.pop();
    lines
}

/// Runs `tasks`; returns each seed's result as (cell, seed, got), and whether the
/// deadline cut the work short. `progress` is called with the number of seeds done.
pub fn run(
    exe: &Path,
    cells: &[CellSpec],
    tasks: Vec<Task>,
    cfg: &Config,
    progress: &mut dyn FnMut(usize),
) -> Result<(Vec<Done>, bool), String> {
    std::fs::create_dir_all(cfg.work_dir)
        .map_err(|e| format!("cannot create {}: {e}", cfg.work_dir.display()))?;
    let mut queue: VecDeque<Task> = tasks.into();
    let mut running: Vec<Running> = Vec::new();
    let mut results = Vec::new();
    let mut started = 0usize;
    let mut cut_short = false;
    let jobs = cfg.jobs.max(1);
    while !queue.is_empty() || !running.is_empty() {
        if cfg.deadline.is_some_and(|d| Instant::now() >= d) {
            for mut r in running.drain(..) {
                let _ = r.child.kill();
                let _ = r.child.wait();
                collect(cells, &r.task, &complete_lines(&r.out), &mut results)?;
            }
            cut_short = true;
            break;
        }
        while running.len() < jobs {
            let Some(task) = queue.pop_front() else { break };
            running.push(spawn(exe, &cells[task.cell], task, cfg, started)?);
            started += 1;
        }
        let mut i = 0;
        let mut changed = false;
        while i < running.len() {
            let n = complete_lines(&running[i].out).len();
            if n > running[i].seen {
                running[i].seen = n;
                running[i].since = Instant::now();
                changed = true;
            }
            let status = running[i]
                .child
                .try_wait()
                .map_err(|e| format!("cannot wait for a worker: {e}"))?;
            let timed_out = status.is_none() && running[i].since.elapsed() > cfg.timeout;
            if status.is_none() && !timed_out {
                i += 1;
                continue;
            }
            let r = running.remove(i);
            finish(cells, r, status, timed_out, &mut results, &mut queue)?;
            changed = true;
        }
        if changed {
            let done = results.len() + running.iter().map(|r| r.seen).sum::<usize>();
            progress(done);
        }
        std::thread::sleep(Duration::from_millis(15));
    }
    Ok((results, cut_short))
}

/// Starts worker number `n` on `task`: `mimi-sim batch` of the cell's file at its level
/// and axes, its stdout and stderr in the work folder.
fn spawn(
    exe: &Path,
    cell: &CellSpec,
    task: Task,
    cfg: &Config,
    n: usize,
) -> Result<Running, String> {
    let out = cfg.work_dir.join(format!("worker-{n}.jsonl"));
    let err = cfg.work_dir.join(format!("worker-{n}.err"));
    let mut cmd = Command::new(exe);
    cmd.arg("batch").arg(&cell.path).arg("--seeds").arg(
        task.seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );
    if let Some(l) = cell.level {
        cmd.arg("--enforcement").arg(l.name());
    }
    for (k, v) in &cell.overrides {
        cmd.arg("--variant").arg(format!("{k}={v}"));
    }
    if let Some(d) = cfg.trace_dir {
        cmd.arg("--trace-dir").arg(d);
    }
    let stdout =
        std::fs::File::create(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let stderr =
        std::fs::File::create(&err).map_err(|e| format!("cannot create {}: {e}", err.display()))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start a worker: {e}"))?;
    Ok(Running {
        task,
        child,
        out,
        err,
        seen: 0,
        since: Instant::now(),
    })
}

/// A worker that exited or timed out: its records, then the seed it was on as a timeout
/// or a crash, and the seeds after it back at the front of the queue.
fn finish(
    cells: &[CellSpec],
    mut r: Running,
    status: Option<std::process::ExitStatus>,
    timed_out: bool,
    results: &mut Vec<Done>,
    queue: &mut VecDeque<Task>,
) -> Result<(), String> {
    if timed_out {
        let _ = r.child.kill();
        let _ = r.child.wait();
    }
    let lines = complete_lines(&r.out);
    let n = lines.len();
    collect(cells, &r.task, &lines, results)?;
    if n < r.task.seeds.len() {
        let seed = r.task.seeds[n];
        let got = if timed_out {
            Got::Timeout
        } else {
            let err = std::fs::read_to_string(&r.err).unwrap_or_default();
            let tail: String = err.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            Got::Crash(format!("worker exited ({:?}): {tail}", status))
        };
        results.push((r.task.cell, seed, got));
        let rest: Vec<u64> = r.task.seeds[n + 1..].to_vec();
        if !rest.is_empty() {
            queue.push_front(Task {
                cell: r.task.cell,
                seeds: rest,
            });
        }
    }
    let _ = std::fs::remove_file(&r.out);
    let _ = std::fs::remove_file(&r.err);
    Ok(())
}

/// The records a worker of `task` printed (`lines`, one per seed in order). A line that
/// is not a run record of the seed due is an error naming the run (its key and the
/// start of the line).
fn collect(
    cells: &[CellSpec],
    task: &Task,
    lines: &[String],
    results: &mut Vec<Done>,
) -> Result<(), String> {
    let cell = &cells[task.cell];
    for (k, line) in lines.iter().enumerate() {
        let Some(&seed) = task.seeds.get(k) else {
            return Err(format!(
                "a worker of {} under {} printed more records than seeds: {}",
                cell.file,
                cell.label(),
                start(line)
            ));
        };
        let key = super::run_key(&cell.file, &cell.label(), seed);
        let rec: RunRecord = serde_json::from_str(line).map_err(|e| {
            format!(
                "run {key}: the worker printed a line that is not a run record ({e}): {}",
                start(line)
            )
        })?;
        if rec.seed != seed {
            return Err(format!(
                "run {key}: the worker printed seed {} where seed {seed} was due",
                rec.seed
            ));
        }
        results.push((task.cell, seed, Got::Record(Box::new(rec))));
    }
    Ok(())
}

/// The start of a worker's line, for an error message.
fn start(line: &str) -> String {
    const MAX: usize = 200;
    if line.chars().count() <= MAX {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells() -> Vec<CellSpec> {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/alice-adds-bob.toml");
        super::super::plan_cells(&[file]).unwrap()
    }

    #[test]
    fn a_line_that_is_not_a_run_record_is_an_error_naming_the_run() {
        let cells = cells();
        let task = Task {
            cell: 0,
            seeds: vec![3, 4],
        };
        let file = &cells[0].file;
        let (s, text) = crate::scenario::Scenario::load(&cells[0].path).unwrap();
        let resolved = s.validate(file, &text).unwrap();
        let good = serde_json::to_value(crate::world::run::run(&s, &resolved, &text, 3, false))
            .unwrap()
            .to_string();
        let mut got = Vec::new();
        collect(&cells, &task, std::slice::from_ref(&good), &mut got).unwrap();
        assert!(matches!(&got[0], (0, 3, Got::Record(r)) if r.seed == 3));
        for (lines, want) in [
            (
                vec![good.clone(), "{\"seed\": 4}".to_string()],
                "|default|4: the worker printed a line that is not a run record (missing field",
            ),
            (
                vec!["not json".to_string()],
                "|default|3: the worker printed",
            ),
            (
                vec![good.clone(), good.clone()],
                "printed seed 3 where seed 4 was due",
            ),
            (
                vec![good.clone(), good.replace("\"seed\":3", "\"seed\":4"), good],
                "printed more records than seeds",
            ),
        ] {
            let e = collect(&cells, &task, &lines, &mut Vec::new()).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(e.contains(file.as_str()), "{e}");
        }
    }
}
