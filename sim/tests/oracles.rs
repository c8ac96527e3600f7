//! Every oracle fires on the fault it exists to catch: each test plants one bug (or a
//! misbehaving enforcement setting) in an otherwise honest world and checks the oracle's
//! id is among the violations, with a witness; the same scenario without the plant
//! holds every oracle.

use mimi_sim::observe::oracles::{self, ORACLES};
use mimi_sim::scenario::Scenario;
use mimi_sim::world::run::{run, Outcome, RunReport};

/// Three providers, alice@a (hub), bob@b, cathy@c; alice creates the room and adds bob
/// and cathy; then `script` and `faults` follow.
fn world(enforcement: &str, bugs: &[&str], script: &str, faults: &str) -> String {
    let bugs = bugs
        .iter()
        .map(|b| format!("\"{b}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
name = "planted"
[world]
providers = ["a.example", "b.example", "c.example"]
room = {{ name = "r", hub = "a.example" }}
users = [
  {{ name = "alice", provider = "a.example" }},
  {{ name = "bob", provider = "b.example" }},
  {{ name = "cathy", provider = "c.example" }},
]
[variant]
enforcement = "{enforcement}"
bugs = [{bugs}]
[phases]
chaos_ms = 12000
heal_ms = 30000
[oracles]
on_violation = "record"

[[script]]
at_ms = 0
client = "alice"
op = "create"
[[script]]
at_ms = 500
client = "alice"
op = "add"
user = "bob"
role = 3
[[script]]
at_ms = 1500
client = "alice"
op = "add"
user = "cathy"
{script}
{faults}
"#
    )
}

fn go(text: &str, seed: u64) -> RunReport {
    let s = Scenario::parse("planted.toml", text).expect("valid scenario");
    let r = s.validate("planted.toml", text).expect("valid scenario");
    run(&s, &r, text, seed, false)
}

fn fired(r: &RunReport) -> Vec<&'static str> {
    r.violations.iter().map(|v| v.id).collect()
}

/// The plant makes `id` fire with a witness; without it, the run is clean.
fn planted(id: &str, enforcement: &str, bugs: &[&str], script: &str, faults: &str) {
    let with = go(&world(enforcement, bugs, script, faults), 3);
    assert!(
        fired(&with).contains(&id),
        "{id} did not fire; violations {:?}, liveness {:?}",
        with.violations,
        with.liveness
    );
    let v = with.violations.iter().find(|v| v.id == id).unwrap();
    assert!(!v.witness.nodes.is_empty(), "witness names the nodes");
    assert!(
        !v.witness.trace_lines.is_empty(),
        "witness points into the trace"
    );
    assert_eq!(with.outcome, Outcome::Violation);
    let without = go(&world(enforcement, &[], script, faults), 3);
    assert_eq!(
        without.outcome,
        Outcome::Ok,
        "the control run holds: {:?} {:?}",
        without.violations,
        without.liveness
    );
}

const RACING_COMMITS: &str = r#"
[[script]]
at_ms = 4000
client = "bob"
op = "self-update"
[[script]]
at_ms = 4000
client = "cathy"
op = "self-update"
"#;

/// The hub sequences both racing commits and fans both out: honest clients are handed
/// two commits for one epoch. The oracle judges what the clients were handed, so its
/// witness names honest clients.
#[test]
fn one_commit_per_epoch_fires_when_the_hub_sequences_two_commits_for_one_epoch() {
    planted(
        oracles::ONE_COMMIT_PER_EPOCH,
        "full",
        &["hub-sequences-every-commit"],
        RACING_COMMITS,
        "",
    );
    let with = go(
        &world("full", &["hub-sequences-every-commit"], RACING_COMMITS, ""),
        3,
    );
    let v = with
        .violations
        .iter()
        .find(|v| v.id == oracles::ONE_COMMIT_PER_EPOCH)
        .unwrap();
    assert!(
        v.witness.nodes.iter().any(|n| n.starts_with("mimi://")),
        "the witness names the clients handed the commits: {v:?}"
    );
    assert!(v.message.contains("2 different commits"), "{}", v.message);
}

