//! One run: a scenario and a seed, over HTTP on turmoil, with faults, two phases, the
//! oracles and the trace (README, "The simulator").
//!
//! Providers are turmoil hosts running the server cores ([`crate::world::net`]), with durable
//! state (a crash keeps what the core did, see [`crate::world::net::Durable`]). Clients are not
//! hosts: the driver attaches them to their provider in-process, so a room of hundreds of
//! clients costs MLS work, not turmoil hosts. An offline client neither sends nor
//! receives; its provider keeps its mail until it comes back.
//!
//! The driver loop, once per turmoil step: open/close the fault windows that are due,
//! tick every client whose timer is due (each core says when: `Client::next_wakeup`, and
//! the hosts sleep until their core's `poll_timeout`), hand the scripted commands that
//! are due to their clients on the script's clock ([`CLIENT_TICK_MS`]), step turmoil,
//! record what the hosts did, feed the oracles, hand every provider→client message to
//! its (online) client, and after healing check whether every honest client has
//! converged.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mimi_reports::records::run::RunOutcome;
use nodes::client::core::{Client, ClientEvent, Command};
use nodes::client::leave::LeaveOrder;
use nodes::client::TickGate;
use nodes::hub::{EnforcementConfig, Hub, HubEvent};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::io::{ClientOutput, ClientToProvider, ProviderToClient};
use nodes::room::RoomStateMode;
use nodes::server::{Server, ServerEvent, TransferMode};
use serde::Serialize;
use serde_json::{json, Value};

use crate::observe::oracles::{CommittedState, Oracles, Sent, Violation};
use crate::observe::record::{op_line, Header, Phase, Recorder, What, TRACE_FORMAT};
use crate::scenario::{
    ExpectedOutcome, Fault, HubTransferKind, OnViolation, Op, Resolved, Scenario, StepEnd,
};
use crate::world::faults::{self, Links, Window};
use crate::world::net::{self, Durable, HostConfig, HostHandle};
use crate::world::schedule::Schedule;
use crate::world::steps::{Started, StepBook};

/// The script's clock: a scripted step due at `t` is handed at the first multiple of this
/// at or after `t` (the scenario files' time resolution; the testbed runner hands steps
/// on the same clock). Client timers do not wait for it.
pub const CLIENT_TICK_MS: u64 = 100;
/// How often convergence is checked after healing.
pub const CONVERGENCE_CHECK_MS: u64 = 100;
/// KeyPackages each client publishes at the start.
pub const KEY_PACKAGES_PER_CLIENT: usize = 8;

/// How a run ended, the first that applies: an oracle fired (`violation`); the honest
/// nodes did not converge (`liveness`); they converged but a scripted step did not
/// happen and its `may_abandon`/`may_refuse` does not allow how it ended (`incomplete`);
/// else `ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    Violation,
    Liveness,
    Incomplete,
}

impl From<Outcome> for RunOutcome {
    fn from(o: Outcome) -> RunOutcome {
        match o {
            Outcome::Ok => RunOutcome::Ok,
            Outcome::Violation => RunOutcome::Violation,
            Outcome::Liveness => RunOutcome::Liveness,
            Outcome::Incomplete => RunOutcome::Incomplete,
        }
    }
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Violation => "violation",
            Outcome::Liveness => "liveness",
            Outcome::Incomplete => "incomplete",
        }
    }
}

/// A scripted step that did not simply happen (`RunReport::steps_not_done`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepNote {
    /// Index in the file's `[[script]]`, from 0.
    pub step: usize,
    pub at_ms: u64,
    pub client: String,
    pub op: &'static str,
    #[serde(flatten)]
    pub end: StepEnd,
    /// The step's `may_abandon`/`may_refuse` allows this end, or the step is an
    /// adversary's client's (`adversary`).
    pub declared: bool,
    /// The client is hosted by a malicious provider: like the oracles and convergence,
    /// step completeness judges honest clients only (an honest step that waits for an
    /// adversary's step still counts).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub adversary: bool,
}

impl StepNote {
    /// "step 7 (bob send at 3000 ms) refused by rule mute".
    pub fn describe(&self) -> String {
        let how = match &self.end {
            StepEnd::Done => "done".to_string(),
            StepEnd::Abandoned => "abandoned: its precondition never held".to_string(),
            StepEnd::Refused { rule } => format!("refused by the hub ({rule})"),
            StepEnd::Failed { reason } => format!("failed: {reason}"),
            StepEnd::Unfinished => "handed to its client but never settled".to_string(),
            StepEnd::Overtaken { reason } => {
                format!("overtaken: its client was removed from the room first ({reason})")
            }
        };
        format!(
            "script[{}] ({} {} at {} ms) {how}{}",
            self.step,
            self.client,
            self.op,
            self.at_ms,
            if self.adversary {
                " (an adversary's client: not judged)"
            } else if self.declared {
                " (declared)"
            } else {
                ""
            }
        )
    }
}

/// One row of the per-node state table printed on a liveness failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeState {
    pub node: String,
    pub role: &'static str,
    /// "up"/"down" for providers, "online"/"offline" for clients.
    pub status: &'static str,
    pub epoch: Option<u64>,
    pub members: Option<usize>,
    /// Providers: hub log length; clients: messages received.
    pub log: usize,
    /// Providers: whether all fan-out is delivered; clients: no operation in flight.
    pub idle: bool,
    pub note: String,
}

/// Operation counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OpCounts {
    pub issued: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Commands the client refused to queue (local; hub refusals are in `hub_rejections`
    /// and, per step, in `RunReport::steps_not_done`).
    pub refused: u64,
    /// Scripted steps whose precondition never held (e.g. the user was never added).
    pub abandoned: u64,
}

