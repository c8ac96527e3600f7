//! The write-ahead discipline of a node: every input a core took is committed to the
//! [`Store`] **before** its outputs are carried out, so nothing a peer or a client was
//! told (an answer, a `/notify`, a delivery) is ever forgotten by a restart.
//!
//! The server core runs inside the host adapter wrapped in a [`JournaledServer`]: the
//! adapter ([`crate::world::net`], the same code as in the simulator) calls the wrapper, the
//! wrapper calls the core, commits the input and the deliveries to local clients it
//! produced, and only then returns the outputs to the adapter, which sends the answer.
//! The simulator has no wrapper (its "disk" is the core kept across a restart,
//! [`crate::world::net::spawn_durable_host`]).
//!
//! Ticks that produce no output change nothing anybody has seen; they are kept in memory
//! (at most [`MAX_SILENT_TICKS`]) and committed in the same transaction as the next input
//! that does. A crash loses only
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

use super::store::{self, digest, ServerInput, Store, StoreError};

/// Most silent ticks kept in memory before they are committed anyway (about 17 minutes
/// of an idle core at one tick per 100 ms).
pub const MAX_SILENT_TICKS: usize = 10_000;

/// Stops the process: its state could not be written.
pub fn fail_stop(e: &StoreError) -> ! {
    tracing::error!("stopping: the durable state could not be written: {e}");
    eprintln!("mimi-sim node: stopping: the durable state could not be written: {e}");
    std::process::exit(1)
}

/// Hands one journalled input to a core again and returns its outputs (for the
/// [`digest`] check only: they were carried out before the crash, or the input was
/// committed just before it and they never left).
pub fn replay<C: ServerCore>(core: &mut C, input: ServerInput) -> Vec<ServerOutput> {
    match input {
        ServerInput::Request { now, id, request } => core.on_request(now, id, request),
        ServerInput::Response { now, token, result } => core.on_response(now, token, result),
        ServerInput::Client {
            now,
            client,
            message,
        } => core.on_client(now, &client, message),
        ServerInput::Ticks { nows } => nows.into_iter().flat_map(|now| core.on_tick(now)).collect(),
        ServerInput::Restart { now } => core.on_restart(now),
    }
}

/// Replays the server core's journal into `core`, checking every row's outputs.
pub fn replay_all<C: ServerCore>(store: &Store, core: &mut C) -> Result<(), StoreError> {
    for row in store.server_inputs()? {
        let outputs = replay(core, row.input);
        if digest(&outputs) != row.outputs {
            return Err(store.diverged("server_inputs", row.seq));
        }
    }
    Ok(())
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
        let ticks = std::mem::take(&mut self.silent_ticks);
        let inputs = store::rows(ticks, |nows| ServerInput::Ticks { nows }, input, &outputs);
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
        if out.is_empty() && self.silent_ticks.len() < MAX_SILENT_TICKS {
            return out;
        }
        self.commit(None, out)
    }

    fn on_restart(&mut self, now: Millis) -> Vec<ServerOutput> {
        let out = self.core.on_restart(now);
        self.commit(Some(ServerInput::Restart { now }), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Preset;
    use crate::testbed::store::NodeIdentity;
    use nodes::client::core::{Client, Command};
    use nodes::hub::{Enforcement, EnforcementConfig, Hub};
    use nodes::ids::{RoomUri, UserUri};
    use nodes::io::ClientOutput;
    use nodes::server::Server;

    /// A server core with one local client that published KeyPackages and created a
    /// room, every input journalled; returns the core, its client and the store.
    fn journalled_world(
        name: &str,
    ) -> (
        JournaledServer<Server>,
        Client,
        Rc<RefCell<Store>>,
        ClientUri,
    ) {
        let dir = std::env::temp_dir().join(format!("mimi-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let a = Domain::new("a.example").unwrap();
        let identity = NodeIdentity {
            provider: a.clone(),
            seed: 7,
            enforcement: "full".into(),
        };
        let store = Rc::new(RefCell::new(Store::open(&dir, &identity).unwrap()));
        let config = EnforcementConfig::new(Enforcement::Full);
        let mut core =
            JournaledServer::new(Server::new(a.clone(), 7, config.clone()), store.clone());
        let uri = UserUri::new(&a, "alice").unwrap().client("1").unwrap();
        let mut alice = Client::new(7, uri.clone());
        core.on_restart(1_000);
        let ClientOutput::ToProvider(kp) = alice.publish_key_packages(2);
        core.on_client(1_001, &uri, kp);
        let cmd = Command::CreateRoom {
            room: RoomUri::new(&a, "lobby").unwrap(),
            preset: Preset::default().role_preset(),
            hub_sender: Hub::new(a, 7, config).external_sender(),
        };
        let mut to_core: Vec<ClientOutput> = alice.command(1_002, cmd).unwrap();
        let mut now = 1_003;
        // Bounded: the creation is one request and its reply.
        for _ in 0..8 {
            let mut to_alice = Vec::new();
            for ClientOutput::ToProvider(m) in to_core.drain(..) {
                for o in core.on_client(now, &uri, m) {
                    if let ServerOutput::ToClient { message, .. } = o {
                        to_alice.push(message);
                    }
                }
            }
            for m in to_alice {
                to_core.extend(alice.on_message(now, m));
            }
            core.on_tick(now + 50);
            now += 100;
        }
        (core, alice, store, uri)
    }

    #[test]
    fn replaying_the_journal_rebuilds_a_core_that_answers_as_the_original() {
        let (mut core, _alice, store, _) = journalled_world("replay");
        let config = EnforcementConfig::new(Enforcement::Full);
        let mut rebuilt = Server::new(Domain::new("a.example").unwrap(), 7, config);
        replay_all(&store.borrow(), &mut rebuilt).unwrap();
        // The same next inputs give the same outputs (a restart, a request for the room).
        assert_eq!(core.on_restart(9_000), rebuilt.on_restart(9_000));
        let request = Request {
            from: Domain::new("b.example").unwrap(),
            to: Domain::new("a.example").unwrap(),
            endpoint: nodes::endpoint::Endpoint::GroupInfo(
                RoomUri::new(&Domain::new("a.example").unwrap(), "lobby").unwrap(),
            ),
            body: vec![1, 2, 3],
        };
        assert_eq!(
            core.on_request(9_001, 0, request.clone()),
            rebuilt.on_request(9_001, 0, request)
        );
        assert!(store.borrow().server_inputs().unwrap().len() >= 3);
    }

    #[test]
    fn a_replay_with_other_outputs_is_refused_as_divergence() {
        let (_core, _alice, store, _) = journalled_world("diverged");
        store
            .borrow()
            .execute_for_tests("UPDATE server_inputs SET outputs = zeroblob(32) WHERE seq = 2");
        let config = EnforcementConfig::new(Enforcement::Full);
        let mut rebuilt = Server::new(Domain::new("a.example").unwrap(), 7, config);
        let e = replay_all(&store.borrow(), &mut rebuilt).err().unwrap();
        assert!(
            matches!(
                e,
                StoreError::Diverged {
                    seq: 2,
                    table: "server_inputs",
                    ..
                }
            ),
            "{e}"
        );
        assert!(!e.is_bad_input() && e.to_string().contains("not deterministic"));
    }
}
