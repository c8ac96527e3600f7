//! Tests of the wire module against real MLS objects made by openmls.
//!
//! The MLS fixture uses `OpenMlsRustCrypto` (OS randomness), so key material differs
//! between runs while every structure's shape is the same; every failure message
//! prints the offending bytes in hex so that it can be replayed.

use super::codec::Reader;
use super::*;
use openmls::prelude::{
    BasicCredential, Ciphersuite, Credential, CredentialWithKey, Extension, Extensions,
    ExternalProposal, ExternalSender, GroupId, KeyPackage, KeyPackageBundle, LeafNodeIndex,
    MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig, OpenMlsProvider,
    RequiredCapabilitiesExtension, SenderExtensionIndex, SignContent, SignaturePublicKey,
    StagedWelcome, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::{HpkeCiphertext, SignatureScheme};
use std::sync::OnceLock;
use tls_codec::VLBytes;

const CS: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
const ROOM: &str = "mimi://a.example/r/clubhouse";
const GROUP: &[u8] = b"mimi://a.example/g/clubhouse";

// ---------------------------------------------------------------------------------
// Fixture: a real group with a commit, Welcome, GroupInfo, tree, proposals and an
// application message.
// ---------------------------------------------------------------------------------

fn signer(seed: u8) -> SignatureKeyPair {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    SignatureKeyPair::from_raw(
        SignatureScheme::ED25519,
        sk.to_bytes().to_vec(),
        sk.verifying_key().to_bytes().to_vec(),
    )
}

fn cwk(identity: &str, s: &SignatureKeyPair) -> CredentialWithKey {
    CredentialWithKey {
        credential: BasicCredential::new(identity.as_bytes().to_vec()).into(),
        signature_key: s.public().into(),
    }
}

struct Fx {
    alice_signer: SignatureKeyPair,
    alice_credential: Credential,
    hub_signer: SignatureKeyPair,
    hub_sender: ExternalSender,
    bob_kp: KeyPackageBundle,
    bob_kp_bytes: KeyPackageBytes,
    /// Epoch-0 PublicMessage commit adding Bob.
    commit: MlsMessageBytes,
    /// The Welcome for Bob, as an MLSMessage.
    welcome: MlsMessageBytes,
    /// Epoch-1 GroupInfo without ratchet_tree, as an MLSMessage.
    group_info: MlsMessageBytes,
    tree: RatchetTreeBytes,
    /// Epoch-1 PrivateMessage application message from Alice.
    app: MlsMessageBytes,
    /// Epoch-1 PublicMessage proposals from Alice (add Charlie, remove Bob).
    proposal: MlsMessageBytes,
    proposal2: MlsMessageBytes,
    proposal_ref: ProposalRefBytes,
    /// Epoch-1 external Remove proposal from the hub (external sender 0).
    hub_proposal: MlsMessageBytes,
}

fn fx() -> &'static Fx {
    static FX: OnceLock<Fx> = OnceLock::new();
    FX.get_or_init(build_fixture)
}

fn bytes_of(m: &impl tls_codec::Serialize) -> Vec<u8> {
    m.tls_serialize_detached()
        .expect("openmls serialises its own objects")
}

fn build_fixture() -> Fx {
    let alice_p = OpenMlsRustCrypto::default();
    let bob_p = OpenMlsRustCrypto::default();
    let charlie_p = OpenMlsRustCrypto::default();
    let alice_signer = signer(1);
    let bob_signer = signer(2);
    let charlie_signer = signer(3);
    let hub_signer = signer(9);
    let alice = cwk("mimi://a.example/d/alice/1", &alice_signer);
    let bob = cwk("mimi://b.example/d/bob/1", &bob_signer);
    let charlie = cwk("mimi://c.example/d/charlie/1", &charlie_signer);
    let hub_sender = ExternalSender::new(
        hub_signer.public().into(),
        BasicCredential::new(b"mimi://a.example".to_vec()).into(),
    );

    let cfg = MlsGroupCreateConfig::builder()
        .ciphersuite(CS)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(false)
        .with_group_context_extensions(
            Extensions::single(Extension::ExternalSenders(vec![hub_sender.clone()]))
                .expect("external senders extension"),
        )
        .build();
    let mut g = MlsGroup::new_with_group_id(
        &alice_p,
        &alice_signer,
        &cfg,
        GroupId::from_slice(GROUP),
        alice.clone(),
    )
    .expect("group");

    let bob_kp = KeyPackage::builder()
        .build(CS, &bob_p, &bob_signer, bob)
        .expect("bob kp");
    let charlie_kp = KeyPackage::builder()
        .build(CS, &charlie_p, &charlie_signer, charlie)
        .expect("charlie kp");

    let (commit, welcome, _) = g
        .add_members(&alice_p, &alice_signer, &[bob_kp.key_package().clone()])
        .expect("add bob");
    g.merge_pending_commit(&alice_p).expect("merge");
    let group_info = g
        .export_group_info(alice_p.crypto(), &alice_signer, false)
        .expect("group info");
    let tree = g.export_ratchet_tree();

    // Bob joins from the bare Welcome bytes: proves the bytes are usable as they are.
    let welcome = MlsMessageBytes::from_bytes(&bytes_of(&welcome)).expect("welcome bytes");
    let bare = welcome.to_welcome().expect("bare").expect("is a welcome");
    let join_cfg = MlsGroupJoinConfig::builder()
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build();
    let tree_bytes = RatchetTreeBytes::from_openmls(&tree).expect("tree bytes");
    let bob_group = StagedWelcome::new_from_welcome(
        &bob_p,
        &join_cfg,
        bare.parse().expect("welcome parses"),
        Some(tree_bytes.parse().expect("tree parses")),
    )
    .expect("stage welcome")
    .into_group(&bob_p)
    .expect("join");
    assert_eq!(bob_group.epoch().as_u64(), 1);

    let app = g
        .create_message(&alice_p, &alice_signer, b"hello")
        .expect("app message");
    let hub_proposal = ExternalProposal::new_remove::<OpenMlsRustCrypto>(
        LeafNodeIndex::new(1),
        g.group_id().clone(),
        g.epoch(),
        &hub_signer,
        SenderExtensionIndex::new(0),
    )
    .expect("hub proposal");
    let (proposal, proposal_ref) = g
        .propose_add_member(&alice_p, &alice_signer, charlie_kp.key_package())
        .expect("propose add");
    let (proposal2, _) = g
        .propose_remove_member(&alice_p, &alice_signer, LeafNodeIndex::new(1))
        .expect("propose remove");

    let m = |x: &openmls::prelude::MlsMessageOut| {
        MlsMessageBytes::from_bytes(&bytes_of(x)).expect("MLSMessage bytes")
    };
    Fx {
        alice_credential: alice.credential.clone(),
        alice_signer,
        hub_signer,
        hub_sender,
        bob_kp_bytes: KeyPackageBytes::from_openmls(bob_kp.key_package()).expect("kp bytes"),
        bob_kp,
        commit: m(&commit),
        welcome,
        group_info: m(&group_info),
        tree: tree_bytes,
        app: m(&app),
        proposal: m(&proposal),
        proposal2: m(&proposal2),
        proposal_ref: ProposalRefBytes::from_openmls(&proposal_ref).expect("ref bytes"),
        hub_proposal: m(&hub_proposal),
    }
}

