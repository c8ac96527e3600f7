//! Each adversarial follower (nodes::adversary) misbehaves observably under enforcement
//! `off`, and each test states what `full` does with it: rejected by which rule, or not
//! stoppable by a hub. Three providers: a.example hosts the room (hub), b.example is
//! honest, c.example is the malicious provider (its follower role and all its clients).
//! The table in the `adversary` module doc is written from these tests.

use nodes::adversary::{Adversary, AdversaryAction};
use nodes::client::core::{ClientEvent, Command};
use nodes::endpoint::Endpoint;
use nodes::hub::{Enforcement, EnforcementConfig, HubEvent};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::room::roles::BANNED_ROLE;
use nodes::room::{RolePreset, RoomState};
use nodes::server::ServerEvent;
use nodes::wire::{decode_exact, SubmitMessageRequest, UpdateOutcome, UpdateRoomResponse};
use nodes::world::MemoryWorld;

const LEVELS: [Enforcement; 3] = [Enforcement::Off, Enforcement::Mls, Enforcement::Full];

fn d(s: &str) -> Domain {
    Domain::new(s).unwrap()
}
fn dev(dom: &str, user: &str, device: &str) -> ClientUri {
    UserUri::new(&d(dom), user).unwrap().client(device).unwrap()
}

struct Setup {
    w: MemoryWorld,
    room: RoomUri,
    alice: ClientUri,
    bob: ClientUri,
    carol: ClientUri,
}

/// Providers a (hub), b, c (malicious with `adversary`) at enforcement `level`; clients
/// alice@a, bob@b, carol@c and `extra` further clients (all with KeyPackages). Alice
/// creates a cooperative room and adds the users in `add` in order (user, role).
fn setup(
    seed: u64,
    level: Enforcement,
    adversary: Adversary,
    extra: &[ClientUri],
    add: &[(UserUri, Option<u32>)],
) -> Setup {
    let mut w = MemoryWorld::new(seed);
    for x in ["a.example", "b.example"] {
        w.add_server(&d(x), EnforcementConfig::new(level));
    }
    w.add_server_with_adversary(
        &d("c.example"),
        EnforcementConfig::new(level),
        Some(adversary),
    );
    let alice = dev("a.example", "alice", "1");
    let bob = dev("b.example", "bob", "1");
    let carol = dev("c.example", "carol", "1");
    for c in [&alice, &bob, &carol].into_iter().chain(extra) {
        w.add_client(c, 6);
    }
    w.record_requests = true;
    w.run();
    let room = w.create_room(&alice, "r", RolePreset::Cooperative).unwrap();
    for (user, role) in add {
        w.command(
            &alice,
            Command::AddUser {
                room: room.clone(),
                user: user.clone(),
                role: *role,
            },
        )
        .unwrap();
    }
    Setup {
        w,
        room,
        alice,
        bob,
        carol,
    }
}

/// Alice adds Bob then Carol (ordinary participants).
fn basic(seed: u64, level: Enforcement, adversary: Adversary) -> Setup {
    let add = [
        (dev("b.example", "bob", "1").user(), None),
        (dev("c.example", "carol", "1").user(), None),
    ];
    setup(seed, level, adversary, &[], &add)
}

fn rejections(w: &MemoryWorld) -> Vec<(String, Option<&'static str>)> {
    w.server_events
        .iter()
        .filter_map(|(_, e)| match e {
            ServerEvent::Hub(HubEvent::Rejected { code, rule, .. }) => Some((code.clone(), *rule)),
            _ => None,
        })
        .collect()
}

fn rejected_by(w: &MemoryWorld, rule: &str) -> bool {
    rejections(w).iter().any(|(_, r)| *r == Some(rule))
}

/// No rejection by any MIMI rule (a `wrongEpoch` race is not a rule).
fn no_rule_fired(w: &MemoryWorld) -> bool {
    rejections(w).iter().all(|(_, r)| r.is_none())
}

fn received(w: &MemoryWorld, by: &ClientUri, text: &str) -> bool {
    w.client_events.iter().any(|(c, e)| {
        c == by && matches!(e, ClientEvent::MessageReceived { text: t, .. } if t == text)
    })
}

