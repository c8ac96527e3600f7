//! The participant list (P§7.5) as typed entries, and the semantics of a
//! `ParticipantListUpdate` (P§7.5, with the project's choice where it leaves details
//! open; choice 1 of [`crate::room`]):
//!
//! * every index (in `changedRoleParticipants` and `removedIndices`) refers to the list
//!   **as it stands before the update**;
//! * role changes are applied first (in place), then all removals at once, then the
//!   additions are appended in order;
//! * an update is rejected if an index is out of range or appears twice, if any user is
//!   named twice (changed and removed, added twice, or added while already listed), or
//!   if a role index is 0 (RP§3: 0 means "not in the list").
//!
//! A [`ListChange`] is the same change with users instead of indices. It composes:
//! several updates in one commit are applied one after the other (X§4.7 hands them to
//! the component in order), and the concatenation of their `ListChange`s, applied at
//! once, gives the same list provided no user is touched twice (P§7.5).

use super::codec::ComponentError;
use super::components::{
    ParticipantListData, ParticipantListUpdate, UserRolePair, UserindexRolePair,
};
use super::roles::NO_ROLE;
use crate::ids::UserUri;
use std::collections::BTreeSet;

/// One participant-list entry (P§7.5 `UserRolePair`) with a parsed user URI.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Participant {
    pub user: UserUri,
    pub role: u32,
}

/// Why a participant-list update (or [`ListChange`]) cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListUpdateError {
    #[error("participant index {index} is out of range: the list has {len} entries (P§7.5)")]
    IndexOutOfRange { index: u32, len: usize },
    #[error("participant index {index} appears twice in one update (choice: P§7.5 does not say; see nodes/src/room/mod.rs)")]
    DuplicateIndex { index: u32 },
    #[error("user {user} is touched more than once by the participant-list changes of one commit (P§7.5)")]
    UserTouchedTwice { user: UserUri },
    #[error("user {user} would get role index 0, which means 'not in the list' (RP§3)")]
    RoleIndexZero { user: UserUri },
    #[error("user {user} is added but is already in the participant list (RP§8.1.1)")]
    AlreadyListed { user: UserUri },
    #[error("user {user} is removed or changes role but is not in the participant list")]
    NotListed { user: UserUri },
    #[error("added participant {user:?} is not a mimi user URI (mimi://<domain>/u/<name>)")]
    BadUser { user: String },
}

/// Typed entries from the wire list; rejects non-URI users and duplicates (P§7.5).
pub fn participants_from_wire(d: &ParticipantListData) -> Result<Vec<Participant>, ComponentError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(d.participants.len());
    for p in &d.participants {
        let user = UserUri::from_bytes(p.user.as_slice()).map_err(|_| ComponentError::BadUser {
            component: "participant_list",
            user: String::from_utf8_lossy(p.user.as_slice()).into_owned(),
        })?;
        if !seen.insert(user.clone()) {
            return Err(ComponentError::DuplicateParticipant {
                component: "participant_list",
                user: user.to_string(),
            });
        }
        out.push(Participant {
            user,
            role: p.role_index,
        });
    }
    Ok(out)
}

/// The wire form of a typed list.
pub fn participants_to_wire(list: &[Participant]) -> ParticipantListData {
    ParticipantListData {
        participants: list
            .iter()
            .map(|p| UserRolePair {
                user: p.user.as_bytes().into(),
                role_index: p.role,
            })
            .collect(),
    }
}

/// A participant-list change in terms of users (index-free), in P§7.5 order:
/// role changes, removals, additions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListChange {
    /// (user, new role index)
    pub role_changes: Vec<(UserUri, u32)>,
    pub removed: Vec<UserUri>,
    /// (user, role index), appended in this order
    pub added: Vec<(UserUri, u32)>,
}

fn index_of(list: &[Participant], user: &UserUri) -> Option<usize> {
    list.iter().position(|p| &p.user == user)
}

fn entry(list: &[Participant], index: u32) -> Result<&Participant, ListUpdateError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| list.get(i))
        .ok_or(ListUpdateError::IndexOutOfRange {
            index,
            len: list.len(),
        })
}

impl ListChange {
    pub fn is_empty(&self) -> bool {
        self.role_changes.is_empty() && self.removed.is_empty() && self.added.is_empty()
    }

    /// True when the change only removes users (RP§4: a preauth update may accompany
    /// removals, nothing else).
    pub fn only_removals(&self) -> bool {
        self.role_changes.is_empty() && self.added.is_empty()
    }

    /// Every user named, once per mention (so a user touched twice appears twice).
    pub fn mentions(&self) -> impl Iterator<Item = &UserUri> {
        self.role_changes
            .iter()
            .map(|(u, _)| u)
            .chain(self.removed.iter())
            .chain(self.added.iter().map(|(u, _)| u))
    }