fn group_info_bare(f: &Fx) -> GroupInfoBytes {
    f.group_info
        .to_group_info()
        .expect("bare")
        .expect("is a group info")
}

fn welcome_bare(f: &Fx) -> WelcomeBytes {
    f.welcome.to_welcome().expect("bare").expect("is a welcome")
}

fn uri(s: &str) -> IdentifierUri {
    IdentifierUri::from_bytes(s.as_bytes())
}

fn frank() -> Frank {
    Frank {
        server_frank: [7; 32],
        franking_signature_ciphersuite: CS.into(),
        franking_integrity_signature: VLBytes::new(vec![1; 64]),
    }
}

fn partial_group_info(f: &Fx) -> PartialGroupInfo {
    let gi = group_info_bare(f).parse().expect("gi");
    PartialGroupInfo {
        ratchet_tree_presence: RatchetTreePresence::NoRatchetTree,
        group_info_extensions: GroupInfoExtensionsBytes::from_openmls(gi.extensions())
            .expect("extensions"),
        signature: VLBytes::new(vec![5; 64]),
    }
}

fn commit_bundle(f: &Fx) -> HandshakeBundle {
    HandshakeBundle {
        proposal_or_commit: f.commit.clone(),
        body: HandshakeBody::Commit {
            welcome: Some(welcome_bare(f)),
            group_info_option: GroupInfoOption::Full(group_info_bare(f)),
            ratchet_tree_option: RatchetTreeOption::Full(f.tree.clone()),
        },
    }
}

fn proposal_bundle(f: &Fx) -> HandshakeBundle {
    HandshakeBundle {
        proposal_or_commit: f.proposal.clone(),
        body: HandshakeBody::Proposal {
            more_proposals: vec![f.proposal2.clone()],
        },
    }
}

fn km_tbs(f: &Fx) -> KeyMaterialRequestTbs {
    KeyMaterialRequestTbs {
        protocol: Protocol::Mls10,
        requesting_user: uri("mimi://a.example/u/alice"),
        target_user: uri("mimi://b.example/u/bob"),
        room_id: uri(ROOM),
        acceptable_ciphersuites: vec![CS.into(), CipherSuite(0x0003)],
        required_capabilities: RequiredCapabilitiesBytes::from_openmls(
            &RequiredCapabilitiesExtension::new(&[], &[], &[]),
        )
        .expect("rc"),
        requester_signature_key: SignaturePublicKeyBytes::from_openmls(&SignaturePublicKey::from(
            f.alice_signer.public(),
        ))
        .expect("spk"),
        requester_credential: CredentialBytes::from_openmls(&f.alice_credential).expect("cred"),
    }
}

fn km_response(f: &Fx) -> KeyMaterialResponse {
    let caps = CapabilitiesBytes::from_openmls(f.bob_kp.key_package().leaf_node().capabilities())
        .expect("caps");
    KeyMaterialResponse {
        protocol: Protocol::Mls10,
        user_status: KeyMaterialUserCode::PartialSuccess,
        user_uri: uri("mimi://b.example/u/bob"),
        clients: vec![
            ClientKeyMaterial {
                client_uri: uri("mimi://b.example/d/bob/1"),
                material: ClientMaterial::Success(f.bob_kp_bytes.clone()),
            },
            ClientKeyMaterial {
                client_uri: uri("mimi://b.example/d/bob/2"),
                material: ClientMaterial::KeyMaterialExhausted,
            },
            ClientKeyMaterial {
                client_uri: uri("mimi://b.example/d/bob/3"),
                material: ClientMaterial::NothingCompatible(Some(caps)),
            },
            ClientKeyMaterial {
                client_uri: uri("mimi://b.example/d/bob/4"),
                material: ClientMaterial::NothingCompatible(None),
            },
        ],
    }
}

fn hpke_keys(seed: u8) -> (Vec<u8>, HpkePublicKeyBytes) {
    let kp = OpenMlsRustCrypto::default()
        .crypto()
        .derive_hpke_keypair(CS.hpke_config(), &[seed; 32])
        .expect("hpke keypair");
    let public = HpkePublicKeyBytes::from_key(&kp.public).expect("hpke pk");
    (kp.private.to_vec(), public)
}

fn gi_request_tbs(f: &Fx, joining_code: Option<&[u8]>) -> GroupInfoRequestTbs {
    GroupInfoRequestTbs {
        protocol: Protocol::Mls10,
        cipher_suite: CS.into(),
        requesting_signature_key: SignaturePublicKeyBytes::from_openmls(&SignaturePublicKey::from(
            f.alice_signer.public(),
        ))
        .expect("spk"),
        requesting_credential: CredentialBytes::from_openmls(&f.alice_credential).expect("cred"),
        group_info_public_key: hpke_keys(4).1,
        joining_code: joining_code.map(|c| VLBytes::new(c.to_vec())),
    }
}

fn tbe(f: &Fx) -> GroupInfoRatchetTreeTbe {
    GroupInfoRatchetTreeTbe {
        group_info: group_info_bare(f),
        ratchet_tree_option: RatchetTreeOption::Full(f.tree.clone()),
        pending_proposals: vec![
            PendingProposal {
                proposal: f.hub_proposal.clone(),
                hub_accepted_time: 1_700_000_000_123,
            },
            PendingProposal {
                proposal: f.proposal.clone(),
                hub_accepted_time: 1_700_000_000_456,
            },
        ],
    }
}

fn gi_response(f: &Fx) -> GroupInfoResponse {
    let crypto = OpenMlsRustCrypto::default();
    let (_, pk) = hpke_keys(4);
    let room = uri(ROOM);
    let ct = tbe(f)
        .seal(crypto.crypto(), CS.into(), &pk, &room)
        .expect("seal");
    GroupInfoResponse::sign_success(
        room,
        CS.into(),
        ExternalSenderBytes::from_openmls(&f.hub_sender).expect("hub sender"),
        ct,
        &f.hub_signer,
    )
    .expect("sign response")
}

fn fanout_app(f: &Fx) -> FanoutMessage {
    FanoutMessage {
        timestamp: 1_700_000_000_001,
        message: f.app.clone(),
        body: FanoutBody::Application {
            frank: Some(frank()),
        },
    }
}

fn fanout_welcome(f: &Fx) -> FanoutMessage {
    FanoutMessage {
        timestamp: 1_700_000_000_002,
        message: welcome_bare(f).to_mls_message().expect("wrap"),
        body: FanoutBody::Welcome {
            ratchet_tree_option: RatchetTreeOption::DistributionService,
        },
    }
}

