//! # Observing a run
//!
//! [`host_events`] is what a provider host reports its core saw and did; [`record`]
//! writes the trace (JSONL, one event per line, and its SHA-256 hash);
//! [`oracles`] judge what the world observed against the drafts' invariants; [`log`]
//! stamps `tracing` log lines with simulated time. Shared by the simulator
//! ([`crate::world::run`]) and the testbed's judge ([`crate::testbed`]).

pub mod host_events;
pub mod log;
pub mod oracles;
pub mod record;
