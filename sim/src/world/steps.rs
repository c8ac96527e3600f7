//! Step bookkeeping: which scripted step each client's finished op settles and how each
//! step ended ([`crate::world::run::RunReport::steps_not_done`]), and what a handed step
//! starts for the oracles. One implementation for the simulator, which reads the events
//! from the cores ([`crate::world::run`]), and the testbed's judge, which reads the same
//! events from a merged trace ([`crate::testbed::judge`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use nodes::client::core::RoomView;
use nodes::client::failure::FailureOrigin;
use nodes::ids::{ClientUri, RoomUri, UserUri};

use crate::observe::oracles::{Arrival, DepartureIntent, DepartureKind, HubMove, Oracles};
use crate::scenario::{Op, Scenario, StepEnd};

/// Most hub refusals kept for matching to failed ops.
pub const MAX_PENDING_REFUSALS: usize = 256;

/// How a scripted step ended when its op failed with `origin` (`reason`, for people):
/// refused by the hub (`refusal`: the rule of the hub's refusal of the same request
/// bytes, else the answer's code), overtaken (the client was removed first) or failed.
/// Whether the hub refused it is the failure's typed origin, never its text.
pub fn failed_step_end(
    origin: &FailureOrigin,
    op: &str,
    reason: &str,
    removed: bool,
    refusal: Option<String>,
) -> StepEnd {
    let code = match origin {
        FailureOrigin::HubRefused { code } => Some(code.name().to_string()),
        FailureOrigin::HttpError { status } => Some(format!("http-{status}")),
        _ => None,
    };
    match code {
        Some(code) => StepEnd::Refused {
            rule: refusal.unwrap_or(code),
        },
        None if removed => StepEnd::Overtaken {
            reason: format!("{op}: {reason}"),
        },
        None => StepEnd::Failed {
            reason: format!("{op}: {reason}"),
        },
    }
}

/// Takes the hub refusal a client's failed op comes from, as its rule id (or answer
/// code): the oldest pending refusal of the same request bytes (`request_sha256`, which
/// the client's `OpFailed` and the hub's `Rejected` both name). `None`: no recorded
/// refusal of those bytes (e.g. a provider that answered itself).
pub fn take_refusal(
    refusals: &mut VecDeque<(String, String)>,
    request_sha256: Option<&str>,
) -> Option<String> {
    let digest = request_sha256?;
    let pos = refusals.iter().position(|(d, _)| d == digest)?;
    refusals.remove(pos).map(|(_, rule)| rule)
}

/// How a client's op failed: its origin, the reason for people and the SHA-256 of the
/// request the hub refused, if it names one.
pub type OpFailure<'a> = (&'a FailureOrigin, &'a str, Option<&'a str>);

/// The scripted steps of one run: handed to their clients, settled by the clients' op
/// events, refused by hubs.
#[derive(Debug, Clone)]
pub struct StepBook {
    /// How each scripted step ended (`None`: not handed yet, or in flight).
    pub end: Vec<Option<StepEnd>>,
    /// The client command name of each scripted step's op.
    cmd: Vec<&'static str>,
    /// Per client, the steps handed to it and not settled yet, in order (the client
    /// runs its commands one at a time, in order).
    inflight: BTreeMap<ClientUri, VecDeque<usize>>,
    /// Per client, the step it settled last (its follow-up commands belong to it).
    last_step: BTreeMap<ClientUri, usize>,
    /// Clients removed from the room (a `Removed` event, not followed by a `Joined`).
    removed: BTreeSet<ClientUri>,
    /// Hub refusals not yet matched to a client's failed op: (SHA-256 of the refused
    /// request, rule id or code), oldest first, at most [`MAX_PENDING_REFUSALS`].
    refusals: VecDeque<(String, String)>,
}

impl StepBook {
    /// No step of `scenario`'s script handed yet.
    pub fn new(scenario: &Scenario) -> StepBook {
        StepBook {
            end: vec![None; scenario.script.len()],
            cmd: scenario
                .script
                .iter()
                .map(|s| s.get_ref().op.command_name())
                .collect(),
            inflight: BTreeMap::new(),
            last_step: BTreeMap::new(),
            removed: BTreeSet::new(),
            refusals: VecDeque::new(),
        }
    }

    /// Step `step` was handed to client `c`, which queued its command.
    pub fn handed(&mut self, c: &ClientUri, step: usize) {
        self.inflight.entry(c.clone()).or_default().push_back(step);
    }

    /// Client `c` joined the room (again).
    pub fn joined(&mut self, c: &ClientUri) {
        self.removed.remove(c);
    }

    /// Client `c` was removed from the room.
    pub fn removed(&mut self, c: &ClientUri) {
        self.removed.insert(c.clone());
    }

    /// A hub refused a request (`request_sha256`) by rule or code `key` with answer
    /// `code`. A wrongEpoch answer is retried by the client, never an op's end.
    pub fn hub_refused(&mut self, request_sha256: &str, key: String, code: &str) {
        if code == "wrongEpoch" {
            return;
        }
        self.refusals.push_back((request_sha256.to_string(), key));
        if self.refusals.len() > MAX_PENDING_REFUSALS {
            self.refusals.pop_front();
        }
    }