fn fanout_commit(f: &Fx) -> FanoutMessage {
    FanoutMessage {
        timestamp: 1_700_000_000_003,
        message: f.commit.clone(),
        body: FanoutBody::Commit {
            external_proposals: vec![f.hub_proposal.clone()],
        },
    }
}

fn fanout_proposal(f: &Fx) -> FanoutMessage {
    FanoutMessage {
        timestamp: 1_700_000_000_004,
        message: f.proposal.clone(),
        body: FanoutBody::Proposal {
            more_proposals: vec![f.proposal2.clone(), f.hub_proposal.clone()],
        },
    }
}

// ---------------------------------------------------------------------------------
// Round trips, truncations, trailing bytes
// ---------------------------------------------------------------------------------

type Reencode = fn(&[u8]) -> Result<Vec<u8>, WireError>;

fn reencode<T: Decode + tls_codec::Serialize>(b: &[u8]) -> Result<Vec<u8>, WireError> {
    encode(&decode_exact::<T>(b)?)
}

/// Encode, decode, compare; re-encode, compare bytes; every strict prefix is an
/// error; one trailing byte is an error. Returns the encoding.
fn round_trip<T>(v: &T) -> Vec<u8>
where
    T: Decode + tls_codec::Serialize + PartialEq + std::fmt::Debug,
{
    let b = encode(v).expect("encode");
    assert_eq!(
        tls_codec::Size::tls_serialized_len(v),
        b.len(),
        "{}: Size disagrees with Serialize",
        T::NAME
    );
    let back: T = decode_exact(&b).unwrap_or_else(|e| panic!("{}: {e}", T::NAME));
    assert_eq!(&back, v, "{}: decode(encode(v)) != v", T::NAME);
    assert_eq!(
        encode(&back).expect("re-encode"),
        b,
        "{}: not canonical",
        T::NAME
    );
    for cut in 0..b.len() {
        let prefix = b.get(..cut).unwrap_or_default();
        assert!(
            decode_exact::<T>(prefix).is_err(),
            "{}: prefix of {cut}/{} bytes decoded: {}",
            T::NAME,
            b.len(),
            hex::encode(prefix)
        );
    }
    let mut long = b.clone();
    long.push(0);
    assert!(
        matches!(
            decode_exact::<T>(&long),
            Err(WireError::TrailingBytes { count: 1, .. })
        ),
        "{}: trailing byte not rejected",
        T::NAME
    );
    b
}

