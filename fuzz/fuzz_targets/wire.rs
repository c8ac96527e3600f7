//! Every TLS-PL decoder the endpoints and the cores run on network input: the MIMI
//! request/response bodies (nodes/src/wire), the embedded MLS objects, the room
//! components (GroupContext `app_data_dictionary`), the x-hub-only room state and
//! update, and the x-hub-transfer messages. The first input byte picks the decoder.
//!
//! Checked: no panic; every accepted MIMI body re-encodes to exactly its input (the
//! codec's canonical-encoding promise) and has a summary (what the trace prints).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodes::room::components::{
    BaseRoomPolicy, ParticipantListData, ParticipantListUpdate, RoomMetaData,
};
use nodes::room::hub_only::{decode_room_state, HubOnlyUpdate};
use nodes::room::roles::{PreAuthData, RoleData};
use nodes::transfer::{Fence, Handoff, HubMoved, HubRecord};
use nodes::wire::*;

/// Decode, and for an accepted body check the round trip and the summary.
fn mimi<T: Decode + Summary + tls_codec::Serialize>(b: &[u8]) {
    if let Ok(v) = decode_exact::<T>(b) {
        let again = encode(&v).expect("an accepted body encodes");
        assert_eq!(again, b, "{}: encode(decode(b)) != b", T::NAME);
        let _ = v.summary();
    }
}

/// Decode only (structures without a summary).
fn plain<T: Decode + tls_codec::Serialize>(b: &[u8]) {
    if let Ok(v) = decode_exact::<T>(b) {
        let again = encode(&v).expect("an accepted body encodes");
        assert_eq!(again, b, "{}: encode(decode(b)) != b", T::NAME);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, b)) = data.split_first() else {
        return;
    };
    match which % 32 {
        0 => mimi::<KeyMaterialRequest>(b),
        1 => mimi::<KeyMaterialResponse>(b),
        2 => mimi::<UpdateRequest>(b),
        3 => mimi::<UpdateRoomResponse>(b),
        4 => mimi::<SubmitMessageRequest>(b),
        5 => mimi::<SubmitMessageResponse>(b),
        6 => mimi::<NotifyBody>(b),
        7 => mimi::<FanoutMessage>(b),
        8 => mimi::<GroupInfoRequest>(b),
        9 => mimi::<GroupInfoResponse>(b),
        10 => plain::<KeyMaterialRequestTbs>(b),
        11 => plain::<GroupInfoRequestTbs>(b),
        12 => plain::<GroupInfoRatchetTreeTbe>(b),
        13 => plain::<HandshakeBundle>(b),
        14 => plain::<ClientKeyMaterial>(b),
        15 => {
            // Embedded MLS objects, and what the hub does with them next.
            if let Ok(m) = MlsMessageBytes::from_bytes(b) {
                let _ = m.parse();
            }
        }
        16 => {
            if let Ok(k) = KeyPackageBytes::from_bytes(b) {
                let _ = k.parse();
            }
        }
        17 => {
            if let Ok(g) = GroupInfoBytes::from_bytes(b) {
                let _ = g.parse();
            }
        }
        18 => {
            if let Ok(w) = WelcomeBytes::from_bytes(b) {
                let _ = w.parse();
                let _ = w.to_mls_message();
            }
        }
        19 => {
            if let Ok(t) = RatchetTreeBytes::from_bytes(b) {
                let _ = t.parse();
            }
        }
        20 => {
            let _ = ParticipantListData::decode(b);
        }
        21 => {
            let _ = ParticipantListUpdate::decode(b);
        }
        22 => {
            let _ = RoomMetaData::decode(b);
        }
        23 => {
            let _ = RoleData::decode(b);
        }
        24 => {
            let _ = PreAuthData::decode(b);
        }
        25 => {
            let _ = BaseRoomPolicy::decode(b);
        }
        26 => {
            if let Ok(s) = decode_room_state(b) {
                let _ = nodes::room::hub_only::encode_room_state(&s);
            }
        }
        27 => {
            if let Ok(u) = HubOnlyUpdate::decode(b) {
                let _ = u.encode();
                let _ = u.as_app_data_updates();
            }
        }
        28 => {
            let _ = nodes::room::hub_only::update_request(b);
        }
        29 => {
            let _ = HubRecord::decode(b);
            let _ = HubMoved::decode(b);
        }
        30 => {
            let _ = Handoff::decode(b);
        }
        _ => {
            let _ = Fence::decode(b);
            let _ = IdentifierUri::decode(&mut Reader::new(b));
        }
    }
});
