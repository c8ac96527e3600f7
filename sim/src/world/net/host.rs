//! One provider host: the event loop that owns the core, on any [`Transport`]. The
//! simulator runs it as a turmoil host ([`spawn_host`]), the testbed as a real process
//! ([`run_host`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::rc::Rc;

use nodes::ids::{ClientUri, Domain};
use nodes::io::{
    ClientToProvider, Millis, ProviderToClient, Request, RequestId, Response, ServerCore,
    ServerOutput, Token, TransportError,
};
use tokio::sync::{mpsc, oneshot, Notify};

use super::input::Input;
use super::server::{accept_loop, Server};
use super::transport::{Transport, Turmoil};
use super::{client, HostConfig, Trace, What};

/// The in-process link between a provider and its clients (clients are not turmoil hosts).
/// Survives restarts of the host: messages queue while it is down.
#[derive(Debug, Default)]
struct ClientPort {
    inbox: RefCell<VecDeque<(ClientUri, ClientToProvider)>>,
    outbox: RefCell<Vec<(ClientUri, ProviderToClient)>>,
    wake: Notify,
    /// Signalled when the outbox gets a message (the testbed's client driver waits on it).
    delivered: Notify,
}

/// The driver's handle on one provider host: attach clients, observe deliveries.
#[derive(Debug, Clone)]
pub struct HostHandle {
    domain: Domain,
    port: Rc<ClientPort>,
}

impl HostHandle {
    /// The provider's domain (= its turmoil host name).
    pub fn domain(&self) -> &Domain {
        &self.domain
    }
    /// Queues a message from a local client; the host hands it to `on_client` the next
    /// time it runs.
    pub fn send_from_client(&self, client: ClientUri, message: ClientToProvider) {
        self.port.inbox.borrow_mut().push_back((client, message));
        self.port.wake.notify_one();
    }
    /// Takes the messages the core sent to its clients so far, in order.
    pub fn drain_to_clients(&self) -> Vec<(ClientUri, ProviderToClient)> {
        std::mem::take(&mut *self.port.outbox.borrow_mut())
    }
    /// Client messages the host has not taken yet (it is busy or down).
    pub fn waiting_from_clients(&self) -> usize {
        self.port.inbox.borrow().len()
    }
    /// A copy of the messages waiting in [`Self::drain_to_clients`].
    pub fn peek_to_clients(&self) -> Vec<(ClientUri, ProviderToClient)> {
        self.port.outbox.borrow().clone()
    }
    /// Waits until the core has sent something to a client since the last wait.
    pub async fn to_clients_ready(&self) {
        self.port.delivered.notified().await
    }
}

/// A provider's core kept outside its turmoil host: the provider's durable storage.
///
/// The disk model is "fsync before every reply": a core handles each input atomically, so
/// whatever it did before a crash survives (what a hub acknowledged as accepted is still
/// in its log and will be delivered). A crash loses what lives in the host's tasks:
/// connections, incoming requests awaiting an answer, outgoing requests and timers. On
/// restart the same core gets [`ServerCore::on_restart`] to forget those.
pub struct Durable<C>(Rc<RefCell<Option<C>>>);

impl<C> Clone for Durable<C> {
    fn clone(&self) -> Self {
        Durable(self.0.clone())
    }
}

impl<C> Durable<C> {
    /// Runs `f` on the core, if it was ever started. Must not be called from inside the
    /// host (the driver calls it between simulation steps).
    pub fn with<T>(&self, f: impl FnOnce(&mut C) -> T) -> Option<T> {
        self.0.borrow_mut().as_mut().map(f)
    }
}

/// Like [`spawn_host`], but the core is created once and survives crashes: a restart
/// (`sim.bounce`) resumes the same core after [`ServerCore::on_restart`]. The returned
/// [`Durable`] lets the driver inspect the core between steps.
pub fn spawn_durable_host<C, F>(
    sim: &mut turmoil::Sim<'_>,
    domain: Domain,
    config: HostConfig,
    trace: &Trace,
    make_core: F,
) -> (HostHandle, Durable<C>)
where
    C: ServerCore + 'static,
    F: Fn() -> C + 'static,
{
    let disk = Durable(Rc::new(RefCell::new(None)));
    let d = disk.clone();
    let handle = spawn_host(sim, domain, config, trace, move || {
        let mut slot = d.0.borrow_mut();
        if slot.is_none() {
            *slot = Some(make_core());
        }
        DiskCore {
            disk: d.clone(),
            domain: slot.as_ref().map(|c| c.domain().clone()),
        }
    });
    (handle, disk)
}