/// Every structure with a valid encoding, and how to re-encode it.
fn corpus(f: &Fx) -> Vec<(&'static str, Vec<u8>, Reencode)> {
    let km_req = KeyMaterialRequest::sign(km_tbs(f), &f.alice_signer).expect("sign");
    let mut km_req_no_room_tbs = km_tbs(f);
    km_req_no_room_tbs.room_id = uri("");
    let km_req_no_room =
        KeyMaterialRequest::sign(km_req_no_room_tbs, &f.alice_signer).expect("sign");
    let gi_req = GroupInfoRequest::sign(gi_request_tbs(f, Some(b"join-123")), &f.alice_signer)
        .expect("sign");
    let gi_req_no_code =
        GroupInfoRequest::sign(gi_request_tbs(f, None), &f.alice_signer).expect("sign");
    let partial_bundle = HandshakeBundle {
        proposal_or_commit: f.commit.clone(),
        body: HandshakeBody::Commit {
            welcome: None,
            group_info_option: GroupInfoOption::Partial(partial_group_info(f)),
            ratchet_tree_option: RatchetTreeOption::HttpsUri {
                ratchet_tree_url: VLBytes::new(b"https://a.example/tree/1".to_vec()),
                tree_signature: VLBytes::new(vec![3; 64]),
            },
        },
    };
    let oob_bundle = HandshakeBundle {
        proposal_or_commit: f.commit.clone(),
        body: HandshakeBody::Commit {
            welcome: None,
            group_info_option: GroupInfoOption::Full(group_info_bare(f)),
            ratchet_tree_option: RatchetTreeOption::OutOfBand {
                tree_signature: VLBytes::new(vec![]),
            },
        },
    };
    let hub_proposal_bundle = HandshakeBundle {
        proposal_or_commit: f.hub_proposal.clone(),
        body: HandshakeBody::Proposal {
            more_proposals: vec![],
        },
    };
    let responses = [
        UpdateRoomResponse {
            error_description: String::new(),
            outcome: UpdateOutcome::Success {
                accepted_timestamp: 1_700_000_000_000,
            },
        },
        UpdateRoomResponse {
            error_description: "epoch 0 is over".into(),
            outcome: UpdateOutcome::WrongEpoch { current_epoch: 7 },
        },
        UpdateRoomResponse {
            error_description: "Bob may not add Cathy (canAddParticipant) — ünïcode".into(),
            outcome: UpdateOutcome::NotAllowed,
        },
        UpdateRoomResponse {
            error_description: "bad proposal".into(),
            outcome: UpdateOutcome::InvalidProposal {
                invalid_proposals: vec![f.proposal_ref.clone(), f.proposal_ref.clone()],
            },
        },
    ];
    let submits = [
        SubmitMessageResponse {
            protocol: Protocol::Mls10,
            outcome: SubmitOutcome::Accepted {
                accepted_timestamp: 42,
                frank: Some(frank()),
            },
        },
        SubmitMessageResponse {
            protocol: Protocol::Mls10,
            outcome: SubmitOutcome::Accepted {
                accepted_timestamp: 43,
                frank: None,
            },
        },
        SubmitMessageResponse {
            protocol: Protocol::Mls10,
            outcome: SubmitOutcome::NotAllowed,
        },
        SubmitMessageResponse {
            protocol: Protocol::Mls10,
            outcome: SubmitOutcome::EpochTooOld { current_epoch: 9 },
        },
    ];
    let mut out: Vec<(&'static str, Vec<u8>, Reencode)> = vec![
        (
            "KeyMaterialRequest",
            round_trip(&km_req),
            reencode::<KeyMaterialRequest>,
        ),
        (
            "KeyMaterialRequest/noRoom",
            round_trip(&km_req_no_room),
            reencode::<KeyMaterialRequest>,
        ),
        (
            "KeyMaterialRequestTBS",
            round_trip(&km_tbs(f)),
            reencode::<KeyMaterialRequestTbs>,
        ),
        (
            "KeyMaterialResponse",
            round_trip(&km_response(f)),
            reencode::<KeyMaterialResponse>,
        ),
        (
            "KeyMaterialResponse/userUnknown",
            round_trip(&KeyMaterialResponse {
                protocol: Protocol::Mls10,
                user_status: KeyMaterialUserCode::UserUnknown,
                user_uri: uri("mimi://b.example/u/nobody"),
                clients: vec![],
            }),
            reencode::<KeyMaterialResponse>,
        ),
        (
            "UpdateRequest/commit",
            round_trip(&UpdateRequest {
                bundle: commit_bundle(f),
            }),
            reencode::<UpdateRequest>,
        ),
        (
            "UpdateRequest/partial",
            round_trip(&UpdateRequest {
                bundle: partial_bundle,
            }),
            reencode::<UpdateRequest>,
        ),
        (
            "UpdateRequest/oob",
            round_trip(&UpdateRequest { bundle: oob_bundle }),
            reencode::<UpdateRequest>,
        ),
        (
            "UpdateRequest/proposal",
            round_trip(&UpdateRequest {
                bundle: proposal_bundle(f),
            }),
            reencode::<UpdateRequest>,
        ),
        (
            "UpdateRequest/hubProposal",
            round_trip(&UpdateRequest {
                bundle: hub_proposal_bundle,
            }),
            reencode::<UpdateRequest>,
        ),
        (
            "PartialGroupInfo",
            round_trip(&partial_group_info(f)),
            reencode::<PartialGroupInfo>,
        ),
        (
            "SubmitMessageRequest",
            round_trip(&SubmitMessageRequest {
                protocol: Protocol::Mls10,
                app_message: f.app.clone(),
                sending_uri: uri("mimi://a.example/u/alice"),
            }),
            reencode::<SubmitMessageRequest>,
        ),
        ("Frank", round_trip(&frank()), reencode::<Frank>),
        (
            "FanoutMessage/application",
            round_trip(&fanout_app(f)),
            reencode::<FanoutMessage>,
        ),
        (
            "FanoutMessage/welcome",
            round_trip(&fanout_welcome(f)),
            reencode::<FanoutMessage>,
        ),
        (
            "FanoutMessage/commit",
            round_trip(&fanout_commit(f)),
            reencode::<FanoutMessage>,
        ),
        (
            "FanoutMessage/proposal",
            round_trip(&fanout_proposal(f)),
            reencode::<FanoutMessage>,
        ),
        (
            "FanoutMessage/noFrank",
            round_trip(&FanoutMessage {
                timestamp: 0,
                message: f.app.clone(),
                body: FanoutBody::Application { frank: None },
            }),
            reencode::<FanoutMessage>,
        ),
        (
            "GroupInfoRequest",
            round_trip(&gi_req),
            reencode::<GroupInfoRequest>,
        ),
        (
            "GroupInfoRequest/noCode",
            round_trip(&gi_req_no_code),
            reencode::<GroupInfoRequest>,
        ),
        (
            "GroupInfoRequestTBS",
            round_trip(&gi_request_tbs(f, Some(b"x"))),
            reencode::<GroupInfoRequestTbs>,
        ),
        (
            "PendingProposal",
            round_trip(&tbe(f).pending_proposals[0]),
            reencode::<PendingProposal>,
        ),
        (
            "GroupInfoRatchetTreeTBE",
            round_trip(&tbe(f)),
            reencode::<GroupInfoRatchetTreeTbe>,
        ),
        (
            "GroupInfoResponse/success",
            round_trip(&gi_response(f)),
            reencode::<GroupInfoResponse>,
        ),
        (
            "GroupInfoResponse/notAuthorized",
            round_trip(&GroupInfoResponse {
                protocol: Protocol::Mls10,
                room_id: uri(ROOM),
                status: GroupInfoStatus::NotAuthorized,
            }),
            reencode::<GroupInfoResponse>,
        ),
        (
            "GroupInfoResponse/noSuchRoom",
            round_trip(&GroupInfoResponse {
                protocol: Protocol::Mls10,
                room_id: uri(ROOM),
                status: GroupInfoStatus::NoSuchRoom,
            }),
            reencode::<GroupInfoResponse>,
        ),
        (
            "IdentifierUri",
            round_trip(&uri(ROOM)),
            reencode::<IdentifierUri>,
        ),
    ];
    for r in &responses {
        out.push((
            "UpdateRoomResponse",
            round_trip(r),
            reencode::<UpdateRoomResponse>,
        ));
    }
    for s in &submits {
        out.push((
            "SubmitMessageResponse",
            round_trip(s),
            reencode::<SubmitMessageResponse>,
        ));
    }
    for o in [
        RatchetTreeOption::Full(f.tree.clone()),
        RatchetTreeOption::DistributionService,
        RatchetTreeOption::OutOfBand {
            tree_signature: VLBytes::new(vec![1, 2]),
        },
    ] {
        out.push((
            "RatchetTreeOption",
            round_trip(&o),
            reencode::<RatchetTreeOption>,
        ));
    }
    out.push((
        "GroupInfoOption/partial",
        round_trip(&GroupInfoOption::Partial(partial_group_info(f))),
        reencode::<GroupInfoOption>,
    ));
    // The /notify body is a concatenation: only its whole-message prefixes decode, so
    // it is checked separately (notify_body_*), but it joins the mutation corpus.
    let notify = NotifyBody {
        messages: vec![fanout_app(f), fanout_welcome(f), fanout_commit(f)],
    };
    out.push((
        "NotifyBody",
        encode(&notify).expect("notify"),
        reencode::<NotifyBody>,
    ));
    out
}

#[test]
fn every_structure_round_trips_byte_exactly() {
    let f = fx();
    let c = corpus(f);
    assert!(c.len() >= 35, "corpus has {} entries", c.len());
    for (name, b, re) in &c {
        assert_eq!(
            &re(b).unwrap_or_else(|e| panic!("{name}: {e}")),
            b,
            "{name}"
        );
    }
}

#[test]
fn embedded_mls_objects_keep_their_exact_bytes() {
    let f = fx();
    let kp = f.bob_kp.key_package();
    assert_eq!(f.bob_kp_bytes.as_bytes(), bytes_of(kp).as_slice());
    // parse() gives the openmls value back; its encoding is the same bytes.
    assert_eq!(bytes_of(&f.bob_kp_bytes.parse().expect("kp")), bytes_of(kp));
    assert_eq!(bytes_of(&f.tree.parse().expect("tree")), f.tree.as_bytes());
    assert_eq!(
        bytes_of(&f.commit.parse().expect("commit")),
        f.commit.as_bytes()
    );
    // Bare <-> MLSMessage conversions are exact.
    let gi = group_info_bare(f);
    assert_eq!(
        gi.to_mls_message().expect("wrap").as_bytes(),
        f.group_info.as_bytes()
    );
    assert_eq!(
        welcome_bare(f).to_mls_message().expect("wrap").as_bytes(),
        f.welcome.as_bytes()
    );
    assert!(!gi.has_ratchet_tree().expect("gi"));
    assert_eq!(f.app.to_welcome().expect("not a welcome"), None);
    // Trailing bytes after an embedded object are rejected.
    let mut long = f.commit.as_bytes().to_vec();
    long.push(0);
    assert!(matches!(
        MlsMessageBytes::from_bytes(&long),
        Err(WireError::TrailingBytes { .. })
    ));
    assert!(matches!(
        KeyPackageBytes::from_bytes(&[0, 1, 0]),
        Err(WireError::Mls {
            object: "KeyPackage",
            ..
        })
    ));
    // Accessors.
    assert_eq!(
        ExternalSenderBytes::from_openmls(&f.hub_sender)
            .expect("es")
            .signature_key()
            .expect("key"),
        f.hub_signer.public()
    );
    assert_eq!(
        ExternalSenderBytes::from_openmls(&f.hub_sender)
            .expect("es")
            .credential()
            .expect("credential"),
        BasicCredential::new(b"mimi://a.example".to_vec()).into()
    );
    assert_eq!(f.bob_kp_bytes.cipher_suite().expect("suite"), CS.into());
}

