//! `mimi-sim node`: one provider as a real process. The same server core as in the
//! simulator (`nodes::server::Server`: hub and follower roles) behind the same HTTP host
//! adapter ([`crate::world::net::run_host`]), on mutual TLS over loopback TCP
//! ([`super::tls::TlsTransport`]); its clients (`nodes::client::core::Client`) live in
//! the process and are driven through the control API ([`super::control`]).
//!
//! Everything runs on one thread (a current-thread tokio runtime and a `LocalSet`), as
//! in the simulator: the cores are never shared between threads. The cores' time is the
//! wall clock scaled by `--time-scale` ([`CoreClock`]): with X = 0.5 every core timer
//! (the clients' resends and deadlines, the hub's retries) runs twice as fast, as the
//! runner runs the scenario's times.
//!
//! Every event (the host's inputs and outputs, the clients' events, the steps issued) is
//! one JSON line in `<state>/events.jsonl`, in the simulator's trace format with `t` = the
//! wall clock in ms since the UNIX epoch.
//!
//! State is durable ([`super::store`], [`super::journal`]): after every input of the server
//! core its state (room logs, public groups, fan-out queues, follower state:
//! [`super::server_tables`]) is committed to `<state>/state.db`, and each client lives in
//! its own SQLite file under `<state>/mls/` (openmls' tables and the client's snapshot),
//! committed after the journal row of its input and before what the input caused leaves
//! the process. A node started on a directory holding state restores its server core
//! from those tables and its clients from their files ([`restore`]) and goes on; the
//! clients' journal keeps only the last commit's rows ([`super::mls_store`] has the order
//! of writes, what a `kill -9` at each point means and what a restart checks).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use nodes::client::core::{Client, ClientEvent, Command};
use nodes::client::TickGate;
use nodes::hub::{EnforcementConfig, Hub};
use nodes::ids::{ClientUri, Domain};
use nodes::io::{ClientOutput, ClientToProvider, Millis, ProviderToClient};
use nodes::server::Server;
use serde_json::Value;
use tokio::time::MissedTickBehavior;

use super::journal::{self, fail_stop, JournaledServer, MAX_SILENT_TICKS};
use super::mls_store::{record_digest, ClientRecord, MlsDb, MlsStates, Stored};
use super::observe;
use super::peers::PeersFile;
use super::store::{
    self, digest, ClientInput, Mark, NodeIdentity, Row, StepInput, Store, StoreError, Taken,
};
use super::tls::{wall_ms, TlsConfig, TlsTransport};
use crate::observe::record::{Recorder, What};
use crate::scenario::{EnforcementLevel, Op};
use crate::world::net::{self, HostConfig, HostHandle, Peer, Transport};
use crate::world::run::op_command;
use mimi_reports::records::trace::Restored as RestoredLine;

/// Events kept in memory for the control API's `/events` (older ones are only in the
/// JSONL file). A reader asking for a dropped line gets told so.
pub const MAX_EVENTS_IN_MEMORY: usize = 100_000;

/// What `mimi-sim node` is told.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub provider: Domain,
    /// The MIMI server's address (loopback; port 0 = any free port).
    pub listen: SocketAddr,
    /// The control API's address (loopback; port 0 = any free port).
    pub control: SocketAddr,
    pub peers: PathBuf,
    pub state: PathBuf,
    /// Every key, nonce and message ID derives from it; all nodes of a testbed share it.
    pub seed: u64,
    pub enforcement: EnforcementLevel,
    /// `--scenario`: the server and clients as that scenario configures them.
    pub setup: Option<super::setup::Setup>,
    /// `--time-scale`: wall ms per core ms ([`CoreClock`]).
    pub time_scale: f64,
}

/// The file in the `--state` directory that holds the origin of the [`CoreClock`].
pub const TIME_ORIGIN_FILE: &str = "time-origin";

/// The time the cores see: `origin + (wall - origin) / scale`, wall = ms since the UNIX
/// epoch and `scale` = `--time-scale` (wall ms per core ms). At scale 1 it is the wall
/// clock. The origin is the wall clock of the state directory's first start
/// ([`TIME_ORIGIN_FILE`]), so the clock goes on across restarts (with the same
/// `--time-scale`) and stays near the wall clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoreClock {
    origin: Millis,
    scale: f64,
}

impl CoreClock {
    /// A clock around `origin`; `scale` must be positive and finite.
    pub fn new(origin: Millis, scale: f64) -> CoreClock {
        assert!(scale.is_finite() && scale > 0.0, "time scale {scale}");
        CoreClock { origin, scale }
    }

