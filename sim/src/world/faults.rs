//! The fault plan of a run: the scenario's fixed schedule plus the seeded swarm, as
//! windows [start, end) that the driver opens and closes, and the bookkeeping that turns
//! overlapping windows on one link into turmoil's link states.
//!
//! # Choices
//! * Every window ends at healing at the latest (`phases.chaos_ms`).
//! * The swarm draws from its own ChaCha8 stream, seeded from the run seed, so adding a
//!   swarm never changes what turmoil draws for latency.
//! * Overlaps on one link are counted per kind; the link's effective state is: any
//!   partition or flap ⇒ partitioned both ways; else held if any hold; one-way partitions
//!   apply per direction. Releasing the last hold delivers what was held (reordering).
//! * `loss` sets turmoil's per-link fail rate (each send may put the link in a random
//!   partition that drops in-flight messages both ways; it repairs at rate 0.5 per send).

use std::collections::BTreeMap;
use std::time::Duration;

use mimi_reports::records::trace::Fault as TraceFault;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::scenario::{Fault, Resolved, Scenario};

/// Rate at which a lossy link repairs itself per send (turmoil's `repair_rate`).
pub const LOSS_REPAIR_RATE: f64 = 0.5;

/// One fault window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub start_ms: u64,
    pub end_ms: u64,
    pub fault: Fault,
    /// "schedule" or "swarm".
    pub origin: &'static str,
}

impl Window {
    /// The window as a trace line's `fault` (`fault-start`, `fault-end`).
    pub fn describe(&self) -> TraceFault {
        let mut f = TraceFault {
            kind: self.fault.kind().to_string(),
            provider: None,
            client: None,
            a: None,
            b: None,
            from: None,
            to: None,
            rate: None,
            min_ms: None,
            max_ms: None,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            origin: self.origin.to_string(),
        };
        let link = |f: &mut TraceFault, a: &str, b: &str| {
            f.a = Some(a.to_string());
            f.b = Some(b.to_string());
        };
        match &self.fault {
            Fault::Partition { a, b } | Fault::Hold { a, b } | Fault::Flap { a, b } => {
                link(&mut f, a, b)
            }
            Fault::PartitionOneway { from, to } => {
                f.from = Some(from.clone());
                f.to = Some(to.clone());
            }
            Fault::Loss { a, b, rate } => {
                link(&mut f, a, b);
                f.rate = Some(*rate);
            }
            Fault::Latency {
                a,
                b,
                min_ms,
                max_ms,
            } => {
                link(&mut f, a, b);
                f.min_ms = Some(*min_ms);
                f.max_ms = Some(*max_ms);
            }
            Fault::Crash { provider } => f.provider = Some(provider.clone()),
            Fault::Offline { client } => f.client = Some(client.clone()),
        }
        f
    }
}

fn uniform(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        return lo;
    }
    lo + rng.next_u64() % (hi - lo + 1)
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[(rng.next_u64() % items.len() as u64) as usize]
}

/// The windows of a run, sorted by start time (then by origin and position).
pub fn plan(s: &Scenario, r: &Resolved, seed: u64) -> Vec<Window> {
    let chaos = s.phases.chaos_ms;
    let mut out: Vec<Window> = s
        .faults
        .schedule
        .iter()
        .map(|f| {
            let f = f.get_ref();
            Window {
                start_ms: f.at_ms,
                end_ms: f.at_ms.saturating_add(f.for_ms).min(chaos),
                fault: f.fault.clone(),
                origin: "schedule",
            }
        })
        .filter(|w| w.start_ms < chaos)
        .collect();
    if let Some(sw) = &s.faults.swarm {
        let sw = sw.get_ref();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5357_4152_4d00_0000);
        let names: Vec<String> = r.providers.iter().map(|d| d.as_str().to_string()).collect();
        let mut pairs = Vec::new();
        for (i, a) in names.iter().enumerate() {
            for b in names.iter().skip(i + 1) {
                pairs.push((a.clone(), b.clone()));
            }
        }
        let clients: Vec<String> = r
            .clients
            .iter()
            .map(|c| format!("{}/{}", c.user().name(), c.device()))
            .collect();
        for kind in &sw.kinds {
            let n = uniform(&mut rng, u64::from(sw.count[0]), u64::from(sw.count[1]));
            for _ in 0..n {
                let start = uniform(&mut rng, 0, chaos.saturating_sub(1));
                let dur = uniform(&mut rng, sw.duration_ms[0], sw.duration_ms[1]);
                let fault = match kind.as_str() {
                    "partition" | "hold" | "flap" | "loss" | "latency" => {
                        let (a, b) = pick(&mut rng, &pairs).clone();
                        match kind.as_str() {
                            "partition" => Fault::Partition { a, b },
                            "hold" => Fault::Hold { a, b },
                            "flap" => Fault::Flap { a, b },
                            "loss" => Fault::Loss {
                                a,
                                b,
                                rate: f64::from(sw.loss_percent) / 100.0,
                            },
                            _ => {
                                let lo =
                                    uniform(&mut rng, sw.slow_latency_ms[0], sw.slow_latency_ms[1]);
                                let hi = uniform(&mut rng, lo, sw.slow_latency_ms[1]);
                                Fault::Latency {
                                    a,
                                    b,
                                    min_ms: lo,
                                    max_ms: hi,
                                }
                            }
                        }
                    }
                    "partition-oneway" => {
                        let (a, b) = pick(&mut rng, &pairs).clone();
                        let (from, to) = if rng.next_u64() % 2 == 0 {
                            (a, b)
                        } else {
                            (b, a)
                        };
                        Fault::PartitionOneway { from, to }
                    }
                    "crash" => Fault::Crash {
                        provider: pick(&mut rng, &names).clone(),
                    },
                    _ => Fault::Offline {
                        client: pick(&mut rng, &clients).clone(),
                    },
                };
                out.push(Window {
                    start_ms: start,
                    end_ms: start.saturating_add(dur).min(chaos),
                    fault,
                    origin: "swarm",
                });
            }
        }
    }
    out.sort_by_key(|w| w.start_ms);
    out
}