/// Alice (at the hub) and Cathy commit at once while the hub's link to b.example is slow,
/// so both commits reach b.example in one /notify batch.
const RACING_COMMITS_SLOW_B: &str = r#"
[[script]]
at_ms = 3800
client = "alice"
op = "send"
text = "keeps the /notify to b.example in flight"
[[script]]
at_ms = 4000
client = "alice"
op = "self-update"
[[script]]
at_ms = 4000
client = "cathy"
op = "self-update"
[[faults.schedule]]
at_ms = 3700
for_ms = 5000
kind = "latency"
a = "a.example"
b = "b.example"
min_ms = 700
max_ms = 700
"#;

/// Clients settle a commit by the order of the hub's fan-out, so a hub that sequences two
/// commits for one epoch alone does not split them; a follower that also hands its
/// clients a batch in reverse order makes Bob merge the other commit of that epoch.
#[test]
fn no_split_fires_when_clients_merge_different_commits_for_one_epoch() {
    planted(
        oracles::NO_SPLIT,
        "full",
        &["hub-sequences-every-commit", "follower-reverses-batches"],
        RACING_COMMITS_SLOW_B,
        "",
    );
}

/// Room state bound into the GroupContext: honest clients at one epoch decode one
/// participant list, so only a client whose own copy drifts (the planted bug: Bob and
/// Cathy drop the last participant, Alice, the first, does not) makes them disagree.
/// The GroupContexts still agree: no-split does not see it.
#[test]
fn room_state_agrees_fires_when_a_client_holds_a_drifted_participant_list() {
    planted(
        oracles::ROOM_STATE_AGREES,
        "full",
        &["client-misreads-participant-list"],
        "",
        "",
    );
    let with = go(
        &world("full", &["client-misreads-participant-list"], "", ""),
        3,
    );
    assert!(
        !fired(&with).contains(&oracles::NO_SPLIT),
        "{:?}",
        with.violations
    );
}

#[test]
fn hub_view_matches_fires_when_the_hub_does_not_merge_a_commit() {
    planted(
        oracles::HUB_VIEW_MATCHES,
        "full",
        &["hub-skips-merge"],
        "",
        "",
    );
}

#[test]
fn member_is_participant_fires_when_clients_are_added_without_their_user() {
    planted(
        oracles::MEMBER_IS_PARTICIPANT,
        "off",
        &["client-adds-without-list-update"],
        "",
        "",
    );
}

#[test]
fn removed_has_no_clients_fires_when_a_removal_leaves_the_clients_in() {
    planted(
        oracles::REMOVED_HAS_NO_CLIENTS,
        "off",
        &["client-removes-user-but-not-clients"],
        r#"
[[script]]
at_ms = 4000
client = "alice"
op = "remove"
user = "cathy"
"#,
        "",
    );
}

const MESSAGES: &str = r#"
[[script]]
at_ms = 4000
client = "alice"
op = "send"
text = "one"
[[script]]
at_ms = 4300
client = "alice"
op = "send"
text = "two"
[[script]]
at_ms = 4600
client = "alice"
op = "send"
text = "three"
[[script]]
at_ms = 4900
client = "alice"
op = "send"
text = "four"
"#;

#[test]
fn accepted_delivered_fires_when_the_hub_drops_fanout() {
    planted(
        oracles::ACCEPTED_DELIVERED,
        "full",
        &["hub-drops-message-fanout"],
        MESSAGES,
        "",
    );
}

/// 700 ms each way between the hub and b.example: a /notify's connection and request
/// take 2.1 s, past the 2 s timeout, so b.example processes the request but its answer
/// comes too late and the hub retries the same body.
const SLOW_LINK: &str = r#"
[[faults.schedule]]
at_ms = 3500
for_ms = 5000
kind = "latency"
a = "a.example"
b = "b.example"
min_ms = 700
max_ms = 700
"#;

#[test]
fn notify_once_fires_when_a_follower_processes_a_retried_notify_again() {
    planted(
        oracles::NOTIFY_ONCE,
        "full",
        &["follower-skips-dedup"],
        MESSAGES,
        SLOW_LINK,
    );
}

#[test]
fn hub_order_fires_when_a_follower_reverses_a_batch() {
    planted(
        oracles::HUB_ORDER,
        "full",
        &["follower-reverses-batches"],
        MESSAGES,
        SLOW_LINK,
    );
}

