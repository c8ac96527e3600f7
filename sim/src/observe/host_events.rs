//! The record of what every provider core saw and did, in the order it happened, as
//! the host adapter ([`crate::world::net`]) reports it; [`super::record`] writes it into
//! the trace. Here, not in the adapter, so that observing does not depend on the world.

use std::cell::RefCell;
use std::rc::Rc;

use nodes::ids::{ClientUri, Domain};
use nodes::io::{
    ClientToProvider, Millis, Request, RequestId, Response, ServerOutput, Token, TransportError,
};

/// One core event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Time in ms since the UNIX epoch: simulated in the simulator (see [`crate::world::net::now_ms`]),
    /// the wall clock in the testbed.
    pub at: Millis,
    /// The provider whose core this is about.
    pub host: Domain,
    pub what: What,
}

/// What happened. Inputs are recorded before the core runs, its outputs after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// The host's software (re)started with a fresh core.
    Started,
    /// Input: a valid incoming request, handed to `on_request`.
    Request { id: RequestId, request: Request },
    /// The adapter answered a bad incoming request itself; the core never saw it.
    Rejected { status: u16, reason: String },
    /// The transport refused an incoming connection before any request (testbed: no or
    /// a wrong TLS client certificate). Never happens in the simulator.
    PeerRefused { reason: String },
    /// Input: the outcome of one outgoing attempt, handed to `on_response`.
    Outcome {
        token: Token,
        result: Result<Response, TransportError>,
    },
    /// Input: a message from a local client, handed to `on_client`.
    FromClient {
        client: ClientUri,
        message: ClientToProvider,
    },
    /// Input: a timer tick that produced outputs (silent ticks are not recorded).
    Tick,
    /// An output of the core, as it was carried out.
    Output(ServerOutput),
}

/// A shared, append-only event log for all hosts of one simulation. Cheap to clone
/// (all clones are the same log). Single-threaded, like the simulation.
#[derive(Debug, Clone, Default)]
pub struct Trace(Rc<RefCell<Vec<Event>>>);

impl Trace {
    pub fn new() -> Self {
        Trace::default()
    }
    /// Number of events recorded and not yet taken.
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }
    /// A copy of the events recorded and not yet taken.
    pub fn events(&self) -> Vec<Event> {
        self.0.borrow().clone()
    }
    /// Removes and returns the events recorded so far.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
    pub(crate) fn push(&self, at: Millis, host: &Domain, what: What) {
        self.0.borrow_mut().push(Event {
            at,
            host: host.clone(),
            what,
        });
    }
}