    /// The clock of the state directory `state` (its origin read, or written at the first
    /// start).
    pub fn of_state(state: &std::path::Path, scale: f64) -> Result<CoreClock, String> {
        let path = state.join(TIME_ORIGIN_FILE);
        let origin = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| format!("{}: not a time in ms: {text:?}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let now = wall_ms();
                let mut f = std::fs::File::create(&path)
                    .map_err(|e| format!("could not write {}: {e}", path.display()))?;
                writeln!(f, "{now}")
                    .and_then(|()| f.sync_all())
                    .map_err(|e| format!("could not write {}: {e}", path.display()))?;
                now
            }
            Err(e) => return Err(format!("could not read {}: {e}", path.display())),
        };
        Ok(CoreClock::new(origin, scale))
    }

    /// The cores' time now.
    pub fn now(&self) -> Millis {
        self.core_of(wall_ms())
    }

    /// The cores' time at wall time `wall`.
    pub fn core_of(&self, wall: Millis) -> Millis {
        if self.scale == 1.0 || wall <= self.origin {
            return wall;
        }
        self.origin + ((wall - self.origin) as f64 / self.scale).round() as Millis
    }

    /// The wall time at the cores' time `core` (the inverse of [`Self::core_of`]).
    pub fn wall_of(&self, core: Millis) -> Millis {
        if self.scale == 1.0 || core <= self.origin {
            return core;
        }
        self.origin + ((core - self.origin) as f64 * self.scale).round() as Millis
    }
}

/// A transport whose clock is a [`CoreClock`]: the host adapter hands the server core
/// its time from [`Transport::now_ms`].
pub struct ScaledTransport<T> {
    inner: T,
    clock: CoreClock,
}

impl<T: Transport> Transport for ScaledTransport<T> {
    type Listener = T::Listener;
    type Accepted = T::Accepted;
    type Stream = T::Stream;

    fn bind(&self) -> impl std::future::Future<Output = std::io::Result<Self::Listener>> {
        self.inner.bind()
    }
    fn accept(
        &self,
        listener: &Self::Listener,
    ) -> impl std::future::Future<Output = std::io::Result<Self::Accepted>> {
        self.inner.accept(listener)
    }
    fn establish(
        &self,
        accepted: Self::Accepted,
    ) -> impl std::future::Future<Output = Result<(Self::Stream, Peer), String>> {
        self.inner.establish(accepted)
    }
    fn connect(
        &self,
        to: &Domain,
    ) -> impl std::future::Future<Output = std::io::Result<Self::Stream>> {
        self.inner.connect(to)
    }
    fn now_ms(&self) -> Millis {
        self.clock.now()
    }
    fn until(&self, at: Millis) -> Duration {
        Duration::from_millis(self.clock.wall_of(at).saturating_sub(wall_ms()))
    }
}

/// Why a node stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The `--state` directory holds state the node cannot use (exit code 2).
    #[error(transparent)]
    State(#[from] StoreError),
    #[error("{0}")]
    Failed(String),
}

impl From<String> for NodeError {
    fn from(s: String) -> Self {
        NodeError::Failed(s)
    }
}

/// The process's state shared by the client driver and the control API (one thread).
pub struct Node {
    pub domain: Domain,
    pub seed: u64,
    pub config: EnforcementConfig,
    pub handle: HostHandle,
    pub peers_path: PathBuf,
    pub clients: BTreeMap<ClientUri, Client<MlsDb>>,
    /// The cores' clock.
    pub clock: CoreClock,
    /// The clients' MLS databases.
    mls: MlsStates,
    pub setup: Option<super::setup::Setup>,
    rec: Recorder,
    /// Lines kept for `/events`: `events[i]` is line `first_event + i`.
    events: std::collections::VecDeque<String>,
    first_event: u64,
    journal: std::fs::File,
    senders: BTreeMap<Domain, openmls::prelude::ExternalSender>,
    /// What the wrapped server core did (journalled on the next drive; see [`observe`]).
    pub sink: observe::Sink,
    /// Offline clients (control API `/online`): what they sent and what came for them.
    /// Rebuilt by replay: the outbox from the journalled steps, the mailbox from the
    /// [`ClientInput::Held`] rows.
    pub offline: BTreeMap<ClientUri, (Vec<ClientToProvider>, Vec<ProviderToClient>)>,
    store: Rc<RefCell<Store>>,
    /// Client ticks that produced nothing, committed with the next client input.
    silent_ticks: Vec<Millis>,
    /// When the clients are due a tick (one gate for all: a tick ticks every online
    /// client, which a journal row replays as one).
    gate: TickGate,
}

impl Node {
    /// Records one event (JSONL file and the in-memory window).
    pub fn event(&mut self, node: &str, what: What) {
        self.rec.event(wall_ms(), node, what);
        self.flush_lines();
    }

    fn flush_lines(&mut self) {
        let lines = self.rec.drain_lines();
        self.append_lines(lines);
    }

    fn append_lines(&mut self, lines: Vec<String>) {
        for line in lines {
            if let Err(e) = writeln!(self.journal, "{line}") {
                tracing::error!("could not append to the event journal: {e}");
            }
            self.events.push_back(line);
            if self.events.len() > MAX_EVENTS_IN_MEMORY {
                self.events.pop_front();
                self.first_event += 1;
            }
        }
    }

    /// Lines from number `since` on (0-based) and the number of the next line; `None`
    /// when `since` is older than the in-memory window.
    pub fn events_since(&self, since: u64) -> Option<(Vec<&str>, u64)> {
        let next = self.first_event + self.events.len() as u64;
        if since < self.first_event {
            return None;
        }
        let skip = usize::try_from(since - self.first_event).unwrap_or(usize::MAX);
        Some((
            self.events.iter().skip(skip).map(String::as_str).collect(),
            next,
        ))
    }

