//! `mimi-sim bench`: what a seed costs and how much of it is MLS.
//!
//! * The standard scenario (`scenarios/standard.toml`: 3 providers, 12 clients) for
//!   `seeds` seeds in this process, one after the other: seeds per second per core,
//!   simulated seconds per wall second, and the share of wall time spent inside openmls
//!   (the cost meter of `nodes::mls::cost`).
//! * One seed of a 256-client room (64 users × 4 devices on 4 providers, built with
//!   batch adds, then messages, a role change, a removal and a self-update): its wall
//!   time and the same share.
//!
//! The simulator's overhead is `(wall - mls) / mls`: time outside openmls per unit of
//! MLS work. The target is ≤ 25 %. Figures are measured, never asserted in tests.

use std::fmt::Write as _;

use serde::Serialize;

use crate::run::{run, Outcome};
use crate::scenario::Scenario;

/// The standard scenario, embedded so `bench` works from any directory.
pub const STANDARD: &str = include_str!("../../scenarios/standard.toml");

/// Measured cost of a batch of runs.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub scenario: String,
    pub clients: usize,
    pub seeds: u64,
    pub ok_runs: u64,
    pub wall_ms: f64,
    pub sim_ms: u64,
    pub mls_ms: f64,
    pub mls_calls: u64,
    pub seeds_per_sec_per_core: f64,
    pub sim_speedup: f64,
    /// Share of wall time inside openmls (0..1).
    pub mls_share: f64,
    /// (wall − mls) / mls.
    pub overhead_over_mls: f64,
    /// The most expensive MLS operations: (name, calls, ms).
    pub top_mls_ops: Vec<(String, u64, f64)>,
}

/// The whole bench result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub standard: Measured,
    pub room_256: Option<Measured>,
}

/// The 256-client room as scenario text: `users` users with `devices` devices each,
/// spread over 4 providers, added in batches of `batch`.
pub fn big_room_scenario(users: usize, devices: u32, batch: usize) -> String {
    let providers = ["a.example", "b.example", "c.example", "d.example"];
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# A room of {} clients: {users} users × {devices} devices on 4 providers.\n\
         name = \"room-{}\"\nquestion = \"What does one seed of a large room cost?\"\n\n\
         [world]\nproviders = [{}]\n\
         room = {{ name = \"big\", hub = \"a.example\", preset = \"cooperative\" }}\nusers = [",
        users * devices as usize,
        users * devices as usize,
        providers
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for i in 0..users {
        let _ = writeln!(
            s,
            "  {{ name = \"u{i:03}\", provider = \"{}\", clients = {devices} }},",
            providers[i % providers.len()]
        );
    }
    let _ = writeln!(
        s,
        "]\n\n[variant]\nenforcement = \"full\"\n\n[phases]\nchaos_ms = 0\nheal_ms = 600000\n"
    );
    let mut t = 0;
    let mut step = |s: &mut String, client: &str, body: &str| {
        let _ = writeln!(
            s,
            "[[script]]\nat_ms = {t}\nclient = \"{client}\"\n{body}\n"
        );
        t += 2_000;
    };
    step(&mut s, "u000", "op = \"create\"");
    let others: Vec<String> = (1..users).map(|i| format!("\"u{i:03}\"")).collect();
    for chunk in others.chunks(batch) {
        step(
            &mut s,
            "u000",
            &format!("op = \"add-users\"\nusers = [{}]", chunk.join(", ")),
        );
    }
    step(&mut s, "u001", "op = \"send\"\ntext = \"hello, big room\"");
    step(&mut s, "u002/2", "op = \"send\"\ntext = \"hi\"");
    step(&mut s, "u000", "op = \"role\"\nuser = \"u003\"\nrole = 3");
    step(&mut s, "u003", "op = \"remove\"\nuser = \"u004\"");
    step(&mut s, "u005/3", "op = \"self-update\"");
    step(&mut s, "u006", "op = \"send\"\ntext = \"still here\"");
    s
}

fn measure(name: &str, text: &str, seeds: std::ops::Range<u64>) -> Result<Measured, String> {
    let s = Scenario::parse(name, text).map_err(|e| e.to_string())?;
    let resolved = s.validate(name, text).map_err(|e| e.to_string())?;
    nodes::mls::cost::enable(true);
    nodes::mls::cost::reset();
    let started = std::time::Instant::now();
    let (mut sim_ms, mut ok) = (0, 0);
    let n = seeds.end - seeds.start;
    for seed in seeds {
        let r = run(&s, &resolved, text, seed, false);
        sim_ms += r.sim_time_ms;
        if r.outcome == Outcome::Ok {
            ok += 1;
        }
    }
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    let cost = nodes::mls::cost::snapshot();
    nodes::mls::cost::enable(false);
    let mls = cost.nanos as f64 / 1e6;
    let mut top: Vec<(String, u64, f64)> = cost
        .by_category
        .iter()
        .map(|(k, c)| (k.to_string(), c.calls, c.nanos as f64 / 1e6))
        .collect();
    top.sort_by(|a, b| b.2.total_cmp(&a.2));
    top.truncate(8);
    Ok(Measured {
        scenario: s.name.clone(),
        clients: resolved.clients.len(),
        seeds: n,
        ok_runs: ok,
        wall_ms: wall,
        sim_ms,
        mls_ms: mls,
        mls_calls: cost.calls,
        seeds_per_sec_per_core: n as f64 / (wall / 1000.0),
        sim_speedup: sim_ms as f64 / wall,
        mls_share: mls / wall,
        overhead_over_mls: (wall - mls) / mls.max(1e-9),
        top_mls_ops: top,
    })
}

/// Runs the bench: `seeds` seeds of the standard scenario and, if `big_room`, one seed
/// of the 256-client room.
pub fn bench(seeds: u64, big_room: bool) -> Result<BenchReport, String> {
    let standard = measure("scenarios/standard.toml", STANDARD, 1..1 + seeds)?;
    let room_256 = if big_room {
        Some(measure("room-256", &big_room_scenario(64, 4, 16), 1..2)?)
    } else {
        None
    };
    Ok(BenchReport { standard, room_256 })
}

/// The human-readable table.
pub fn render(r: &BenchReport) -> String {
    let mut s = String::new();
    let mut row = |m: &Measured| {
        let _ = writeln!(
            s,
            "{} ({} clients, {} seeds, {} ok)\n  wall {:.0} ms, simulated {:.1} s → {:.1} seeds/s/core, {:.0}x simulated time\n  inside openmls {:.0} ms ({} calls) = {:.0}% of wall; simulator overhead over MLS work {:.0}% (target ≤ 25%)\n  top MLS operations: {}",
            m.scenario,
            m.clients,
            m.seeds,
            m.ok_runs,
            m.wall_ms,
            m.sim_ms as f64 / 1000.0,
            m.seeds_per_sec_per_core,
            m.sim_speedup,
            m.mls_ms,
            m.mls_calls,
            m.mls_share * 100.0,
            m.overhead_over_mls * 100.0,
            m.top_mls_ops
                .iter()
                .take(5)
                .map(|(k, n, ms)| format!("{k} {n}× {ms:.0} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    row(&r.standard);
    if let Some(b) = &r.room_256 {
        row(b);
    }
    s
}
