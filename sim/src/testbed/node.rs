//! `mimi-sim node`: one provider as a real process. The same server core as in the
//! simulator (`nodes::server::Server`: hub and follower roles) behind the same HTTP host
//! adapter ([`crate::net::run_host`]), on mutual TLS over loopback TCP
//! ([`super::tls::TlsTransport`]); its clients (`nodes::client::core::Client`) live in
//! the process and are driven through the control API ([`super::control`]).
//!
//! Everything runs on one thread (a current-thread tokio runtime and a `LocalSet`), as
//! in the simulator: the cores are never shared between threads. Time is the wall clock.
//!
//! Every event (the host's inputs and outputs, the clients' events, the steps issued) is
//! one JSON line in `<state>/events.jsonl`, in the simulator's trace format with `t` = the
//! wall clock in ms since the UNIX epoch. State is in memory only (see the module docs).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use nodes::client::core::Client;
use nodes::hub::{EnforcementConfig, Hub};
use nodes::ids::{ClientUri, Domain};
use nodes::io::{ClientOutput, ClientToProvider, ProviderToClient};
use nodes::server::Server;
use serde_json::{json, Value};
use tokio::time::MissedTickBehavior;

use super::peers::PeersFile;
use super::tls::{wall_ms, TlsConfig, TlsTransport};
use super::{control, observe};
use crate::net::{self, HostConfig, HostHandle};
use crate::record::Recorder;
use crate::run::CLIENT_TICK_MS;
use crate::scenario::EnforcementLevel;

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
}

/// The process's state shared by the client driver and the control API (one thread).
pub struct Node {
    pub domain: Domain,
    pub seed: u64,
    pub config: EnforcementConfig,
    pub handle: HostHandle,
    pub peers_path: PathBuf,
    pub clients: BTreeMap<ClientUri, Client>,
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
    pub offline: BTreeMap<ClientUri, (Vec<ClientToProvider>, Vec<ProviderToClient>)>,
}

impl Node {
    /// Records one event (JSONL file and the in-memory window).
    pub fn event(&mut self, node: &str, kind: &str, fields: Value) {
        self.rec.event(wall_ms(), node, kind, fields);
        self.flush_lines();
    }