#[test]
fn message_info_shows_what_is_visible() {
    let f = fx();
    let i = f.commit.info();
    assert_eq!(i.wire_format, WireFormatKind::PublicMessage);
    assert_eq!(i.content_type, Some(ContentKind::Commit));
    assert_eq!(i.group_id.as_deref(), Some(GROUP));
    assert_eq!(i.epoch, Some(0));
    assert_eq!(i.sender, Some(SenderKind::Member(0)));
    let a = f.app.info();
    assert_eq!(a.wire_format, WireFormatKind::PrivateMessage);
    assert_eq!(a.content_type, Some(ContentKind::Application));
    assert_eq!(a.epoch, Some(1));
    assert_eq!(a.sender, None);
    assert_eq!(f.proposal.content_type(), Some(ContentKind::Proposal));
    assert_eq!(f.hub_proposal.info().sender, Some(SenderKind::External(0)));
    assert_eq!(f.welcome.wire_format(), WireFormatKind::Welcome);
    assert_eq!(f.group_info.info().epoch, Some(1));
    assert_eq!(f.group_info.info().group_id.as_deref(), Some(GROUP));
}

#[test]
fn key_package_ref_matches_openmls_and_the_welcome() {
    let f = fx();
    let crypto = OpenMlsRustCrypto::default();
    let r = f
        .bob_kp_bytes
        .key_package_ref(crypto.crypto())
        .expect("ref");
    let expected = f
        .bob_kp
        .key_package()
        .hash_ref(crypto.crypto())
        .expect("openmls ref");
    assert_eq!(r, expected.as_slice());
    assert_eq!(welcome_bare(f).new_member_refs().expect("refs"), vec![r]);
}

#[test]
fn identifier_uri_converts_to_and_from_ids() {
    use crate::ids::{ClientUri, Domain, RoomUri, UserUri};
    let d = Domain::new("b.example").expect("domain");
    let bob = UserUri::new(&d, "bob").expect("user");
    let id = IdentifierUri::from(&bob);
    assert_eq!(id.as_bytes(), b"mimi://b.example/u/bob");
    assert_eq!(UserUri::try_from(&id).expect("back"), bob);
    let room = RoomUri::new(&d, "club").expect("room");
    assert_eq!(
        RoomUri::try_from(&IdentifierUri::from(room.clone())).expect("back"),
        room
    );
    let c = bob.client("2").expect("client");
    assert_eq!(
        ClientUri::try_from(&IdentifierUri::from(&c)).expect("back"),
        c
    );
    // A user URI is not a room URI; non-UTF-8 is not an identifier.
    assert!(matches!(
        RoomUri::try_from(&id),
        Err(WireError::Identifier { .. })
    ));
    assert!(UserUri::try_from(&IdentifierUri::from_bytes(&[0xff])).is_err());
}

// ---------------------------------------------------------------------------------
// Signatures and encryption
// ---------------------------------------------------------------------------------

#[test]
fn sign_content_and_encrypt_context_match_rfc9420_layout() {
    // SignContent as openmls builds it.
    let ours = labeled::sign_content("KeyMaterialRequestTBS", b"abc").expect("ours");
    let theirs = bytes_of(&SignContent::new(
        "KeyMaterialRequestTBS",
        VLBytes::new(b"abc".to_vec()),
    ));
    assert_eq!(ours, theirs);
    // EncryptContext by hand: label<V> = "MLS 1.0 " + label, context<V>.
    let ctx = labeled::encrypt_context("GroupInfo and ratchet_tree encryption", ROOM.as_bytes())
        .expect("ctx");
    let label = b"MLS 1.0 GroupInfo and ratchet_tree encryption";
    let mut expected = vec![label.len() as u8];
    expected.extend_from_slice(label);
    expected.push(ROOM.len() as u8);
    expected.extend_from_slice(ROOM.as_bytes());
    assert_eq!(ctx, expected);
}

/// SignWithLabel interoperates with openmls: the KeyPackage signature
/// (SignWithLabel(.., "KeyPackageTBS", KeyPackageTBS)) verifies with our
/// VerifyWithLabel, and our SignWithLabel reproduces it (Ed25519 is deterministic).
#[test]
fn labeled_signatures_interoperate_with_openmls() {
    let f = fx();
    let crypto = OpenMlsRustCrypto::default();
    let kp = f.bob_kp_bytes.as_bytes();
    // The KeyPackage ends with `opaque signature<V>`: 64 bytes behind a 2-byte header.
    let split = kp.len() - 66;
    assert_eq!(&kp[split..split + 2], &[0x40, 0x40]);
    let (tbs, sig) = (&kp[..split], &kp[split + 2..]);
    let bob_key = signer(2);
    labeled::verify_with_label(
        crypto.crypto(),
        SignatureScheme::ED25519,
        bob_key.public(),
        "KeyPackage",
        "KeyPackageTBS",
        tbs,
        sig,
    )
    .expect("openmls' KeyPackage signature verifies");
    let ours =
        labeled::sign_with_label(&bob_key, "KeyPackage", "KeyPackageTBS", tbs).expect("sign");
    assert_eq!(ours, sig);
    // A different label does not verify.
    assert!(labeled::verify_with_label(
        crypto.crypto(),
        SignatureScheme::ED25519,
        bob_key.public(),
        "KeyPackage",
        "LeafNodeTBS",
        tbs,
        sig
    )
    .is_err());
}

#[test]
fn key_material_request_signature_verifies_and_detects_tampering() {
    let f = fx();
    let crypto = OpenMlsRustCrypto::default();
    let req = KeyMaterialRequest::sign(km_tbs(f), &f.alice_signer).expect("sign");
    let b = encode(&req).expect("encode");
    let back: KeyMaterialRequest = decode_exact(&b).expect("decode");
    back.verify(crypto.crypto()).expect("verifies");

    let mut t = back.clone();
    t.tbs.target_user = uri("mimi://b.example/u/mallory");
    assert!(matches!(
        t.verify(crypto.crypto()),
        Err(WireError::BadSignature {
            structure: "KeyMaterialRequest",
            ..
        })
    ));
    let mut t = back.clone();
    t.tbs.room_id = uri("mimi://a.example/r/other");
    assert!(t.verify(crypto.crypto()).is_err());
    // Flip one bit of the signature on the wire.
    let mut wire = b.clone();
    let last = wire.len() - 1;
    wire[last] ^= 1;
    let t: KeyMaterialRequest = decode_exact(&wire).expect("still decodes");
    assert!(t.verify(crypto.crypto()).is_err());
    // Another key's signature does not verify.
    let t = KeyMaterialRequest::sign(km_tbs(f), &signer(5)).expect("sign");
    assert!(t.verify(crypto.crypto()).is_err());
    // A signer whose scheme is not the first suite's is refused.
    let mut p256 = km_tbs(f);
    p256.acceptable_ciphersuites = vec![CipherSuite(0x0002)];
    assert!(matches!(
        KeyMaterialRequest::sign(p256, &f.alice_signer),
        Err(WireError::Invalid { .. })
    ));
}

