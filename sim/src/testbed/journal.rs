//! The write-ahead discipline of a node: every input a core took is committed to the
//! [`Store`] **before** its outputs are carried out, so nothing a peer or a client was
//! told (an answer, a `/notify`, a delivery) is ever forgotten by a restart.
//!
//! The server core runs inside the host adapter wrapped in a [`JournaledServer`]: the
//! adapter ([`crate::net`], the same code as in the simulator) calls the wrapper, the
//! wrapper calls the core, commits the input and the deliveries to local clients it
//! produced, and only then returns the outputs to the adapter, which sends the answer.
//! The simulator has no wrapper (its "disk" is the core kept across a restart,
//! [`crate::net::spawn_durable_host`]).
//!
//! Ticks that produce no output change nothing anybody has seen; they are kept in memory
//! and committed in the same transaction as the next input that does. A crash loses only
//! such trailing silent ticks: the rebuilt core is the core of a run in which they came
//! later, which is a run the core must handle anyway (a slow timer).
//!
//! A commit that fails stops the process at once (exit code 1, the error on stderr):
//! answering without the state on disk would break the promise of the journal.

use std::cell::RefCell;
use std::rc::Rc;

use nodes::ids::{ClientUri, Domain};
use nodes::io::{
    ClientToProvider, Millis, ProviderToClient, Request, RequestId, Response, ServerCore,
    ServerOutput, Token, TransportError,
};

use super::store::{ServerInput, Store, StoreError};

/// Stops the process: its state could not be written.
pub fn fail_stop(e: &StoreError) -> ! {
    tracing::error!("stopping: the durable state could not be written: {e}");
    eprintln!("mimi-sim node: stopping: the durable state could not be written: {e}");
    std::process::exit(1)
}

/// Hands one journalled input to a core again (outputs are dropped: they were carried
/// out before the crash, or the input was committed just before it).
pub fn replay<C: ServerCore>(core: &mut C, input: ServerInput) {
    match input {
        ServerInput::Request { now, id, request } => {
            core.on_request(now, id, request);
        }
        ServerInput::Response { now, token, result } => {
            core.on_response(now, token, result);
        }
        ServerInput::Client {
            now,
            client,
            message,
        } => {
            core.on_client(now, &client, message);
        }
        ServerInput::Ticks { nows } => {
            for now in nows {
                core.on_tick(now);
            }
        }
        ServerInput::Restart { now } => {
            core.on_restart(now);
        }
    }
}

/// A server core whose inputs are committed before its outputs leave.
pub struct JournaledServer<C> {
    core: C,
    store: Rc<RefCell<Store>>,
    silent_ticks: Vec<Millis>,
}

impl<C: ServerCore> JournaledServer<C> {
    pub fn new(core: C, store: Rc<RefCell<Store>>) -> Self {
        JournaledServer {
            core,
            store,
            silent_ticks: Vec::new(),
        }
    }

    fn commit(
        &mut self,
        input: Option<ServerInput>,
        outputs: Vec<ServerOutput>,
    ) -> Vec<ServerOutput> {
        let mut inputs = Vec::with_capacity(2);
        if !self.silent_ticks.is_empty() {
            inputs.push(ServerInput::Ticks {
                nows: std::mem::take(&mut self.silent_ticks),
            });
        }
        inputs.extend(input);
        let to_clients: Vec<(&ClientUri, &ProviderToClient)> = outputs
            .iter()
            .filter_map(|o| match o {
                ServerOutput::ToClient { client, message } => Some((client, message)),
                _ => None,
            })
            .collect();
        if let Err(e) = self.store.borrow_mut().commit_server(&inputs, &to_clients) {
            fail_stop(&e);
        }
        outputs
    }
}

impl<C: ServerCore> ServerCore for JournaledServer<C> {
    fn domain(&self) -> &Domain {
        self.core.domain()
    }

    fn on_request(&mut self, now: Millis, id: RequestId, request: Request) -> Vec<ServerOutput> {
        let out = self.core.on_request(now, id, request.clone());
        self.commit(Some(ServerInput::Request { now, id, request }), out)
    }

    fn on_response(
        &mut self,
        now: Millis,
        token: Token,
        result: Result<Response, TransportError>,
    ) -> Vec<ServerOutput> {
        let out = self.core.on_response(now, token, result.clone());
        self.commit(Some(ServerInput::Response { now, token, result }), out)
    }

    fn on_client(
        &mut self,
        now: Millis,
        client: &ClientUri,
        message: ClientToProvider,
    ) -> Vec<ServerOutput> {
        let out = self.core.on_client(now, client, message.clone());
        let input = ServerInput::Client {
            now,
            client: client.clone(),
            message,
        };
        self.commit(Some(input), out)
    }

    fn on_tick(&mut self, now: Millis) -> Vec<ServerOutput> {
        let out = self.core.on_tick(now);
        self.silent_ticks.push(now);
        if out.is_empty() {
            return out;
        }
        self.commit(None, out)
    }

    fn on_restart(&mut self, now: Millis) -> Vec<ServerOutput> {
        let out = self.core.on_restart(now);
        self.commit(Some(ServerInput::Restart { now }), out)
    }
}