#[test]
fn only_accepted_delivered_fires_when_a_follower_delivers_what_the_hub_never_sequenced() {
    // Bob has two devices, both added; b.example echoes bob/1's commit to bob/2.
    let script = r#"
[[script]]
at_ms = 4000
client = "bob"
op = "self-update"
"#;
    let two = |bugs: &[&str]| {
        world("full", bugs, script, "").replace(
            r#"{ name = "bob", provider = "b.example" }"#,
            r#"{ name = "bob", provider = "b.example", clients = 2 }"#,
        )
    };
    let with = go(&two(&["follower-echoes-local-commits"]), 3);
    let v = with
        .violations
        .iter()
        .find(|v| v.id == oracles::ONLY_ACCEPTED_DELIVERED)
        .unwrap_or_else(|| panic!("did not fire: {:?}", with.violations));
    assert!(v.witness.nodes.contains(&"b.example".to_string()), "{v:?}");
    let without = go(&two(&[]), 3);
    assert_eq!(without.outcome, Outcome::Ok, "{:?}", without.violations);
}

/// x-hub-transfer: Bob (admin on b.example) takes the hub over at 4000 ms.
const TAKE_OVER: &str = r#"
[[script]]
at_ms = 4000
client = "bob"
op = "take-over"
[[script]]
at_ms = 7000
client = "cathy"
op = "send"
text = "after the takeover"
"#;

#[test]
fn one_sequencer_per_epoch_fires_when_an_unfenced_takeover_meets_a_live_old_hub() {
    // The plant: a takeover without fencing while the old hub a.example is only cut off
    // (and Alice commits through it) — two hubs sequence epoch 3.
    let cut_off = r#"
[[faults.schedule]]
at_ms = 3000
for_ms = 8000
kind = "partition"
a = "a.example"
b = "b.example"
[[faults.schedule]]
at_ms = 3000
for_ms = 8000
kind = "partition"
a = "a.example"
b = "c.example"
"#;
    let alice_commits = format!(
        "{TAKE_OVER}\n[[script]]\nat_ms = 4500\nclient = \"alice\"\nop = \"self-update\"\n"
    );
    let with = go(
        &world("full", &[], &alice_commits, cut_off).replace(
            "bugs = []",
            "bugs = []\nhub_transfer = \"takeover-unfenced\"",
        ),
        1,
    );
    let v = with
        .violations
        .iter()
        .find(|v| v.id == oracles::ONE_SEQUENCER_PER_EPOCH)
        .unwrap_or_else(|| panic!("did not fire: {:?}", with.violations));
    assert_eq!(v.witness.nodes, vec!["a.example", "b.example"], "{v:?}");
    // Without the plant: the old hub is down until healing (then fenced) — one sequencer.
    let crashed = r#"
[[faults.schedule]]
at_ms = 3000
for_ms = 100000
kind = "crash"
provider = "a.example"
"#;
    let without = go(&world("full", &[], TAKE_OVER, crashed), 1);
    assert!(
        !without
            .violations
            .iter()
            .any(|v| v.id == oracles::ONE_SEQUENCER_PER_EPOCH),
        "{:?}",
        without.violations
    );
}

#[test]
fn handoff_keeps_accepted_fires_when_a_follower_reverses_a_batch_after_the_hub_moved() {
    // Alice hands the hub to c.example (cooperative), then sends; c's fan-out to b is
    // slow, so batches form, and b's planted bug reverses them.
    let script = format!(
        "[[script]]\nat_ms = 3000\nclient = \"alice\"\nop = \"move-hub\"\nto = \"c.example\"\n{MESSAGES}"
    );
    let slow_c_b = r#"
[[faults.schedule]]
at_ms = 3500
for_ms = 5000
kind = "latency"
a = "c.example"
b = "b.example"
min_ms = 700
max_ms = 700
"#;
    planted(
        oracles::HANDOFF_KEEPS_ACCEPTED,
        "full",
        &["follower-reverses-batches"],
        &script,
        slow_c_b,
    );
}

