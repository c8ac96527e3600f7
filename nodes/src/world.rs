//! An in-memory world: servers and clients wired together with no network, for tests of
//! the protocol flows (the simulator runs the same cores over HTTP on turmoil).
//!
//! Work is a FIFO queue; each item advances the clock by one millisecond, so runs are
//! deterministic. Requests between servers are delivered at once and never lost.

use std::collections::{BTreeMap, VecDeque};

use crate::adversary::Adversary;
use crate::client::core::{Client, ClientError, ClientEvent, Command};
use crate::hub::EnforcementConfig;
use crate::ids::{ClientUri, Domain};
use crate::io::{
    ClientOutput, ClientToProvider, Millis, ProviderToClient, Request, RequestId, Response,
    ServerCore, ServerOutput, Token, TransportError,
};
use crate::planted::Bugs;
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
    /// An outgoing request of `to` got no response (its peer crashed).
    Failure {
        to: Domain,
        token: Token,
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
    /// Fault injection: drop this many of the next replies to a client (the request's
    /// outcome becomes ambiguous to it).
    pub drop_replies: BTreeMap<ClientUri, usize>,
    /// Record every delivery to a client in [`MemoryWorld::delivered`] (off by default).
    pub record_deliveries: bool,
    pub delivered: Vec<(ClientUri, crate::ids::RoomUri, Vec<u8>)>,
    /// Record every request between servers in [`MemoryWorld::requests`] (off by
    /// default): evidence of what reached a hub.
    pub record_requests: bool,
    pub requests: Vec<Request>,
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
            drop_replies: BTreeMap::new(),
            record_deliveries: false,
            delivered: Vec::new(),
            record_requests: false,
            requests: Vec::new(),
        }
    }

    /// Add a server with planted bugs (see [`crate::planted`]).
    pub fn add_server_with_bugs(
        &mut self,
        domain: &Domain,
        enforcement: EnforcementConfig,
        bugs: &Bugs,
    ) {
        self.servers.insert(
            domain.clone(),
            Server::new(domain.clone(), self.seed, enforcement).with_bugs(bugs),
        );
    }

    /// Add a malicious provider (see [`crate::adversary`]). Clients added afterwards with
    /// [`MemoryWorld::add_client`] under this domain get the same adversary.
    pub fn add_server_with_adversary(
        &mut self,
        domain: &Domain,
        enforcement: EnforcementConfig,
        adversary: Option<Adversary>,
    ) {
        self.servers.insert(
            domain.clone(),
            Server::new(domain.clone(), self.seed, enforcement).with_adversary(adversary),
        );
    }

    /// Drop the next `n` replies (`ProviderToClient::Reply`) to `client`.
    pub fn drop_next_replies(&mut self, client: &ClientUri, n: usize) {
        self.drop_replies.insert(client.clone(), n);
    }

    /// Crash and restart the server of `domain` (its core state is durable): requests to
    /// it and responses for it that were in transit are lost (their senders see a
    /// transport failure), client requests to it are lost, then
    /// [`ServerCore::on_restart`] runs. Call [`MemoryWorld::run`] afterwards.
    pub fn restart(&mut self, domain: &Domain) {
        let mut kept = VecDeque::new();
        let mut failures = Vec::new();
        for item in std::mem::take(&mut self.queue) {
            match item {
                Item::Request { id, request } if &request.to == domain => {
                    if let Some((origin, token)) = self.open.remove(&(domain.clone(), id)) {
                        failures.push(Item::Failure { to: origin, token });
                    }
                }
                Item::Response { to, .. } | Item::Failure { to, .. } if &to == domain => {}
                Item::FromClient { client, .. } if &client.domain() == domain => {}
                other => kept.push_back(other),
            }
        }
        // Requests the server was serving are lost: their origins see a failure.
        let lost: Vec<(Domain, RequestId)> = self
            .open
            .keys()
            .filter(|(to, _)| to == domain)
            .cloned()
            .collect();
        for k in lost {
            if let Some((origin, token)) = self.open.remove(&k) {
                failures.push(Item::Failure { to: origin, token });
            }
        }
        // Its own outgoing requests are forgotten (responses would find no token).
        self.open.retain(|_, (origin, _)| origin != domain);
        kept.extend(failures);
        self.queue = kept;
        let out = self
            .servers
            .get_mut(domain)
            .map(|s| s.on_restart(self.now))
            .unwrap_or_default();
        self.server_outputs(domain, out);
    }

    /// Nothing queued: let timers fire. Returns false if no timer is pending.
    fn wake(&mut self) -> bool {
        // Every core says when it next needs time (`poll_timeout`, `next_wakeup`).
        let clients = self.clients.values().filter_map(Client::next_wakeup);
        let servers = self.servers.values().filter_map(ServerCore::poll_timeout);
        let Some(t) = clients.chain(servers).min() else {
            return false;
        };
        self.now = self.now.max(t);
        let uris: Vec<ClientUri> = self.clients.keys().cloned().collect();
        for c in uris {
            let out = match self.clients.get_mut(&c) {
                Some(cl) => cl.on_tick(self.now),
                None => continue,
            };
            if let Some(cl) = self.clients.get_mut(&c) {
                for e in cl.take_events() {
                    self.client_events.push((c.clone(), e));
                }
            }
            self.client_outputs(&c, out);
        }
        let domains: Vec<Domain> = self.servers.keys().cloned().collect();
        for d in domains {
            let out = self
                .servers
                .get_mut(&d)
                .map(|s| s.on_tick(self.now))
                .unwrap_or_default();
            self.server_outputs(&d, out);
        }
        true
    }

    pub fn add_server(&mut self, domain: &Domain, enforcement: EnforcementConfig) {
        self.servers.insert(
            domain.clone(),
            Server::new(domain.clone(), self.seed, enforcement),
        );
    }

    /// Add a client and publish `key_packages` KeyPackages for it. A client of a
    /// malicious provider gets the provider's adversary.
    pub fn add_client(&mut self, uri: &ClientUri, key_packages: usize) {
        let mut c = Client::new(self.seed, uri.clone());
        c.set_adversary(self.servers.get(&uri.domain()).and_then(Server::adversary));
        let out = c.publish_key_packages(key_packages);
        self.clients.insert(uri.clone(), c);
        self.client_outputs(uri, vec![out]);
    }

    pub fn server(&self, d: &Domain) -> &Server {
        &self.servers[d]
    }

    /// A client, to configure it (e.g. its leave-ordering variant).
    pub fn client_mut(&mut self, c: &ClientUri) -> Option<&mut Client> {
        self.clients.get_mut(c)
    }

    pub fn client(&self, c: &ClientUri) -> &Client {
        &self.clients[c]
    }

    /// Give a client a command and run until everything settles.
    pub fn command(&mut self, client: &ClientUri, cmd: Command) -> Result<(), ClientError> {
        self.queue_command(client, cmd)?;
        self.run();
        Ok(())
    }

    /// `creator` creates room `name` on its own provider (which becomes the hub) with
    /// `preset`, and everything settles; returns the room's URI.
    pub fn create_room(
        &mut self,
        creator: &ClientUri,
        name: &str,
        preset: crate::room::presets::RolePreset,
    ) -> Result<crate::ids::RoomUri, ClientError> {
        let domain = creator.domain();
        let room = crate::ids::RoomUri::new(&domain, name)
            .map_err(|e| ClientError::Other(format!("bad room name {name:?}: {e}")))?;
        let hub_sender = self
            .servers
            .get(&domain)
            .ok_or_else(|| ClientError::Other(format!("no server {domain}")))?
            .hub_external_sender();
        self.command(
            creator,
            Command::CreateRoom {
                room: room.clone(),
                preset,
                hub_sender,
            },
        )?;
        Ok(room)
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

    /// Process work until nothing is left (ticking servers so retries and fan-out go out,
    /// and letting client and hub timers fire when nothing else is left).
    pub fn run(&mut self) {
        for _ in 0..MAX_STEPS {
            if self.step() {
                continue;
            }
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
            if !any && !self.wake() {
                return;
            }
        }
        panic!("the in-memory world did not settle within {MAX_STEPS} steps");
    }

    /// Requests to `domain` in transit, by endpoint.
    pub fn requests_in_transit(&self, to: &Domain) -> Vec<crate::endpoint::Endpoint> {
        self.queue
            .iter()
            .filter_map(|i| match i {
                Item::Request { request, .. } if &request.to == to => {
                    Some(request.endpoint.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Hand `message` to `client` as its provider would (e.g. a duplicate delivery).
    pub fn to_client(&mut self, client: &ClientUri, message: ProviderToClient) {
        self.queue.push_back(Item::ToClient {
            client: client.clone(),
            message,
        });
    }

    /// Process one queued item; false if the queue was empty.
    pub fn step(&mut self) -> bool {
        let Some(item) = self.queue.pop_front() else {
            return false;
        };
        self.now += 1;
        match item {
            Item::Request { id, request } => {
                if self.record_requests {
                    self.requests.push(request.clone());
                }
                let to = request.to.clone();
                let out = match self.servers.get_mut(&to) {
                    Some(s) => s.on_request(self.now, id, request),
                    None => return true,
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
                    None => return true,
                };
                self.server_outputs(&to, out);
            }
            Item::FromClient { client, message } => {
                let d = client.domain();
                let out = match self.servers.get_mut(&d) {
                    Some(s) => s.on_client(self.now, &client, message),
                    None => return true,
                };
                self.server_outputs(&d, out);
            }
            Item::Failure { to, token } => {
                let out = match self.servers.get_mut(&to) {
                    Some(s) => s.on_response(self.now, token, Err(TransportError::Unreachable)),
                    None => return true,
                };
                self.server_outputs(&to, out);
            }
            Item::ToClient { client, message } => {
                if matches!(message, ProviderToClient::Reply { .. }) {
                    if let Some(n) = self.drop_replies.get_mut(&client) {
                        if *n > 0 {
                            *n -= 1;
                            return true;
                        }
                    }
                }
                if self.record_deliveries {
                    if let ProviderToClient::Deliver { room, fanout } = &message {
                        self.delivered
                            .push((client.clone(), room.clone(), fanout.clone()));
                    }
                }
                let Some(c) = self.clients.get_mut(&client) else {
                    return true;
                };
                let out = c.on_message(self.now, message);
                for e in c.take_events() {
                    self.client_events.push((client.clone(), e));
                }
                self.client_outputs(&client, out);
            }
        }
        true
    }
}
