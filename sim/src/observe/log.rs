//! Logging through `tracing` + `tracing-subscriber`, as the testbed logs: `RUST_LOG`
//! filters (e.g. `RUST_LOG=mimi_sim::trace=debug`), lines go to stderr.
//!
//! In the simulator a log line is stamped with **simulated** time ([`SimClock`]): the
//! time of the trace line being recorded, or inside a turmoil host, turmoil's simulated
//! clock. No wall clock is read, so logging cannot make two runs of a seed differ, and
//! logs never enter the trace or its hash. Every trace line is also a `debug` event of
//! target `mimi_sim::trace` (the line's `node`, `kind` and fields), so
//! `RUST_LOG=mimi_sim::trace=debug mimi-sim run FILE` prints the run as it happens.
//!
//! The testbed's processes ([`init_wall`]) stamp lines with the wall clock instead.

use std::cell::Cell;
use std::fmt;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The target of the trace lines' log events.
pub const TRACE_TARGET: &str = "mimi_sim::trace";

thread_local! {
    /// The simulated time (ms) of the trace line recorded last on this thread.
    static SIM_MS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Sets the simulated time log lines of this thread are stamped with.
pub fn set_sim_time(ms: u64) {
    SIM_MS.with(|c| c.set(Some(ms)));
}

/// Stamps a log line with simulated time: `t=12.345s` (turmoil's clock inside a host,
/// else the time of the trace line recorded last), or `t=-` outside any run.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimClock;

impl FormatTime for SimClock {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let ms = turmoil::sim_elapsed()
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .or_else(|| SIM_MS.with(Cell::get));
        match ms {
            Some(ms) => write!(w, "t={}.{:03}s", ms / 1000, ms % 1000),
            None => write!(w, "t=-"),
        }
    }
}

fn filter(default: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
}

fn ansi() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// The simulator's logging: simulated time, `RUST_LOG` or else `default` (e.g. `warn`).
/// A second call (or one after [`init_wall`]) does nothing.
pub fn init_sim(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(default))
        .with_timer(SimClock)
        .with_writer(std::io::stderr)
        .with_ansi(ansi())
        .try_init();
}

/// The testbed's logging (real processes): wall-clock time, `RUST_LOG` or `default`.
pub fn init_wall(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(default))
        .with_writer(std::io::stderr)
        .with_ansi(ansi())
        .try_init();
}