/// Everything a run reports (`mimi-sim run --json` prints this).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub scenario: String,
    /// The file it was loaded from (not part of the trace).
    pub scenario_file: Option<String>,
    pub scenario_sha256: String,
    pub variant: Value,
    pub outcome: Outcome,
    pub expected: ExpectedOutcome,
    /// The run is as the scenario's `expect` allows (`Expectation::run_as_expected`;
    /// a `within_seeds` expectation is met or not per cell, by `campaign`/`findings`).
    pub as_expected: bool,
    pub violations: Vec<Violation>,
    pub liveness: Option<String>,
    pub trace_hash: String,
    pub trace_events: u64,
    pub sim_time_ms: u64,
    pub wall_ms: u64,
    /// Fault kind → number of windows applied.
    pub faults: BTreeMap<String, u64>,
    /// Kinds enabled in the scenario that never fired.
    pub faults_never_fired: Vec<String>,
    /// Requests the hub refused, by enforcement rule id (or response code).
    pub hub_rejections: BTreeMap<String, u64>,
    pub converged_at_ms: Option<u64>,
    pub ops: OpCounts,
    /// Scripted steps: how many the file has, and how many were done.
    pub steps_total: usize,
    pub steps_done: usize,
    /// Every scripted step that was not done (abandoned, refused, failed, unfinished),
    /// in script order, whether its declaration allows it or not. Steps a run stopped
    /// before reaching (at a violation) are not listed.
    pub steps_not_done: Vec<StepNote>,
    pub messages_accepted: usize,
    pub messages_received: usize,
    pub state_table: Vec<NodeState>,
    #[serde(skip)]
    pub trace: Option<Vec<String>>,
    /// Wall time and openmls time from handing the script's last step to its client to
    /// the end of the run (for `bench`'s fan-out curve; not in the record: machine-bound).
    #[serde(skip)]
    pub last_step_cost: Option<StepCost>,
}

/// What the script's last step cost until the run ended (measurement only).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepCost {
    pub wall_ms: f64,
    /// Time inside openmls (0 unless `nodes::mls::cost` is enabled).
    pub mls_ms: f64,
}

struct ClientSlot {
    core: Client,
    online: bool,
    /// Messages the client produced while offline.
    outbox: Vec<ClientToProvider>,
    /// Messages its provider had for it while it was offline.
    mailbox: Vec<ProviderToClient>,
    epoch: Option<u64>,
    received: usize,
    /// When it is due a tick.
    gate: TickGate,
}

struct Host {
    handle: HostHandle,
    disk: Durable<Server>,
    running: bool,
}

/// The running world.
struct World<'a> {
    sim: turmoil::Sim<'a>,
    hosts: BTreeMap<Domain, Host>,
    clients: BTreeMap<ClientUri, ClientSlot>,
    net_trace: net::Trace,
    rec: Recorder,
    oracles: Oracles,
    room: RoomUri,
    hub: Domain,
    /// Per hub: how many of its log entries for the room are indexed.
    log_indexed: BTreeMap<Domain, usize>,
    ops: OpCounts,
    faults: BTreeMap<String, u64>,
    /// Hub rejections by rule id (or response code when no rule applies).
    rejections: BTreeMap<String, u64>,
    links: Links,
    /// Scripted steps that are due but wait for their precondition, per client in order.
    waiting: BTreeMap<ClientUri, std::collections::VecDeque<usize>>,
    /// Clients hosted by honest providers (the oracles and convergence are about them).
    honest: BTreeSet<ClientUri>,
    /// Providers that are not adversaries.
    honest_providers: BTreeSet<Domain>,
    /// The scripted steps: handed, settled, refused.
    steps: StepBook,
}

