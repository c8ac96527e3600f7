//! The cost meter (`nodes::mls::cost`) on a real MLS flow: a room's creator adds two
//! clients, the hub's public view checks and merges every commit, members exchange an
//! application message, a fourth client joins by external commit after a GroupInfo
//! request/response round (signed, HPKE-sealed), a member is removed.
//!
//! * Off (the default): nothing is recorded.
//! * On: every expected category has calls and time; operations that only run inside
//!   another measured operation (canonical commit, its attempts, the provider's
//!   primitives) are counted as nested, with no time; the total time is the sum of the
//!   outermost calls' times.
//! * Nesting: wrapping the whole flow in one measured call leaves exactly one timed call.
//! * Determinism: the flow's bytes are identical with the meter on and off.
//!
//! No durations are asserted beyond "greater than zero".

use nodes::client::member::{Member, Processed};
use nodes::hub::PublicView;
use nodes::ids::{ClientUri, Domain, RoomUri};
use nodes::mls::commit::CommitPlan;
use nodes::mls::config::{self, Identity, CIPHERSUITE};
use nodes::mls::cost::{self, CostSnapshot};
use nodes::mls::SeededProvider;
use nodes::room::RoomComponents;
use nodes::wire::*;
use openmls::prelude::*;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::OpenMlsProvider;

struct Party {
    uri: ClientUri,
    provider: SeededProvider,
    id: Identity,
}

fn party(seed: u64, uri: &str) -> Party {
    let uri: ClientUri = uri.parse().unwrap();
    let provider = SeededProvider::for_node(seed, uri.as_str());
    let id = Identity::for_client(&provider, &uri).unwrap();
    Party { uri, provider, id }
}

fn key_package(p: &Party) -> KeyPackage {
    p.id.key_package(&p.provider).unwrap().key_package().clone()
}

fn hub_checks(view: &mut PublicView, hub: &Party, commit: &[u8], gi: &[u8], signer_leaf: u32) {
    let checked = view
        .check_commit(hub.provider.crypto(), commit, &RoomComponents)
        .unwrap();
    view.merge(checked).unwrap();
    view.check_group_info(hub.provider.crypto(), gi, signer_leaf)
        .unwrap();
}

