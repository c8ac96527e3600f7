//! The MLS glue is deterministic: the same seed yields byte-identical KeyPackages, commits
//! (including one that removes three clients of one user at once), Welcomes, GroupInfos,
//! external commits and application ciphertexts — in this process and in another one —
//! and a different seed changes them. A hub `PublicGroup` follows every commit.

use nodes::ids::{Domain, UserUri};
use nodes::mls::app_data::{self, ComponentLogic};
use nodes::mls::commit::{stage_canonical_commit, CommitPlan};
use nodes::mls::config::{self, Identity};
use nodes::mls::SeededProvider;
use openmls::component::ComponentId;
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use openmls_traits::OpenMlsProvider;
use sha2::{Digest, Sha256};

/// Test component logic: each update appends its bytes to the old value.
struct Append;
const COMPONENT: ComponentId = 0xF000;

impl ComponentLogic for Append {
    fn apply_updates(
        &self,
        _c: ComponentId,
        old: Option<&[u8]>,
        updates: &[&[u8]],
    ) -> Result<Vec<u8>, String> {
        let mut v = old.unwrap_or_default().to_vec();
        for u in updates {
            v.extend_from_slice(u);
        }
        Ok(v)
    }
    fn allow_remove(&self, _c: ComponentId) -> bool {
        false
    }
}

struct Member {
    provider: SeededProvider,
    id: Identity,
    group: Option<MlsGroup>,
}

fn member(seed: u64, name: &str, device: &str) -> Member {
    let d = Domain::new("b.example").unwrap();
    let client = UserUri::new(&d, name).unwrap().client(device).unwrap();
    let provider = SeededProvider::for_node(seed, client.as_str());
    let id = Identity::for_client(&provider, &client).unwrap();
    Member {
        provider,
        id,
        group: None,
    }
}

fn ser(m: &impl tls_codec::Serialize) -> Vec<u8> {
    m.tls_serialize_detached().unwrap()
}

fn to_protocol(bytes: &[u8]) -> ProtocolMessage {
    MlsMessageIn::tls_deserialize_exact(bytes)
        .unwrap()
        .try_into_protocol_message()
        .unwrap()
}

/// A receiver (member) processes a commit, resolving room-state updates.
fn member_process_commit(m: &mut Member, commit: &[u8]) {
    let group = m.group.as_mut().unwrap();
    let processed = group
        .process_message(&m.provider, to_protocol(commit))
        .unwrap();
    let staged = match processed.into_content() {
        ProcessedMessageContent::StagedCommitMessage(s) => *s,
        ProcessedMessageContent::UnresolvedAppDataCommit(u) => {
            let updates = app_data::resolve(
                group.app_data_dictionary_updater(),
                u.app_data_update_proposals(),
                &Append,
            )
            .unwrap();
            group
                .stage_app_data_commit(&m.provider, *u, updates)
                .unwrap()
        }
        other => panic!("expected a commit, got {other:?}"),
    };
    group.merge_staged_commit(&m.provider, staged).unwrap();
}

/// The hub follows a commit in its public view.
fn hub_process_commit(hub: &mut (PublicGroup, SeededProvider), commit: &[u8]) {
    let (pg, p) = hub;
    let processed = pg.process_message(p.crypto(), to_protocol(commit)).unwrap();
    let staged = match processed.into_content() {
        ProcessedMessageContent::StagedCommitMessage(s) => *s,
        ProcessedMessageContent::UnresolvedAppDataCommit(u) => {
            let updates = app_data::resolve(
                pg.app_data_dictionary_updater(),
                u.app_data_update_proposals(),
                &Append,
            )
            .unwrap();
            pg.stage_app_data_commit(p.crypto(), *u, updates).unwrap()
        }
        other => panic!("hub expected a commit, got {other:?}"),
    };
    pg.merge_commit(p.storage(), staged).unwrap();
}