/// Counts of the windows open on one link (a, b with a < b).
#[derive(Debug, Clone, Copy, Default)]
struct LinkState {
    partition: u32,
    hold: u32,
    /// One-way partitions a→b and b→a.
    oneway: [u32; 2],
    loss: u32,
    latency: u32,
}

/// Link bookkeeping over a turmoil simulation.
#[derive(Default)]
pub struct Links {
    links: BTreeMap<(String, String), LinkState>,
    /// The scenario's default latency range.
    pub default_latency: (Duration, Duration),
}

fn key(a: &str, b: &str) -> ((String, String), bool) {
    if a <= b {
        ((a.to_string(), b.to_string()), false)
    } else {
        ((b.to_string(), a.to_string()), true)
    }
}

impl Links {
    /// Links whose default latency range is `default_latency`.
    pub fn new(default_latency: (Duration, Duration)) -> Self {
        Links {
            links: BTreeMap::new(),
            default_latency,
        }
    }

    /// Opens (`open = true`) or closes a link fault and applies the effective state.
    pub fn apply(&mut self, sim: &mut turmoil::Sim<'_>, fault: &Fault, open: bool) {
        let delta = |n: &mut u32| {
            if open {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        };
        let (a, b) = match fault {
            Fault::Partition { a, b } | Fault::Flap { a, b } => {
                let (k, _) = key(a, b);
                delta(&mut self.links.entry(k).or_default().partition);
                (a, b)
            }
            Fault::Hold { a, b } => {
                let (k, _) = key(a, b);
                delta(&mut self.links.entry(k).or_default().hold);
                (a, b)
            }
            Fault::PartitionOneway { from, to } => {
                let (k, rev) = key(from, to);
                delta(&mut self.links.entry(k).or_default().oneway[usize::from(rev)]);
                (from, to)
            }
            Fault::Loss { a, b, rate } => {
                let (k, _) = key(a, b);
                let st = self.links.entry(k).or_default();
                delta(&mut st.loss);
                sim.set_link_fail_rate(
                    a.as_str(),
                    b.as_str(),
                    if st.loss > 0 { *rate } else { 0.0 },
                );
                (a, b)
            }
            Fault::Latency {
                a,
                b,
                min_ms,
                max_ms,
            } => {
                let (k, _) = key(a, b);
                let st = self.links.entry(k).or_default();
                delta(&mut st.latency);
                let (lo, hi) = if st.latency > 0 && open {
                    (
                        Duration::from_millis(*min_ms),
                        Duration::from_millis(*max_ms),
                    )
                } else if st.latency == 0 {
                    self.default_latency
                } else {
                    return;
                };
                sim.set_link_latency(a.as_str(), b.as_str(), lo);
                sim.set_link_max_message_latency(a.as_str(), b.as_str(), hi);
                return;
            }
            Fault::Crash { .. } | Fault::Offline { .. } => return,
        };
        self.settle(sim, a, b);
    }

    /// Sets the link's turmoil state from the counts.
    fn settle(&self, sim: &mut turmoil::Sim<'_>, a: &str, b: &str) {
        let (k, _) = key(a, b);
        let st = self.links.get(&k).copied().unwrap_or_default();
        let (x, y) = (k.0.as_str(), k.1.as_str());
        if st.partition > 0 {
            sim.partition(x, y);
            return;
        }
        if st.hold > 0 {
            sim.hold(x, y);
        } else {
            // Healthy both ways; held messages go out now.
            sim.release(x, y);
        }
        if st.oneway[0] > 0 {
            sim.partition_oneway(x, y);
        }
        if st.oneway[1] > 0 {
            sim.partition_oneway(y, x);
        }
    }
}