/// The host's view of a [`Durable`] core: every call borrows it for the duration of one
/// input (never across an await).
struct DiskCore<C> {
    disk: Durable<C>,
    domain: Option<Domain>,
}

impl<C: ServerCore> DiskCore<C> {
    fn call(&self, f: impl FnOnce(&mut C) -> Vec<ServerOutput>) -> Vec<ServerOutput> {
        self.disk.with(f).unwrap_or_default()
    }
}

impl<C: ServerCore> ServerCore for DiskCore<C> {
    fn domain(&self) -> &Domain {
        self.domain
            .as_ref()
            .expect("a durable core exists once its host started")
    }
    fn on_request(&mut self, now: Millis, id: RequestId, request: Request) -> Vec<ServerOutput> {
        self.call(|c| c.on_request(now, id, request))
    }
    fn on_response(
        &mut self,
        now: Millis,
        token: Token,
        result: Result<Response, TransportError>,
    ) -> Vec<ServerOutput> {
        self.call(|c| c.on_response(now, token, result))
    }
    fn on_client(
        &mut self,
        now: Millis,
        client: &ClientUri,
        message: ClientToProvider,
    ) -> Vec<ServerOutput> {
        self.call(|c| c.on_client(now, client, message))
    }
    fn on_tick(&mut self, now: Millis) -> Vec<ServerOutput> {
        self.call(|c| c.on_tick(now))
    }
    fn poll_timeout(&self) -> Option<Millis> {
        self.disk.with(|c| c.poll_timeout()).flatten()
    }
    fn on_restart(&mut self, now: Millis) -> Vec<ServerOutput> {
        self.call(|c| c.on_restart(now))
    }
}

/// Adds a provider host named `domain` to `sim`, running `make_core()`'s core behind an
/// HTTP server on [`HTTP_PORT`]. `make_core` is called again on every restart
/// (`sim.bounce`): the core starts afresh (see [`spawn_durable_host`] for durable state).
/// The host fails if the core's domain is not `domain`.
pub fn spawn_host<C, F>(
    sim: &mut turmoil::Sim<'_>,
    domain: Domain,
    config: HostConfig,
    trace: &Trace,
    make_core: F,
) -> HostHandle
where
    C: ServerCore + 'static,
    F: Fn() -> C + 'static,
{
    let handle = HostHandle {
        domain: domain.clone(),
        port: Rc::new(ClientPort::default()),
    };
    let (port, trace) = (handle.port.clone(), trace.clone());
    let name = domain.to_string();
    let transport = Rc::new(Turmoil);
    sim.host(name, move || {
        let host = HttpHost::new(
            make_core(),
            transport.clone(),
            config.clone(),
            port.clone(),
            trace.clone(),
        );
        let domain = domain.clone();
        async move {
            if host.domain != domain {
                return Err(format!("core for {} runs on host {domain}", host.domain).into());
            }
            host.run().await
        }
    });
    handle
}

/// Runs `core` as a provider host on `transport` (the testbed's real-network entry; the
/// simulator uses [`spawn_host`]). Returns the handle for its clients and the event loop,
/// which the caller runs inside a `tokio::task::LocalSet`; it ends only on an error (the
/// listener could not be bound).
pub fn run_host<C, T>(
    core: C,
    transport: Rc<T>,
    config: HostConfig,
    trace: &Trace,
) -> (HostHandle, impl Future<Output = turmoil::Result>)
where
    C: ServerCore + 'static,
    T: Transport,
{
    let handle = HostHandle {
        domain: core.domain().clone(),
        port: Rc::new(ClientPort::default()),
    };
    let host = HttpHost::new(core, transport, config, handle.port.clone(), trace.clone());
    (handle, host.run())
}

/// A provider host: owns the core and the state of the HTTP exchanges in progress.
pub struct HttpHost<C, T = Turmoil> {
    core: C,
    transport: Rc<T>,
    domain: Domain,
    config: HostConfig,
    port: Rc<ClientPort>,
    trace: Trace,
    next_request_id: RequestId,
    /// Incoming requests waiting for the core's `Respond`.
    pending: BTreeMap<RequestId, oneshot::Sender<Response>>,
}

/// What woke the event loop.
enum Wake {
    Input(Input),
    Client,
    Tick,
}