#[test]
fn group_info_request_signature_verifies_and_detects_tampering() {
    let f = fx();
    let crypto = OpenMlsRustCrypto::default();
    for code in [None, Some(&b"join-123"[..])] {
        let req = GroupInfoRequest::sign(gi_request_tbs(f, code), &f.alice_signer).expect("sign");
        let back: GroupInfoRequest = decode_exact(&encode(&req).expect("enc")).expect("dec");
        back.verify(crypto.crypto()).expect("verifies");
        let mut t = back.clone();
        t.tbs.joining_code = Some(VLBytes::new(b"join-999".to_vec()));
        assert!(t.verify(crypto.crypto()).is_err());
        let mut t = back.clone();
        t.tbs.group_info_public_key = hpke_keys(5).1;
        assert!(matches!(
            t.verify(crypto.crypto()),
            Err(WireError::BadSignature {
                structure: "GroupInfoRequest",
                ..
            })
        ));
    }
}

#[test]
fn group_info_response_signature_and_encryption() {
    let f = fx();
    let crypto = OpenMlsRustCrypto::default();
    let resp = gi_response(f);
    let back: GroupInfoResponse = decode_exact(&encode(&resp).expect("enc")).expect("dec");
    back.verify(crypto.crypto()).expect("verifies");

    let GroupInfoStatus::Success(s) = &back.status else {
        panic!("not success")
    };
    // The requester decrypts with its private key and the room id as context.
    let (sk, _) = hpke_keys(4);
    let opened = GroupInfoRatchetTreeTbe::open(
        crypto.crypto(),
        s.cipher_suite,
        &sk,
        &back.room_id,
        &s.encrypted_groupinfo_and_tree,
    )
    .expect("opens");
    assert_eq!(opened, tbe(f));
    // Wrong private key, wrong room (context) and a flipped ciphertext bit all fail.
    let (other_sk, _) = hpke_keys(5);
    assert!(matches!(
        GroupInfoRatchetTreeTbe::open(
            crypto.crypto(),
            s.cipher_suite,
            &other_sk,
            &back.room_id,
            &s.encrypted_groupinfo_and_tree
        ),
        Err(WireError::Crypto {
            operation: "DecryptWithLabel",
            ..
        })
    ));
    assert!(GroupInfoRatchetTreeTbe::open(
        crypto.crypto(),
        s.cipher_suite,
        &sk,
        &uri("mimi://a.example/r/other"),
        &s.encrypted_groupinfo_and_tree
    )
    .is_err());
    let mut ct = s.encrypted_groupinfo_and_tree.as_bytes().to_vec();
    let last = ct.len() - 1;
    ct[last] ^= 0x80;
    let ct = HpkeCiphertextBytes::from_bytes(&ct).expect("still a ciphertext");
    assert!(GroupInfoRatchetTreeTbe::open(
        crypto.crypto(),
        s.cipher_suite,
        &sk,
        &back.room_id,
        &ct
    )
    .is_err());

    // Tampering with any signed field breaks the signature.
    let mut t = back.clone();
    t.room_id = uri("mimi://a.example/r/other");
    assert!(t.verify(crypto.crypto()).is_err());
    let mut t = back.clone();
    if let GroupInfoStatus::Success(s) = &mut t.status {
        s.encrypted_groupinfo_and_tree = ct;
    }
    assert!(matches!(
        t.verify(crypto.crypto()),
        Err(WireError::BadSignature {
            structure: "GroupInfoResponse",
            ..
        })
    ));
    // A non-hub signer's response does not verify against hub_sender.
    let GroupInfoStatus::Success(s) = &back.status else {
        panic!("not success")
    };
    let forged = GroupInfoResponse::sign_success(
        back.room_id.clone(),
        s.cipher_suite,
        s.hub_sender.clone(),
        s.encrypted_groupinfo_and_tree.clone(),
        &signer(7),
    )
    .expect("sign");
    assert!(forged.verify(crypto.crypto()).is_err());
    // Non-success responses carry no signature.
    let na = GroupInfoResponse {
        protocol: Protocol::Mls10,
        room_id: uri(ROOM),
        status: GroupInfoStatus::NotAuthorized,
    };
    assert!(na.verify(crypto.crypto()).is_err());
}

/// DecryptWithLabel interoperates with openmls: it opens the Welcome's
/// EncryptedGroupSecrets, which openmls sealed with EncryptWithLabel(init_key,
/// "Welcome", encrypted_group_info, GroupSecrets).
#[test]
fn decrypt_with_label_opens_openmls_welcome_secrets() {
    let f = fx();
    let crypto = OpenMlsRustCrypto::default();
    let w = welcome_bare(f);
    let at = Place::new("Welcome", "test");
    let mut r = Reader::new(w.as_bytes());
    r.u16(at).expect("cipher_suite");
    let secrets = r
        .vector(at, |r| {
            let new_member = r.opaque(at, 255)?.to_vec();
            let ct = HpkeCiphertextBytes::read(r, at)?;
            Ok((new_member, ct))
        })
        .expect("secrets");
    let encrypted_group_info = r.opaque(at, usize::MAX).expect("egi").to_vec();
    assert!(r.is_empty());
    assert_eq!(secrets.len(), 1);
    let ct: HpkeCiphertext = secrets[0].1.parse().expect("ct");
    let sk = f.bob_kp.init_private_key().to_vec();
    let pt = labeled::decrypt_with_label(
        crypto.crypto(),
        CS,
        &sk,
        "Welcome",
        "Welcome",
        &encrypted_group_info,
        &ct,
    )
    .expect("opens openmls' ciphertext");
    assert!(!pt.is_empty());
    assert!(labeled::decrypt_with_label(
        crypto.crypto(),
        CS,
        &sk,
        "Welcome",
        "Welcome",
        b"other context",
        &ct
    )
    .is_err());
}

// ---------------------------------------------------------------------------------
// Select rules, /notify, errors, limits
// ---------------------------------------------------------------------------------

