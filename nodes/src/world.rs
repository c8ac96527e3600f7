//! An in-memory world: servers and clients wired together with no network, for tests of
//! the protocol flows (the simulator runs the same cores over HTTP on turmoil).
//!
//! Work is a FIFO queue; each item advances the clock by one millisecond, so runs are
//! deterministic. Requests between servers are delivered at once and never lost.

use std::collections::{BTreeMap, VecDeque};

use crate::client::core::{Client, ClientError, ClientEvent, Command};
use crate::hub::EnforcementConfig;
use crate::ids::{ClientUri, Domain};
use crate::io::{
    ClientOutput, ClientToProvider, Millis, ProviderToClient, Request, RequestId, Response,
    ServerCore, ServerOutput, Token,
};
use crate::server::{Server, ServerEvent};

/// Start of world time: 2026-01-01T00:00:00Z in ms.
pub const WORLD_EPOCH_MS: Millis = 1_767_225_600_000;
/// A run that does not settle within this many work items is a bug (a livelock).
pub const MAX_STEPS: usize = 1_000_000;

enum Item {
    Request {
        id: RequestId,
        request: Request,
    },
    Response {
        to: Domain,
        token: Token,
        response: Response,
    },
    FromClient {
        client: ClientUri,
        message: ClientToProvider,
    },
    ToClient {
        client: ClientUri,
        message: ProviderToClient,
    },
}

/// Servers and clients in one process.
pub struct MemoryWorld {
    pub now: Millis,
    pub seed: u64,
    pub servers: BTreeMap<Domain, Server>,
    pub clients: BTreeMap<ClientUri, Client>,
    queue: VecDeque<Item>,
    next_id: RequestId,
    /// (target, request id) → (origin, origin's token).
    open: BTreeMap<(Domain, RequestId), (Domain, Token)>,
    /// Everything that happened, in order.
    pub server_events: Vec<(Domain, ServerEvent)>,
    pub client_events: Vec<(ClientUri, ClientEvent)>,
}

impl MemoryWorld {
    pub fn new(seed: u64) -> Self {
        MemoryWorld {
            now: WORLD_EPOCH_MS,
            seed,
            servers: BTreeMap::new(),
            clients: BTreeMap::new(),
            queue: VecDeque::new(),
            next_id: 1,
            open: BTreeMap::new(),
            server_events: Vec::new(),
            client_events: Vec::new(),
        }
    }

    pub fn add_server(&mut self, domain: &Domain, enforcement: EnforcementConfig) {
        self.servers.insert(
            domain.clone(),
            Server::new(domain.clone(), self.seed, enforcement),
        );
    }

    /// Add a client and publish `key_packages` KeyPackages for it.
    pub fn add_client(&mut self, uri: &ClientUri, key_packages: usize) {
        let mut c = Client::new(self.seed, uri.clone());
        let out = c.publish_key_packages(key_packages);
        self.clients.insert(uri.clone(), c);
        self.client_outputs(uri, vec![out]);
    }

    pub fn server(&self, d: &Domain) -> &Server {
        &self.servers[d]
    }

    pub fn client(&self, c: &ClientUri) -> &Client {
        &self.clients[c]
    }

    /// Give a client a command and run until everything settles.
    pub fn command(&mut self, client: &ClientUri, cmd: Command) -> Result<(), ClientError> {
        let c = self
            .clients
            .get_mut(client)
            .ok_or_else(|| ClientError::Other(format!("no client {client}")))?;
        let out = c.command(self.now, cmd)?;
        self.client_outputs(client, out);
        self.run();
        Ok(())
    }

    /// Give a client a command without running: several queued commands race, as
    /// concurrent users do. Call [`MemoryWorld::run`] afterwards.
    pub fn queue_command(&mut self, client: &ClientUri, cmd: Command) -> Result<(), ClientError> {
        let c = self
            .clients
            .get_mut(client)
            .ok_or_else(|| ClientError::Other(format!("no client {client}")))?;
        let out = c.command(self.now, cmd)?;
        self.client_outputs(client, out);
        Ok(())
    }

    fn client_outputs(&mut self, client: &ClientUri, out: Vec<ClientOutput>) {
        for o in out {
            let ClientOutput::ToProvider(message) = o;
            self.queue.push_back(Item::FromClient {
                client: client.clone(),
                message,
            });
        }
    }

    fn server_outputs(&mut self, from: &Domain, out: Vec<ServerOutput>) {
        for o in out {
            match o {
                ServerOutput::Respond { id, response } => {
                    if let Some((to, token)) = self.open.remove(&(from.clone(), id)) {
                        self.queue.push_back(Item::Response {
                            to,
                            token,
                            response,
                        });
                    }
                }
                ServerOutput::Send { token, request } => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.open
                        .insert((request.to.clone(), id), (from.clone(), token));
                    self.queue.push_back(Item::Request { id, request });
                }
                ServerOutput::ToClient { client, message } => {
                    self.queue.push_back(Item::ToClient { client, message })
                }
            }
        }
        if let Some(s) = self.servers.get_mut(from) {
            for e in s.take_events() {
                self.server_events.push((from.clone(), e));
            }
        }
    }

    /// Process work until nothing is left (ticking servers so retries and fan-out go out).
    pub fn run(&mut self) {
        for _ in 0..MAX_STEPS {
            let Some(item) = self.queue.pop_front() else {
                let domains: Vec<Domain> = self.servers.keys().cloned().collect();
                let mut any = false;
                for d in domains {
                    let out = self
                        .servers
                        .get_mut(&d)
                        .map(|s| s.on_tick(self.now))
                        .unwrap_or_default();
                    any |= !out.is_empty();
                    self.server_outputs(&d, out);
                }
                if !any {
                    return;
                }
                continue;
            };
            self.now += 1;
            match item {
                Item::Request { id, request } => {
                    let to = request.to.clone();
                    let out = match self.servers.get_mut(&to) {
                        Some(s) => s.on_request(self.now, id, request),
                        None => continue,
                    };
                    self.server_outputs(&to, out);
                }
                Item::Response {
                    to,
                    token,
                    response,
                } => {
                    let out = match self.servers.get_mut(&to) {
                        Some(s) => s.on_response(self.now, token, Ok(response)),
                        None => continue,
                    };
                    self.server_outputs(&to, out);
                }
                Item::FromClient { client, message } => {
                    let d = client.domain();
                    let out = match self.servers.get_mut(&d) {
                        Some(s) => s.on_client(self.now, &client, message),
                        None => continue,
                    };
                    self.server_outputs(&d, out);
                }
                Item::ToClient { client, message } => {
                    let Some(c) = self.clients.get_mut(&client) else {
                        continue;
                    };
                    let out = c.on_message(self.now, message);
                    for e in c.take_events() {
                        self.client_events.push((client.clone(), e));
                    }
                    self.client_outputs(&client, out);
                }
            }
        }
        panic!("the in-memory world did not settle within {MAX_STEPS} steps");
    }
}