    /// Sends a client's outputs to this provider's core (after [`Self::commit`]); an
    /// offline client's are in its outbox already ([`Self::commit`] put them there).
    pub fn send(&mut self, c: &ClientUri, outs: Vec<ClientOutput>) {
        if self.offline.contains_key(c) {
            return;
        }
        for ClientOutput::ToProvider(m) in outs {
            self.handle.send_from_client(c.clone(), m);
        }
    }

    /// Takes a client offline (it neither sends nor receives; its provider keeps its
    /// mail) or back online (its outbox goes out, its mail comes in). Journalled as a
    /// [`ClientInput::Online`].
    pub fn set_online(&mut self, c: &ClientUri, online: bool) {
        if online != self.offline.contains_key(c) || !self.clients.contains_key(c) {
            return;
        }
        let now = self.clock.now();
        let input = ClientInput::Online {
            now,
            client: c.clone(),
            online,
        };
        let out = self.apply_online(now, c, online);
        let events = self.take_events(c);
        let sent = [(c.clone(), out)];
        self.commit(Some(input), None, &sent, vec![(c.clone(), events)]);
        let [(_, out)] = sent;
        self.send(c, out);
    }

    /// The state change of a [`ClientInput::Online`] (live and on replay): going online
    /// hands the client its held mail; returns the outbox and what the mail made it send.
    fn apply_online(&mut self, now: Millis, c: &ClientUri, online: bool) -> Vec<ClientOutput> {
        if !online {
            self.offline.entry(c.clone()).or_default();
            return Vec::new();
        }
        let Some((outbox, mailbox)) = self.offline.remove(c) else {
            return Vec::new();
        };
        let mut out: Vec<ClientOutput> = outbox.into_iter().map(ClientOutput::ToProvider).collect();
        if let Some(client) = self.clients.get_mut(c) {
            for m in mailbox {
                out.extend(client.on_message(now, m));
            }
        }
        out
    }

    /// Takes the events a client produced since the last call.
    pub fn take_events(&mut self, c: &ClientUri) -> Vec<ClientEvent> {
        self.clients
            .get_mut(c)
            .map(Client::<MlsDb>::take_events)
            .unwrap_or_default()
    }

    /// Commits a client input (after the silent ticks before it), the mailbox row it took,
    /// the messages the clients sent and the journal lines of their `events` (with a
    /// `client-view` line after each join or new epoch); then appends those lines to
    /// `events.jsonl`. An offline client's messages wait in its outbox, not in
    /// `from_clients` (replay rebuilds the outbox). Stops the process if the state cannot
    /// be written.
    pub fn commit(
        &mut self,
        input: Option<ClientInput>,
        took: Option<Taken>,
        sent: &[(ClientUri, Vec<ClientOutput>)],
        events: Vec<(ClientUri, Vec<ClientEvent>)>,
    ) {
        if input.is_some() {
            self.gate.fed();
        }
        // Lines recorded before belong to earlier inputs (or none): out first.
        self.flush_lines();
        for (c, es) in events {
            for e in es {
                let event = serde_json::to_value(&e).unwrap_or(Value::Null);
                self.rec
                    .event(wall_ms(), c.as_str(), What::Client { event });
                let view = observe::view_changed(&e).and_then(|room| {
                    let v = self.clients.get(&c)?.room_view(room)?;
                    Some(observe::view_fields(room, &v))
                });
                if let Some(v) = view {
                    self.rec.event(wall_ms(), c.as_str(), What::ClientView(v));
                }
            }
        }
        let lines = self.rec.drain_lines();
        let outputs: Vec<&ClientOutput> = sent.iter().flat_map(|(_, outs)| outs).collect();
        let ticks = std::mem::take(&mut self.silent_ticks);
        let inputs = store::rows(ticks, |nows| ClientInput::Ticks { nows }, input, &outputs);
        let messages: Vec<(&ClientUri, &ClientToProvider)> = sent
            .iter()
            .filter(|(c, _)| !self.offline.contains_key(c))
            .flat_map(|(c, outs)| outs.iter().map(move |ClientOutput::ToProvider(m)| (c, m)))
            .collect();
        // An offline client's messages wait in its outbox, which is part of its record.
        for (c, outs) in sent {
            if let Some((outbox, _)) = self.offline.get_mut(c) {
                outbox.extend(outs.iter().map(|ClientOutput::ToProvider(m)| m.clone()));
            }
        }
        // The order of writes (see `mls_store`): the journal rows with the marks of the
        // clients the input changed, then their files; the caller carries out the outputs
        // after this returns.
        let changed = self.changed_clients();
        let marks: Vec<(&ClientUri, [u8; 32])> = changed
            .iter()
            .map(|(c, record)| (c, record_digest(record)))
            .collect();
        let seq = match self
            .store
            .borrow_mut()
            .commit_client(&inputs, took, &messages, &lines, &marks)
        {
            Ok(seq) => seq,
            Err(e) => fail_stop(&e),
        };
        if let Err(e) = self.mls.commit(seq, &changed) {
            fail_stop(&e);
        }
        self.append_lines(lines);
    }

    /// The record of `c` as it is now (its snapshot and offline mailboxes), encoded.
    fn record(&self, c: &ClientUri, client: &Client<MlsDb>) -> Vec<u8> {
        ClientRecord {
            client: client.snapshot(),
            offline: self.offline.get(c).cloned(),
        }
        .encode()
    }

