//! # mimi-sim — the simulator's library
//!
//! The `mimi-sim` binary is a thin command line over this library.
//!
//! * [`vectors`] — replays of external test vectors (MLS passive-client vectors from
//!   mlswg/mls-implementations) against our MLS stack: a joined client and the hub's
//!   public view side by side.
//! * [`net`] — runs any `nodes::io::ServerCore` as a turmoil host speaking HTTP/1.1
//!   (hyper) over turmoil TCP, or over real TCP with mutual TLS.
//! * [`testbed`] — providers as real processes on loopback (`mimi-sim node`), in progress.

pub mod bench;
pub mod campaign;
pub mod cli;
pub mod demo;
pub mod faults;
pub mod findings;
pub mod log;
pub mod net;
pub mod oracles;
pub mod planted;
pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
pub mod shrink;
pub mod testbed;
pub mod vectors;
