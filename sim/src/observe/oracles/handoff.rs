//! [`HANDOFF_KEEPS_ACCEPTED`]: what x-hub-transfer promises about the log of a room
//! whose hub moved (nodes/src/transfer.rs §3 and §5), judged at the end of the run
//! (*kept* only if it converged) on the log entries of every hub that sequenced the room
//! and on every fan-out message each honest client was handed:
//!
//! * **kept**: every log entry of the old or the new hub reaches every honest client
//!   that was a member at the entry's MLS epoch — except what §5 says a takeover cannot
//!   keep: an older generation's entries from the MLS epoch the newer generation began
//!   sequencing at (the fork the takeover was built on). A client that was handed such
//!   a superseded commit may be on the dead branch, so it is judged only on the epochs
//!   before it.
//! * **once**: no client is handed the same entry twice.
//! * **in order**: each client is handed the entries in (generation, seq) order, across
//!   the hubs — the new hub's entries after every entry of the old one it was handed.
//! * **seq continues** (cooperative handoff, §3): when the script only moved the hub
//!   cooperatively, the new hub's first entry has the seq after the old hub's last one,
//!   so (room, seq) names one accepted message across hubs.
//!
//! The messages are those the hubs logged (application messages, proposals, commits,
//! room-state signals; Welcomes are for joiners, not for the members of an epoch), not
//! the application-level sends and receipts accepted-delivered counts, and the order is
//! judged on each client's whole record of the run, not delivery by delivery.

use super::*;

/// How the script moved a room's hub (x-hub-transfer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HubMove {
    /// `move-hub`: a cooperative handoff (§3).
    Handoff,
    /// `take-over` (§4).
    Takeover,
}

/// At most this many entries are named in one violation's witness.
const WITNESS_ENTRIES: usize = 8;

/// The first MLS epoch each hub generation sequenced (§5: what an older generation
/// logged from there on is the fork a takeover cannot keep).
struct Generations {
    starts: BTreeMap<u64, u64>,
}

impl Generations {
    fn of(entries: &BTreeMap<[u8; 32], Logged>) -> Generations {
        let mut starts: BTreeMap<u64, u64> = BTreeMap::new();
        for l in entries.values() {
            if let Some(e) = l.carries.epoch() {
                let s = starts.entry(l.generation).or_insert(e);
                *s = (*s).min(e);
            }
        }
        Generations { starts }
    }

    /// An entry of an older generation at or after the epoch a newer one began at.
    fn superseded(&self, l: &Logged) -> bool {
        l.carries
            .epoch()
            .is_some_and(|e| self.starts.range(l.generation + 1..).any(|(_, s)| e >= *s))
    }

    /// The first epoch of a superseded commit the client merged, if it merged one: from
    /// there on it is on the dead branch.
    fn fork(&self, receipts: &[Receipt], entries: &BTreeMap<[u8; 32], Logged>) -> Option<u64> {
        receipts
            .iter()
            .filter_map(|(k, _)| entries.get(k))
            .filter(|l| self.superseded(l))
            .filter_map(|l| match l.carries {
                Carried::Commit { epoch, .. } => Some(epoch),
                _ => None,
            })
            .min()
    }
}

impl Oracles {
    /// [`HANDOFF_KEEPS_ACCEPTED`] for every room whose log spans more than one hub, at
    /// the end of a run: once, in order and seq continuity always; kept only when the
    /// run `converged` (before that, an entry may still be on its way).
    pub fn check_handoffs(&mut self, t: u64, converged: bool) {
        let rooms: BTreeSet<RoomUri> = self.log_index.keys().map(|(r, _)| r.clone()).collect();
        for room in rooms {
            self.check_handoff(t, &room, converged);
        }
    }

    fn check_handoff(&mut self, t: u64, room: &RoomUri, converged: bool) {
        let entries: BTreeMap<[u8; 32], Logged> = self
            .log_index
            .iter()
            .filter(|((r, _), _)| r == room)
            .map(|((_, k), l)| (*k, l.clone()))
            .collect();
        let hubs: BTreeSet<&str> = entries.values().map(|l| l.hub.as_str()).collect();
        if hubs.len() < 2 {
            return;
        }
        let generations = Generations::of(&entries);
        self.check_seq_continues(t, room, &entries);
        let clients: Vec<ClientUri> = self
            .epochs
            .keys()
            .filter(|(_, r)| r == room)
            .map(|(c, _)| c.clone())
            .collect();
        for c in clients {
            let key = (c.clone(), room.clone());
            let epochs = self.epochs.get(&key).cloned().unwrap_or_default();
            let receipts = self.receipts.get(&key).cloned().unwrap_or_default();
            let handed = self.check_handed_once_in_order(t, room, &c, &receipts, &entries);
            if converged {
                let fork = generations.fork(&receipts, &entries);
                let member = |e: u64| epochs.contains(&e) && fork.is_none_or(|f| e < f);
                let missing: Vec<&Logged> = entries
                    .iter()
                    .filter(|(k, l)| {
                        !handed.contains_key(*k)
                            && !generations.superseded(l)
                            && l.carries.epoch().is_some_and(member)
                    })
                    .map(|(_, l)| l)
                    .collect();
                self.check_none_missing(t, room, &c, missing);
            }
        }
    }

