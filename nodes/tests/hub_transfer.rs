//! x-hub-transfer (nodes/src/transfer.rs): moving a room's hub. Hubs are driven
//! directly; commits are real MLS commits built by `client::Member`.
//!
//! * cooperative handoff: the old hub sequences the transfer commit, stops, hands off
//!   after its fan-out; the new hub sequences the next epoch; nothing accepted is lost;
//! * takeover with the old hub gone;
//! * the split: old and new hub both accept a commit for the same epoch, and the fence
//!   stops the old hub (but both commits exist);
//! * the transfer policy (who may move the hub, where to, external_senders).

use nodes::client::member::{CommitOutput, Member};
use nodes::hub::{Enforcement, EnforcementConfig, Hub, HubEvent};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::io::{status, Response};
use nodes::mls::commit::CommitPlan;
use nodes::mls::config::Identity;
use nodes::mls::SeededProvider;
use nodes::room::components::{ParticipantListUpdate, UserRolePair};
use nodes::room::RoomComponents;
use nodes::room::{NewRoomOptions, RolePreset, RoomState, PARTICIPANT_LIST};
use nodes::transfer::{
    external_sender_identity, transfer_plan, Fence, FenceOutcome, Handoff, HubDirectory, HubMoved,
    HubRecord,
};
use nodes::wire::*;
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;

const T0: u64 = 1_767_225_600_000;
const SEED: u64 = 11;

struct Party {
    uri: ClientUri,
    provider: SeededProvider,
    id: Identity,
    member: Option<Member>,
}

fn party(uri: &str) -> Party {
    let uri: ClientUri = uri.parse().unwrap();
    let provider = SeededProvider::for_node(SEED, uri.as_str());
    let id = Identity::for_client(&provider, &uri).unwrap();
    Party {
        uri,
        provider,
        id,
        member: None,
    }
}

