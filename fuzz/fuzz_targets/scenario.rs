//! Scenario TOML (sim/src/scenario/mod.rs): parse and validate as `mimi-sim run` does, then
//! expand the matrix into its cells as `campaign` does and validate each cell.
//!
//! Checked: no panic (errors are fine), memory bounded; an accepted scenario names its
//! errors by line and column inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mimi_sim::scenario::{Scenario, ScenarioError};

/// Most matrix cells expanded per input (the campaign runs them all; a file can ask for
/// more, which is the campaign's concern, not the parser's).
const MAX_CELLS_CHECKED: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let s = match Scenario::parse("fuzz.toml", text) {
        Ok(s) => s,
        Err(ScenarioError::Invalid { line, column, .. }) => {
            assert!(line >= 1 && column >= 1);
            assert!(
                line <= text.lines().count().max(1) + 1,
                "line {line} past the end"
            );
            return;
        }
        Err(_) => return,
    };
    let _ = s.expectation();
    let _ = s.variant_values();
    let cells: usize = s
        .axes()
        .iter()
        .map(|(_, v)| v.len().max(1))
        .try_fold(s.levels().len().max(1), |acc, n| acc.checked_mul(n))
        .unwrap_or(usize::MAX);
    if cells <= MAX_CELLS_CHECKED {
        if let Ok(cells) = s.cells() {
            for c in cells {
                let _ = c.scenario.validate("fuzz.toml", text);
                let _ = c.scenario.expectation();
                let _ = c.variant_label();
            }
        }
    }
});