    /// A client finished op `op` (`failure`: why it failed). The client's first step in
    /// flight is settled if `op` is its command; any other op (a follow-up the client
    /// queued itself, e.g. a `leave-step`) belongs to the step it settled last, whose
    /// end becomes the follow-up's failure.
    pub fn settle(&mut self, c: &ClientUri, op: &str, failure: Option<OpFailure>) {
        let front = self.inflight.get(c).and_then(|q| q.front().copied());
        let i = match front {
            Some(i) if self.cmd.get(i) == Some(&op) => {
                if let Some(q) = self.inflight.get_mut(c) {
                    q.pop_front();
                }
                self.last_step.insert(c.clone(), i);
                self.end[i] = Some(StepEnd::Done);
                i
            }
            _ => match (failure, self.last_step.get(c)) {
                (Some(_), Some(&i)) => i,
                _ => return,
            },
        };
        if let Some((origin, reason, request_sha256)) = failure {
            let removed = self.removed.contains(c);
            let end = failed_step_end(
                origin,
                op,
                reason,
                removed,
                take_refusal(&mut self.refusals, request_sha256),
            );
            if matches!(self.end[i], None | Some(StepEnd::Done)) {
                self.end[i] = Some(end);
            }
        }
    }

    /// At the run's end: every step handed to a client that never settled is unfinished.
    pub fn close(&mut self) {
        for q in self.inflight.values() {
            for &i in q {
                if self.end[i].is_none() {
                    self.end[i] = Some(StepEnd::Unfinished);
                }
            }
        }
    }

    /// How many steps were done.
    pub fn done(&self) -> usize {
        self.end
            .iter()
            .filter(|e| **e == Some(StepEnd::Done))
            .count()
    }
}

/// What an honest client's scripted op starts, for the oracles departure-completes
/// (the script's intent and the client's view before it starts), handoff-keeps-accepted
/// (how the script moves the hub) and arrival-completes (the adds and joins). Worked
/// out when the op is handed; given to the oracles once the client queued it.
#[derive(Debug, Default)]
pub struct Started {
    departure: Option<(DepartureIntent, RoomView)>,
    hub_move: Option<HubMove>,
    arrivals: Vec<Arrival>,
}

impl Started {
    /// What `op`, handed to honest client `c` of `room` whose view then is `view`,
    /// starts; `line`: the trace line of the op; `may_be_refused`: the step declares
    /// refusals.
    pub fn of(
        op: &Op,
        c: &ClientUri,
        room: &RoomUri,
        users: &BTreeMap<String, UserUri>,
        view: Option<&RoomView>,
        may_be_refused: bool,
        line: u64,
    ) -> Started {
        let user = |n: &str| users.get(n).cloned();
        let departure = match op {
            Op::Leave => Some((DepartureKind::Leave, c.user())),
            Op::Remove { user: n } => user(n).map(|x| (DepartureKind::Remove, x)),
            Op::Ban { user: n } => user(n).map(|x| (DepartureKind::Ban, x)),
            _ => None,
        }
        .and_then(|(kind, user)| {
            let intent = DepartureIntent {
                kind,
                user,
                may_be_refused,
            };
            view.map(|v| (intent, v.clone()))
        });
        let hub_move = match op {
            Op::MoveHub { .. } => Some(HubMove::Handoff),
            Op::TakeOver => Some(HubMove::Takeover),
            _ => None,
        };
        let epoch_now = view.map_or(0, |v| v.epoch);
        let add = |n: &str| {
            user(n).map(|user| Arrival::Add {
                by: c.clone(),
                room: room.clone(),
                user,
                epoch: epoch_now,
                line,
            })
        };
        let arrivals = match op {
            Op::Add { user: n, .. } => add(n).into_iter().collect(),
            Op::AddUsers { users } => users.iter().filter_map(|x| add(x)).collect(),
            Op::Join => vec![Arrival::Join {
                client: c.clone(),
                room: room.clone(),
                line,
                failure: None,
                joined: false,
            }],
            _ => Vec::new(),
        };
        Started {
            departure,
            hub_move,
            arrivals,
        }
    }

    /// Tells the oracles (client `c` queued the op, line `line`).
    pub fn tell(self, oracles: &mut Oracles, c: &ClientUri, room: &RoomUri, line: u64) {
        if let Some((intent, view)) = self.departure {
            oracles.departure_started(&intent, c, room, &view, line);
        }
        if let Some(how) = self.hub_move {
            oracles.hub_move_started(room, how);
        }
        for a in self.arrivals {
            oracles.arrival_started(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodes::client::failure::RefusalCode;

    #[test]
    fn a_refused_op_takes_the_rule_of_the_refusal_of_its_request() {
        let mut refusals = VecDeque::from([
            ("aa".to_string(), "mute".to_string()),
            ("bb".to_string(), "ban".to_string()),
        ]);
        assert_eq!(
            take_refusal(&mut refusals, Some("bb")).as_deref(),
            Some("ban")
        );
        assert_eq!(take_refusal(&mut refusals, Some("bb")), None);
        assert_eq!(take_refusal(&mut refusals, None), None);
        let origin = FailureOrigin::HubRefused {
            code: RefusalCode::NotAllowed,
        };
        assert_eq!(
            failed_step_end(&origin, "send", "no", false, None),
            StepEnd::Refused {
                rule: RefusalCode::NotAllowed.name().to_string()
            }
        );
    }
}