/// The hub moves to c.example at 3000 ms; Alice sends four messages after the handoff.
/// c.example's hub never fans application messages out to the other providers: Bob
/// (b.example), a member of their epoch, is never handed the new hub's entries.
/// Without the plant the handoff keeps every entry (and the seq continues). In a room
/// whose hub never moved the same plant is accepted-delivered's alone.
#[test]
fn handoff_keeps_accepted_fires_when_the_new_hub_loses_entries_after_a_handoff() {
    let script = format!(
        "[[script]]\nat_ms = 3000\nclient = \"alice\"\nop = \"move-hub\"\nto = \"c.example\"\n{MESSAGES}"
    );
    let with = go(
        &world("full", &["hub-drops-message-fanout"], &script, ""),
        3,
    );
    let v = with
        .violations
        .iter()
        .find(|v| v.id == oracles::HANDOFF_KEEPS_ACCEPTED)
        .unwrap_or_else(|| panic!("did not fire: {:?} {:?}", with.violations, with.liveness));
    assert!(v.message.contains("never handed"), "{}", v.message);
    assert!(v.witness.nodes.contains(&"c.example".to_string()), "{v:?}");
    assert!(!v.witness.trace_lines.is_empty(), "{v:?}");
    let without = go(&world("full", &[], &script, ""), 3);
    assert_eq!(
        without.outcome,
        Outcome::Ok,
        "{:?} {:?}",
        without.violations,
        without.liveness
    );
    let unmoved = go(
        &world("full", &["hub-drops-message-fanout"], MESSAGES, ""),
        3,
    );
    let ids = fired(&unmoved);
    assert!(ids.contains(&oracles::ACCEPTED_DELIVERED), "{ids:?}");
    assert!(!ids.contains(&oracles::HANDOFF_KEEPS_ACCEPTED), "{ids:?}");
}

/// departure-completes judges the script's intent: Bob (an ordinary user, role 2) is
/// told to ban Cathy, which the room's policy refuses (an ordinary user lacks canBan).
/// Unless the step declares the refusal (`may_refuse = ["policy"]`), that departure never
/// happening is a violation; declared, the run holds.
#[test]
fn departure_completes_fires_when_a_departure_the_scenario_wants_is_refused() {
    let remove = |declared: bool| {
        let flag = if declared {
            "may_refuse = [\"policy\"]\n"
        } else {
            ""
        };
        let script = format!(
            "[[script]]\nat_ms = 4000\nclient = \"bob\"\nop = \"ban\"\nuser = \"cathy\"\n{flag}"
        );
        world("full", &[], &script, "").replace("role = 3", "role = 2")
    };
    let with = go(&remove(false), 3);
    let v = with
        .violations
        .iter()
        .find(|v| v.id == oracles::DEPARTURE_COMPLETES)
        .unwrap_or_else(|| panic!("did not fire: {:?} {:?}", with.violations, with.liveness));
    assert!(
        v.message.contains("steps that took effect: none"),
        "{}",
        v.message
    );
    let declared = go(&remove(true), 3);
    assert_eq!(
        declared.outcome,
        Outcome::Ok,
        "{:?} {:?}",
        declared.violations,
        declared.liveness
    );
}

/// The world of [`world`] with c.example malicious (`behaviour`).
fn with_adversary(text: String, behaviour: &str) -> String {
    format!("{text}\n[[adversaries]]\nprovider = \"c.example\"\nbehaviour = \"{behaviour}\"\n")
}

/// Cathy (c.example) sends after she is added.
const CATHY_SENDS: &str = r#"
[[script]]
at_ms = 4000
client = "cathy"
op = "send"
text = "from cathy"
"#;

