//! The schedule of a run: when each fault window opens and closes and when each scripted
//! step is due, in the order a driver applies them, and the phases' instants (README,
//! "The simulator"). One schedule for both drivers: the simulator's
//! ([`crate::world::run`]) and the testbed's ([`crate::testbed::runner`]).
//!
//! Ordering rules:
//! * Fault actions by time; at the same instant a window's end before any window's start
//!   (a window that ends as another on the same link starts does not cancel it), then by
//!   window order ([`crate::world::faults::plan`]'s).
//! * Steps by due time, then by their order in the file's `[[script]]`.
//! * Healing starts at `phases.chaos_ms` or at the last step's time if that is later; the
//!   liveness bound is `phases.heal_ms` after that.

use std::collections::BTreeSet;

use crate::scenario::{Resolved, Scenario};
use crate::world::faults::{self, Window};

/// A fault window opening or closing. Ordered as it is applied: by time, an end
/// (`open: false`) before a start at the same instant, then by window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FaultAction {
    pub at_ms: u64,
    /// The window starts (else it ends).
    pub open: bool,
    /// Index in [`Schedule::windows`].
    pub window: usize,
}

/// A run's faults and steps in time order, with cursors: each action and step is handed
/// out once, when due.
#[derive(Debug, Clone)]
pub struct Schedule {
    windows: Vec<Window>,
    actions: Vec<FaultAction>,
    /// (due time, index in the script), sorted.
    steps: Vec<(u64, usize)>,
    next_action: usize,
    next_step: usize,
    /// End of the chaos phase (`phases.chaos_ms`).
    pub chaos_ms: u64,
    /// When healing starts: the chaos phase's end or the last step's time, the later.
    pub heal_start_ms: u64,
    /// The liveness bound: `phases.heal_ms` after healing starts.
    pub deadline_ms: u64,
}

impl Schedule {
    /// The schedule of `scenario` run with `seed` (its fault plan from
    /// [`faults::plan`]).
    pub fn new(scenario: &Scenario, resolved: &Resolved, seed: u64) -> Schedule {
        Schedule::from_parts(
            faults::plan(scenario, resolved, seed),
            scenario.script.iter().map(|s| s.get_ref().at_ms),
            scenario.phases.chaos_ms,
            scenario.phases.heal_ms,
        )
    }

    /// The schedule of fault `windows` and of steps due at `step_times` (in script
    /// order), with phases of `chaos_ms` and `heal_ms`.
    pub fn from_parts(
        windows: Vec<Window>,
        step_times: impl IntoIterator<Item = u64>,
        chaos_ms: u64,
        heal_ms: u64,
    ) -> Schedule {
        let mut actions: Vec<FaultAction> = windows
            .iter()
            .enumerate()
            .flat_map(|(window, w)| {
                [
                    FaultAction {
                        at_ms: w.start_ms,
                        open: true,
                        window,
                    },
                    FaultAction {
                        at_ms: w.end_ms,
                        open: false,
                        window,
                    },
                ]
            })
            .collect();
        actions.sort();
        let mut steps: Vec<(u64, usize)> = step_times
            .into_iter()
            .enumerate()
            .map(|(i, at)| (at, i))
            .collect();
        steps.sort();
        let last_step = steps.last().map_or(0, |s| s.0);
        let heal_start_ms = chaos_ms.max(last_step);
        Schedule {
            windows,
            actions,
            steps,
            next_action: 0,
            next_step: 0,
            chaos_ms,
            heal_start_ms,
            deadline_ms: heal_start_ms + heal_ms,
        }
    }

    /// The fault windows, in plan order.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// The window an action opens or closes.
    pub fn window(&self, action: FaultAction) -> &Window {
        &self.windows[action.window]
    }

    /// The next fault action due at `t_ms` (not handed out before), if any.
    pub fn next_fault(&mut self, t_ms: u64) -> Option<FaultAction> {
        let a = *self.actions.get(self.next_action)?;
        if a.at_ms > t_ms {
            return None;
        }
        self.next_action += 1;
        Some(a)
    }

    /// The next scripted step due at `t_ms` (not handed out before), as its index in
    /// the script, if any.
    pub fn next_step(&mut self, t_ms: u64) -> Option<usize> {
        let &(at, i) = self.steps.get(self.next_step)?;
        if at > t_ms {
            return None;
        }
        self.next_step += 1;
        Some(i)
    }

