//! Each planted bug (nodes::planted) misbehaves observably, and where the hub is meant
//! to stop it, enforcement `full` does.

use nodes::client::core::{ClientEvent, Command};
use nodes::hub::{Enforcement, EnforcementConfig, HubEvent};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::planted::{Bug, Bugs};
use nodes::room::{RolePreset, RoomState};
use nodes::server::ServerEvent;
use nodes::world::MemoryWorld;

fn d(s: &str) -> Domain {
    Domain::new(s).unwrap()
}
fn client(dom: &str, user: &str) -> ClientUri {
    UserUri::new(&d(dom), user).unwrap().client("1").unwrap()
}

/// Alice@a (hub) creates a room; Bob@b joins it when `with_bob`. `bugs` go into every
/// server and into Alice's client.
fn setup(
    seed: u64,
    level: Enforcement,
    bugs: &[Bug],
    with_bob: bool,
) -> (MemoryWorld, RoomUri, ClientUri, ClientUri) {
    let bugs: Bugs = bugs.iter().copied().collect();
    let mut w = MemoryWorld::new(seed);
    for x in ["a.example", "b.example"] {
        w.add_server_with_bugs(&d(x), EnforcementConfig::new(level), &bugs);
    }
    let (alice, bob) = (client("a.example", "alice"), client("b.example", "bob"));
    w.add_client(&alice, 4);
    w.add_client(&bob, 4);
    w.clients.get_mut(&alice).unwrap().set_bugs(&bugs);
    w.run();
    let room = w.create_room(&alice, "r", RolePreset::Cooperative).unwrap();
    if with_bob {
        w.command(
            &alice,
            Command::AddUser {
                room: room.clone(),
                user: bob.user(),
                role: None,
            },
        )
        .unwrap();
    }
    (w, room, alice, bob)
}

fn rejected_by(w: &MemoryWorld, rules: &[&str]) -> bool {
    w.server_events.iter().any(|(_, e)| {
        matches!(e, ServerEvent::Hub(HubEvent::Rejected { rule: Some(r), .. }) if rules.contains(r))
    })
}

fn failed(w: &MemoryWorld, who: &ClientUri) -> bool {
    w.client_events
        .iter()
        .any(|(c, e)| c == who && matches!(e, ClientEvent::OpFailed { .. }))
}

fn state_seen_by(w: &MemoryWorld, c: &ClientUri, room: &RoomUri) -> RoomState {
    w.client(c).room_view(room).unwrap().state.unwrap()
}

#[test]
fn hub_sequences_every_commit() {
    let (mut w, room, alice, bob) =
        setup(21, Enforcement::Full, &[Bug::HubSequencesEveryCommit], true);
    w.queue_command(&alice, Command::SelfUpdate { room: room.clone() })
        .unwrap();
    w.queue_command(&bob, Command::SelfUpdate { room: room.clone() })
        .unwrap();
    w.run();
    let commits_at_2 = w
        .server_events
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                ServerEvent::Hub(HubEvent::Accepted {
                    kind: "commit",
                    epoch: 2,
                    ..
                })
            )
        })
        .count();
    assert!(
        commits_at_2 >= 2,
        "two commits sequenced for epoch 1 (logged as leading to epoch 2)"
    );
    assert!(!w.server_events.iter().any(|(_, e)| matches!(
        e,
        ServerEvent::Hub(HubEvent::Rejected { code, .. }) if code == "wrongEpoch"
    )));
}

#[test]
fn hub_skips_merge() {
    let (w, room, alice, _) = setup(22, Enforcement::Full, &[Bug::HubSkipsMerge], true);
    let hub = w.server(&d("a.example")).hub().room(&room).unwrap();
    assert_eq!(hub.epoch(), 1, "the commit was accepted");
    assert_eq!(hub.view().unwrap().epoch(), 0, "but never merged");
    assert_eq!(w.client(&alice).room_view(&room).unwrap().epoch, 1);
}

#[test]
fn hub_drops_message_fanout() {
    let (mut w, room, alice, bob) =
        setup(23, Enforcement::Full, &[Bug::HubDropsMessageFanout], true);
    w.command(
        &alice,
        Command::Send {
            room: room.clone(),
            text: "lost".into(),
        },
    )
    .unwrap();
    let got = w
        .client_events
        .iter()
        .any(|(c, e)| c == &bob && matches!(e, ClientEvent::MessageReceived { .. }));
    assert!(!got, "Bob never receives the message");
    let hub = w.server(&d("a.example")).hub().room(&room).unwrap();
    let entry = hub.log().iter().find(|e| e.kind == "application").unwrap();
    assert!(
        entry.recipients.contains(&d("b.example")),
        "yet the log names b"
    );
    assert!(w.server(&d("a.example")).hub().fanout_idle());
}

#[test]
fn client_adds_without_list_update() {
    // Off: Bob's client is a member but Bob is not a participant.
    let (w, room, alice, bob) = setup(
        24,
        Enforcement::Off,
        &[Bug::ClientAddsWithoutListUpdate],
        true,
    );
    assert!(w
        .client(&alice)
        .room_view(&room)
        .unwrap()
        .members
        .contains(&bob));
    assert!(!state_seen_by(&w, &alice, &room).is_participant(&bob.user()));
    // Full: the hub refuses the commit (list membership).
    let (w, room, alice, _) = setup(
        24,
        Enforcement::Full,
        &[Bug::ClientAddsWithoutListUpdate],
        true,
    );
    assert!(rejected_by(&w, &["list-membership"]));
    assert!(failed(&w, &alice));
    assert_eq!(w.client(&alice).room_view(&room).unwrap().members.len(), 1);
}

#[test]
fn client_removes_user_but_not_clients() {
    for level in [Enforcement::Off, Enforcement::Full] {
        let (mut w, room, alice, bob) =
            setup(25, level, &[Bug::ClientRemovesUserButNotClients], true);
        w.command(
            &alice,
            Command::RemoveUser {
                room: room.clone(),
                user: bob.user(),
            },
        )
        .unwrap();
        let members = w.client(&alice).room_view(&room).unwrap().members;
        let listed = state_seen_by(&w, &alice, &room).is_participant(&bob.user());
        if level == Enforcement::Off {
            assert!(
                members.contains(&bob) && !listed,
                "Bob unlisted but still a member"
            );
        } else {
            assert!(rejected_by(
                &w,
                &["list-membership", "composition", "policy"]
            ));
            assert!(failed(&w, &alice));
            assert!(members.contains(&bob) && listed, "nothing changed");
        }
    }
}
