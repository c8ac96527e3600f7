//! Structure-aware fuzz of the hub: valid-framed but hostile request sequences from a
//! follower provider against a hub hosting two rooms built through the real code
//! (`MemoryWorld`, real MLS).
//!
//! * The hub `a.example` hosts room `r1` (alice@a, mallory@m: the attacker's provider
//!   `m.example` is in it) and room `r2` (alice@a, bob@b: the attacker is not).
//! * Each input is a sequence of up to [`MAX_STEPS`] requests `From: mimi@m.example` to
//!   the hub's `ServerCore::on_request` (the HTTP adapter authenticates the peer, so the
//!   attacker cannot claim another provider): `/update`, `/submitMessage`, `/groupInfo`,
//!   `/keyMaterial`, `/notify`, `/handoff`, `/fence` for either room (or a room the hub
//!   does not host), with bodies taken from the pool of every real request and fan-out
//!   of the setup (commits, proposals, application messages, GroupInfo requests,
//!   KeyMaterial requests, notifies of both rooms at every epoch) and then mutated:
//!   byte flips, truncation, splices, the rooms' ids and group ids swapped (a message of
//!   one room sent as the other's), epochs shifted, whole bodies replayed.
//! * Checked after every request: the core answers exactly once with a status it uses.
//!   After the sequence: the room the attacker is not in (`r2`) is unchanged: epoch,
//!   members, committed room state, hub state, pending proposals, log, GroupInfo and
//!   tree, muted users, authorised joiners.
//!
//! The world is built once per process; each input starts from a deep copy of the hub's
//! server as built (`Server::checkpoint`: every room, the public views, the seeded
//! streams at their positions), so every input runs against the same state and is
//! reproducible alone. (`nodes/tests/checkpoint.rs` checks that a copy goes on exactly as
//! the original.)
#![no_main]

use std::cell::RefCell;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nodes::client::core::Command;
use nodes::endpoint::Endpoint;
use nodes::hub::{Enforcement, EnforcementConfig};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::io::{Millis, Request, ServerCore, ServerOutput};
use nodes::room::RolePreset;
use nodes::server::Server;
use nodes::world::MemoryWorld;

const SEED: u64 = 12;
const MAX_STEPS: usize = 12;

fn d(s: &str) -> Domain {
    Domain::new(s).unwrap()
}
fn client(dom: &str, user: &str) -> ClientUri {
    UserUri::new(&d(dom), user).unwrap().client("1").unwrap()
}

struct Fixture {
    world: MemoryWorld,
    hub: Domain,
    attacker: Domain,
    r1: RoomUri,
    r2: RoomUri,
}

/// The world: two rooms on hub a.example, traffic in both, everything settled.
fn build() -> Fixture {
    let hub = d("a.example");
    let mut w = MemoryWorld::new(SEED);
    for x in ["a.example", "b.example", "m.example"] {
        w.add_server(&d(x), EnforcementConfig::new(Enforcement::Full));
    }
    let alice = client("a.example", "alice");
    let bob = client("b.example", "bob");
    let mallory = client("m.example", "mallory");
    for c in [&alice, &bob, &mallory] {
        w.add_client(c, 4);
    }
    w.record_requests = true;
    w.record_deliveries = true;
    w.run();
    let r1 = w
        .create_room(&alice, "r1", RolePreset::Cooperative)
        .unwrap();
    let r2 = w
        .create_room(&alice, "r2", RolePreset::Cooperative)
        .unwrap();
    let add = |w: &mut MemoryWorld, room: &RoomUri, who: &ClientUri| {
        w.command(
            &alice,
            Command::AddUser {
                room: room.clone(),
                user: who.user(),
                role: None,
            },
        )
        .unwrap();
    };
    add(&mut w, &r1, &mallory);
    add(&mut w, &r2, &bob);
    let send = |w: &mut MemoryWorld, c: &ClientUri, room: &RoomUri, text: &str| {
        w.command(
            c,
            Command::Send {
                room: room.clone(),
                text: text.into(),
            },
        )
        .unwrap();
    };
    send(&mut w, &bob, &r2, "hello r2");
    send(&mut w, &mallory, &r1, "hello r1");
    w.command(&bob, Command::SelfUpdate { room: r2.clone() })
        .unwrap();
    w.command(&mallory, Command::SelfUpdate { room: r1.clone() })
        .unwrap();
    send(&mut w, &alice, &r2, "again r2");
    send(&mut w, &mallory, &r1, "again r1");
    Fixture {
        world: w,
        hub,
        attacker: d("m.example"),
        r1,
        r2,
    }
}

