//! # Testbed
//!
//! The other half of the project next to the simulator: providers as real processes on
//! loopback, running the **same** sans-IO cores behind the **same** HTTP/1.1 host adapter
//! ([`crate::world::net`]); only the transport differs ([`crate::world::net::Transport`]: turmoil in the
//! simulator, TCP + mutual TLS here, [`tls::TlsTransport`]).
//!
//! ## What exists
//! * `mimi-sim testbed-certs --out DIR --providers a.example,b.example,c.example`: a
//!   testbed CA (`ca.pem`) and per provider a certificate with SAN = its domain
//!   (`<domain>.pem`, `<domain>.key`), made with rcgen ([`certs`]).
//! * `mimi-sim node --provider a.example --listen 127.0.0.1:PORT --peers FILE --state DIR
//!   [--control 127.0.0.1:PORT] [--seed N] [--enforcement full]`: one provider (the server
//!   core = hub + follower roles, and its clients) as a process ([`node`]). Port 0 picks a
//!   free port; the node prints `mimi-sim node <domain> mimi=ADDR control=ADDR` on stdout.
//!   The peers file ([`peers`]) maps provider domains to loopback addresses and names the
//!   certificate folder; it is read again on every outgoing connection, so a testbed can
//!   write it once all nodes have printed their addresses.
//! * Mutual TLS (rustls, ring provider): the server requires a client certificate issued
//!   by the testbed CA (a peer with none, or one from another CA, fails the handshake; the
//!   node logs `TLS client at ADDR refused: ...` and journals a `peer-refused` event). The
//!   adapter answers a request whose `From: mimi@<domain>` is not the certificate's name
//!   with 403 naming both.
//! * A control API ([`control`]): JSON over HTTP/1.1 on its own loopback port: create a
//!   client, issue a scenario step to it (the scenario script's op types, mapped to client
//!   commands by the simulator's own [`crate::world::run::op_command`]), read events since N, read
//!   a client's view of a room.
//! * Events: every node appends its events to `<state>/events.jsonl`, in the simulator's
//!   trace line format with `t` = wall-clock ms since the UNIX epoch (the adapter's lines
//!   are journalled in batches every 100 ms (`LINES_FLUSH_MS`; the clients are ticked at their own timers), so order by `t`). Logs go through
//!   `tracing` to stderr (`RUST_LOG=debug` etc.; default `info`).
//! * Durable state ([`store`], [`journal`]): `<state>/state.db` (SQLite through rusqlite,
//!   bundled; WAL, `synchronous = FULL`) holds a write-ahead journal of every input of the
//!   server core (hub and follower) and of the clients, plus the last-mile mailboxes
//!   (messages handed to a client or sent by one and not yet taken by the other side).
//!   Each input is committed, with the mailbox rows it causes, before its outputs leave
//!   the process (the answer to a request, a `/notify`, a delivery to a client): the host
//!   adapter calls the core through [`journal::JournaledServer`], so the adapter itself is
//!   the simulator's, unchanged. `mimi-sim node ... --state DIR` on a directory holding
//!   state rebuilds every core by replaying its inputs (the cores are deterministic:
//!   seeded keys and nonces, the journalled times), re-sends what was in the mailboxes,
//!   then gives the server core `on_restart` as the simulator's durable hosts do
//!   (in-flight `/notify`s and relays are sent again; followers and clients drop the
//!   byte-identical repeats). A state of another provider, seed or enforcement level, or
//!   a damaged file, stops the node with exit code 2 and a message naming the file.
//! * `mimi-sim node --scenario FILE [--variant K=V]` configures the server and the
//!   scenario's clients exactly as the simulator does ([`setup`], through
//!   [`crate::world::run::make_server`] / [`crate::world::run::make_client`]). The node also journals
//!   what the oracles need ([`observe`]): hub events, the hub's view of each room, hub log
//!   entries, clients' views after each epoch, and every FanoutMessage handed to a client.
//!   The control API has `/online` (client offline periods) and `/converge` (what a
//!   convergence check needs).
//! * `mimi-sim testbed SCENARIO [--runs N] [--time-scale X] [--out DIR] [--seed S]`
//!   ([`runner`], [`command`]): one node process per provider, a fault-injecting TCP
//!   proxy per ordered pair of providers ([`proxy`]), the scenario file unchanged (script,
//!   fault windows from [`crate::world::faults::plan`], phases) scaled by `--time-scale`;
//!   crashes by SIGKILL and restart on the same `--state`; the journals merged
//!   ([`merge`]) and judged by the simulator's oracles ([`judge`]); a campaign-style
//!   output folder and the simulator's report. Exit codes as `run`. Every node process is
//!   killed and waited for on return, error or Ctrl-C.
//! * `mimi-sim testbed --compare [FILES] [--runs N]` ([`compare`]): per file and level,
//!   the testbed's outcome distribution beside the simulator's over the same seeds.
//!
//! ## Known limits
//! * **Journals that still grow**: the server core is restored from its tables
//!   ([`server_tables`]: room log, public group, fan-out queue, the rest; its journal
//!   stays empty) and the clients from their own files ([`mls_store`]: openmls' tables
//!   and the client's snapshot; their journal keeps only the last commit), except a
//!   malicious provider's follower role, whose own state a snapshot does not hold: that
//!   node's server journal keeps every input.
//! * The adapter's lines in `events.jsonl` (requests, responses, sends) and the
//!   observation lines of the server core ([`observe`]: `hub`, `hub-view`, `hub-log`,
//!   `deliver`) are journalled in batches every 100 ms (`LINES_FLUSH_MS`; the clients are ticked at their own timers) and are not part of the state: a
//!   kill can lose the last batch (a restarted core does not record again the log
//!   entries and views it was rebuilt with). The clients' event and `client-view` lines
//!   are exact (committed with their input; a restart appends those the file lacks).
//! * Clients live in their provider's process, so a crash stops them too; they come back
//!   with their state (and offline ones offline, with their outbox and held mail) on the
//!   restart, as in the simulator, where they live outside the host.

