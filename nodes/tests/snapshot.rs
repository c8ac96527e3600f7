//! `Server::snapshot_state` / `Server::restore`: a provider's server taken apart into plain
//! data (room log, public group, fan-out queue, follower state, the rest), encoded as the
//! testbed stores it (CBOR), and put back into a freshly built server, goes on exactly as
//! the original: the same next inputs give byte-identical outputs.

mod common;
use common::{client, d};
use nodes::adversary::Adversary;
use nodes::client::core::Command;
use nodes::endpoint::Endpoint;
use nodes::hub::{Enforcement, EnforcementConfig};
use nodes::ids::RoomUri;
use nodes::io::{Request, Response, ServerCore};
use nodes::server::{Server, ServerSnapshot, SnapshotError};
use nodes::world::MemoryWorld;

const SEED: u64 = 31;

fn config() -> EnforcementConfig {
    EnforcementConfig::new(Enforcement::Full)
}

/// The drafts' flows at hub a.example: alice creates a room, adds bob and carol (other
/// providers), bob sends a message; then carol sends one and the world runs only until
/// its fan-out is on its way to a follower (a `/notify` in flight, answer not back).
fn world() -> (MemoryWorld, RoomUri) {
    let (mut w, room) = common::three_provider_room(SEED, "fanned out");
    w.queue_command(
        &client("c.example", "carol"),
        Command::Send {
            room: room.clone(),
            text: "still queued".into(),
        },
    )
    .unwrap();
    // Bounded: the message reaches the hub within a few work items.
    for _ in 0..100 {
        let queued = w
            .server(&d("a.example"))
            .hub()
            .room(&room)
            .unwrap()
            .outbound()
            .values()
            .any(|o| o.in_flight.as_ref().is_some_and(|f| f.token.is_some()));
        if queued {
            return (w, room);
        }
        assert!(w.step(), "the world settled before a /notify was in flight");
    }
    panic!("no /notify in flight after 100 work items");
}

/// The snapshot encoded and decoded as the testbed's `state.db` holds it.
fn through_cbor(s: &ServerSnapshot) -> ServerSnapshot {
    let mut bytes = Vec::new();
    ciborium::into_writer(s, &mut bytes).unwrap();
    ciborium::from_reader(bytes.as_slice()).unwrap()
}

fn cbor(s: &ServerSnapshot) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::into_writer(s, &mut bytes).unwrap();
    bytes
}

fn restored(original: &Server, seed: u64) -> Result<Server, SnapshotError> {
    let snapshot = through_cbor(&original.snapshot_state()?);
    let mut s = Server::new(d("a.example"), seed, config());
    s.restore(snapshot)?;
    Ok(s)
}

#[test]
fn a_restored_server_answers_the_next_inputs_byte_for_byte_as_the_original() {
    let (w, room) = world();
    let hub = d("a.example");
    let original = w.server(&hub);
    let snapshot = original.snapshot_state().unwrap();
    // The snapshot holds what the flows built: the room log with the messages, the
    // public group, one fan-out still queued.
    let r = &snapshot.rooms[&room];
    let live = original.hub().room(&room).unwrap();
    assert_eq!(r.log.len(), live.log().len());
    assert!(r.log.len() >= 4, "{} log entries", r.log.len());
    assert!(r
        .log
        .iter()
        .zip(live.log())
        .all(|(s, l)| s.message == l.fanout));
    assert!(r
        .public_group
        .as_ref()
        .is_some_and(|g| !g.entries.is_empty()));
    let in_flight: Vec<_> = r
        .fanout_queue
        .iter()
        .filter_map(|(to, o)| o.in_flight.as_ref().and_then(|f| f.token).map(|t| (to, t)))
        .collect();
    assert!(!in_flight.is_empty(), "{:?}", r.fanout_queue);

    let mut a = original.checkpoint().unwrap();
    let mut b = restored(original, SEED).unwrap();
    // Restoring and snapshotting again gives the same bytes.
    assert_eq!(cbor(&b.snapshot_state().unwrap()), cbor(&snapshot));
    let now = w.now + 1;
    let (_, token) = in_flight[0];
    // The queued /notify is answered, a follower asks for the GroupInfo, a commit that
    // is not one arrives, time passes, the server restarts.
    assert_eq!(
        a.on_response(now, token, Ok(Response::empty(201))),
        b.on_response(now, token, Ok(Response::empty(201)))
    );
    let request = |endpoint: Endpoint, body: Vec<u8>| Request {
        from: d("b.example"),
        to: d("a.example"),
        endpoint,
        body,
    };
    for (i, req) in [
        request(Endpoint::GroupInfo(room.clone()), vec![1, 2, 3]),
        request(Endpoint::Update(room.clone()), vec![0; 40]),
        request(Endpoint::SubmitMessage(room.clone()), vec![9; 12]),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            a.on_request(now + 1, i as u64, req.clone()),
            b.on_request(now + 1, i as u64, req)
        );
    }
    for t in [now + 10, now + 60_000] {
        assert_eq!(a.on_tick(t), b.on_tick(t));
    }
    let restart = (a.on_restart(now + 70_000), b.on_restart(now + 70_000));
    assert!(!restart.0.is_empty(), "the restart resends the fan-out");
    assert_eq!(restart.0, restart.1);
    assert_eq!(a.take_events(), b.take_events());
    assert_eq!(
        cbor(&a.snapshot_state().unwrap()),
        cbor(&b.snapshot_state().unwrap())
    );
}

#[test]
fn a_world_whose_hub_was_restored_runs_on_as_the_original() {
    let hub = d("a.example");
    let (mut original, room) = world();
    let (mut copied, _) = world();
    let copy = restored(copied.server(&hub), SEED).unwrap();
    copied.servers.insert(hub.clone(), copy);
    for w in [&mut original, &mut copied] {
        w.run();
        w.command(
            &client("a.example", "alice"),
            Command::RemoveUser {
                room: room.clone(),
                user: client("c.example", "carol").user(),
            },
        )
        .unwrap();
        w.command(
            &client("b.example", "bob"),
            Command::Send {
                room: room.clone(),
                text: "after".into(),
            },
        )
        .unwrap();
    }
    assert_eq!(original.server_events, copied.server_events);
    assert_eq!(original.client_events, copied.client_events);
    assert_eq!(original.delivered, copied.delivered);
    let (a, b) = (
        original.server(&hub).snapshot_state().unwrap(),
        copied.server(&hub).snapshot_state().unwrap(),
    );
    assert_eq!(cbor(&a), cbor(&b));
}

#[test]
fn a_snapshot_is_refused_for_an_adversary_and_into_another_seed_or_provider() {
    let (w, _) = world();
    let original = w.server(&d("a.example"));
    let e = restored(original, SEED + 1).err().unwrap();
    assert!(matches!(e, SnapshotError::OtherStream { .. }), "{e}");
    let mut other = Server::new(d("b.example"), SEED, config());
    let e = other
        .restore(original.snapshot_state().unwrap())
        .err()
        .unwrap();
    assert!(matches!(e, SnapshotError::OtherProvider { .. }), "{e}");
    let malicious =
        Server::new(d("c.example"), SEED, config()).with_adversary(Some(Adversary::DropFanout));
    let e = malicious.snapshot_state().err().unwrap();
    assert!(matches!(e, SnapshotError::Adversary { .. }), "{e}");
    assert!(e.to_string().contains("malicious provider"), "{e}");
}
