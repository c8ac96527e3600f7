//! Every rule of `full` hub enforcement: a misbehaving request is rejected with the right
//! code and rule, and the very same request is accepted under `off` (the hub only orders).
//! Requests are built from real MLS objects (openmls through `client::Member`) and fed to
//! the hub core directly.

use nodes::client::member::{CommitOutput, Member};
use nodes::hub::{Enforcement, EnforcementConfig, Hub, HubEvent};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::mls::commit::CommitPlan;
use nodes::mls::config::Identity;
use nodes::mls::SeededProvider;
use nodes::room::components::{ParticipantListUpdate, RoomMetaData, UserRolePair};
use nodes::room::RoomComponents;
use nodes::room::{NewRoomOptions, RolePreset, RoomState, PARTICIPANT_LIST, ROOM_METADATA};
use nodes::wire::*;
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;

const T0: u64 = 1_767_225_600_000;

struct Party {
    uri: ClientUri,
    provider: SeededProvider,
    id: Identity,
    member: Option<Member>,
}

fn party(seed: u64, uri: &str) -> Party {
    let uri: ClientUri = uri.parse().unwrap();
    let provider = SeededProvider::for_node(seed, uri.as_str());
    let id = Identity::for_client(&provider, &uri).unwrap();
    Party {
        uri,
        provider,
        id,
        member: None,
    }
}

fn key_package(p: &Party) -> Vec<u8> {
    p.id.key_package(&p.provider)
        .unwrap()
        .key_package()
        .tls_serialize_detached()
        .unwrap()
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

fn proposals_body(msgs: &[Vec<u8>]) -> Vec<u8> {
    let bundle = HandshakeBundle {
        proposal_or_commit: MlsMessageBytes::from_bytes(&msgs[0]).unwrap(),
        body: HandshakeBody::Proposal {
            more_proposals: msgs[1..]
                .iter()
                .map(|m| MlsMessageBytes::from_bytes(m).unwrap())
                .collect(),
        },
    };
    encode(&UpdateRequest { bundle }).unwrap()
}

fn outcome(resp: &nodes::io::Response) -> UpdateOutcome {
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    decode_exact::<UpdateRoomResponse>(&resp.body)
        .unwrap()
        .outcome
}

/// The rule id of the hub's last rejection.
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

/// A room at a.example with Alice (creator) and, if `with_bob`, Bob (b.example) as an
/// ordinary participant, added properly. Returns the hub, the room and the parties.
struct Fixture {
    hub: Hub,
    room: RoomUri,
    a: Domain,
    b: Domain,
    alice: Party,
    bob: Party,
    now: u64,
}

impl Fixture {
    fn new(level: Enforcement, with_bob: bool) -> Fixture {
        let a = Domain::new("a.example").unwrap();
        let b = Domain::new("b.example").unwrap();
        let room = RoomUri::new(&a, "r").unwrap();
        let mut hub = Hub::new(a.clone(), 9, EnforcementConfig::new(level));
        let mut alice = party(9, "mimi://a.example/d/alice/1");
        let bob = party(9, "mimi://b.example/d/bob/1");
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
            hub.external_sender(),
        )
        .unwrap();
        hub.create_room(
            &room,
            &alice.uri,
            &m.group_info(&alice.provider, &alice.id).unwrap(),
            &m.ratchet_tree(),
        )
        .unwrap();
        alice.member = Some(m);
        let mut f = Fixture {
            hub,
            room,
            a,
            b,
            alice,
            bob,
            now: T0,
        };
        if with_bob {
            let kp = f.fetch_key_package_through_hub();
            let plan = CommitPlan {
                adds: vec![kp],
                proposals: vec![list_add(&f.bob.uri.user(), 2)],
                ..Default::default()
            };
            let out = f.commit_alice(&plan);
            assert!(matches!(
                f.update(&f.a.clone(), &out),
                UpdateOutcome::Success { .. }
            ));
            f.alice
                .member
                .as_mut()
                .unwrap()
                .merge_pending_commit(&f.alice.provider)
                .unwrap();
            let welcome = out.welcome.unwrap();
            f.bob.member = Some(
                Member::join_by_welcome(&f.bob.provider, &welcome, &out.ratchet_tree).unwrap(),
            );
        }
        f
    }

    /// Bob's provider hands out a KeyPackage through the hub (P§5.2), so the hub can route
    /// the Welcome.
    fn fetch_key_package_through_hub(&mut self) -> KeyPackage {
        let bytes = key_package(&self.bob);
        let resp = KeyMaterialResponse {
            protocol: Protocol::Mls10,
            user_status: KeyMaterialUserCode::Success,
            user_uri: IdentifierUri::from(&self.bob.uri.user()),
            clients: vec![ClientKeyMaterial {
                client_uri: IdentifierUri::from(&self.bob.uri),
                material: ClientMaterial::Success(KeyPackageBytes::from_bytes(&bytes).unwrap()),
            }],
        };
        self.hub
            .record_key_material(&self.b, &encode(&resp).unwrap());
        unverified_key_package(&self.bob, &bytes)
    }

    fn commit_alice(&mut self, plan: &CommitPlan) -> CommitOutput {
        self.alice
            .member
            .as_mut()
            .unwrap()
            .commit(&self.alice.provider, &self.alice.id, plan, &RoomComponents)
            .unwrap()
    }

    fn update(&mut self, from: &Domain, out: &CommitOutput) -> UpdateOutcome {
        self.now += 10;
        let r = self
            .hub
            .update(self.now, from, &self.room, &update_body(out));
        outcome(&r)
    }
}