    /// The first user named more than once (P§7.5), if any.
    pub fn user_touched_twice(&self) -> Option<&UserUri> {
        let mut seen = BTreeSet::new();
        self.mentions().find(|u| !seen.insert(*u))
    }

    /// Append another change (e.g. the next AppDataUpdate of the same commit).
    pub fn extend(&mut self, other: ListChange) {
        self.role_changes.extend(other.role_changes);
        self.removed.extend(other.removed);
        self.added.extend(other.added);
    }

    /// Interpret a wire update against `list` (the list before the update).
    pub fn resolve(
        list: &[Participant],
        update: &ParticipantListUpdate,
    ) -> Result<ListChange, ListUpdateError> {
        let mut indices = BTreeSet::new();
        let mut change = ListChange::default();
        for c in &update.changed_role_participants {
            let p = entry(list, c.user_index)?;
            if !indices.insert(c.user_index) {
                return Err(ListUpdateError::DuplicateIndex {
                    index: c.user_index,
                });
            }
            change.role_changes.push((p.user.clone(), c.role_index));
        }
        let mut removed = BTreeSet::new();
        for &i in &update.removed_indices {
            let p = entry(list, i)?;
            if !removed.insert(i) {
                return Err(ListUpdateError::DuplicateIndex { index: i });
            }
            if indices.contains(&i) {
                return Err(ListUpdateError::UserTouchedTwice {
                    user: p.user.clone(),
                });
            }
            change.removed.push(p.user.clone());
        }
        for a in &update.added_participants {
            let user =
                UserUri::from_bytes(a.user.as_slice()).map_err(|_| ListUpdateError::BadUser {
                    user: String::from_utf8_lossy(a.user.as_slice()).into_owned(),
                })?;
            change.added.push((user, a.role_index));
        }
        change.check_against(list)?;
        Ok(change)
    }

    /// Check the change can be applied to `list` (users named once, removed and
    /// re-roled users listed, added users not listed, no role 0).
    pub fn check_against(&self, list: &[Participant]) -> Result<(), ListUpdateError> {
        if let Some(user) = self.user_touched_twice() {
            return Err(ListUpdateError::UserTouchedTwice { user: user.clone() });
        }
        for (user, role) in &self.role_changes {
            if index_of(list, user).is_none() {
                return Err(ListUpdateError::NotListed { user: user.clone() });
            }
            if *role == NO_ROLE {
                return Err(ListUpdateError::RoleIndexZero { user: user.clone() });
            }
        }
        for user in &self.removed {
            if index_of(list, user).is_none() {
                return Err(ListUpdateError::NotListed { user: user.clone() });
            }
        }
        for (user, role) in &self.added {
            if index_of(list, user).is_some() {
                return Err(ListUpdateError::AlreadyListed { user: user.clone() });
            }
            if *role == NO_ROLE {
                return Err(ListUpdateError::RoleIndexZero { user: user.clone() });
            }
        }
        Ok(())
    }

    /// Apply to `list`: role changes in place, removals, then appends.
    pub fn apply(&self, list: &[Participant]) -> Result<Vec<Participant>, ListUpdateError> {
        self.check_against(list)?;
        let mut out: Vec<Participant> = list
            .iter()
            .filter(|p| !self.removed.contains(&p.user))
            .cloned()
            .collect();
        for p in out.iter_mut() {
            if let Some((_, role)) = self.role_changes.iter().find(|(u, _)| u == &p.user) {
                p.role = *role;
            }
        }
        out.extend(self.added.iter().map(|(user, role)| Participant {
            user: user.clone(),
            role: *role,
        }));
        Ok(out)
    }

    /// The wire update that expresses this change against `list` (removed indices
    /// in ascending order).
    pub fn to_update(
        &self,
        list: &[Participant],
    ) -> Result<ParticipantListUpdate, ListUpdateError> {
        self.check_against(list)?;
        let idx = |u: &UserUri| -> Result<u32, ListUpdateError> {
            index_of(list, u)
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| ListUpdateError::NotListed { user: u.clone() })
        };
        let mut removed_indices = self
            .removed
            .iter()
            .map(idx)
            .collect::<Result<Vec<u32>, _>>()?;
        removed_indices.sort_unstable();
        Ok(ParticipantListUpdate {
            changed_role_participants: self
                .role_changes
                .iter()
                .map(|(u, r)| {
                    Ok(UserindexRolePair {
                        user_index: idx(u)?,
                        role_index: *r,
                    })
                })
                .collect::<Result<Vec<_>, ListUpdateError>>()?,
            removed_indices,
            added_participants: self
                .added
                .iter()
                .map(|(u, r)| UserRolePair {
                    user: u.as_bytes().into(),
                    role_index: *r,
                })
                .collect(),
        })
    }
}

