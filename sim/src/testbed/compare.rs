//! `mimi-sim testbed --compare`: per scenario file and enforcement level, the outcome
//! distribution of N testbed runs beside the simulator's over the same N seeds.
//!
//! The two agree when their **outcome classes** agree: the set of outcomes seen (ok,
//! violation, liveness, incomplete) and, for violations, the oracles that fired. Where
//! they do not, [`known_difference`] says why: one of the testbed's known departures
//! from the simulator when the runs show one, else what the odd runs did.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::scenario::StepEnd;
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
    /// Why they differ (`None` when they agree).
    pub why: Option<String>,
}

/// Why a testbed cell may differ from the simulator's, from what the runs show. Every
/// cell that disagrees gets an answer: a known departure when the runs show one, else
/// what each testbed run that is not in the simulator's class did (so a reader starts
/// from the evidence, not from a guess).
pub fn known_difference(
    file: &str,
    sim: &Distribution,
    tb: &Distribution,
    testbed: &[RunReport],
    crashes: bool,
) -> String {
    if !tb.errors.is_empty() {
        return format!(
            "{} testbed runs could not be made: {}",
            tb.errors.len(),
            tb.errors.join("; ")
        );
    }
    let (sim_outcomes, sim_oracles) = sim.class();
    let (tb_outcomes, tb_oracles) = tb.class();
    if sim_outcomes.len() > 1 && tb_outcomes.is_subset(&sim_outcomes) {
        let rare: Vec<String> = sim
            .outcomes
            .iter()
            .filter(|(o, _)| !tb.outcomes.contains_key(*o))
            .map(|(o, n)| format!("{o} in {n} of {} seeds", sim.runs))
            .collect();
        return format!(
            "the simulator saw {}: a race that depends on how the seeded fault windows \
             interleave with the steps; on the testbed the same windows meet wall-clock \
             timing (TCP, TLS, real retries), which gave other interleavings in these {} \
             runs ({} of them as the file expects)",
            rare.join(", "),
            tb.runs,
            tb.as_expected
        );
    }
    let extra: Vec<&str> = tb_oracles.difference(&sim_oracles).copied().collect();
    if !extra.is_empty() {
        return format!(
            "the testbed's runs fired {} that the simulator's seeds did not{}: an \
             interleaving the seeds did not produce (the witnesses are on the run pages); \
             the same oracles judge both sides",
            extra.join(", "),
            if crashes {
                " (its runs SIGKILL and restart providers, which resume from their durable \
                 state)"
            } else {
                ""
            }
        );
    }
    // The testbed runs whose outcome the simulator's seeds did not show, one by one.
    let odd: Vec<String> = testbed
        .iter()
        .filter(|r| !sim_outcomes.contains(r.outcome.name()))
        .map(|r| {
            let steps: Vec<String> = r
                .steps_not_done
                .iter()
                .map(|n| {
                    let why = match &n.end {
                        StepEnd::Failed { reason } | StepEnd::Overtaken { reason } => {
                            format!(" ({reason})")
                        }
                        StepEnd::Refused { rule } => format!(" (refused: {rule})"),
                        _ => String::new(),
                    };
                    format!(
                        "{}'s {} at {} ms {}{}",
                        n.client,
                        n.op,
                        n.at_ms,
                        n.end.name(),
                        why
                    )
                })
                .collect();
            let detail = match (&r.outcome, steps.is_empty()) {
                (Outcome::Liveness, _) => format!(
                    "reached its liveness bound ({})",
                    r.liveness.as_deref().unwrap_or("not converged")
                ),
                (_, false) => steps.join("; "),
                _ => "see its page".to_string(),
            };
            format!("seed {} {}: {detail}", r.seed, r.outcome.name())
        })
        .collect();
    if odd.is_empty() {
        return format!(
            "{file}: no known departure explains it; the run pages of both sides show \
             each run"
        );
    }
    format!(
        "{}: an interleaving of wall-clock timing (TCP, TLS, real retries) with the fault \
         windows that the simulator's {} seeds did not produce (a step overtaken by a \
         later one is a race the scenario has; the simulator finds it at other seeds)",
        odd.join("; "),
        sim.runs
    )
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
    let why: Vec<&Row> = rows.iter().filter(|r| !r.agree).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;
    use crate::world::run::{run, StepNote};

    /// Seed `seed` of the standard scenario in the simulator.
    fn standard(seed: u64) -> RunReport {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/standard.toml");
        let (s, text) = Scenario::load(std::path::Path::new(path)).unwrap();
        let resolved = s.validate(path, &text).unwrap();
        run(&s, &resolved, &text, seed, false)
    }

    /// A cell whose testbed run ended otherwise than every simulator seed gets a reason
    /// naming that run and its step, and a crash no longer blames lost state.
    #[test]
    fn every_disagreement_says_why_with_the_odd_runs_evidence() {
        let ok = standard(1);
        assert_eq!(ok.outcome, Outcome::Ok);
        let mut sim = Distribution::default();
        sim.add(&ok);
        let mut odd = ok.clone();
        odd.seed = 7;
        odd.outcome = Outcome::Incomplete;
        odd.steps_not_done.push(StepNote {
            step: 7,
            at_ms: 6000,
            client: "erin".into(),
            op: "send",
            end: StepEnd::Overtaken {
                reason: "removed before it settled".into(),
            },
            declared: false,
            adversary: false,
        });
        let mut tb = Distribution::default();
        tb.add(&odd);
        assert_ne!(sim.class(), tb.class());
        for crashes in [false, true] {
            let why = known_difference("standard", &sim, &tb, &[odd.clone()], crashes);
            assert!(
                why.contains("seed 7 incomplete")
                    && why.contains("erin's send at 6000 ms overtaken")
                    && why.contains("removed before it settled"),
                "{why}"
            );
            assert!(!why.contains("in memory"), "{why}");
        }
        // The table lists every disagreeing row, with its reason.
        let row = Row {
            file: "standard".into(),
            level: "full".into(),
            sim,
            testbed: tb,
            agree: false,
            why: Some("because".into()),
        };
        assert!(table(&[row], 1).contains("* standard at full: because"));
    }
}
