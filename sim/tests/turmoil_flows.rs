//! The draft's flows over real HTTP/1.1 (hyper) on turmoil TCP: three provider hosts
//! running the server cores, clients attached to their provider in-process. No faults yet
//! (the fault schedule is the simulator's next step); this shows the same cores run
//! unchanged over the network and converge.

use std::collections::BTreeMap;
use std::time::Duration;

use mimi_sim::world::net::{self, HostConfig, HostHandle, Trace};
use nodes::client::core::{Client, ClientEvent, Command};
use nodes::hub::{Enforcement, EnforcementConfig};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::io::ClientOutput;
use nodes::room::RolePreset;
use nodes::server::Server;

struct World<'a> {
    sim: turmoil::Sim<'a>,
    hosts: BTreeMap<Domain, HostHandle>,
    clients: BTreeMap<ClientUri, Client>,
    events: Vec<(ClientUri, ClientEvent)>,
}

impl World<'_> {
    fn send(&mut self, from: &ClientUri, out: Vec<ClientOutput>) {
        for o in out {
            let ClientOutput::ToProvider(m) = o;
            self.hosts[&from.domain()].send_from_client(from.clone(), m);
        }
    }

    /// Step the simulation for `ms` simulated milliseconds, delivering provider messages
    /// to clients after every step.
    fn settle(&mut self, ms: u64) {
        let end = self.sim.elapsed() + Duration::from_millis(ms);
        while self.sim.elapsed() < end {
            let now = net::EPOCH_MS + self.sim.elapsed().as_millis() as u64;
            let deliveries: Vec<_> = self
                .hosts
                .values()
                .flat_map(|h| h.drain_to_clients())
                .collect();
            for (c, m) in deliveries {
                let Some(cl) = self.clients.get_mut(&c) else {
                    continue;
                };
                let out = cl.on_message(now, m);
                for e in cl.take_events() {
                    self.events.push((c.clone(), e));
                }
                self.send(&c, out);
            }
            self.sim.step().expect("no host fails");
        }
    }

    fn command(&mut self, c: &ClientUri, cmd: Command) {
        let now = net::EPOCH_MS + self.sim.elapsed().as_millis() as u64;
        let out = self.clients.get_mut(c).unwrap().command(now, cmd).unwrap();
        self.send(c, out);
        self.settle(3_000);
    }

    fn add_client(&mut self, seed: u64, c: &ClientUri) {
        let mut cl = Client::new(seed, c.clone());
        let out = cl.publish_key_packages(3);
        self.clients.insert(c.clone(), cl);
        self.send(c, vec![out]);
    }
}

struct Cast {
    a: Domain,
    alice: ClientUri,
    bob: ClientUri,
    cathy1: ClientUri,
    cathy2: ClientUri,
    room: RoomUri,
}

fn cast() -> Cast {
    let d = |s: &str| Domain::new(s).unwrap();
    let (a, b, c) = (d("a.example"), d("b.example"), d("c.example"));
    let cl = |dom: &Domain, u: &str, dev: &str| UserUri::new(dom, u).unwrap().client(dev).unwrap();
    Cast {
        alice: cl(&a, "alice", "1"),
        bob: cl(&b, "bob", "1"),
        cathy1: cl(&c, "cathy", "1"),
        cathy2: cl(&c, "cathy", "2"),
        room: RoomUri::new(&a, "clubhouse").unwrap(),
        a,
    }
}

fn world<'a>(seed: u64, trace: &Trace) -> World<'a> {
    let mut builder = net::sim_builder(seed);
    builder
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(20));
    let mut sim = builder.build();
    let mut hosts = BTreeMap::new();
    for name in ["a.example", "b.example", "c.example"] {
        let dom = Domain::new(name).unwrap();
        let dd = dom.clone();
        let h = net::spawn_host(
            &mut sim,
            dom.clone(),
            HostConfig::default(),
            trace,
            move || Server::new(dd.clone(), seed, EnforcementConfig::new(Enforcement::Full)),
        );
        hosts.insert(dom, h);
    }
    let n = cast();
    let mut w = World {
        sim,
        hosts,
        clients: BTreeMap::new(),
        events: Vec::new(),
    };
    for c in [&n.alice, &n.bob, &n.cathy1, &n.cathy2] {
        w.add_client(seed, c);
    }
    w.settle(100);
    w
}