impl World<'_> {
    fn t(&self) -> u64 {
        self.sim.elapsed().as_millis() as u64
    }
    fn now(&self) -> u64 {
        net::EPOCH_MS + self.t()
    }

    fn send(&mut self, c: &ClientUri, outs: Vec<ClientOutput>) {
        let Some(slot) = self.clients.get_mut(c) else {
            return;
        };
        for ClientOutput::ToProvider(m) in outs {
            if slot.online {
                if let Some(h) = self.hosts.get(&c.domain()) {
                    h.handle.send_from_client(c.clone(), m);
                }
            } else {
                slot.outbox.push(m);
            }
        }
    }

    /// Records a client's events and feeds the oracles.
    fn client_events(&mut self, c: &ClientUri) {
        let t = self.t();
        let Some(slot) = self.clients.get_mut(c) else {
            return;
        };
        let events = slot.core.take_events();
        for e in events {
            let line = self.rec.count() + 1;
            self.rec.event(
                t,
                c.as_str(),
                What::Client {
                    event: serde_json::to_value(&e).unwrap_or(Value::Null),
                },
            );
            match &e {
                ClientEvent::Joined { room, epoch, .. } | ClientEvent::Epoch { room, epoch } => {
                    let joined = matches!(e, ClientEvent::Joined { .. });
                    self.client_epoch(t, c, room, *epoch, joined, line);
                }
                ClientEvent::Removed { .. } => {
                    self.steps.removed(c);
                    if let Some(s) = self.clients.get_mut(c) {
                        s.epoch = None;
                    }
                }
                ClientEvent::MessageSent {
                    room, message_id, ..
                } => {
                    let epoch = self.clients[c].epoch.unwrap_or(0);
                    self.oracles.message_sent(Sent {
                        room: room.clone(),
                        message_id: message_id.clone(),
                        sender: c.clone(),
                        epoch,
                        line,
                    });
                }
                ClientEvent::MessageReceived {
                    room, message_id, ..
                } if self.honest.contains(c) => {
                    self.oracles.message_received(c, room, message_id);
                    if let Some(s) = self.clients.get_mut(c) {
                        s.received += 1;
                    }
                }
                ClientEvent::MessageBuilt {
                    room,
                    mls_message_sha256,
                } => self
                    .oracles
                    .message_built(c, room, mls_message_sha256, line),
                ClientEvent::OpSucceeded { op, .. } => {
                    self.ops.succeeded += 1;
                    self.steps.settle(c, op, None);
                }
                ClientEvent::OpFailed {
                    op,
                    origin,
                    reason,
                    request_sha256,
                    ..
                } => {
                    self.ops.failed += 1;
                    if *op == "join-external" && self.honest.contains(c) {
                        self.oracles.join_failed(c, *origin, reason, line);
                    }
                    let failure = (origin, reason.as_str(), request_sha256.as_deref());
                    self.steps.settle(c, op, Some(failure));
                }
                _ => {}
            }
        }
    }

    /// Client `c` joined `room` (`joined`) or moved to a new epoch there.
    fn client_epoch(
        &mut self,
        t: u64,
        c: &ClientUri,
        room: &RoomUri,
        epoch: u64,
        joined: bool,
        line: u64,
    ) {
        if joined {
            self.steps.joined(c);
        }
        if joined && self.honest.contains(c) {
            self.oracles.arrival_joined(c, room);
        }
        if let Some(s) = self.clients.get_mut(c) {
            s.epoch = Some(epoch);
        }
        // The full view (GroupContext, members, room state) only for the
        // oracles, which judge honest clients.
        if self.honest.contains(c) {
            if let Some(view) = self.clients[c].core.room_view(room) {
                let hub = self.hub_view();
                let current = self.current_hub();
                let hub = hub.as_ref().map(|(e, _)| (current.as_str(), *e));
                self.oracles.client_epoch(t, c, room, &view, hub, line);
            }
        }
    }

    /// The room's current hub (x-hub-transfer): the provider whose hub sequences the
    /// room with the highest generation; the initial hub if none does.
    fn current_hub(&self) -> Domain {
        let mut best: Option<(u64, Domain)> = None;
        for (d, h) in &self.hosts {
            let g = h
                .disk
                .with(|s| {
                    s.room_view(&self.room)
                        .and_then(|v| v.sequencing.then_some(v.generation))
                })
                .flatten();
            if let Some(g) = g {
                if best.as_ref().is_none_or(|(bg, _)| g > *bg) {
                    best = Some((g, d.clone()));
                }
            }
        }
        best.map_or_else(|| self.hub.clone(), |(_, d)| d)
    }

    /// The current hub's (epoch, GroupContext) for the room, if it hosts it.
    fn hub_view(&self) -> Option<(u64, Vec<u8>)> {
        self.hosts.get(&self.current_hub())?.disk.with(|s| {
            let g = s.room_view(&self.room)?.group()?;
            Some((g.epoch, g.group_context))
        })?
    }

    /// The current hub's committed room state and members, if it keeps an MLS view
    /// (for departure-completes).
    fn hub_committed(&self) -> Option<CommittedState> {
        self.hosts.get(&self.current_hub())?.disk.with(|s| {
            let r = s.room_view(&self.room)?;
            let g = r.group()?;
            Some(CommittedState {
                room: self.room.clone(),
                epoch: g.epoch,
                participants: r
                    .committed
                    .participants
                    .iter()
                    .map(|p| (p.user.clone(), p.role))
                    .collect(),
                members: g.members,
            })
        })?
    }

    /// Records host events and server events; indexes the hub's new log entries.
    fn collect(&mut self) {
        let t = self.t();
        for e in self.net_trace.take() {
            self.rec.net_event(net::EPOCH_MS, &e);
        }
        let domains: Vec<Domain> = self.hosts.keys().cloned().collect();
        for d in domains {
            let events = self.hosts[&d]
                .disk
                .with(Server::take_events)
                .unwrap_or_default();
            for e in events {
                let line = self.rec.count() + 1;
                let what = match &e {
                    ServerEvent::Hub(h) => What::Hub {
                        event: serde_json::to_value(h).unwrap_or(Value::Null),
                    },
                    ServerEvent::Follower(f) => What::Follower {
                        event: serde_json::to_value(f).unwrap_or(Value::Null),
                    },
                };
                self.rec.event(t, d.as_str(), what);
                if let ServerEvent::Hub(h) = &e {
                    self.hub_event(t, &d, h, line);
                }
            }
        }
        // Index new hub log entries (of every hub that hosted the room) before any
        // delivery of them is looked at.
        let hubs: Vec<Domain> = self.hosts.keys().cloned().collect();
        for d in hubs {
            self.index_log(d);
        }
    }

    /// Feeds hub `d`'s event `e` (trace line `line`) to the oracles and the step
    /// bookkeeping: accepted senders and commits, refusals by rule.
    fn hub_event(&mut self, t: u64, d: &Domain, e: &HubEvent, line: u64) {
        match e {
            HubEvent::SenderAccepted {
                room,
                epoch,
                sending_uri,
                mls_message_sha256,
            } => {
                self.oracles.sender_accepted(
                    t,
                    d.as_str(),
                    room,
                    *epoch,
                    sending_uri,
                    mls_message_sha256,
                    line,
                );
            }
            HubEvent::Rejected {
                rule,
                code,
                request_sha256,
                ..
            } => {
                let key = rule.map_or_else(|| code.clone(), str::to_string);
                *self.rejections.entry(key.clone()).or_default() += 1;
                self.steps.hub_refused(request_sha256, key, code);
            }
            HubEvent::Accepted {
                room,
                kind: "commit",
                epoch,
                seq,
                ..
            } => {
                self.oracles
                    .commit_accepted(t, d.as_str(), room, *epoch, *seq, line);
                if room == &self.room && *d == self.current_hub() {
                    if let Some((he, gc)) = self.hub_view() {
                        self.oracles.hub_epoch(t, d.as_str(), room, he, gc, line);
                    }
                }
            }
            _ => {}
        }
    }

    /// Gives the oracles hub `d`'s log entries for the room logged since the last call.
    fn index_log(&mut self, d: Domain) {
        let from = self.log_indexed.get(&d).copied().unwrap_or(0);
        let (generation, new): (u64, Vec<(Vec<u8>, u64, u64)>) = self
            .hosts
            .get(&d)
            .and_then(|h| {
                h.disk.with(|s| {
                    s.room_view(&self.room).map(|r| {
                        // Entries are indexed soon after they are logged, while the
                        // hub still has the generation it logged them under.
                        let new = r
                            .log_from(from)
                            .map(|e| (e.fanout.to_vec(), e.seq, e.epoch))
                            .collect();
                        (r.log_generation, new)
                    })
                })
            })
            .flatten()
            .unwrap_or_default();
        let line = self.rec.count();
        for (f, seq, epoch) in &new {
            self.oracles
                .logged(d.as_str(), &self.room, f, generation, *seq, *epoch, line);
        }
        *self.log_indexed.entry(d).or_default() += new.len();
    }

    /// Hands provider→client messages to online clients (offline ones get them later).
    fn deliver(&mut self) {
        let t = self.t();
        let now = self.now();
        let mut batch = Vec::new();
        for (d, h) in &self.hosts {
            for (c, m) in h.handle.drain_to_clients() {
                batch.push((d.clone(), c, m));
            }
        }
        for (d, c, m) in batch {
            if let (ProviderToClient::Deliver { room, fanout }, true) =
                (&m, self.honest_providers.contains(&d))
            {
                let line = self.rec.count();
                self.oracles
                    .delivered(t, d.as_str(), &c, room, fanout, line);
            }
            let Some(slot) = self.clients.get_mut(&c) else {
                continue;
            };
            if !slot.online {
                slot.mailbox.push(m);
                continue;
            }
            slot.gate.fed();
            let out = slot.core.on_message(now, m);
            self.client_events(&c);
            self.send(&c, out);
        }
    }

    /// Ticks every online client whose next timer is due (`Client::next_wakeup`): one due
    /// after its last tick, or any due one once an input reached it since.
    fn tick_due_clients(&mut self) {
        let now = self.now();
        let cs: Vec<ClientUri> = self.clients.keys().cloned().collect();
        for c in cs {
            let Some(slot) = self.clients.get_mut(&c) else {
                continue;
            };
            if !slot.online || !slot.gate.due(slot.core.next_wakeup(), now) {
                continue;
            }
            slot.gate.ticked(now);
            let out = slot.core.on_tick(now);
            self.client_events(&c);
            self.send(&c, out);
        }
    }

    fn set_online(&mut self, c: &ClientUri, online: bool) {
        let now = self.now();
        let Some(slot) = self.clients.get_mut(c) else {
            return;
        };
        slot.online = online;
        if !online {
            return;
        }
        slot.gate.fed();
        let outbox = std::mem::take(&mut slot.outbox);
        let mailbox = std::mem::take(&mut slot.mailbox);
        if let Some(h) = self.hosts.get(&c.domain()) {
            for m in outbox {
                h.handle.send_from_client(c.clone(), m);
            }
        }
        for m in mailbox {
            let Some(slot) = self.clients.get_mut(c) else {
                return;
            };
            slot.gate.fed();
            let out = slot.core.on_message(now, m);
            self.client_events(c);
            self.send(c, out);
        }
    }

    fn open_fault(&mut self, w: &Window, open: bool, names: &BTreeMap<String, ClientUri>) {
        let t = self.t();
        let fault = w.describe();
        let what = if open {
            What::FaultStart { fault }
        } else {
            What::FaultEnd { fault }
        };
        self.rec.event(t, "sim", what);
        if open {
            *self.faults.entry(w.fault.kind().to_string()).or_default() += 1;
        }
        match &w.fault {
            Fault::Crash { provider } => {
                let Some((d, h)) = self.hosts.iter_mut().find(|(d, _)| d.as_str() == provider)
                else {
                    return;
                };
                // Overlapping crash windows: the first crash wins, its end restarts.
                if open && h.running {
                    h.running = false;
                    self.sim.crash(d.as_str());
                } else if !open && !h.running {
                    h.running = true;
                    self.sim.bounce(d.as_str());
                }
            }
            Fault::Offline { client } => {
                if let Some(c) = names.get(&client_key(client)).cloned() {
                    self.set_online(&c, !open);
                }
            }
            f => {
                let f = f.clone();
                self.links.apply(&mut self.sim, &f, open);
            }
        }
    }

    /// Hands scripted step `step` to its client `c`: records the op, queues its command
    /// and tells the oracles what it starts; a step without a command, or one the client
    /// refuses to queue, has failed.
    fn command(&mut self, c: &ClientUri, step: usize, script: &Script) {
        let Some(hub_sender) = script.senders.get(&self.hub) else {
            return;
        };
        let st = script.scenario.script[step].get_ref();
        let op = &st.op;
        let (t, now) = (self.t(), self.now());
        let cmd = op_command(
            op,
            c,
            &self.room,
            hub_sender,
            &script.users,
            &script.senders,
            script.preset,
        );
        self.rec.event(t, c.as_str(), op_line(op, None));
        let op_line = self.rec.count();
        self.ops.issued += 1;
        let Some(cmd) = cmd else {
            self.steps.end[step] = Some(StepEnd::Failed {
                reason: format!("{}: no command for this op", op.name()),
            });
            return;
        };
        let Some(slot) = self.clients.get_mut(c) else {
            return;
        };
        let started = if self.honest.contains(c) {
            let view = slot.core.room_view(&self.room);
            let may_be_refused = !st.may_refuse.is_empty();
            Started::of(
                op,
                c,
                &self.room,
                &script.users,
                view.as_ref(),
                may_be_refused,
                op_line,
            )
        } else {
            Started::default()
        };
        slot.gate.fed();
        match slot.core.command(now, cmd) {
            Ok(out) => {
                self.steps.handed(c, step);
                started.tell(&mut self.oracles, c, &self.room, op_line);
                self.client_events(c);
                self.send(c, out);
            }
            Err(e) => {
                self.ops.refused += 1;
                self.steps.end[step] = Some(StepEnd::Failed {
                    reason: format!("{}: the client refused it: {e}", op.name()),
                });
                self.rec.event(
                    t,
                    c.as_str(),
                    What::OpRefused {
                        reason: e.to_string(),
                    },
                );
            }
        }
    }

    /// Whether `op` makes sense for `c` now, as its user would see it: a member for
    /// everything but create and join; the target user a participant for removals and
    /// role changes; for join, another device of the user sees the user as a participant.
    fn ready(&self, c: &ClientUri, op: &Op, users: &BTreeMap<String, UserUri>) -> bool {
        let Some(slot) = self.clients.get(c) else {
            return false;
        };
        if !slot.online {
            return false;
        }
        let view = || slot.core.room_view(&self.room);
        let participant = |u: &str| {
            users.get(u).is_some_and(|u| {
                view()
                    .and_then(|v| v.state)
                    .is_some_and(|st| st.is_participant(u) && !st.is_banned(u))
            })
        };
        match op {
            Op::Create => true,
            Op::Join => self.clients.iter().any(|(o, s)| {
                o != c
                    && o.user() == c.user()
                    && s.core
                        .room_view(&self.room)
                        .and_then(|v| v.state)
                        .is_some_and(|st| st.is_participant(&c.user()))
            }),
            Op::Remove { user } | Op::Kick { user } | Op::Ban { user } | Op::Role { user, .. } => {
                participant(user)
            }
            _ => view().is_some(),
        }
    }

    /// `Ok` once every honest client has converged with the hub; else the first reason.
    fn converged(&self) -> Result<(), String> {
        for (d, h) in &self.hosts {
            if !h.running {
                return Err(format!("{d} is down"));
            }
            if h.handle.waiting_from_clients() > 0 {
                return Err(format!("{d} has client messages waiting"));
            }
            let idle = h.disk.with(|s| s.hub_fanout_idle()).unwrap_or(true);
            if !idle {
                return Err(format!("{d}'s hub has fan-out not yet delivered"));
            }
        }
        let hub = self
            .hosts
            .get(&self.current_hub())
            .and_then(|h| {
                h.disk.with(|s| {
                    let g = s.room_view(&self.room)?.group()?;
                    let members: BTreeSet<ClientUri> = g.members.into_iter().collect();
                    Some((g.epoch, g.group_context, members))
                })
            })
            .flatten();
        // Without an MLS view at the hub (enforcement off) the members are compared with
        // each other: one epoch, one GroupContext, and everyone they list has joined.
        let hub = hub.or_else(|| self.members_view());
        for (c, slot) in self
            .clients
            .iter()
            .filter(|(c, _)| self.honest.contains(*c))
        {
            if !slot.online || !slot.outbox.is_empty() || !slot.mailbox.is_empty() {
                return Err(format!("{c} is offline or has undelivered mail"));
            }
            if !slot.core.is_idle(&self.room) {
                return Err(format!("{c} has an operation in flight"));
            }
            let view = slot.core.room_view(&self.room);
            match (&hub, view) {
                (Some((e, gc, members)), Some(v))
                    if members.contains(c) && (v.epoch != *e || &v.group_context != gc) =>
                {
                    return Err(format!("{c} is at epoch {} but the hub is at {e}", v.epoch));
                }
                (Some((_, _, members)), Some(_)) if members.contains(c) => {}
                (Some((e, _, members)), None) if members.contains(c) => {
                    return Err(format!(
                        "{c} is a member at the hub (epoch {e}) but has not joined"
                    ));
                }
                (_, Some(v)) => {
                    return Err(format!(
                        "{c} still sees itself in the room at epoch {} but the hub does not",
                        v.epoch
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The highest epoch any honest client is at, with its GroupContext and member list
    /// (used when the hub keeps no MLS view).
    fn members_view(&self) -> Option<(u64, Vec<u8>, BTreeSet<ClientUri>)> {
        self.clients
            .iter()
            .filter(|(c, _)| self.honest.contains(*c))
            .filter_map(|(_, s)| s.core.room_view(&self.room))
            .max_by_key(|v| v.epoch)
            .map(|v| (v.epoch, v.group_context, v.members.into_iter().collect()))
    }

    fn state_table(&self) -> Vec<NodeState> {
        let mut rows = Vec::new();
        for (d, h) in &self.hosts {
            let info = h
                .disk
                .with(|s| {
                    let r = s.room_view(&self.room);
                    let g = r.and_then(|r| r.group());
                    (
                        g.as_ref().map(|g| g.epoch),
                        g.as_ref().map(|g| g.leaves),
                        r.map_or(0, |r| r.log_len),
                        s.hub_fanout_idle(),
                        r.map_or(0, |r| r.pending),
                    )
                })
                .unwrap_or((None, None, 0, true, 0));
            rows.push(NodeState {
                node: d.as_str().into(),
                role: if *d == self.current_hub() {
                    "hub"
                } else {
                    "follower"
                },
                status: if h.running { "up" } else { "down" },
                epoch: info.0,
                members: info.1,
                log: info.2,
                idle: info.3,
                note: format!(
                    "{} pending proposals, {} client messages waiting",
                    info.4,
                    h.handle.waiting_from_clients()
                ),
            });
        }
        for (c, s) in &self.clients {
            let v = s.core.room_view(&self.room);
            rows.push(NodeState {
                node: c.as_str().into(),
                role: "client",
                status: if s.online { "online" } else { "offline" },
                epoch: v.as_ref().map(|v| v.epoch),
                members: v.as_ref().map(|v| v.members.len()),
                log: s.received,
                idle: s.core.is_idle(&self.room),
                note: format!("{} mail, {} outbox", s.mailbox.len(), s.outbox.len()),
            });
        }
        rows
    }
}

/// The trace header's and run record's `variant`: enforcement, disabled rules, bugs,
/// adversaries, and the variant keys that are not the default.
pub fn variant_json(scenario: &Scenario, resolved: &Resolved) -> Value {
    let mut variant = json!({
        "enforcement": scenario.variant.enforcement.name(),
        "disabled_rules": resolved.disabled_rules.iter().map(|r| r.id()).collect::<Vec<_>>(),
        "bugs": resolved.bugs.iter().collect::<Vec<_>>(),
        "adversaries": resolved
            .adversaries
            .iter()
            .map(|(d, a)| json!({"provider": d.as_str(), "behaviour": a.id()}))
            .collect::<Vec<_>>(),
    });
    // Named only when not the default, so traces of the default variant are unchanged.
    if scenario.variant.leave_order != LeaveOrder::Atomic {
        variant["leave_order"] = json!(scenario.variant.leave_order.name());
    }
    if scenario.variant.room_state != RoomStateMode::Bound {
        variant["room_state"] = json!(scenario.variant.room_state.name());
    }
    if scenario.variant.hub_transfer != HubTransferKind::Cooperative {
        variant["hub_transfer"] =
            serde_json::to_value(scenario.variant.hub_transfer).unwrap_or(Value::Null);
    }
    // Set by a matrix axis or --variant, so that a replay applies them again.
    if !scenario.overrides.is_empty() {
        variant["overrides"] = json!(scenario.overrides);
    }
    variant
}

/// Every scripted step that did not simply happen (`RunReport::steps_not_done`);
/// `adversary(client name)`: the step's client is hosted by a malicious provider.
pub fn step_notes(
    scenario: &Scenario,
    step_end: &[Option<StepEnd>],
    adversary: impl Fn(&str) -> bool,
) -> Vec<StepNote> {
    step_end
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let e = e.as_ref().filter(|e| **e != StepEnd::Done)?;
            let st = scenario.script[i].get_ref();
            let adversary = adversary(&st.client);
            Some(StepNote {
                step: i,
                at_ms: st.at_ms,
                client: st.client.clone(),
                op: st.op.name(),
                end: e.clone(),
                declared: adversary || st.allows(e),
                adversary,
            })
        })
        .collect()
}

/// A run's outcome (see [`Outcome`]): the first that applies.
pub fn outcome_of(
    violation: bool,
    liveness: bool,
    steps_not_done: &[StepNote],
    steps_done: usize,
    steps_total: usize,
) -> Outcome {
    if violation {
        Outcome::Violation
    } else if liveness {
        Outcome::Liveness
    } else if steps_not_done.iter().any(|n| !n.declared)
        || steps_done + steps_not_done.len() < steps_total
    {
        Outcome::Incomplete
    } else {
        Outcome::Ok
    }
}

/// SHA-256 of the scenario text, hex.
pub fn scenario_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// What the driver hands scripted steps with: the scenario, its clients by script name
/// ("alice/1"), its users by name, every provider's hub external sender and the room's
/// role preset.
struct Script<'a> {
    scenario: &'a Scenario,
    names: BTreeMap<String, ClientUri>,
    users: BTreeMap<String, UserUri>,
    senders: BTreeMap<Domain, openmls::prelude::ExternalSender>,
    preset: nodes::room::RolePreset,
}

impl Script<'_> {
    /// The client a script names ("alice" is "alice/1").
    fn client(&self, name: &str) -> Option<&ClientUri> {
        self.names.get(&client_key(name))
    }
}

/// How the driver loop ended.
#[derive(Default)]
struct LoopEnd {
    /// Every honest client converged (the time).
    converged_at: Option<u64>,
    /// Not converged by the liveness bound (why).
    liveness: Option<String>,
    /// A host failed (turmoil's error).
    host_error: Option<String>,
    /// When the script's last step was handed, and the openmls time then.
    last_step_mark: Option<(std::time::Instant, u128)>,
}

/// The trace's first line: scenario (with its text), seed, variant, build.
fn header(scenario: &Scenario, text: &str, seed: u64, variant: &Value, keep: bool) -> Recorder {
    let header = Header {
        format: TRACE_FORMAT,
        scenario: scenario.name.clone(),
        scenario_sha256: scenario_hash(text),
        scenario_toml: text.to_string(),
        seed,
        variant: variant.clone(),
        build: env!("CARGO_PKG_VERSION").to_string(),
        testbed: None,
    };
    Recorder::with_header(&header, keep)
}

/// The turmoil simulation of `scenario`'s network, and one durable host per provider.
fn spawn_hosts<'a>(
    scenario: &Scenario,
    resolved: &Resolved,
    seed: u64,
    net_trace: &net::Trace,
) -> (turmoil::Sim<'a>, BTreeMap<Domain, Host>) {
    let net_cfg = &scenario.network;
    let mut builder = net::sim_builder(seed);
    builder
        .min_message_latency(Duration::from_millis(net_cfg.latency_ms[0]))
        .max_message_latency(Duration::from_millis(net_cfg.latency_ms[1]))
        .tick_duration(Duration::from_millis(net_cfg.tick_ms))
        .repair_rate(faults::LOSS_REPAIR_RATE);
    let mut sim = builder.build();
    let mut hosts = BTreeMap::new();
    for d in &resolved.providers {
        let (dd, sc, rs) = (d.clone(), scenario.clone(), resolved.clone());
        let (handle, disk) = net::spawn_durable_host(
            &mut sim,
            d.clone(),
            HostConfig::default(),
            net_trace,
            move || make_server(&sc, &rs, &dd, seed),
        );
        hosts.insert(
            d.clone(),
            Host {
                handle,
                disk,
                running: true,
            },
        );
    }
    (sim, hosts)
}