    /// The clients whose state differs from their file, with their records.
    fn changed_clients(&self) -> Vec<(ClientUri, Vec<u8>)> {
        self.clients
            .iter()
            .map(|(c, client)| (c, self.record(c, client)))
            .filter(|(c, record)| self.mls.changed(c, record))
            .map(|(c, record)| (c.clone(), record))
            .collect()
    }

    /// A new client that publishes `key_packages` KeyPackages (control API and restore);
    /// a client of the `--scenario` is configured and publishes as in the simulator. Its
    /// MLS state goes to a fresh database (stops the process if it cannot be created).
    pub fn create_client(&mut self, uri: &ClientUri, key_packages: usize) -> Vec<ClientOutput> {
        let (client, kps) = match &self.setup {
            Some(s) if s.resolved.clients.contains(uri) => s.client(uri, self.seed),
            _ => (Client::new(self.seed, uri.clone()), key_packages),
        };
        let db = match self.mls.create(uri) {
            Ok(db) => db,
            Err(e) => fail_stop(&e),
        };
        let mut client = client.into_storage(db);
        let out = client.publish_key_packages(kps);
        self.clients.insert(uri.clone(), client);
        vec![out]
    }

    /// The client command of a control API step; `None` if it names a user not in
    /// `users`, an unknown provider, or its op does not parse.
    pub fn step_command(&mut self, step: &StepInput) -> Option<Command> {
        let op: Op = serde_json::from_str(&step.op).ok()?;
        let senders: BTreeMap<Domain, openmls::prelude::ExternalSender> = step
            .senders
            .iter()
            .map(|d| (d.clone(), self.sender(d)))
            .collect();
        let hub_sender = self.sender(&step.hub);
        op_command(
            &op,
            &step.client,
            &step.room,
            &hub_sender,
            &step.users,
            &senders,
            step.preset.role_preset(),
        )
    }

    /// The hub external sender of provider `d` (it derives from the domain and the seed,
    /// so every node computes the same).
    pub fn sender(&mut self, d: &Domain) -> openmls::prelude::ExternalSender {
        let (seed, config) = (self.seed, self.config.clone());
        self.senders
            .entry(d.clone())
            .or_insert_with(|| Hub::new(d.clone(), seed, config).external_sender())
            .clone()
    }

    /// Hands the core's messages to the clients, ticks them, journals the host's events
    /// and what the observed core did.
    fn drive(&mut self, trace: &net::Trace, tick: bool) {
        let domain = self.domain.clone();
        for (t, what) in self.sink.take() {
            self.rec.event(t, domain.as_str(), what);
        }
        let now = self.clock.now();
        for (c, m) in self.handle.drain_to_clients() {
            if let Some(v) = observe::deliver_fields(&c, &m) {
                self.event(domain.as_str(), v);
            }
            // The oldest row of the mailbox is this message (same order).
            self.deliver(now, c, m, Taken::Oldest);
        }
        if tick {
            self.tick(now);
        }
        for mut e in trace.take() {
            // Event lines carry the wall clock (the runner merges them with its own).
            e.at = self.clock.wall_of(e.at);
            self.rec.net_event(0, &e);
        }
        self.flush_lines();
    }

    /// Hands a mailbox row to its client (an offline client's is held: a
    /// [`ClientInput::Held`]).
    fn deliver(&mut self, now: Millis, c: ClientUri, m: ProviderToClient, taken: Taken) {
        if let Some((_, mailbox)) = self.offline.get_mut(&c) {
            mailbox.push(m.clone());
            let input = ClientInput::Held {
                client: c,
                message: m,
            };
            self.commit(Some(input), Some(taken), &[], Vec::new());
            return;
        }
        let Some(client) = self.clients.get_mut(&c) else {
            tracing::warn!(client = %c, "message for a client this node does not have");
            self.commit(None, Some(taken), &[], Vec::new());
            return;
        };
        let out = client.on_message(now, m.clone());
        let events = self.take_events(&c);
        let input = ClientInput::Message {
            now,
            client: c.clone(),
            message: m,
        };
        let sent = [(c.clone(), out)];
        self.commit(Some(input), Some(taken), &sent, vec![(c.clone(), events)]);
        let [(_, out)] = sent;
        self.send(&c, out);
    }

    /// The clients a tick reaches (online ones, URI order).
    fn ticked(&self) -> Vec<ClientUri> {
        self.clients
            .keys()
            .filter(|c| !self.offline.contains_key(*c))
            .cloned()
            .collect()
    }

    /// When the clients next need a tick (each client says when, `Client::next_wakeup`):
    /// the earliest timer of an online client due after the last tick, or any due timer
    /// once an input reached a client since.
    pub fn next_timer(&self) -> Option<Millis> {
        self.ticked()
            .iter()
            .filter_map(|c| {
                self.gate
                    .next(self.clients.get(c).and_then(Client::next_wakeup))
            })
            .min()
    }

