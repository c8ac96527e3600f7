//! Shared by the integration tests that start from one built world (`checkpoint.rs`,
//! `snapshot.rs`): a room on three providers after the drafts' first flows.

use nodes::client::core::Command;
use nodes::hub::{Enforcement, EnforcementConfig};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::room::RolePreset;
use nodes::world::MemoryWorld;

pub fn d(s: &str) -> Domain {
    Domain::new(s).unwrap()
}

pub fn client(dom: &str, user: &str) -> ClientUri {
    UserUri::new(&d(dom), user).unwrap().client("1").unwrap()
}

/// Hub a.example under full enforcement: alice creates a room, adds bob and carol (other
/// providers), and bob sends `text`; deliveries are recorded.
pub fn three_provider_room(seed: u64, text: &str) -> (MemoryWorld, RoomUri) {
    let mut w = MemoryWorld::new(seed);
    for x in ["a.example", "b.example", "c.example"] {
        w.add_server(&d(x), EnforcementConfig::new(Enforcement::Full));
    }
    for (dom, user) in [
        ("a.example", "alice"),
        ("b.example", "bob"),
        ("c.example", "carol"),
    ] {
        w.add_client(&client(dom, user), 4);
    }
    w.record_deliveries = true;
    w.run();
    let alice = client("a.example", "alice");
    let room = w.create_room(&alice, "r", RolePreset::Cooperative).unwrap();
    for who in [client("b.example", "bob"), client("c.example", "carol")] {
        w.command(
            &alice,
            Command::AddUser {
                room: room.clone(),
                user: who.user(),
                role: None,
            },
        )
        .unwrap();
    }
    w.command(
        &client("b.example", "bob"),
        Command::Send {
            room: room.clone(),
            text: text.into(),
        },
    )
    .unwrap();
    (w, room)
}