impl<'a> World<'a> {
    /// The world of `scenario` with `seed`: its hosts up, no client yet, the oracles
    /// armed (with the ghost devices malicious providers hold, oracle no-ghost-device).
    fn new(scenario: &Scenario, resolved: &Resolved, seed: u64, rec: Recorder) -> World<'a> {
        let net_trace = net::Trace::new();
        let (sim, hosts) = spawn_hosts(scenario, resolved, seed, &net_trace);
        let latency = scenario.network.latency_ms;
        World {
            sim,
            hosts,
            clients: BTreeMap::new(),
            net_trace,
            rec,
            oracles: resolved.armed_oracles(scenario),
            room: resolved.room.clone(),
            hub: resolved.hub.clone(),
            log_indexed: BTreeMap::new(),
            ops: OpCounts::default(),
            faults: BTreeMap::new(),
            waiting: BTreeMap::new(),
            rejections: BTreeMap::new(),
            honest: resolved.honest_clients().cloned().collect(),
            honest_providers: resolved.honest_providers().cloned().collect(),
            links: Links::new((
                Duration::from_millis(latency[0]),
                Duration::from_millis(latency[1]),
            )),
            steps: StepBook::new(scenario),
        }
    }

    /// Creates every client, online, and has it publish its KeyPackages; what the
    /// driver hands steps with.
    fn start_clients<'s>(
        &mut self,
        scenario: &'s Scenario,
        resolved: &Resolved,
        seed: u64,
    ) -> Script<'s> {
        let mut names = BTreeMap::new();
        for c in &resolved.clients {
            let (mut core, kps) = make_client(scenario, resolved, c, seed);
            let out = core.publish_key_packages(kps);
            self.clients.insert(
                c.clone(),
                ClientSlot {
                    core,
                    online: true,
                    outbox: Vec::new(),
                    mailbox: Vec::new(),
                    epoch: None,
                    received: 0,
                    gate: TickGate::default(),
                },
            );
            self.send(c, vec![out]);
            names.insert(format!("{}/{}", c.user().name(), c.device()), c.clone());
        }
        let config = enforcement_config(scenario, resolved);
        Script {
            scenario,
            names,
            users: resolved
                .users
                .iter()
                .map(|u| (u.name(), u.clone()))
                .collect(),
            senders: resolved
                .providers
                .iter()
                .map(|d| {
                    (
                        d.clone(),
                        Hub::new(d.clone(), seed, config.clone()).external_sender(),
                    )
                })
                .collect(),
            preset: scenario.world.room.get_ref().preset.role_preset(),
        }
    }

    /// The driver loop, once per turmoil step (see the module docs), until every honest
    /// client converged after healing, the liveness bound, a host failure or (with
    /// `on_violation = "stop"`) a violation.
    fn drive(&mut self, script: &Script, schedule: &mut Schedule) -> LoopEnd {
        let scenario = script.scenario;
        let stop_on_violation = scenario.oracles.on_violation == OnViolation::Stop;
        let (chaos, deadline) = (schedule.chaos_ms, schedule.deadline_ms);
        self.rec.event(
            0,
            "sim",
            What::Phase {
                phase: Phase::Chaos { until_ms: chaos },
            },
        );
        let mut end = LoopEnd::default();
        let mut healed = false;
        let mut next_step_tick = 0;
        let mut next_check = schedule.heal_start_ms;
        loop {
            let t = self.t();
            while let Some(a) = schedule.next_fault(t) {
                self.open_fault(schedule.window(a), a.open, &script.names);
            }
            if !healed && t >= chaos {
                healed = true;
                self.rec.event(
                    t,
                    "sim",
                    What::Phase {
                        phase: Phase::Heal { bound_ms: deadline },
                    },
                );
            }
            while let Some(i) = schedule.next_step(t) {
                if let Some(c) = script.client(&scenario.script[i].get_ref().client) {
                    self.waiting.entry(c.clone()).or_default().push_back(i);
                }
            }
            self.tick_due_clients();
            if t >= next_step_tick {
                next_step_tick = t + CLIENT_TICK_MS;
                self.hand_ready_steps(script, &mut end.last_step_mark);
            }
            if let Err(e) = self.sim.step() {
                end.host_error = Some(e.to_string());
                break;
            }
            self.collect();
            self.deliver();
            if stop_on_violation && !self.oracles.violations().is_empty() {
                break;
            }
            let t = self.t();
            if healed && schedule.all_handed() && t >= next_check {
                next_check = t + CONVERGENCE_CHECK_MS;
                match self.settled(t, script, deadline) {
                    Some(Ok(at)) => end.converged_at = Some(at),
                    Some(Err(liveness)) => end.liveness = Some(liveness),
                    None => continue,
                }
                break;
            }
        }
        end
    }

    /// Hands every waiting step whose precondition holds to its client, in order;
    /// `last_step_mark`: set when the script's last step is handed.
    fn hand_ready_steps(
        &mut self,
        script: &Script,
        last_step_mark: &mut Option<(std::time::Instant, u128)>,
    ) {
        let scenario = script.scenario;
        let cs: Vec<ClientUri> = self.waiting.keys().cloned().collect();
        for c in cs {
            while let Some(&i) = self.waiting.get(&c).and_then(|q| q.front()) {
                if !self.ready(&c, &scenario.script[i].get_ref().op, &script.users) {
                    break;
                }
                if let Some(q) = self.waiting.get_mut(&c) {
                    q.pop_front();
                }
                if i + 1 == scenario.script.len() {
                    *last_step_mark = Some((
                        std::time::Instant::now(),
                        nodes::mls::cost::snapshot().nanos,
                    ));
                }
                self.command(&c, i, script);
            }
        }
        self.waiting.retain(|_, q| !q.is_empty());
    }

    /// After healing, once every fault and step is handed: `Some(Ok(t))` when every
    /// honest client has converged, `Some(Err(why))` past the liveness bound
    /// (`deadline`), else `None` (keep going). Quiescent with steps still waiting: they
    /// can never become ready, so they are abandoned.
    fn settled(&mut self, t: u64, script: &Script, deadline: u64) -> Option<Result<u64, String>> {
        match self.converged() {
            Ok(()) if !self.waiting.is_empty() => {
                self.abandon_waiting(t, script.scenario);
                None
            }
            Ok(()) => Some(Ok(t)),
            Err(reason) if t >= deadline => Some(Err(format!(
                "not converged {} ms after healing: {reason}",
                script.scenario.phases.heal_ms
            ))),
            Err(_) => None,
        }
    }

    /// Every step still waiting for its precondition is abandoned.
    fn abandon_waiting(&mut self, t: u64, scenario: &Scenario) {
        for (c, q) in std::mem::take(&mut self.waiting) {
            for i in q {
                let op = &scenario.script[i].get_ref().op;
                self.rec.event(
                    t,
                    c.as_str(),
                    What::OpAbandoned {
                        op: op.name().to_string(),
                        step: i as u64,
                        reason: "its precondition never held".to_string(),
                        client: None,
                    },
                );
                self.ops.abandoned += 1;
                self.steps.end[i] = Some(StepEnd::Abandoned);
            }
        }
    }

    /// The oracles' checks at the end of the run (`t`): order, once and seq continuity
    /// hold in any run; what must have arrived, only in a converged one.
    fn final_checks(&mut self, t: u64, converged: bool) {
        self.oracles.check_handoffs(t, converged);
        if converged {
            let honest = self.honest.clone();
            self.oracles.check_delivery(t, &honest);
            let hub_final = self.hub_committed();
            self.oracles.check_departures(t, hub_final.as_ref());
            self.oracles.check_arrivals(t, hub_final.as_ref());
        }
    }
}

