//! Leave ordering: the order in which a departing user's clients leave the MLS group and
//! the user leaves the participant list (P§5.3, RP§8.1.2; P§3.5 for the draft's leave in
//! three steps; draft -06 has no intermediate "exiting" state, only the mute of P§5.3). A
//! protocol variant (scenarios/README.md, "Leave ordering"): the scenario's
//! `[variant] leave_order` picks one, every client of a run follows it.
//!
//! | order | commit 1 | commit 2 | commit 3 |
//! |---|---|---|---|
//! | `atomic` (draft -06) | clients removed + list change | — | — |
//! | `clients-first` (MIMI interim minutes, 28 Sep 2023) | clients removed (the user stays listed, "inactive") | list change | — |
//! | `participant-first` | list change (the user's clients are members of a non-participant) | clients removed | — |
//! | `exiting` (x-exiting-state) | user's role set to [`EXITING_ROLE`] | clients removed | list change |
//!
//! "List change" is the removal from the list for a leave or a Remove, and the change
//! to the banned role (RP§8.1.2) for a Ban. A Kick changes no list entry, so it is one
//! commit under every order.
//!
//! # Who commits each step
//!
//! * Remove / Ban (an admin's own commits): the admin who started the op commits every
//!   step, one after the other; a step starts only after the previous one was accepted
//!   (an op that fails stops the sequence: the leave is stuck half-way).
//! * Leave (the user's own device): under `atomic` and `clients-first` the device sends
//!   the draft's proposal bundle (SelfRemove + Removes of its other clients; under
//!   `atomic` also the list change), committed by the member with the commit duty (the
//!   lowest leaf not removed). Under `participant-first` and `exiting` the device first
//!   commits the list change / the exiting marker itself, and then sends the bundle
//!   without a list change.
//! * The unlisting after a leave's clients are gone (`clients-first`, `exiting`): the
//!   leaver cannot do it (it has no client left), so **the member whose commit carried
//!   the leaver's SelfRemove commits the unlisting next** — deterministic, because the
//!   hub accepts exactly one commit per epoch.
//!
//! # Choices
//!
//! * x-exiting-state (a labelled extension, not in any draft): the exiting state is a
//!   reserved role index, [`EXITING_ROLE`], in the participant list, not a role defined
//!   in the roles list. Under `full` the hub enforces it ([`crate::room::exiting`]): a
//!   user may set its own role to it without any capability, a member who may remove a
//!   participant may mark it, an exiting user's role changes only to banned, it sends
//!   no application message and gets no new client; its clients are removed and it is
//!   unlisted without a capability. So a leave, a Remove and a Ban under `exiting` all
//!   complete at `full` (measured in `scenarios/leave-order.toml`, cells
//!   `leave_order=exiting`).
//! * The unlisting committer uses its own fresh room state (index looked up at commit
//!   time); if the user is no longer listed the step is skipped.
//! * Under `participant-first` the list change of a Ban is the role change to banned;
//!   under `clients-first` it comes after the clients are gone.

use serde::{Deserialize, Serialize};

/// The reserved participant-list role index that marks an exiting user (x-exiting-state,
/// see "Choices"; the hub's rules are in [`crate::room::exiting`]).
pub use crate::room::roles::EXITING_ROLE;

/// The order of operations for a leave, Remove or Ban.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum LeaveOrder {
    /// One commit removes the clients and changes the list (draft -06).
    #[default]
    Atomic,
    /// Clients removed first, list change in a second commit.
    ClientsFirst,
    /// List change first, clients removed in a second commit.
    ParticipantFirst,
    /// Role set to [`EXITING_ROLE`], then clients removed, then list change.
    Exiting,
}

impl LeaveOrder {
    /// Every order, in order.
    pub const ALL: [LeaveOrder; 4] = [
        LeaveOrder::Atomic,
        LeaveOrder::ClientsFirst,
        LeaveOrder::ParticipantFirst,
        LeaveOrder::Exiting,
    ];

    /// The order's name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            LeaveOrder::Atomic => "atomic",
            LeaveOrder::ClientsFirst => "clients-first",
            LeaveOrder::ParticipantFirst => "participant-first",
            LeaveOrder::Exiting => "exiting",
        }
    }

    /// Whether the member committing a leaver's SelfRemove must unlist the leaver next.
    pub fn committer_unlists(self) -> bool {
        matches!(self, LeaveOrder::ClientsFirst | LeaveOrder::Exiting)
    }
}

impl std::str::FromStr for LeaveOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        LeaveOrder::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = LeaveOrder::ALL.iter().map(|o| o.name()).collect();
                format!("unknown leave order {s:?} (known: {})", names.join(", "))
            })
    }
}

