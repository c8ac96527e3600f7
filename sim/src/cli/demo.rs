//! The built-in default job: the draft's flows (P§3) with hub, follower and client cores
//! wired in memory, at one enforcement level, checking after every step that every member
//! agrees with every other and with the hub's public view.

use nodes::client::core::{ClientEvent, Command};
use nodes::client::failure::{FailureOrigin, LocalFailure};
use nodes::hub::{Enforcement, EnforcementConfig};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::room::{RolePreset, RoomState};
use nodes::world::MemoryWorld;
use sha2::{Digest, Sha256};

/// One step of the demo and what the room looked like after it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    pub step: &'static str,
    pub epoch: u64,
    pub members: usize,
    pub participants: usize,
    /// Every member's epoch, GroupContext and epoch authenticator equal each other and
    /// the hub's public view, and every member's user is a participant.
    pub agreement: bool,
}

/// The whole run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoReport {
    pub seed: u64,
    pub enforcement: Enforcement,
    pub steps: Vec<StepReport>,
    pub messages_delivered: usize,
    pub failed_operations: Vec<String>,
    /// SHA-256 over every client and server event, in order.
    pub events_hash: String,
}

impl DemoReport {
    pub fn ok(&self) -> bool {
        self.failed_operations.is_empty() && self.steps.iter().all(|s| s.agreement)
    }
}

fn check(w: &MemoryWorld, room: &RoomUri, step: &'static str) -> StepReport {
    let Some((view, dictionary)) = w
        .server(&room.domain())
        .room_view(room)
        .and_then(|r| Some((r.group()?, r.group_dictionary()?)))
    else {
        // Enforcement `off`: the hub keeps no MLS view; compare the clients with each other.
        let views: Vec<_> = w
            .clients
            .values()
            .filter_map(|c| c.room_view(room))
            .collect();
        let Some(first) = views.first() else {
            return StepReport {
                step,
                epoch: 0,
                members: 0,
                participants: 0,
                agreement: false,
            };
        };
        let agreement = views.iter().all(|v| {
            v.epoch == first.epoch
                && v.group_context == first.group_context
                && v.epoch_authenticator == first.epoch_authenticator
        });
        return StepReport {
            step,
            epoch: first.epoch,
            members: first.members.len(),
            participants: first.state.as_ref().map_or(0, |s| s.participants.len()),
            agreement,
        };
    };
    let members: Vec<ClientUri> = view.members;
    let state = RoomState::from_dictionary(&dictionary).ok();
    let mut agreement = state.is_some();
    let mut auth = None;
    for c in &members {
        match w.clients.get(c).and_then(|cl| cl.room_view(room)) {
            Some(v) => {
                agreement &= v.epoch == view.epoch && v.group_context == view.group_context;
                agreement &=
                    auth.get_or_insert(v.epoch_authenticator.clone()) == &v.epoch_authenticator;
            }
            None => agreement = false,
        }
        if let Some(s) = &state {
            agreement &= s.is_participant(&c.user()) && !s.is_banned(&c.user());
        }
    }
    StepReport {
        step,
        epoch: view.epoch,
        members: members.len(),
        participants: state.map_or(0, |s| s.participants.len()),
        agreement,
    }
}