#[test]
fn notify_body_of_three_parses_into_three() {
    let f = fx();
    let msgs = vec![fanout_app(f), fanout_welcome(f), fanout_commit(f)];
    let mut body = Vec::new();
    for m in &msgs {
        body.extend(encode(m).expect("encode"));
    }
    let n: NotifyBody = decode_exact(&body).expect("decode");
    assert_eq!(n.messages, msgs);
    assert_eq!(encode(&n).expect("re-encode"), body);
    // Prefixes: only the whole-message boundaries decode, into that many messages.
    let ends: Vec<usize> = msgs
        .iter()
        .scan(0, |acc, m| {
            *acc += encode(m).expect("enc").len();
            Some(*acc)
        })
        .collect();
    for cut in 0..body.len() {
        let r = decode_exact::<NotifyBody>(&body[..cut]);
        match ends.iter().position(|e| *e == cut) {
            Some(i) => assert_eq!(r.expect("boundary").messages.len(), i + 1),
            None => assert!(r.is_err(), "cut {cut} decoded"),
        }
    }
    assert!(matches!(
        decode_exact::<NotifyBody>(&[]),
        Err(WireError::Empty { .. })
    ));
    assert!(encode(&NotifyBody { messages: vec![] }).is_err());
}

#[test]
fn selects_must_match_the_embedded_message() {
    let f = fx();
    // Encoding refuses a bundle whose body does not match the content type.
    let wrong = HandshakeBundle {
        proposal_or_commit: f.proposal.clone(),
        body: HandshakeBody::Commit {
            welcome: None,
            group_info_option: GroupInfoOption::Full(group_info_bare(f)),
            ratchet_tree_option: RatchetTreeOption::DistributionService,
        },
    };
    assert!(matches!(encode(&wrong), Err(WireError::Encode { .. })));
    // An application message is not a handshake.
    let mut b = f.app.as_bytes().to_vec();
    b.push(0);
    assert!(matches!(
        decode_exact::<HandshakeBundle>(&b),
        Err(WireError::Invalid {
            at: Place {
                structure: "HandshakeBundle",
                field: "proposalOrCommit"
            },
            ..
        })
    ));
    // FanoutMessage kind must agree with the message: relabel a commit as a proposal.
    let mut b = encode(&fanout_commit(f)).expect("enc");
    b[8] = 3;
    assert!(matches!(
        decode_exact::<FanoutMessage>(&b),
        Err(WireError::Invalid {
            at: Place {
                structure: "FanoutMessage",
                field: "message"
            },
            ..
        })
    ));
    b[8] = 0;
    assert!(matches!(
        decode_exact::<FanoutMessage>(&b),
        Err(WireError::UnknownCode {
            at: Place { field: "kind", .. },
            value: 0
        })
    ));
    let wrong = FanoutMessage {
        timestamp: 1,
        message: f.commit.clone(),
        body: FanoutBody::Welcome {
            ratchet_tree_option: RatchetTreeOption::DistributionService,
        },
    };
    assert!(encode(&wrong).is_err());
}

#[test]
fn errors_name_the_structure_and_field() {
    let f = fx();
    let req = SubmitMessageRequest {
        protocol: Protocol::Mls10,
        app_message: f.app.clone(),
        sending_uri: uri("mimi://a.example/u/alice"),
    };
    let mut b = encode(&req).expect("enc");
    b[0] = 0;
    let e = decode_exact::<SubmitMessageRequest>(&b).expect_err("reserved protocol");
    assert_eq!(
        e,
        WireError::UnknownCode {
            at: Place::new("SubmitMessageRequest", "protocol"),
            value: 0
        }
    );
    assert_eq!(
        e.to_string(),
        "SubmitMessageRequest.protocol: unknown or reserved value 0"
    );
    // Corrupt the MLSMessage's wire format.
    b[0] = 1;
    b[4] = 9;
    let e = decode_exact::<SubmitMessageRequest>(&b).expect_err("bad wire format");
    assert!(
        matches!(&e, WireError::Mls { at, object: "MLSMessage", .. } if at.field == "appMessage"),
        "{e}"
    );
    // Truncated URI.
    let b = encode(&req).expect("enc");
    let e = decode_exact::<SubmitMessageRequest>(&b[..b.len() - 3]).expect_err("truncated");
    assert!(
        matches!(&e, WireError::Truncated { at, .. } if at.field == "sendingUri"),
        "{e}"
    );
    // Unknown response code, non-UTF-8 description, bad optional presence byte.
    let e = decode_exact::<UpdateRoomResponse>(&[4, 0]).expect_err("code 4");
    assert!(matches!(e, WireError::UnknownCode { at, value: 4 } if at.field == "responseCode"));
    let e = decode_exact::<UpdateRoomResponse>(&[2, 1, 0xff]).expect_err("utf8");
    assert_eq!(
        e,
        WireError::NotUtf8 {
            at: Place::new("UpdateRoomResponse", "errorDescription")
        }
    );
    let mut b = encode(&SubmitMessageResponse {
        protocol: Protocol::Mls10,
        outcome: SubmitOutcome::Accepted {
            accepted_timestamp: 1,
            frank: None,
        },
    })
    .expect("enc");
    let last = b.len() - 1;
    b[last] = 2;
    assert_eq!(
        decode_exact::<SubmitMessageResponse>(&b).expect_err("presence 2"),
        WireError::BadOptional {
            at: Place::new("SubmitMessageResponse", "frank"),
            value: 2
        }
    );
    // An empty acceptableCiphersuites is refused.
    let mut tbs = km_tbs(f);
    tbs.acceptable_ciphersuites.clear();
    let e = decode_exact::<KeyMaterialRequestTbs>(&encode(&tbs).expect("enc")).expect_err("empty");
    assert!(matches!(e, WireError::Invalid { at, .. } if at.field == "acceptableCiphersuites"));
}

#[test]
fn limits_and_canonical_lengths_are_enforced() {
    let f = fx();
    // Non-minimal <V> header: length 1 written in two bytes.
    assert!(matches!(
        decode_exact::<IdentifierUri>(&[0x40, 0x01, b'x']),
        Err(WireError::BadLength { .. })
    ));
    // 8-byte headers are not allowed.
    assert!(matches!(
        decode_exact::<IdentifierUri>(&[0xc0, 0, 0, 0, 0, 0, 0, 1, b'x']),
        Err(WireError::BadLength { .. })
    ));
    // A length beyond the input is reported before anything is copied.
    assert!(matches!(
        decode_exact::<IdentifierUri>(&[0x80, 0x10, 0, 0]),
        Err(WireError::Truncated {
            needed: 0x100000,
            available: 0,
            ..
        })
    ));
    // URI longer than MAX_URI_BYTES.
    let long = IdentifierUri::from_bytes(&vec![b'a'; MAX_URI_BYTES + 1]);
    assert!(matches!(
        decode_exact::<IdentifierUri>(&encode(&long).expect("enc")),
        Err(WireError::TooLong {
            max: MAX_URI_BYTES,
            ..
        })
    ));
    // More than MAX_VECTOR_ITEMS proposal refs.
    let many = UpdateRoomResponse {
        error_description: String::new(),
        outcome: UpdateOutcome::InvalidProposal {
            invalid_proposals: vec![f.proposal_ref.clone(); MAX_VECTOR_ITEMS + 1],
        },
    };
    assert!(matches!(
        decode_exact::<UpdateRoomResponse>(&encode(&many).expect("enc")),
        Err(WireError::TooManyItems {
            max: MAX_VECTOR_ITEMS,
            ..
        })
    ));
    // Bodies over MAX_BODY_BYTES are refused before decoding.
    assert!(matches!(
        decode_exact::<NotifyBody>(&vec![0; MAX_BODY_BYTES + 1]),
        Err(WireError::BodyTooLarge { .. })
    ));
}