fn unverified_key_package(p: &Party, bytes: &[u8]) -> KeyPackage {
    use openmls::prelude::tls_codec::Deserialize as _;
    KeyPackageIn::tls_deserialize_exact(bytes)
        .unwrap()
        .validate(p.provider.seeded_crypto(), ProtocolVersion::Mls10)
        .unwrap()
}

/// Runs `misbehave` on a fresh fixture at `full` and at `off`; asserts full rejects with
/// `code` and `rule`, and off accepts.
fn check_rule(
    rule: &str,
    with_bob: bool,
    expect_full: fn(&UpdateOutcome) -> bool,
    misbehave: fn(&mut Fixture) -> UpdateOutcome,
) {
    let mut full = Fixture::new(Enforcement::Full, with_bob);
    let o = misbehave(&mut full);
    assert!(expect_full(&o), "rule {rule}: full enforcement gave {o:?}");
    assert_eq!(
        last_rule(&mut full.hub),
        Some(rule),
        "rule {rule}: rejected by another rule"
    );
    let mut off = Fixture::new(Enforcement::Off, with_bob);
    let o = misbehave(&mut off);
    assert!(
        matches!(o, UpdateOutcome::Success { .. }),
        "rule {rule}: enforcement off gave {o:?}"
    );
}

fn not_allowed(o: &UpdateOutcome) -> bool {
    matches!(o, UpdateOutcome::NotAllowed)
}

#[test]
fn mls_valid_rejects_a_forged_commit() {
    // A commit whose signature does not verify.
    check_rule("mls-valid", false, not_allowed, |f| {
        let mut out = f.commit_alice(&CommitPlan {
            force_self_update: true,
            ..Default::default()
        });
        let n = out.commit.len();
        out.commit[n - 70] ^= 1; // inside the signature / tag region
        f.update(&f.a.clone(), &out)
    });
}

#[test]
fn list_membership_rejects_clients_of_unlisted_users() {
    // Bob's client added without adding Bob to the participant list (P§5.3).
    check_rule("list-membership", false, not_allowed, |f| {
        let kp = f.fetch_key_package_through_hub();
        let out = f.commit_alice(&CommitPlan {
            adds: vec![kp],
            ..Default::default()
        });
        f.update(&f.a.clone(), &out)
    });
}

#[test]
fn welcome_routing_rejects_key_packages_not_fetched_through_the_hub() {
    check_rule("welcome-routing", false, not_allowed, |f| {
        let bytes = key_package(&f.bob);
        let kp = unverified_key_package(&f.bob, &bytes);
        let out = f.commit_alice(&CommitPlan {
            adds: vec![kp],
            proposals: vec![list_add(&f.bob.uri.user(), 2)],
            ..Default::default()
        });
        f.update(&f.a.clone(), &out)
    });
}