/// Run the flows: create, Alice adds Bob, Bob adds Cathy through the hub, messages,
/// Alice leaves, Cathy's new device joins externally, Bob bans Cathy.
pub fn run(seed: u64, enforcement: Enforcement) -> DemoReport {
    let d = |s: &str| Domain::new(s).expect("valid domain");
    let (a, b, c) = (d("a.example"), d("b.example"), d("c.example"));
    let client = |dom: &Domain, user: &str, dev: &str| {
        UserUri::new(dom, user)
            .and_then(|u| u.client(dev))
            .expect("valid client")
    };
    let (alice, bob, cathy1, cathy2) = (
        client(&a, "alice", "1"),
        client(&b, "bob", "1"),
        client(&c, "cathy", "1"),
        client(&c, "cathy", "2"),
    );
    let room = RoomUri::new(&a, "clubhouse").expect("valid room");
    let mut w = MemoryWorld::new(seed);
    for dom in [&a, &b, &c] {
        w.add_server(dom, EnforcementConfig::new(enforcement));
    }
    for cl in [&alice, &bob, &cathy1] {
        w.add_client(cl, 4);
    }
    w.run();
    let hub_sender = w.server(&a).hub_external_sender();
    let mut steps = Vec::new();
    let script = script(&room, [&alice, &bob, &cathy1, &cathy2], hub_sender);
    for (step, who, cmd) in script {
        if who == cathy2 && !w.clients.contains_key(&cathy2) {
            w.add_client(&cathy2, 1);
            w.run();
        }
        if let Err(e) = w.command(&who, cmd) {
            w.client_events.push((
                who.clone(),
                ClientEvent::OpFailed {
                    room: room.clone(),
                    op: "command",
                    origin: FailureOrigin::Local(LocalFailure::Build),
                    reason: e.to_string(),
                    request_sha256: None,
                },
            ));
        }
        steps.push(check(&w, &room, step));
    }
    report(&w, seed, enforcement, steps)
}

/// The demo's steps: who does what, in order.
fn script(
    room: &RoomUri,
    [alice, bob, cathy1, cathy2]: [&ClientUri; 4],
    hub_sender: openmls::prelude::ExternalSender,
) -> Vec<(&'static str, ClientUri, Command)> {
    vec![
        (
            "create room",
            alice.clone(),
            Command::CreateRoom {
                room: room.clone(),
                preset: RolePreset::Cooperative,
                hub_sender,
            },
        ),
        (
            "alice adds bob",
            alice.clone(),
            Command::AddUser {
                room: room.clone(),
                user: bob.user(),
                role: Some(3),
            },
        ),
        (
            "bob adds cathy via hub",
            bob.clone(),
            Command::AddUser {
                room: room.clone(),
                user: cathy1.user(),
                role: None,
            },
        ),
        (
            "cathy sends",
            cathy1.clone(),
            Command::Send {
                room: room.clone(),
                text: "hi from cathy".into(),
            },
        ),
        (
            "alice sends",
            alice.clone(),
            Command::Send {
                room: room.clone(),
                text: "hi from alice".into(),
            },
        ),
        (
            "alice leaves",
            alice.clone(),
            Command::Leave { room: room.clone() },
        ),
        (
            "cathy's new device joins",
            cathy2.clone(),
            Command::JoinExternal { room: room.clone() },
        ),
        (
            "new device sends",
            cathy2.clone(),
            Command::Send {
                room: room.clone(),
                text: "from my new phone".into(),
            },
        ),
        (
            "bob bans cathy",
            bob.clone(),
            Command::Ban {
                room: room.clone(),
                user: cathy1.user(),
            },
        ),
    ]
}

/// What the demo shows: its steps, the messages delivered, the operations that failed
/// and a hash of every event.
fn report(
    w: &MemoryWorld,
    seed: u64,
    enforcement: Enforcement,
    steps: Vec<StepReport>,
) -> DemoReport {
    let mut h = Sha256::new();
    for (c, e) in &w.client_events {
        h.update(format!("{c} {e:?}\n"));
    }
    for (s, e) in &w.server_events {
        h.update(format!("{s} {e:?}\n"));
    }
    DemoReport {
        seed,
        enforcement,
        steps,
        messages_delivered: w
            .client_events
            .iter()
            .filter(|(_, e)| matches!(e, ClientEvent::MessageReceived { .. }))
            .count(),
        failed_operations: w
            .client_events
            .iter()
            .filter_map(|(c, e)| match e {
                ClientEvent::OpFailed { op, reason, .. } => Some(format!("{c} {op}: {reason}")),
                _ => None,
            })
            .collect(),
        events_hash: hex::encode(h.finalize()),
    }
}