/// Runs `scenario` (whose source is `text`) with `seed`. `keep_trace` keeps the JSONL
/// lines in the report.
pub fn run(
    scenario: &Scenario,
    resolved: &Resolved,
    text: &str,
    seed: u64,
    keep_trace: bool,
) -> RunReport {
    let wall = std::time::Instant::now();
    let variant = variant_json(scenario, resolved);
    let rec = header(scenario, text, seed, &variant, keep_trace);
    let mut w = World::new(scenario, resolved, seed, rec);
    let script = w.start_clients(scenario, resolved, seed);
    let mut schedule = Schedule::new(scenario, resolved, seed);
    let mut end = w.drive(&script, &mut schedule);
    let t = w.t();
    w.final_checks(t, end.converged_at.is_some());
    if let Some(e) = end.host_error.take() {
        end.liveness = Some(format!("a host failed: {e}"));
    }
    w.steps.close();
    let steps_not_done = step_notes(scenario, &w.steps.end, |name| {
        script.client(name).is_some_and(|c| !w.honest.contains(c))
    });
    let mut report = w.verdict(scenario, &schedule, steps_not_done, &end);
    report.seed = seed;
    report.scenario_sha256 = scenario_hash(text);
    report.variant = variant;
    report.wall_ms = wall.elapsed().as_millis() as u64;
    report.last_step_cost = end.last_step_mark.map(|(at, nanos)| StepCost {
        wall_ms: at.elapsed().as_secs_f64() * 1000.0,
        mls_ms: nodes::mls::cost::snapshot().nanos.saturating_sub(nanos) as f64 / 1e6,
    });
    report
}