#[test]
fn sender_provider_rejects_a_commit_relayed_by_another_provider() {
    check_rule("sender-provider", false, not_allowed, |f| {
        let out = f.commit_alice(&CommitPlan {
            force_self_update: true,
            ..Default::default()
        });
        f.update(&f.b.clone(), &out)
    });
}

#[test]
fn composition_rejects_two_metadata_updates_in_one_commit() {
    check_rule("composition", false, not_allowed, |f| {
        let meta = |name: &str| {
            let m = RoomMetaData {
                room_uri: f.room.as_str().into(),
                room_name: name.into(),
                ..Default::default()
            };
            Proposal::AppDataUpdate(Box::new(AppDataUpdateProposal::update(
                ROOM_METADATA,
                m.encode().unwrap(),
            )))
        };
        let out = f.commit_alice(&CommitPlan {
            proposals: vec![meta("one"), meta("two")],
            ..Default::default()
        });
        f.update(&f.a.clone(), &out)
    });
}

#[test]
fn policy_rejects_a_role_change_without_the_capability() {
    // Bob, an ordinary participant, makes himself group admin (no canChangeUserRole).
    check_rule("policy", true, not_allowed, |f| {
        let u = ParticipantListUpdate {
            changed_role_participants: vec![nodes::room::components::UserindexRolePair {
                user_index: 1,
                role_index: 3,
            }],
            ..Default::default()
        };
        let p = Proposal::AppDataUpdate(Box::new(AppDataUpdateProposal::update(
            PARTICIPANT_LIST,
            u.encode().unwrap(),
        )));
        let bob = f.bob.member.as_mut().unwrap();
        let out = bob
            .commit(
                &f.bob.provider,
                &f.bob.id,
                &CommitPlan {
                    proposals: vec![p],
                    ..Default::default()
                },
                &RoomComponents,
            )
            .unwrap();
        f.update(&f.b.clone(), &out)
    });
}

/// Bob's leave bundle (P§3.5): SelfRemove and the removal of Bob from the list.
fn bob_leaves(f: &mut Fixture) -> UpdateOutcome {
    let state = RoomState::from_dictionary(&f.bob.member.as_ref().unwrap().dictionary()).unwrap();
    let idx = state.index_of(&f.bob.uri.user()).unwrap();
    let u = ParticipantListUpdate {
        removed_indices: vec![idx],
        ..Default::default()
    };
    let bob = f.bob.member.as_mut().unwrap();
    let p1 = bob.propose_self_remove(&f.bob.provider, &f.bob.id).unwrap();
    let p2 = bob
        .propose_app_data_update(
            &f.bob.provider,
            &f.bob.id,
            PARTICIPANT_LIST,
            u.encode().unwrap(),
        )
        .unwrap();
    f.now += 10;
    let r = f
        .hub
        .update(f.now, &f.b.clone(), &f.room, &proposals_body(&[p1, p2]));
    outcome(&r)
}

#[test]
fn a_leave_bundle_is_accepted_under_full() {
    let mut f = Fixture::new(Enforcement::Full, true);
    assert!(matches!(bob_leaves(&mut f), UpdateOutcome::Success { .. }));
    assert!(f
        .hub
        .room(&f.room)
        .unwrap()
        .muted()
        .contains(&f.bob.uri.user()));
}

#[test]
fn cached_proposals_must_be_committed() {
    // After Bob's leave bundle, Alice commits something else without it.
    check_rule(
        "cached-proposals",
        true,
        |o| matches!(o, UpdateOutcome::InvalidProposal { invalid_proposals } if invalid_proposals.len() == 2),
        |f| {
            assert!(matches!(bob_leaves(f), UpdateOutcome::Success { .. }));
            let out = f.commit_alice(&CommitPlan {
                force_self_update: true,
                consume_proposal_store: false,
                ..Default::default()
            });
            f.update(&f.a.clone(), &out)
        },
    );
}

#[test]
fn mute_rejects_commits_of_a_leaving_user() {
    check_rule("mute", true, not_allowed, |f| {
        assert!(matches!(bob_leaves(f), UpdateOutcome::Success { .. }));
        let bob = f.bob.member.as_mut().unwrap();
        bob.discard_pending_proposals(&f.bob.provider).unwrap();
        let out = bob
            .commit(
                &f.bob.provider,
                &f.bob.id,
                &CommitPlan {
                    force_self_update: true,
                    ..Default::default()
                },
                &RoomComponents,
            )
            .unwrap();
        f.update(&f.b.clone(), &out)
    });
}

