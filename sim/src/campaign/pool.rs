//! The worker pool: `mimi-sim batch` processes, each running a few seeds of one cell and
//! printing one JSON record per seed to a file in the work folder. The parent polls the
//! files (no threads, no pipes that could fill): a worker whose current seed has run
//! longer than the per-seed timeout is killed, that seed is recorded as a timeout and a
//! new worker starts at the next seed.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

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
    Record(Value),
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
                collect(&r, complete_lines(&r.out).len(), &mut results)?;
            }
            cut_short = true;
            break;
        }
        while running.len() < jobs {
            let Some(task) = queue.pop_front() else { break };
            let cell = &cells[task.cell];
            let out = cfg.work_dir.join(format!("worker-{started}.jsonl"));
            let err = cfg.work_dir.join(format!("worker-{started}.err"));
            started += 1;
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
            let stdout = std::fs::File::create(&out)
                .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            let stderr = std::fs::File::create(&err)
                .map_err(|e| format!("cannot create {}: {e}", err.display()))?;
            let child = cmd
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .map_err(|e| format!("cannot start a worker: {e}"))?;
            running.push(Running {
                task,
                child,
                out,
                err,
                seen: 0,
                since: Instant::now(),
            });
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
            let mut r = running.remove(i);
            if timed_out {
                let _ = r.child.kill();
                let _ = r.child.wait();
            }
            let n = complete_lines(&r.out).len();
            collect(&r, n, &mut results)?;
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

fn collect(r: &Running, n: usize, results: &mut Vec<Done>) -> Result<(), String> {
    for (k, line) in complete_lines(&r.out).into_iter().take(n).enumerate() {
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| format!("a worker printed a bad record ({e}): {line}"))?;
        let Some(&seed) = r.task.seeds.get(k) else {
            return Err(format!("a worker printed more records than seeds: {line}"));
        };
        if v["seed"].as_u64() != Some(seed) {
            return Err(format!(
                "a worker printed seed {} where seed {seed} was due",
                v["seed"]
            ));
        }
        results.push((r.task.cell, seed, Got::Record(v)));
    }
    Ok(())
}
