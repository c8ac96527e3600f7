//! `mimi-sim`, the command line of the simulator.
//!
//! Exit codes: 0 success (every replayed test agreed), 1 a disagreement, 2 bad input
//! (unreadable or malformed file, bad arguments).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use mimi_sim::cli;
use mimi_sim::vectors::{parse_passive_client_tests, replay_passive_client_tests, ReplayReport};
use serde::Serialize;

/// Exit code when every replayed test agreed.
const EXIT_AGREE: u8 = 0;
/// Exit code when any replayed test disagreed.
const EXIT_DISAGREE: u8 = 1;
/// Exit code for input that could not be read or parsed.
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "mimi-sim",
    version,
    about = "Deterministic simulator for MIMI hubs, followers and clients on real MLS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The built-in default: the draft's flows (create, add, add via hub, messages,
    /// leave, new device, ban) in memory at each enforcement level, checking that every
    /// member agrees with every other and with the hub after every step. Exit 1 if not.
    Demo {
        /// The run seed: every key, nonce and message ID derives from it.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one JSON object per enforcement level instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Run a scenario with a seed over HTTP on turmoil: faults during chaos, then heal;
    /// oracles checked after every step. Exit 0 ok, 1 violation or liveness failure,
    /// 2 bad input.
    Run {
        /// The scenario file (TOML), e.g. scenarios/drafts-flows.toml.
        scenario: PathBuf,
        /// The run seed: faults, latencies, keys and nonces all derive from it
        /// (default: the file's `[regression] seed`, else 1).
        #[arg(long)]
        seed: Option<u64>,
        /// Write the JSONL trace here.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Print one JSON object (the run record) instead of the summary.
        #[arg(long)]
        json: bool,
        /// Run the same seed again in a child process and compare trace hashes.
        #[arg(long)]
        check_determinism: bool,
        /// Hub enforcement level (a cell of the file's matrix); default: the file's variant.
        #[arg(long, value_parser = ["off", "mls", "full"])]
        enforcement: Option<String>,
        /// Set a variant key for this run, e.g. `--variant leave_order=exiting` (keys:
        /// hub_transfer, leave_order, room_state; repeatable). Selects a cell of the file's matrix or
        /// tries a variant the file does not list.
        #[arg(long = "variant", value_name = "KEY=VALUE")]
        variants: Vec<String>,
    },
    /// Run seeds of a scenario and print one JSON record per line
    /// (the worker behind `findings` and campaigns).
    Batch {
        scenario: PathBuf,
        /// Inclusive range A..B, a count N, or a comma list, e.g. 1..200 or 3,7,9..12.
        #[arg(long)]
        seeds: String,
        #[arg(long, value_parser = ["off", "mls", "full"])]
        enforcement: Option<String>,
        /// Set a variant key (as `run --variant`).
        #[arg(long = "variant", value_name = "KEY=VALUE")]
        variants: Vec<String>,
        /// Write traces of runs not ok or not as expected here.
        #[arg(long, value_name = "DIR")]
        trace_dir: Option<PathBuf>,
    },
    /// Scenarios × enforcement levels × seeds in parallel worker processes, written to a
    /// campaign folder. Exit 0 passed, 1 failed, 2 bad input.
    Campaign(mimi_sim::campaign::CampaignArgs),
    /// Merge shard folders of one campaign into one folder (as if unsharded).
    Merge(mimi_sim::campaign::MergeArgs),
    /// Run every library scenario under every level of its matrix for many seeds and
    /// write the findings tables (Markdown). Exit 1 if any file's expectation failed.
    Findings {
        /// Scenario files (default: every scenarios/*.toml).
        files: Vec<PathBuf>,
        #[arg(long, default_value_t = 200)]
        seeds: u64,
        /// Worker processes (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        #[arg(long, default_value = "scenarios/FINDINGS.md")]
        out: PathBuf,
    },
    /// Re-run a trace (JSONL, from --trace) or a run record (the JSON of run --json) from
    /// its seed and scenario and confirm the same trace hash. Exit 0 same, 1 different.
    Replay {
        /// A trace file or a file holding one run record.
        file: PathBuf,
    },
    /// Delta-debug a failing run (a trace, a run record, or a line of runs.jsonl) to a
    /// 1-minimal fixed fault schedule and fewer steps, and write it as a reproducer.
    /// Exit 0 written, 1 the run did not fail, 2 bad input.
    Shrink {
        /// A trace (--trace), a run record (run --json) or a campaign's runs.jsonl.
        input: PathBuf,
        /// Default: scenarios/regressions/<scenario>-<level>-<oracle>-s<seed>.toml.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The line of a JSONL input to take (1-based; default 1).
        #[arg(long)]
        line: Option<usize>,
        /// Keep every scripted step (shrink the faults only).
        #[arg(long)]
        keep_steps: bool,
    },
    /// Measure what a seed costs: seeds/s/core and simulated-time speed-up for the
    /// standard 3-provider, 12-client scenario, the share of wall time inside openmls,
    /// one seed of a 256-client room, parallel efficiency (1 vs 2 worker processes) and
    /// one commit's fan-out against room size. Prints a table (or JSON; `--out` writes
    /// it, e.g. to a campaign folder's bench.json for `report`).
    Bench {
        /// Seeds of the standard scenario to run.
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        /// Skip the 256-client room.
        #[arg(long)]
        no_big_room: bool,
        #[arg(long)]
        json: bool,
        /// Also write the JSON here.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Skip the parallel-efficiency measurement.
        #[arg(long)]
        no_parallel: bool,
        /// Room sizes of the commit fan-out curve ("" for none).
        #[arg(long, default_value = "8,32,128,512")]
        sizes: String,
    },
    /// Write HTML pages (SVG), a Markdown summary and Perfetto JSON from a campaign
    /// folder (DIR/report/) or from one run's trace (TRACE.jsonl); prints the page's path.
    Report {
        /// A campaign folder (with runs.jsonl) or a trace file from `run --trace`.
        input: PathBuf,
        /// For a trace: the folder to write into (default: the trace's folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also print the Markdown summary.
        #[arg(long)]
        markdown: bool,
    },
    /// Testbed: run one provider (hub + follower + its clients) as a real process on
    /// loopback, mutual TLS to its peers, a JSON control API; runs until killed.
    Node(mimi_sim::testbed::NodeArgs),
    /// Testbed: make a CA and one certificate per provider (SAN = its domain) in a folder.
    TestbedCerts(mimi_sim::testbed::CertsArgs),
    /// Testbed: run a scenario file on real processes (one `node` per provider, a fault
    /// proxy per link), judge the merged trace with the simulator's oracles and write
    /// the report; `--compare` puts outcome distributions beside the simulator's. Exit
    /// codes as `run` (with --compare: 1 if any cell disagrees).
    Testbed(mimi_sim::testbed::TestbedArgs),
    /// Replay external test vectors against our nodes.
    Vectors {
        #[command(subcommand)]
        kind: VectorsCommand,
    },
}

