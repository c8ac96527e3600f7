//! The write-ahead discipline of a node: every input a core took is committed to the
//! [`Store`] **before** its outputs are carried out, so nothing a peer or a client was
//! told (an answer, a `/notify`, a delivery) is ever forgotten by a restart.
//!
//! The server core runs inside the host adapter wrapped in a [`JournaledServer`]: the
//! adapter ([`crate::world::net`], the same code as in the simulator) calls the wrapper, the
//! wrapper calls the core, commits the input, the core's state after it (its tables,
//! [`super::server_tables`], which then cover the input: its journal row is deleted in
//! the same transaction) and the deliveries to local clients it produced, and only then
//! returns the outputs to the adapter, which sends the answer. A core that cannot be
//! snapshotted (a malicious provider's, see [`nodes::server::snapshot`]) is journalled
//! instead: its inputs stay in `server_inputs` and a restart replays them all.
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

use nodes::server::{Server, ServerSnapshot, SnapshotError};

use super::observe::Observed;
use super::store::{self, digest, ServerInput, Store, StoreError};

/// A server core whose state can be taken as a [`ServerSnapshot`].
pub trait Snapshots {
    fn snapshot_state(&self) -> Result<ServerSnapshot, SnapshotError>;
}

impl Snapshots for Server {
    fn snapshot_state(&self) -> Result<ServerSnapshot, SnapshotError> {
        Server::snapshot_state(self)
    }
}

impl Snapshots for Observed {
    fn snapshot_state(&self) -> Result<ServerSnapshot, SnapshotError> {
        self.core().snapshot_state()
    }
}

/// Most silent ticks (a timer of the core's `poll_timeout` fired and nothing came of it,
/// e.g. a handoff retry whose condition does not hold yet) kept in memory before they are
/// committed anyway.
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

/// Replays the server core's journal rows after row `covers` into `core`, checking every
/// row's outputs; returns how many it replayed.
pub fn replay_after<C: ServerCore>(
    store: &Store,
    core: &mut C,
    covers: i64,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for row in store
        .server_inputs()?
        .into_iter()
        .filter(|r| r.seq > covers)
    {
        n += 1;
        let outputs = replay(core, row.input);
        if digest(&outputs) != row.outputs {
            return Err(store.diverged("server_inputs", row.seq));
        }
    }
    Ok(n)
}

/// Replays the server core's whole journal into `core` (see [`replay_after`]).
pub fn replay_all<C: ServerCore>(store: &Store, core: &mut C) -> Result<(), StoreError> {
    replay_after(store, core, 0).map(|_| ())
}

/// A server core whose inputs are committed before its outputs leave.
pub struct JournaledServer<C> {
    core: C,
    store: Rc<RefCell<Store>>,
    silent_ticks: Vec<Millis>,
    /// Whether the core's state goes into the tables (no longer once a snapshot was
    /// refused for good: a malicious provider).
    snapshots: bool,
}

impl<C: ServerCore + Snapshots> JournaledServer<C> {
    pub fn new(core: C, store: Rc<RefCell<Store>>) -> Self {
        JournaledServer {
            core,
            store,
            silent_ticks: Vec::new(),
            snapshots: true,
        }
    }

    /// The core's state to commit with the input, if it can be taken.
    fn snapshot(&mut self) -> Option<ServerSnapshot> {
        if !self.snapshots {
            return None;
        }
        match self.core.snapshot_state() {
            Ok(s) => Some(s),
            Err(e @ SnapshotError::Adversary { .. }) => {
                tracing::warn!(
                    "{e}: this node journals every server input instead (a restart replays them)"
                );
                self.snapshots = false;
                None
            }
            Err(e) => {
                // The journal row stays until a later snapshot covers it.
                tracing::warn!("the server core's state is journalled, not snapshotted: {e}");
                None
            }
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
        let snapshot = self.snapshot();
        let committed =
            self.store
                .borrow_mut()
                .commit_server_state(&inputs, &to_clients, snapshot.as_ref());
        if let Err(e) = committed {
            fail_stop(&e);
        }
        outputs
    }
}

impl<C: ServerCore + Snapshots> ServerCore for JournaledServer<C> {
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

