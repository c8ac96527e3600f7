//! `mimi-sim testbed --compare`: per scenario file and enforcement level, the outcome
//! distribution of N testbed runs beside the simulator's over the same N seeds.
//!
//! The two agree when their **outcome classes** agree: the set of outcomes seen (ok,
//! violation, liveness, incomplete) and, for violations, the oracles that fired. Where
//! they do not, [`known_difference`] names the reason when it is one of the testbed's
//! known departures from the simulator.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::world::run::{Outcome, RunReport};

/// The default set: the standard scenario, the draft's flows, crash-and-offline, one
/// adversary file and one hub-transfer file.
pub const DEFAULT_FILES: [&str; 5] = [
    "scenarios/standard.toml",
    "scenarios/drafts-flows.toml",
    "scenarios/crash-and-offline.toml",
    "scenarios/adversary-forge-sending-uri.toml",
    "scenarios/hub-transfer-cooperative.toml",
];

/// The outcomes of one side of a cell.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Distribution {
    pub runs: u64,
    /// Outcome name → count.
    pub outcomes: BTreeMap<String, u64>,
    /// Oracle id → runs where it fired.
    pub oracles: BTreeMap<String, u64>,
    /// Runs as the file's `[expect]` allows (`RunReport::as_expected`).
    pub as_expected: u64,
    /// Runs that could not be made (the testbed failed to start, etc.), with why.
    pub errors: Vec<String>,
}

impl Distribution {
    pub fn add(&mut self, r: &RunReport) {
        self.runs += 1;
        self.as_expected += u64::from(r.as_expected);
        *self.outcomes.entry(r.outcome.name().into()).or_default() += 1;
        let ids: BTreeSet<&str> = r.violations.iter().map(|v| v.id).collect();
        for id in ids {
            *self.oracles.entry(id.into()).or_default() += 1;
        }
    }

    /// The outcome class: outcomes seen and oracles fired.
    pub fn class(&self) -> (BTreeSet<&str>, BTreeSet<&str>) {
        (
            self.outcomes.keys().map(String::as_str).collect(),
            self.oracles.keys().map(String::as_str).collect(),
        )
    }

    /// "ok 3, liveness 1 (…)".
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .outcomes
            .iter()
            .map(|(o, n)| format!("{o} {n}"))
            .collect();
        if !self.oracles.is_empty() {
            let o: Vec<String> = self
                .oracles
                .iter()
                .map(|(id, n)| format!("{id}×{n}"))
                .collect();
            parts.push(format!("[{}]", o.join(" ")));
        }
        if !self.errors.is_empty() {
            parts.push(format!("{} not run", self.errors.len()));
        }
        if self.runs > 0 {
            parts.push(format!("{}/{} as expected", self.as_expected, self.runs));
        }
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(", ")
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub file: String,
    pub level: String,
    pub sim: Distribution,
    pub testbed: Distribution,
    pub agree: bool,
    /// Why they differ, if known.
    pub why: Option<String>,
}

/// Why a testbed cell may differ from the simulator's, from what the runs show.
pub fn known_difference(
    file: &str,
    sim: &Distribution,
    tb: &Distribution,
    testbed: &[RunReport],
    crashes: bool,
) -> Option<String> {
    if !tb.errors.is_empty() {
        return Some(format!(
            "{} testbed runs could not be made: {}",
            tb.errors.len(),
            tb.errors.join("; ")
        ));
    }
    let (sim_outcomes, _) = sim.class();
    let (tb_outcomes, _) = tb.class();
    if sim_outcomes.len() > 1 && tb_outcomes.is_subset(&sim_outcomes) {
        let rare: Vec<String> = sim
            .outcomes
            .iter()
            .filter(|(o, _)| !tb.outcomes.contains_key(*o))
            .map(|(o, n)| format!("{o} in {n} of {} seeds", sim.runs))
            .collect();
        return Some(format!(
            "the simulator saw {}: a race that depends on how the seeded fault windows \
             interleave with the steps; on the testbed the same windows meet wall-clock \
             timing (TCP, TLS, real retries), which gave other interleavings in these {} \
             runs ({} of them as the file expects)",
            rare.join(", "),
            tb.runs,
            tb.as_expected
        ));
    }
    let (_, sim_oracles) = sim.class();
    let (_, tb_oracles) = tb.class();
    let extra: Vec<&str> = tb_oracles.difference(&sim_oracles).copied().collect();
    if !extra.is_empty() && !crashes {
        return Some(format!(
            "the testbed's runs fired {} that the simulator's seeds did not: an \
             interleaving the seeds did not produce (the witnesses are on the run pages); \
             the same oracles judge both sides",
            extra.join(", ")
        ));
    }
    if crashes {
        return Some(
            "a crash on the testbed kills the provider's process and its clients with it; \
             node state is in memory until the durable-state work lands, so the restarted \
             provider starts empty (the simulator's crash keeps the core's state and the \
             clients, which live outside the host)"
                .into(),
        );
    }
    if testbed.iter().any(|r| r.outcome == Outcome::Liveness) {
        return Some(format!(
            "{file}: on the testbed a run reached its liveness bound (wall-clock timing, \
             real TCP retries and the time scale change how long recovery takes)"
        ));
    }
    None
}

/// Formats the table (Markdown).
pub fn table(rows: &[Row], runs: u64) -> String {
    let mut s = format!(
        "| file | level | simulator ({runs} seeds) | testbed ({runs} runs) | same outcome class |\n\
         | --- | --- | --- | --- | --- |\n"
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.file,
            r.level,
            r.sim.describe(),
            r.testbed.describe(),
            if r.agree { "yes" } else { "**no**" }
        ));
    }
    let why: Vec<&Row> = rows
        .iter()
        .filter(|r| r.why.is_some() && !r.agree)
        .collect();
    if !why.is_empty() {
        s.push_str("\nWhere they differ:\n\n");
        for r in why {
            s.push_str(&format!(
                "* {} at {}: {}\n",
                r.file,
                r.level,
                r.why.as_deref().unwrap_or("")
            ));
        }
    }
    s
}

/// The files to compare: the ones given, else [`DEFAULT_FILES`].
pub fn files(given: &[PathBuf]) -> Vec<PathBuf> {
    if given.is_empty() {
        DEFAULT_FILES.iter().map(PathBuf::from).collect()
    } else {
        given.to_vec()
    }
}