fn delivery_errors(w: &MemoryWorld, by: &ClientUri) -> usize {
    w.client_events
        .iter()
        .filter(|(c, e)| c == by && matches!(e, ClientEvent::DeliveryError { .. }))
        .count()
}

fn members(w: &MemoryWorld, by: &ClientUri, room: &RoomUri) -> Vec<ClientUri> {
    w.client(by).room_view(room).unwrap().members
}

fn state(w: &MemoryWorld, by: &ClientUri, room: &RoomUri) -> RoomState {
    w.client(by).room_view(room).unwrap().state.unwrap()
}

fn epoch(w: &MemoryWorld, by: &ClientUri, room: &RoomUri) -> Option<u64> {
    w.client(by).room_view(room).map(|v| v.epoch)
}

fn hub_epoch(w: &MemoryWorld, room: &RoomUri) -> u64 {
    w.server(&d("a.example")).hub().room(room).unwrap().epoch()
}

fn actions(w: &MemoryWorld) -> &[AdversaryAction] {
    w.server(&d("c.example")).adversary_actions()
}

fn send(w: &mut MemoryWorld, by: &ClientUri, room: &RoomUri, text: &str) {
    w.command(
        by,
        Command::Send {
            room: room.clone(),
            text: text.into(),
        },
    )
    .unwrap();
}

fn self_update(w: &mut MemoryWorld, by: &ClientUri, room: &RoomUri) {
    w.command(by, Command::SelfUpdate { room: room.clone() })
        .unwrap();
}

#[test]
fn every_adversary_has_a_name_and_description() {
    assert_eq!(Adversary::ALL.len(), 12);
    for a in Adversary::ALL {
        assert_eq!(a.id().parse::<Adversary>().unwrap(), a);
        assert!(a.describe().len() > 20, "{a:?}");
    }
}

/// drop-fanout: c acknowledges every /notify, its client never joins nor hears anything;
/// the hub sees only 201s, at every level.
#[test]
fn drop_fanout_hurts_only_the_adversarys_clients() {
    for level in LEVELS {
        let mut s = basic(31, level, Adversary::DropFanout);
        send(&mut s.w, &s.alice, &s.room, "hello");
        assert!(received(&s.w, &s.bob, "hello"), "{level:?}");
        assert!(!received(&s.w, &s.carol, "hello"), "{level:?}");
        assert!(
            s.w.client(&s.carol).room_view(&s.room).is_none(),
            "{level:?}: the Welcome was withheld"
        );
        assert!(members(&s.w, &s.alice, &s.room).contains(&s.carol));
        assert!(actions(&s.w)
            .iter()
            .any(|a| matches!(a, AdversaryAction::Dropped { .. })));
        // The hub delivered everything and heard nothing wrong.
        assert!(s.w.server(&d("a.example")).hub().fanout_idle());
        assert!(no_rule_fired(&s.w), "{level:?}: {:?}", rejections(&s.w));
    }
}

/// reorder-fanout: c's client gets batches reversed and late: it cannot follow the
/// epochs, while honest members do. Nothing reaches the hub.
#[test]
fn reorder_fanout_hurts_only_the_adversarys_clients() {
    for level in LEVELS {
        let mut s = basic(32, level, Adversary::ReorderFanout);
        self_update(&mut s.w, &s.alice, &s.room);
        self_update(&mut s.w, &s.bob, &s.room);
        send(&mut s.w, &s.alice, &s.room, "one");
        self_update(&mut s.w, &s.alice, &s.room);
        assert!(actions(&s.w)
            .iter()
            .any(|a| matches!(a, AdversaryAction::Held { .. })));
        assert!(actions(&s.w)
            .iter()
            .any(|a| matches!(a, AdversaryAction::Released { .. })));
        let hub = hub_epoch(&s.w, &s.room);
        assert_eq!(epoch(&s.w, &s.bob, &s.room), Some(hub), "{level:?}");
        assert_eq!(epoch(&s.w, &s.alice, &s.room), Some(hub), "{level:?}");
        // Carol is stuck behind the hub: commits came late and out of order.
        let carol = epoch(&s.w, &s.carol, &s.room);
        assert!(
            carol.is_some_and(|e| e < hub),
            "{level:?}: carol at {carol:?}, hub at {hub}"
        );
        assert!(delivery_errors(&s.w, &s.carol) > 0, "{level:?}");
        assert!(received(&s.w, &s.bob, "one") && !received(&s.w, &s.carol, "one"));
        assert!(no_rule_fired(&s.w), "{level:?}: {:?}", rejections(&s.w));
    }
}