impl<C: ServerCore, T: Transport> HttpHost<C, T> {
    fn new(
        core: C,
        transport: Rc<T>,
        config: HostConfig,
        port: Rc<ClientPort>,
        trace: Trace,
    ) -> Self {
        HttpHost {
            domain: core.domain().clone(),
            core,
            transport,
            config,
            port,
            trace,
            next_request_id: 0,
            pending: BTreeMap::new(),
        }
    }

    /// The event loop; runs until the host is crashed.
    async fn run(mut self) -> turmoil::Result {
        let listener = self.transport.bind().await?;
        let (inputs, mut rx) = mpsc::unbounded_channel();
        let server = Rc::new(Server {
            transport: self.transport.clone(),
            domain: self.domain.clone(),
            max_body_len: self.config.max_body_len,
            connection_timeout: self.config.server_connection_timeout,
            inputs: inputs.clone(),
        });
        tokio::task::spawn_local(accept_loop(listener, server));
        let port = self.port.clone();
        self.record(What::Started);
        // A restarted core forgets what it had in flight (a fresh core has nothing).
        let outputs = self.core.on_restart(self.transport.now_ms());
        self.carry_out(outputs, &inputs);
        // Client messages queued while the host was down.
        port.wake.notify_one();
        loop {
            // The core's next timer (sans-IO: the core says when, `poll_timeout`), at
            // least 1 ms ahead so that a timer that stays due cannot spin the loop.
            let timer = self.core.poll_timeout().map(|at| {
                let now = self.transport.now_ms();
                self.transport.until(at.max(now + 1))
            });
            let timer = async {
                match timer {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            // Fixed priority: network first, then clients, then time.
            let wake = tokio::select! {
                biased;
                Some(input) = rx.recv() => Wake::Input(input),
                () = port.wake.notified() => Wake::Client,
                () = timer => Wake::Tick,
            };
            let now = self.transport.now_ms();
            // Forget requests whose connection has gone (timed out, reset).
            self.pending.retain(|_, reply| !reply.is_closed());
            let outputs = match wake {
                Wake::Input(Input::Request { request, reply }) => {
                    let id = self.next_request_id;
                    self.next_request_id += 1;
                    self.pending.insert(id, reply);
                    self.record(What::Request {
                        id,
                        request: request.clone(),
                    });
                    self.core.on_request(now, id, request)
                }
                Wake::Input(Input::Rejected { status, reason }) => {
                    self.record(What::Rejected { status, reason });
                    Vec::new()
                }
                Wake::Input(Input::PeerRefused { reason }) => {
                    self.record(What::PeerRefused { reason });
                    Vec::new()
                }
                Wake::Input(Input::Outcome { token, result }) => {
                    self.record(What::Outcome {
                        token,
                        result: result.clone(),
                    });
                    self.core.on_response(now, token, result)
                }
                Wake::Client => {
                    let mut outputs = Vec::new();
                    // One message at a time: the borrow must not outlive the pop.
                    while let Some((client, message)) = self.pop_client_message() {
                        self.record(What::FromClient {
                            client: client.clone(),
                            message: message.clone(),
                        });
                        outputs.extend(self.core.on_client(now, &client, message));
                    }
                    outputs
                }
                Wake::Tick => {
                    let outputs = self.core.on_tick(now);
                    if !outputs.is_empty() {
                        self.record(What::Tick);
                    }
                    outputs
                }
            };
            self.carry_out(outputs, &inputs);
        }
    }

    fn pop_client_message(&self) -> Option<(ClientUri, ClientToProvider)> {
        self.port.inbox.borrow_mut().pop_front()
    }

    fn carry_out(&mut self, outputs: Vec<ServerOutput>, inputs: &mpsc::UnboundedSender<Input>) {
        for output in outputs {
            self.record(What::Output(output.clone()));
            match output {
                ServerOutput::Respond { id, response } => {
                    // Unknown id or the requester went away: nothing to answer.
                    if let Some(reply) = self.pending.remove(&id) {
                        let _ = reply.send(response);
                    }
                }
                ServerOutput::Send { token, request } => {
                    let inputs = inputs.clone();
                    let (timeout, max) = (self.config.request_timeout, self.config.max_body_len);
                    let transport = self.transport.clone();
                    tokio::task::spawn_local(async move {
                        let result = client::attempt(&*transport, request, timeout, max).await;
                        let _ = inputs.send(Input::Outcome { token, result });
                    });
                }
                ServerOutput::ToClient { client, message } => {
                    self.port.outbox.borrow_mut().push((client, message));
                    self.port.delivered.notify_one();
                }
            }
        }
    }

    fn record(&self, what: What) {
        self.trace.push(self.transport.now_ms(), &self.domain, what);
    }
}