pub mod certs;
pub mod command;
pub mod compare;
pub mod control;
pub mod journal;
pub mod judge;
pub mod merge;
pub mod mls_store;
pub mod node;
pub mod observe;
pub mod peers;
pub mod proxy;
pub mod runner;
pub mod server_tables;
pub mod setup;
pub mod store;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use nodes::ids::Domain;

use crate::scenario::EnforcementLevel;

/// Exit code for bad arguments or files (as the other commands).
const EXIT_BAD_INPUT: u8 = 2;
/// Exit code when a node stops after it started (its server failed).
const EXIT_FAILED: u8 = 1;

/// `mimi-sim node`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// This provider's domain, e.g. a.example.
    #[arg(long)]
    pub provider: String,
    /// The MIMI server's address (loopback only; port 0 picks a free port).
    #[arg(long)]
    pub listen: SocketAddr,
    /// The peers file (TOML): `certs = "DIR"` and `[providers] "b.example" = "127.0.0.1:PORT"`.
    #[arg(long)]
    pub peers: PathBuf,
    /// The folder for this node's files (state.db, events.jsonl); created if missing. A
    /// folder holding state resumes from it (same provider, seed and enforcement).
    #[arg(long)]
    pub state: PathBuf,
    /// The control API's address (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub control: SocketAddr,
    /// The run seed (keys, nonces, message IDs); every node of a testbed needs the same.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Hub enforcement level.
    #[arg(long, default_value = "full", value_parser = ["off", "mls", "full"])]
    pub enforcement: String,
    /// Configure the server and clients from this scenario file as the simulator does
    /// (variant, bugs, adversaries, disabled rules; `--enforcement` picks the level).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// A variant key for `--scenario` (as `run --variant`; repeatable).
    #[arg(long = "variant", value_name = "KEY=VALUE")]
    pub variants: Vec<String>,
    /// Wall-clock ms per core ms: the cores' timers run at 1/X of the wall clock (the
    /// testbed passes its own --time-scale; a restart needs the same).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
}

