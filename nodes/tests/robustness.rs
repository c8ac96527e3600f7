//! Robustness of the cores under faults in the in-memory world: lost replies, provider
//! restarts, duplicate deliveries, and the batch add. After faults every member agrees
//! with the hub, every op succeeded once and every message was received once.

use nodes::client::core::{ClientEvent, Command};
use nodes::endpoint::Endpoint;
use nodes::follower::FollowerEvent;
use nodes::hub::{Enforcement, EnforcementConfig};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::io::ProviderToClient;
use nodes::room::{RolePreset, RoomState};
use nodes::server::ServerEvent;
use nodes::world::MemoryWorld;

fn d(s: &str) -> Domain {
    Domain::new(s).unwrap()
}
fn client(dom: &str, user: &str) -> ClientUri {
    UserUri::new(&d(dom), user).unwrap().client("1").unwrap()
}

/// Alice@a (hub), Bob@b, Cathy@c; Alice creates the room and adds Bob and Cathy.
fn room_of_three(seed: u64) -> (MemoryWorld, RoomUri, [ClientUri; 3]) {
    let mut w = MemoryWorld::new(seed);
    for x in ["a.example", "b.example", "c.example"] {
        w.add_server(&d(x), EnforcementConfig::new(Enforcement::Full));
    }
    let cs = [
        client("a.example", "alice"),
        client("b.example", "bob"),
        client("c.example", "cathy"),
    ];
    for c in &cs {
        w.add_client(c, 4);
    }
    w.run();
    let room = RoomUri::new(&d("a.example"), "r").unwrap();
    let hub_sender = w.server(&d("a.example")).hub().external_sender();
    w.command(
        &cs[0],
        Command::CreateRoom {
            room: room.clone(),
            preset: RolePreset::Cooperative,
            hub_sender,
        },
    )
    .unwrap();
    for u in [&cs[1], &cs[2]] {
        w.command(
            &cs[0],
            Command::AddUser {
                room: room.clone(),
                user: u.user(),
                role: None,
            },
        )
        .unwrap();
    }
    (w, room, cs)
}

/// Every member client is at the hub's epoch with the same epoch authenticator.
fn agreement(w: &MemoryWorld, room: &RoomUri) -> u64 {
    let hub = w.server(&room.domain()).hub().room(room).unwrap();
    let view = hub.view().unwrap();
    let mut auth = std::collections::BTreeSet::new();
    for c in view.members().into_iter().filter_map(|(_, c)| c) {
        let rv = w.client(&c).room_view(room).unwrap();
        assert_eq!(rv.epoch, view.epoch(), "{c} epoch vs hub");
        assert_eq!(rv.group_context, view.group_context_bytes(), "{c}");
        auth.insert(rv.epoch_authenticator);
    }
    assert_eq!(auth.len(), 1, "members disagree");
    view.epoch()
}

fn count(w: &MemoryWorld, f: impl Fn(&ClientUri, &ClientEvent) -> bool) -> usize {
    w.client_events.iter().filter(|(c, e)| f(c, e)).count()
}

fn no_failures(w: &MemoryWorld) {
    let bad: Vec<_> = w
        .client_events
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                ClientEvent::OpFailed { .. } | ClientEvent::DeliveryError { .. }
            )
        })
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
}

fn received(w: &MemoryWorld, by: &ClientUri, text: &str) -> usize {
    count(w, |c, e| {
        c == by && matches!(e, ClientEvent::MessageReceived { text: t, .. } if t == text)
    })
}

/// A commit whose reply is lost: the fan-out of the client's own commit settles it.
#[test]
fn a_lost_commit_reply_is_settled_by_the_fanout() {
    let (mut w, room, [_, bob, _]) = room_of_three(11);
    assert_eq!(agreement(&w, &room), 2);
    w.drop_next_replies(&bob, 1);
    w.command(&bob, Command::SelfUpdate { room: room.clone() })
        .unwrap();
    assert_eq!(agreement(&w, &room), 3);
    let ok = count(&w, |c, e| {
        c == &bob
            && matches!(
                e,
                ClientEvent::OpSucceeded {
                    op: "self-update",
                    ..
                }
            )
    });
    assert_eq!(ok, 1);
    no_failures(&w);
}

/// Bob's provider crashes with his message in transit to it: Bob times out, resends the
/// same bytes, and the message is sent and received exactly once.
#[test]
fn a_request_lost_in_a_provider_crash_is_resent() {
    let (mut w, room, [alice, bob, cathy]) = room_of_three(12);
    w.queue_command(
        &bob,
        Command::Send {
            room: room.clone(),
            text: "again?".into(),
        },
    )
    .unwrap();
    w.restart(&d("b.example"));
    w.run();
    assert!(
        count(&w, |c, e| c == &bob
            && matches!(
                e,
                ClientEvent::Resent {
                    op: "send",
                    attempt: 2,
                    ..
                }
            ))
            == 1,
        "Bob resent once"
    );
    assert_eq!(
        count(&w, |c, e| c == &bob
            && matches!(e, ClientEvent::MessageSent { .. })),
        1
    );
    assert_eq!(received(&w, &alice, "again?"), 1);
    assert_eq!(received(&w, &cathy, "again?"), 1);
    no_failures(&w);
}

