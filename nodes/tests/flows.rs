//! The draft's flows (P§3) end to end with hub, follower and client cores wired in memory:
//! create a room, Alice adds Bob, Bob adds Cathy through the hub, messages, Alice leaves,
//! Cathy's new device joins externally, a ban. After every step every member client's
//! epoch, GroupContext and epoch authenticator equal each other and the hub's public
//! view, and the participant list matches MLS membership.

use std::collections::BTreeSet;

use nodes::client::core::{ClientEvent, Command};
use nodes::hub::{Enforcement, EnforcementConfig};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::room::roles::BANNED_ROLE;
use nodes::room::{RolePreset, RoomState};
use nodes::world::MemoryWorld;

struct Names {
    a: Domain,
    room: RoomUri,
    alice: ClientUri,
    bob: ClientUri,
    cathy1: ClientUri,
    cathy2: ClientUri,
}

fn names() -> Names {
    let a = Domain::new("a.example").unwrap();
    let b = Domain::new("b.example").unwrap();
    let c = Domain::new("c.example").unwrap();
    let cathy = UserUri::new(&c, "cathy").unwrap();
    Names {
        room: RoomUri::new(&a, "clubhouse").unwrap(),
        alice: UserUri::new(&a, "alice").unwrap().client("1").unwrap(),
        bob: UserUri::new(&b, "bob").unwrap().client("1").unwrap(),
        cathy1: cathy.client("1").unwrap(),
        cathy2: cathy.client("2").unwrap(),
        a,
    }
}

fn world(seed: u64, level: Enforcement) -> (MemoryWorld, Names) {
    let n = names();
    let mut w = MemoryWorld::new(seed);
    for d in ["a.example", "b.example", "c.example"] {
        w.add_server(&Domain::new(d).unwrap(), EnforcementConfig::new(level));
    }
    for c in [&n.alice, &n.bob, &n.cathy1] {
        w.add_client(c, 4);
    }
    w.run();
    (w, n)
}

/// Every member client agrees with every other and with the hub's public view; the
/// participant list matches MLS membership. Returns the epoch.
fn check_agreement(w: &MemoryWorld, room: &RoomUri) -> u64 {
    let hub = w
        .server(&room.domain())
        .hub()
        .room(room)
        .expect("hub hosts the room");
    let view = hub.view().expect("hub keeps a public view");
    let members: Vec<ClientUri> = view.members().into_iter().filter_map(|(_, c)| c).collect();
    assert!(!members.is_empty());
    let mut auth = BTreeSet::new();
    for c in &members {
        let rv = w
            .client(c)
            .room_view(room)
            .unwrap_or_else(|| panic!("{c} is a member but has no view of the room"));
        assert_eq!(rv.epoch, view.epoch(), "{c} epoch vs hub");
        assert_eq!(
            rv.group_context,
            view.group_context_bytes(),
            "{c} GroupContext vs hub"
        );
        auth.insert(rv.epoch_authenticator.clone());
    }
    assert_eq!(auth.len(), 1, "members disagree on the epoch authenticator");
    let state = RoomState::from_dictionary(&view.dictionary()).unwrap();
    let member_users: BTreeSet<UserUri> = members.iter().map(|c| c.user()).collect();
    for u in &member_users {
        assert!(
            state.is_participant(u),
            "member user {u} is not a participant"
        );
        assert!(!state.is_banned(u), "banned user {u} still has clients");
    }
    assert_eq!(
        hub.hub_state(),
        hub.committed(),
        "no proposal left pending after settling"
    );
    view.epoch()
}

fn received(w: &MemoryWorld, by: &ClientUri, text: &str) -> bool {
    w.client_events.iter().any(|(c, e)| {
        c == by && matches!(e, ClientEvent::MessageReceived { text: t, .. } if t == text)
    })
}

#[test]
fn the_drafts_flows_end_to_end() {
    run_flows(1, Enforcement::Full);
}

#[test]
fn the_drafts_flows_under_mls_only_enforcement() {
    run_flows(2, Enforcement::Mls);
}

