//! The draft's flows over real HTTP/1.1 (hyper) on turmoil TCP: three provider hosts
//! running the server cores, clients attached to their provider in-process. No faults yet
//! (the fault schedule is the simulator's next step); this shows the same cores run
//! unchanged over the network and converge.

use std::collections::BTreeMap;
use std::time::Duration;

use mimi_sim::net::{self, HostConfig, HostHandle, Trace};
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