/// replay-notify: old fan-out reaches c's client again (it drops stale epochs and
/// duplicates), and c's client's old commit reaches the hub again: it is answered as a
/// retry and changes nothing, at every level.
#[test]
fn replay_notify_is_absorbed_by_idempotence() {
    for level in LEVELS {
        let mut s = basic(33, level, Adversary::ReplayNotify);
        self_update(&mut s.w, &s.carol, &s.room);
        self_update(&mut s.w, &s.alice, &s.room);
        let log_len =
            s.w.server(&d("a.example"))
                .hub()
                .room(&s.room)
                .unwrap()
                .log()
                .len();
        let epoch_before = hub_epoch(&s.w, &s.room);
        send(&mut s.w, &s.carol, &s.room, "again");
        let acts = actions(&s.w);
        assert!(acts
            .iter()
            .any(|a| matches!(a, AdversaryAction::Replayed { .. })));
        assert!(acts
            .iter()
            .any(|a| matches!(a, AdversaryAction::StaleCommitResubmitted { .. })));
        let answer = acts
            .iter()
            .find_map(|a| match a {
                AdversaryAction::StaleCommitAnswered { status, body, .. } => {
                    Some((*status, body.clone()))
                }
                _ => None,
            })
            .expect("the hub answered the stale commit");
        assert_eq!(answer.0, 200, "{level:?}");
        let outcome = decode_exact::<UpdateRoomResponse>(&answer.1)
            .unwrap()
            .outcome;
        assert!(
            matches!(outcome, UpdateOutcome::Success { .. }),
            "{level:?}: answered as the original (a retry): {outcome:?}"
        );
        assert!(s.w.server_events.iter().any(|(_, e)| matches!(
            e,
            ServerEvent::Hub(HubEvent::RetryAnswered {
                endpoint: "update",
                ..
            })
        )));
        // Only the message was logged; the epoch did not move.
        let hub_room = s.w.server(&d("a.example")).hub().room(&s.room).unwrap();
        assert_eq!(hub_room.log().len(), log_len + 1, "{level:?}");
        assert_eq!(hub_room.epoch(), epoch_before);
        assert!(received(&s.w, &s.bob, "again"));
        for c in [&s.alice, &s.bob, &s.carol] {
            assert_eq!(epoch(&s.w, c, &s.room), Some(epoch_before), "{level:?} {c}");
        }
        assert!(no_rule_fired(&s.w), "{level:?}: {:?}", rejections(&s.w));
    }
}

/// equivocate: Carol's first device commits; c shows Carol's second device another
/// commit of the same epoch. The second device forks from everyone else; the hub never
/// sees the forked commit.
#[test]
fn equivocation_to_own_clients_is_invisible_to_the_hub() {
    for level in LEVELS {
        let carol2 = dev("c.example", "carol", "2");
        let add = [
            (dev("b.example", "bob", "1").user(), None),
            (carol2.user(), None),
        ];
        let mut s = setup(
            34,
            level,
            Adversary::Equivocate,
            std::slice::from_ref(&carol2),
            &add,
        );
        assert!(members(&s.w, &s.alice, &s.room).contains(&carol2));
        self_update(&mut s.w, &s.carol, &s.room);
        assert!(actions(&s.w).iter().any(
            |a| matches!(a, AdversaryAction::ForkedCommitShown { to, .. } if to.contains(&carol2))
        ));
        // The forked commit never reached the hub: every update request at a is c's
        // real commit (accepted) and nothing was rejected.
        assert!(no_rule_fired(&s.w), "{level:?}: {:?}", rejections(&s.w));
        let hub = hub_epoch(&s.w, &s.room);
        let auth = |c: &ClientUri| {
            s.w.client(c)
                .room_view(&s.room)
                .unwrap()
                .epoch_authenticator
        };
        for c in [&s.alice, &s.bob, &s.carol] {
            assert_eq!(epoch(&s.w, c, &s.room), Some(hub), "{level:?} {c}");
        }
        assert_eq!(auth(&s.alice), auth(&s.bob));
        assert_eq!(auth(&s.alice), auth(&s.carol));
        assert_eq!(epoch(&s.w, &carol2, &s.room), Some(hub), "{level:?}");
        assert_ne!(
            auth(&carol2),
            auth(&s.alice),
            "{level:?}: Carol's second device is on a fork at the same epoch"
        );
    }
}