    /// Every fault action and step has been handed out.
    pub fn all_handed(&self) -> bool {
        self.next_action >= self.actions.len() && self.next_step >= self.steps.len()
    }

    /// The fault kinds the run enables: those of its windows and those its swarm may
    /// draw (`RunReport::faults_never_fired` lists the ones that never fired).
    pub fn fault_kinds(&self, scenario: &Scenario) -> BTreeSet<String> {
        let mut enabled: BTreeSet<String> = self
            .windows
            .iter()
            .map(|w| w.fault.kind().to_string())
            .collect();
        if let Some(sw) = &scenario.faults.swarm {
            enabled.extend(sw.get_ref().kinds.iter().cloned());
        }
        enabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Fault;

    fn window(start_ms: u64, end_ms: u64, provider: &str) -> Window {
        Window {
            start_ms,
            end_ms,
            fault: Fault::Crash {
                provider: provider.into(),
            },
            origin: "schedule",
        }
    }

    fn faults_due(s: &mut Schedule, t: u64) -> Vec<(u64, bool, usize)> {
        std::iter::from_fn(|| s.next_fault(t))
            .map(|a| (a.at_ms, a.open, a.window))
            .collect()
    }

    #[test]
    fn ends_come_before_starts_at_the_same_instant_then_window_order() {
        // Window 0 ends at 500 where windows 1 and 2 start; window 3 ends there too.
        let windows = vec![
            window(100, 500, "a"),
            window(500, 900, "a"),
            window(500, 600, "b"),
            window(200, 500, "c"),
        ];
        let mut s = Schedule::from_parts(windows, [], 1000, 50);
        assert_eq!(faults_due(&mut s, 99), vec![]);
        assert_eq!(
            faults_due(&mut s, 500),
            vec![
                (100, true, 0),
                (200, true, 3),
                (500, false, 0),
                (500, false, 3),
                (500, true, 1),
                (500, true, 2),
            ]
        );
        // Each action is handed out once.
        assert_eq!(faults_due(&mut s, 500), vec![]);
        assert_eq!(
            faults_due(&mut s, 10_000),
            vec![(600, false, 2), (900, false, 1)]
        );
        assert!(s.all_handed());
    }

    #[test]
    fn steps_by_time_then_script_order_and_healing_after_the_last_step() {
        let mut s = Schedule::from_parts(Vec::new(), [300, 0, 300, 100], 200, 1000);
        let due = |s: &mut Schedule, t| std::iter::from_fn(|| s.next_step(t)).collect::<Vec<_>>();
        assert_eq!(due(&mut s, 0), vec![1]);
        assert_eq!(due(&mut s, 299), vec![3]);
        assert!(!s.all_handed());
        assert_eq!(due(&mut s, 300), vec![0, 2]);
        assert!(s.all_handed());
        // The last step (300 ms) is after the chaos phase (200 ms): healing waits for it.
        assert_eq!(
            (s.chaos_ms, s.heal_start_ms, s.deadline_ms),
            (200, 300, 1300)
        );
        let quiet = Schedule::from_parts(Vec::new(), [50], 200, 1000);
        assert_eq!((quiet.heal_start_ms, quiet.deadline_ms), (200, 1200));
    }

    #[test]
    fn fault_kinds_are_the_windows_and_the_swarms() {
        let text = r#"
name = "kinds"
[world]
providers = ["a.example", "b.example"]
room = { name = "r", hub = "a.example" }
users = [{ name = "alice", provider = "a.example" }]
[[faults.schedule]]
at_ms = 10
kind = "crash"
provider = "b.example"
for_ms = 100
[faults.swarm]
kinds = ["hold"]
count = [0, 0]
"#;
        let scenario = Scenario::parse("kinds.toml", text).expect("valid");
        let resolved = scenario.validate("kinds.toml", text).expect("valid");
        let s = Schedule::new(&scenario, &resolved, 1);
        assert_eq!(s.windows().len(), 1);
        let kinds: Vec<String> = s.fault_kinds(&scenario).into_iter().collect();
        assert_eq!(kinds, vec!["crash".to_string(), "hold".to_string()]);
    }
}