/// One part of a leave-step commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Remove every client of the user (MLS Removes).
    RemoveClients,
    /// Remove the user from the participant list.
    Unlist,
    /// Change the user's role in the participant list.
    SetRole(u32),
    /// The leaving device's own proposal bundle: SelfRemove + Removes of its other
    /// clients, no list change (committed by the member with the commit duty).
    ProposeLeave,
}

/// What a departure does to the participant list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Leave or Remove: the user is taken off the list.
    Remove,
    /// Ban: the user stays listed with `banned` (RP§8.1.2).
    Ban(u32),
}

impl Departure {
    fn list_change(self) -> Step {
        match self {
            Departure::Remove => Step::Unlist,
            Departure::Ban(role) => Step::SetRole(role),
        }
    }
}

/// The commits (each a set of steps) an admin's Remove or Ban makes under `order`.
pub fn admin_commits(order: LeaveOrder, d: Departure) -> Vec<Vec<Step>> {
    let list = d.list_change();
    match order {
        LeaveOrder::Atomic => vec![vec![Step::RemoveClients, list]],
        LeaveOrder::ClientsFirst => vec![vec![Step::RemoveClients], vec![list]],
        LeaveOrder::ParticipantFirst => vec![vec![list], vec![Step::RemoveClients]],
        LeaveOrder::Exiting => vec![
            vec![Step::SetRole(EXITING_ROLE)],
            vec![Step::RemoveClients],
            vec![list],
        ],
    }
}

/// The leaving device's own ops under a non-atomic `order`: commits it makes itself, then
/// its proposal bundle ([`Step::ProposeLeave`]). `None` for `atomic` (the draft bundle).
pub fn own_leave_ops(order: LeaveOrder) -> Option<Vec<Vec<Step>>> {
    match order {
        LeaveOrder::Atomic => None,
        LeaveOrder::ClientsFirst => Some(vec![vec![Step::ProposeLeave]]),
        LeaveOrder::ParticipantFirst => Some(vec![vec![Step::Unlist], vec![Step::ProposeLeave]]),
        LeaveOrder::Exiting => Some(vec![
            vec![Step::SetRole(EXITING_ROLE)],
            vec![Step::ProposeLeave],
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for o in LeaveOrder::ALL {
            assert_eq!(o.name().parse::<LeaveOrder>().unwrap(), o);
            let json = serde_json::to_value(o).unwrap();
            assert_eq!(json.as_str(), Some(o.name()));
        }
        assert!("sideways"
            .parse::<LeaveOrder>()
            .unwrap_err()
            .contains("clients-first"));
        assert_eq!(LeaveOrder::default(), LeaveOrder::Atomic);
    }

    #[test]
    fn every_order_removes_clients_and_changes_the_list_exactly_once() {
        for o in LeaveOrder::ALL {
            for d in [Departure::Remove, Departure::Ban(1)] {
                let steps: Vec<Step> = admin_commits(o, d).into_iter().flatten().collect();
                let removes = steps.iter().filter(|s| **s == Step::RemoveClients).count();
                let lists = steps.iter().filter(|s| **s == d.list_change()).count();
                assert_eq!((removes, lists), (1, 1), "{o:?} {d:?}");
            }
        }
        // Ordering: where the clients go relative to the list change.
        let pos = |o, s| {
            admin_commits(o, Departure::Remove)
                .iter()
                .position(|c| c.contains(&s))
                .unwrap()
        };
        assert!(
            pos(LeaveOrder::ClientsFirst, Step::RemoveClients)
                < pos(LeaveOrder::ClientsFirst, Step::Unlist)
        );
        assert!(
            pos(LeaveOrder::ParticipantFirst, Step::Unlist)
                < pos(LeaveOrder::ParticipantFirst, Step::RemoveClients)
        );
        assert_eq!(pos(LeaveOrder::Atomic, Step::Unlist), 0);
        assert_eq!(
            admin_commits(LeaveOrder::Exiting, Departure::Remove)[0],
            vec![Step::SetRole(EXITING_ROLE)]
        );
    }

    #[test]
    fn committer_unlists_only_where_the_leaver_cannot() {
        assert!(!LeaveOrder::Atomic.committer_unlists());
        assert!(LeaveOrder::ClientsFirst.committer_unlists());
        assert!(!LeaveOrder::ParticipantFirst.committer_unlists());
        assert!(LeaveOrder::Exiting.committer_unlists());
        assert!(own_leave_ops(LeaveOrder::Atomic).is_none());
        for o in [
            LeaveOrder::ClientsFirst,
            LeaveOrder::ParticipantFirst,
            LeaveOrder::Exiting,
        ] {
            let ops = own_leave_ops(o).unwrap();
            assert_eq!(ops.last().unwrap(), &vec![Step::ProposeLeave]);
        }
    }
}
