//! Liveness of the cores (issue 12): every operation ends. A client stops resending after
//! [`MAX_ATTEMPTS`] and fails the op; its evidence phase ends after [`EVIDENCE_TIMEOUT`];
//! a `/groupInfo` request the requester got wrong is a 4xx (definitive), not a 5xx (which
//! a client resends); a commit whose log entries the hub cannot encode is refused with
//! the hub's state unchanged, not accepted without its Welcome.

use nodes::adversary::Adversary;
use nodes::client::core::{ClientEvent, Command, CATCH_UP_TIMEOUT, EVIDENCE_TIMEOUT, MAX_ATTEMPTS};
use nodes::client::failure::FailureOrigin;
use nodes::hub::{Enforcement, EnforcementConfig, HubEvent};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::io::ProviderToClient;
use nodes::io::{status, Response};
use nodes::mls::config::Identity;
use nodes::mls::{SeededProvider, CIPHERSUITE};
use nodes::planted::{Bug, Bugs};
use nodes::room::{RolePreset, RoomState};
use nodes::server::ServerEvent;
use nodes::wire::*;
use nodes::world::MemoryWorld;
use openmls_traits::crypto::OpenMlsCrypto;

fn d(s: &str) -> Domain {
    Domain::new(s).unwrap()
}
fn client(dom: &str, user: &str) -> ClientUri {
    UserUri::new(&d(dom), user).unwrap().client("1").unwrap()
}

/// Alice@a (the hub, with `bugs`) and Bob@b at `level`; Alice creates room `r`.
fn world(
    seed: u64,
    level: Enforcement,
    bugs: &[Bug],
) -> (MemoryWorld, RoomUri, ClientUri, ClientUri) {
    let bugs: Bugs = bugs.iter().copied().collect();
    let mut w = MemoryWorld::new(seed);
    w.add_server_with_bugs(&d("a.example"), EnforcementConfig::new(level), &bugs);
    w.add_server(&d("b.example"), EnforcementConfig::new(level));
    let (alice, bob) = (client("a.example", "alice"), client("b.example", "bob"));
    w.add_client(&alice, 4);
    w.add_client(&bob, 4);
    w.run();
    let room = w.create_room(&alice, "r", RolePreset::Cooperative).unwrap();
    (w, room, alice, bob)
}

fn add(w: &mut MemoryWorld, by: &ClientUri, room: &RoomUri, user: &ClientUri) {
    w.command(
        by,
        Command::AddUser {
            room: room.clone(),
            user: user.user(),
            role: None,
        },
    )
    .unwrap();
}

/// The ops `who` saw fail, with their reasons.
fn failures(w: &MemoryWorld, who: &ClientUri) -> Vec<(&'static str, String)> {
    w.client_events
        .iter()
        .filter(|(c, _)| c == who)
        .filter_map(|(_, e)| match e {
            ClientEvent::OpFailed { op, reason, .. } => Some((*op, reason.clone())),
            _ => None,
        })
        .collect()
}