#[derive(Subcommand)]
enum VectorsCommand {
    /// MLS passive-client vectors (mlswg/mls-implementations): a joined client and the
    /// hub's public view replay every epoch; exit 1 on any disagreement. A vector whose
    /// KeyPackage breaks RFC 9420 is reported on its own line ("violates RFC 9420") and
    /// is neither agreement nor disagreement (exit 0 if everything else agrees).
    Mls {
        /// The vector file, e.g. passive-client-handling-commit.json.
        file: PathBuf,
        /// Print one JSON object instead of the human-readable totals.
        #[arg(long)]
        json: bool,
    },
    /// MIMI content messages (CBOR, draft-ietf-mimi-content-08): print each file's
    /// message ID in hex; exit 2 if any file cannot be read or is not valid content.
    Content {
        /// One or more `.cbor` files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// The JSON output of `vectors mls`: the file and the report's totals.
#[derive(Serialize)]
struct MlsVectorsOutput<'a> {
    file: String,
    #[serde(flatten)]
    report: &'a ReplayReport,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The testbed's commands log with wall-clock time (they start it themselves); every
    // other command runs the simulator and logs with simulated time.
    if !matches!(
        cli.command,
        Command::Node(_) | Command::TestbedCerts(_) | Command::Testbed(_)
    ) {
        mimi_sim::observe::log::init_sim("warn");
    }
    match cli.command {
        Command::Demo { seed, json } => demo(seed, json),
        Command::Run {
            scenario,
            seed,
            trace,
            json,
            check_determinism,
            enforcement,
            variants,
        } => cli::run(
            &scenario,
            seed.unwrap_or_else(|| cli::default_seed(&scenario)),
            trace.as_deref(),
            json,
            check_determinism,
            enforcement.as_deref(),
            &variants,
        ),
        Command::Batch {
            scenario,
            seeds,
            enforcement,
            variants,
            trace_dir,
        } => cli::batch(
            &scenario,
            &seeds,
            enforcement.as_deref(),
            &variants,
            trace_dir.as_deref(),
        ),
        Command::Campaign(a) => mimi_sim::campaign::main(&a),
        Command::Merge(a) => mimi_sim::campaign::merge_main(&a),
        Command::Findings {
            files,
            seeds,
            jobs,
            out,
        } => cli::findings(&files, seeds, jobs, &out),
        Command::Replay { file } => cli::replay(&file),
        Command::Shrink {
            input,
            out,
            line,
            keep_steps,
        } => mimi_sim::shrink::command(&input, out.as_deref(), line, !keep_steps),
        Command::Bench {
            seeds,
            no_big_room,
            json,
            out,
            no_parallel,
            sizes,
        } => match mimi_sim::bench::options(!no_big_room, !no_parallel, &sizes)
            .and_then(|o| mimi_sim::bench::bench(seeds, &o))
        {
            Ok(r) => {
                let text = serde_json::to_string(&r).unwrap_or_default();
                if let Some(p) = &out {
                    if let Err(e) = std::fs::write(p, format!("{text}\n")) {
                        eprintln!("mimi-sim: cannot write {}: {e}", p.display());
                        return ExitCode::from(EXIT_BAD_INPUT);
                    }
                }
                if json {
                    println!("{text}");
                } else {
                    print!("{}", mimi_sim::bench::render(&r));
                }
                ExitCode::from(EXIT_AGREE)
            }
            Err(e) => {
                eprintln!("mimi-sim: {e}");
                ExitCode::from(EXIT_BAD_INPUT)
            }
        },
        Command::Report {
            input,
            out,
            markdown,
        } => match mimi_reports::report(&input, out.as_deref()) {
            Ok(w) => {
                if markdown {
                    print!("{}", w.markdown.unwrap_or_default());
                }
                println!("{}", w.index.display());
                ExitCode::from(EXIT_AGREE)
            }
            Err(e) => {
                eprintln!("mimi-sim: {e}");
                ExitCode::from(EXIT_BAD_INPUT)
            }
        },
        Command::Node(a) => mimi_sim::testbed::node_main(&a),
        Command::TestbedCerts(a) => mimi_sim::testbed::certs_main(&a),
        Command::Testbed(a) => mimi_sim::testbed::command::main(&a),
        Command::Vectors {
            kind: VectorsCommand::Mls { file, json },
        } => vectors_mls(&file, json),
        Command::Vectors {
            kind: VectorsCommand::Content { files },
        } => vectors_content(&files),
    }
}

fn vectors_content(files: &[PathBuf]) -> ExitCode {
    let mut code = EXIT_AGREE;
    for file in files {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("mimi-sim: cannot read {}: {e}", file.display());
                code = EXIT_BAD_INPUT;
                continue;
            }
        };
        match nodes::content::message_id(&bytes) {
            Ok(id) => println!("{}  {}", hex::encode(id), file.display()),
            Err(e) => {
                eprintln!(
                    "mimi-sim: {}: not a MIMI content message: {e}",
                    file.display()
                );
                code = EXIT_BAD_INPUT;
            }
        }
    }
    ExitCode::from(code)
}