/// `mimi-sim testbed`.
#[derive(Debug, clap::Args)]
pub struct TestbedArgs {
    /// The scenario file (one), or with --compare the files to compare (default: the
    /// standard scenario, drafts-flows, crash-and-offline, one adversary and one
    /// hub-transfer file).
    pub files: Vec<PathBuf>,
    /// Runs (seeds --seed, --seed+1, ...).
    #[arg(long, default_value_t = 1)]
    pub runs: u64,
    /// Wall-clock ms per scenario ms (0.5: twice as fast as the scenario's times).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// The output folder (runs.jsonl, traces/, report/, runs/ with each run's files).
    #[arg(long, default_value = "testbed-out")]
    pub out: PathBuf,
    /// The first run's seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Enforcement level (default: the file's; with --compare: every level of its matrix).
    #[arg(long, value_parser = ["off", "mls", "full"])]
    pub enforcement: Option<String>,
    /// A variant key (as `run --variant`; repeatable).
    #[arg(long = "variant", value_name = "KEY=VALUE")]
    pub variants: Vec<String>,
    /// Compare outcome distributions with the simulator's over the same seeds.
    #[arg(long)]
    pub compare: bool,
}

/// `mimi-sim testbed-certs`.
#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    /// The folder to write ca.pem, <domain>.pem and <domain>.key into.
    #[arg(long)]
    pub out: PathBuf,
    /// The providers, comma-separated: a.example,b.example,c.example.
    #[arg(long, value_delimiter = ',', required = true)]
    pub providers: Vec<String>,
    /// The CA's common name (a second CA with another name makes "foreign" certificates).
    #[arg(long, default_value = "mimi-sim testbed CA")]
    pub ca_name: String,
}

/// Logs to stderr through `tracing`; `RUST_LOG` filters (default `info`).
pub fn init_logging() {
    init_logging_at("info");
}

/// Logs to stderr through `tracing`; `RUST_LOG` filters (default `default`).
pub fn init_logging_at(default: &str) {
    crate::observe::log::init_wall(default);
}

fn domain(s: &str) -> Result<Domain, String> {
    Domain::new(s).map_err(|e| format!("bad provider domain {s:?}: {e}"))
}

fn node_options(args: &NodeArgs) -> Result<node::NodeOptions, String> {
    Ok(node::NodeOptions {
        provider: domain(&args.provider)?,
        listen: args.listen,
        control: args.control,
        peers: args.peers.clone(),
        state: args.state.clone(),
        seed: args.seed,
        setup: match &args.scenario {
            Some(p) => Some(setup::Setup::load(
                p,
                Some(&args.enforcement),
                &args.variants,
            )?),
            None => None,
        },
        time_scale: if args.time_scale.is_finite() && args.time_scale > 0.0 {
            args.time_scale
        } else {
            return Err(format!(
                "--time-scale {} is not a positive number",
                args.time_scale
            ));
        },
        enforcement: match args.enforcement.as_str() {
            "off" => EnforcementLevel::Off,
            "mls" => EnforcementLevel::Mls,
            _ => EnforcementLevel::Full,
        },
    })
}

pub fn node_main(args: &NodeArgs) -> ExitCode {
    init_logging();
    let options = node_options(args);
    let options = match options {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mimi-sim node: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    // The node serves the control API it is handed (control depends on node, not back).
    match node::run(options, control::serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(node::NodeError::State(e)) if e.is_bad_input() => {
            tracing::error!("{e}");
            eprintln!("mimi-sim node: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("mimi-sim node: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

pub fn certs_main(args: &CertsArgs) -> ExitCode {
    let providers: Result<Vec<Domain>, String> =
        args.providers.iter().map(|p| domain(p.trim())).collect();
    let result = providers
        .and_then(|ps| certs::generate(&args.out, &args.ca_name, &ps).map_err(|e| e.to_string()));
    match result {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mimi-sim testbed-certs: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