/// The hub accepts a commit, its reply is lost, and then the hub's provider restarts
/// with the fan-out still owed: the resent `/notify` settles the op once.
#[test]
fn a_commit_accepted_before_a_hub_crash_is_settled_once() {
    let (mut w, room, [_, bob, _]) = room_of_three(13);
    w.drop_next_replies(&bob, 1);
    w.queue_command(&bob, Command::SelfUpdate { room: room.clone() })
        .unwrap();
    // Run until the hub has accepted the commit, then crash the hub's provider.
    while !w.server_events.iter().any(|(_, e)| {
        matches!(
            e,
            ServerEvent::Hub(nodes::hub::HubEvent::Accepted { epoch: 3, .. })
        )
    }) {
        assert!(w.step());
    }
    w.restart(&d("a.example"));
    w.run();
    assert_eq!(agreement(&w, &room), 3);
    assert_eq!(
        count(&w, |c, e| c == &bob
            && matches!(
                e,
                ClientEvent::OpSucceeded {
                    op: "self-update",
                    ..
                }
            )),
        1
    );
    no_failures(&w);
}

/// The hub restarts with a `/notify` in transit: it resends the byte-identical body, the
/// follower acknowledges the copy and drops it, and each client gets the message once.
#[test]
fn a_hub_restart_resends_notify_and_the_follower_dedups() {
    let (mut w, room, [alice, bob, cathy]) = room_of_three(14);
    w.queue_command(
        &alice,
        Command::Send {
            room: room.clone(),
            text: "hello".into(),
        },
    )
    .unwrap();
    while !w
        .requests_in_transit(&d("b.example"))
        .iter()
        .any(|e| matches!(e, Endpoint::Notify(_)))
    {
        assert!(w.step());
    }
    w.restart(&d("a.example"));
    w.run();
    let dup = w.server_events.iter().any(|(dom, e)| {
        dom == &d("b.example")
            && matches!(
                e,
                ServerEvent::Follower(FollowerEvent::NotifyDuplicate { .. })
            )
    });
    assert!(dup, "the resent /notify reached b as a duplicate");
    assert_eq!(received(&w, &bob, "hello"), 1);
    assert_eq!(received(&w, &cathy, "hello"), 1);
    assert!(w.server(&d("a.example")).hub().fanout_idle());
    no_failures(&w);
}

/// A duplicate delivery of an application message is dropped silently.
#[test]
fn a_duplicate_application_message_is_dropped_silently() {
    let (mut w, room, [_, bob, cathy]) = room_of_three(15);
    w.record_deliveries = true;
    w.command(
        &cathy,
        Command::Send {
            room: room.clone(),
            text: "once".into(),
        },
    )
    .unwrap();
    let (_, r, fanout) = w
        .delivered
        .iter()
        .find(|(c, _, _)| c == &bob)
        .cloned()
        .unwrap();
    w.to_client(&bob, ProviderToClient::Deliver { room: r, fanout });
    w.run();
    assert_eq!(received(&w, &bob, "once"), 1);
    no_failures(&w);
}

/// `AddUsers` adds ten users of two providers in one commit with one list update.
#[test]
fn add_users_adds_a_batch_in_one_commit() {
    let (mut w, room, [alice, _, _]) = room_of_three(16);
    let users: Vec<ClientUri> = (0..10)
        .map(|i| {
            client(
                if i % 2 == 0 { "b.example" } else { "c.example" },
                &format!("u{i}"),
            )
        })
        .collect();
    for u in &users {
        w.add_client(u, 1);
    }
    w.run();
    w.command(
        &alice,
        Command::AddUsers {
            room: room.clone(),
            users: users.iter().map(|u| (u.user(), None)).collect(),
        },
    )
    .unwrap();
    assert_eq!(agreement(&w, &room), 3, "one commit");
    let view = w
        .server(&d("a.example"))
        .hub()
        .room(&room)
        .unwrap()
        .view()
        .unwrap();
    let state = RoomState::from_dictionary(&view.dictionary()).unwrap();
    for u in &users {
        assert!(state.is_participant(&u.user()), "{u} is a participant");
        assert!(view.leaf_of(u).is_some(), "{u} is a member");
        assert!(w.client(u).room_view(&room).is_some(), "{u} joined");
    }
    no_failures(&w);
}