fn vectors_mls(file: &Path, json: bool) -> ExitCode {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("mimi-sim: cannot read {}: {e}", file.display());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let tests = match parse_passive_client_tests(&bytes) {
        Ok(tests) => tests,
        Err(e) => {
            eprintln!("mimi-sim: {}: {e}", file.display());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let started = Instant::now();
    let report = replay_passive_client_tests(&tests);
    let elapsed = started.elapsed();

    if json {
        let output = MlsVectorsOutput {
            file: file.display().to_string(),
            report: &report,
        };
        match serde_json::to_string(&output) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("mimi-sim: cannot encode the report as JSON: {e}");
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        }
    } else {
        println!("MLS passive-client vectors: {}", file.display());
        print!("{report}");
        eprintln!("replay took {} ms", elapsed.as_millis());
    }
    if report.has_disagreement() {
        ExitCode::from(EXIT_DISAGREE)
    } else {
        ExitCode::from(EXIT_AGREE)
    }
}

fn demo(seed: u64, json: bool) -> ExitCode {
    use nodes::hub::Enforcement;
    let mut ok = true;
    for level in [Enforcement::Full, Enforcement::Mls, Enforcement::Off] {
        let started = Instant::now();
        let report = mimi_sim::cli::demo::run(seed, level);
        let wall = started.elapsed().as_millis();
        // Under `off` the hub keeps no MLS view: members are compared with each other only.
        ok &= report.ok();
        if json {
            match serde_json::to_string(&report) {
                Ok(t) => println!("{t}"),
                Err(e) => {
                    eprintln!("mimi-sim: cannot encode the report: {e}");
                    return ExitCode::from(EXIT_BAD_INPUT);
                }
            }
            continue;
        }
        println!("== enforcement {level:?}, seed {seed} ({wall} ms)");
        let with = if level == Enforcement::Off {
            "members"
        } else {
            "members+hub"
        };
        println!(
            "{:<28} {:>5} {:>7} {:>12} {:>9}   (agreement among {with})",
            "step", "epoch", "members", "participants", "agreement"
        );
        for s in &report.steps {
            let agree = if s.agreement { "yes" } else { "NO" };
            println!(
                "{:<28} {:>5} {:>7} {:>12} {:>9}",
                s.step, s.epoch, s.members, s.participants, agree
            );
        }
        println!("messages delivered: {}", report.messages_delivered);
        for f in &report.failed_operations {
            println!("FAILED: {f}");
        }
        println!("events hash: {}\n", report.events_hash);
    }
    if ok {
        ExitCode::from(EXIT_AGREE)
    } else {
        ExitCode::from(EXIT_DISAGREE)
    }
}