    /// Ticks every online client (a client with nothing due does nothing); commits only
    /// if a tick produced something.
    fn tick(&mut self, now: Millis) {
        self.gate.ticked(now);
        let mut sent = Vec::new();
        let mut events = Vec::new();
        for c in self.ticked() {
            if let Some(client) = self.clients.get_mut(&c) {
                let out = client.on_tick(now);
                let e = client.take_events();
                if !out.is_empty() {
                    sent.push((c.clone(), out));
                }
                if !e.is_empty() {
                    events.push((c, e));
                }
            }
        }
        self.silent_ticks.push(now);
        if sent.is_empty() && events.is_empty() && self.silent_ticks.len() < MAX_SILENT_TICKS {
            return;
        }
        self.commit(None, None, &sent, events);
        for (c, out) in sent {
            self.send(&c, out);
        }
    }

    /// Restores the clients from their files (`stored`), checked against their journal
    /// marks, then replays the journal's client rows into each client whose file does
    /// not include them (a crash between the journal and the files, see `mls_store`),
    /// checks every client's record against its mark, commits the repaired files and
    /// deletes the journal rows before its last commit. Returns the clients restored from
    /// a file and the rows replayed.
    fn restore_clients(
        &mut self,
        stored: BTreeMap<ClientUri, Stored>,
        rows: Vec<Row<ClientInput>>,
    ) -> Result<(u64, u64), StoreError> {
        let marks = self.store.borrow().client_marks()?;
        let mut applied: BTreeMap<ClientUri, i64> = BTreeMap::new();
        for (c, s) in stored {
            let Some(mark) = marks.get(&c) else {
                return Err(StoreError::MlsDiverged {
                    path: s.path,
                    client: c.to_string(),
                    seq: s.applied,
                    what: "the journal has no mark of this client (the file is from another \
                           run)"
                        .into(),
                });
            };
            check_applied(&s.path, &c, s.applied, mark)?;
            let mut client =
                Client::restore(s.record.client, s.storage).map_err(|e| StoreError::MlsState {
                    path: s.path.clone(),
                    what: "restored",
                    reason: e.to_string(),
                })?;
            // A snapshot holds no conduct: the configuration sets it again.
            if let Some(setup) = &self.setup {
                setup.set_conduct(&mut client);
            }
            if let Some(offline) = s.record.offline {
                self.offline.insert(c.clone(), offline);
            }
            self.clients.insert(c.clone(), client);
            applied.insert(c, s.applied);
        }
        let restored = self.clients.len() as u64;
        // A client with a mark but no file: only one created by the last commit (its
        // creation is in the journal) may lack it.
        if let Some((c, mark)) = marks
            .iter()
            .find(|(c, m)| !applied.contains_key(*c) && m.prev != 0)
        {
            return Err(StoreError::MlsBehind {
                path: self.mls.path(c),
                client: c.to_string(),
                applied: 0,
                seq: mark.seq,
                prev: mark.prev,
            });
        }
        let (mut last, mut replayed) = (0, 0);
        for row in rows {
            let done = |c: &ClientUri| applied.get(c).is_some_and(|a| *a >= row.seq);
            let (outputs, skipped) = self.replay_client(row.input, &done);
            for client in self.clients.values_mut() {
                client.take_events();
            }
            // A row some client's file already includes gave only part of its outputs.
            if !skipped && digest(&outputs) != row.outputs {
                return Err(self.store.borrow().diverged("client_inputs", row.seq));
            }
            replayed += u64::from(!skipped);
            last = row.seq;
        }
        for (c, client) in &self.clients {
            let record = self.record(c, client);
            let Some(mark) = marks.get(c) else {
                return Err(StoreError::MlsDiverged {
                    path: self.mls.path(c),
                    client: c.to_string(),
                    seq: last,
                    what: "the journal rebuilt a client it has no mark of".into(),
                });
            };
            if record_digest(&record) != mark.record {
                return Err(StoreError::MlsDiverged {
                    path: self.mls.path(c),
                    client: c.to_string(),
                    seq: mark.seq,
                    what: "the client restored from its file (and the journal rows after \
                           it) is not the client the journal's mark recorded"
                        .into(),
                });
            }
        }
        let changed = self.changed_clients();
        self.mls.commit(last, &changed)?;
        if last > 0 {
            self.store.borrow_mut().forget_client_inputs_before(last)?;
        }
        Ok((restored, replayed))
    }

    /// Hands a journalled client input again to the clients it is for, except those
    /// `done` says already include it; returns the outputs and whether a client was
    /// left out.
    fn replay_client(
        &mut self,
        input: ClientInput,
        done: &dyn Fn(&ClientUri) -> bool,
    ) -> (Vec<ClientOutput>, bool) {
        let addressed = match &input {
            ClientInput::Create { client, .. }
            | ClientInput::Message { client, .. }
            | ClientInput::Online { client, .. }
            | ClientInput::Held { client, .. } => Some(client),
            ClientInput::Step { step, .. } => Some(&step.client),
            ClientInput::Ticks { .. } => None,
        };
        if addressed.is_some_and(done) {
            return (Vec::new(), true);
        }
        let out = match input {
            ClientInput::Create {
                client,
                key_packages,
            } => self.create_client(&client, key_packages),
            ClientInput::Step { now, step } => {
                let cmd = self.step_command(&step);
                let out = match (cmd, self.clients.get_mut(&step.client)) {
                    (Some(cmd), Some(client)) => client.command(now, cmd).unwrap_or_default(),
                    _ => Vec::new(),
                };
                // An offline client's messages wait in its outbox, as they did.
                if let Some((outbox, _)) = self.offline.get_mut(&step.client) {
                    outbox.extend(out.iter().map(|ClientOutput::ToProvider(m)| m.clone()));
                }
                out
            }
            ClientInput::Message {
                now,
                client,
                message,
            } => match self.clients.get_mut(&client) {
                Some(client) => client.on_message(now, message),
                None => Vec::new(),
            },
            ClientInput::Ticks { nows } => {
                let mut out = Vec::new();
                let mut skipped = false;
                for now in nows {
                    for c in self.ticked() {
                        if done(&c) {
                            skipped = true;
                            continue;
                        }
                        if let Some(client) = self.clients.get_mut(&c) {
                            out.extend(client.on_tick(now));
                        }
                    }
                }
                return (out, skipped);
            }
            ClientInput::Online {
                now,
                client,
                online,
            } => self.apply_online(now, &client, online),
            ClientInput::Held { client, message } => {
                self.offline.entry(client).or_default().1.push(message);
                Vec::new()
            }
        };
        (out, false)
    }
}

