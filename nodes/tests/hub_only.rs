//! x-hub-only-room-state (nodes::room::hub_only), run to quiescence in memory: list
//! changes travel beside the commits and reach every client's signalled copy; the
//! GroupContext's list stays frozen at creation; the hub's policy checks judge the
//! out-of-band change at `full` as they judge an AppDataUpdate under bound.

use nodes::client::core::{Command, RoomView};
use nodes::hub::{Enforcement, EnforcementConfig, HubEvent};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::room::roles::BANNED_ROLE;
use nodes::room::{RolePreset, RoomState, RoomStateMode};
use nodes::server::ServerEvent;
use nodes::world::MemoryWorld;

const LEVELS: [Enforcement; 3] = [Enforcement::Off, Enforcement::Mls, Enforcement::Full];

fn d(s: &str) -> Domain {
    Domain::new(s).unwrap()
}
fn dev(dom: &str, user: &str, device: &str) -> ClientUri {
    UserUri::new(&d(dom), user).unwrap().client(device).unwrap()
}

/// (user, role) in list order.
fn list(s: &RoomState) -> Vec<(UserUri, u32)> {
    s.participants
        .iter()
        .map(|p| (p.user.clone(), p.role))
        .collect()
}

struct Room {
    w: MemoryWorld,
    room: RoomUri,
    alice: ClientUri,
    bob1: ClientUri,
    bob2: ClientUri,
    carol: ClientUri,
    dave: ClientUri,
}

/// a.example hosts the room (Alice); Bob (two devices) and Dave at b.example; Carol at
/// c.example (its first client: she joins through a follower with no earlier member).
/// Every node follows `mode`.
fn world(level: Enforcement, mode: RoomStateMode) -> Room {
    let mut w = MemoryWorld::new(23);
    for x in ["a.example", "b.example", "c.example"] {
        w.add_server(&d(x), EnforcementConfig::new(level));
        w.servers
            .get_mut(&d(x))
            .unwrap()
            .hub_mut()
            .set_room_state_mode(mode);
    }
    let alice = dev("a.example", "alice", "1");
    let bob1 = dev("b.example", "bob", "1");
    let bob2 = dev("b.example", "bob", "2");
    let carol = dev("c.example", "carol", "1");
    let dave = dev("b.example", "dave", "1");
    for c in [&alice, &bob1, &bob2, &carol, &dave] {
        w.add_client(c, 4);
        w.client_mut(c).unwrap().set_room_state_mode(mode);
    }
    w.run();
    let room = w.create_room(&alice, "r", RolePreset::Cooperative).unwrap();
    Room {
        w,
        room,
        alice,
        bob1,
        bob2,
        carol,
        dave,
    }
}

impl Room {
    fn run(&mut self, who: &ClientUri, cmd: Command) {
        self.w.command(who, cmd).unwrap();
    }
    fn view(&self, c: &ClientUri) -> Option<RoomView> {
        self.w.client(c).room_view(&self.room)
    }
    fn hub_list(&self) -> Vec<(UserUri, u32)> {
        list(
            self.w
                .server(&d("a.example"))
                .hub()
                .room(&self.room)
                .unwrap()
                .committed(),
        )
    }
    /// Every member client's signalled list equals the hub's; returns it.
    fn agreed(&self, what: &str) -> Vec<(UserUri, u32)> {
        let hub = self.hub_list();
        for c in [&self.alice, &self.bob1, &self.bob2, &self.carol, &self.dave] {
            if let Some(v) = self.view(c) {
                let st = v
                    .state
                    .unwrap_or_else(|| panic!("{what}: {c} has no room state"));
                assert_eq!(list(&st), hub, "{what}: {c}'s copy differs from the hub's");
            }
        }
        hub
    }
    fn rules(&self) -> Vec<&'static str> {
        self.w
            .server_events
            .iter()
            .filter_map(|(_, e)| match e {
                ServerEvent::Hub(HubEvent::Rejected { rule: Some(r), .. }) => Some(*r),
                _ => None,
            })
            .collect()
    }
}

/// Add Bob, Carol, Dave; make Carol a super admin; remove Dave; ban Carol; Bob's second
/// device leaves (a proposal bundle, committed by Alice).
fn script(r: &mut Room) {
    let room = r.room.clone();
    let alice = r.alice.clone();
    for (user, role) in [
        (r.bob1.user(), None),
        (r.carol.user(), None),
        (r.dave.user(), None),
    ] {
        r.run(
            &alice,
            Command::AddUser {
                room: room.clone(),
                user,
                role,
            },
        );
        r.agreed("after an add");
    }
    let carol = r.carol.user();
    r.run(
        &alice,
        Command::ChangeRole {
            room: room.clone(),
            user: carol.clone(),
            role: 4,
        },
    );
    assert!(r.agreed("role change").contains(&(carol.clone(), 4)));
    r.run(
        &alice,
        Command::RemoveUser {
            room: room.clone(),
            user: r.dave.user(),
        },
    );
    assert!(!r.agreed("remove").iter().any(|(u, _)| u == &r.dave.user()));
    r.run(
        &alice,
        Command::Ban {
            room: room.clone(),
            user: carol.clone(),
        },
    );
    assert!(r.agreed("ban").contains(&(carol, BANNED_ROLE)));
    let bob2 = r.bob2.clone();
    r.run(&bob2, Command::Leave { room: room.clone() });
    let end = r.agreed("leave");
    assert_eq!(
        end,
        vec![(r.alice.user(), 4), (r.carol.user(), BANNED_ROLE)],
        "Bob left; Carol stays listed as banned; rules {:?}; events {:?}",
        r.rules(),
        r.w.client_events.iter().rev().take(12).collect::<Vec<_>>()
    );
}