/// A partition between the hub and Bob's provider while Cathy sends: the hub's `/notify`
/// fails and is retried with the byte-identical body; after the repair Bob receives the
/// message exactly once (P§5.5).
#[test]
fn notify_is_retried_across_a_partition_and_delivered_once() {
    let seed = 9;
    let trace = Trace::new();
    let mut w = world(seed, &trace);
    let n = cast();
    let hub_sender =
        nodes::hub::Hub::new(n.a.clone(), seed, EnforcementConfig::new(Enforcement::Full))
            .external_sender();
    w.command(
        &n.alice,
        Command::CreateRoom {
            room: n.room.clone(),
            preset: RolePreset::Cooperative,
            hub_sender,
        },
    );
    w.command(
        &n.alice,
        Command::AddUser {
            room: n.room.clone(),
            user: n.bob.user(),
            role: Some(3),
        },
    );
    w.command(
        &n.bob,
        Command::AddUser {
            room: n.room.clone(),
            user: n.cathy1.user(),
            role: None,
        },
    );
    w.sim.partition("a.example", "b.example");
    w.command(
        &n.cathy1,
        Command::Send {
            room: n.room.clone(),
            text: "through the storm".into(),
        },
    );
    let count = |w: &World, by: &ClientUri| {
        w.events
            .iter()
            .filter(|(c, e)| c == by && matches!(e, ClientEvent::MessageReceived { text, .. } if text == "through the storm"))
            .count()
    };
    assert_eq!(count(&w, &n.alice), 1, "the hub's own provider got it");
    assert_eq!(count(&w, &n.bob), 0, "Bob's provider is cut off");
    w.sim.repair("a.example", "b.example");
    w.settle(15_000);
    assert_eq!(count(&w, &n.bob), 1, "delivered once after the repair");
    let failed_attempts = trace
        .events()
        .iter()
        .filter(|e| e.host == n.a && matches!(&e.what, net::What::Outcome { result: Err(_), .. }))
        .count();
    assert!(
        failed_attempts >= 1,
        "the hub's /notify to b.example failed and was retried"
    );
    let v = w.clients[&n.bob].room_view(&n.room).unwrap();
    assert_eq!(
        v.epoch,
        w.clients[&n.cathy1].room_view(&n.room).unwrap().epoch
    );
}

fn run(seed: u64) -> Vec<(ClientUri, ClientEvent)> {
    let d = |s: &str| Domain::new(s).unwrap();
    let (a, b, c) = (d("a.example"), d("b.example"), d("c.example"));
    let cl = |dom: &Domain, u: &str, dev: &str| UserUri::new(dom, u).unwrap().client(dev).unwrap();
    let (alice, bob, cathy1, cathy2) = (
        cl(&a, "alice", "1"),
        cl(&b, "bob", "1"),
        cl(&c, "cathy", "1"),
        cl(&c, "cathy", "2"),
    );
    let room = RoomUri::new(&a, "clubhouse").unwrap();

    let mut builder = net::sim_builder(seed);
    builder
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(20));
    let mut sim = builder.build();
    let trace = Trace::new();
    let mut hosts = BTreeMap::new();
    for dom in [&a, &b, &c] {
        let dd = dom.clone();
        let h = net::spawn_host(
            &mut sim,
            dom.clone(),
            HostConfig::default(),
            &trace,
            move || Server::new(dd.clone(), seed, EnforcementConfig::new(Enforcement::Full)),
        );
        hosts.insert(dom.clone(), h);
    }
    let mut w = World {
        sim,
        hosts,
        clients: BTreeMap::new(),
        events: Vec::new(),
    };
    for c in [&alice, &bob, &cathy1, &cathy2] {
        w.add_client(seed, c);
    }
    w.settle(100);
    // The hub's external-sender identity derives from the seed and its domain alone.
    let hub_sender =
        nodes::hub::Hub::new(a.clone(), seed, EnforcementConfig::new(Enforcement::Full))
            .external_sender();

    w.command(
        &alice,
        Command::CreateRoom {
            room: room.clone(),
            preset: RolePreset::Cooperative,
            hub_sender,
        },
    );
    w.command(
        &alice,
        Command::AddUser {
            room: room.clone(),
            user: bob.user(),
            role: Some(3),
        },
    );
    w.command(
        &bob,
        Command::AddUser {
            room: room.clone(),
            user: cathy1.user(),
            role: None,
        },
    );
    w.command(
        &cathy1,
        Command::Send {
            room: room.clone(),
            text: "hi over http".into(),
        },
    );
    w.command(&alice, Command::Leave { room: room.clone() });
    w.command(&cathy2, Command::JoinExternal { room: room.clone() });
    w.command(
        &cathy2,
        Command::Send {
            room: room.clone(),
            text: "new phone".into(),
        },
    );
    w.command(
        &bob,
        Command::Ban {
            room: room.clone(),
            user: cathy1.user(),
        },
    );

    // Only Bob is left; everyone who processed epoch 5 agrees.
    let v = w.clients[&bob].room_view(&room).expect("bob is a member");
    assert_eq!(v.epoch, 5);
    assert_eq!(v.members, vec![bob.clone()]);
    for c in [&alice, &cathy1, &cathy2] {
        assert!(w.clients[c].room_view(&room).is_none(), "{c} was removed");
    }
    let got = |by: &ClientUri, t: &str| {
        w.events.iter().any(|(c, e)| {
            c == by && matches!(e, ClientEvent::MessageReceived { text, .. } if text == t)
        })
    };
    assert!(got(&alice, "hi over http") && got(&bob, "hi over http"));
    assert!(got(&bob, "new phone") && got(&cathy1, "new phone"));
    let failed: Vec<_> = w
        .events
        .iter()
        .filter(|(_, e)| matches!(e, ClientEvent::OpFailed { .. }))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(trace.len() > 50, "requests went over HTTP on turmoil");
    w.events
}

#[test]
fn the_drafts_flows_over_http_on_turmoil() {
    let a = format!("{:?}", run(5));
    let b = format!("{:?}", run(5));
    assert_eq!(a, b, "same seed, same client events");
}