/// The plant: c.example's client names Alice as sendingUri (adversary forge-sending-uri).
/// Under `off` the hub accepts it and the oracle fires, naming Cathy's client and the
/// hub; under `full` the hub rejects a sendingUri of another provider (submit-sender), so
/// nothing false is accepted and the oracle holds; without the plant it holds.
#[test]
fn sending_uri_is_sender_fires_when_the_hub_accepts_a_message_under_another_users_name() {
    let with = go(
        &with_adversary(world("off", &[], CATHY_SENDS, ""), "forge-sending-uri"),
        3,
    );
    let v = with
        .violations
        .iter()
        .find(|v| v.id == oracles::SENDING_URI_IS_SENDER)
        .unwrap_or_else(|| panic!("did not fire: {:?}", with.violations));
    assert_eq!(
        v.witness.nodes,
        vec!["mimi://c.example/d/cathy/1", "a.example"],
        "{v:?}"
    );
    assert_eq!(v.witness.trace_lines.len(), 2, "built and accepted: {v:?}");
    assert!(v.message.contains("mimi://a.example/u/alice"), "{v:?}");
    let rejected = go(
        &with_adversary(world("full", &[], CATHY_SENDS, ""), "forge-sending-uri"),
        3,
    );
    assert!(
        !fired(&rejected).contains(&oracles::SENDING_URI_IS_SENDER),
        "{:?}",
        rejected.violations
    );
    assert!(rejected.hub_rejections.contains_key("submit-sender"));
    let without = go(&world("off", &[], CATHY_SENDS, ""), 3);
    assert_eq!(without.outcome, Outcome::Ok, "{:?}", without.violations);
    assert!(
        without.messages_accepted >= 1,
        "Cathy's message was accepted"
    );
}

/// The plant: c.example holds cathy/2 as a ghost (adversary ghost-device): Alice's add
/// gets only cathy/1, whose client then adds cathy/2 unasked. Without the plant Alice's
/// add takes both of Cathy's devices, so cathy/2 is a member just the same (it joins by
/// Welcome) and the oracle holds: it judges who enrolled the device, not membership.
#[test]
fn no_ghost_device_fires_when_a_provider_adds_a_device_its_user_never_enrolled() {
    let two = |t: String| {
        t.replace(
            r#"{ name = "cathy", provider = "c.example" }"#,
            r#"{ name = "cathy", provider = "c.example", clients = 2 }"#,
        )
    };
    let with = go(
        &with_adversary(two(world("full", &[], "", "")), "ghost-device"),
        3,
    );
    let v = with
        .violations
        .iter()
        .find(|v| v.id == oracles::NO_GHOST_DEVICE)
        .unwrap_or_else(|| panic!("did not fire: {:?}", with.violations));
    assert_eq!(v.witness.nodes[0], "mimi://c.example/d/cathy/2", "{v:?}");
    assert!(!v.witness.trace_lines.is_empty());
    let text = two(world("full", &[], "", ""));
    let s = Scenario::parse("planted.toml", &text).unwrap();
    let r = s.validate("planted.toml", &text).unwrap();
    let without = run(&s, &r, &text, 3, true);
    assert_eq!(without.outcome, Outcome::Ok, "{:?}", without.violations);
    let joined = without
        .trace
        .unwrap()
        .iter()
        .any(|l| l.contains("mimi://c.example/d/cathy/2") && l.contains("Joined"));
    assert!(joined, "cathy/2 joins, enrolled by Alice's add");
}

/// Under `clients-first`, Bob leaves: his SelfRemove is committed by another member,
/// whose duty is then to unlist him. The planted bug skips that duty: Bob stays listed
/// with no clients (which no safety oracle forbids: it is what a Kick leaves).
#[test]
fn departure_completes_fires_when_nobody_commits_the_unlisting_of_a_leaver() {
    let leave = r#"
[[script]]
at_ms = 4000
client = "bob"
op = "leave"
"#;
    // Bob as an ordinary user (role 2): as group_admin (role 3, minimum 1 participant,
    // RP§3) his unlisting would be refused by policy, a stuck departure of its own.
    let clients_first = |text: String| {
        text.replace(
            "[variant]\n",
            "[variant]\nleave_order = \"clients-first\"\n",
        )
        .replace("role = 3", "role = 2")
    };
    let with = go(
        &clients_first(world("full", &["client-skips-unlisting"], leave, "")),
        3,
    );
    assert_eq!(
        fired(&with),
        vec![oracles::DEPARTURE_COMPLETES],
        "{:?} {:?}",
        with.violations,
        with.liveness
    );
    let v = &with.violations[0];
    assert!(v.witness.nodes.iter().any(|n| n.contains("bob")), "{v:?}");
    assert!(v.message.contains("0 client(s)"), "{}", v.message);
    assert!(v.witness.trace_lines.len() >= 2, "the op and a step: {v:?}");
    let without = go(&clients_first(world("full", &[], leave, "")), 3);
    assert_eq!(
        without.outcome,
        Outcome::Ok,
        "{:?} {:?}",
        without.violations,
        without.liveness
    );
}