#[test]
fn group_info_must_match_the_new_epoch() {
    // The commit comes with the GroupInfo of the epoch before it.
    check_rule("group-info", false, not_allowed, |f| {
        let old = f
            .alice
            .member
            .as_ref()
            .unwrap()
            .group_info(&f.alice.provider, &f.alice.id)
            .unwrap();
        let mut out = f.commit_alice(&CommitPlan {
            force_self_update: true,
            ..Default::default()
        });
        out.group_info = old;
        f.update(&f.a.clone(), &out)
    });
}

#[test]
fn hub_must_stay_an_external_sender() {
    check_rule("hub-external-sender", false, not_allowed, |f| {
        let m = f.alice.member.as_ref().unwrap();
        let mut exts: Vec<Extension> = m
            .group()
            .extensions()
            .iter()
            .filter(|e| !matches!(e, Extension::ExternalSenders(_)))
            .cloned()
            .collect();
        exts.sort_by_key(|e| u16::from(e.extension_type()));
        let plan = CommitPlan {
            group_context_extensions: Some(Extensions::from_vec(exts).unwrap()),
            ..Default::default()
        };
        let out = f.commit_alice(&plan);
        f.update(&f.a.clone(), &out)
    });
}

#[test]
fn external_join_needs_an_authorised_group_info_request() {
    // Bob's second device joins by external commit with a GroupInfo it never asked for.
    check_rule("external-join", true, not_allowed, |f| {
        let dev2 = party(9, "mimi://b.example/d/bob/2");
        let r = f.hub.room(&f.room).unwrap();
        let (gi, tree) = (r.group_info().to_vec(), r.ratchet_tree().to_vec());
        let (_m, out) = Member::join_by_external_commit(
            &dev2.provider,
            &dev2.id,
            &gi,
            &tree,
            &[],
            vec![],
            &RoomComponents,
        )
        .unwrap();
        f.update(&f.b.clone(), &out)
    });
}

#[test]
fn submit_sender_must_be_an_active_participant() {
    for (level, accepted) in [(Enforcement::Full, false), (Enforcement::Off, true)] {
        let mut f = Fixture::new(level, true);
        // Bob's real message, but claimed to come from a user who is not in the room.
        let bob = f.bob.member.as_mut().unwrap();
        let msg = bob.encrypt(&f.bob.provider, &f.bob.id, b"hello").unwrap();
        let req = SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: MlsMessageBytes::from_bytes(&msg).unwrap(),
            sending_uri: IdentifierUri::from(
                &"mimi://b.example/u/mallory".parse::<UserUri>().unwrap(),
            ),
        };
        let r = f
            .hub
            .submit(T0 + 100, &f.b.clone(), &f.room, &encode(&req).unwrap());
        let o = decode_exact::<SubmitMessageResponse>(&r.body)
            .unwrap()
            .outcome;
        assert_eq!(
            matches!(o, SubmitOutcome::Accepted { .. }),
            accepted,
            "{level:?}: {o:?}"
        );
        // The honest request is accepted at every level.
        let req = SubmitMessageRequest {
            sending_uri: IdentifierUri::from(&f.bob.uri.user()),
            ..req
        };
        let r = f
            .hub
            .submit(T0 + 101, &f.b.clone(), &f.room, &encode(&req).unwrap());
        assert!(matches!(
            decode_exact::<SubmitMessageResponse>(&r.body)
                .unwrap()
                .outcome,
            SubmitOutcome::Accepted { .. }
        ));
    }
}