/// P§7.5 with the semantics above (the project's choice): apply one wire update to a typed list.
pub fn apply_update(
    list: &[Participant],
    update: &ParticipantListUpdate,
) -> Result<Vec<Participant>, ListUpdateError> {
    ListChange::resolve(list, update)?.apply(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Domain;

    fn user(d: &str, n: &str) -> UserUri {
        UserUri::new(&Domain::new(d).unwrap(), n).unwrap()
    }

    fn list(entries: &[(&str, &str, u32)]) -> Vec<Participant> {
        entries
            .iter()
            .map(|(d, n, r)| Participant {
                user: user(d, n),
                role: *r,
            })
            .collect()
    }

    /// P§4.3.2 Figure 9: add diana (4) and eric (3), remove bob, set cathy to banned.
    #[test]
    fn notional_example_of_p_4_3_2() {
        let before = list(&[
            ("a.example", "alice", 4),
            ("b.example", "bob", 2),
            ("c.example", "cathy", 2),
        ]);
        let update = ParticipantListUpdate {
            changed_role_participants: vec![UserindexRolePair {
                user_index: 2,
                role_index: 1,
            }],
            removed_indices: vec![1],
            added_participants: vec![
                UserRolePair {
                    user: "mimi://d.example/u/diana".into(),
                    role_index: 4,
                },
                UserRolePair {
                    user: "mimi://e.example/u/eric".into(),
                    role_index: 3,
                },
            ],
        };
        let after = apply_update(&before, &update).unwrap();
        assert_eq!(
            after,
            list(&[
                ("a.example", "alice", 4),
                ("c.example", "cathy", 1),
                ("d.example", "diana", 4),
                ("e.example", "eric", 3),
            ])
        );
        // and the semantic form produces the same wire update back
        let change = ListChange::resolve(&before, &update).unwrap();
        assert_eq!(change.to_update(&before).unwrap(), update);
    }

    #[test]
    fn indices_refer_to_the_list_before_the_update() {
        // removing 0 and 1 at once removes alice and bob, not alice and cathy
        let before = list(&[
            ("a.example", "alice", 2),
            ("b.example", "bob", 2),
            ("c.example", "cathy", 2),
        ]);
        let u = ParticipantListUpdate {
            removed_indices: vec![1, 0],
            ..Default::default()
        };
        assert_eq!(
            apply_update(&before, &u).unwrap(),
            list(&[("c.example", "cathy", 2)])
        );
    }

    #[test]
    fn malformed_updates_are_rejected() {
        let before = list(&[("a.example", "alice", 2), ("b.example", "bob", 2)]);
        let rm = |v: Vec<u32>| ParticipantListUpdate {
            removed_indices: v,
            ..Default::default()
        };
        assert_eq!(
            apply_update(&before, &rm(vec![2])),
            Err(ListUpdateError::IndexOutOfRange { index: 2, len: 2 })
        );
        assert_eq!(
            apply_update(&before, &rm(vec![u32::MAX])),
            Err(ListUpdateError::IndexOutOfRange {
                index: u32::MAX,
                len: 2
            })
        );
        assert_eq!(
            apply_update(&before, &rm(vec![1, 1])),
            Err(ListUpdateError::DuplicateIndex { index: 1 })
        );
        // changed and removed: the same user twice
        let u = ParticipantListUpdate {
            changed_role_participants: vec![UserindexRolePair {
                user_index: 0,
                role_index: 3,
            }],
            removed_indices: vec![0],
            ..Default::default()
        };
        assert_eq!(
            apply_update(&before, &u),
            Err(ListUpdateError::UserTouchedTwice {
                user: user("a.example", "alice")
            })
        );
        // changed twice
        let u = ParticipantListUpdate {
            changed_role_participants: vec![
                UserindexRolePair {
                    user_index: 1,
                    role_index: 3,
                },
                UserindexRolePair {
                    user_index: 1,
                    role_index: 4,
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            apply_update(&before, &u),
            Err(ListUpdateError::DuplicateIndex { index: 1 })
        );
        // removed and re-added in the same update
        let u = ParticipantListUpdate {
            removed_indices: vec![1],
            added_participants: vec![UserRolePair {
                user: "mimi://b.example/u/bob".into(),
                role_index: 2,
            }],
            ..Default::default()
        };
        assert_eq!(
            apply_update(&before, &u),
            Err(ListUpdateError::UserTouchedTwice {
                user: user("b.example", "bob")
            })
        );
        // added twice
        let add = |n: &str, r: u32| UserRolePair {
            user: format!("mimi://c.example/u/{n}").as_str().into(),
            role_index: r,
        };
        let u = ParticipantListUpdate {
            added_participants: vec![add("cathy", 2), add("cathy", 3)],
            ..Default::default()
        };
        assert!(matches!(
            apply_update(&before, &u),
            Err(ListUpdateError::UserTouchedTwice { .. })
        ));
        // added while listed
        let u = ParticipantListUpdate {
            added_participants: vec![UserRolePair {
                user: "mimi://a.example/u/alice".into(),
                role_index: 2,
            }],
            ..Default::default()
        };
        assert!(matches!(
            apply_update(&before, &u),
            Err(ListUpdateError::AlreadyListed { .. })
        ));
        // role 0
        let u = ParticipantListUpdate {
            added_participants: vec![add("cathy", 0)],
            ..Default::default()
        };
        assert!(matches!(
            apply_update(&before, &u),
            Err(ListUpdateError::RoleIndexZero { .. })
        ));
        // not a user URI
        let u = ParticipantListUpdate {
            added_participants: vec![UserRolePair {
                user: vec![0xff, 0x00].into(),
                role_index: 2,
            }],
            ..Default::default()
        };
        assert!(matches!(
            apply_update(&before, &u),
            Err(ListUpdateError::BadUser { .. })
        ));
    }

    /// Independent oracle for the index semantics, by positions only.
    fn oracle(list: &[Participant], u: &ParticipantListUpdate) -> Vec<Participant> {
        let mut v: Vec<Option<Participant>> = list.iter().cloned().map(Some).collect();
        for c in &u.changed_role_participants {
            if let Some(Some(p)) = v.get_mut(c.user_index as usize) {
                p.role = c.role_index;
            }
        }
        let mut idx = u.removed_indices.clone();
        idx.sort_unstable();
        for i in idx.into_iter().rev() {
            v.remove(i as usize);
        }
        let mut out: Vec<Participant> = v.into_iter().flatten().collect();
        for a in &u.added_participants {
            out.push(Participant {
                user: UserUri::from_bytes(a.user.as_slice()).unwrap(),
                role: a.role_index,
            });
        }
        out
    }

    /// Property: for many valid updates, the typed semantics equal the positional
    /// oracle, and sequential application of two updates equals applying the
    /// concatenated ListChange.
    #[test]
    fn semantics_match_oracle_and_compose() {
        let mut seed: u64 = 0x5eed;
        let mut next = |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        for round in 0..300 {
            let n = 1 + next(8) as usize;
            let base: Vec<Participant> = (0..n)
                .map(|i| Participant {
                    user: user("a.example", &format!("u{i}")),
                    role: 2,
                })
                .collect();
            // pick disjoint index sets for changes and removals
            let mut changed = Vec::new();
            let mut removed = Vec::new();
            for i in 0..n as u32 {
                match next(3) {
                    0 => changed.push(UserindexRolePair {
                        user_index: i,
                        role_index: 3 + next(3) as u32,
                    }),
                    1 => removed.push(i),
                    _ => {}
                }
            }
            let added: Vec<UserRolePair> = (0..next(3))
                .map(|j| UserRolePair {
                    user: format!("mimi://b.example/u/r{round}n{j}").as_str().into(),
                    role_index: 2,
                })
                .collect();
            let u = ParticipantListUpdate {
                changed_role_participants: changed,
                removed_indices: removed,
                added_participants: added,
            };
            let got = apply_update(&base, &u).unwrap();
            assert_eq!(got, oracle(&base, &u), "round {round}");

            // a second update on the result, touching other users only
            let touched: BTreeSet<UserUri> = ListChange::resolve(&base, &u)
                .unwrap()
                .mentions()
                .cloned()
                .collect();
            let untouched: Vec<u32> = (0..got.len() as u32)
                .filter(|&i| !touched.contains(&got[i as usize].user))
                .collect();
            let u2 = ParticipantListUpdate {
                removed_indices: untouched.iter().copied().take(1).collect(),
                changed_role_participants: untouched
                    .iter()
                    .skip(1)
                    .take(1)
                    .map(|&i| UserindexRolePair {
                        user_index: i,
                        role_index: 5,
                    })
                    .collect(),
                added_participants: vec![UserRolePair {
                    user: format!("mimi://c.example/u/x{round}").as_str().into(),
                    role_index: 2,
                }],
            };
            let sequential = apply_update(&got, &u2).unwrap();
            let mut combined = ListChange::resolve(&base, &u).unwrap();
            combined.extend(ListChange::resolve(&got, &u2).unwrap());
            assert_eq!(combined.apply(&base).unwrap(), sequential, "round {round}");
        }
    }
}