/// add-non-participant: Carol adds Dave's clients without listing Dave.
#[test]
fn add_non_participant_is_stopped_by_list_membership() {
    for level in LEVELS {
        let dave = dev("b.example", "dave", "1");
        let add = [
            (dev("b.example", "bob", "1").user(), None),
            (dev("c.example", "carol", "1").user(), None),
        ];
        let mut s = setup(
            35,
            level,
            Adversary::AddNonParticipant,
            std::slice::from_ref(&dave),
            &add,
        );
        s.w.command(
            &s.carol,
            Command::AddUser {
                room: s.room.clone(),
                user: dave.user(),
                role: None,
            },
        )
        .unwrap();
        let listed = state(&s.w, &s.alice, &s.room).is_participant(&dave.user());
        assert!(!listed, "{level:?}");
        let member = members(&s.w, &s.alice, &s.room).contains(&dave);
        match level {
            Enforcement::Off | Enforcement::Mls => {
                assert!(member, "a non-participant's client joined")
            }
            _ => {
                assert!(!member);
                assert!(
                    rejected_by(&s.w, "list-membership"),
                    "{:?}",
                    rejections(&s.w)
                );
            }
        }
    }
}

/// omit-cached-proposals: Alice leaves (SelfRemove + list update, accepted by the hub);
/// Carol has the commit duty and commits without those proposals.
#[test]
fn omit_cached_proposals_is_stopped_by_cached_proposals() {
    for level in LEVELS {
        let add = [
            (dev("c.example", "carol", "1").user(), None),
            (dev("b.example", "bob", "1").user(), None),
        ];
        let mut s = setup(36, level, Adversary::OmitCachedProposals, &[], &add);
        let before = hub_epoch(&s.w, &s.room);
        s.w.command(
            &s.alice,
            Command::Leave {
                room: s.room.clone(),
            },
        )
        .unwrap();
        let alice_in = members(&s.w, &s.bob, &s.room).contains(&s.alice);
        assert!(alice_in, "{level:?}: Alice's leave was never committed");
        match level {
            Enforcement::Off | Enforcement::Mls => {
                // Carol's commit went through without the proposals: the epoch moved on
                // and the leave is lost.
                assert!(hub_epoch(&s.w, &s.room) > before);
                assert_eq!(epoch(&s.w, &s.bob, &s.room), Some(hub_epoch(&s.w, &s.room)));
            }
            _ => {
                assert!(
                    rejected_by(&s.w, "cached-proposals"),
                    "{:?}",
                    rejections(&s.w)
                );
                assert_eq!(hub_epoch(&s.w, &s.room), before, "nothing committed");
                let hub = s.w.server(&d("a.example")).hub().room(&s.room).unwrap();
                assert!(!hub.pending().is_empty(), "the leave is still pending");
            }
        }
    }
}

/// omit-list-update: Carol (group admin) bans Bob but commits only the Removes: Bob stays
/// listed with his old role. That is exactly a Kick, which Carol may do.
#[test]
fn omit_list_update_turns_a_ban_into_a_kick() {
    for level in LEVELS {
        let add = [
            (dev("b.example", "bob", "1").user(), None),
            (dev("c.example", "carol", "1").user(), Some(3)),
        ];
        let mut s = setup(37, level, Adversary::OmitListUpdate, &[], &add);
        s.w.command(
            &s.carol,
            Command::Ban {
                room: s.room.clone(),
                user: s.bob.user(),
            },
        )
        .unwrap();
        let st = state(&s.w, &s.alice, &s.room);
        assert!(
            !members(&s.w, &s.alice, &s.room).contains(&s.bob),
            "{level:?}: Bob's clients are gone"
        );
        assert!(st.is_participant(&s.bob.user()), "{level:?}");
        assert_ne!(
            st.role_of(&s.bob.user()),
            BANNED_ROLE,
            "{level:?}: not banned"
        );
        assert!(no_rule_fired(&s.w), "{level:?}: {:?}", rejections(&s.w));
    }
}

