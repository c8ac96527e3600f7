//! Room state in the GroupContext: resolving AppDataUpdate proposals (X§4.7).
//!
//! openmls leaves the meaning of an AppDataUpdate to the application: a receiver (member
//! or hub) gets `UnresolvedAppDataCommit`, a committer builds the commit. Both must compute
//! the same new dictionary entries, so both call [`resolve`] with the same
//! [`ComponentLogic`] (the room module's implementation for MIMI components).

use std::collections::BTreeMap;

use openmls::component::{ComponentData, ComponentId};
use openmls::prelude::*;

/// The application logic of the room-state components.
pub trait ComponentLogic {
    /// Fold the `updates` (in commit order) of one component into its `old` value
    /// (X§4.7: one or more updates per component per commit). `Err` names why the
    /// update is invalid; that makes the whole commit invalid.
    fn apply_updates(
        &self,
        component: ComponentId,
        old: Option<&[u8]>,
        updates: &[&[u8]],
    ) -> Result<Vec<u8>, String>;

    /// Whether a `remove` of this component is allowed (MIMI room-state components are
    /// never removed).
    fn allow_remove(&self, component: ComponentId) -> bool;
}

/// Why a set of AppDataUpdate proposals cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppDataError {
    #[error("component {0:#06x}: update and remove mixed in one commit (X§4.7)")]
    MixedUpdateAndRemove(ComponentId),
    #[error("component {0:#06x}: more than one remove in one commit (X§4.7)")]
    DoubleRemove(ComponentId),
    #[error("component {0:#06x}: remove of a component that does not exist (X§4.7)")]
    RemoveMissing(ComponentId),
    #[error("component {0:#06x}: remove not allowed for this component")]
    RemoveForbidden(ComponentId),
    #[error("component {component:#06x}: invalid update: {reason}")]
    InvalidUpdate {
        component: ComponentId,
        reason: String,
    },
}

/// Compute the dictionary changes of a commit from its AppDataUpdate proposals.
/// Returns `None` when there are no proposals.
pub fn resolve<'a>(
    updater: AppDataDictionaryUpdater<'_>,
    proposals: impl IntoIterator<Item = &'a AppDataUpdateProposal>,
    logic: &dyn ComponentLogic,
) -> Result<Option<AppDataUpdates>, AppDataError> {
    let mut grouped: BTreeMap<ComponentId, Vec<&AppDataUpdateOperation>> = BTreeMap::new();
    for p in proposals {
        grouped
            .entry(p.component_id())
            .or_default()
            .push(p.operation());
    }
    if grouped.is_empty() {
        return Ok(None);
    }
    let mut updater = updater;
    for (component, ops) in grouped {
        let removes = ops
            .iter()
            .filter(|o| matches!(o, AppDataUpdateOperation::Remove))
            .count();
        if removes > 0 {
            if removes != ops.len() {
                return Err(AppDataError::MixedUpdateAndRemove(component));
            }
            if removes > 1 {
                return Err(AppDataError::DoubleRemove(component));
            }
            if !logic.allow_remove(component) {
                return Err(AppDataError::RemoveForbidden(component));
            }
            if updater.old_value(component).is_none() {
                return Err(AppDataError::RemoveMissing(component));
            }
            updater.remove(&component);
            continue;
        }
        let updates: Vec<&[u8]> = ops
            .iter()
            .filter_map(|o| match o {
                AppDataUpdateOperation::Update(b) => Some(b.as_slice()),
                AppDataUpdateOperation::Remove => None,
            })
            .collect();
        let new = logic
            .apply_updates(component, updater.old_value(component), &updates)
            .map_err(|reason| AppDataError::InvalidUpdate { component, reason })?;
        updater.set(ComponentData::from_parts(component, new.into()));
    }
    Ok(updater.changes())
}

/// The room-state dictionary (component id → data) held in GroupContext `extensions`.
pub fn dictionary_of(extensions: &Extensions<GroupContext>) -> BTreeMap<ComponentId, Vec<u8>> {
    extensions
        .app_data_dictionary()
        .map(|d| {
            d.dictionary()
                .entries()
                .map(|e| (e.id(), e.data().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}