    /// *in order* and *once* for client `c`: returns the trace lines at which it was
    /// handed each entry.
    fn check_handed_once_in_order(
        &mut self,
        t: u64,
        room: &RoomUri,
        c: &ClientUri,
        receipts: &[Receipt],
        entries: &BTreeMap<[u8; 32], Logged>,
    ) -> BTreeMap<[u8; 32], Vec<u64>> {
        let mut got: BTreeMap<[u8; 32], Vec<u64>> = BTreeMap::new();
        let mut last: Option<(&Logged, u64)> = None;
        let mut disorder: Option<(&Logged, u64, &Logged, u64)> = None;
        for (k, line) in receipts {
            let Some(l) = entries.get(k) else { continue };
            let times = got.entry(*k).or_default();
            times.push(*line);
            if times.len() > 1 {
                continue;
            }
            if let Some((p, pl)) = last {
                if (l.generation, l.seq) < (p.generation, p.seq) {
                    disorder.get_or_insert((p, pl, l, *line));
                    continue;
                }
            }
            last = Some((l, *line));
        }
        if let Some((p, pl, l, line)) = disorder {
            let message = format!(
                "{c} was handed {}'s entry (generation {}, seq {}) after {}'s entry (generation {}, seq {}) of {room}",
                l.hub, l.generation, l.seq, p.hub, p.generation, p.seq
            );
            let mut nodes = vec![c.as_str().to_string(), p.hub.clone()];
            if l.hub != p.hub {
                nodes.push(l.hub.clone());
            }
            self.fire(
                HANDOFF_KEEPS_ACCEPTED,
                message,
                Witness {
                    nodes,
                    epochs: vec![p.epoch, l.epoch],
                    trace_lines: vec![pl, line],
                    at_ms: t,
                },
            );
        }
        let twice: Vec<(&Logged, &Vec<u64>)> = got
            .iter()
            .filter(|(_, lines)| lines.len() > 1)
            .filter_map(|(k, lines)| entries.get(k).map(|l| (l, lines)))
            .collect();
        if let Some((l, lines)) = twice.first() {
            let message = format!(
                "{c} was handed {} log entr{} of {room} more than once, first {}'s (generation {}, seq {}) {} times",
                twice.len(),
                if twice.len() == 1 { "y" } else { "ies" },
                l.hub,
                l.generation,
                l.seq,
                lines.len()
            );
            let witness = Witness {
                nodes: vec![c.as_str().to_string(), l.hub.clone()],
                epochs: vec![l.epoch],
                trace_lines: lines.iter().copied().take(WITNESS_ENTRIES).collect(),
                at_ms: t,
            };
            self.fire(HANDOFF_KEEPS_ACCEPTED, message, witness);
        }
        got
    }

    /// *kept* for client `c`: `missing` are the entries of its epochs it was never handed.
    fn check_none_missing(
        &mut self,
        t: u64,
        room: &RoomUri,
        c: &ClientUri,
        mut missing: Vec<&Logged>,
    ) {
        if missing.is_empty() {
            return;
        }
        missing.sort_by_key(|l| (l.generation, l.seq));
        let mut nodes = vec![c.as_str().to_string()];
        for l in &missing {
            if !nodes.contains(&l.hub) {
                nodes.push(l.hub.clone());
            }
        }
        let named: Vec<String> = missing
            .iter()
            .take(WITNESS_ENTRIES)
            .map(|l| {
                format!(
                    "{} generation {} seq {} (epoch {})",
                    l.hub,
                    l.generation,
                    l.seq,
                    l.carries.epoch().unwrap_or(l.epoch)
                )
            })
            .collect();
        let message = format!(
            "{c}, a member at their epochs, was never handed {} accepted log entr{} of {room}: {}",
            missing.len(),
            if missing.len() == 1 { "y" } else { "ies" },
            named.join(", ")
        );
        let epochs: BTreeSet<u64> = missing.iter().filter_map(|l| l.carries.epoch()).collect();
        self.fire(
            HANDOFF_KEEPS_ACCEPTED,
            message,
            Witness {
                nodes,
                epochs: epochs.into_iter().collect(),
                trace_lines: missing
                    .iter()
                    .take(WITNESS_ENTRIES)
                    .map(|l| l.line)
                    .collect(),
                at_ms: t,
            },
        );
    }

    /// §3: after a cooperative handoff (the script moved `room`'s hub only by
    /// `move-hub`), the new hub's log continues the old one's seq.
    fn check_seq_continues(
        &mut self,
        t: u64,
        room: &RoomUri,
        entries: &BTreeMap<[u8; 32], Logged>,
    ) {
        let moves = self.hub_moves.get(room).cloned().unwrap_or_default();
        if moves.is_empty() || moves.contains(&HubMove::Takeover) {
            return;
        }
        let mut log: Vec<&Logged> = entries.values().collect();
        log.sort_by_key(|l| (l.generation, l.seq));
        for w in log.windows(2) {
            let (old, new) = (w[0], w[1]);
            if old.hub == new.hub || new.seq == old.seq + 1 {
                continue;
            }
            self.fire(
                HANDOFF_KEEPS_ACCEPTED,
                format!(
                    "after the handoff of {room} from {} to {} the new hub's first entry has seq {}, the old hub's last had seq {}: the log position was not carried over",
                    old.hub, new.hub, new.seq, old.seq
                ),
                Witness {
                    nodes: vec![old.hub.clone(), new.hub.clone()],
                    epochs: vec![old.epoch, new.epoch],
                    trace_lines: vec![old.line, new.line],
                    at_ms: t,
                },
            );
        }
    }
}