/// The flow; returns every byte string it produced, in order.
fn flow(seed: u64) -> Vec<Vec<u8>> {
    let mut bytes = Vec::new();
    let a = Domain::new("a.example").unwrap();
    let room = RoomUri::new(&a, "r").unwrap();
    let hub = Party {
        uri: "mimi://a.example/d/hub/1".parse().unwrap(),
        provider: SeededProvider::for_node(seed, "hub a.example"),
        id: Identity::for_server(&SeededProvider::for_node(seed, "hub id"), &a).unwrap(),
    };
    let alice = party(seed, "mimi://a.example/d/alice/1");
    let bob = party(seed, "mimi://b.example/d/bob/1");
    let carol = party(seed, "mimi://b.example/d/carol/1");
    let dave = party(seed, "mimi://c.example/d/dave/1");

    // Create; the hub follows from the creator's GroupInfo.
    let mut am = Member::create(
        &alice.provider,
        &alice.id,
        room.as_bytes(),
        Default::default(),
        hub.id.external_sender(),
    )
    .unwrap();
    let gi = am.group_info(&alice.provider, &alice.id).unwrap();
    let mut view =
        PublicView::from_group_info(hub.provider.crypto(), &gi, &am.ratchet_tree()).unwrap();
    bytes.push(gi);

    // Add bob and carol.
    let plan = CommitPlan {
        adds: vec![key_package(&bob), key_package(&carol)],
        ..Default::default()
    };
    let out = am
        .commit(&alice.provider, &alice.id, &plan, &RoomComponents)
        .unwrap();
    hub_checks(&mut view, &hub, &out.commit, &out.group_info, 0);
    am.merge_pending_commit(&alice.provider).unwrap();
    let welcome = out.welcome.clone().unwrap();
    let mut bm = Member::join_by_welcome(&bob.provider, &welcome, &out.ratchet_tree).unwrap();
    let mut cm = Member::join_by_welcome(&carol.provider, &welcome, &out.ratchet_tree).unwrap();
    bytes.extend([out.commit, welcome, out.group_info, out.ratchet_tree]);

    // An application message.
    let ct = am.encrypt(&alice.provider, &alice.id, b"hello").unwrap();
    assert_eq!(bm.decrypt(&bob.provider, &ct).unwrap().plaintext, b"hello");
    assert_eq!(
        cm.decrypt(&carol.provider, &ct).unwrap().plaintext,
        b"hello"
    );
    bytes.push(ct);

    // Dave asks the hub for the GroupInfo (P§5.6) and joins by external commit.
    let ikm = dave.provider.rand().random_vec(32).unwrap();
    let keys = dave
        .provider
        .crypto()
        .derive_hpke_keypair(CIPHERSUITE.hpke_config(), &ikm)
        .unwrap();
    let request = GroupInfoRequest::sign(
        GroupInfoRequestTbs {
            protocol: Protocol::Mls10,
            cipher_suite: CIPHERSUITE.into(),
            requesting_signature_key: SignaturePublicKeyBytes::from_openmls(
                &dave.id.credential_with_key.signature_key,
            )
            .unwrap(),
            requesting_credential: CredentialBytes::from_openmls(
                &dave.id.credential_with_key.credential,
            )
            .unwrap(),
            group_info_public_key: HpkePublicKeyBytes::from_key(&keys.public).unwrap(),
            joining_code: None,
        },
        &dave.id.signer,
    )
    .unwrap();
    request.verify(hub.provider.crypto()).unwrap();
    let room_id = IdentifierUri::from(&room);
    let tbe = GroupInfoRatchetTreeTbe {
        group_info: GroupInfoBytes::from_bytes(&am.group_info(&alice.provider, &alice.id).unwrap())
            .unwrap(),
        ratchet_tree_option: RatchetTreeOption::Full(
            RatchetTreeBytes::from_bytes(&view.ratchet_tree()).unwrap(),
        ),
        pending_proposals: vec![],
    };
    let sealed = tbe
        .seal(
            hub.provider.crypto(),
            CIPHERSUITE.into(),
            &request.tbs.group_info_public_key,
            &room_id,
        )
        .unwrap();
    let response = GroupInfoResponse::sign_success(
        room_id.clone(),
        CIPHERSUITE.into(),
        ExternalSenderBytes::from_openmls(&hub.id.external_sender()).unwrap(),
        sealed,
        &hub.id.signer,
    )
    .unwrap();
    response.verify(dave.provider.crypto()).unwrap();
    let GroupInfoStatus::Success(s) = &response.status else {
        panic!("a success response")
    };
    let opened = GroupInfoRatchetTreeTbe::open(
        dave.provider.crypto(),
        s.cipher_suite,
        &keys.private,
        &room_id,
        &s.encrypted_groupinfo_and_tree,
    )
    .unwrap();
    assert_eq!(opened, tbe);
    bytes.push(encode(&response).unwrap());
    let RatchetTreeOption::Full(tree) = &opened.ratchet_tree_option else {
        panic!("a full tree")
    };
    let (dm, jo) = Member::join_by_external_commit(
        &dave.provider,
        &dave.id,
        opened.group_info.as_bytes(),
        tree.as_bytes(),
        &[],
        vec![],
        &RoomComponents,
    )
    .unwrap();
    hub_checks(&mut view, &hub, &jo.commit, &jo.group_info, dm.own_leaf());
    for (m, p) in [(&mut am, &alice), (&mut bm, &bob), (&mut cm, &carol)] {
        assert!(matches!(
            m.process_handshake(&p.provider, &jo.commit, &RoomComponents),
            Ok(Processed::Commit { .. })
        ));
    }
    bytes.extend([jo.commit, jo.group_info]);

    // A key-material request (P§5.2), signed and verified.
    let km = KeyMaterialRequest::sign(
        KeyMaterialRequestTbs {
            protocol: Protocol::Mls10,
            requesting_user: IdentifierUri::from(&alice.uri.user()),
            target_user: IdentifierUri::from(&bob.uri.user()),
            room_id: room_id.clone(),
            acceptable_ciphersuites: vec![CIPHERSUITE.into()],
            required_capabilities: RequiredCapabilitiesBytes::from_openmls(
                &match config::required_capabilities() {
                    Extension::RequiredCapabilities(r) => r,
                    _ => panic!("required capabilities"),
                },
            )
            .unwrap(),
            requester_signature_key: SignaturePublicKeyBytes::from_openmls(
                &alice.id.credential_with_key.signature_key,
            )
            .unwrap(),
            requester_credential: CredentialBytes::from_openmls(
                &alice.id.credential_with_key.credential,
            )
            .unwrap(),
        },
        &alice.id.signer,
    )
    .unwrap();
    km.verify(hub.provider.crypto()).unwrap();
    bytes.push(encode(&km).unwrap());

    // Bob removes carol; the hub, alice, dave and carol process it.
    let carol_leaf = cm.own_leaf();
    let out = bm
        .commit(
            &bob.provider,
            &bob.id,
            &CommitPlan {
                removes: vec![LeafNodeIndex::new(carol_leaf)],
                ..Default::default()
            },
            &RoomComponents,
        )
        .unwrap();
    hub_checks(&mut view, &hub, &out.commit, &out.group_info, bm.own_leaf());
    bm.merge_pending_commit(&bob.provider).unwrap();
    let mut dm = dm;
    for (m, p) in [(&mut am, &alice), (&mut dm, &dave)] {
        assert!(matches!(
            m.process_handshake(&p.provider, &out.commit, &RoomComponents),
            Ok(Processed::Commit {
                removed_self: false,
                ..
            })
        ));
    }
    assert!(matches!(
        cm.process_handshake(&carol.provider, &out.commit, &RoomComponents),
        Ok(Processed::Commit {
            removed_self: true,
            ..
        })
    ));
    assert_eq!(am.epoch_authenticator(), dm.epoch_authenticator());
    assert_eq!(am.group_context_bytes(), view.group_context_bytes());
    bytes.extend([out.commit, out.group_info, out.ratchet_tree]);
    bytes
}