#[test]
fn list_changes_reach_every_clients_copy_at_every_level() {
    for level in LEVELS {
        let mut r = world(level, RoomStateMode::HubOnly);
        script(&mut r);
        assert!(r.rules().is_empty(), "{level:?}: refused {:?}", r.rules());
        // The list never went through MLS: Alice's GroupContext still holds the
        // creation list, and no accepted commit carried a participant_list update.
        let v = r.view(&r.alice).unwrap();
        let frozen = RoomState::from_dictionary(&v.dictionary).unwrap();
        assert_eq!(list(&frozen), vec![(r.alice.user(), 4)], "{level:?}");
        assert!(
            !r.w.server_events.iter().any(|(_, e)| matches!(e,
                ServerEvent::Hub(HubEvent::CommitContents { proposals, .. })
                    if proposals.iter().any(|p| p.starts_with("app-data-update component 34 ")))),
            "{level:?}: a commit carried the participant list"
        );
        // One signal per accepted commit, logged just before it.
        let hub = r.w.server(&d("a.example")).hub().room(&r.room).unwrap();
        let kinds: Vec<&str> = hub.log().iter().map(|e| e.kind).collect();
        for (i, k) in kinds.iter().enumerate() {
            if *k == "commit" {
                assert_eq!(
                    kinds.get(i.wrapping_sub(1)),
                    Some(&"room-state"),
                    "{kinds:?}"
                );
            }
        }
        assert_eq!(
            kinds.iter().filter(|k| **k == "commit").count(),
            kinds.iter().filter(|k| **k == "room-state").count()
        );
    }
}

#[test]
fn bound_puts_the_same_changes_in_the_group_context() {
    // The same script under bound: the GroupContext's list is the room's list, and no
    // room-state signal is logged.
    let mut r = world(Enforcement::Full, RoomStateMode::Bound);
    script(&mut r);
    let v = r.view(&r.alice).unwrap();
    let bound = RoomState::from_dictionary(&v.dictionary).unwrap();
    assert_eq!(list(&bound), r.hub_list());
    let hub = r.w.server(&d("a.example")).hub().room(&r.room).unwrap();
    assert!(hub.log().iter().all(|e| e.kind != "room-state"));
}

/// Carol, an ordinary user (role 2), tries to make herself an admin.
fn self_promotion(level: Enforcement) -> (Room, Vec<(UserUri, u32)>) {
    let mut r = world(level, RoomStateMode::HubOnly);
    let (room, alice) = (r.room.clone(), r.alice.clone());
    for user in [r.bob1.user(), r.carol.user()] {
        r.run(
            &alice,
            Command::AddUser {
                room: room.clone(),
                user,
                role: None,
            },
        );
    }
    let before = r.agreed("before");
    let carol = r.carol.clone();
    r.run(
        &carol,
        Command::ChangeRole {
            room,
            user: carol.user(),
            role: 4,
        },
    );
    (r, before)
}

#[test]
fn a_policy_violating_change_is_refused_at_full_under_hub_only() {
    let (r, before) = self_promotion(Enforcement::Full);
    assert_eq!(r.rules(), vec!["policy"], "refused by the policy rule");
    assert_eq!(
        r.agreed("after the refusal"),
        before,
        "the list is unchanged"
    );
    // Without the policy checks the same out-of-band change goes through: the hub
    // applies it unchecked and signals it (what `full` protects against).
    let (r, _) = self_promotion(Enforcement::Mls);
    assert!(r.rules().is_empty());
    assert!(r.agreed("mls").contains(&(r.carol.user(), 4)));
}

#[test]
fn a_bound_client_is_refused_by_a_hub_only_hub() {
    // Planted mismatch: Bob's client still puts the list in MLS (bound) while the hub
    // keeps it (hub-only). Its commit body lacks the out-of-band field: 400, nothing
    // accepted, and the hub's list does not change.
    let mut r = world(Enforcement::Full, RoomStateMode::HubOnly);
    let (room, alice) = (r.room.clone(), r.alice.clone());
    r.run(
        &alice,
        Command::AddUser {
            room: room.clone(),
            user: r.bob1.user(),
            role: Some(3),
        },
    );
    let before = r.agreed("before");
    let bob1 = r.bob1.clone();
    r.w.client_mut(&bob1)
        .unwrap()
        .set_room_state_mode(RoomStateMode::Bound);
    let commits = |r: &Room| {
        r.w.server_events
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e,
                    ServerEvent::Hub(HubEvent::Accepted { kind: "commit", .. })
                )
            })
            .count()
    };
    let n = commits(&r);
    r.run(
        &bob1,
        Command::AddUser {
            room,
            user: r.carol.user(),
            role: None,
        },
    );
    assert_eq!(commits(&r), n, "the bound commit was not accepted");
    assert_eq!(r.hub_list(), before);
}
