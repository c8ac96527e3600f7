//! Runs any [`ServerCore`](nodes::io::ServerCore) as a host that speaks MIMI over real HTTP/1.1 (hyper) on
//! turmoil TCP, or — the same code on another [`Transport`] — on real TCP with mutual
//! TLS in the testbed ([`run_host`], `crate::testbed`).
//!
//! One turmoil host per provider; its host name is the provider's [`Domain`](nodes::ids::Domain) (`a.example`).
//! Each host runs one event-loop task that owns the core ([`HttpHost`]); the HTTP server,
//! the outgoing-request tasks and the driver only talk to it through queues, so a core is
//! never shared and never locked. Clients are not turmoil hosts: a driver attaches them to
//! their provider in-process through the [`HostHandle`] (inject `on_client` messages, drain
//! `ToClient` messages). Every core input and output is appended to a [`Trace`].
//!
//! A world builder does:
//! ```ignore
//! let mut sim = net::sim_builder(seed).build();
//! let trace = net::Trace::new();
//! let a = net::spawn_host(&mut sim, domain_a, HostConfig::default(), &trace, move || make_core_a());
//! a.send_from_client(client, ClientToProvider::Relay { .. });
//! net::step_until(&mut sim, Duration::from_secs(10), || !a.peek_to_clients().is_empty())?;
//! let delivered = a.drain_to_clients();
//! let events = trace.take();
//! ```
//!
//! # Choices
//! * **One TCP connection per request attempt.** turmoil TCP never retransmits
//!   (tokio-rs/turmoil#185), so a lost segment stalls a connection for good. A fresh
//!   connection per attempt keeps attempts independent ("reconnect" is the default) and
//!   costs one extra round trip (SYN/SYN-ACK). No connection pool.
//! * **The adapter never retries.** Each attempt that gets no HTTP response within
//!   [`REQUEST_TIMEOUT`] (or cannot connect) is reported to the core as one
//!   [`TransportError`](nodes::io::TransportError) via `on_response`; the core owns retry, backoff and `/notify`
//!   de-duplication (P§5.5).
//! * **Status codes of the adapter** (the core never sees these requests): method other
//!   than POST → 405; unknown path, missing/invalid `Host` or `From`, `Host` naming another
//!   provider → 400; body over [`MAX_BODY_LEN`] → 413; `From` naming a provider other than
//!   the peer's authenticated identity → 403 (the [`Transport`] supplies it: in the
//!   simulation the peer's turmoil host name stands in for TLS client authentication,
//!   P§4.1; in the testbed it is the DNS name of the verified TLS client certificate).
//!   Error bodies are plain text naming what was wrong.
//! * `Host` is sent as the bare domain; a `:port` suffix is accepted on receipt.
//! * A response that cannot be read (broken connection, body over [`MAX_BODY_LEN`]) is
//!   reported as [`TransportError::Unreachable`](nodes::io::TransportError::Unreachable); `TransportError` has no variant for
//!   "peer answered garbage".
//! * Time: `now` = [`Transport::now_ms`]: in the simulator [`EPOCH_MS`] + turmoil's
//!   simulated elapsed time, in the testbed the wall clock; hyper's `Date` header (which
//!   reads the wall clock) is switched off.

mod client;
mod host;
mod input;
mod server;
pub mod transport;

use std::time::{Duration, UNIX_EPOCH};

use nodes::io::Millis;

pub use crate::observe::host_events::{Event, Trace, What};
pub use host::{run_host, spawn_durable_host, spawn_host, Durable, HostHandle, HttpHost};
pub use server::RequestError;
pub use transport::{Peer, Transport, Turmoil};

/// The TCP port every provider's MIMI server listens on.
pub const HTTP_PORT: u16 = 8443;
/// Simulated time 0: 2026-01-01T00:00:00Z in ms since the UNIX epoch.
pub const EPOCH_MS: Millis = 1_767_225_600_000;
/// Largest request or response body accepted, in bytes.
pub const MAX_BODY_LEN: usize = 1 << 20;
/// How long one outgoing attempt (connect, send, whole response) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the server keeps one incoming connection (it serves one request on it).
/// Longer than [`REQUEST_TIMEOUT`]: by then the client has given up.
pub const SERVER_CONNECTION_TIMEOUT: Duration = Duration::from_secs(4);

/// Per-host settings; [`Default`] uses the constants above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    pub request_timeout: Duration,
    pub server_connection_timeout: Duration,
    pub max_body_len: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            request_timeout: REQUEST_TIMEOUT,
            server_connection_timeout: SERVER_CONNECTION_TIMEOUT,
            max_body_len: MAX_BODY_LEN,
        }
    }
}

/// The current simulated time in ms since the UNIX epoch (0 ms of simulation = [`EPOCH_MS`]).
/// Outside a running host it returns [`EPOCH_MS`].
pub fn now_ms() -> Millis {
    let elapsed = turmoil::sim_elapsed().unwrap_or_default().as_millis();
    EPOCH_MS.saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
}

/// A turmoil builder with everything that must be fixed for reproducible runs: the RNG
/// seed and the epoch. Latency, tick, fail rate and host order are left to the caller.
pub fn sim_builder(seed: u64) -> turmoil::Builder {
    let mut b = turmoil::Builder::new();
    b.rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_MS))
        .simulation_duration(Duration::from_secs(24 * 3600));
    b
}

/// Steps `sim` until `done()` holds (checked before every step) or `limit` of simulated
/// time has passed since the call. Returns whether `done()` held. A host that fails
/// (error or panic under `tokio_unstable`) is an `Err`.
pub fn step_until(
    sim: &mut turmoil::Sim<'_>,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> turmoil::Result<bool> {
    let end = sim.elapsed() + limit;
    while sim.elapsed() < end {
        if done() {
            return Ok(true);
        }
        sim.step()?;
    }
    Ok(done())
}
