//! The Markdown summary for terminals and CI (`report/summary.md`, `--markdown`).

use std::fmt::Write;

use crate::campaign::{Cell, Run, MAX_FAILING_LISTED};
use crate::records::run::RunOutcome;
use crate::stats::quantiles_text;

/// The summary: totals, one row per cell, and the failing runs with their commands.
pub fn summary(dir: &str, runs: &[Run], cells: &[Cell]) -> String {
    let mut o = String::new();
    let failing: Vec<&Run> = runs.iter().filter(|r| r.failing()).collect();
    let unexpected = runs.iter().filter(|r| !r.as_expected).count();
    let _ = writeln!(o, "# mimi-sim report: {dir}\n");
    let _ = writeln!(
        o,
        "{} runs, {} failing (outcome not ok), {} not as expected.\n",
        runs.len(),
        failing
            .iter()
            .filter(|r| r.outcome != RunOutcome::Ok)
            .count(),
        unexpected
    );
    let _ = writeln!(o, "| scenario file | enforcement | runs | violation rate [Wilson 95%] | liveness failures [Wilson 95%] | not as expected | convergence |");
    let _ = writeln!(o, "|---|---|---:|---|---|---:|---|");
    for c in cells {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} |",
            c.scenario_file,
            c.enforcement,
            c.n,
            c.violation.text(),
            c.liveness.text(),
            c.unexpected,
            quantiles_text(&c.convergence_ms)
        );
    }
    if !failing.is_empty() {
        let _ = writeln!(o, "\n## Failing or unexpected runs\n");
        for r in failing.iter().take(MAX_FAILING_LISTED) {
            let why = r.why();
            let _ = writeln!(
                o,
                "* `{}` {} (expected {}): {}\n  * replay: `{}`\n  * shrink: `{}`",
                r.run_key,
                r.outcome.name(),
                r.expected.name(),
                why,
                r.replay_command(),
                r.shrink_command()
            );
        }
        if failing.len() > MAX_FAILING_LISTED {
            let _ = writeln!(o, "* … {} more", failing.len() - MAX_FAILING_LISTED);
        }
    }
    o
}