/// A client's file must include its journal mark's row, or the row of the change before
/// (a crash between the journal and the file); anything else cannot be repaired.
fn check_applied(
    path: &std::path::Path,
    client: &ClientUri,
    applied: i64,
    mark: &Mark,
) -> Result<(), StoreError> {
    if applied == mark.seq || applied == mark.prev {
        return Ok(());
    }
    Err(StoreError::MlsBehind {
        path: path.to_path_buf(),
        client: client.to_string(),
        applied,
        seq: mark.seq,
        prev: mark.prev,
    })
}

/// What a restart found in the state directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct Restored {
    /// Whether the server core was restored from its tables (else: replayed from the
    /// start of its journal, or new).
    pub server_tables: bool,
    /// Rooms and room-log entries in the tables.
    pub hub_rooms: u64,
    pub room_log: u64,
    /// Journal rows replayed into the server core after its tables' state.
    pub server_replayed: u64,
    pub server_inputs: u64,
    pub client_inputs: u64,
    pub to_clients: u64,
    pub from_clients: u64,
}

impl Restored {
    /// The `node-started` line's account, with the clients restored from their files
    /// and the journal rows replayed into them.
    fn line(&self, clients_from_files: u64, client_inputs_replayed: u64) -> RestoredLine {
        RestoredLine {
            server_tables: self.server_tables,
            hub_rooms: self.hub_rooms,
            room_log: self.room_log,
            server_replayed: self.server_replayed,
            server_inputs: self.server_inputs,
            client_inputs: self.client_inputs,
            clients_from_files,
            client_inputs_replayed,
            to_clients: self.to_clients,
            from_clients: self.from_clients,
        }
    }
}

/// Opens the state and rebuilds the server core from it.
pub fn restore(
    options: &NodeOptions,
    config: &EnforcementConfig,
) -> Result<(Store, Server, Restored), StoreError> {
    let identity = NodeIdentity {
        provider: options.provider.clone(),
        seed: options.seed,
        enforcement: options.enforcement.name().to_string(),
        configuration: options
            .setup
            .as_ref()
            .map_or_else(|| "none".to_string(), super::setup::Setup::fingerprint),
    };
    let mut store = Store::open(&options.state, &identity)?;
    let [server_inputs, client_inputs, to_clients, from_clients] = store.counts()?;
    let (hub_rooms, room_log) = (store.rows_in("hub_rooms")?, store.rows_in("room_log")?);
    // A `--scenario` node's core is configured as the simulator configures it (the same
    // file on every start, so replay rebuilds the same core).
    let mut core = match &options.setup {
        Some(s) => s.server(&options.provider, options.seed),
        None => Server::new(options.provider.clone(), options.seed, config.clone()),
    };
    // The core's state from its tables, then the journal rows they do not cover.
    let snapshot = store.server_snapshot()?;
    let server_tables = snapshot.is_some();
    let covers = match snapshot {
        Some((covers, snapshot)) => {
            core.restore(snapshot)
                .map_err(|e| store.server_tables_error(e))?;
            covers
        }
        None => 0,
    };
    let server_replayed = journal::replay_after(&store, &mut core, covers)?;
    // Events of the replayed inputs were journalled before the crash.
    core.take_events();
    Ok((
        store,
        core,
        Restored {
            server_tables,
            hub_rooms,
            room_log,
            server_replayed,
            server_inputs,
            client_inputs,
            to_clients,
            from_clients,
        },
    ))
}