impl Party {
    fn m(&mut self) -> &mut Member {
        self.member.as_mut().unwrap()
    }
    fn commit(&mut self, plan: &CommitPlan) -> CommitOutput {
        let (p, id) = (&self.provider, &self.id);
        self.member
            .as_mut()
            .unwrap()
            .commit(p, id, plan, &RoomComponents)
            .unwrap()
    }
    fn merge(&mut self) {
        let p = &self.provider;
        self.member
            .as_mut()
            .unwrap()
            .merge_pending_commit(p)
            .unwrap();
    }
    fn process(&mut self, msg: &[u8]) -> Result<(), String> {
        let p = &self.provider;
        self.member
            .as_mut()
            .unwrap()
            .process_handshake(p, msg, &RoomComponents)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    fn discard(&mut self) {
        let p = &self.provider;
        self.member
            .as_mut()
            .unwrap()
            .discard_pending_commit(p)
            .unwrap();
    }
    fn group_info(&self) -> Vec<u8> {
        self.member
            .as_ref()
            .unwrap()
            .group_info(&self.provider, &self.id)
            .unwrap()
    }
    fn external_sender_ids(&self) -> Vec<String> {
        self.member
            .as_ref()
            .unwrap()
            .group()
            .extensions()
            .external_senders()
            .map(|s| {
                s.iter()
                    .map(|e| String::from_utf8(external_sender_identity(e)).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
    /// A transfer commit plan to `to` (x-hub-transfer §2), from this member's state.
    fn transfer_plan(&self, room: &RoomUri, to: &Hub) -> CommitPlan {
        let m = self.member.as_ref().unwrap();
        let current = nodes::transfer::hub_record(room, &m.dictionary()).unwrap();
        transfer_plan(
            m.group().extensions(),
            &current.hub,
            to.external_sender(),
            &current.next(to.domain()),
        )
        .unwrap()
    }
}

fn d(s: &str) -> Domain {
    Domain::new(s).unwrap()
}

fn update_body(out: &CommitOutput) -> Vec<u8> {
    let bundle = HandshakeBundle {
        proposal_or_commit: MlsMessageBytes::from_bytes(&out.commit).unwrap(),
        body: HandshakeBody::Commit {
            welcome: out
                .welcome
                .as_ref()
                .map(|w| WelcomeBytes::from_bytes(w).unwrap()),
            group_info_option: GroupInfoOption::Full(
                GroupInfoBytes::from_bytes(&out.group_info).unwrap(),
            ),
            ratchet_tree_option: RatchetTreeOption::Full(
                RatchetTreeBytes::from_bytes(&out.ratchet_tree).unwrap(),
            ),
        },
    };
    encode(&UpdateRequest { bundle }).unwrap()
}

fn outcome(resp: &Response) -> UpdateOutcome {
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    decode_exact::<UpdateRoomResponse>(&resp.body)
        .unwrap()
        .outcome
}

fn success(resp: &Response) -> bool {
    matches!(outcome(resp), UpdateOutcome::Success { .. })
}

fn last_rule(hub: &mut Hub) -> Option<&'static str> {
    hub.take_events().into_iter().rev().find_map(|e| match e {
        HubEvent::Rejected { rule, .. } => Some(rule),
        _ => None,
    })?
}

fn list_add(user: &UserUri, role: u32) -> Proposal {
    let u = ParticipantListUpdate {
        added_participants: vec![UserRolePair {
            user: nodes::room::codec::Opaque(user.as_bytes().to_vec()),
            role_index: role,
        }],
        ..Default::default()
    };
    Proposal::AppDataUpdate(Box::new(AppDataUpdateProposal::update(
        PARTICIPANT_LIST,
        u.encode().unwrap(),
    )))
}

/// Deliver every `/notify` the hub has, acknowledging all; returns the bodies.
fn drain(hub: &mut Hub, now: u64) -> Vec<(Domain, Vec<u8>)> {
    let mut out = Vec::new();
    let mut token = 0;
    loop {
        let batch = hub.poll_notify(now);
        if batch.is_empty() {
            return out;
        }
        for (room, to, body) in batch {
            token += 1;
            hub.notify_sent(&room, &to, token);
            hub.notify_result(now, &room, &to, true);
            out.push((to, body));
        }
    }
}

/// A room at a.example: Alice (creator, super_admin) and Bob (b.example) with role
/// `bob_role` (2 ordinary, 3 group_admin), both members at epoch 1. Hubs a and b exist.
struct Fixture {
    room: RoomUri,
    a: Domain,
    b: Domain,
    hub_a: Hub,
    hub_b: Hub,
    alice: Party,
    bob: Party,
    now: u64,
}

impl Fixture {
    fn new(bob_role: u32) -> Fixture {
        let (a, b) = (d("a.example"), d("b.example"));
        let room = RoomUri::new(&a, "r").unwrap();
        let full = || EnforcementConfig::new(Enforcement::Full);
        let mut hub_a = Hub::new(a.clone(), SEED, full());
        let hub_b = Hub::new(b.clone(), SEED, full());
        let mut alice = party("mimi://a.example/d/alice/1");
        let mut bob = party("mimi://b.example/d/bob/1");
        let state = RoomState::new_room(
            &room,
            &alice.uri.user(),
            RolePreset::Cooperative,
            NewRoomOptions {
                hub: Some(a.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        let m = Member::create(
            &alice.provider,
            &alice.id,
            room.as_bytes(),
            state.to_dictionary(),
            hub_a.external_sender(),
        )
        .unwrap();
        hub_a
            .create_room(
                &room,
                &alice.uri,
                &m.group_info(&alice.provider, &alice.id).unwrap(),
                &m.ratchet_tree(),
            )
            .unwrap();
        alice.member = Some(m);
        // Bob's KeyPackage goes through hub a (P§5.2), then Alice adds him.
        let kp_bytes = bob
            .id
            .key_package(&bob.provider)
            .unwrap()
            .key_package()
            .tls_serialize_detached()
            .unwrap();
        let resp = KeyMaterialResponse {
            protocol: Protocol::Mls10,
            user_status: KeyMaterialUserCode::Success,
            user_uri: IdentifierUri::from(&bob.uri.user()),
            clients: vec![ClientKeyMaterial {
                client_uri: IdentifierUri::from(&bob.uri),
                material: ClientMaterial::Success(KeyPackageBytes::from_bytes(&kp_bytes).unwrap()),
            }],
        };
        hub_a.record_key_material(&b, &encode(&resp).unwrap());
        let kp = {
            use openmls::prelude::tls_codec::Deserialize as _;
            KeyPackageIn::tls_deserialize_exact(&kp_bytes)
                .unwrap()
                .validate(bob.provider.seeded_crypto(), ProtocolVersion::Mls10)
                .unwrap()
        };
        let out = alice.commit(&CommitPlan {
            adds: vec![kp],
            proposals: vec![list_add(&bob.uri.user(), bob_role)],
            ..Default::default()
        });
        assert!(success(&hub_a.update(T0, &a, &room, &update_body(&out))));
        alice.merge();
        bob.member = Some(
            Member::join_by_welcome(
                &bob.provider,
                out.welcome.as_ref().unwrap(),
                &out.ratchet_tree,
            )
            .unwrap(),
        );
        Fixture {
            room,
            a,
            b,
            hub_a,
            hub_b,
            alice,
            bob,
            now: T0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.now += 10;
        self.now
    }

    /// Bob's application message (SubmitMessageRequest body).
    fn bob_message(&mut self, text: &[u8]) -> Vec<u8> {
        let (p, id) = (&self.bob.provider, &self.bob.id);
        let msg = self
            .bob
            .member
            .as_mut()
            .unwrap()
            .encrypt(p, id, text)
            .unwrap();
        let req = SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: MlsMessageBytes::from_bytes(&msg).unwrap(),
            sending_uri: IdentifierUri::from(&self.bob.uri.user()),
        };
        encode(&req).unwrap()
    }
}

fn submit_outcome(resp: &Response) -> SubmitOutcome {
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    decode_exact::<SubmitMessageResponse>(&resp.body)
        .unwrap()
        .outcome
}

fn moved(resp: &Response) -> HubMoved {
    assert_eq!(resp.status, status::MISDIRECTED);
    HubMoved::of_response(resp).expect("a HubMoved body")
}

/// (a) Cooperative handoff: Alice (on the hub's provider) moves the hub to b.example.
#[test]
fn cooperative_handoff_moves_sequencing_without_losing_anything() {
    let mut f = Fixture::new(2);
    let (a, b, room) = (f.a.clone(), f.b.clone(), f.room.clone());
    assert!(f.hub_a.sequencing(&room));
    assert_eq!(f.hub_a.generation(&room), Some(0));

    // A message accepted by the old hub before the transfer.
    let msg = f.bob_message(b"before the move");
    let now = f.tick();
    let SubmitOutcome::Accepted {
        accepted_timestamp: msg_ts,
        ..
    } = submit_outcome(&f.hub_a.submit(now, &b, &room, &msg))
    else {
        panic!("message refused")
    };

    // Epoch 1 → 2: the transfer commit, sequenced by the old hub.
    let plan = f.alice.transfer_plan(&room, &f.hub_b);
    let transfer = f.alice.commit(&plan);
    let now = f.tick();
    assert!(success(&f.hub_a.update(
        now,
        &a,
        &room,
        &update_body(&transfer)
    )));
    assert!(!f.hub_a.sequencing(&room), "the old hub stops at once");
    assert_eq!(f.hub_a.generation(&room), Some(1));
    assert!(f.hub_a.take_events().iter().any(|e| matches!(
        e,
        HubEvent::StoppedSequencing { reason: "handed off", new_hub, generation: 1, .. } if *new_hub == b
    )));
    // A byte-identical retry of the transfer commit still gets its answer…
    assert!(success(&f.hub_a.update(
        now + 1,
        &a,
        &room,
        &update_body(&transfer)
    )));
    // …but nothing new: 421 naming the new hub.
    let late = f.bob_message(b"too late for a");
    let m = moved(&f.hub_a.submit(now + 2, &b, &room, &late));
    assert_eq!(
        m.hub,
        HubRecord {
            hub: b.clone(),
            generation: 1
        }
    );
    f.alice.merge();
    f.bob.process(&transfer.commit).unwrap();

    // No handoff before the old hub's log is delivered; then exactly one.
    assert!(f.hub_a.export_handoff(&room).is_none());
    let delivered = drain(&mut f.hub_a, now + 3);
    assert!(!delivered.is_empty());
    let handoff = f.hub_a.export_handoff(&room).expect("fan-out done");
    let bytes = handoff.encode();
    let handoff = Handoff::decode(&bytes).unwrap();
    assert_eq!(handoff.epoch, 2);
    let old_log: Vec<u64> = f
        .hub_a
        .room(&room)
        .unwrap()
        .log()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(old_log, (0..old_log.len() as u64).collect::<Vec<_>>());
    assert_eq!(handoff.next_seq, old_log.len() as u64);

    // The handoff must come from the old hub.
    assert!(f.hub_b.import_handoff(now, &b, &handoff).is_err());
    f.hub_b.import_handoff(now + 4, &a, &handoff).unwrap();
    f.hub_b.import_handoff(now + 4, &a, &handoff).unwrap(); // repeated: OK
    assert!(f.hub_b.sequencing(&room));
    assert_eq!(f.hub_b.generation(&room), Some(1));

    // The retry of a message the old hub accepted gets the original answer at b.
    let r = f.hub_b.submit(now + 5, &b, &room, &msg);
    assert!(matches!(
        submit_outcome(&r),
        SubmitOutcome::Accepted { accepted_timestamp, .. } if accepted_timestamp == msg_ts
    ));
    assert!(f.hub_b.room(&room).unwrap().log().is_empty());

    // Epoch 2 → 3 by Bob, sequenced by the new hub; the old hub refuses it.
    let next = f.bob.commit(&CommitPlan {
        force_self_update: true,
        ..Default::default()
    });
    let m = moved(&f.hub_a.update(now + 6, &b, &room, &update_body(&next)));
    assert_eq!(m.hub.hub, b);
    assert!(success(&f.hub_b.update(
        now + 7,
        &b,
        &room,
        &update_body(&next)
    )));
    f.bob.merge();
    f.alice.process(&next.commit).unwrap();
    // Log continuity: the new hub's first entry follows the old hub's last.
    let new_log = &f.hub_b.room(&room).unwrap().log();
    assert_eq!(new_log[0].seq, handoff.next_seq);
    assert_eq!(new_log[0].epoch, 3);
    assert!(f.hub_b.room(&room).unwrap().log()[0].timestamp >= msg_ts);
    // external_senders names the new hub only.
    for p in [&f.alice, &f.bob] {
        assert_eq!(
            p.external_sender_ids(),
            vec!["mimi://b.example".to_string()]
        );
    }
    assert!(f
        .hub_b
        .take_events()
        .iter()
        .any(|e| matches!(e, HubEvent::HandoffImported { generation: 1, .. })));
}

/// (b) Takeover: hub a is gone; Bob (group admin on b.example) moves the hub to his own
/// provider by a commit sequenced at b.
#[test]
fn takeover_with_the_old_hub_gone() {
    let mut f = Fixture::new(3);
    let (b, room) = (f.b.clone(), f.room.clone());
    let gi = f.bob.group_info();
    let tree = f.bob.m().ratchet_tree();

    // A takeover request whose commit does not move the hub here is refused, and the
    // hub keeps nothing.
    let plain = f.bob.commit(&CommitPlan {
        force_self_update: true,
        ..Default::default()
    });
    let r = f
        .hub_b
        .takeover(T0 + 10, &b, &room, &gi, &tree, &update_body(&plain))
        .unwrap();
    assert!(matches!(outcome(&r), UpdateOutcome::NotAllowed));
    assert_eq!(last_rule(&mut f.hub_b), Some("hub-transfer"));
    assert!(!f.hub_b.hosts(&room));
    f.bob.discard();

    let plan = f.bob.transfer_plan(&room, &f.hub_b);
    let y = f.bob.commit(&plan);
    let r = f
        .hub_b
        .takeover(T0 + 20, &b, &room, &gi, &tree, &update_body(&y))
        .unwrap();
    assert!(success(&r));
    assert!(f.hub_b.sequencing(&room));
    assert_eq!(f.hub_b.generation(&room), Some(1));
    assert!(f.hub_b.take_events().iter().any(|e| matches!(
        e,
        HubEvent::TookOver { previous_hub, generation: 1, base_epoch: 1, .. } if previous_hub.as_str() == "a.example"
    )));
    f.bob.merge();
    assert_eq!(
        f.bob.external_sender_ids(),
        vec!["mimi://b.example".to_string()]
    );
    // The fan-out of the takeover commit goes to both providers with members.
    let sent: Vec<Domain> = drain(&mut f.hub_b, T0 + 30)
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert!(sent.contains(&f.a) && sent.contains(&b));
    // b sequences the next epoch like any room it hosts.
    let next = f.bob.commit(&CommitPlan {
        force_self_update: true,
        ..Default::default()
    });
    assert!(success(&f.hub_b.update(
        T0 + 40,
        &b,
        &room,
        &update_body(&next)
    )));
    assert!(f.hub_b.export_fence(&room).is_some());
    // A second takeover while b sequences is refused outright.
    assert!(f
        .hub_b
        .takeover(T0 + 50, &b, &room, &gi, &tree, &update_body(&next))
        .is_err());
}

/// (c) The split: hub a is alive but cut off from b. a accepts Alice's commit X for
/// epoch 1 while b accepts Bob's takeover Y for epoch 1: two sequencers for one epoch.
/// The fence stops a (and reports the fork) but X and Y both exist.
#[test]
fn split_two_sequencers_then_the_fence() {
    let mut f = Fixture::new(3);
    let (a, b, room) = (f.a.clone(), f.b.clone(), f.room.clone());
    let gi = f.bob.group_info();
    let tree = f.bob.m().ratchet_tree();

    let x = f.alice.commit(&CommitPlan {
        force_self_update: true,
        ..Default::default()
    });
    assert!(success(&f.hub_a.update(
        T0 + 10,
        &a,
        &room,
        &update_body(&x)
    )));
    let plan = f.bob.transfer_plan(&room, &f.hub_b);
    let y = f.bob.commit(&plan);
    assert!(success(
        &f.hub_b
            .takeover(T0 + 11, &b, &room, &gi, &tree, &update_body(&y))
            .unwrap()
    ));
    // Both accepted a commit for epoch 1; both think they sequence the room.
    assert!(f.hub_a.sequencing(&room) && f.hub_b.sequencing(&room));
    let epoch2 = |h: &Hub| {
        h.room(&room)
            .unwrap()
            .log()
            .iter()
            .find(|e| e.kind == "commit" && e.epoch == 2)
            .map(|e| e.fanout.clone())
            .unwrap()
    };
    assert_ne!(epoch2(&f.hub_a), epoch2(&f.hub_b), "X and Y differ");
    f.alice.merge();
    f.bob.merge();
    // Members are forked: neither can process the other branch's commit.
    assert!(f.alice.process(&y.commit).is_err());
    assert!(f.bob.process(&x.commit).is_err());

    // a keeps sequencing its branch until it learns the higher generation.
    let x2 = f.alice.commit(&CommitPlan {
        force_self_update: true,
        ..Default::default()
    });
    assert!(success(&f.hub_a.update(
        T0 + 20,
        &a,
        &room,
        &update_body(&x2)
    )));
    f.alice.merge();

    // The fence: from the wrong sender or with a lower generation it does nothing.
    let fence = Fence::decode(&f.hub_b.export_fence(&room).unwrap().encode()).unwrap();
    assert_eq!(fence.base_epoch, 1);
    assert!(f.hub_a.fence(T0 + 30, &a, &fence).is_err());
    let outcome = f.hub_a.fence(T0 + 31, &b, &fence).unwrap();
    assert_eq!(
        outcome,
        FenceOutcome::Stopped {
            fork_epoch: Some(1)
        }
    );
    assert!(!f.hub_a.sequencing(&room));
    assert_eq!(f.hub_a.generation(&room), Some(1));
    assert!(f.hub_a.take_events().iter().any(|e| matches!(
        e,
        HubEvent::StoppedSequencing {
            reason: "fenced",
            fork_epoch: Some(1),
            abandoned: 2,
            ..
        }
    )));
    assert_eq!(
        f.hub_a.fence(T0 + 32, &b, &fence).unwrap(),
        FenceOutcome::AlreadyKnown
    );
    // a refuses new work with 421 naming b…
    let x3 = f.alice.commit(&CommitPlan {
        force_self_update: true,
        ..Default::default()
    });
    assert_eq!(
        moved(&f.hub_a.update(T0 + 40, &a, &room, &update_body(&x3))).hub,
        HubRecord {
            hub: b.clone(),
            generation: 1
        }
    );
    // …and no longer delivers its branch after the takeover's epoch (X, X2).
    let delivered = drain(&mut f.hub_a, T0 + 50);
    for (_, body) in &delivered {
        assert!(!contains(body, &x.commit) && !contains(body, &x2.commit));
    }
    // But X was accepted and answered: it exists (in a's log) next to Y.
    assert!(f
        .hub_a
        .room(&room)
        .unwrap()
        .log()
        .iter()
        .any(|e| contains(&e.fanout, &x.commit)));
    // Followers that learned generation 1 refuse a's fan-out (fencing at the follower).
    let mut dir = HubDirectory::new();
    dir.observe(&room, &fence.hub, None);
    assert!(!dir.accepts_notify(&room, &a) && dir.accepts_notify(&room, &b));
}

/// Fencing before the old hub accepts anything for the epoch prevents the fork.
#[test]
fn fence_learned_in_time_prevents_the_fork() {
    let mut f = Fixture::new(3);
    let (a, b, room) = (f.a.clone(), f.b.clone(), f.room.clone());
    let gi = f.bob.group_info();
    let tree = f.bob.m().ratchet_tree();
    let plan = f.bob.transfer_plan(&room, &f.hub_b);
    let y = f.bob.commit(&plan);
    assert!(success(
        &f.hub_b
            .takeover(T0 + 10, &b, &room, &gi, &tree, &update_body(&y))
            .unwrap()
    ));
    let fence = f.hub_b.export_fence(&room).unwrap();
    assert_eq!(
        f.hub_a.fence(T0 + 20, &b, &fence).unwrap(),
        FenceOutcome::Stopped { fork_epoch: None }
    );
    let x = f.alice.commit(&CommitPlan {
        force_self_update: true,
        ..Default::default()
    });
    assert_eq!(
        moved(&f.hub_a.update(T0 + 30, &a, &room, &update_body(&x)))
            .hub
            .hub,
        b
    );
    // Alice drops X and follows Y instead: one branch.
    f.alice.discard();
    f.alice.process(&y.commit).unwrap();
    f.bob.merge();
    assert_eq!(
        f.alice.m().epoch_authenticator(),
        f.bob.m().epoch_authenticator()
    );
}

/// The transfer policy (x-hub-transfer §2): who may move the hub and where to.
#[test]
fn transfer_policy() {
    // An ordinary participant on another provider may not move the hub (T3).
    let mut f = Fixture::new(2);
    let (a, b, room) = (f.a.clone(), f.b.clone(), f.room.clone());
    let plan = f.bob.transfer_plan(&room, &f.hub_b);
    let out = f.bob.commit(&plan);
    assert!(matches!(
        outcome(&f.hub_a.update(T0 + 10, &b, &room, &update_body(&out))),
        UpdateOutcome::NotAllowed
    ));
    assert_eq!(last_rule(&mut f.hub_a), Some("hub-transfer"));
    f.bob.discard();

    // Not to a provider without participants (T2).
    let hub_c = Hub::new(
        d("c.example"),
        SEED,
        EnforcementConfig::new(Enforcement::Full),
    );
    let plan = f.alice.transfer_plan(&room, &hub_c);
    let out = f.alice.commit(&plan);
    assert!(matches!(
        outcome(&f.hub_a.update(T0 + 20, &a, &room, &update_body(&out))),
        UpdateOutcome::NotAllowed
    ));
    assert_eq!(last_rule(&mut f.hub_a), Some("hub-transfer"));
    f.alice.discard();

    // The old hub must leave external_senders (T4).
    let mut plan = f.alice.transfer_plan(&room, &f.hub_b);
    let mut exts: Vec<Extension> = plan
        .group_context_extensions
        .as_ref()
        .unwrap()
        .iter()
        .cloned()
        .collect();
    for e in exts.iter_mut() {
        if let Extension::ExternalSenders(s) = e {
            s.push(f.hub_a.external_sender());
        }
    }
    plan.group_context_extensions = Some(Extensions::from_vec(exts).unwrap());
    let out = f.alice.commit(&plan);
    assert!(matches!(
        outcome(&f.hub_a.update(T0 + 30, &a, &room, &update_body(&out))),
        UpdateOutcome::NotAllowed
    ));
    assert_eq!(last_rule(&mut f.hub_a), Some("hub-external-sender"));
    assert!(f.hub_a.sequencing(&room));
    f.alice.discard();

    // A generation that does not follow is invalid MLS-side (the component logic).
    let m = f.alice.member.as_ref().unwrap();
    let bad = transfer_plan(
        m.group().extensions(),
        &a,
        f.hub_b.external_sender(),
        &HubRecord {
            hub: b.clone(),
            generation: 5,
        },
    )
    .unwrap();
    let (p, id) = (&f.alice.provider, &f.alice.id);
    assert!(f
        .alice
        .member
        .as_mut()
        .unwrap()
        .commit(p, id, &bad, &RoomComponents)
        .is_err());
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------
// Server level (nodes/src/server/hub_transfer.rs): the /handoff and /fence endpoints,
// routing by the hub directory, fencing of /notify. Servers and clients in memory.
// ---------------------------------------------------------------------------------

mod servers {
    use nodes::client::core::{ClientEvent, Command};
    use nodes::endpoint::Endpoint;
    use nodes::hub::{Enforcement, EnforcementConfig, Hub, HubEvent};
    use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
    use nodes::io::{status, Request, ServerCore, ServerOutput};
    use nodes::room::RolePreset;
    use nodes::server::{Server, ServerEvent, TransferMode};
    use nodes::transfer::{HubMoved, HubRecord};
    use nodes::world::MemoryWorld;

    struct W {
        w: MemoryWorld,
        room: RoomUri,
        a: Domain,
        b: Domain,
        c: Domain,
        alice: ClientUri,
        bob: ClientUri,
        cathy: ClientUri,
    }

    fn d(s: &str) -> Domain {
        Domain::new(s).unwrap()
    }

    /// a (hub), b, c; Alice@a creates the room, adds Bob@b (group admin) and Cathy@c.
    fn world(mode: TransferMode) -> W {
        let (a, b, c) = (d("a.example"), d("b.example"), d("c.example"));
        let mut w = MemoryWorld::new(5);
        for dom in [&a, &b, &c] {
            w.servers.insert(
                dom.clone(),
                Server::new(dom.clone(), 5, EnforcementConfig::new(Enforcement::Full))
                    .with_transfer_mode(mode),
            );
        }
        let client = |dom: &Domain, u: &str| UserUri::new(dom, u).unwrap().client("1").unwrap();
        let (alice, bob, cathy) = (client(&a, "alice"), client(&b, "bob"), client(&c, "cathy"));
        for x in [&alice, &bob, &cathy] {
            w.add_client(x, 4);
        }
        w.run();
        let room = RoomUri::new(&a, "moving").unwrap();
        let sender = |dom: &Domain| {
            Hub::new(dom.clone(), 5, EnforcementConfig::new(Enforcement::Full)).external_sender()
        };
        w.command(
            &alice,
            Command::CreateRoom {
                room: room.clone(),
                preset: RolePreset::Cooperative,
                hub_sender: sender(&a),
            },
        )
        .unwrap();
        for (u, role) in [(bob.user(), Some(3)), (cathy.user(), None)] {
            w.command(
                &alice,
                Command::AddUser {
                    room: room.clone(),
                    user: u,
                    role,
                },
            )
            .unwrap();
        }
        W {
            w,
            room,
            a,
            b,
            c,
            alice,
            bob,
            cathy,
        }
    }

    fn sender(dom: &Domain) -> openmls::prelude::ExternalSender {
        Hub::new(dom.clone(), 5, EnforcementConfig::new(Enforcement::Full)).external_sender()
    }

    fn received(w: &MemoryWorld, c: &ClientUri) -> usize {
        w.client_events
            .iter()
            .filter(|(x, e)| x == c && matches!(e, ClientEvent::MessageReceived { .. }))
            .count()
    }

    fn epoch(w: &MemoryWorld, c: &ClientUri, room: &RoomUri) -> u64 {
        w.client(c).room_view(room).unwrap().epoch
    }

    #[test]
    fn cooperative_handoff_over_the_endpoints_then_followers_route_to_the_new_hub() {
        let mut t = world(TransferMode::Fenced);
        let room = t.room.clone();
        let cathy_before = received(&t.w, &t.cathy);
        t.w.command(
            &t.alice,
            Command::MoveHub {
                room: room.clone(),
                to: t.b.clone(),
                hub_sender: sender(&t.b),
            },
        )
        .unwrap();
        // The handoff went over /handoff and was imported; a stopped, b sequences.
        assert!(t.w.server(&t.b).hub().sequencing(&room));
        assert!(!t.w.server(&t.a).hub().sequencing(&room));
        assert!(t.w.server_events.iter().any(|(dom, e)| *dom == t.b
            && matches!(
                e,
                ServerEvent::Hub(HubEvent::HandoffImported { generation: 1, .. })
            )));
        // Every provider's directory names b: a from its own committed state, b from
        // the handoff, c from b's fence.
        let b1 = HubRecord {
            hub: t.b.clone(),
            generation: 1,
        };
        for dom in [&t.a, &t.b, &t.c] {
            assert_eq!(t.w.server(dom).hub_directory().record(&room), b1, "{dom}");
        }
        // Cathy's message goes through c to b (not a), and reaches Bob and Alice.
        let bob_before = received(&t.w, &t.bob);
        t.w.command(
            &t.cathy,
            Command::Send {
                room: room.clone(),
                text: "via the new hub".into(),
            },
        )
        .unwrap();
        assert_eq!(received(&t.w, &t.bob), bob_before + 1);
        assert!(t
            .w
            .server(&t.b)
            .hub()
            .room(&room)
            .unwrap()
            .log()
            .iter()
            .any(|e| e.kind == "application"));
        // Bob's commit too; everyone follows.
        t.w.command(&t.bob, Command::SelfUpdate { room: room.clone() })
            .unwrap();
        let e = epoch(&t.w, &t.bob, &room);
        assert_eq!(epoch(&t.w, &t.cathy, &room), e);
        assert_eq!(epoch(&t.w, &t.alice, &room), e);
        assert!(received(&t.w, &t.cathy) >= cathy_before);
    }

    #[test]
    fn a_follower_refuses_notify_from_a_fenced_off_hub_with_421() {
        let mut t = world(TransferMode::Fenced);
        let room = t.room.clone();
        t.w.command(
            &t.bob,
            Command::TakeOver {
                room: room.clone(),
                hub_sender: sender(&t.b),
            },
        )
        .unwrap();
        assert!(t.w.server(&t.b).hub().sequencing(&room));
        // The fence reached a (it stops) and c (its directory names b).
        assert!(!t.w.server(&t.a).hub().sequencing(&room));
        let now = t.w.now + 1;
        let c = t.c.clone();
        let server_c = t.w.servers.get_mut(&c).unwrap();
        let out = server_c.on_request(
            now,
            77,
            Request {
                from: t.a.clone(),
                to: c.clone(),
                endpoint: Endpoint::Notify(room.clone()),
                body: vec![0, 0],
            },
        );
        let resp = out
            .iter()
            .find_map(|o| match o {
                ServerOutput::Respond { id: 77, response } => Some(response.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(resp.status, status::MISDIRECTED);
        assert_eq!(HubMoved::of_response(&resp).unwrap().hub.hub, t.b);
        // Malformed handoff and fence bodies are refused, never a panic.
        for endpoint in [
            Endpoint::Handoff(room.clone()),
            Endpoint::Fence(room.clone()),
        ] {
            let out = server_c.on_request(
                now,
                78,
                Request {
                    from: t.a.clone(),
                    to: c.clone(),
                    endpoint,
                    body: vec![1, 2, 3],
                },
            );
            assert!(out.iter().any(|o| matches!(o,
                ServerOutput::Respond { id: 78, response } if response.status == status::BAD_REQUEST)));
        }
        // Cathy's next commit goes to b, everyone converges on b's epoch.
        t.w.command(&t.cathy, Command::SelfUpdate { room: room.clone() })
            .unwrap();
        let hub_epoch = t.w.server(&t.b).hub().room(&room).unwrap().epoch();
        for x in [&t.alice, &t.bob, &t.cathy] {
            assert_eq!(epoch(&t.w, x, &room), hub_epoch, "{x}");
        }
    }

    #[test]
    fn unfenced_a_follower_learns_the_new_hub_from_a_421_and_resends_there() {
        let mut t = world(TransferMode::Unfenced);
        let room = t.room.clone();
        t.w.command(
            &t.alice,
            Command::MoveHub {
                room: room.clone(),
                to: t.b.clone(),
                hub_sender: sender(&t.b),
            },
        )
        .unwrap();
        // No fences: c still routes to a…
        assert_eq!(t.w.server(&t.c).hub_directory().hub_of(&room), t.a);
        // …a answers 421, c learns b and resends; the message is accepted by b.
        t.w.command(
            &t.cathy,
            Command::Send {
                room: room.clone(),
                text: "follows the 421".into(),
            },
        )
        .unwrap();
        assert_eq!(t.w.server(&t.c).hub_directory().hub_of(&room), t.b);
        assert!(t
            .w
            .server(&t.b)
            .hub()
            .room(&room)
            .unwrap()
            .log()
            .iter()
            .any(|e| e.kind == "application"));
        assert!(t.w.client_events.iter().any(
            |(x, e)| x == &t.cathy && matches!(e, ClientEvent::OpSucceeded { op: "send", .. })
        ));
    }
}
