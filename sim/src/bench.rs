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
//! * Parallel efficiency: the same seeds of the standard scenario in one `mimi-sim batch`
//!   worker process, then split over two at once: `t1 / (2 × t2)` (1.0 = perfect).
//! * A scaling curve of one commit's fan-out against room size (8, 32, 128, 512 clients):
//!   the room is built (create, batch adds), then one member commits a self-update that
//!   every other client must process. The commit is measured alone as the difference
//!   between the run with it and the same run (same seed) without it: wall time and time
//!   inside openmls.
//!
//! The simulator's overhead is `(wall - mls) / mls`: time outside openmls per unit of
//! MLS work. The target is ≤ 25 %. Figures are measured, never asserted in tests.

use std::fmt::Write as _;

use crate::scenario::Scenario;
use crate::world::run::{run, Outcome};

/// The standard scenario, embedded so `bench` works from any directory.
pub const STANDARD: &str = include_str!("../../scenarios/standard.toml");

/// The bench record's types: defined with the reports that render bench.json.
pub use mimi_reports::records::bench::{BenchReport, Fanout, Measured, Parallel};

/// Room sizes of the fan-out curve.
pub const FANOUT_SIZES: [usize; 4] = [8, 32, 128, 512];
/// Devices per user in the fan-out rooms.
const FANOUT_DEVICES: usize = 4;

/// A room of `clients` clients (users of 4 devices on 4 providers), built by batch adds;
/// then one member commits a self-update (the step `fanout` measures).
pub fn fanout_scenario(clients: usize) -> String {
    let users = clients.div_ceil(FANOUT_DEVICES).max(2);
    room_scenario(
        &format!("fanout-{clients}"),
        "What does one commit's fan-out cost?",
        users,
        FANOUT_DEVICES,
        16,
        5_000,
        &[("u001/2", "op = \"self-update\"")],
    )
}

/// A room of `users` users with `devices` devices each on 4 providers (full enforcement,
/// no faults): `u000` creates it and adds the others in batches of `batch`, one scripted
/// step every `step_ms`, then the `then` steps (client, op lines) follow at the same pace.
fn room_scenario(
    name: &str,
    question: &str,
    users: usize,
    devices: usize,
    batch: usize,
    step_ms: u64,
    then: &[(&str, &str)],
) -> String {
    let providers = ["a.example", "b.example", "c.example", "d.example"];
    let mut s = format!(
        "# A room of {} clients: {users} users × {devices} devices on 4 providers.\n\
         name = \"{name}\"\nquestion = \"{question}\"\n\n\
         [world]\nproviders = [{}]\n\
         room = {{ name = \"room\", hub = \"a.example\", preset = \"cooperative\" }}\nusers = [\n",
        users * devices,
        providers.map(|p| format!("\"{p}\"")).join(", ")
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
        t += step_ms;
    };
    step(&mut s, "u000", "op = \"create\"");
    let others: Vec<String> = (1..users).map(|i| format!("\"u{i:03}\"")).collect();
    for chunk in others.chunks(batch.max(1)) {
        step(
            &mut s,
            "u000",
            &format!("op = \"add-users\"\nusers = [{}]", chunk.join(", ")),
        );
    }
    for (client, body) in then {
        step(&mut s, client, body);
    }
    s
}

/// The fan-out curve over `sizes`: one run per size; the commit is the script's last
/// step, and the run measures from handing it to its client until every client has
/// processed it and the run has converged (`RunReport::last_step_cost`).
pub fn fanout(sizes: &[usize]) -> Result<Vec<Fanout>, String> {
    let mut out = Vec::new();
    for &n in sizes {
        let name = format!("fanout-{n}");
        let text = fanout_scenario(n);
        let s = Scenario::parse(&name, &text).map_err(|e| e.to_string())?;
        let resolved = s.validate(&name, &text).map_err(|e| e.to_string())?;
        nodes::mls::cost::enable(true);
        nodes::mls::cost::reset();
        let started = std::time::Instant::now();
        let r = run(&s, &resolved, &text, 1, false);
        let total = started.elapsed().as_secs_f64() * 1000.0;
        nodes::mls::cost::enable(false);
        let cost = r
            .last_step_cost
            .ok_or_else(|| format!("{name}: the commit step was never handed to its client"))?;
        out.push(Fanout {
            clients: n.div_ceil(FANOUT_DEVICES).max(2) * FANOUT_DEVICES,
            setup_wall_ms: total - cost.wall_ms,
            commit_wall_ms: cost.wall_ms,
            commit_mls_ms: cost.mls_ms,
            ok: r.outcome == Outcome::Ok,
        });
    }
    Ok(out)
}

