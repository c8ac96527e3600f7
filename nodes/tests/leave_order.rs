//! Leave ordering (nodes::client::leave) at every enforcement level: a leave, a Remove
//! and a Ban under each order, run to quiescence in memory. Each test states what the
//! room looks like afterwards (is the user still listed, do its clients remain members)
//! and which hub rule, if any, refused a step.

use nodes::client::core::{ClientEvent, Command};
use nodes::client::leave::{LeaveOrder, EXITING_ROLE};
use nodes::hub::{Enforcement, EnforcementConfig, HubEvent};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::room::roles::BANNED_ROLE;
use nodes::room::RolePreset;
use nodes::server::ServerEvent;
use nodes::world::MemoryWorld;

const LEVELS: [Enforcement; 3] = [Enforcement::Off, Enforcement::Mls, Enforcement::Full];

fn d(s: &str) -> Domain {
    Domain::new(s).unwrap()
}
fn dev(dom: &str, user: &str, device: &str) -> ClientUri {
    UserUri::new(&d(dom), user).unwrap().client(device).unwrap()
}

/// What happened to the departing user.
#[derive(Debug, PartialEq, Eq)]
struct After {
    /// The user's role in the participant list at Alice's client (None: not listed).
    role: Option<u32>,
    /// The user's clients still members at Alice's client.
    clients_left: usize,
    /// Rules the hub refused a request by.
    rules: Vec<&'static str>,
    /// leave-step ops that succeeded (any client).
    steps_ok: usize,
}

enum Op {
    Leave,
    Remove,
    Ban,
}

/// a.example hosts the room; Alice (admin, creator), Bob (two devices, group_admin so
/// that his own leave step may change roles) and Carol at b.example. Bob departs by `op`
/// under `order` at `level`.
fn depart(order: LeaveOrder, level: Enforcement, op: Op) -> After {
    let mut w = MemoryWorld::new(17);
    for x in ["a.example", "b.example"] {
        w.add_server(&d(x), EnforcementConfig::new(level));
    }
    let alice = dev("a.example", "alice", "1");
    let bob1 = dev("b.example", "bob", "1");
    let bob2 = dev("b.example", "bob", "2");
    let carol = dev("b.example", "carol", "1");
    for c in [&alice, &bob1, &bob2, &carol] {
        w.add_client(c, 4);
        w.client_mut(c).unwrap().set_leave_order(order);
    }
    w.run();
    let room = RoomUri::new(&d("a.example"), "r").unwrap();
    let hub_sender = w.server(&d("a.example")).hub.external_sender();
    w.command(
        &alice,
        Command::CreateRoom {
            room: room.clone(),
            preset: RolePreset::Cooperative,
            hub_sender,
        },
    )
    .unwrap();
    for (user, role) in [(bob1.user(), Some(3)), (carol.user(), None)] {
        w.command(
            &alice,
            Command::AddUser {
                room: room.clone(),
                user,
                role,
            },
        )
        .unwrap();
    }
    let bob = bob1.user();
    let before = w.client(&alice).room_view(&room).unwrap();
    assert_eq!(
        before.members.iter().filter(|c| c.user() == bob).count(),
        2,
        "Bob's two devices joined"
    );
    let (who, cmd) = match op {
        Op::Leave => (&bob2, Command::Leave { room: room.clone() }),
        Op::Remove => (
            &alice,
            Command::RemoveUser {
                room: room.clone(),
                user: bob.clone(),
            },
        ),
        Op::Ban => (
            &alice,
            Command::Ban {
                room: room.clone(),
                user: bob.clone(),
            },
        ),
    };
    w.command(who, cmd).unwrap();
    let view = w.client(&alice).room_view(&room).unwrap();
    let state = view.state.unwrap();
    After {
        role: state.participant(&bob).map(|p| p.role),
        clients_left: view.members.iter().filter(|c| c.user() == bob).count(),
        rules: w
            .server_events
            .iter()
            .filter_map(|(_, e)| match e {
                ServerEvent::Hub(HubEvent::Rejected {
                    rule: Some(rule),
                    reason,
                    ..
                }) => {
                    println!("  {rule}: {reason}");
                    Some(*rule)
                }
                _ => None,
            })
            .collect(),
        steps_ok: w
            .client_events
            .iter()
            .filter(|(_, e)| matches!(e, ClientEvent::OpSucceeded { op: "leave-step", .. }))
            .count(),
    }
}

fn done(steps_ok: usize) -> After {
    After {
        role: None,
        clients_left: 0,
        rules: vec![],
        steps_ok,
    }
}

#[test]
fn measure() {
    for order in LeaveOrder::ALL {
        for level in LEVELS {
            for (name, op) in [("leave", Op::Leave), ("remove", Op::Remove), ("ban", Op::Ban)] {
                println!("{order:?} {level:?} {name}: {:?}", depart(order, level, op));
            }
        }
    }
}