fn group_info_epoch(bytes: &[u8]) -> u64 {
    use openmls::prelude::tls_codec::Deserialize as _;
    openmls::messages::group_info::VerifiableGroupInfo::tls_deserialize_exact(bytes)
        .unwrap()
        .epoch()
        .as_u64()
}

/// bad-group-info: Carol's commit carries the GroupInfo of the epoch before it.
#[test]
fn bad_group_info_is_stopped_by_group_info() {
    for level in LEVELS {
        let mut s = basic(38, level, Adversary::BadGroupInfo);
        let before = hub_epoch(&s.w, &s.room);
        self_update(&mut s.w, &s.carol, &s.room);
        let hub = s.w.server(&d("a.example")).hub().room(&s.room).unwrap();
        match level {
            Enforcement::Off | Enforcement::Mls => {
                assert_eq!(hub.epoch(), before + 1);
                assert_eq!(
                    group_info_epoch(hub.group_info()),
                    before,
                    "the hub serves a GroupInfo of the previous epoch"
                );
            }
            _ => {
                assert_eq!(hub.epoch(), before);
                assert_eq!(group_info_epoch(hub.group_info()), before);
                assert!(rejected_by(&s.w, "group-info"), "{:?}", rejections(&s.w));
            }
        }
    }
}

/// The sendingUri of every `/submitMessage` that reached the hub from c.
fn submitted_sending_uris(w: &MemoryWorld) -> Vec<String> {
    w.requests
        .iter()
        .filter(|r| r.from == d("c.example") && matches!(r.endpoint, Endpoint::SubmitMessage(_)))
        .map(|r| {
            let req: SubmitMessageRequest = decode_exact(&r.body).unwrap();
            String::from_utf8(req.sending_uri.as_bytes().to_vec()).unwrap()
        })
        .collect()
}

/// forge-sending-uri: Carol's message names another participant. Named user at another
/// provider: `full` stops it. Named user at c itself: nothing can tell.
#[test]
fn forge_sending_uri_is_stopped_only_across_providers() {
    for level in LEVELS {
        // Only Alice and Bob to impersonate: Carol names Alice (first in list order).
        let mut s = basic(39, level, Adversary::ForgeSendingUri);
        send(&mut s.w, &s.carol, &s.room, "as alice");
        assert_eq!(
            submitted_sending_uris(&s.w),
            vec![s.alice.user().to_string()],
            "{level:?}"
        );
        match level {
            Enforcement::Off | Enforcement::Mls => assert!(received(&s.w, &s.bob, "as alice")),
            _ => {
                assert!(!received(&s.w, &s.bob, "as alice"));
                assert!(rejected_by(&s.w, "submit-sender"), "{:?}", rejections(&s.w));
            }
        }
        // Dave, also at c, is a participant too: Carol names Dave.
        let dave = dev("c.example", "dave", "1");
        let add = [
            (dev("b.example", "bob", "1").user(), None),
            (dev("c.example", "carol", "1").user(), None),
            (dave.user(), None),
        ];
        let mut s = setup(
            40,
            level,
            Adversary::ForgeSendingUri,
            std::slice::from_ref(&dave),
            &add,
        );
        send(&mut s.w, &s.carol, &s.room, "as dave");
        assert_eq!(
            submitted_sending_uris(&s.w),
            vec![dave.user().to_string()],
            "{level:?}"
        );
        assert!(received(&s.w, &s.bob, "as dave"), "{level:?}: accepted");
        assert!(no_rule_fired(&s.w), "{level:?}: {:?}", rejections(&s.w));
    }
}