#[test]
fn group_info_requests_only_for_authorised_requesters() {
    for (level, authorised) in [(Enforcement::Full, false), (Enforcement::Off, true)] {
        let mut f = Fixture::new(level, false);
        // Carol is not a participant, and role 0 of the cooperative preset cannot open-join.
        let carol = party(9, "mimi://c.example/d/carol/1");
        let kp = carol.provider.seeded_crypto();
        use openmls_traits::crypto::OpenMlsCrypto;
        let keys = kp
            .derive_hpke_keypair(nodes::mls::CIPHERSUITE.hpke_config(), &[7u8; 32])
            .unwrap();
        let tbs = GroupInfoRequestTbs {
            protocol: Protocol::Mls10,
            cipher_suite: nodes::mls::CIPHERSUITE.into(),
            requesting_signature_key: SignaturePublicKeyBytes::from_openmls(
                &carol.id.credential_with_key.signature_key,
            )
            .unwrap(),
            requesting_credential: CredentialBytes::from_openmls(
                &carol.id.credential_with_key.credential,
            )
            .unwrap(),
            group_info_public_key: HpkePublicKeyBytes::from_key(&keys.public).unwrap(),
            joining_code: None,
        };
        let req = GroupInfoRequest::sign(tbs, &carol.id.signer).unwrap();
        let c = Domain::new("c.example").unwrap();
        let r = f.hub.group_info(&c, &f.room, &encode(&req).unwrap());
        let resp = decode_exact::<GroupInfoResponse>(&r.body).unwrap();
        assert_eq!(
            matches!(resp.status, GroupInfoStatus::Success(_)),
            authorised,
            "{level:?}"
        );
        if authorised {
            resp.verify(kp).unwrap();
        }
    }
}

#[test]
fn mute_rejects_messages_of_a_leaving_user() {
    for (level, accepted) in [(Enforcement::Full, false), (Enforcement::Off, true)] {
        let mut f = Fixture::new(level, true);
        let bob = f.bob.member.as_mut().unwrap();
        // Encrypt before proposing (openmls blocks messages while proposals are pending).
        let msg = bob
            .encrypt(&f.bob.provider, &f.bob.id, b"last words")
            .unwrap();
        assert!(matches!(bob_leaves(&mut f), UpdateOutcome::Success { .. }));
        let req = SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: MlsMessageBytes::from_bytes(&msg).unwrap(),
            sending_uri: IdentifierUri::from(&f.bob.uri.user()),
        };
        let r = f
            .hub
            .submit(T0 + 500, &f.b.clone(), &f.room, &encode(&req).unwrap());
        let o = decode_exact::<SubmitMessageResponse>(&r.body)
            .unwrap()
            .outcome;
        assert_eq!(
            matches!(o, SubmitOutcome::Accepted { .. }),
            accepted,
            "{level:?}: {o:?}"
        );
        if !accepted {
            assert_eq!(last_rule(&mut f.hub), Some("mute"));
        }
    }
}

/// A byte-identical retry of an accepted commit or message gets the original answer and
/// is not logged again; the same commit after another one was accepted still does.
#[test]
fn byte_identical_retries_get_the_original_answer() {
    let mut f = Fixture::new(Enforcement::Full, true);
    let out = f.commit_alice(&CommitPlan {
        force_self_update: true,
        ..Default::default()
    });
    let first = f.update(&f.a.clone(), &out);
    let again = f.update(&f.a.clone(), &out);
    assert!(matches!(first, UpdateOutcome::Success { .. }));
    assert_eq!(first, again, "same answer, same timestamp");
    let log_len = f.hub.room(&f.room).unwrap().log().len();
    assert!(f.hub.take_events().iter().any(|e| matches!(
        e,
        nodes::hub::HubEvent::RetryAnswered {
            endpoint: "update",
            ..
        }
    )));
    // A message submitted twice is logged once.
    let req = |f: &mut Fixture| {
        let msg = f
            .alice
            .member
            .as_mut()
            .unwrap()
            .encrypt(&f.alice.provider, &f.alice.id, b"hi")
            .unwrap();
        SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: MlsMessageBytes::from_bytes(&msg).unwrap(),
            sending_uri: IdentifierUri::from(&f.alice.uri.user()),
        }
    };
    f.alice
        .member
        .as_mut()
        .unwrap()
        .merge_pending_commit(&f.alice.provider)
        .unwrap();
    let body = encode(&req(&mut f)).unwrap();
    let a = f.hub.submit(T0 + 500, &f.a.clone(), &f.room, &body);
    let b = f.hub.submit(T0 + 600, &f.a.clone(), &f.room, &body);
    assert_eq!(a, b);
    assert_eq!(f.hub.room(&f.room).unwrap().log().len(), log_len + 1);
}