#[test]
fn key_material_response_rules() {
    let f = fx();
    km_response(f)
        .check_rules()
        .expect("partialSuccess may list clients");
    let mut r = km_response(f);
    r.user_status = KeyMaterialUserCode::NoConsent;
    // Still decodes (so a receiver can report it), but breaks the P§5.2 rule.
    let back: KeyMaterialResponse = decode_exact(&encode(&r).expect("enc")).expect("dec");
    assert!(matches!(back.check_rules(), Err(WireError::Invalid { .. })));
    r.clients.clear();
    r.check_rules().expect("empty is fine");
    assert_eq!(
        km_response(f)
            .clients
            .iter()
            .map(|c| c.client_status())
            .collect::<Vec<_>>(),
        vec![
            KeyMaterialClientCode::Success,
            KeyMaterialClientCode::KeyMaterialExhausted,
            KeyMaterialClientCode::NothingCompatible,
            KeyMaterialClientCode::NothingCompatible
        ]
    );
}

#[test]
fn summaries_show_endpoint_and_visible_fields() {
    let f = fx();
    let s = UpdateRequest {
        bundle: commit_bundle(f),
    }
    .summary();
    for want in [
        "/update",
        "public commit",
        "group=mimi://a.example/g/clubhouse",
        "epoch=0",
        "from=member:0",
        "welcome=yes",
        "groupInfo=full",
        "tree=full",
    ] {
        assert!(s.contains(want), "{want:?} not in {s:?}");
    }
    let s = fanout_proposal(f).summary();
    assert!(s.starts_with("/notify FanoutMessage proposal"), "{s}");
    assert!(
        s.contains("moreProposals=2") && s.contains("epoch=1"),
        "{s}"
    );
    let s = NotifyBody {
        messages: vec![fanout_app(f), fanout_welcome(f), fanout_commit(f)],
    }
    .summary();
    assert!(
        s.contains("n=3") && s.contains("private application") && s.contains("frank=yes"),
        "{s}"
    );
    let s = SubmitMessageRequest {
        protocol: Protocol::Mls10,
        app_message: f.app.clone(),
        sending_uri: uri("mimi://a.example/u/alice"),
    }
    .summary();
    assert!(
        s.contains("sendingUri=mimi://a.example/u/alice") && s.contains("epoch=1"),
        "{s}"
    );
    let s = KeyMaterialRequest::sign(km_tbs(f), &f.alice_signer)
        .expect("sign")
        .summary();
    assert!(
        s.contains("target=mimi://b.example/u/bob") && s.contains("0x0001"),
        "{s}"
    );
    assert!(km_response(f).summary().contains("PartialSuccess"));
    let s = GroupInfoRequest::sign(gi_request_tbs(f, None), &f.alice_signer)
        .expect("sign")
        .summary();
    assert!(
        s.contains("requester=mimi://a.example/d/alice/1") && s.contains("joiningCode=no"),
        "{s}"
    );
    assert!(gi_response(f)
        .summary()
        .contains("room=mimi://a.example/r/clubhouse success"));
    let s = UpdateRoomResponse {
        error_description: "no".into(),
        outcome: UpdateOutcome::WrongEpoch { current_epoch: 5 },
    }
    .summary();
    assert!(
        s.contains("wrongEpoch currentEpoch=5") && s.contains("error=\"no\""),
        "{s}"
    );
    let s = SubmitMessageResponse {
        protocol: Protocol::Mls10,
        outcome: SubmitOutcome::EpochTooOld { current_epoch: 3 },
    }
    .summary();
    assert!(s.contains("epochTooOld currentEpoch=3"), "{s}");
}

// ---------------------------------------------------------------------------------
// Mutation testing: never panic; whatever is accepted is canonical
// ---------------------------------------------------------------------------------

/// SplitMix64: a fixed, seedable sequence for reproducible mutations.
struct Mix(u64);
impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % (n.max(1) as u64)) as usize
    }
}

fn mutate(rng: &mut Mix, b: &[u8]) -> Vec<u8> {
    let mut m = b.to_vec();
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        let i = rng.below(m.len());
        match rng.below(6) {
            0 => {
                if let Some(x) = m.get_mut(i) {
                    *x ^= 1 << rng.below(8);
                }
            }
            1 => {
                if let Some(x) = m.get_mut(i) {
                    *x = rng.next() as u8;
                }
            }
            2 => m.insert(i, rng.next() as u8),
            3 => {
                if i < m.len() {
                    m.remove(i);
                }
            }
            4 => {
                // Length-ish bytes: try the values that stress headers.
                if let Some(x) = m.get_mut(i) {
                    *x = [0x00, 0x3f, 0x40, 0x7f, 0x80, 0xbf, 0xc0, 0xff][rng.below(8)];
                }
            }
            _ => {
                let end = (i + 1 + rng.below(16)).min(m.len());
                let chunk = m.get(i..end).unwrap_or_default().to_vec();
                let at = rng.below(m.len());
                m.splice(at..at, chunk);
            }
        }
    }
    m
}

#[test]
fn truncations_and_mutations_never_panic_and_accepted_inputs_are_canonical() {
    let f = fx();
    let c = corpus(f);
    let mut rng = Mix(0x4d49_4d49_5749_5245);
    let mut total = 0usize;
    let mut accepted = 0usize;
    for (name, b, re) in &c {
        for cut in 0..b.len() {
            if let Ok(out) = re(&b[..cut]) {
                assert_eq!(out, &b[..cut], "{name}: accepted prefix not canonical");
            }
        }
        for _ in 0..150 {
            let m = mutate(&mut rng, b);
            total += 1;
            let r = std::panic::catch_unwind(|| re(&m));
            let r = r.unwrap_or_else(|_| panic!("{name}: decoder panicked on {}", hex::encode(&m)));
            if let Ok(out) = r {
                accepted += 1;
                assert_eq!(out, m, "{name}: accepted non-canonical {}", hex::encode(&m));
            }
        }
    }
    eprintln!("mutations: {accepted}/{total} accepted, corpus {}", c.len());
    assert!(total >= 5000, "only {total} mutations");
    // Most mutations must be rejected (they break lengths, codes or MLS framing), but
    // some land in opaque data and are accepted.
    assert!(accepted < total / 2, "{accepted}/{total} accepted");
    assert!(
        accepted > 0,
        "no mutation was accepted: suspiciously strict"
    );
}