    fn poll_timeout(&self) -> Option<Millis> {
        self.core.poll_timeout()
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
    use nodes::adversary::Adversary;
    use nodes::client::core::{Client, Command};
    use nodes::hub::{Enforcement, EnforcementConfig, Hub};
    use nodes::ids::{RoomUri, UserUri};
    use nodes::io::ClientOutput;
    use nodes::server::Server;

    /// A server core with one local client that published KeyPackages and created a
    /// room, every input committed (a malicious provider's, with `adversary`: only
    /// journalled), its events taken as a node takes them; returns the core, its client
    /// and the store.
    fn journalled_world(
        name: &str,
        adversary: Option<Adversary>,
    ) -> (
        JournaledServer<Observed>,
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
            configuration: "none".into(),
        };
        let store = Rc::new(RefCell::new(Store::open(&dir, &identity).unwrap()));
        let config = EnforcementConfig::new(Enforcement::Full);
        let server = Server::new(a.clone(), 7, config.clone()).with_adversary(adversary);
        let observed = Observed::new(server, crate::testbed::observe::Sink::default());
        let mut core = JournaledServer::new(observed, store.clone());
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
            to_core.extend(alice.on_tick(now + 60));
            now += 100;
        }
        (core, alice, store, uri)
    }

    /// The same next inputs give the same outputs (a restart, a request for the room).
    fn answers_alike(core: &mut JournaledServer<Observed>, rebuilt: &mut Server) {
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
    }

    #[test]
    fn the_tables_restore_a_core_that_answers_as_the_original_and_the_journal_stays_empty() {
        let (mut core, _alice, store, _) = journalled_world("tables", None);
        let config = EnforcementConfig::new(Enforcement::Full);
        let mut rebuilt = Server::new(Domain::new("a.example").unwrap(), 7, config);
        let (covers, snapshot) = store.borrow_mut().server_snapshot().unwrap().unwrap();
        assert!(covers >= 3, "{covers}");
        rebuilt.restore(snapshot).unwrap();
        assert_eq!(
            replay_after(&store.borrow(), &mut rebuilt, covers).unwrap(),
            0
        );
        let s = store.borrow();
        assert_eq!(s.server_inputs().unwrap().len(), 0);
        assert_eq!(s.rows_in("hub_rooms").unwrap(), 1);
        assert!(s.rows_in("public_group").unwrap() > 0);
        drop(s);
        answers_alike(&mut core, &mut rebuilt);
    }

    #[test]
    fn a_malicious_providers_core_is_journalled_and_replayed() {
        let adversary = Some(Adversary::DropFanout);
        let (mut core, _alice, store, _) = journalled_world("replay", adversary);
        assert!(store.borrow_mut().server_snapshot().unwrap().is_none());
        let config = EnforcementConfig::new(Enforcement::Full);
        let mut rebuilt =
            Server::new(Domain::new("a.example").unwrap(), 7, config).with_adversary(adversary);
        replay_all(&store.borrow(), &mut rebuilt).unwrap();
        answers_alike(&mut core, &mut rebuilt);
        assert!(store.borrow().server_inputs().unwrap().len() >= 3);
    }

    #[test]
    fn a_replay_with_other_outputs_is_refused_as_divergence() {
        let adversary = Some(Adversary::DropFanout);
        let (_core, _alice, store, _) = journalled_world("diverged", adversary);
        store
            .borrow()
            .execute_for_tests("UPDATE server_inputs SET outputs = zeroblob(32) WHERE seq = 2");
        let config = EnforcementConfig::new(Enforcement::Full);
        let mut rebuilt =
            Server::new(Domain::new("a.example").unwrap(), 7, config).with_adversary(adversary);
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
