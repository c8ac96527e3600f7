//! Feeding the simulator's oracles ([`crate::observe::oracles::Oracles`], unchanged) from a merged
//! testbed trace, and settling the scenario's steps from it.
//!
//! The simulator's driver calls the oracles with what it reads from the cores between
//! steps; a testbed node journals the same information ([`super::observe`]), so here the
//! same calls are made line by line in the merged order: `client` events, `client-view`
//! (a client's view after `Joined`/`Epoch`), `hub` events, `hub-view` (the hub's view
//! of the room), `hub-log` entries and `deliver` lines. Step bookkeeping (which op
//! settles which scripted step, hub refusals by rule) and what a handed step starts for
//! the oracles are the simulator's own ([`crate::world::steps`]).
//!
//! # Differences from the simulator, by construction
//! * `message_built` is fed for every line before the rest: on a real machine the hub of
//!   the same process can accept a message within the millisecond the client built it,
//!   and the merged order cannot tell which came first (the oracle only asks whether a
//!   client built it, not when).

use std::collections::{BTreeMap, BTreeSet};

use mimi_reports::records::trace::{ClientView, Event, HubView, What};
use nodes::client::core::{ClientEvent, RoomView};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::room::RoomState;
use serde_json::Value;

use crate::observe::oracles::{CommittedState, Oracles, Sent, Violation};
use crate::scenario::{Op, Resolved, Scenario, StepEnd};
use crate::world::run::OpCounts;
use crate::world::steps::{Started, StepBook};

/// What judging a merged trace found.
#[derive(Debug, Default)]
pub struct Judged {
    pub violations: Vec<Violation>,
    pub step_end: Vec<Option<StepEnd>>,
    pub ops: OpCounts,
    pub rejections: BTreeMap<String, u64>,
    pub messages_accepted: usize,
    pub messages_received: usize,
    /// Lines of the trace the judge could not read (a malformed event: counted, skipped).
    pub unreadable: u64,
}

/// An `op` line: the op's name, its arguments and the step's index.
type OpLine<'l> = (&'l String, &'l BTreeMap<String, Value>, Option<u64>);

struct Judge<'a> {
    scenario: &'a Scenario,
    oracles: Oracles,
    room: RoomUri,
    hub: Domain,
    honest: BTreeSet<ClientUri>,
    honest_providers: BTreeSet<String>,
    users: BTreeMap<String, UserUri>,
    hub_views: BTreeMap<String, HubView>,
    views: BTreeMap<ClientUri, RoomView>,
    epochs: BTreeMap<ClientUri, u64>,
    out: Judged,
    /// The scripted steps, kept as the simulator keeps them.
    steps: StepBook,
}

fn s<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}
fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}
fn unhex(x: &str) -> Vec<u8> {
    hex::decode(x).unwrap_or_default()
}
fn dict(d: &BTreeMap<String, String>) -> BTreeMap<u16, Vec<u8>> {
    d.iter()
        .filter_map(|(k, x)| Some((k.parse().ok()?, hex::decode(x).ok()?)))
        .collect()
}

/// A `client-view` line's view back as the client's [`RoomView`].
fn room_view(v: &ClientView) -> RoomView {
    RoomView {
        epoch: v.epoch,
        group_context: unhex(&v.group_context),
        epoch_authenticator: unhex(&v.epoch_authenticator),
        dictionary: dict(&v.dictionary),
        members: v.members.iter().filter_map(|m| m.parse().ok()).collect(),
        state: v
            .state
            .as_ref()
            .and_then(|d| RoomState::from_dictionary(&dict(d)).ok()),
    }
}

/// The single key and body of an externally tagged enum value (`{"Joined": {...}}`).
fn tagged(v: &Value) -> Option<(&str, &Value)> {
    match v {
        Value::Object(o) if o.len() == 1 => o.iter().next().map(|(k, b)| (k.as_str(), b)),
        Value::String(k) => Some((k.as_str(), &Value::Null)),
        _ => None,
    }
}