/// The same seed gives the same events, byte for byte; another seed other message IDs.
#[test]
fn flows_are_deterministic() {
    let a = format!("{:?}", run_flows(7, Enforcement::Full).client_events);
    let b = format!("{:?}", run_flows(7, Enforcement::Full).client_events);
    let c = format!("{:?}", run_flows(8, Enforcement::Full).client_events);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

fn run_flows(seed: u64, level: Enforcement) -> MemoryWorld {
    let (mut w, n) = world(seed, level);
    let hub_sender = w.server(&n.a).hub().external_sender();

    // P§3.1 room creation (hub-local).
    w.command(
        &n.alice,
        Command::CreateRoom {
            room: n.room.clone(),
            preset: RolePreset::Cooperative,
            hub_sender,
        },
    )
    .unwrap();
    assert_eq!(check_agreement(&w, &n.room), 0);

    // P§3.2 Alice (hub-local) adds Bob as group admin.
    w.command(
        &n.alice,
        Command::AddUser {
            room: n.room.clone(),
            user: n.bob.user(),
            role: Some(3),
        },
    )
    .unwrap();
    assert_eq!(check_agreement(&w, &n.room), 1);

    // P§3.3 Bob (a follower's user) adds Cathy through the hub.
    w.command(
        &n.bob,
        Command::AddUser {
            room: n.room.clone(),
            user: n.cathy1.user(),
            role: None,
        },
    )
    .unwrap();
    assert_eq!(check_agreement(&w, &n.room), 2);

    // P§3.4 messages.
    w.command(
        &n.cathy1,
        Command::Send {
            room: n.room.clone(),
            text: "hi from cathy".into(),
        },
    )
    .unwrap();
    w.command(
        &n.alice,
        Command::Send {
            room: n.room.clone(),
            text: "hi from alice".into(),
        },
    )
    .unwrap();
    assert!(received(&w, &n.alice, "hi from cathy") && received(&w, &n.bob, "hi from cathy"));
    assert!(received(&w, &n.bob, "hi from alice") && received(&w, &n.cathy1, "hi from alice"));
    check_agreement(&w, &n.room);

    // P§3.5 Alice leaves: a proposal bundle, committed by another member.
    w.command(
        &n.alice,
        Command::Leave {
            room: n.room.clone(),
        },
    )
    .unwrap();
    let e = check_agreement(&w, &n.room);
    assert_eq!(e, 3);
    let view = w.server(&n.a).hub().room(&n.room).unwrap().view().unwrap();
    assert!(view.leaf_of(&n.alice).is_none(), "Alice's client is gone");
    let state = RoomState::from_dictionary(&view.dictionary()).unwrap();
    assert!(
        !state.is_participant(&n.alice.user()),
        "Alice is no longer a participant"
    );

    // P§3.6 Cathy's new device joins by external commit.
    w.add_client(&n.cathy2, 1);
    w.run();
    w.command(
        &n.cathy2,
        Command::JoinExternal {
            room: n.room.clone(),
        },
    )
    .unwrap();
    assert_eq!(check_agreement(&w, &n.room), 4);
    w.command(
        &n.cathy2,
        Command::Send {
            room: n.room.clone(),
            text: "from my new phone".into(),
        },
    )
    .unwrap();
    assert!(
        received(&w, &n.bob, "from my new phone") && received(&w, &n.cathy1, "from my new phone")
    );

    // RP§8.1.2 ban: Bob bans Cathy; both her clients go in one commit.
    w.command(
        &n.bob,
        Command::Ban {
            room: n.room.clone(),
            user: n.cathy1.user(),
        },
    )
    .unwrap();
    assert_eq!(check_agreement(&w, &n.room), 5);
    let view = w.server(&n.a).hub().room(&n.room).unwrap().view().unwrap();
    let state = RoomState::from_dictionary(&view.dictionary()).unwrap();
    assert_eq!(state.role_of(&n.cathy1.user()), BANNED_ROLE);
    assert!(view.leaf_of(&n.cathy1).is_none() && view.leaf_of(&n.cathy2).is_none());

    // No operation failed anywhere.
    let failed: Vec<_> = w
        .client_events
        .iter()
        .filter(|(_, e)| matches!(e, ClientEvent::OpFailed { .. }))
        .collect();
    assert!(failed.is_empty(), "failed operations: {failed:?}");
    w
}

/// Role change, kick, removal of another user, and two members committing at once: one
/// gets `wrongEpoch`, catches up and retries (P§5.3).
#[test]
fn roles_kicks_removals_and_concurrent_commits() {
    let (mut w, n) = world(3, Enforcement::Full);
    let dave = UserUri::new(&Domain::new("b.example").unwrap(), "dave")
        .unwrap()
        .client("1")
        .unwrap();
    w.add_client(&dave, 2);
    w.run();
    let hub_sender = w.server(&n.a).hub().external_sender();
    let room = n.room.clone();
    w.command(
        &n.alice,
        Command::CreateRoom {
            room: room.clone(),
            preset: RolePreset::Cooperative,
            hub_sender,
        },
    )
    .unwrap();
    w.command(
        &n.alice,
        Command::AddUser {
            room: room.clone(),
            user: n.bob.user(),
            role: None,
        },
    )
    .unwrap();
    w.command(
        &n.alice,
        Command::AddUser {
            room: room.clone(),
            user: dave.user(),
            role: None,
        },
    )
    .unwrap();
    assert_eq!(check_agreement(&w, &room), 2);

    // Alice makes Dave a group admin (RP§8.1.3).
    w.command(
        &n.alice,
        Command::ChangeRole {
            room: room.clone(),
            user: dave.user(),
            role: 3,
        },
    )
    .unwrap();
    assert_eq!(check_agreement(&w, &room), 3);
    let state = |w: &MemoryWorld| {
        let v = w
            .server(&n.a)
            .hub()
            .room(&room)
            .unwrap()
            .view()
            .unwrap()
            .dictionary();
        RoomState::from_dictionary(&v).unwrap()
    };
    assert_eq!(state(&w).role_of(&dave.user()), 3);

    // Two members commit at the same time: both end up applied, one after a retry.
    w.queue_command(&n.alice, Command::SelfUpdate { room: room.clone() })
        .unwrap();
    w.queue_command(&n.bob, Command::SelfUpdate { room: room.clone() })
        .unwrap();
    w.run();
    assert_eq!(check_agreement(&w, &room), 5);
    let wrong_epoch = w.server_events.iter().any(|(_, e)| {
        matches!(e, nodes::server::ServerEvent::Hub(nodes::hub::HubEvent::Rejected { code, .. }) if code == "wrongEpoch")
    });
    assert!(
        wrong_epoch,
        "one of the racing commits must have met wrongEpoch"
    );

    // Dave kicks Bob: Bob's client goes, Bob stays a participant (RP§2.1).
    w.command(
        &dave,
        Command::Kick {
            room: room.clone(),
            user: n.bob.user(),
        },
    )
    .unwrap();
    assert_eq!(check_agreement(&w, &room), 6);
    assert!(state(&w).is_participant(&n.bob.user()));
    assert!(
        w.client(&n.bob).room_view(&room).is_none(),
        "Bob's client was removed"
    );

    // Dave is the only group admin, whose role has minimum participants 1 (RP§3): the hub
    // refuses his removal and nothing changes.
    w.command(
        &n.alice,
        Command::RemoveUser {
            room: room.clone(),
            user: dave.user(),
        },
    )
    .unwrap();
    assert_eq!(check_agreement(&w, &room), 6);
    let refused = w.client_events.iter().any(|(c, e)| {
        c == &n.alice && matches!(e, ClientEvent::OpFailed { op: "remove-user", reason, .. } if reason.contains("inimum"))
    });
    assert!(
        refused,
        "removing the last group admin must be refused by policy"
    );
    w.client_events
        .retain(|(_, e)| !matches!(e, ClientEvent::OpFailed { .. }));

    // Alice removes Bob, now an inactive participant, from the list (RP§8.1.2).
    w.command(
        &n.alice,
        Command::RemoveUser {
            room: room.clone(),
            user: n.bob.user(),
        },
    )
    .unwrap();
    assert_eq!(check_agreement(&w, &room), 7);
    assert!(!state(&w).is_participant(&n.bob.user()));
    let failed: Vec<_> = w
        .client_events
        .iter()
        .filter(|(_, e)| matches!(e, ClientEvent::OpFailed { .. }))
        .collect();
    assert!(failed.is_empty(), "failed operations: {failed:?}");
}
