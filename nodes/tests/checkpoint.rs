//! `Server::checkpoint`: a deep copy of a provider's server goes on exactly as the
//! original would, and the original's later inputs do not reach the copy. (The hub fuzz
//! target restarts every input from such a copy.)

mod common;
use common::{client, d};
use nodes::client::core::Command;
use nodes::ids::{Domain, RoomUri};
use nodes::world::MemoryWorld;

/// A hub a.example hosting a room with members on three providers and some traffic.
fn world() -> (MemoryWorld, RoomUri) {
    common::three_provider_room(31, "before the checkpoint")
}

/// What happens after the checkpoint: a message, commits by two members, a removal.
fn go_on(w: &mut MemoryWorld, room: &RoomUri) {
    let (alice, bob, carol) = (
        client("a.example", "alice"),
        client("b.example", "bob"),
        client("c.example", "carol"),
    );
    for (who, cmd) in [
        (
            &carol,
            Command::Send {
                room: room.clone(),
                text: "after".into(),
            },
        ),
        (&bob, Command::SelfUpdate { room: room.clone() }),
        (&alice, Command::SelfUpdate { room: room.clone() }),
        (
            &alice,
            Command::RemoveUser {
                room: room.clone(),
                user: carol.user(),
            },
        ),
        (
            &bob,
            Command::Send {
                room: room.clone(),
                text: "last".into(),
            },
        ),
    ] {
        w.command(who, cmd).unwrap();
    }
}

fn record(w: &MemoryWorld, hub: &Domain, room: &RoomUri) -> String {
    let r = w.server(hub).hub().room(room).unwrap();
    format!(
        "server events {:?}\nclient events {:?}\ndelivered {:?}\nepoch {} view {:?} log {:?} gi {:?} tree {:?} state {:?}",
        w.server_events,
        w.client_events,
        w.delivered,
        r.epoch(),
        r.view().map(|v| (v.epoch(), v.members())),
        r.log().iter().map(|e| (e.seq, &e.fanout)).collect::<Vec<_>>(),
        r.group_info(),
        r.ratchet_tree(),
        r.committed(),
    )
}

#[test]
fn a_checkpointed_server_goes_on_exactly_as_the_original() {
    let hub = d("a.example");
    // Two runs of the same seed are identical; in the second, the hub's server is
    // replaced by a checkpoint of itself before the run goes on.
    let (mut original, room) = world();
    let (mut copied, _) = world();
    let copy = copied.server(&hub).checkpoint().unwrap();
    copied.servers.insert(hub.clone(), copy);
    go_on(&mut original, &room);
    go_on(&mut copied, &room);
    let (a, b) = (record(&original, &hub, &room), record(&copied, &hub, &room));
    // The run after the checkpoint did real work at the hub: 2 adds + 2 updates + 1
    // removal after creation.
    assert!(original.server(&hub).hub().room(&room).unwrap().epoch() >= 5);
    assert_eq!(a, b, "the copy diverged from the original");
}

#[test]
fn the_original_going_on_does_not_touch_the_copy() {
    let hub = d("a.example");
    let (mut w, room) = world();
    let before = w.server(&hub).hub().room(&room).unwrap().epoch();
    let copy = w.server(&hub).checkpoint().unwrap();
    let log_before = copy.hub().room(&room).unwrap().log().len();
    go_on(&mut w, &room);
    let after = w.server(&hub).hub().room(&room).unwrap();
    assert!(
        after.epoch() > before,
        "the run went on (epoch {before} → {})",
        after.epoch()
    );
    let c = copy.hub().room(&room).unwrap();
    assert_eq!(c.epoch(), before);
    assert_eq!(c.log().len(), log_before);
    assert_eq!(c.view().unwrap().epoch(), before);
}