/// Runs a node until it is killed (or cannot start: the error says why). `control` serves
/// the control API on its listener (the testbed's [`super::control::serve`]): handed in, so
/// that the control server depends on the node and not the other way round.
pub fn run<C, F>(options: NodeOptions, control: C) -> Result<(), NodeError>
where
    C: FnOnce(std::net::TcpListener, Rc<RefCell<Node>>) -> F,
    F: std::future::Future<Output = ()> + 'static,
{
    check_loopback(&options)?;
    let peers = PeersFile::load(&options.peers).map_err(|e| e.to_string())?;
    let tls = TlsConfig::load(&peers.certs_dir(), &options.provider).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&options.state).map_err(|e| {
        format!(
            "could not create the state directory {}: {e}",
            options.state.display()
        )
    })?;
    let started = std::time::Instant::now();
    let clock = CoreClock::of_state(&options.state, options.time_scale)?;
    let config = match &options.setup {
        Some(s) => s.config(),
        None => EnforcementConfig::new(options.enforcement.level()),
    };
    let (store, core, restored) = restore(&options, &config)?;
    let journal = open_event_journal(&options.state, &store)?;
    let bind = |what: &str, addr: SocketAddr| {
        std::net::TcpListener::bind(addr)
            .map_err(|e| format!("could not listen on {addr} ({what}): {e}"))
    };
    let mimi = bind("--listen", options.listen)?;
    let control_listener = bind("--control", options.control)?;
    let (mimi_addr, control_addr) = (
        mimi.local_addr().map_err(|e| e.to_string())?,
        control_listener.local_addr().map_err(|e| e.to_string())?,
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the tokio runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let store = Rc::new(RefCell::new(store));
        // Observed inside the journal: the journal's digests are of the server core's
        // outputs only; what the sink records is journalled as event lines, not state.
        let sink = observe::Sink::default();
        let core = JournaledServer::new(
            observe::Observed::resumed(core, sink.clone()),
            store.clone(),
        );
        let transport = Rc::new(ScaledTransport {
            inner: TlsTransport::new(mimi, options.peers.clone(), &tls),
            clock,
        });
        let trace = net::Trace::new();
        let (handle, host) = net::run_host(core, transport, HostConfig::default(), &trace);
        let (mls, stored) = MlsStates::open(&options.state)?;
        let node = Rc::new(RefCell::new(Node {
            domain: options.provider.clone(),
            seed: options.seed,
            config,
            handle: handle.clone(),
            peers_path: options.peers.clone(),
            clients: BTreeMap::new(),
            clock,
            mls,
            setup: options.setup.clone(),
            rec: Recorder::new(true),
            events: Default::default(),
            first_event: 0,
            journal,
            senders: BTreeMap::new(),
            sink,
            offline: BTreeMap::new(),
            store: store.clone(),
            silent_ticks: Vec::new(),
            gate: TickGate::default(),
        }));
        let (clients_restored, clients_replayed) = resume_clients(&node, &store, stored)?;
        let replay_ms = started.elapsed().as_millis();
        tracing::info!(
            provider = %options.provider, %mimi_addr, %control_addr,
            state = %options.state.display(),
            server_inputs = restored.server_inputs, client_inputs = restored.client_inputs,
            replay_ms, "node started"
        );
        node.borrow_mut().event(
            options.provider.as_str(),
            What::NodeStarted {
                mimi: mimi_addr.to_string(),
                control: control_addr.to_string(),
                restored: restored.line(clients_restored, clients_replayed),
                restore_ms: replay_ms as u64,
            },
        );
        // The one line a testbed reads to learn the addresses (port 0 picks free ones);
        // printed once the state is restored and the `node-started` line is in
        // `events.jsonl`, so it also says "ready": a reader of the file finds the line.
        println!(
            "mimi-sim node {} mimi={mimi_addr} control={control_addr}",
            options.provider
        );
        let _ = std::io::stdout().flush();
        let host = tokio::task::spawn_local(host);
        tokio::task::spawn_local(control(control_listener, node.clone()));
        serve(&node, &handle, host, &trace).await
    })
}

/// The node's loop: hands the clients what their provider has for them, ticks them when
/// a timer is due, and writes out the recorded lines, until the MIMI server stops.
async fn serve(
    node: &RefCell<Node>,
    handle: &HostHandle,
    host: tokio::task::JoinHandle<turmoil::Result>,
    trace: &net::Trace,
) -> Result<(), NodeError> {
    tokio::pin!(host);
    let mut flush = tokio::time::interval(Duration::from_millis(LINES_FLUSH_MS));
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        // The clients' next timer, on the wall clock (the cores' time is scaled).
        let timer = {
            let n = node.borrow();
            n.next_timer()
                .map(|at| Duration::from_millis(n.clock.wall_of(at).saturating_sub(wall_ms())))
        };
        let timer = async {
            match timer {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let ticked = tokio::select! {
            result = &mut host => {
                return match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(format!("the MIMI server stopped: {e}").into()),
                    Err(e) => Err(format!("the MIMI server failed: {e}").into()),
                };
            }
            () = handle.to_clients_ready() => false,
            _ = flush.tick() => false,
            () = timer => true,
        };
        node.borrow_mut().drive(trace, ticked);
    }
}

/// Opens `events.jsonl` for appending, after appending the lines of the last client
/// commit a crash kept out of it.
fn open_event_journal(state: &std::path::Path, store: &Store) -> Result<std::fs::File, NodeError> {
    let journal_path = state.join("events.jsonl");
    let recovered = recover_event_lines(&journal_path, &store.event_lines()?)?;
    if recovered > 0 {
        tracing::info!(
            lines = recovered,
            "appended the event lines a crash kept out of events.jsonl"
        );
    }
    let journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&journal_path)
        .map_err(|e| format!("could not open {}: {e}", journal_path.display()))?;
    Ok(journal)
}

/// The testbed only listens on loopback addresses.
fn check_loopback(options: &NodeOptions) -> Result<(), NodeError> {
    for (what, addr) in [("--listen", options.listen), ("--control", options.control)] {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{what} {addr} is not a loopback address; the testbed only listens on \
                 127.0.0.0/8 or [::1]"
            )
            .into());
        }
    }
    Ok(())
}