impl World<'_> {
    /// The run's outcome, recorded as the trace's last lines (its violations, then
    /// `end`), and its report (without what only `run` knows: seed, scenario hash,
    /// variant, wall time, the last step's cost).
    fn verdict(
        &mut self,
        scenario: &Scenario,
        schedule: &Schedule,
        steps_not_done: Vec<StepNote>,
        end: &LoopEnd,
    ) -> RunReport {
        let t = self.t();
        let violations = self.oracles.violations().to_vec();
        let steps_done = self.steps.done();
        let outcome = outcome_of(
            !violations.is_empty(),
            end.liveness.is_some(),
            &steps_not_done,
            steps_done,
            scenario.script.len(),
        );
        let state_table = if outcome == Outcome::Ok {
            Vec::new()
        } else {
            self.state_table()
        };
        for v in &violations {
            self.rec.event(t, "sim", v.line());
        }
        self.rec.event(
            t,
            "sim",
            What::End {
                outcome: outcome.into(),
                liveness: end.liveness.clone(),
                faults: self.faults.clone(),
            },
        );
        let expectation = scenario.expectation();
        let ids: Vec<&str> = violations.iter().map(|v| v.id).collect();
        let as_expected = expectation.run_as_expected(outcome.name(), &ids);
        let faults_never_fired = schedule
            .fault_kinds(scenario)
            .into_iter()
            .filter(|k| self.faults.get(k).copied().unwrap_or(0) == 0)
            .collect();
        let (accepted, received) = self.oracles.message_counts();
        RunReport {
            seed: 0,
            scenario: scenario.name.clone(),
            scenario_file: None,
            scenario_sha256: String::new(),
            variant: Value::Null,
            outcome,
            expected: expectation.outcome,
            as_expected,
            violations,
            liveness: end.liveness.clone(),
            trace_hash: self.rec.hash(),
            trace_events: self.rec.count(),
            sim_time_ms: t,
            wall_ms: 0,
            faults: self.faults.clone(),
            faults_never_fired,
            hub_rejections: self.rejections.clone(),
            converged_at_ms: end.converged_at,
            ops: self.ops.clone(),
            steps_total: scenario.script.len(),
            steps_done,
            steps_not_done,
            messages_accepted: accepted,
            messages_received: received,
            state_table,
            trace: self.rec.take_lines(),
            last_step_cost: None,
        }
    }
}

