//! # mimi-sim — the simulator's library
//!
//! The `mimi-sim` binary is a thin command line over this library.
//!
//! * [`scenario`] — scenario files (TOML): parsing, validation with messages naming the
//!   file, line and field, the enforcement matrix and expectations.
//! * [`world`] — one seeded run: the driver loop ([`world::run`]), the fault plan
//!   ([`world::faults`]) and the HTTP/1.1 host adapter
//!   any server core runs behind ([`world::net`]: turmoil, or TCP with mutual TLS).
//! * [`observe`] — the trace and its hash ([`observe::record`]), the oracles
//!   ([`observe::oracles`]), logging with simulated time ([`observe::log`]).
//! * [`campaign`] — scenarios × levels × seeds in worker processes, shards, merge, and
//!   `findings` ([`campaign::findings`]); [`shrink`] — the smallest failing scenario;
//!   [`bench`] — speed against the MLS crypto floor.
//! * `mimi_reports` (the `reports` crate) renders runs and campaigns (HTML, Markdown, SVG,
//!   Perfetto) from their typed records; the run page of a trace and the campaign report.
//! * [`cli`] — the commands' plumbing (`run`, `replay`) and the built-in [`cli::demo`];
//!   [`exit`] — the exit codes every command shares.
//! * [`testbed`] — providers as real processes on loopback (`mimi-sim node`) and the
//!   `mimi-sim testbed` runner.
//! * [`vectors`] — replays of external test vectors (MLS passive-client vectors from
//!   mlswg/mls-implementations) against our MLS stack: a joined client and the hub's
//!   public view side by side.

pub mod bench;
pub mod campaign;
pub mod cli;
pub mod exit;
pub mod observe;
pub mod scenario;
pub mod shrink;
pub mod testbed;
pub mod vectors;
pub mod world;