/// How often the lines the server core's adapter and observer recorded are written out
/// (`events.jsonl` and the journal's batch): an I/O batch, not a timer of any core.
const LINES_FLUSH_MS: u64 = 100;

/// How much of the end of `events.jsonl` a restart reads to find the last commit's lines.
const EVENT_TAIL_BYTES: u64 = 4 << 20;

/// Ends a line torn by a crash, then appends those of `lines` (the client event lines of
/// the last commit) that the end of `events.jsonl` lacks: a crash between a commit and
/// the append loses no event line, and a line appended before the crash is not repeated.
fn recover_event_lines(path: &std::path::Path, lines: &[String]) -> Result<usize, String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let shown = path.display();
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && lines.is_empty() => return Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("could not create {shown}: {e}"))?,
        Err(e) => return Err(format!("could not open {shown}: {e}")),
    };
    let len = file
        .metadata()
        .map_err(|e| format!("could not read {shown}: {e}"))?
        .len();
    file.seek(SeekFrom::Start(len.saturating_sub(EVENT_TAIL_BYTES)))
        .map_err(|e| format!("could not read {shown}: {e}"))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)
        .map_err(|e| format!("could not read {shown}: {e}"))?;
    let mut out = String::new();
    if tail.last().is_some_and(|b| *b != b'\n') {
        out.push('\n');
    }
    let text = String::from_utf8_lossy(&tail);
    let have: std::collections::BTreeSet<&str> = text.lines().collect();
    let missing: Vec<&String> = lines
        .iter()
        .filter(|l| !have.contains(l.as_str()))
        .collect();
    for l in &missing {
        out.push_str(l);
        out.push('\n');
    }
    file.write_all(out.as_bytes())
        .map_err(|e| format!("could not append to {shown}: {e}"))?;
    Ok(missing.len())
}

/// Restores the clients, hands the server core the client messages it had not taken,
/// then the clients the mailbox messages they had not taken (in that order: the core
/// takes client messages in the order of their rows). Returns the clients restored from
/// their files and the journal rows replayed.
fn resume_clients(
    node: &RefCell<Node>,
    store: &RefCell<Store>,
    stored: BTreeMap<ClientUri, Stored>,
) -> Result<(u64, u64), NodeError> {
    let inputs = store.borrow().client_inputs()?;
    let from_clients = store.borrow().from_clients()?;
    let to_clients = store.borrow().to_clients()?;
    let mut node = node.borrow_mut();
    let restored = node.restore_clients(stored, inputs)?;
    for (c, m) in from_clients {
        node.handle.send_from_client(c, m);
    }
    let now = node.clock.now();
    for (seq, (c, m)) in to_clients {
        node.deliver(now, c, m, Taken::Row(seq));
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_clock_scales_wall_time_after_its_origin_and_back() {
        let one = CoreClock::new(1_000, 1.0);
        assert_eq!(one.core_of(5_000), 5_000);
        let fast = CoreClock::new(1_000, 0.5);
        // Half a wall second after the origin is a core second after it.
        assert_eq!(fast.core_of(1_500), 2_000);
        assert_eq!(fast.wall_of(2_000), 1_500);
        assert_eq!(fast.core_of(900), 900);
        let slow = CoreClock::new(1_000, 4.0);
        assert_eq!(slow.core_of(5_000), 2_000);
        let mut last = 0;
        for wall in (0..10_000).step_by(7) {
            let core = fast.core_of(wall);
            assert!(core >= last, "monotonic at {wall}");
            assert!(fast.wall_of(core).abs_diff(wall) <= 1, "inverse at {wall}");
            last = core;
        }
        // The origin is kept in the state directory: a restart reads it back.
        let dir = std::env::temp_dir().join(format!("mimi-clock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let first = CoreClock::of_state(&dir, 0.5).unwrap();
        assert_eq!(CoreClock::of_state(&dir, 0.5).unwrap(), first);
        std::fs::write(dir.join(TIME_ORIGIN_FILE), "soon").unwrap();
        let e = CoreClock::of_state(&dir, 0.5).unwrap_err();
        assert!(e.contains("time-origin") && e.contains("soon"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_restart_appends_only_the_event_lines_a_crash_kept_out_and_ends_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("mimi-events-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        // The commit's first line made it to the file, the second did not, and a later
        // line was cut by the kill.
        std::fs::write(&path, "{\"a\":1}\n{\"b\":2}\n{\"torn\":").unwrap();
        let pending = vec!["{\"b\":2}".to_string(), "{\"d\":4}".to_string()];
        assert_eq!(recover_event_lines(&path, &pending).unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n{\"torn\":\n{\"d\":4}\n"
        );
        // Nothing pending, nothing torn: the file stays as it is.
        assert_eq!(recover_event_lines(&path, &[]).unwrap(), 0);
        assert_eq!(recover_event_lines(&path, &pending).unwrap(), 0);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .ends_with("{\"d\":4}\n"));
        // No file yet and nothing pending: none is created.
        assert_eq!(
            recover_event_lines(&dir.join("none.jsonl"), &[]).unwrap(),
            0
        );
        assert!(!dir.join("none.jsonl").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