#[test]
fn every_oracle_has_a_planted_test_here() {
    let src = include_str!("oracles.rs");
    for o in ORACLES {
        let constant = o.id.to_uppercase().replace('-', "_");
        assert!(
            src.matches(&format!("oracles::{constant}")).count() >= 1,
            "no planted test for {}",
            o.id
        );
    }
}

#[test]
fn a_run_that_cannot_converge_in_its_bound_fails_on_liveness_with_a_state_table() {
    // b.example is cut off until healing, and healing allows 1 ms.
    let cut = r#"
[[faults.schedule]]
at_ms = 3000
for_ms = 10000
kind = "partition"
a = "a.example"
b = "b.example"
"#;
    let text = world("full", &[], MESSAGES, cut).replace("heal_ms = 30000", "heal_ms = 1");
    let r = go(&text, 1);
    assert_eq!(r.outcome, Outcome::Liveness, "{:?}", r.violations);
    assert!(r.liveness.as_deref().unwrap().contains("not converged"));
    assert_eq!(
        r.state_table.len(),
        3 + 3,
        "one row per provider and client"
    );
}

/// The plant: c.example serves a stale GroupInfo for Cathy's commits (adversary
/// bad-group-info), so Alice's new device, joining by external commit after them, cannot
/// join: arrival-completes fires under `off`, naming the device and its failure; under
/// `full` the hub refuses the bad commits, the join succeeds and the oracle holds.
#[test]
fn arrival_completes_fires_when_a_join_by_external_commit_never_lands() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/adversary-bad-group-info.toml"),
    )
    .unwrap();
    let at = |level: &str| {
        text.replace(
            "[matrix]\nenforcement = [\"off\", \"mls\", \"full\"]\n",
            &format!("[variant]\nenforcement = \"{level}\"\n"),
        )
    };
    let with = go(&at("off"), 1);
    let v = with
        .violations
        .iter()
        .find(|v| v.id == oracles::ARRIVAL_COMPLETES)
        .unwrap_or_else(|| panic!("did not fire: {:?}", with.violations));
    assert_eq!(v.witness.nodes, vec!["mimi://a.example/d/alice/2"], "{v:?}");
    assert!(v.message.contains("MLS rejected"), "{}", v.message);
    assert!(
        v.message.contains("Local(Mls)"),
        "judged by the typed origin: {}",
        v.message
    );
    assert_eq!(
        v.witness.trace_lines.len(),
        2,
        "the op and the failure: {v:?}"
    );
    let without = go(&at("full"), 1);
    assert_eq!(
        without.outcome,
        Outcome::Ok,
        "{:?} {:?}",
        without.violations,
        without.liveness
    );
    assert!(without.hub_rejections.contains_key("group-info"));
}

#[test]
fn may_refuse_names_only_known_rules_and_codes() {
    let text = world(
        "full",
        &[],
        "[[script]]\nat_ms = 4000\nclient = \"bob\"\nop = \"ban\"\nuser = \"cathy\"\nmay_refuse = [\"polcy\"]\n",
        "",
    );
    let msg = match Scenario::parse("planted.toml", &text) {
        Ok(_) => panic!("an unknown rule in may_refuse is an error"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.contains("may_refuse") && msg.contains("polcy") && msg.contains("policy"),
        "{msg}"
    );
}

/// Membership is judged on every honest client's view, not only on the first view seen
/// at an epoch: Alice holds the true list; Bob and Cathy's planted drift drops the last
/// participant (Cathy) from their own copies while Cathy's client is in the group, which
/// only their views show — the witness's last node is the client whose view holds it.
#[test]
fn membership_checks_judge_every_honest_clients_view() {
    let with = go(
        &world("full", &["client-misreads-participant-list"], "", ""),
        3,
    );
    let seen_by_others = with.violations.iter().any(|v| {
        (v.id == oracles::MEMBER_IS_PARTICIPANT || v.id == oracles::REMOVED_HAS_NO_CLIENTS)
            && v.witness.nodes.last().is_some_and(|n| !n.contains("alice"))
    });
    assert!(seen_by_others, "{:?}", with.violations);
    let without = go(&world("full", &[], "", ""), 3);
    assert_eq!(without.outcome, Outcome::Ok, "{:?}", without.violations);
}