/// Runs the scenario and returns (artefact name, bytes) in order.
fn scenario(seed: u64) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let hub_provider = SeededProvider::for_node(seed, "hub:a.example");
    let hub_id = Identity::for_server(&hub_provider, &Domain::new("a.example").unwrap()).unwrap();

    let mut alice = member(seed, "alice", "1");
    let mut bobs: Vec<Member> = (1..=3)
        .map(|i| member(seed, "bob", &i.to_string()))
        .collect();
    let mut carol = member(seed, "carol", "1");

    let mut dict = AppDataDictionary::new();
    dict.insert(COMPONENT, b"room:".to_vec());
    let gce = config::room_group_context_extensions(dict, hub_id.external_sender()).unwrap();
    let group = MlsGroup::builder()
        .ciphersuite(config::CIPHERSUITE)
        .with_wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .with_capabilities(config::leaf_capabilities())
        .with_group_context_extensions(gce)
        .lifetime(config::lifetime())
        .use_ratchet_tree_extension(false)
        .build(
            &alice.provider,
            &alice.id.signer,
            alice.id.credential_with_key.clone(),
        )
        .unwrap();
    out.push(("group id", group.group_id().as_slice().to_vec()));
    alice.group = Some(group);

    // Bob's three clients publish KeyPackages.
    let kps: Vec<KeyPackage> = bobs
        .iter()
        .map(|b| b.id.key_package(&b.provider).unwrap().key_package().clone())
        .collect();
    for kp in &kps {
        out.push(("bob key package", ser(kp)));
    }

    // The hub tracks the room from the creator's GroupInfo.
    let ag = alice.group.as_mut().unwrap();
    let gi = ag
        .export_group_info(alice.provider.crypto(), &alice.id.signer, false)
        .unwrap();
    let vgi = match MlsMessageIn::tls_deserialize_exact(ser(&gi))
        .unwrap()
        .extract()
    {
        MlsMessageBodyIn::GroupInfo(v) => v,
        _ => unreachable!(),
    };
    let (pg, _) = PublicGroup::from_external(
        hub_provider.crypto(),
        hub_provider.storage(),
        ag.export_ratchet_tree().into(),
        vgi,
        ProposalStore::new(),
    )
    .unwrap();
    let mut hub = (pg, hub_provider);

    // Alice adds Bob's three clients and changes the room state in one commit.
    let plan = CommitPlan {
        adds: kps,
        proposals: vec![Proposal::AppDataUpdate(Box::new(
            AppDataUpdateProposal::update(COMPONENT, b"+bob".to_vec()),
        ))],
        ..Default::default()
    };
    let staged =
        stage_canonical_commit(ag, &alice.provider, &alice.id.signer, &plan, &Append).unwrap();
    let commit = ser(staged.bundle.commit());
    let welcome = staged.bundle.to_welcome_msg().unwrap();
    out.push(("add commit", commit.clone()));
    out.push(("welcome", ser(&welcome)));
    out.push(("group info", ser(staged.bundle.group_info().unwrap())));
    hub_process_commit(&mut hub, &commit);
    ag.merge_pending_commit(&alice.provider).unwrap();
    let tree = ag.export_ratchet_tree();

    for b in bobs.iter_mut() {
        let welcome_in = match MlsMessageIn::tls_deserialize_exact(ser(&welcome))
            .unwrap()
            .extract()
        {
            MlsMessageBodyIn::Welcome(w) => w,
            _ => unreachable!(),
        };
        let g = StagedWelcome::build_from_welcome(&b.provider, &config::join_config(), welcome_in)
            .unwrap()
            .with_ratchet_tree(tree.clone().into())
            .build()
            .unwrap()
            .into_group(&b.provider)
            .unwrap();
        b.group = Some(g);
    }

    // Application messages both ways.
    let ag = alice.group.as_mut().unwrap();
    let m = ag
        .create_message(&alice.provider, &alice.id.signer, b"hello bob")
        .unwrap();
    out.push(("app message alice", ser(&m)));
    let b0 = &mut bobs[0];
    let g = b0.group.as_mut().unwrap();
    match g
        .process_message(&b0.provider, to_protocol(&ser(&m)))
        .unwrap()
        .into_content()
    {
        ProcessedMessageContent::ApplicationMessage(a) => assert_eq!(a.into_bytes(), b"hello bob"),
        other => panic!("{other:?}"),
    }

    // Carol's client joins by external commit with the hub's GroupInfo and tree.
    let gi = staged.bundle.group_info().unwrap();
    let vgi = match MlsMessageIn::tls_deserialize_exact(ser(&MlsMessageOut::from(gi.clone())))
        .unwrap()
        .extract()
    {
        MlsMessageBodyIn::GroupInfo(v) => v,
        _ => unreachable!(),
    };
    let (cg, ext) = MlsGroup::external_commit_builder()
        .with_ratchet_tree(hub.0.export_ratchet_tree().into())
        .with_config(config::join_config())
        .build_group(&carol.provider, vgi, carol.id.credential_with_key.clone())
        .unwrap()
        .leaf_node_parameters(
            LeafNodeParameters::builder()
                .with_capabilities(config::leaf_capabilities())
                .build(),
        )
        .load_psks(carol.provider.storage())
        .unwrap()
        .build(
            carol.provider.rand(),
            carol.provider.crypto(),
            &carol.id.signer,
            |_| true,
        )
        .unwrap()
        .finalize(&carol.provider)
        .unwrap();
    carol.group = Some(cg);
    let ext_commit = ser(ext.commit());
    out.push(("external commit", ext_commit.clone()));
    hub_process_commit(&mut hub, &ext_commit);
    member_process_commit(&mut alice, &ext_commit);
    for b in bobs.iter_mut() {
        member_process_commit(b, &ext_commit);
    }

    // Alice removes all three of Bob's clients in ONE commit, with a room-state change.
    let ag = alice.group.as_mut().unwrap();
    let bob_leaves: Vec<LeafNodeIndex> = ag
        .members()
        .filter(|m| {
            config::client_of_credential(&m.credential)
                .map(|c| c.user().name() == "bob")
                .unwrap_or(false)
        })
        .map(|m| m.index)
        .collect();
    assert_eq!(bob_leaves.len(), 3);
    let plan = CommitPlan {
        removes: bob_leaves,
        proposals: vec![Proposal::AppDataUpdate(Box::new(
            AppDataUpdateProposal::update(COMPONENT, b"-bob".to_vec()),
        ))],
        ..Default::default()
    };
    let staged =
        stage_canonical_commit(ag, &alice.provider, &alice.id.signer, &plan, &Append).unwrap();
    let rm = ser(staged.bundle.commit());
    REMOVE_ATTEMPTS.with(|a| a.borrow_mut().push(staged.attempts));
    out.push(("remove-3 commit", rm.clone()));
    out.push((
        "remove-3 group info",
        ser(staged.bundle.group_info().unwrap()),
    ));
    hub_process_commit(&mut hub, &rm);
    ag.merge_pending_commit(&alice.provider).unwrap();
    member_process_commit(&mut carol, &rm);
    for b in bobs.iter_mut() {
        member_process_commit(b, &rm);
        assert!(
            !b.group.as_ref().unwrap().is_active(),
            "bob's client must be removed"
        );
    }

    // Everyone left agrees with each other and with the hub's public view.
    let ag = alice.group.as_ref().unwrap();
    let cg = carol.group.as_ref().unwrap();
    assert_eq!(
        ag.epoch_authenticator().as_slice(),
        cg.epoch_authenticator().as_slice()
    );
    assert_eq!(
        ser(hub.0.group_context()),
        ser(ag.public_group().group_context())
    );
    assert_eq!(
        ser(cg.public_group().group_context()),
        ser(ag.public_group().group_context())
    );
    assert_eq!(
        ag.extensions()
            .app_data_dictionary()
            .unwrap()
            .dictionary()
            .get(&COMPONENT)
            .unwrap(),
        b"room:+bob-bob"
    );
    out.push((
        "epoch authenticator",
        ag.epoch_authenticator().as_slice().to_vec(),
    ));
    let cg = carol.group.as_mut().unwrap();
    let m = cg
        .create_message(&carol.provider, &carol.id.signer, b"bye bob")
        .unwrap();
    out.push(("app message carol", ser(&m)));
    out
}