/// The client command a scenario step stands for, on `room` whose hub's external sender is
/// `hub_sender`. `None` when the step names an unknown user or provider. Shared by the
/// simulator and the testbed's control API (one mapping from steps to commands).
pub fn op_command(
    op: &Op,
    c: &ClientUri,
    room: &RoomUri,
    hub_sender: &openmls::prelude::ExternalSender,
    users: &BTreeMap<String, UserUri>,
    senders: &BTreeMap<Domain, openmls::prelude::ExternalSender>,
    preset: nodes::room::RolePreset,
) -> Option<Command> {
    let u = |n: &str| users.get(n).cloned();
    let room = room.clone();
    match op {
        Op::Create => Some(Command::CreateRoom {
            room,
            preset,
            hub_sender: hub_sender.clone(),
        }),
        Op::Add { user, role } => u(user).map(|user| Command::AddUser {
            room,
            user,
            role: *role,
        }),
        Op::AddUsers { users: us } => Some(Command::AddUsers {
            room,
            users: us.iter().filter_map(|n| u(n)).map(|x| (x, None)).collect(),
        }),
        Op::Remove { user } => u(user).map(|user| Command::RemoveUser { room, user }),
        Op::Kick { user } => u(user).map(|user| Command::Kick { room, user }),
        Op::Ban { user } => u(user).map(|user| Command::Ban { room, user }),
        Op::Role { user, role } => u(user).map(|user| Command::ChangeRole {
            room,
            user,
            role: *role,
        }),
        Op::Leave => Some(Command::Leave { room }),
        Op::Send { text } => Some(Command::Send {
            room,
            text: text.clone(),
        }),
        Op::Join => Some(Command::JoinExternal { room }),
        Op::SelfUpdate => Some(Command::SelfUpdate { room }),
        Op::MoveHub { to } => Domain::new(to).ok().and_then(|to| {
            senders.get(&to).map(|s| Command::MoveHub {
                room,
                to: to.clone(),
                hub_sender: s.clone(),
            })
        }),
        Op::TakeOver => senders.get(&c.domain()).map(|s| Command::TakeOver {
            room,
            hub_sender: s.clone(),
        }),
    }
}

