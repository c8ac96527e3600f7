//! The MIMI room-state components as `app_data_dictionary` logic (X§4.7): how a commit's
//! AppDataUpdates change each component. Used identically by committers, receivers and
//! the hub, so all of them compute the same GroupContext. (The MLS glue, [`crate::mls`],
//! knows only the [`ComponentLogic`] trait; the room's components are the room's.)
//!
//! * participant_list (0x0022): each update is a `ParticipantListUpdate` applied in
//!   commit order with the semantics of [`crate::room::participants`].
//! * room_metadata, roles_list, preauth_list, base_room_policy: an update replaces the
//!   whole value (P§7.6, RP§3–5); it must decode.
//! * hub (0xF0A0, x-hub-transfer, [`crate::transfer`]): one update per commit, to the
//!   next generation.
//! * No MIMI component may be removed; unknown components are refused.

use openmls::component::ComponentId;

use super::components::{BaseRoomPolicy, ParticipantListData, ParticipantListUpdate, RoomMetaData};
use super::participants::{apply_update, participants_from_wire, participants_to_wire};
use super::roles::{PreAuthData, RoleData};
use super::{BASE_ROOM_POLICY, PARTICIPANT_LIST, PREAUTH_LIST, ROLES_LIST, ROOM_METADATA};
use crate::mls::app_data::ComponentLogic;

/// The component logic of MIMI rooms.
pub struct RoomComponents;

impl ComponentLogic for RoomComponents {
    fn apply_updates(
        &self,
        component: ComponentId,
        old: Option<&[u8]>,
        updates: &[&[u8]],
    ) -> Result<Vec<u8>, String> {
        match component {
            PARTICIPANT_LIST => {
                let old = old.ok_or("participant_list missing from the dictionary")?;
                let data = ParticipantListData::decode(old).map_err(|e| e.to_string())?;
                let mut list = participants_from_wire(&data).map_err(|e| e.to_string())?;
                for u in updates {
                    let u = ParticipantListUpdate::decode(u).map_err(|e| e.to_string())?;
                    list = apply_update(&list, &u).map_err(|e| e.to_string())?;
                }
                participants_to_wire(&list)
                    .encode()
                    .map_err(|e| e.to_string())
            }
            ROOM_METADATA | ROLES_LIST | PREAUTH_LIST | BASE_ROOM_POLICY => {
                let last = updates.last().ok_or("no update")?;
                let ok = match component {
                    ROOM_METADATA => RoomMetaData::decode(last).map(|_| ()),
                    ROLES_LIST => RoleData::decode(last).map(|_| ()),
                    PREAUTH_LIST => PreAuthData::decode(last).map(|_| ()),
                    _ => BaseRoomPolicy::decode(last).map(|_| ()),
                };
                ok.map_err(|e| e.to_string())?;
                Ok(last.to_vec())
            }
            crate::transfer::HUB_COMPONENT => crate::transfer::apply_hub_updates(old, updates),
            other => Err(format!("unknown room component {other:#06x}")),
        }
    }

    fn allow_remove(&self, _component: ComponentId) -> bool {
        false
    }
}