/// Bodies to replay and mutate: every request that reached any server during setup,
/// and every fan-out delivered, as a `/notify` body (one FanoutMessage).
struct Pool {
    bodies: Vec<Vec<u8>>,
    /// Equal-length byte strings to swap: the rooms' URIs and group ids.
    swaps: Vec<(Vec<u8>, Vec<u8>)>,
    group_ids: Vec<Vec<u8>>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let f = build();
        let mut bodies: Vec<Vec<u8>> = f.world.requests.iter().map(|r| r.body.clone()).collect();
        bodies.extend(f.world.delivered.iter().map(|(_, _, b)| b.clone()));
        bodies.sort();
        bodies.dedup();
        let gid = |r: &RoomUri| {
            f.world
                .server(&f.hub)
                .hub()
                .room(r)
                .unwrap()
                .group_id()
                .to_vec()
        };
        let (g1, g2) = (gid(&f.r1), gid(&f.r2));
        let mut swaps = vec![(f.r1.as_bytes().to_vec(), f.r2.as_bytes().to_vec())];
        if g1.len() == g2.len() {
            swaps.push((g1.clone(), g2.clone()));
        }
        if let Ok(dir) = std::env::var("MIMI_FUZZ_SEED_DIR") {
            // Seeds for the `wire` target: each body behind every selector byte that
            // could decode it.
            let _ = std::fs::create_dir_all(&dir);
            for (i, b) in bodies.iter().enumerate() {
                for sel in 0u8..10 {
                    let mut s = vec![sel];
                    s.extend_from_slice(b);
                    let _ = std::fs::write(format!("{dir}/pool-{i:03}-{sel}"), s);
                }
            }
        }
        Pool {
            bodies,
            swaps,
            group_ids: vec![g1, g2],
        }
    })
}

#[derive(Arbitrary, Debug)]
enum Ep {
    Update,
    SubmitMessage,
    GroupInfo,
    KeyMaterial,
    Notify,
    Handoff,
    Fence,
}

#[derive(Arbitrary, Debug)]
enum RoomPick {
    /// r1, the attacker's room.
    Own,
    /// r2, the victim room.
    Victim,
    /// A room of the hub's domain it does not host.
    Unknown,
    /// A room of another domain.
    Elsewhere,
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    Flip {
        at: u16,
        xor: u8,
    },
    Truncate {
        len: u16,
    },
    Splice {
        at: u16,
        bytes: Vec<u8>,
    },
    Delete {
        at: u16,
        len: u8,
    },
    /// Swap the two rooms' URIs (or group ids): a message of one room as the other's.
    SwapIds {
        which: u8,
    },
    /// Add `delta` to the epoch that follows the first group id in the body.
    Epoch {
        delta: i8,
    },
    /// Concatenate another pool body (several FanoutMessages in one `/notify`).
    Append {
        index: u16,
    },
}