impl Judge<'_> {
    fn current_hub(&self) -> String {
        self.hub_views
            .iter()
            .filter(|(_, v)| v.sequencing)
            .max_by_key(|(_, v)| v.generation.unwrap_or(0))
            .map_or_else(|| self.hub.as_str().to_string(), |(d, _)| d.clone())
    }

    fn hub_epoch(&self) -> Option<(u64, Vec<u8>)> {
        let v = self.hub_views.get(&self.current_hub())?;
        Some((
            v.epoch?,
            unhex(v.group_context.as_deref().unwrap_or_default()),
        ))
    }

    fn hub_committed(&self) -> Option<CommittedState> {
        let v = self.hub_views.get(&self.current_hub())?;
        Some(CommittedState {
            room: self.room.clone(),
            epoch: v.epoch?,
            participants: v
                .participants
                .iter()
                .filter_map(|(user, role)| Some((user.parse().ok()?, *role)))
                .collect(),
            members: v
                .members
                .as_ref()?
                .iter()
                .filter_map(|m| m.parse().ok())
                .collect(),
        })
    }

    /// A scripted op handed to its client (trace line `line`); `refused`: the client
    /// refused to queue it (the reason).
    fn op(&mut self, c: &ClientUri, l: &OpLine, line: u64, refused: Option<String>) {
        let (name, args, step) = l;
        let step = step.map(|i| i as usize);
        // The scenario's `Op` back from its name and arguments.
        let mut opv: serde_json::Map<String, Value> =
            args.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        opv.insert("op".into(), Value::from(name.as_str()));
        let Ok(op) = serde_json::from_value::<Op>(Value::Object(opv)) else {
            self.out.unreadable += 1;
            return;
        };
        let Some(step) = step.filter(|i| *i < self.steps.end.len()) else {
            return;
        };
        self.out.ops.issued += 1;
        if let Some(reason) = refused {
            self.out.ops.refused += 1;
            self.steps.end[step] = Some(StepEnd::Failed {
                reason: format!("{}: the client refused it: {reason}", op.name()),
            });
            return;
        }
        self.steps.handed(c, step);
        if !self.honest.contains(c) {
            return;
        }
        let may_be_refused = !self.scenario.script[step].get_ref().may_refuse.is_empty();
        let view = self.views.get(c);
        let started = Started::of(&op, c, &self.room, &self.users, view, may_be_refused, line);
        started.tell(&mut self.oracles, c, &self.room, line);
    }

    fn client_event(&mut self, c: &ClientUri, e: &Value, line: u64) {
        // `ClientEvent` names its ops with `&'static str`: it deserializes from owned input.
        let Ok(event) = <ClientEvent as serde::Deserialize<'static>>::deserialize(e.clone()) else {
            self.out.unreadable += 1;
            return;
        };
        let honest = self.honest.contains(c);
        match event {
            ClientEvent::Joined { room, epoch, .. } => {
                self.steps.joined(c);
                if honest {
                    self.oracles.arrival_joined(c, &room);
                }
                self.epochs.insert(c.clone(), epoch);
            }
            ClientEvent::Epoch { epoch, .. } => {
                self.epochs.insert(c.clone(), epoch);
            }
            ClientEvent::Removed { .. } => {
                self.steps.removed(c);
                self.epochs.remove(c);
                self.views.remove(c);
            }
            ClientEvent::MessageSent {
                room, message_id, ..
            } => {
                let epoch = self.epochs.get(c).copied().unwrap_or(0);
                self.oracles.message_sent(Sent {
                    room,
                    message_id,
                    sender: c.clone(),
                    epoch,
                    line,
                });
            }
            ClientEvent::MessageReceived {
                room, message_id, ..
            } if honest => {
                self.oracles.message_received(c, &room, &message_id);
            }
            ClientEvent::OpSucceeded { op, .. } => {
                self.out.ops.succeeded += 1;
                self.steps.settle(c, op, None);
            }
            ClientEvent::OpFailed {
                op,
                origin,
                reason,
                request_sha256,
                ..
            } => {
                self.out.ops.failed += 1;
                if op == "join-external" && honest {
                    self.oracles.join_failed(c, origin, &reason, line);
                }
                self.steps
                    .settle(c, op, Some((&origin, &reason, request_sha256.as_deref())));
            }
            _ => {}
        }
    }

    fn hub_event(&mut self, t: u64, d: &str, e: &Value, line: u64) {
        let Some((tag, b)) = tagged(e) else {
            self.out.unreadable += 1;
            return;
        };
        let Some(room) = b
            .get("room")
            .and_then(Value::as_str)
            .and_then(|r| r.parse::<RoomUri>().ok())
        else {
            return;
        };
        match tag {
            "SenderAccepted" => self.oracles.sender_accepted(
                t,
                d,
                &room,
                u(b, "epoch"),
                s(b, "sending_uri"),
                s(b, "mls_message_sha256"),
                line,
            ),
            "Rejected" => {
                let code = s(b, "code").to_string();
                let key = b
                    .get("rule")
                    .and_then(Value::as_str)
                    .map_or_else(|| code.clone(), str::to_string);
                *self.out.rejections.entry(key.clone()).or_default() += 1;
                self.steps.hub_refused(s(b, "request_sha256"), key, &code);
            }
            "Accepted" if s(b, "kind") == "commit" => {
                self.oracles
                    .commit_accepted(t, d, &room, u(b, "epoch"), u(b, "seq"), line);
                if room == self.room && d == self.current_hub() {
                    if let Some((he, gc)) = self.hub_epoch() {
                        self.oracles.hub_epoch(t, d, &room, he, gc, line);
                    }
                }
            }
            _ => {}
        }
    }
}