/// Run `f` with this thread's meter on (from zero) and return what it recorded.
fn metered<T>(f: impl FnOnce() -> T) -> (T, CostSnapshot) {
    cost::reset();
    cost::enable(true);
    let v = f();
    cost::enable(false);
    let s = cost::snapshot();
    cost::reset();
    (v, s)
}

/// Operations the flow calls directly (outermost): counted with time.
const OUTERMOST: &[&str] = &[
    "identity.generate",
    "keypackage.create",
    "member.create",
    "member.group_info",
    "member.ratchet_tree",
    "member.commit",
    "member.merge_pending_commit",
    "member.join_by_welcome",
    "member.join_by_external_commit",
    "member.encrypt",
    "member.decrypt",
    "member.process_handshake",
    "public_view.from_group_info",
    "public_view.check_commit",
    "public_view.merge",
    "public_view.check_group_info",
    "public_view.ratchet_tree",
    "group_info.request_sign",
    "group_info.request_verify",
    "group_info.seal",
    "group_info.open",
    "group_info.response_sign",
    "group_info.response_verify",
    "key_material.request_sign",
    "key_material.request_verify",
    "crypto.derive_hpke_keypair",
];

/// Operations that run only inside another measured operation in this flow.
const ONLY_NESTED: &[&str] = &[
    "commit.stage_canonical",
    "commit.attempt",
    "crypto.signature_key_gen",
    "crypto.verify",
    "member.parse",
];

#[test]
fn meter_off_records_nothing() {
    cost::enable(false);
    cost::reset();
    let bytes = flow(7);
    assert!(!bytes.is_empty());
    assert_eq!(cost::snapshot(), CostSnapshot::default());
}

#[test]
fn meter_on_counts_every_category_and_time_only_once() {
    let (_, s) = metered(|| flow(7));
    for what in OUTERMOST {
        let c = s.category(what);
        assert!(c.calls > 0, "{what}: no outermost calls in {s:#?}");
        assert!(c.nanos > 0, "{what}: no time recorded");
    }
    for what in ONLY_NESTED {
        let c = s.category(what);
        assert!(c.nested > 0, "{what}: no nested calls in {s:#?}");
        assert_eq!((c.calls, c.nanos), (0, 0), "{what} ran outermost");
    }
    // Two commits by members (add, remove): each staged a canonical commit, at least once.
    assert_eq!(s.category("member.commit").calls, 2);
    assert_eq!(s.category("commit.stage_canonical").nested, 2);
    assert!(s.category("commit.attempt").nested >= 2);
    // Time is the sum of the outermost calls, and calls count outermost calls only.
    let (calls, nested, nanos) = s.by_category.values().fold((0, 0, 0), |acc, c| {
        (acc.0 + c.calls, acc.1 + c.nested, acc.2 + c.nanos)
    });
    assert_eq!((calls, nested, nanos), (s.calls, s.nested, s.nanos));
    assert!(s.nanos > 0);
}

#[test]
fn an_outer_measure_takes_all_the_time() {
    let (_, s) = metered(|| cost::measure("bench.flow", || flow(7)));
    assert_eq!(s.calls, 1);
    let outer = s.category("bench.flow");
    assert_eq!(outer.calls, 1);
    assert!(outer.nanos > 0);
    assert_eq!(outer.nanos, s.nanos);
    for (what, c) in &s.by_category {
        if *what != "bench.flow" {
            assert_eq!(
                (c.calls, c.nanos),
                (0, 0),
                "{what} counted time inside the outer call"
            );
        }
    }
    for what in OUTERMOST.iter().chain(ONLY_NESTED) {
        assert!(s.category(what).nested > 0, "{what} not counted as nested");
    }
}

#[test]
fn the_meter_does_not_change_any_byte() {
    cost::enable(false);
    let off = flow(11);
    let (on, s) = metered(|| flow(11));
    assert!(s.calls > 0);
    assert_eq!(off, on);
    // And the seed matters, so the comparison is not vacuous.
    cost::enable(false);
    assert_ne!(flow(12), off);
}

#[test]
fn the_meter_is_per_thread() {
    let (other, s) = metered(|| {
        std::thread::spawn(|| {
            let bytes = flow(3);
            (bytes.len(), cost::snapshot())
        })
        .join()
        .unwrap()
    });
    // The flow ran on the other thread, whose meter was off; nothing ran on this one.
    assert!(other.0 > 0);
    assert_eq!(other.1, CostSnapshot::default());
    assert_eq!(s, CostSnapshot::default());
}