thread_local! {
    static REMOVE_ATTEMPTS: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// openmls orders the three Removes by a per-process-random HashMap; the canonical
/// re-draw must make the commit identical in every run, and must actually be exercised.
#[test]
fn three_removes_in_one_commit_are_canonical() {
    let first = scenario(7);
    let rm = |a: &[(&'static str, Vec<u8>)]| {
        a.iter()
            .find(|(n, _)| *n == "remove-3 commit")
            .unwrap()
            .1
            .clone()
    };
    for _ in 0..9 {
        assert_eq!(rm(&scenario(7)), rm(&first));
    }
    let attempts = REMOVE_ATTEMPTS.with(|a| a.borrow().clone());
    assert_eq!(attempts.len(), 10);
    assert!(
        attempts.iter().any(|&n| n > 1),
        "HashMap order never needed a re-draw in 10 runs ({attempts:?}): the mechanism was not exercised"
    );
}

fn digest(artefacts: &[(&'static str, Vec<u8>)]) -> String {
    let mut h = Sha256::new();
    for (name, bytes) in artefacts {
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    hex::encode(&h.finalize()[..16])
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let a = scenario(42);
    let b = scenario(42);
    let c = scenario(43);
    assert_eq!(a.len(), b.len());
    for ((na, ba), (_, bb)) in a.iter().zip(&b) {
        assert_eq!(
            ba, bb,
            "artefact {na:?} differs between two runs with seed 42"
        );
    }
    for ((na, ba), (_, bc)) in a.iter().zip(&c) {
        if !ba.is_empty() {
            assert_ne!(ba, bc, "artefact {na:?} is the same for seeds 42 and 43");
        }
    }
}

/// Prints the digest for seed 42 when asked by the cross-process test.
#[test]
fn print_digest_for_child() {
    if std::env::var("MIMI_DIGEST_CHILD").is_ok() {
        println!("DIGEST={}", digest(&scenario(42)));
    }
}

#[test]
fn same_seed_same_bytes_in_another_process() {
    let here = digest(&scenario(42));
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "print_digest_for_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MIMI_DIGEST_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let child = stdout
        .lines()
        .find_map(|l| l.split_once("DIGEST=").map(|(_, d)| d.trim()))
        .unwrap_or_else(|| panic!("child printed no digest: {stdout}"));
    assert_eq!(here, child, "digest differs between processes");
}