impl<'a> Judge<'a> {
    /// Nothing judged yet: the oracles armed (with the ghost devices malicious providers
    /// hold), no step handed.
    fn new(scenario: &'a Scenario, resolved: &Resolved) -> Judge<'a> {
        Judge {
            scenario,
            oracles: resolved.armed_oracles(scenario),
            room: resolved.room.clone(),
            hub: resolved.hub.clone(),
            honest: resolved.honest_clients().cloned().collect(),
            honest_providers: resolved
                .honest_providers()
                .map(|d| d.as_str().to_string())
                .collect(),
            users: resolved
                .users
                .iter()
                .map(|u| (u.name(), u.clone()))
                .collect(),
            hub_views: BTreeMap::new(),
            views: BTreeMap::new(),
            epochs: BTreeMap::new(),
            out: Judged::default(),
            steps: StepBook::new(scenario),
        }
    }

    /// The first pass over the trace: every message a client built (see the module
    /// docs); which `op` lines (by index) their client refused to queue, and why.
    fn built_and_refused(&mut self, lines: &[(usize, &Event)]) -> BTreeMap<usize, String> {
        let mut refused: BTreeMap<usize, String> = BTreeMap::new();
        let mut last_op: BTreeMap<&str, usize> = BTreeMap::new();
        for &(i, l) in lines {
            let node = l.node.as_str();
            match &l.what {
                What::Client { event } => {
                    if let Some(("MessageBuilt", b)) = tagged(event) {
                        if let (Ok(c), Ok(room)) =
                            (node.parse::<ClientUri>(), s(b, "room").parse::<RoomUri>())
                        {
                            self.oracles.message_built(
                                &c,
                                &room,
                                s(b, "mls_message_sha256"),
                                i as u64 + 1,
                            );
                        }
                    }
                    last_op.remove(node);
                }
                What::Op { .. } => {
                    last_op.insert(node, i);
                }
                What::OpRefused { reason } => {
                    if let Some(op_i) = last_op.remove(node) {
                        refused.insert(op_i, reason.clone());
                    }
                }
                _ => {}
            }
        }
        refused
    }

    /// Trace line `l` (index `i`); `refused`: the ops their client refused to queue.
    fn line(&mut self, i: usize, l: &Event, refused: &mut BTreeMap<usize, String>) {
        let line = i as u64 + 1;
        let (t, node) = (l.t, l.node.as_str());
        match &l.what {
            What::Op { op, args, step } => {
                if let Ok(c) = node.parse::<ClientUri>() {
                    self.op(&c, &(op, args, *step), line, refused.remove(&i));
                }
            }
            What::OpAbandoned { step, .. } => self.step_ended(*step, None),
            What::OpFailed { step, reason, .. } => self.step_ended(*step, Some(reason)),
            What::Client { event } => {
                if let Ok(c) = node.parse::<ClientUri>() {
                    self.client_event(&c, event, line);
                }
            }
            What::ClientView(v) => self.client_view(t, node, v, line),
            What::Hub { event } => self.hub_event(t, node, event, line),
            What::HubView(v) if v.room == self.room.as_str() => {
                self.hub_views.insert(node.to_string(), v.clone());
            }
            What::HubLog {
                room,
                generation,
                seq,
                epoch,
                fanout,
            } => {
                if let Ok(room) = room.parse::<RoomUri>() {
                    self.oracles.logged(
                        node,
                        &room,
                        &unhex(fanout),
                        *generation,
                        *seq,
                        *epoch,
                        line,
                    );
                }
            }
            What::Deliver {
                client,
                room,
                fanout,
            } if self.honest_providers.contains(node) => {
                let (Ok(c), Ok(room)) = (client.parse::<ClientUri>(), room.parse::<RoomUri>())
                else {
                    return;
                };
                self.oracles
                    .delivered(t, node, &c, &room, &unhex(fanout), line);
            }
            _ => {}
        }
    }

    /// An `op-abandoned` or `op-failed` line: the runner ended step `i`; `failed`: why
    /// it failed (`None`: abandoned).
    fn step_ended(&mut self, i: u64, failed: Option<&str>) {
        let i = i as usize;
        if i < self.steps.end.len() {
            self.steps.end[i] = Some(match failed {
                None => {
                    self.out.ops.abandoned += 1;
                    StepEnd::Abandoned
                }
                Some(reason) => StepEnd::Failed {
                    reason: reason.to_string(),
                },
            });
        }
    }

    /// A `client-view` line: client `node`'s view after the client event on the line
    /// before.
    fn client_view(&mut self, t: u64, node: &str, l: &ClientView, line: u64) {
        let (Ok(c), Ok(room)) = (node.parse::<ClientUri>(), l.room.parse::<RoomUri>()) else {
            return;
        };
        let view = room_view(l);
        if self.honest.contains(&c) {
            let current = self.current_hub();
            let hub = self.hub_epoch();
            let hub = hub.as_ref().map(|(e, _)| (current.as_str(), *e));
            // The view belongs to the client event on the line before.
            self.oracles
                .client_epoch(t, &c, &room, &view, hub, line.saturating_sub(1));
        }
        if room == self.room {
            self.views.insert(c, view);
        }
    }

    /// At the run's end (`end_t`): the oracles' final checks (what must have arrived,
    /// only if the run `converged`), steps still in flight unfinished.
    fn finish(mut self, end_t: u64, converged: bool) -> Judged {
        self.oracles.check_handoffs(end_t, converged);
        if converged {
            let honest = self.honest.clone();
            self.oracles.check_delivery(end_t, &honest);
            let hub_final = self.hub_committed();
            self.oracles.check_departures(end_t, hub_final.as_ref());
            self.oracles.check_arrivals(end_t, hub_final.as_ref());
        }
        self.steps.close();
        self.out.step_end = self.steps.end;
        self.out.violations = self.oracles.violations().to_vec();
        let (a, r) = self.oracles.message_counts();
        self.out.messages_accepted = a;
        self.out.messages_received = r;
        self.out
    }
}

/// Judges a merged trace: its events after the header (line numbers are 1-based, the
/// header is line 1). `converged`: the runner saw every honest client converge after
/// healing; `end_t`: the run's end.
pub fn judge(
    scenario: &Scenario,
    resolved: &Resolved,
    events: &[Event],
    converged: bool,
    end_t: u64,
) -> Judged {
    let mut j = Judge::new(scenario, resolved);
    // Index in the whole trace (the header is index 0).
    let lines: Vec<(usize, &Event)> = events.iter().enumerate().map(|(i, e)| (i + 1, e)).collect();
    let mut refused = j.built_and_refused(&lines);
    for &(i, l) in &lines {
        j.line(i, l, &mut refused);
    }
    j.finish(end_t, converged)
}
