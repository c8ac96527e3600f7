//! Tests of the authorisation engine: one or more per action the capabilities of RP§8
//! gate (allowed and forbidden, with the exact violation), the per-commit composition
//! rules (P§7.5, P§7.6, RP§3, RP§4), role constraints (RP§3), base policy (RP§5), the
//! list ↔ membership consistency (every member's user is listed, P§1; a removed or
//! banned user keeps no client, RP§8.1.2; a user's clients are added only with or
//! after the user, P§5.3), and robustness of the dictionary decoding against
//! truncated and mutated bytes.

use super::*;
use crate::ids::{Domain, RoomUri, UserUri};
use std::collections::BTreeMap;

fn d(s: &str) -> Domain {
    Domain::new(s).unwrap()
}

/// `alice` → mimi://a.example/u/alice, `bob` → mimi://b.example/u/bob, ...
fn u(name: &str) -> UserUri {
    UserUri::new(&d(&format!("{}.example", &name[..1])), name).unwrap()
}

fn room_uri() -> RoomUri {
    RoomUri::new(&d("a.example"), "clubhouse").unwrap()
}

const HUB: &str = "a.example";

/// alice = creator (preset's creator role), bob and cathy = member role,
/// dave = admin role; alice has 2 clients, the others 1.
fn room(preset: RolePreset) -> (RoomState, Membership) {
    let member = preset.member_role();
    let mut others = vec![(u("bob"), member), (u("cathy"), member)];
    if let Some(admin) = preset.admin_role() {
        others.push((u("dave"), admin));
    }
    let st = RoomState::new_room(
        &room_uri(),
        &u("alice"),
        preset,
        NewRoomOptions {
            name: "Clubhouse".into(),
            hub: Some(d(HUB)),
            others: others.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let mut clients = BTreeMap::new();
    clients.insert(u("alice"), 2);
    for (user, _) in others {
        clients.insert(user, 1);
    }
    (st, Membership::new(clients))
}

fn coop() -> (RoomState, Membership) {
    room(RolePreset::Cooperative)
}
fn strict() -> (RoomState, Membership) {
    room(RolePreset::StrictlyAdministered)
}

#[track_caller]
fn ok(st: &RoomState, m: &Membership, actor: &Actor, c: &ProposedChange) -> AuthorizedChange {
    match authorize(st, m, actor, c) {
        Ok(a) => {
            // the authorised result equals the unauthorised application
            assert_eq!(st.apply(c).unwrap(), a.state);
            a
        }
        Err(e) => panic!("expected allowed, got: {e}"),
    }
}

#[track_caller]
fn err(st: &RoomState, m: &Membership, actor: &Actor, c: &ProposedChange) -> PolicyViolation {
    match authorize(st, m, actor, c) {
        Ok(a) => panic!("expected a violation, got allowed: {:?}", a.actions),
        Err(e) => e,
    }
}

fn missing(actor: &UserUri, capability: Capability) -> impl Fn(&PolicyViolation) -> bool + '_ {
    move |e| {
        matches!(e, PolicyViolation::MissingCapability { actor: ActorId::User(a), capability: c, .. }
            if a == actor && *c == capability)
    }
}

fn member(name: &str) -> Actor {
    Actor::member(&u(name))
}

// ---------------------------------------------------------------- add another user

#[test]
fn add_other_user_allowed_with_its_clients() {
    let (st, m) = coop();
    let c = ProposedChange::commit()
        .add_user(&u("eric"), 2)
        .add_clients(&u("eric"), 2);
    let a = ok(&st, &m, &member("bob"), &c);
    assert_eq!(
        a.actions,
        vec![Action::AddParticipant {
            user: u("eric"),
            role: 2,
            clients: 2
        }]
    );
    assert_eq!(a.state.role_of(&u("eric")), 2);
    assert_eq!(a.clients.get(&u("eric")), Some(&2));
    // an inactive participant (no KeyPackages) is fine too
    ok(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().add_user(&u("eric"), 2),
    );
}

#[test]
fn add_other_user_forbidden_cases() {
    let (st, m) = coop();
    // ordinary users may add only to role 2: (0 -> 3) missing
    let e = err(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().add_user(&u("eric"), 3),
    );
    assert_eq!(
        e,
        PolicyViolation::RoleChangeNotAuthorized {
            actor: ActorId::User(u("bob")),
            from: 0,
            to: 3
        }
    );
    // strictly administered: ordinary users lack canAddParticipant
    let (st2, m2) = strict();
    let e = err(
        &st2,
        &m2,
        &member("bob"),
        &ProposedChange::commit().add_user(&u("eric"), 2),
    );
    assert!(missing(&u("bob"), Capability::AddParticipant)(&e), "{e}");
    // already listed
    let e = err(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().add_user(&u("bob"), 2),
    );
    assert_eq!(e, PolicyViolation::AlreadyParticipant { user: u("bob") });
    // undefined role
    let e = err(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().add_user(&u("eric"), 42),
    );
    assert_eq!(e, PolicyViolation::UndefinedRole { role: 42 });
    // role 0
    let e = err(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().add_user(&u("eric"), 0),
    );
    assert_eq!(e, PolicyViolation::RoleIndexZero { user: u("eric") });
    // clients of a user who is not added (P§5.3: the user is listed before or with its clients)
    let e = err(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().add_clients(&u("eric"), 1),
    );
    assert_eq!(
        e,
        PolicyViolation::ClientsOfUnlistedUser { user: u("eric") }
    );
}

// ---------------------------------------------------------------- add self (external)

fn open_join(mut st: RoomState) -> RoomState {
    let r0 = st
        .roles
        .roles
        .iter_mut()
        .find(|r| r.role_index == 0)
        .unwrap();
    r0.role_capabilities.push(Capability::OpenJoin.code());
    r0.authorized_role_changes = vec![SingleSourceRoleChangeTargets {
        from_role_index: 0,
        target_role_indexes: vec![2],
    }];
    st.validate().unwrap();
    st
}

fn self_join(user: &str, role: u32) -> ProposedChange {
    ProposedChange::external_commit()
        .add_user(&u(user), role)
        .add_clients(&u(user), 1)
}

#[test]
fn open_join_allowed_only_to_the_open_role() {
    let (st, m) = coop();
    let st = open_join(st);
    let a = ok(&st, &m, &Actor::joiner(&u("eric")), &self_join("eric", 2));
    assert_eq!(
        a.actions,
        vec![Action::JoinSelf {
            user: u("eric"),
            role: 2,
            via: JoinPath::OpenJoin,
            clients: 1
        }]
    );
    let e = err(&st, &m, &Actor::joiner(&u("eric")), &self_join("eric", 3));
    assert_eq!(
        e,
        PolicyViolation::JoinNotAuthorized {
            user: u("eric"),
            role: 3
        }
    );
    // the cooperative room as written is not open
    let (st, m) = coop();
    let e = err(&st, &m, &Actor::joiner(&u("eric")), &self_join("eric", 2));
    assert_eq!(
        e,
        PolicyViolation::JoinNotAuthorized {
            user: u("eric"),
            role: 2
        }
    );
}

#[test]
fn preauthorized_join_takes_the_first_match_only() {
    let (mut st, m) = strict();
    let ordinary = st.role(2).unwrap().clone();
    let admin = st.role(3).unwrap().clone();
    st.preauth.preauthorized_entries.push(PreAuthRoleEntry {
        claimset: vec![Claim::basic(roles::CLAIM_DOMAIN, b"e.example")],
        target_role: ordinary,
    });
    st.preauth.preauthorized_entries.push(PreAuthRoleEntry {
        claimset: vec![Claim::basic(roles::CLAIM_USER, u("eric").as_bytes())],
        target_role: admin,
    });
    let a = ok(&st, &m, &Actor::joiner(&u("eric")), &self_join("eric", 2));
    assert!(matches!(
        a.actions[0],
        Action::JoinSelf {
            via: JoinPath::Preauthorized,
            ..
        }
    ));
    // eric also matches the admin entry, but it is not the first match
    let e = err(&st, &m, &Actor::joiner(&u("eric")), &self_join("eric", 3));
    assert_eq!(
        e,
        PolicyViolation::JoinNotAuthorized {
            user: u("eric"),
            role: 3
        }
    );
    // frank matches nothing
    let e = err(&st, &m, &Actor::joiner(&u("frank")), &self_join("frank", 2));
    assert_eq!(
        e,
        PolicyViolation::JoinNotAuthorized {
            user: u("frank"),
            role: 2
        }
    );
}

#[test]
fn join_code_join() {
    let (st, m) = strict();
    let joiner = Actor::ExternalJoiner {
        user: u("eric"),
        claims: Claim::for_user(&u("eric")),
        join_code_role: Some(2),
    };
    let a = ok(&st, &m, &joiner, &self_join("eric", 2));
    assert!(matches!(
        a.actions[0],
        Action::JoinSelf {
            via: JoinPath::JoinCode,
            ..
        }
    ));
    let e = err(&st, &m, &joiner, &self_join("eric", 3));
    assert_eq!(
        e,
        PolicyViolation::JoinNotAuthorized {
            user: u("eric"),
            role: 3
        }
    );
    // the cooperative role 0 lacks canUseJoinCode
    let (st, m) = coop();
    let e = err(&st, &m, &joiner, &self_join("eric", 2));
    assert_eq!(
        e,
        PolicyViolation::JoinNotAuthorized {
            user: u("eric"),
            role: 2
        }
    );
}

#[test]
fn external_joiner_limits() {
    let (st, m) = coop();
    let st = open_join(st);
    // not listed and not joining the list
    let c = ProposedChange::external_commit().add_clients(&u("eric"), 1);
    let e = err(&st, &m, &Actor::joiner(&u("eric")), &c);
    assert_eq!(
        e,
        PolicyViolation::ClientsOfUnlistedUser { user: u("eric") }
    );
    // acting on somebody else
    let c = self_join("eric", 2).remove_clients(&u("bob"), 1);
    let e = err(&st, &m, &Actor::joiner(&u("eric")), &c);
    assert_eq!(e, PolicyViolation::ExternalJoinerScope { user: u("eric") });
    // actor/kind mismatch both ways
    let e = err(&st, &m, &member("bob"), &ProposedChange::external_commit());
    assert_eq!(e, PolicyViolation::ExternalJoinMismatch);
    let e = err(
        &st,
        &m,
        &Actor::joiner(&u("bob")),
        &ProposedChange::commit(),
    );
    assert_eq!(e, PolicyViolation::ExternalJoinMismatch);
}

// ---------------------------------------------------------------- add own client

#[test]
fn add_own_client_by_member_and_by_external_commit() {
    let (st, m) = coop();
    let a = ok(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().add_clients(&u("bob"), 1),
    );
    assert_eq!(
        a.actions,
        vec![Action::AddOwnClients {
            user: u("bob"),
            count: 1
        }]
    );
    let c = ProposedChange::external_commit().add_clients(&u("bob"), 1);
    let a = ok(&st, &m, &Actor::joiner(&u("bob")), &c);
    assert_eq!(
        a.actions,
        vec![Action::AddOwnClients {
            user: u("bob"),
            count: 1
        }]
    );
    assert_eq!(a.clients.get(&u("bob")), Some(&2));
}

#[test]
fn add_own_client_forbidden_without_capability() {
    // moderated room: guests (role 2) lack canAddOwnClient
    let (st, m) = room(RolePreset::Moderated);
    let mut st = st;
    st.participants.push(Participant {
        user: u("eric"),
        role: 2,
    });
    let c = ProposedChange::external_commit().add_clients(&u("eric"), 1);
    let e = err(&st, &m, &Actor::joiner(&u("eric")), &c);
    assert!(missing(&u("eric"), Capability::AddOwnClient)(&e), "{e}");
}

#[test]
fn banned_user_cannot_rejoin_even_if_preauthorized() {
    let (mut st, m) = strict();
    let ordinary = st.role(2).unwrap().clone();
    st.preauth.preauthorized_entries.push(PreAuthRoleEntry {
        claimset: vec![Claim::basic(roles::CLAIM_DOMAIN, b"e.example")],
        target_role: ordinary,
    });
    st.participants.push(Participant {
        user: u("eric"),
        role: 1,
    });
    let c = ProposedChange::external_commit().add_clients(&u("eric"), 1);
    let e = err(&st, &m, &Actor::joiner(&u("eric")), &c);
    assert!(missing(&u("eric"), Capability::AddOwnClient)(&e), "{e}");
    // and cannot re-add itself to the list either
    let e = err(&st, &m, &Actor::joiner(&u("eric")), &self_join("eric", 2));
    assert_eq!(e, PolicyViolation::AlreadyParticipant { user: u("eric") });
}

// ---------------------------------------------------------------- remove another user

#[test]
fn remove_other_user_with_all_clients() {
    let (st, m) = coop();
    let c = ProposedChange::commit()
        .remove_user(&u("bob"))
        .remove_clients(&u("bob"), 1);
    let a = ok(&st, &m, &member("alice"), &c);
    assert_eq!(
        a.actions,
        vec![Action::RemoveParticipant {
            user: u("bob"),
            from_role: 2,
            clients: 1
        }]
    );
    assert!(!a.state.is_participant(&u("bob")));
    assert_eq!(a.removed_or_banned_users(), vec![u("bob")]);
}

#[test]
fn remove_other_user_forbidden_cases() {
    let (st, m) = coop();
    // ordinary user may remove role 2 only, not the admin (3 -> 0 missing)
    let c = ProposedChange::commit()
        .remove_user(&u("dave"))
        .remove_clients(&u("dave"), 1);
    let e = err(&st, &m, &member("bob"), &c);
    assert_eq!(
        e,
        PolicyViolation::RoleChangeNotAuthorized {
            actor: ActorId::User(u("bob")),
            from: 3,
            to: 0
        }
    );
    // clients left behind (RP§8.1.2: no client of a removed user stays after the commit)
    let c = ProposedChange::commit().remove_user(&u("bob"));
    let e = err(&st, &m, &member("alice"), &c);
    assert_eq!(
        e,
        PolicyViolation::RemovedUserKeepsClients {
            user: u("bob"),
            remaining: 1
        }
    );
    // strictly administered: ordinary users lack canRemoveParticipant
    let (st, m) = strict();
    let c = ProposedChange::commit()
        .remove_user(&u("cathy"))
        .remove_clients(&u("cathy"), 1);
    let e = err(&st, &m, &member("bob"), &c);
    assert!(missing(&u("bob"), Capability::RemoveParticipant)(&e), "{e}");
    // removing a user who is not listed
    let c = ProposedChange::commit().remove_user(&u("eric"));
    let e = err(&st, &m, &member("alice"), &c);
    assert_eq!(e, PolicyViolation::NotParticipant { user: u("eric") });
    // removing more clients than exist
    let c = ProposedChange::commit()
        .remove_user(&u("bob"))
        .remove_clients(&u("bob"), 2);
    let e = err(&st, &m, &member("alice"), &c);
    assert_eq!(
        e,
        PolicyViolation::ClientCountUnderflow {
            user: u("bob"),
            removed: 2,
            present: 1
        }
    );
}

// ---------------------------------------------------------------- leave

#[test]
fn leave_is_a_proposal_bundle_removing_all_own_clients() {
    let (st, m) = coop();
    let c = ProposedChange::proposals()
        .remove_user(&u("alice"))
        .remove_clients(&u("alice"), 2);
    let a = ok(&st, &m, &member("alice"), &c);
    assert_eq!(
        a.actions,
        vec![Action::Leave {
            user: u("alice"),
            from_role: 4,
            clients: 2
        }]
    );
    assert!(!a.clients.contains_key(&u("alice")));
}

#[test]
fn leave_forbidden_cases() {
    let (st, m) = coop();
    // cannot be committed by the leaver
    let c = ProposedChange::commit()
        .remove_user(&u("bob"))
        .remove_clients(&u("bob"), 1);
    let e = err(&st, &m, &member("bob"), &c);
    assert_eq!(e, PolicyViolation::LeaverCannotCommit { user: u("bob") });
    // must remove all own clients
    let c = ProposedChange::proposals()
        .remove_user(&u("alice"))
        .remove_clients(&u("alice"), 1);
    let e = err(&st, &m, &member("alice"), &c);
    assert_eq!(
        e,
        PolicyViolation::RemovedUserKeepsClients {
            user: u("alice"),
            remaining: 1
        }
    );
    // the only group_admin (min 1) cannot leave
    let c = ProposedChange::proposals()
        .remove_user(&u("dave"))
        .remove_clients(&u("dave"), 1);
    let e = err(&st, &m, &member("dave"), &c);
    assert_eq!(
        e,
        PolicyViolation::MinParticipants {
            role: 3,
            min: 1,
            count: 0
        }
    );
    // a role without canRemoveSelf
    let (mut st, m) = coop();
    st.roles
        .roles
        .iter_mut()
        .find(|r| r.role_index == 2)
        .unwrap()
        .role_capabilities
        .retain(|c| *c != Capability::RemoveSelf.code());
    let c = ProposedChange::proposals()
        .remove_user(&u("bob"))
        .remove_clients(&u("bob"), 1);
    let e = err(&st, &m, &member("bob"), &c);
    assert!(missing(&u("bob"), Capability::RemoveSelf)(&e), "{e}");
}

// ---------------------------------------------------------------- remove own client only

#[test]
fn remove_own_client() {
    let (st, m) = coop();
    let c = ProposedChange::proposals().remove_clients(&u("alice"), 1);
    let a = ok(&st, &m, &member("alice"), &c);
    assert_eq!(
        a.actions,
        vec![Action::RemoveOwnClients {
            user: u("alice"),
            count: 1
        }]
    );
    assert!(a.state.is_participant(&u("alice")), "the list is unchanged");
    // a role without canRemoveOwnClient (moderated guest)
    let (mut st, mut m) = room(RolePreset::Moderated);
    st.participants.push(Participant {
        user: u("eric"),
        role: 2,
    });
    m.clients.insert(u("eric"), 1);
    let e = err(
        &st,
        &m,
        &member("eric"),
        &ProposedChange::proposals().remove_clients(&u("eric"), 1),
    );
    assert!(missing(&u("eric"), Capability::RemoveOwnClient)(&e), "{e}");
}

// ---------------------------------------------------------------- kick

#[test]
fn kick_leaves_an_inactive_participant() {
    let (st, m) = coop();
    let c = ProposedChange::commit().remove_clients(&u("bob"), 1);
    let a = ok(&st, &m, &member("dave"), &c);
    assert_eq!(
        a.actions,
        vec![Action::Kick {
            user: u("bob"),
            count: 1
        }]
    );
    assert!(a.state.is_participant(&u("bob")));
    assert!(!a.clients.contains_key(&u("bob")));
    // ordinary users cannot kick
    let e = err(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().remove_clients(&u("cathy"), 1),
    );
    assert!(missing(&u("bob"), Capability::Kick)(&e), "{e}");
}

#[test]
fn kick_respects_minimum_active_participants() {
    let (mut st, m) = coop();
    st.roles
        .roles
        .iter_mut()
        .find(|r| r.role_index == 2)
        .unwrap()
        .minimum_active_participants_constraint = 2;
    let e = err(
        &st,
        &m,
        &member("dave"),
        &ProposedChange::commit().remove_clients(&u("bob"), 1),
    );
    assert_eq!(
        e,
        PolicyViolation::MinActiveParticipants {
            role: 2,
            min: 2,
            count: 1
        }
    );
}

// ---------------------------------------------------------------- role changes

#[test]
fn change_other_users_role() {
    let (st, m) = coop();
    let a = ok(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().set_role(&u("bob"), 3),
    );
    assert_eq!(
        a.actions,
        vec![Action::ChangeRole {
            user: u("bob"),
            from: 2,
            to: 3
        }]
    );
    // group_admin cannot promote to super_admin: (2 -> 4) missing
    let e = err(
        &st,
        &m,
        &member("dave"),
        &ProposedChange::commit().set_role(&u("bob"), 4),
    );
    assert_eq!(
        e,
        PolicyViolation::RoleChangeNotAuthorized {
            actor: ActorId::User(u("dave")),
            from: 2,
            to: 4
        }
    );
    let e = err(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().set_role(&u("cathy"), 3),
    );
    assert!(missing(&u("bob"), Capability::ChangeUserRole)(&e), "{e}");
    // a role change to 0 is a removal, not a role change
    let e = err(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().set_role(&u("bob"), 0),
    );
    assert_eq!(e, PolicyViolation::RoleIndexZero { user: u("bob") });
    // demoting the only group_admin breaks its minimum
    let e = err(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().set_role(&u("dave"), 2),
    );
    assert_eq!(
        e,
        PolicyViolation::MinParticipants {
            role: 3,
            min: 1,
            count: 0
        }
    );
}

#[test]
fn change_own_role_via_preauth() {
    let (mut st, m) = strict();
    let admin = st.role(3).unwrap().clone();
    st.preauth.preauthorized_entries.push(PreAuthRoleEntry {
        claimset: vec![Claim::basic(roles::CLAIM_DOMAIN, b"b.example")],
        target_role: admin,
    });
    let a = ok(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().set_role(&u("bob"), 3),
    );
    assert_eq!(
        a.actions,
        vec![Action::ChangeOwnRole {
            user: u("bob"),
            from: 2,
            to: 3
        }]
    );
    let e = err(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().set_role(&u("bob"), 4),
    );
    assert_eq!(
        e,
        PolicyViolation::OwnRoleNotPreauthorized {
            user: u("bob"),
            requested: 4,
            preauthorized: Some(3)
        }
    );
    // cathy matches no entry
    let e = err(
        &st,
        &m,
        &member("cathy"),
        &ProposedChange::commit().set_role(&u("cathy"), 3),
    );
    assert!(matches!(
        e,
        PolicyViolation::OwnRoleNotPreauthorized {
            preauthorized: None,
            ..
        }
    ));
    // cooperative ordinary users lack canChangeOwnRole
    let (st, m) = coop();
    let e = err(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().set_role(&u("bob"), 3),
    );
    assert!(missing(&u("bob"), Capability::ChangeOwnRole)(&e), "{e}");
}

// ---------------------------------------------------------------- ban / unban

#[test]
fn ban_sets_role_1_and_removes_all_clients() {
    let (st, m) = coop();
    let c = ProposedChange::commit()
        .set_role(&u("bob"), 1)
        .remove_clients(&u("bob"), 1);
    let a = ok(&st, &m, &member("dave"), &c);
    assert_eq!(
        a.actions,
        vec![Action::Ban {
            user: u("bob"),
            from: 2,
            clients: 1
        }]
    );
    assert!(a.state.is_banned(&u("bob")));
    assert!(!a.state.can_send_message(&u("bob")));
    assert_eq!(a.removed_or_banned_users(), vec![u("bob")]);
}

#[test]
fn ban_forbidden_cases() {
    let (st, m) = coop();
    let e = err(
        &st,
        &m,
        &member("dave"),
        &ProposedChange::commit().set_role(&u("bob"), 1),
    );
    assert_eq!(
        e,
        PolicyViolation::BannedUserHasClients {
            user: u("bob"),
            clients: 1
        }
    );
    let c = ProposedChange::commit()
        .set_role(&u("cathy"), 1)
        .remove_clients(&u("cathy"), 1);
    let e = err(&st, &m, &member("bob"), &c);
    assert!(missing(&u("bob"), Capability::Ban)(&e), "{e}");
    // canChangeUserRole is not enough to ban
    let (mut st, m) = coop();
    st.roles
        .roles
        .iter_mut()
        .find(|r| r.role_index == 3)
        .unwrap()
        .role_capabilities
        .retain(|c| *c != Capability::Ban.code());
    let c = ProposedChange::commit()
        .set_role(&u("bob"), 1)
        .remove_clients(&u("bob"), 1);
    let e = err(&st, &m, &member("dave"), &c);
    assert!(missing(&u("dave"), Capability::Ban)(&e), "{e}");
}

#[test]
fn role_1_not_named_banned_is_an_ordinary_role() {
    let (mut st, m) = coop();
    st.roles
        .roles
        .iter_mut()
        .find(|r| r.role_index == 1)
        .unwrap()
        .role_name = "muted".into();
    st.roles
        .roles
        .iter_mut()
        .find(|r| r.role_index == 1)
        .unwrap()
        .maximum_active_participants_constraint = None;
    let a = ok(
        &st,
        &m,
        &member("dave"),
        &ProposedChange::commit().set_role(&u("bob"), 1),
    );
    assert_eq!(
        a.actions,
        vec![Action::ChangeRole {
            user: u("bob"),
            from: 2,
            to: 1
        }]
    );
}

fn with_banned_cathy() -> (RoomState, Membership) {
    let (st, m) = coop();
    let c = ProposedChange::commit()
        .set_role(&u("cathy"), 1)
        .remove_clients(&u("cathy"), 1);
    let a = authorize(&st, &m, &member("dave"), &c).unwrap();
    (a.state, Membership::new(a.clients))
}

#[test]
fn unban() {
    let (st, m) = with_banned_cathy();
    let a = ok(
        &st,
        &m,
        &member("dave"),
        &ProposedChange::commit().set_role(&u("cathy"), 2),
    );
    assert_eq!(
        a.actions,
        vec![Action::Unban {
            user: u("cathy"),
            to: 2
        }]
    );
    let e = err(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().set_role(&u("cathy"), 2),
    );
    assert!(missing(&u("bob"), Capability::UnBan)(&e), "{e}");
    // unban does not authorise adding the user's clients (RP§8.1.3)
    let c = ProposedChange::commit()
        .set_role(&u("cathy"), 2)
        .add_clients(&u("cathy"), 1);
    let e = err(&st, &m, &member("dave"), &c);
    assert_eq!(
        e,
        PolicyViolation::AddClientsOfListedUser {
            actor: ActorId::User(u("dave")),
            user: u("cathy")
        }
    );
    // the unbanned user then re-adds its own client
    let st2 = st
        .apply(&ProposedChange::commit().set_role(&u("cathy"), 2))
        .unwrap();
    let c = ProposedChange::external_commit().add_clients(&u("cathy"), 1);
    ok(&st2, &m, &Actor::joiner(&u("cathy")), &c);
}

// ---------------------------------------------------------------- gap choice

#[test]
fn clients_of_listed_user_only_by_the_user_or_while_its_addition_is_pending() {
    let (st, m) = coop();
    // kick bob, then dave tries to re-add bob's client
    let kicked = authorize(
        &st,
        &m,
        &member("dave"),
        &ProposedChange::commit().remove_clients(&u("bob"), 1),
    )
    .unwrap();
    let m2 = Membership::new(kicked.clients.clone());
    let e = err(
        &kicked.state,
        &m2,
        &member("dave"),
        &ProposedChange::commit().add_clients(&u("bob"), 1),
    );
    assert_eq!(
        e,
        PolicyViolation::AddClientsOfListedUser {
            actor: ActorId::User(u("dave")),
            user: u("bob")
        }
    );
    // bob rejoins by external commit (canAddOwnClient)
    ok(
        &kicked.state,
        &m2,
        &Actor::joiner(&u("bob")),
        &ProposedChange::external_commit().add_clients(&u("bob"), 1),
    );

    // P§5.3 "before": eric's list addition accepted as a proposal, Adds committed later
    let proposal = ProposedChange::proposals().add_user(&u("eric"), 2);
    let accepted = ok(&st, &m, &member("bob"), &proposal);
    let mut pending = m.clone();
    pending.pending_added.insert(u("eric"));
    let c = ProposedChange::commit().add_clients(&u("eric"), 1);
    let a = ok(&accepted.state, &pending, &member("bob"), &c);
    assert_eq!(
        a.actions,
        vec![Action::AddClientsOfAddedUser {
            user: u("eric"),
            count: 1
        }]
    );
    // ...but not by someone who could not have added eric with that role
    let (st2, m2) = strict();
    let accepted = ok(&st2, &m2, &member("dave"), &proposal);
    let mut pending = m2.clone();
    pending.pending_added.insert(u("eric"));
    let e = err(&accepted.state, &pending, &member("bob"), &c);
    assert!(missing(&u("bob"), Capability::AddParticipant)(&e), "{e}");
}

// ---------------------------------------------------------------- metadata

#[test]
fn metadata_fields_need_their_own_capability() {
    let (st, m) = coop();
    let mut md = st.metadata.clone();
    md.room_name = "Renamed".into();
    md.room_mood = "sunny".into();
    let a = ok(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().with_metadata(md.clone()),
    );
    assert_eq!(
        a.actions,
        vec![Action::ChangeMetadata {
            fields: vec![MetadataField::Name, MetadataField::Mood]
        }]
    );
    assert_eq!(a.state.metadata, md);
    // descriptions need canChangeRoomDescription (admins only in A.1)
    let mut md2 = st.metadata.clone();
    md2.room_descriptions.push(RichDescription {
        description_content: "about".into(),
        ..Default::default()
    });
    let e = err(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().with_metadata(md2.clone()),
    );
    assert!(
        missing(&u("bob"), Capability::ChangeRoomDescription)(&e),
        "{e}"
    );
    ok(
        &st,
        &m,
        &member("dave"),
        &ProposedChange::commit().with_metadata(md2),
    );
    // unchanged metadata needs nothing
    let a = ok(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().with_metadata(st.metadata.clone()),
    );
    assert!(a.actions.is_empty());
    // room_uri is immutable
    let mut md3 = st.metadata.clone();
    md3.room_uri = codec::Uri::from("mimi://a.example/r/other");
    let e = err(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().with_metadata(md3),
    );
    assert_eq!(e, PolicyViolation::RoomUriChanged);
    // P§7.6: one metadata update per commit
    let c = ProposedChange::commit()
        .with_metadata(md.clone())
        .with_metadata(md);
    assert_eq!(
        err(&st, &m, &member("alice"), &c),
        PolicyViolation::MultipleMetadataUpdates
    );
}

// ---------------------------------------------------------------- disruptive changes

#[test]
fn policy_components_need_disruptive_capabilities() {
    let (st, m) = strict();
    let mut roles = st.roles.clone();
    roles
        .roles
        .iter_mut()
        .find(|r| r.role_index == 2)
        .unwrap()
        .role_description = "renamed".into();
    let a = ok(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().with_roles(roles.clone()),
    );
    assert_eq!(a.actions, vec![Action::ChangeRoles]);
    let e = err(
        &st,
        &m,
        &member("dave"),
        &ProposedChange::commit().with_roles(roles),
    );
    assert!(
        missing(&u("dave"), Capability::ChangeRoleDefinitions)(&e),
        "{e}"
    );

    let a = ok(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().with_preauth(PreAuthData::default()),
    );
    assert_eq!(a.actions, vec![Action::ChangePreauth]);
    let e = err(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().with_preauth(PreAuthData::default()),
    );
    assert!(
        missing(&u("bob"), Capability::ChangePreauthorizedUserList)(&e),
        "{e}"
    );

    let mut base = st.base_policy.clone();
    base.discoverable = true;
    let a = ok(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().with_base_policy(base.clone()),
    );
    assert_eq!(a.actions, vec![Action::ChangeBasePolicy]);
    let e = err(
        &st,
        &m,
        &member("dave"),
        &ProposedChange::commit().with_base_policy(base),
    );
    assert!(
        missing(&u("dave"), Capability::ChangeRoomMembershipStyle)(&e),
        "{e}"
    );

    let a = ok(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().with_reinit(),
    );
    assert_eq!(a.actions, vec![Action::ReInit]);
    let e = err(
        &st,
        &m,
        &member("dave"),
        &ProposedChange::commit().with_reinit(),
    );
    assert!(
        missing(&u("dave"), Capability::SendMlsReinitProposal)(&e),
        "{e}"
    );
}

#[test]
fn invalid_role_definitions_are_rejected() {
    let (st, m) = strict();
    // dropping a role still held by a participant
    let mut roles = st.roles.clone();
    roles.roles.retain(|r| r.role_index != 3);
    let e = err(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().with_roles(roles),
    );
    assert_eq!(e, PolicyViolation::UndefinedRole { role: 3 });
    // canOpenJoin on a non-zero role
    let mut roles = st.roles.clone();
    roles
        .roles
        .iter_mut()
        .find(|r| r.role_index == 2)
        .unwrap()
        .role_capabilities
        .push(Capability::OpenJoin.code());
    let e = err(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().with_roles(roles),
    );
    assert_eq!(e, PolicyViolation::OpenJoinOnNonZeroRole { role: 2 });
    // a duplicate index
    let mut roles = st.roles.clone();
    let dup = roles.roles[2].clone();
    roles.roles.push(dup);
    let e = err(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().with_roles(roles),
    );
    assert_eq!(e, PolicyViolation::DuplicateRoleIndex { role: 2 });
    // new bounds must hold outright: at most 1 ordinary user while there are 2
    let mut roles = st.roles.clone();
    roles
        .roles
        .iter_mut()
        .find(|r| r.role_index == 2)
        .unwrap()
        .maximum_participants_constraint = Some(1);
    let e = err(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().with_roles(roles),
    );
    assert_eq!(
        e,
        PolicyViolation::MaxParticipants {
            role: 2,
            max: 1,
            count: 2
        }
    );
}

// ---------------------------------------------------------------- composition (rule 6)

#[test]
fn composition_rules() {
    let (st, m) = strict();
    let c = ProposedChange::commit()
        .with_roles(st.roles.clone())
        .add_user(&u("eric"), 2);
    assert_eq!(
        err(&st, &m, &member("alice"), &c),
        PolicyViolation::RolesChangedWithParticipantList
    );
    let c = ProposedChange::commit()
        .with_preauth(PreAuthData::default())
        .add_user(&u("eric"), 2);
    assert_eq!(
        err(&st, &m, &member("alice"), &c),
        PolicyViolation::PreauthChangedWithParticipantList
    );
    let c = ProposedChange::commit()
        .with_preauth(PreAuthData::default())
        .set_role(&u("bob"), 3);
    assert_eq!(
        err(&st, &m, &member("alice"), &c),
        PolicyViolation::PreauthChangedWithParticipantList
    );
    // with removals only, a preauth update is fine
    let c = ProposedChange::commit()
        .with_preauth(PreAuthData::default())
        .remove_user(&u("bob"))
        .remove_clients(&u("bob"), 1);
    let a = ok(&st, &m, &member("alice"), &c);
    assert!(a.actions.contains(&Action::ChangePreauth));
    // a user touched twice within one change
    let c = ProposedChange::commit()
        .set_role(&u("bob"), 3)
        .remove_user(&u("bob"));
    assert_eq!(
        err(&st, &m, &member("alice"), &c),
        PolicyViolation::UserTouchedTwice { user: u("bob") }
    );
    // ... and across the parts of one commit
    let leave = ProposedChange::proposals()
        .remove_user(&u("bob"))
        .remove_clients(&u("bob"), 1);
    let inline = ProposedChange::commit().set_role(&u("bob"), 3);
    assert_eq!(
        check_commit_composition(&[&leave, &inline]),
        Err(PolicyViolation::UserTouchedTwice { user: u("bob") })
    );
    let other = ProposedChange::commit().set_role(&u("cathy"), 3);
    assert_eq!(check_commit_composition(&[&leave, &other]), Ok(()));
    let md = ProposedChange::commit().with_metadata(st.metadata.clone());
    assert_eq!(
        check_commit_composition(&[&md, &md]),
        Err(PolicyViolation::MultipleMetadataUpdates)
    );
    let b = ProposedChange::commit().with_base_policy(st.base_policy.clone());
    assert_eq!(
        check_commit_composition(&[&b, &b]),
        Err(PolicyViolation::DuplicatePolicyUpdate {
            component: "base_room_policy"
        })
    );
}

// ---------------------------------------------------------------- base policy (RP§5)

#[test]
fn multi_device_false_allows_one_client_per_user() {
    let (mut st, m) = coop();
    st.base_policy.multi_device = false;
    let e = err(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().add_clients(&u("bob"), 1),
    );
    assert_eq!(
        e,
        PolicyViolation::MultiDeviceForbidden {
            user: u("bob"),
            clients: 2
        }
    );
    let c = ProposedChange::commit()
        .add_user(&u("eric"), 2)
        .add_clients(&u("eric"), 2);
    let e = err(&st, &m, &member("bob"), &c);
    assert_eq!(
        e,
        PolicyViolation::MultiDeviceForbidden {
            user: u("eric"),
            clients: 2
        }
    );
    ok(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit()
            .add_user(&u("eric"), 2)
            .add_clients(&u("eric"), 1),
    );
    // switching multi_device off while alice has 2 clients is rejected
    let (st, m) = strict();
    let mut base = st.base_policy.clone();
    base.multi_device = false;
    let e = err(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().with_base_policy(base),
    );
    assert_eq!(
        e,
        PolicyViolation::MultiDeviceForbidden {
            user: u("alice"),
            clients: 2
        }
    );
}

#[test]
fn max_clients_and_max_users() {
    let (mut st, m) = coop(); // 5 clients, 4 users
    st.base_policy.max_clients = Some(5);
    let e = err(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().add_clients(&u("bob"), 1),
    );
    assert_eq!(e, PolicyViolation::MaxClients { max: 5, clients: 6 });
    // replacing a client keeps the count
    let c = ProposedChange::commit()
        .add_clients(&u("alice"), 1)
        .remove_clients(&u("alice"), 1);
    ok(&st, &m, &member("alice"), &c);

    let (mut st, m) = coop();
    st.base_policy.max_users = Some(4);
    let e = err(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().add_user(&u("eric"), 2),
    );
    assert_eq!(e, PolicyViolation::MaxUsers { max: 4, users: 5 });
    // banned entries do not count: ban cathy, then eric fits
    let c = ProposedChange::commit()
        .set_role(&u("cathy"), 1)
        .remove_clients(&u("cathy"), 1);
    let banned = ok(&st, &m, &member("dave"), &c);
    let m2 = Membership::new(banned.clients.clone());
    ok(
        &banned.state,
        &m2,
        &member("bob"),
        &ProposedChange::commit().add_user(&u("eric"), 2),
    );
}

fn dm() -> (RoomState, Membership) {
    let st = RoomState::new_room(
        &room_uri(),
        &u("alice"),
        RolePreset::DirectMessage,
        NewRoomOptions {
            hub: Some(d(HUB)),
            others: vec![(u("bob"), 2)],
            ..Default::default()
        },
    )
    .unwrap();
    let mut clients = BTreeMap::new();
    clients.insert(u("alice"), 1);
    clients.insert(u("bob"), 1);
    (st, Membership::new(clients))
}

#[test]
fn fixed_membership_room() {
    let (st, m) = dm();
    assert!(st.base_policy.fixed_membership);
    let e = err(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().add_user(&u("eric"), 2),
    );
    assert_eq!(e, PolicyViolation::FixedMembership { user: u("eric") });
    let c = ProposedChange::proposals()
        .remove_user(&u("bob"))
        .remove_clients(&u("bob"), 1);
    let e = err(&st, &m, &member("bob"), &c);
    assert_eq!(e, PolicyViolation::FixedMembership { user: u("bob") });
    // even the policy enforcer cannot remove users
    let c = ProposedChange::proposals()
        .remove_user(&u("bob"))
        .remove_clients(&u("bob"), 1);
    let e = err(&st, &m, &Actor::server(&d(HUB)), &c);
    assert_eq!(e, PolicyViolation::FixedMembership { user: u("bob") });
    // but users may manage their own clients
    ok(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().add_clients(&u("bob"), 1),
    );
    ok(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::proposals().remove_clients(&u("bob"), 1),
    );
    // and a fixed room cannot have a role with canAddParticipant
    let e = RoomState::new_room(
        &room_uri(),
        &u("alice"),
        RolePreset::Cooperative,
        NewRoomOptions {
            base_policy: Some(BaseRoomPolicy {
                fixed_membership: true,
                ..BaseRoomPolicy::default()
            }),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e, PolicyViolation::FixedMembershipAllowsAdd { role: 2 });
}

// ---------------------------------------------------------------- role constraints (rule 7)

#[test]
fn maximum_constraints_on_the_target_role() {
    let (mut st, m) = coop();
    st.roles
        .roles
        .iter_mut()
        .find(|r| r.role_index == 2)
        .unwrap()
        .maximum_participants_constraint = Some(2);
    let e = err(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().add_user(&u("eric"), 2),
    );
    assert_eq!(
        e,
        PolicyViolation::MaxParticipants {
            role: 2,
            max: 2,
            count: 3
        }
    );
    // role change into the full role
    let e = err(
        &st,
        &m,
        &member("alice"),
        &ProposedChange::commit().set_role(&u("dave"), 2),
    );
    // roles are checked in index order: role 2's maximum before role 3's minimum
    assert_eq!(
        e,
        PolicyViolation::MaxParticipants {
            role: 2,
            max: 2,
            count: 3
        }
    );

    let (mut st, m) = coop();
    st.roles
        .roles
        .iter_mut()
        .find(|r| r.role_index == 2)
        .unwrap()
        .maximum_active_participants_constraint = Some(2);
    // an inactive participant is fine, an active one is not
    ok(
        &st,
        &m,
        &member("bob"),
        &ProposedChange::commit().add_user(&u("eric"), 2),
    );
    let c = ProposedChange::commit()
        .add_user(&u("eric"), 2)
        .add_clients(&u("eric"), 1);
    let e = err(&st, &m, &member("bob"), &c);
    assert_eq!(
        e,
        PolicyViolation::MaxActiveParticipants {
            role: 2,
            max: 2,
            count: 3
        }
    );
}

// ---------------------------------------------------------------- hub and followers

#[test]
fn hub_acts_as_policy_enforcer_through_preauth() {
    let (st, m) = coop();
    let hub = Actor::server(&d(HUB));
    let c = ProposedChange::proposals()
        .remove_user(&u("bob"))
        .remove_clients(&u("bob"), 1);
    let a = ok(&st, &m, &hub, &c);
    assert_eq!(
        a.actions,
        vec![Action::RemoveParticipant {
            user: u("bob"),
            from_role: 2,
            clients: 1
        }]
    );
    // ban is allowed, adding users is not
    ok(
        &st,
        &m,
        &hub,
        &ProposedChange::proposals()
            .set_role(&u("bob"), 1)
            .remove_clients(&u("bob"), 1),
    );
    let e = err(
        &st,
        &m,
        &hub,
        &ProposedChange::proposals().add_user(&u("eric"), 2),
    );
    assert!(matches!(
        e,
        PolicyViolation::MissingCapability {
            actor: ActorId::Server(_),
            capability: Capability::AddParticipant,
            ..
        }
    ));
    // lost client of a participant (P§5.5): the enforcer may kick
    let a = ok(
        &st,
        &m,
        &hub,
        &ProposedChange::proposals().remove_clients(&u("alice"), 1),
    );
    assert_eq!(
        a.actions,
        vec![Action::Kick {
            user: u("alice"),
            count: 1
        }]
    );
    // a follower without a preauth entry has role 0: nothing but cleanup
    let follower = Actor::server(&d("b.example"));
    let e = err(
        &st,
        &m,
        &follower,
        &ProposedChange::proposals().remove_clients(&u("bob"), 1),
    );
    assert!(matches!(
        e,
        PolicyViolation::MissingCapability {
            capability: Capability::Kick,
            ..
        }
    ));
}

#[test]
fn clients_of_non_participants_can_always_be_removed() {
    let (st, m) = coop();
    // the hub state already has bob removed (accepted proposal), his client lingers
    let st2 = st
        .apply(&ProposedChange::proposals().remove_user(&u("bob")))
        .unwrap();
    let c = ProposedChange::proposals().remove_clients(&u("bob"), 1);
    for actor in [
        member("bob"),
        member("cathy"),
        Actor::server(&d("b.example")),
    ] {
        let a = ok(&st2, &m, &actor, &c);
        assert_eq!(
            a.actions,
            vec![Action::RemoveClientsOfNonParticipant {
                user: u("bob"),
                count: 1
            }]
        );
    }
    // the unlisted member can do nothing else
    let mut md = st2.metadata.clone();
    md.room_name = "x".into();
    let e = err(
        &st2,
        &m,
        &member("bob"),
        &ProposedChange::commit().with_metadata(md),
    );
    assert_eq!(e, PolicyViolation::ActorNotParticipant { user: u("bob") });
}

// ---------------------------------------------------------------- P§4.3.2 through the engine

#[test]
fn notional_example_authorised_as_one_commit() {
    let (st, m) = coop();
    // alice (super_admin) adds diana as 4 and eric as 3, removes bob, bans cathy
    let c = ProposedChange::commit()
        .set_role(&u("cathy"), 1)
        .remove_user(&u("bob"))
        .add_user(&u("diana"), 4)
        .add_user(&u("eric"), 3)
        .remove_clients(&u("bob"), 1)
        .remove_clients(&u("cathy"), 1)
        .add_clients(&u("diana"), 1);
    let a = ok(&st, &m, &member("alice"), &c);
    assert_eq!(
        a.actions,
        vec![
            Action::Ban {
                user: u("cathy"),
                from: 2,
                clients: 1
            },
            Action::RemoveParticipant {
                user: u("bob"),
                from_role: 2,
                clients: 1
            },
            Action::AddParticipant {
                user: u("diana"),
                role: 4,
                clients: 1
            },
            Action::AddParticipant {
                user: u("eric"),
                role: 3,
                clients: 0
            },
        ]
    );
    let order: Vec<(UserUri, u32)> = a
        .state
        .participants
        .iter()
        .map(|p| (p.user.clone(), p.role))
        .collect();
    assert_eq!(
        order,
        vec![
            (u("alice"), 4),
            (u("cathy"), 1),
            (u("dave"), 3),
            (u("diana"), 4),
            (u("eric"), 3)
        ]
    );
    // the same change arriving as AppDataUpdate bytes gives the same ProposedChange
    let update = c.list.to_update(&st.participants).unwrap();
    let from_wire = ProposedChange::commit()
        .with_app_data_updates(
            &st.participants,
            &[(
                PARTICIPANT_LIST,
                ComponentOp::Update(update.encode().unwrap()),
            )],
        )
        .unwrap();
    assert_eq!(from_wire.list, c.list);
    // a group_admin may not add a super_admin
    let e = err(&st, &m, &member("dave"), &c);
    assert_eq!(
        e,
        PolicyViolation::RoleChangeNotAuthorized {
            actor: ActorId::User(u("dave")),
            from: 0,
            to: 4
        }
    );
}

// ---------------------------------------------------------------- queries

#[test]
fn queries() {
    let (st, _) = room(RolePreset::Moderated);
    assert_eq!(st.role_of(&u("alice")), 6);
    assert_eq!(st.role_of(&u("eric")), 0);
    assert!(st.is_participant(&u("bob")) && !st.is_participant(&u("eric")));
    assert!(
        st.can_send_message(&u("bob")),
        "bob is a speaker (member role)"
    );
    assert!(st.capabilities_of(&u("dave")).contains(&Capability::Ban));
    assert!(!st.can_send_message(&u("eric")));
    let mut st = st;
    st.participants.push(Participant {
        user: u("eric"),
        role: 2,
    });
    assert!(!st.can_send_message(&u("eric")), "guests cannot speak");
    assert!(st.can_receive_message(&u("eric")));
    assert_eq!(st.index_of(&u("eric")), Some(4));
    assert_eq!(
        st.participant_domains()
            .into_iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>(),
        vec![
            "a.example",
            "b.example",
            "c.example",
            "d.example",
            "e.example"
        ]
    );
}

// ---------------------------------------------------------------- dictionary

#[test]
fn dictionary_round_trip_for_every_preset() {
    for preset in RolePreset::ALL {
        let (st, _) = room(preset);
        let dict = st.to_dictionary();
        assert_eq!(
            dict.keys().copied().collect::<Vec<_>>(),
            codec::ROOM_COMPONENTS.to_vec()
        );
        assert_eq!(RoomState::from_dictionary(&dict).unwrap(), st, "{preset:?}");
        // other components are ignored
        let mut more = dict.clone();
        more.insert(codec::FRANKING_SIGNATURE_KEY, vec![1, 2, 3]);
        assert_eq!(RoomState::from_dictionary(&more).unwrap(), st);
        for id in codec::ROOM_COMPONENTS {
            let mut less = dict.clone();
            less.remove(&id);
            assert!(matches!(
                RoomState::from_dictionary(&less),
                Err(ComponentError::Missing { id: i, .. }) if i == id
            ));
        }
    }
}

#[test]
fn dictionary_rejects_bad_participants() {
    let (st, _) = coop();
    let mut dict = st.to_dictionary();
    let mut list = participants::participants_to_wire(&st.participants);
    list.participants.push(list.participants[0].clone());
    dict.insert(PARTICIPANT_LIST, list.encode().unwrap());
    assert!(matches!(
        RoomState::from_dictionary(&dict),
        Err(ComponentError::DuplicateParticipant { .. })
    ));
    let mut list = participants::participants_to_wire(&st.participants);
    list.participants[0].user = "not a uri".into();
    dict.insert(PARTICIPANT_LIST, list.encode().unwrap());
    assert!(matches!(
        RoomState::from_dictionary(&dict),
        Err(ComponentError::BadUser { .. })
    ));
}

/// Every truncation and many byte mutations of every component, and of update
/// payloads, give a value or an error — never a panic.
#[test]
fn no_panic_on_truncated_or_mutated_components() {
    let (st, _) = room(RolePreset::Moderated);
    let dict = st.to_dictionary();
    let update = ParticipantListUpdate {
        changed_role_participants: vec![UserindexRolePair {
            user_index: 1,
            role_index: 3,
        }],
        removed_indices: vec![2],
        added_participants: vec![UserRolePair {
            user: "mimi://e.example/u/eric".into(),
            role_index: 2,
        }],
    };
    let mut inputs: Vec<(ComponentId, Vec<u8>)> =
        dict.iter().map(|(k, v)| (*k, v.clone())).collect();
    inputs.push((PARTICIPANT_LIST, update.encode().unwrap()));
    let mut seed: u64 = 7;
    let mut rnd = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut decoded_ok = 0usize;
    let mut rejected = 0usize;
    for (id, bytes) in &inputs {
        let mut variants: Vec<Vec<u8>> = (0..bytes.len()).map(|n| bytes[..n].to_vec()).collect();
        for i in 0..bytes.len() {
            for v in [0x00u8, 0xff, 0x3f, 0x40, 0x80, 0xc0] {
                let mut b = bytes.clone();
                b[i] = v;
                variants.push(b);
            }
            let mut b = bytes.clone();
            b[i] ^= 1 << (rnd() % 8);
            variants.push(b);
        }
        for v in variants {
            let mut d2 = dict.clone();
            d2.insert(*id, v.clone());
            let r1 = RoomState::from_dictionary(&d2);
            let r2 = ProposedChange::commit()
                .with_app_data_updates(&st.participants, &[(*id, ComponentOp::Update(v))]);
            for ok in [r1.is_ok(), r2.is_ok()] {
                if ok {
                    decoded_ok += 1
                } else {
                    rejected += 1
                }
            }
            if let Ok(change) = r2 {
                // whatever decodes, the engine answers without panicking
                let _ = authorize(&st, &Membership::default(), &member("alice"), &change);
            }
        }
    }
    assert!(rejected > 1000, "mutations must be caught: {rejected}");
    assert!(decoded_ok > 0, "some mutations are still valid encodings");
}

#[test]
fn app_data_update_operations() {
    let (st, _) = coop();
    let e = ProposedChange::commit()
        .with_app_data_updates(&st.participants, &[(ROLES_LIST, ComponentOp::Remove)])
        .unwrap_err();
    assert_eq!(
        e,
        ChangeError::Component(ComponentError::RemoveNotAllowed {
            component: "roles_list"
        })
    );
    let e = ProposedChange::commit()
        .with_app_data_updates(&st.participants, &[(0x8001, ComponentOp::Update(vec![]))])
        .unwrap_err();
    assert_eq!(
        e,
        ChangeError::Component(ComponentError::Unsupported(0x8001))
    );
    // two participant-list updates in one commit: the second is read against the
    // list left by the first (X§4.7 order)
    let first = ParticipantListUpdate {
        removed_indices: vec![1], // bob
        ..Default::default()
    };
    let second = ParticipantListUpdate {
        removed_indices: vec![1], // now cathy
        ..Default::default()
    };
    let c = ProposedChange::commit()
        .with_app_data_updates(
            &st.participants,
            &[
                (
                    PARTICIPANT_LIST,
                    ComponentOp::Update(first.encode().unwrap()),
                ),
                (
                    PARTICIPANT_LIST,
                    ComponentOp::Update(second.encode().unwrap()),
                ),
            ],
        )
        .unwrap();
    assert_eq!(c.list.removed, vec![u("bob"), u("cathy")]);
    // metadata, roles, preauth, base policy payloads
    let c = ProposedChange::commit()
        .with_app_data_updates(
            &st.participants,
            &[
                (
                    ROOM_METADATA,
                    ComponentOp::Update(st.metadata.encode().unwrap()),
                ),
                (
                    PREAUTH_LIST,
                    ComponentOp::Update(st.preauth.encode().unwrap()),
                ),
                (
                    BASE_ROOM_POLICY,
                    ComponentOp::Update(st.base_policy.encode().unwrap()),
                ),
            ],
        )
        .unwrap();
    assert_eq!(c.metadata, vec![st.metadata.clone()]);
    assert_eq!(c.preauth, vec![st.preauth.clone()]);
    assert_eq!(c.base_policy, vec![st.base_policy.clone()]);
}

// ---------------------------------------------------------------- x-exiting-state

use super::exiting::{check_adds, check_roles, check_sender, ExitingViolation, EXITING_ROLE};
use super::roles::BANNED_ROLE;

/// coop() with bob marked exiting (his own commit), still with his one client.
fn with_exiting_bob() -> (RoomState, Membership) {
    let (st, m) = coop();
    let c = ProposedChange::commit().set_role(&u("bob"), EXITING_ROLE);
    (ok(&st, &m, &member("bob"), &c).state, m)
}

#[test]
fn exiting_marker_on_own_role_from_any_role_without_capability() {
    let (st, m) = coop();
    // bob (ordinary_user, no canChangeOwnRole, no arc to the marker) and dave (the only
    // group_admin, min 1 participant) — dave's marker is refused by the role constraint.
    let c = ProposedChange::commit().set_role(&u("bob"), EXITING_ROLE);
    assert_eq!(check_roles(&st, &member("bob"), &c), Ok(()));
    let a = ok(&st, &m, &member("bob"), &c);
    assert_eq!(
        a.actions,
        vec![Action::EnterExiting {
            user: u("bob"),
            from: 2
        }]
    );
    assert!(super::exiting::is_exiting(&a.state, &u("bob")));
    let c = ProposedChange::commit().set_role(&u("alice"), EXITING_ROLE);
    assert_eq!(check_roles(&st, &member("alice"), &c), Ok(()));
    ok(&st, &m, &member("alice"), &c);
    let c = ProposedChange::commit().set_role(&u("dave"), EXITING_ROLE);
    assert_eq!(check_roles(&st, &member("dave"), &c), Ok(()));
    assert!(matches!(
        err(&st, &m, &member("dave"), &c),
        PolicyViolation::MinParticipants { role: 3, .. }
    ));
}

#[test]
fn exiting_marker_for_someone_else_needs_what_removing_them_needs() {
    let (st, m) = coop();
    // alice (super_admin: canRemoveParticipant, arc member → no role) may mark bob: the
    // first step of removing him.
    let c = ProposedChange::commit().set_role(&u("bob"), EXITING_ROLE);
    assert_eq!(check_roles(&st, &member("alice"), &c), Ok(()));
    let a = ok(&st, &m, &member("alice"), &c);
    assert_eq!(
        a.actions,
        vec![Action::MarkExiting {
            user: u("bob"),
            from: 2
        }]
    );
    assert!(super::exiting::is_exiting(&a.state, &u("bob")));
    // In a strictly administered room cathy (no canRemoveParticipant) may not: the
    // marker gives nobody a power of removal it did not have.
    let (sst, sm) = strict();
    assert_eq!(check_roles(&sst, &member("cathy"), &c), Ok(()));
    assert!(matches!(
        err(&sst, &sm, &member("cathy"), &c),
        PolicyViolation::MissingCapability {
            capability: Capability::RemoveParticipant,
            ..
        }
    ));
    // Nor may the hub (an external sender), nor may anyone list a user as exiting.
    assert!(matches!(
        check_roles(&st, &Actor::server(&d(HUB)), &c),
        Err(ExitingViolation::MarkerByNonMember { .. })
    ));
    let c = ProposedChange::commit()
        .add_user(&u("erin"), EXITING_ROLE)
        .add_clients(&u("erin"), 1);
    assert_eq!(
        check_roles(&st, &member("alice"), &c),
        Err(ExitingViolation::ListedAsExiting { user: u("erin") })
    );
    assert_eq!(
        err(&st, &m, &member("alice"), &c),
        PolicyViolation::UndefinedRole { role: EXITING_ROLE }
    );
}

#[test]
fn an_exiting_user_gets_no_other_role() {
    let (st, m) = with_exiting_bob();
    for (actor, to) in [("alice", 2), ("alice", 3), ("bob", 2)] {
        let c = ProposedChange::commit().set_role(&u("bob"), to);
        assert_eq!(
            check_roles(&st, &member(actor), &c),
            Err(ExitingViolation::ExitingRoleChange { user: u("bob"), to }),
            "{actor} -> {to}"
        );
        // the policy refuses these too (no arc from the marker, no capability)
        err(&st, &m, &member(actor), &c);
    }
    // A ban completes an exit: allowed to alice (canBan) once bob's client is gone,
    // without an arc from the marker; not to cathy (no canBan).
    let c = ProposedChange::commit()
        .set_role(&u("bob"), BANNED_ROLE)
        .remove_clients(&u("bob"), 1);
    assert_eq!(check_roles(&st, &member("alice"), &c), Ok(()));
    let a = ok(&st, &m, &member("alice"), &c);
    assert!(
        matches!(a.actions[0], Action::Ban { .. }),
        "{:?}",
        a.actions
    );
    err(&st, &m, &member("cathy"), &c);
    // Others' role changes are unaffected.
    let c = ProposedChange::commit().set_role(&u("cathy"), 3);
    assert_eq!(check_roles(&st, &member("alice"), &c), Ok(()));
    ok(&st, &m, &member("alice"), &c);
}

#[test]
fn an_exiting_users_clients_are_removed_and_it_is_unlisted_without_capability() {
    let (st, m) = with_exiting_bob();
    // bob's own bundle removing his client (no canRemoveOwnClient needed).
    let c = ProposedChange::proposals().remove_clients(&u("bob"), 1);
    let a = ok(&st, &m, &member("bob"), &c);
    assert_eq!(
        a.actions,
        vec![Action::RemoveClientsOfNonParticipant {
            user: u("bob"),
            count: 1
        }]
    );
    // cathy (ordinary, no canKick) may remove them too.
    ok(&st, &m, &member("cathy"), &c);
    // Unlisting while a client stays: refused (list-membership).
    let c = ProposedChange::commit().remove_user(&u("bob"));
    assert_eq!(
        err(&st, &m, &member("cathy"), &c),
        PolicyViolation::RemovedUserKeepsClients {
            user: u("bob"),
            remaining: 1
        }
    );
    // Once the client is gone, anyone completes the exit (cathy: no arc 2 -> 0 on bob).
    let mut gone = m.clone();
    gone.clients.remove(&u("bob"));
    let a = ok(&st, &gone, &member("cathy"), &c);
    assert_eq!(
        a.actions,
        vec![Action::CompleteExit {
            user: u("bob"),
            clients: 0
        }]
    );
    assert_eq!(a.removed_or_banned_users(), vec![u("bob")]);
    assert_eq!(check_roles(&st, &member("cathy"), &c), Ok(()));
    // In one change with the clients' removal; bob may propose it, not commit it.
    let c = ProposedChange::proposals()
        .remove_user(&u("bob"))
        .remove_clients(&u("bob"), 1);
    ok(&st, &m, &member("bob"), &c);
    let c = ProposedChange::commit()
        .remove_user(&u("bob"))
        .remove_clients(&u("bob"), 1);
    assert_eq!(
        err(&st, &m, &member("bob"), &c),
        PolicyViolation::LeaverCannotCommit { user: u("bob") }
    );
    // An exiting user can do nothing that needs a capability.
    let c = ProposedChange::commit().set_role(&u("cathy"), 3);
    assert!(matches!(
        err(&st, &m, &member("bob"), &c),
        PolicyViolation::MissingCapability { .. }
    ));
}

#[test]
fn no_client_of_an_exiting_user_is_added() {
    let (st, m) = with_exiting_bob();
    let c = ProposedChange::commit().add_clients(&u("bob"), 1);
    assert_eq!(
        check_adds(&st, &c),
        Err(ExitingViolation::AddClientsOfExiting {
            user: u("bob"),
            count: 1
        })
    );
    // by bob himself (the policy also refuses: his role has no canAddOwnClient) ...
    assert!(missing(&u("bob"), Capability::AddOwnClient)(&err(
        &st,
        &m,
        &member("bob"),
        &c
    )));
    // ... and an external join of a new device of bob
    let c = ProposedChange::external_commit().add_clients(&u("bob"), 1);
    assert!(check_adds(&st, &c).is_err());
    // Clients of others are unaffected.
    let c = ProposedChange::commit().add_clients(&u("cathy"), 1);
    assert_eq!(check_adds(&st, &c), Ok(()));
    ok(&st, &m, &member("cathy"), &c);
    // Before the marker, bob may add his own client.
    let (st0, m0) = coop();
    let c = ProposedChange::commit().add_clients(&u("bob"), 1);
    assert_eq!(check_adds(&st0, &c), Ok(()));
    ok(&st0, &m0, &member("bob"), &c);
}

#[test]
fn an_exiting_user_sends_no_application_message() {
    let (st, _) = with_exiting_bob();
    assert_eq!(
        check_sender(&st, &u("bob")),
        Err(ExitingViolation::SenderExiting { user: u("bob") })
    );
    assert!(
        !st.can_send_message(&u("bob")),
        "submit-sender also refuses"
    );
    assert_eq!(check_sender(&st, &u("cathy")), Ok(()));
    let (st0, _) = coop();
    assert_eq!(check_sender(&st0, &u("bob")), Ok(()));
}
