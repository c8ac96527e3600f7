//! `mimi-sim run` and `replay` as a user meets them: the draft's flows under a seeded
//! fault swarm converge and hold every oracle; the same seed gives the same trace hash in
//! two processes and another seed another hash; a trace replays to the same hash; bad
//! input exits 2 with a message naming the file, the line and the field.

use serde_json::Value;

mod common;
use common::{root, sim};

fn run_json(scenario: &str, seed: u64) -> (Option<i32>, Value) {
    let out = sim(&["run", scenario, "--seed", &seed.to_string(), "--json"]);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), v)
}

#[test]
fn the_drafts_flows_converge_under_faults_and_are_deterministic_across_processes() {
    let (code, a) = run_json("scenarios/drafts-flows.toml", 7);
    assert_eq!(a["outcome"], "ok", "{a}");
    assert_eq!(code, Some(0));
    for key in [
        "seed",
        "scenario",
        "outcome",
        "violations",
        "trace_hash",
        "sim_time_ms",
        "wall_ms",
        "faults",
    ] {
        assert!(a.get(key).is_some(), "record has {key}");
    }
    assert!(
        a["faults"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>()
            >= 3,
        "the swarm fired: {}",
        a["faults"]
    );
    // Every scripted send that was done was accepted by the hub, and only those: the
    // file's sends less the ones the record lists as not done (a send overtaken by the
    // sender's removal, or abandoned with its join, is a declared race of the flows).
    let text = std::fs::read_to_string(root().join("scenarios/drafts-flows.toml")).unwrap();
    let sends = text.matches("op = \"send\"").count();
    let not_done = a["steps_not_done"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["op"] == "send")
        .count();
    assert!(sends - not_done >= 2, "{a}");
    assert_eq!(
        a["messages_accepted"].as_u64().unwrap(),
        (sends - not_done) as u64,
        "{a}"
    );
    let (_, b) = run_json("scenarios/drafts-flows.toml", 7);
    assert_eq!(a["trace_hash"], b["trace_hash"], "same seed, other process");
    let (_, c) = run_json("scenarios/drafts-flows.toml", 8);
    assert_ne!(a["trace_hash"], c["trace_hash"], "another seed");
}

#[test]
fn check_determinism_runs_a_child_and_a_trace_replays_to_the_same_hash() {
    let dir = std::env::temp_dir().join(format!("mimi-sim-cli-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("t.jsonl");
    let out = sim(&[
        "run",
        "scenarios/standard.toml",
        "--seed",
        "3",
        "--trace",
        trace.to_str().unwrap(),
        "--json",
        "--check-determinism",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["determinism"]["same"], true, "{v}");
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as u64, v["trace_events"].as_u64().unwrap());
    let header: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(header["kind"], "header");
    assert_eq!(header["seed"], 3);
    // Every event line has time, node and kind; some decode protocol messages.
    for l in &lines[1..] {
        let e: Value = serde_json::from_str(l).unwrap();
        assert!(
            e["t"].is_u64() && e["node"].is_string() && e["kind"].is_string(),
            "{l}"
        );
    }
    assert!(text.contains("\"endpoint\":\"update\""));
    assert!(text.contains("UpdateRequest"));
    let out = sim(&["replay", trace.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("same trace hash"));

    // A tampered trace does not replay.
    let tampered = dir.join("tampered.jsonl");
    std::fs::write(&tampered, text.replacen("\"t\":", "\"t\": ", 1)).unwrap();
    let out = sim(&["replay", tampered.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));

    // A run record replays too.
    let record = dir.join("record.json");
    std::fs::write(&record, serde_json::to_string(&v).unwrap()).unwrap();
    let out = sim(&["replay", record.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn bad(args: &[&str]) -> String {
    let out = sim(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_input_names_the_file_the_line_and_the_field() {
    let dir = std::env::temp_dir().join(format!("mimi-sim-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = bad(&["run", "no/such/file.toml"]);
    assert!(
        e.contains("no/such/file.toml") && e.contains("cannot read"),
        "{e}"
    );

    let base = std::fs::read_to_string(root().join("scenarios/drafts-flows.toml")).unwrap();
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    // An unknown field.
    let p = write(
        "typo.toml",
        base.replace("chaos_ms = 20000", "chaos_msec = 20000"),
    );
    let e = bad(&["run", &p]);
    let line = base
        .lines()
        .position(|l| l.starts_with("chaos_ms"))
        .unwrap()
        + 1;
    assert!(e.contains(&format!("typo.toml:{line}:")), "{e}");
    assert!(e.contains("chaos_msec"), "{e}");
    // A client that does not exist.
    let p = write(
        "who.toml",
        base.replace(
            "client = \"bob\"\nop = \"ban\"",
            "client = \"zoe\"\nop = \"ban\"",
        ),
    );
    let e = bad(&["run", &p]);
    assert!(
        e.contains("who.toml:") && e.contains(".client") && e.contains("zoe"),
        "{e}"
    );
    // A provider that does not exist, in a fault.
    let p = write(
        "fault.toml",
        format!("{base}\n[[faults.schedule]]\nat_ms = 1\nfor_ms = 5\nkind = \"crash\"\nprovider = \"x.example\"\n"),
    );
    let e = bad(&["run", &p]);
    assert!(
        e.contains("faults.schedule[0].provider") && e.contains("x.example"),
        "{e}"
    );
    // A wrong type.
    let p = write(
        "type.toml",
        base.replacen("at_ms = 1000\n", "at_ms = \"soon\"\n", 1),
    );
    let e = bad(&["run", &p]);
    assert!(e.contains("type.toml:") && e.contains("at_ms"), "{e}");
    // A wrong flag.
    let e = bad(&["run", "scenarios/drafts-flows.toml", "--sed", "1"]);
    assert!(e.contains("--sed"), "{e}");
    // Not a trace.
    let p = write("junk.jsonl", "hello\n".into());
    let e = bad(&["replay", &p]);
    assert!(e.contains("junk.jsonl:1"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `RUST_LOG` turns on the simulator's log (stderr, through tracing-subscriber): every
/// trace line is a `mimi_sim::trace` debug event stamped with its simulated time, and
/// logging changes neither the trace nor its hash.
#[test]
fn rust_log_prints_the_run_with_simulated_time_and_leaves_the_trace_alone() {
    let dir = std::env::temp_dir().join(format!("mimi-sim-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("t.jsonl");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mimi-sim"))
        .current_dir(root())
        .args([
            "run",
            "scenarios/drafts-flows.toml",
            "--seed",
            "3",
            "--json",
            "--trace",
        ])
        .arg(&trace)
        .env("RUST_LOG", "mimi_sim::trace=debug")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let logged: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, quiet) = run_json("scenarios/drafts-flows.toml", 3);
    assert_eq!(logged["trace_hash"], quiet["trace_hash"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    let events: Vec<Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v.get("t").is_some())
        .collect();
    assert_eq!(lines.len(), events.len(), "one log line per trace event");
    for (line, e) in lines.iter().zip(&events) {
        let t = e["t"].as_u64().unwrap();
        let stamp = format!("t={}.{:03}s ", t / 1000, t % 1000);
        assert!(line.starts_with(&stamp), "{line} is not stamped {stamp}");
        assert!(line.contains("mimi_sim::trace"), "{line}");
        assert!(
            line.contains(&format!("kind=\"{}\"", e["kind"].as_str().unwrap())),
            "{line}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `findings` runs its seeds through the campaign's worker pool: every seed of every
/// cell gives a record (the table counts them), and the pool's work folder is removed.
#[test]
fn findings_runs_every_seed_of_every_cell_through_the_worker_pool() {
    let out =
        std::env::temp_dir().join(format!("mimi-sim-findings-test-{}.md", std::process::id()));
    let o = sim(&[
        "findings",
        "scenarios/crash-and-offline.toml",
        "--seeds",
        "3",
        "--jobs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(&out).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| crash-and-offline | full |"))
        .unwrap_or_else(|| panic!("no row: {md}"));
    let cols: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!((cols[5], cols[6]), ("3", "3"), "runs and ok: {row}");
    let _ = std::fs::remove_file(&out);
}