#[derive(Arbitrary, Debug)]
enum Body {
    Pool {
        index: u16,
        mutations: Vec<Mutation>,
    },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Step {
    endpoint: Ep,
    room: RoomPick,
    body: Body,
    advance_ms: u16,
}

fn replace_all(b: &mut Vec<u8>, from: &[u8], to: &[u8]) {
    if from.is_empty() || from.len() != to.len() || b.len() < from.len() {
        return;
    }
    let mut i = 0;
    while i + from.len() <= b.len() {
        if &b[i..i + from.len()] == from {
            b[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
}

fn body(p: &Pool, b: &Body) -> Vec<u8> {
    let (index, mutations) = match b {
        Body::Raw(v) => return v.clone(),
        Body::Pool { index, mutations } => (index, mutations),
    };
    let mut v = p.bodies[usize::from(*index) % p.bodies.len()].clone();
    for m in mutations.iter().take(8) {
        match m {
            Mutation::Flip { at, xor } => {
                if !v.is_empty() {
                    let i = usize::from(*at) % v.len();
                    v[i] ^= xor;
                }
            }
            Mutation::Truncate { len } => v.truncate(usize::from(*len)),
            Mutation::Splice { at, bytes } => {
                let i = usize::from(*at) % (v.len() + 1);
                v.splice(i..i, bytes.iter().copied().take(64));
            }
            Mutation::Delete { at, len } => {
                let i = usize::from(*at) % (v.len() + 1);
                let j = (i + usize::from(*len)).min(v.len());
                v.drain(i..j);
            }
            Mutation::SwapIds { which } => {
                let (a, b) = &p.swaps[usize::from(*which) % p.swaps.len()];
                let marker = vec![0xffu8; a.len()];
                replace_all(&mut v, a, &marker);
                replace_all(&mut v, b, a);
                replace_all(&mut v, &marker, b);
            }
            Mutation::Epoch { delta } => {
                for g in &p.group_ids {
                    if let Some(i) = v.windows(g.len()).position(|w| w == g.as_slice()) {
                        let at = i + g.len();
                        if let Some(e) = v.get_mut(at..at + 8) {
                            let epoch = u64::from_be_bytes(e.try_into().unwrap());
                            let epoch = epoch.wrapping_add_signed(i64::from(*delta));
                            e.copy_from_slice(&epoch.to_be_bytes());
                        }
                        break;
                    }
                }
            }
            Mutation::Append { index } => {
                let other = &p.bodies[usize::from(*index) % p.bodies.len()];
                v.extend_from_slice(other);
            }
        }
    }
    v
}

/// The hub's server as built, and what each input needs to address it.
struct Base {
    server: Server,
    hub: Domain,
    attacker: Domain,
    r1: RoomUri,
    r2: RoomUri,
    now: Millis,
    /// `fingerprint` of r2 as built.
    r2_before: u64,
}

thread_local! {
    static BASE: RefCell<Option<Base>> = const { RefCell::new(None) };
}

fn base() -> Base {
    let f = build();
    let server = f
        .world
        .server(&f.hub)
        .checkpoint()
        .expect("the built hub copies");
    let r2_before = fingerprint(&server, &f.r2);
    Base {
        server,
        hub: f.hub.clone(),
        attacker: f.attacker.clone(),
        r1: f.r1.clone(),
        r2: f.r2.clone(),
        now: f.world.now,
        r2_before,
    }
}

/// A hash of [`snapshot`] without formatting the bytes (the bulk of it: log entries,
/// GroupInfo, tree) as text: computed after every input, while `snapshot` itself only
/// describes a difference once one is found.
fn fingerprint(server: &Server, room: &RoomUri) -> u64 {
    let r = server.hub().room(room).expect("room hosted");
    let mut h = DefaultHasher::new();
    r.epoch().hash(&mut h);
    r.group_info().hash(&mut h);
    r.ratchet_tree().hash(&mut h);
    for e in r.log() {
        (e.seq, &e.fanout, e.epoch).hash(&mut h);
    }
    for p in r.pending() {
        p.message.hash(&mut h);
    }
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?}",
        r.view().map(|v| (v.epoch(), v.members())),
        r.committed(),
        r.hub_state(),
        r.muted(),
        r.authorized_joiners(),
        r.sequencer(),
    )
    .hash(&mut h);
    h.finish()
}

/// Everything about a room that a request from outside it must not change.
fn snapshot(server: &Server, room: &RoomUri) -> String {
    let r = server.hub().room(room).expect("room hosted");
    let view = r.view().map(|v| (v.epoch(), v.members()));
    let pending: Vec<&Vec<u8>> = r.pending().iter().map(|p| &p.message).collect();
    let log: Vec<(u64, &Vec<u8>, u64)> = r
        .log()
        .iter()
        .map(|e| (e.seq, &e.fanout, e.epoch))
        .collect();
    format!(
        "epoch {} view {:?} committed {:?} hub_state {:?} pending {:?} log {:?} gi {:?} tree {:?} muted {:?} joiners {:?} sequencer {:?}",
        r.epoch(),
        view,
        r.committed(),
        r.hub_state(),
        pending,
        log,
        r.group_info(),
        r.ratchet_tree(),
        r.muted(),
        r.authorized_joiners(),
        r.sequencer(),
    )
}

fn known_status(s: u16) -> bool {
    matches!(s, 200 | 201 | 400 | 403 | 404 | 409 | 413 | 421 | 500 | 503)
}

fuzz_target!(|steps: Vec<Step>| {
    let p = pool();
    BASE.with(|b| {
        let mut b = b.borrow_mut();
        let b = b.get_or_insert_with(base);
        let mut server = b.server.checkpoint().expect("the built hub copies");
        run(b, &mut server, p, &steps);
        if fingerprint(&server, &b.r2) != b.r2_before {
            // Say what changed.
            assert_eq!(
                snapshot(&b.server, &b.r2),
                snapshot(&server, &b.r2),
                "the victim room r2 changed"
            );
            panic!("the victim room r2 changed (its fingerprint; the snapshots agree)");
        }
    });
});

fn run(b: &Base, server: &mut Server, p: &Pool, steps: &[Step]) {
    let mut now = b.now;
    let unknown = RoomUri::new(&b.hub, "nowhere").unwrap();
    let elsewhere = RoomUri::new(&d("b.example"), "r2").unwrap();
    let alice = UserUri::new(&b.hub, "alice").unwrap();
    for (id, s) in steps.iter().take(MAX_STEPS).enumerate() {
        let room = match s.room {
            RoomPick::Own => b.r1.clone(),
            RoomPick::Victim => b.r2.clone(),
            RoomPick::Unknown => unknown.clone(),
            RoomPick::Elsewhere => elsewhere.clone(),
        };
        let endpoint = match s.endpoint {
            Ep::Update => Endpoint::Update(room),
            Ep::SubmitMessage => Endpoint::SubmitMessage(room),
            Ep::GroupInfo => Endpoint::GroupInfo(room),
            Ep::KeyMaterial => Endpoint::KeyMaterial(alice.clone()),
            Ep::Notify => Endpoint::Notify(room),
            Ep::Handoff => Endpoint::Handoff(room),
            Ep::Fence => Endpoint::Fence(room),
        };
        now += u64::from(s.advance_ms);
        let id = id as u64 + 1_000_000;
        let out = server.on_request(
            now,
            id,
            Request {
                from: b.attacker.clone(),
                to: b.hub.clone(),
                endpoint: endpoint.clone(),
                body: body(p, &s.body),
            },
        );
        let answers: Vec<u16> = out
            .iter()
            .filter_map(|o| match o {
                ServerOutput::Respond { id: i, response } if *i == id => Some(response.status),
                _ => None,
            })
            .collect();
        assert!(answers.len() <= 1, "{endpoint:?}: answered {answers:?}");
        assert!(answers.iter().all(|s| known_status(*s)), "{answers:?}");
        let _ = server.take_events();
    }
}