    fn flush_lines(&mut self) {
        for line in self.rec.drain_lines() {
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

    /// Sends a client's outputs to this provider's core.
    pub fn send(&mut self, c: &ClientUri, outs: Vec<ClientOutput>) {
        for ClientOutput::ToProvider(m) in outs {
            match self.offline.get_mut(c) {
                Some((outbox, _)) => outbox.push(m),
                None => self.handle.send_from_client(c.clone(), m),
            }
        }
    }

    /// Takes a client offline (it neither sends nor receives; its provider keeps its
    /// mail) or back online (its outbox goes out, its mail comes in).
    pub fn set_online(&mut self, c: &ClientUri, online: bool) {
        if !online {
            self.offline.entry(c.clone()).or_default();
            return;
        }
        let Some((outbox, mailbox)) = self.offline.remove(c) else {
            return;
        };
        for m in outbox {
            self.handle.send_from_client(c.clone(), m);
        }
        for m in mailbox {
            let Some(client) = self.clients.get_mut(c) else {
                return;
            };
            let out = client.on_message(wall_ms(), m);
            self.client_events(c);
            self.send(c, out);
        }
    }

    /// Records a client's events.
    pub fn client_events(&mut self, c: &ClientUri) {
        let Some(client) = self.clients.get_mut(c) else {
            return;
        };
        let events = client.take_events();
        for e in events {
            let v = serde_json::to_value(&e).unwrap_or(Value::Null);
            self.event(c.as_str(), "client", json!({ "event": v }));
            let view = observe::view_changed(&e).and_then(|room| {
                let v = self.clients.get(c)?.room_view(room)?;
                Some(observe::view_fields(room, &v))
            });
            if let Some(v) = view {
                self.event(c.as_str(), "client-view", v);
            }
        }
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

    /// Hands the core's messages to the clients, ticks them, journals the host's events.
    fn drive(&mut self, trace: &net::Trace, tick: bool) {
        let domain = self.domain.clone();
        for (t, kind, v) in self.sink.take() {
            self.rec.event(t, domain.as_str(), kind, v);
        }
        let now = wall_ms();
        for (c, m) in self.handle.drain_to_clients() {
            if let Some(v) = observe::deliver_fields(&c, &m) {
                self.event(domain.as_str(), "deliver", v);
            }
            if let Some((_, mailbox)) = self.offline.get_mut(&c) {
                mailbox.push(m);
                continue;
            }
            let Some(client) = self.clients.get_mut(&c) else {
                tracing::warn!(client = %c, "message for a client this node does not have");
                continue;
            };
            let out = client.on_message(now, m);
            self.client_events(&c);
            self.send(&c, out);
        }
        if tick {
            let cs: Vec<ClientUri> = self
                .clients
                .keys()
                .filter(|c| !self.offline.contains_key(*c))
                .cloned()
                .collect();
            for c in cs {
                if let Some(client) = self.clients.get_mut(&c) {
                    let out = client.on_tick(now);
                    self.client_events(&c);
                    self.send(&c, out);
                }
            }
        }
        for e in trace.take() {
            self.rec.net_event(0, &e);
        }
        self.flush_lines();
    }
}

/// Runs a node until it is killed (or cannot start: the error says why).
pub fn run(options: NodeOptions) -> Result<(), String> {
    for (what, addr) in [("--listen", options.listen), ("--control", options.control)] {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{what} {addr} is not a loopback address; the testbed only listens on \
                 127.0.0.0/8 or [::1]"
            ));
        }
    }
    let peers = PeersFile::load(&options.peers).map_err(|e| e.to_string())?;
    let tls = TlsConfig::load(&peers.certs_dir(), &options.provider).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&options.state).map_err(|e| {
        format!(
            "could not create the state directory {}: {e}",
            options.state.display()
        )
    })?;
    let journal_path = options.state.join("events.jsonl");
    let journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&journal_path)
        .map_err(|e| format!("could not open {}: {e}", journal_path.display()))?;
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
    // The one line a testbed reads to learn the addresses (port 0 picks free ones).
    println!(
        "mimi-sim node {} mimi={mimi_addr} control={control_addr}",
        options.provider
    );
    let _ = std::io::stdout().flush();
    tracing::info!(provider = %options.provider, %mimi_addr, %control_addr, state = %options.state.display(), "node started");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the tokio runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let (config, server) = match &options.setup {
            Some(s) => (s.config(), s.server(&options.provider, options.seed)),
            None => {
                let config = EnforcementConfig::new(options.enforcement.level());
                let server = Server::new(options.provider.clone(), options.seed, config.clone());
                (config, server)
            }
        };
        let sink = observe::Sink::default();
        let core = observe::Observed::new(server, sink.clone());
        let transport = Rc::new(TlsTransport::new(mimi, options.peers.clone(), &tls));
        let trace = net::Trace::new();
        let (handle, host) = net::run_host(core, transport, HostConfig::default(), &trace);
        let node = Rc::new(RefCell::new(Node {
            domain: options.provider.clone(),
            seed: options.seed,
            config,
            handle: handle.clone(),
            peers_path: options.peers.clone(),
            clients: BTreeMap::new(),
            setup: options.setup.clone(),
            rec: Recorder::new(true),
            events: Default::default(),
            first_event: 0,
            journal,
            senders: BTreeMap::new(),
            sink,
            offline: BTreeMap::new(),
        }));
        node.borrow_mut().event(
            options.provider.as_str(),
            "node-started",
            json!({"mimi": mimi_addr.to_string(), "control": control_addr.to_string()}),
        );
        let host = tokio::task::spawn_local(host);
        tokio::task::spawn_local(control::serve(control_listener, node.clone()));
        let mut tick = tokio::time::interval(Duration::from_millis(CLIENT_TICK_MS));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(host);
        loop {
            let ticked = tokio::select! {
                result = &mut host => {
                    return match result {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(format!("the MIMI server stopped: {e}")),
                        Err(e) => Err(format!("the MIMI server failed: {e}")),
                    };
                }
                () = handle.to_clients_ready() => false,
                _ = tick.tick() => true,
            };
            node.borrow_mut().drive(&trace, ticked);
        }
    })
}
