//! # Testbed (in progress)
//!
//! The other half of the project next to the simulator: providers as real processes on
//! loopback, running the **same** sans-IO cores behind the **same** HTTP/1.1 host adapter
//! ([`crate::net`]); only the transport differs ([`crate::net::Transport`]: turmoil in the
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
//!   commands by the simulator's own [`crate::run::op_command`]), read events since N, read
//!   a client's view of a room.
//! * Events: every node appends its events to `<state>/events.jsonl`, in the simulator's
//!   trace line format with `t` = wall-clock ms since the UNIX epoch (the adapter's lines
//!   are journalled in batches every 100 ms, so order by `t`). Logs go through
//!   `tracing` to stderr (`RUST_LOG=debug` etc.; default `info`).
//!
//! ## What is missing
//! * **Durable state**: all state is in memory; a killed node loses its clients, rooms and
//!   queues. SQLite storage (`openmls_sqlite_storage` for clients' MLS state; the hub's
//!   room log, public group and fan-out queue and the follower's mailboxes, written before
//!   each reply) is not built, so a crash/restart test cannot pass yet.
//! * The `mimi-sim testbed SCENARIO` runner (one process per provider, the scenario's
//!   script, faults and phases driven through the control API), the fault-injecting TCP
//!   proxy (partitions, one-way, hold/reorder, loss, latency), SIGKILL/restart and client
//!   offline periods.
//! * Merging the nodes' JSONL traces and running the oracles on them; the report; the
//!   `--compare` agreement check with the simulator.
//! * The simulator's log lines do not go through `tracing` yet.

pub mod certs;
pub mod command;
pub mod compare;
pub mod control;
pub mod judge;
pub mod merge;
pub mod node;
pub mod observe;
pub mod peers;
pub mod proxy;
pub mod runner;
pub mod setup;
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
    /// The folder for this node's files (events.jsonl); created if missing.
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
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
    match node::run(options) {
        Ok(()) => ExitCode::SUCCESS,
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