/// foreign-key-package: Alice adds Carol; c hands out Dave's KeyPackage as Carol's, so
/// Dave's client joins while Carol is listed.
#[test]
fn foreign_key_package_is_stopped_by_list_membership() {
    for level in LEVELS {
        let dave = dev("c.example", "dave", "1");
        let add = [
            (dev("b.example", "bob", "1").user(), None),
            (dev("c.example", "carol", "1").user(), None),
        ];
        let s = setup(
            41,
            level,
            Adversary::ForeignKeyPackage,
            std::slice::from_ref(&dave),
            &add,
        );
        let st = state(&s.w, &s.alice, &s.room);
        let m = members(&s.w, &s.alice, &s.room);
        match level {
            Enforcement::Off | Enforcement::Mls => {
                assert!(st.is_participant(&s.carol.user()));
                assert!(!st.is_participant(&dave.user()));
                assert!(m.contains(&dave) && !m.contains(&s.carol), "{m:?}");
                assert!(s.w.client(&dave).room_view(&s.room).is_some());
            }
            _ => {
                assert!(!m.contains(&dave), "{m:?}");
                assert!(!st.is_participant(&s.carol.user()));
                assert!(
                    rejected_by(&s.w, "list-membership"),
                    "{:?}",
                    rejections(&s.w)
                );
            }
        }
    }
}

/// ghost-device: when Carol's device joins, it adds Carol's other device (the provider's
/// ghost) without any action of Carol's.
#[test]
fn ghost_device_is_not_stoppable() {
    for level in LEVELS {
        let ghost = dev("c.example", "carol", "ghost");
        let add = [
            (dev("b.example", "bob", "1").user(), None),
            (dev("c.example", "carol", "1").user(), None),
        ];
        let s = setup(
            42,
            level,
            Adversary::GhostDevice,
            std::slice::from_ref(&ghost),
            &add,
        );
        let m = members(&s.w, &s.bob, &s.room);
        assert!(m.contains(&ghost), "{level:?}: {m:?}");
        // Alice's add brought only Carol's first device; the ghost came with a commit of
        // Carol's device that Carol's user never asked for.
        assert!(s
            .w
            .client_events
            .iter()
            .any(|(c, e)| c == &s.carol
                && matches!(e, ClientEvent::OpSucceeded { op: "add-user", .. })));
        assert!(s
            .w
            .client_events
            .iter()
            .any(|(c, e)| c == &ghost && matches!(e, ClientEvent::Joined { how: "welcome", .. })));
        let st = state(&s.w, &s.bob, &s.room);
        assert!(st.is_participant(&s.carol.user()));
        assert_eq!(st.participants.len(), 3, "no participant-list change");
        assert!(no_rule_fired(&s.w), "{level:?}: {:?}", rejections(&s.w));
    }
}

/// bad-confirmation-tag: the hub accepts Carol's commit (it cannot check the tag); the
/// honest members reject it and stay behind the hub.
#[test]
fn bad_confirmation_tag_is_not_stoppable_by_a_hub() {
    for level in LEVELS {
        let mut s = basic(43, level, Adversary::BadConfirmationTag);
        let before = hub_epoch(&s.w, &s.room);
        self_update(&mut s.w, &s.carol, &s.room);
        assert_eq!(hub_epoch(&s.w, &s.room), before + 1, "{level:?}: accepted");
        assert!(no_rule_fired(&s.w), "{level:?}: {:?}", rejections(&s.w));
        for c in [&s.alice, &s.bob] {
            assert_eq!(epoch(&s.w, c, &s.room), Some(before), "{level:?} {c}");
            assert!(delivery_errors(&s.w, c) > 0, "{level:?} {c}");
        }
        assert_eq!(epoch(&s.w, &s.carol, &s.room), Some(before + 1));
    }
}

/// Adversarial runs are deterministic: the same seed gives the same events.
#[test]
fn adversarial_runs_are_deterministic() {
    let run = |seed| {
        let mut s = basic(seed, Enforcement::Full, Adversary::ReorderFanout);
        self_update(&mut s.w, &s.alice, &s.room);
        send(&mut s.w, &s.bob, &s.room, "x");
        format!("{:?}{:?}", s.w.client_events, actions(&s.w))
    };
    assert_eq!(run(50), run(50));
}