/// The attempts `who` resent (the `attempt` of each [`ClientEvent::Resent`]).
fn resent(w: &MemoryWorld, who: &ClientUri) -> Vec<u32> {
    w.client_events
        .iter()
        .filter(|(c, _)| c == who)
        .filter_map(|(_, e)| match e {
            ClientEvent::Resent { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect()
}

/// What an accepted commit changes in the hub's room.
#[derive(Debug, PartialEq)]
struct HubSnapshot {
    epoch: u64,
    log: usize,
    view_epoch: Option<u64>,
    group_context: Option<Vec<u8>>,
    group_info: Vec<u8>,
    ratchet_tree: Vec<u8>,
    hub_state: RoomState,
    committed: RoomState,
    pending: usize,
}

fn snapshot(w: &MemoryWorld, room: &RoomUri) -> HubSnapshot {
    let r = w.server(&room.domain()).hub().room(room).unwrap();
    HubSnapshot {
        epoch: r.epoch(),
        log: r.log().len(),
        view_epoch: r.view().map(|v| v.epoch()),
        group_context: r.view().map(|v| v.group_context_bytes()),
        group_info: r.group_info().to_vec(),
        ratchet_tree: r.ratchet_tree().to_vec(),
        hub_state: r.hub_state().clone(),
        committed: r.committed().clone(),
        pending: r.pending().len(),
    }
}

fn internal_refusals(w: &MemoryWorld) -> usize {
    w.server_events
        .iter()
        .filter(|(_, e)| {
            matches!(e, ServerEvent::Hub(HubEvent::Rejected { code, .. }) if code == "internal")
        })
        .count()
}

/// A commit whose Welcome the hub cannot encode (planted fault) is refused with 500 and
/// leaves the hub's room exactly as it was, at every enforcement level; nothing of it is
/// logged. The client sees only 5xx: it sends the commit exactly [`MAX_ATTEMPTS`] times,
/// waits out its evidence phase, fails the op once with a reason, and is idle.
#[test]
fn a_commit_whose_welcome_cannot_be_encoded_is_refused_and_the_client_gives_up() {
    for (seed, level) in [
        (1, Enforcement::Off),
        (2, Enforcement::Mls),
        (3, Enforcement::Full),
    ] {
        let (mut w, room, alice, bob) = world(seed, level, &[Bug::HubWelcomeUnencodable]);
        let before = snapshot(&w, &room);
        assert_eq!(before.epoch, 0, "{level:?}: the room was created");
        add(&mut w, &alice, &room, &bob);
        assert_eq!(snapshot(&w, &room), before, "{level:?}: hub state changed");
        assert!(
            !w.server_events.iter().any(|(_, e)| matches!(
                e,
                ServerEvent::Hub(HubEvent::Accepted {
                    kind: "commit" | "welcome",
                    epoch: 1,
                    ..
                })
            )),
            "{level:?}: nothing of the refused commit is logged"
        );
        assert_eq!(
            internal_refusals(&w),
            MAX_ATTEMPTS as usize,
            "{level:?}: every attempt reached the hub and was refused"
        );
        assert_eq!(
            resent(&w, &alice),
            (2..=MAX_ATTEMPTS).collect::<Vec<_>>(),
            "{level:?}: resent up to the limit, not beyond"
        );
        let failed = failures(&w, &alice);
        assert_eq!(failed.len(), 1, "{level:?}: {failed:?}");
        let (op, reason) = &failed[0];
        assert_eq!(*op, "add-user");
        assert!(
            reason.starts_with(&format!("gave up after {MAX_ATTEMPTS} attempts"))
                && reason.contains("provider answered 500")
                && reason.contains(Bug::HubWelcomeUnencodable.id().as_str()),
            "{level:?}: {reason}"
        );
        assert!(w.client(&alice).is_idle(&room), "{level:?}: Alice is idle");
        assert!(
            w.client(&bob).room_view(&room).is_none(),
            "{level:?}: no Welcome"
        );
        // Alice's room goes on: the discarded commit left her group usable.
        w.command(
            &alice,
            Command::Send {
                room: room.clone(),
                text: "still here".into(),
            },
        )
        .unwrap();
        assert_eq!(failures(&w, &alice).len(), 1, "{level:?}: the send worked");
        assert_eq!(snapshot(&w, &room).log, before.log + 1, "{level:?}");
    }
}

/// The same room without the fault: the commit and its Welcome are logged together and
/// Bob joins (the refusal above is the fault's doing, not the setup's).
#[test]
fn without_the_fault_the_commit_and_its_welcome_are_logged() {
    let (mut w, room, alice, bob) = world(3, Enforcement::Full, &[]);
    add(&mut w, &alice, &room, &bob);
    let kinds: Vec<&str> = w
        .server_events
        .iter()
        .filter_map(|(_, e)| match e {
            ServerEvent::Hub(HubEvent::Accepted { kind, epoch: 1, .. }) => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["commit", "welcome"]);
    assert_eq!(w.client(&bob).room_view(&room).unwrap().epoch, 1);
    assert!(failures(&w, &alice).is_empty());
    assert_eq!(internal_refusals(&w), 0);
}

/// Every reply to Alice is lost: an op with no message in the room's log (the
/// KeyPackage fetch of an add) is sent [`MAX_ATTEMPTS`] times and then fails at once.
#[test]
fn a_request_that_never_gets_a_reply_is_given_up() {
    let (mut w, room, alice, bob) = world(4, Enforcement::Full, &[]);
    w.drop_next_replies(&alice, usize::MAX);
    add(&mut w, &alice, &room, &bob);
    assert_eq!(resent(&w, &alice), (2..=MAX_ATTEMPTS).collect::<Vec<_>>());
    let failed = failures(&w, &alice);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "add-user");
    assert!(
        failed[0]
            .1
            .starts_with(&format!("gave up after {MAX_ATTEMPTS} attempts"))
            && failed[0].1.contains("no reply within"),
        "{}",
        failed[0].1
    );
    assert!(
        !failed[0].1.contains("fan-out"),
        "no evidence phase without an echo"
    );
    assert!(w.client(&alice).is_idle(&room));
}

/// Bob's provider drops every fan-out after he joined. Alice commits; Bob, still at the
/// old epoch, commits too and gets `wrongEpoch` naming a later epoch: he waits for the
/// fan-out of his epoch, which never comes. After [`EVIDENCE_TIMEOUT`] he asks the hub
/// once more (one resend); `wrongEpoch` again is definitive: the op fails, Bob is idle.
#[test]
fn the_evidence_phase_ends_when_the_fanout_never_comes() {
    let (mut w, room, alice, bob) = world(5, Enforcement::Full, &[]);
    add(&mut w, &alice, &room, &bob);
    assert_eq!(w.client(&bob).room_view(&room).unwrap().epoch, 1);
    let b = d("b.example");
    let server = w.servers.remove(&b).unwrap();
    w.servers
        .insert(b, server.with_adversary(Some(Adversary::DropFanout)));
    w.command(&alice, Command::SelfUpdate { room: room.clone() })
        .unwrap();
    assert_eq!(
        w.server(&d("a.example")).hub().room(&room).unwrap().epoch(),
        2
    );
    let start = w.now;
    w.command(&bob, Command::SelfUpdate { room: room.clone() })
        .unwrap();
    assert!(
        w.now >= start + EVIDENCE_TIMEOUT,
        "the evidence phase ran out"
    );
    assert_eq!(resent(&w, &bob), [2], "one resend to ask the hub");
    let failed = failures(&w, &bob);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "self-update");
    assert!(
        failed[0].1.starts_with("no evidence") && failed[0].1.contains("wrongEpoch"),
        "{}",
        failed[0].1
    );
    assert!(w.client(&bob).is_idle(&room));
    assert_eq!(
        w.server(&d("a.example")).hub().room(&room).unwrap().epoch(),
        2
    );
}

#[test]
fn a_retry_waiting_for_an_epoch_out_of_reach_fails_after_the_catch_up_timeout() {
    let (mut w, room, alice, bob) = world(6, Enforcement::Full, &[]);
    add(&mut w, &alice, &room, &bob);
    assert_eq!(w.client(&bob).room_view(&room).unwrap().epoch, 1);
    // Bob's provider stops handing him the fan-out; Alice commits twice (epoch 3).
    let b = d("b.example");
    let server = w.servers.remove(&b).unwrap();
    w.servers
        .insert(b, server.with_adversary(Some(Adversary::DropFanout)));
    for _ in 0..2 {
        w.command(&alice, Command::SelfUpdate { room: room.clone() })
            .unwrap();
    }
    let hub = d("a.example");
    assert_eq!(w.server(&hub).hub().room(&room).unwrap().epoch(), 3);
    // The log's commits: Bob's add (0 → 1), then Alice's two updates; the first update
    // is the commit that wins epoch 1.
    let epoch1_commit = w
        .server(&hub)
        .hub()
        .room(&room)
        .unwrap()
        .log()
        .iter()
        .filter(|e| e.kind.contains("commit"))
        .nth(1)
        .map(|e| e.fanout.clone())
        .expect("Alice's first update is logged");
    // Bob's commit at epoch 1 is answered wrongEpoch (3); then the commit that won
    // epoch 1 reaches him (and nothing after it): his retry must wait for epoch 3,
    // which he cannot reach.
    w.queue_command(&bob, Command::SelfUpdate { room: room.clone() })
        .unwrap();
    while w.step() {}
    w.to_client(
        &bob,
        ProviderToClient::Deliver {
            room: room.clone(),
            fanout: epoch1_commit,
        },
    );
    let start = w.now;
    w.run();
    assert_eq!(w.client(&bob).room_view(&room).unwrap().epoch, 2);
    let failed: Vec<(FailureOrigin, String)> = w
        .client_events
        .iter()
        .filter(|(c, _)| c == &bob)
        .filter_map(|(_, e)| match e {
            ClientEvent::OpFailed { origin, reason, .. } => Some((*origin, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        failed.iter().map(|f| f.0).collect::<Vec<_>>(),
        [FailureOrigin::EpochOutOfReach {
            epoch: 3,
            reached: 2
        }],
        "{failed:?}"
    );
    assert!(
        failed[0].1.contains("epoch 3 not reached"),
        "{}",
        failed[0].1
    );
    assert!(w.now >= start + CATCH_UP_TIMEOUT, "it waited the timeout");
    assert!(w.client(&bob).is_idle(&room), "the queue moved on");
}

/// A signed `/groupInfo` request by Bob's second device, with `suite` and `key`.
fn group_info_request(suite: CipherSuite, key: &[u8]) -> GroupInfoRequest {
    let uri: ClientUri = "mimi://b.example/d/bob/2".parse().unwrap();
    let provider = SeededProvider::for_node(77, uri.as_str());
    let id = Identity::for_client(&provider, &uri).unwrap();
    let tbs = GroupInfoRequestTbs {
        protocol: Protocol::Mls10,
        cipher_suite: suite,
        requesting_signature_key: SignaturePublicKeyBytes::from_openmls(
            &id.credential_with_key.signature_key,
        )
        .unwrap(),
        requesting_credential: CredentialBytes::from_openmls(&id.credential_with_key.credential)
            .unwrap(),
        group_info_public_key: HpkePublicKeyBytes::from_key(key).unwrap(),
        joining_code: None,
    };
    match GroupInfoRequest::sign(tbs.clone(), &id.signer) {
        Ok(r) => r,
        // A suite this implementation does not know cannot be signed for: the hub must
        // refuse it before it looks at the signature anyway.
        Err(_) => GroupInfoRequest {
            tbs,
            signature: vec![0u8; 64].into(),
        },
    }
}

fn ask(w: &mut MemoryWorld, room: &RoomUri, req: &GroupInfoRequest) -> Response {
    w.servers
        .get_mut(&d("a.example"))
        .unwrap()
        .hub_mut()
        .group_info(&d("b.example"), room, &encode(req).unwrap())
}

/// `/groupInfo` with an unsupported cipher suite or an unusable HPKE key is the
/// requester's fault: 400 with a reason, not 500; the same request with a good key
/// succeeds.
#[test]
fn group_info_requester_errors_are_4xx() {
    let (mut w, room, alice, bob) = world(6, Enforcement::Full, &[]);
    add(&mut w, &alice, &room, &bob);
    let good_key = SeededProvider::for_node(78, "joiner")
        .seeded_crypto()
        .derive_hpke_keypair(CIPHERSUITE.hpke_config(), &[7u8; 32])
        .unwrap()
        .public;
    let ours = CipherSuite::from(CIPHERSUITE);
    let cases: [(&str, CipherSuite, Vec<u8>, &str); 4] = [
        // X25519/ChaCha20/Ed25519: valid MLS, signable with our key, not served here.
        (
            "other suite",
            CipherSuite(0x0003),
            good_key.clone(),
            "cipher suite 0x0003",
        ),
        (
            "unknown suite",
            CipherSuite(0x7777),
            good_key.clone(),
            "cipher suite 0x7777",
        ),
        (
            "short key",
            ours,
            good_key[..31].to_vec(),
            "groupInfoPublicKey has 31 bytes",
        ),
        // The all-zero X25519 point: the right length, no usable shared secret.
        (
            "zero key",
            ours,
            vec![0u8; 32],
            "not a usable HPKE public key",
        ),
    ];
    for (what, suite, key, why) in cases {
        let r = ask(&mut w, &room, &group_info_request(suite, &key));
        let body = String::from_utf8_lossy(&r.body).into_owned();
        assert_eq!(r.status, status::BAD_REQUEST, "{what}: {body}");
        assert!(body.contains(why), "{what}: {body}");
    }
    let r = ask(&mut w, &room, &group_info_request(ours, &good_key));
    assert_eq!(r.status, status::OK);
    let resp: GroupInfoResponse = decode_exact(&r.body).unwrap();
    assert!(
        matches!(resp.status, GroupInfoStatus::Success(_)),
        "{:?}",
        resp.status.code()
    );
}