/// Parallel efficiency: `seeds` seeds of the standard scenario in one `mimi-sim batch`
/// process, then in two processes at once (half each).
pub fn parallel(exe: &std::path::Path, seeds: u64) -> Result<Parallel, String> {
    let seeds = seeds.max(2) & !1;
    let file = std::env::temp_dir().join(format!("mimi-sim-bench-{}.toml", std::process::id()));
    std::fs::write(&file, STANDARD).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let spawn = |range: String| {
        std::process::Command::new(exe)
            .arg("batch")
            .arg(&file)
            .arg("--seeds")
            .arg(range)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start a worker: {e}"))
    };
    let wait = |mut c: std::process::Child| -> Result<(), String> {
        let st = c.wait().map_err(|e| format!("worker failed: {e}"))?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("a bench worker exited with {st}"))
        }
    };
    let started = std::time::Instant::now();
    wait(spawn(format!("1..{seeds}"))?)?;
    let t1 = started.elapsed().as_secs_f64() * 1000.0;
    let started = std::time::Instant::now();
    let a = spawn(format!("1..{}", seeds / 2))?;
    let b = spawn(format!("{}..{seeds}", seeds / 2 + 1))?;
    wait(a)?;
    wait(b)?;
    let t2 = started.elapsed().as_secs_f64() * 1000.0;
    let _ = std::fs::remove_file(&file);
    Ok(Parallel {
        seeds,
        t1_ms: t1,
        t2_ms: t2,
        efficiency: t1 / (2.0 * t2),
    })
}

/// The 256-client room as scenario text: `users` users with `devices` devices each,
/// spread over 4 providers, added in batches of `batch`.
pub fn big_room_scenario(users: usize, devices: u32, batch: usize) -> String {
    room_scenario(
        &format!("room-{}", users * devices as usize),
        "What does one seed of a large room cost?",
        users,
        devices as usize,
        batch,
        2_000,
        &[
            ("u001", "op = \"send\"\ntext = \"hello, big room\""),
            ("u002/2", "op = \"send\"\ntext = \"hi\""),
            ("u000", "op = \"role\"\nuser = \"u003\"\nrole = 3"),
            ("u003", "op = \"remove\"\nuser = \"u004\""),
            ("u005/3", "op = \"self-update\""),
            ("u006", "op = \"send\"\ntext = \"still here\""),
        ],
    )
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

/// What to measure besides the standard scenario.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// One seed of the 256-client room.
    pub big_room: bool,
    /// Parallel efficiency with this binary's `batch` workers.
    pub parallel: Option<std::path::PathBuf>,
    /// Room sizes of the fan-out curve (empty: none).
    pub fanout_sizes: Vec<usize>,
}

/// Runs the bench: `seeds` seeds of the standard scenario and what `o` asks for.
pub fn bench(seeds: u64, o: &Options) -> Result<BenchReport, String> {
    let standard = measure("scenarios/standard.toml", STANDARD, 1..1 + seeds)?;
    let room_256 = if o.big_room {
        Some(measure("room-256", &big_room_scenario(64, 4, 16), 1..2)?)
    } else {
        None
    };
    let parallel = match &o.parallel {
        Some(exe) => Some(parallel(exe, seeds)?),
        None => None,
    };
    let fanout = fanout(&o.fanout_sizes)?;
    Ok(BenchReport {
        standard,
        room_256,
        parallel,
        fanout,
    })
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
    if let Some(p) = &r.parallel {
        let _ = writeln!(
            s,
            "parallel efficiency ({} seeds): 1 worker {:.0} ms, 2 workers {:.0} ms → {:.2}",
            p.seeds, p.t1_ms, p.t2_ms, p.efficiency
        );
    }
    if !r.fanout.is_empty() {
        let _ = writeln!(s, "one commit's fan-out by room size:\n  clients  setup ms  commit ms  commit in openmls ms");
        for f in &r.fanout {
            let _ = writeln!(
                s,
                "  {:>7} {:>9.0} {:>10.1} {:>21.1}{}",
                f.clients,
                f.setup_wall_ms,
                f.commit_wall_ms,
                f.commit_mls_ms,
                if f.ok { "" } else { "  (run not ok)" }
            );
        }
    }
    s
}

/// The bench options from the command line's flags; `sizes` is a comma list of room
/// sizes (empty: no fan-out curve).
pub fn options(big_room: bool, parallel: bool, sizes: &str) -> Result<Options, String> {
    let fanout_sizes = sizes
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.parse::<usize>()
                .ok()
                .filter(|n| (2..=MAX_FANOUT_CLIENTS).contains(n))
                .ok_or_else(|| {
                    format!("--sizes {sizes:?}: {x:?} is not a room size 2..={MAX_FANOUT_CLIENTS}")
                })
        })
        .collect::<Result<Vec<usize>, String>>()?;
    let parallel = if parallel {
        Some(std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?)
    } else {
        None
    };
    Ok(Options {
        big_room,
        parallel,
        fanout_sizes,
    })
}

/// Largest room the fan-out curve builds.
pub const MAX_FANOUT_CLIENTS: usize = 4096;
