//! Trace and record readers: the report browser's trace model and its renderings
//! (`mimi-sim report`), the shrinker's input reader (trace header, run record, line of
//! runs.jsonl), and `mimi-sim replay`'s reading of a trace header into a scenario
//! (everything before the re-run).
//!
//! Input: one byte (which line the shrinker reads) then the file's text. Checked: no
//! panic, memory bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mimi_sim::cli::level;
use mimi_reports::{perfetto, sequence, trace::RunModel};
use mimi_sim::scenario::Scenario;
use mimi_sim::shrink::read_input_text;
use serde_json::Value;

/// The scenario file a run record names: one fixed small scenario, or none.
fn read_scenario(file: &str) -> std::io::Result<String> {
    if file == "s.toml" {
        Ok("name = \"s\"\n".into())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "fuzz: no such file",
        ))
    }
}

/// What `replay` does with the first line before it re-runs the scenario.
fn replay_header(text: &str) {
    let Some(first) = text.lines().next() else {
        return;
    };
    let Ok(v) = serde_json::from_str::<Value>(first) else {
        return;
    };
    if v.get("kind").and_then(Value::as_str) != Some("header") {
        return;
    }
    let Some(toml_text) = v.get("scenario_toml").and_then(Value::as_str) else {
        return;
    };
    let Ok(s) = Scenario::parse("fuzz (embedded scenario)", toml_text) else {
        return;
    };
    let s = match level(v["variant"]["enforcement"].as_str()) {
        Some(l) => s.at_level(l),
        None => s,
    };
    if let Ok(s) = s.with_recorded_overrides(&v["variant"]) {
        let _ = s.validate("fuzz (embedded scenario)", toml_text);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&line, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(m) = RunModel::parse(text) {
        let _ = perfetto::trace_events(&m);
        let _ = sequence::diagram(&m);
        let _ = sequence::epoch_timeline(&m);
        let _ = mimi_reports::html::run_page(&m, None, None, "run.perfetto.json", None);
    }
    let line = (line > 0).then_some(usize::from(line % 8));
    if let Ok(origin) = read_input_text("fuzz.jsonl", text, line, &read_scenario) {
        if let Ok(s) = Scenario::parse(&origin.source, &origin.scenario_text) {
            let mut s = s.at_level(origin.level);
            if origin
                .overrides
                .iter()
                .all(|(k, v)| s.set_variant(k, v).is_ok())
            {
                let _ = s.validate(&origin.source, &origin.scenario_text);
            }
        }
    }
    replay_header(text);
});