/// The hubs' enforcement configuration of a scenario (its level and disabled rules).
pub fn enforcement_config(scenario: &Scenario, resolved: &Resolved) -> EnforcementConfig {
    let mut config = EnforcementConfig::new(scenario.variant.enforcement.level());
    for r in &resolved.disabled_rules {
        config.disabled.insert(*r);
    }
    config
}

/// Provider `d`'s server core as the scenario configures it (variant, bugs, adversary).
/// Shared by the simulator and the testbed's nodes.
pub fn make_server(scenario: &Scenario, resolved: &Resolved, d: &Domain, seed: u64) -> Server {
    let transfer_mode = match scenario.variant.hub_transfer {
        HubTransferKind::TakeoverUnfenced => TransferMode::Unfenced,
        _ => TransferMode::Fenced,
    };
    Server::new(d.clone(), seed, enforcement_config(scenario, resolved))
        .with_transfer_mode(transfer_mode)
        .with_room_state(scenario.variant.room_state)
        .with_bugs(&resolved.bugs)
        .with_adversary(adversary_of(resolved, d))
}

/// Client `c` as the scenario configures it, and how many KeyPackages it publishes at
/// the start (none for a scripted new device). Shared by the simulator and the testbed.
pub fn make_client(
    scenario: &Scenario,
    resolved: &Resolved,
    c: &ClientUri,
    seed: u64,
) -> (Client, usize) {
    let mut core = Client::new(seed, c.clone());
    core.set_bugs(&resolved.bugs);
    core.set_adversary(adversary_of(resolved, &c.domain()));
    core.set_leave_order(scenario.variant.leave_order);
    core.set_room_state_mode(scenario.variant.room_state);
    let kps = if resolved.new_devices.contains(c) {
        0
    } else {
        KEY_PACKAGES_PER_CLIENT
    };
    (core, kps)
}

/// "alice" → "alice/1".
pub fn client_key(name: &str) -> String {
    if name.contains('/') {
        name.to_string()
    } else {
        format!("{name}/1")
    }
}

fn adversary_of(r: &Resolved, d: &Domain) -> Option<nodes::adversary::Adversary> {
    r.adversaries.iter().find(|(x, _)| x == d).map(|(_, a)| *a)
}
