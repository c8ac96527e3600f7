//! The server core's tables in `state.db` ([`super::store`]): the core as a
//! [`ServerSnapshot`] taken apart into rows, written in the transaction of every
//! journalled server input, before the input's outputs leave the process
//! ([`super::journal`]); a restart reads them back into a snapshot and restores the core
//! from it ([`nodes::server::Server::restore`]).
//!
//! | table | what | written |
//! | --- | --- | --- |
//! | `server_core` | one row: `covers`, the last `server_inputs` row the tables include; `core`, the snapshot's [`CoreState`] (seeded streams, Welcome routes, open requests, next token, hub-transfer directory); `follower`, the follower's KeyPackages and subscriptions | `covers` every commit, each other column when it changed |
//! | `hub_rooms` | per hosted room: its log's first seq, its group ID, the GroupInfo and tree for joiners, and the rest of the room ([`RoomCore`]: epoch, room state, accepted proposals, hub record, remembered answers, …) | each column when it changed |
//! | `room_log` | per room, per seq: an accepted message (the FanoutMessage as fanned out), its epoch, kind, timestamp and recipients | appended (rewritten only if a hub transfer restarted the log) |
//! | `public_group` | per room: the openmls storage entries of the hub's `PublicGroup` (key, value), and its group ID in `hub_rooms` | entries replaced or deleted as they change |
//! | `room_accepted` | per room: the accepted messages remembered for retries (SHA-256, accepted at), in order (`ord`) | a window: rows dropped at the front, appended at the back |
//! | `notify_dedup` | the follower's recent `/notify` body hashes (P§5.5), in order (`ord`) | likewise |
//! | `fanout_queue` | per room and follower provider: the first log entry not acknowledged and the `/notify` in flight (body, retry state) | replaced when it changed |
//!
//! Which rows changed is known from the SHA-256 of each row's CBOR as last written
//! ([`Written`]), kept beside the connection and rebuilt from what a restart read.

use std::collections::BTreeMap;

use nodes::hub::room::{InFlight, Outbound};
use nodes::ids::{Domain, RoomUri};
use nodes::server::snapshot::{
    CoreState, FollowerState, LogRecord, PublicGroupEntries, RoomCore, RoomSnapshot, ServerSnapshot,
};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// The tables (created with the others in [`super::store::Store::open`]).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS server_core
    (id INTEGER PRIMARY KEY CHECK (id = 1), covers INTEGER NOT NULL, core BLOB NOT NULL,
     follower BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS hub_rooms
    (room TEXT PRIMARY KEY, seq_base INTEGER NOT NULL, group_id BLOB, core BLOB NOT NULL,
     group_info BLOB NOT NULL, ratchet_tree BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS room_log
    (room TEXT NOT NULL, seq INTEGER NOT NULL, epoch INTEGER NOT NULL, kind TEXT NOT NULL,
     timestamp INTEGER NOT NULL, recipients BLOB NOT NULL, message BLOB NOT NULL,
     PRIMARY KEY (room, seq));
CREATE TABLE IF NOT EXISTS public_group
    (room TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, PRIMARY KEY (room, key));
CREATE TABLE IF NOT EXISTS notify_dedup (ord INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS room_accepted
    (room TEXT NOT NULL, ord INTEGER NOT NULL, hash BLOB NOT NULL,
     accepted_at INTEGER NOT NULL, PRIMARY KEY (room, ord));
CREATE TABLE IF NOT EXISTS fanout_queue
    (room TEXT NOT NULL, provider TEXT NOT NULL, next INTEGER NOT NULL, in_flight BLOB,
     PRIMARY KEY (room, provider));
";

/// The tables, in the order a fresh write clears them.
const TABLES: [&str; 7] = [
    "server_core",
    "notify_dedup",
    "hub_rooms",
    "room_log",
    "room_accepted",
    "public_group",
    "fanout_queue",
];

type Digest = [u8; 32];

/// What the tables hold, as digests of the rows last written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    core: Option<Digest>,
    follower: Option<Digest>,
    dedup: Window,
    rooms: BTreeMap<RoomUri, WrittenRoom>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct WrittenRoom {
    /// The `hub_rooms` row: its `core` (with seq_base and group ID), its joiner info.
    row: Digest,
    joiner: Digest,
    /// The log's first seq and length.
    log: (u64, usize),
    /// Per public-group key: its value's digest.
    group: BTreeMap<Vec<u8>, Digest>,
    /// Per follower provider: its `fanout_queue` row's digest.
    queue: BTreeMap<Domain, Digest>,
    accepted: Window,
}

/// A window of hashes as its rows hold it: row `first + i` holds `items[i]`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Window {
    first: i64,
    items: std::collections::VecDeque<Digest>,
}

impl Window {
    fn of(items: impl Iterator<Item = Digest>) -> Window {
        Window {
            first: 0,
            items: items.collect(),
        }
    }

    /// How `now` follows from this window: `Some((dropped, kept))` when `now` is this
    /// window without its first `dropped` items, plus items appended after the `kept`
    /// ones.
    fn moved_to(&self, now: &[Digest]) -> Option<(usize, usize)> {
        let dropped = match now.first() {
            Some(h) => self
                .items
                .iter()
                .position(|x| x == h)
                .unwrap_or(self.items.len()),
            None => self.items.len(),
        };
        let kept = self.items.len() - dropped;
        (now.len() >= kept && self.items.iter().skip(dropped).eq(now[..kept].iter()))
            .then_some((dropped, kept))
    }

    /// Writes the rows that changed from `old` (`None`: the rows are gone) to `now`:
    /// `delete(from, to)` deletes rows `from..to`, `insert(ord, i)` writes item `i` of
    /// `now` at row `ord`. Returns the new window.
    fn write(
        old: Option<&Window>,
        now: &[Digest],
        mut delete: impl FnMut(i64, i64) -> rusqlite::Result<()>,
        mut insert: impl FnMut(i64, usize) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<Window> {
        let (first, dropped, kept) = match old.map(|o| (o, o.moved_to(now))) {
            Some((o, Some((dropped, kept)))) => (o.first, dropped, kept),
            Some((o, None)) => (o.first, o.items.len(), 0),
            None => (0, 0, 0),
        };
        if dropped > 0 {
            delete(first, first + dropped as i64)?;
        }
        let first = first + dropped as i64;
        for (i, _) in now.iter().enumerate().skip(kept) {
            insert(first + i as i64, i)?;
        }
        Ok(Window {
            first,
            items: now.iter().copied().collect(),
        })
    }
}

fn cbor<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and every snapshot type serializes.
    if let Err(e) = ciborium::into_writer(v, &mut out) {
        tracing::error!("could not encode a server-core row: {e}");
    }
    out
}

fn hash(bytes: &[u8]) -> Digest {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

fn uncbor<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, String> {
    ciborium::from_reader(bytes).map_err(|e| format!("{what}: {e}"))
}

/// The `hub_rooms` row's `core` column.
fn room_row(r: &RoomSnapshot) -> Vec<u8> {
    cbor(&r.core)
}

fn room_digest(r: &RoomSnapshot) -> Digest {
    hash(&cbor(&(
        r.seq_base,
        r.public_group.as_ref().map(|g| &g.group_id),
        &r.core,
    )))
}

fn queue_digest(o: &Outbound) -> Digest {
    hash(&cbor(o))
}

impl WrittenRoom {
    fn of(r: &RoomSnapshot) -> WrittenRoom {
        WrittenRoom {
            row: room_digest(r),
            joiner: hash(&cbor(&(&r.group_info, &r.ratchet_tree))),
            log: (r.seq_base, r.log.len()),
            group: r
                .public_group
                .iter()
                .flat_map(|g| g.entries.iter())
                .map(|(k, v)| (k.clone(), hash(v)))
                .collect(),
            queue: r
                .fanout_queue
                .iter()
                .map(|(d, o)| (d.clone(), queue_digest(o)))
                .collect(),
            accepted: Window::of(r.accepted.iter().map(|(h, _)| *h)),
        }
    }
}

/// Writes the rows of `s` that differ from `written` (every row, after clearing the
/// tables, when `written` is `None`), with `covers` = the last `server_inputs` row the
/// snapshot includes. Returns what the tables hold once the transaction commits.
pub fn write(
    c: &Connection,
    s: &ServerSnapshot,
    written: Option<&Written>,
    covers: i64,
) -> rusqlite::Result<Written> {
    let empty = Written::default();
    let w = match written {
        Some(w) => w,
        None => {
            for t in TABLES {
                c.execute(&format!("DELETE FROM {t}"), [])?;
            }
            &empty
        }
    };
    let mut out = Written::default();
    let core = cbor(&(&s.domain, &s.core));
    let follower = cbor(&s.follower);
    let (d, f) = (hash(&core), hash(&follower));
    if w.core.is_none() {
        c.execute(
            "INSERT OR REPLACE INTO server_core (id, covers, core, follower) \
             VALUES (1, ?1, ?2, ?3)",
            params![covers, core, follower],
        )?;
    } else {
        c.execute(
            "UPDATE server_core SET covers = ?1 WHERE id = 1",
            params![covers],
        )?;
        if w.core != Some(d) {
            c.execute("UPDATE server_core SET core = ?1 WHERE id = 1", [core])?;
        }
        if w.follower != Some(f) {
            c.execute(
                "UPDATE server_core SET follower = ?1 WHERE id = 1",
                [follower],
            )?;
        }
    }
    out.core = Some(d);
    out.follower = Some(f);
    out.dedup = Window::write(
        written.map(|w| &w.dedup),
        &s.notify_dedup,
        |from, to| {
            c.execute(
                "DELETE FROM notify_dedup WHERE ord >= ?1 AND ord < ?2",
                params![from, to],
            )
            .map(|_| ())
        },
        |ord, i| {
            c.execute(
                "INSERT INTO notify_dedup (ord, hash) VALUES (?1, ?2)",
                params![ord, &s.notify_dedup[i][..]],
            )
            .map(|_| ())
        },
    )?;
    for gone in w.rooms.keys().filter(|r| !s.rooms.contains_key(*r)) {
        for t in [
            "hub_rooms",
            "room_log",
            "room_accepted",
            "public_group",
            "fanout_queue",
        ] {
            c.execute(&format!("DELETE FROM {t} WHERE room = ?1"), [gone.as_str()])?;
        }
    }
    for (room, r) in &s.rooms {
        let now = write_room(c, room, r, w.rooms.get(room))?;
        out.rooms.insert(room.clone(), now);
    }
    Ok(out)
}

/// One room's rows, where they differ from what the tables hold (`old`); returns what
/// they hold then.
fn write_room(
    c: &Connection,
    room: &RoomUri,
    r: &RoomSnapshot,
    old: Option<&WrittenRoom>,
) -> rusqlite::Result<WrittenRoom> {
    let key = room.as_str();
    let mut now = WrittenRoom::of(r);
    write_room_head(c, key, r, old, &now)?;
    write_room_log(c, key, r, old)?;
    write_public_group(c, key, r, old, &now)?;
    write_fanout_queue(c, key, r, old, &now)?;
    now.accepted = write_accepted(c, key, r, old)?;
    Ok(now)
}

/// The `hub_rooms` row: the room's core, and its GroupInfo and tree for joiners.
fn write_room_head(
    c: &Connection,
    key: &str,
    r: &RoomSnapshot,
    old: Option<&WrittenRoom>,
    now: &WrittenRoom,
) -> rusqlite::Result<()> {
    let group_id = r.public_group.as_ref().map(|g| g.group_id.clone());
    match old {
        None => {
            c.execute(
                "INSERT OR REPLACE INTO hub_rooms \
                 (room, seq_base, group_id, core, group_info, ratchet_tree) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    key,
                    r.seq_base as i64,
                    group_id,
                    room_row(r),
                    r.group_info,
                    r.ratchet_tree
                ],
            )?;
        }
        Some(o) => {
            if o.row != now.row {
                c.execute(
                    "UPDATE hub_rooms SET seq_base = ?2, group_id = ?3, core = ?4 \
                     WHERE room = ?1",
                    params![key, r.seq_base as i64, group_id, room_row(r)],
                )?;
            }
            if o.joiner != now.joiner {
                c.execute(
                    "UPDATE hub_rooms SET group_info = ?2, ratchet_tree = ?3 \
                     WHERE room = ?1",
                    params![key, r.group_info, r.ratchet_tree],
                )?;
            }
        }
    }
    Ok(())
}

/// The `room_log` rows the tables lack.
fn write_room_log(
    c: &Connection,
    key: &str,
    r: &RoomSnapshot,
    old: Option<&WrittenRoom>,
) -> rusqlite::Result<()> {
    // The log is append-only, unless a hub transfer restarted it (A → B → A).
    let from = match old {
        Some(o) if o.log.0 == r.seq_base && o.log.1 <= r.log.len() => o.log.1,
        Some(_) => {
            c.execute("DELETE FROM room_log WHERE room = ?1", [key])?;
            0
        }
        None => 0,
    };
    for e in &r.log[from..] {
        c.execute(
            "INSERT INTO room_log (room, seq, epoch, kind, timestamp, recipients, message) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                key,
                e.seq as i64,
                e.epoch as i64,
                e.kind,
                e.timestamp as i64,
                cbor(&e.recipients),
                e.message
            ],
        )?;
    }
    Ok(())
}

/// Brings a room's keyed rows from `old` (the digests the table holds, by key) to `now`:
/// `delete` each key gone, `upsert` each key new or changed.
fn sync_keyed<K: Ord>(
    old: Option<&BTreeMap<K, Digest>>,
    now: &BTreeMap<K, Digest>,
    mut delete: impl FnMut(&K) -> rusqlite::Result<()>,
    mut upsert: impl FnMut(&K) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let none = BTreeMap::new();
    let old = old.unwrap_or(&none);
    for k in old.keys().filter(|k| !now.contains_key(*k)) {
        delete(k)?;
    }
    for (k, d) in now {
        if old.get(k) != Some(d) {
            upsert(k)?;
        }
    }
    Ok(())
}

/// The hub's public group state, entry by entry.
fn write_public_group(
    c: &Connection,
    key: &str,
    r: &RoomSnapshot,
    old: Option<&WrittenRoom>,
    now: &WrittenRoom,
) -> rusqlite::Result<()> {
    let no_entries = BTreeMap::new();
    let entries = r.public_group.as_ref().map_or(&no_entries, |g| &g.entries);
    sync_keyed(
        old.map(|o| &o.group),
        &now.group,
        |k| {
            c.execute(
                "DELETE FROM public_group WHERE room = ?1 AND key = ?2",
                params![key, k],
            )
            .map(|_| ())
        },
        |k| {
            c.execute(
                "INSERT OR REPLACE INTO public_group (room, key, value) VALUES (?1, ?2, ?3)",
                params![key, k, entries[k]],
            )
            .map(|_| ())
        },
    )
}

/// The fan-out queue, a row per provider.
fn write_fanout_queue(
    c: &Connection,
    key: &str,
    r: &RoomSnapshot,
    old: Option<&WrittenRoom>,
    now: &WrittenRoom,
) -> rusqlite::Result<()> {
    sync_keyed(
        old.map(|o| &o.queue),
        &now.queue,
        |p| {
            c.execute(
                "DELETE FROM fanout_queue WHERE room = ?1 AND provider = ?2",
                params![key, p.as_str()],
            )
            .map(|_| ())
        },
        |p| {
            let o = &r.fanout_queue[p];
            c.execute(
                "INSERT OR REPLACE INTO fanout_queue (room, provider, next, in_flight) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    key,
                    p.as_str(),
                    o.next as i64,
                    o.in_flight.as_ref().map(cbor)
                ],
            )
            .map(|_| ())
        },
    )
}

/// The window of accepted messages remembered for retries.
fn write_accepted(
    c: &Connection,
    key: &str,
    r: &RoomSnapshot,
    old: Option<&WrittenRoom>,
) -> rusqlite::Result<Window> {
    let hashes: Vec<Digest> = r.accepted.iter().map(|(h, _)| *h).collect();
    Window::write(
        old.map(|o| &o.accepted),
        &hashes,
        |from, to| {
            c.execute(
                "DELETE FROM room_accepted WHERE room = ?1 AND ord >= ?2 AND ord < ?3",
                params![key, from, to],
            )
            .map(|_| ())
        },
        |ord, i| {
            c.execute(
                "INSERT INTO room_accepted (room, ord, hash, accepted_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![key, ord, &r.accepted[i].0[..], r.accepted[i].1 as i64],
            )
            .map(|_| ())
        },
    )
}

/// The rows of a window table (`sql` selects ord, hash, a number), checked to be
/// consecutive: the first ord and the (hash, number) items.
fn window<P: rusqlite::Params>(
    c: &Connection,
    what: &str,
    sql: &str,
    p: P,
) -> Result<(i64, Vec<(Digest, u64)>), String> {
    let rows = c
        .prepare(sql)
        .map_err(|e| e.to_string())?
        .query_map(p, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let first = rows.first().map_or(0, |r| r.0);
    let mut items = Vec::with_capacity(rows.len());
    for (i, (ord, h, n)) in rows.into_iter().enumerate() {
        if ord != first + i as i64 {
            return Err(format!("{what}: row {ord} follows a gap"));
        }
        let h: Digest = h
            .try_into()
            .map_err(|_| format!("{what}: row {ord} is not a SHA-256"))?;
        items.push((h, n as u64));
    }
    Ok((first, items))
}

/// A snapshot the tables hold: `covers` (the last `server_inputs` row it includes), the
/// snapshot, and what the tables hold as [`Written`]. `None` if no snapshot was
/// written. `Err` says what is damaged.
pub fn read(c: &Connection) -> Result<Option<(i64, ServerSnapshot, Written)>, String> {
    let sql_err = |e: rusqlite::Error| e.to_string();
    let Some((covers, core, follower)) = c
        .query_row(
            "SELECT covers, core, follower FROM server_core WHERE id = 1",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            },
        )
        .optional()
        .map_err(sql_err)?
    else {
        return Ok(None);
    };
    let (domain, core): (Domain, CoreState) = uncbor("server_core", &core)?;
    let follower: FollowerState = uncbor("server_core follower", &follower)?;
    let mut stmt = c
        .prepare(
            "SELECT room, seq_base, group_id, core, group_info, ratchet_tree FROM hub_rooms \
             ORDER BY room",
        )
        .map_err(sql_err)?;
    let heads = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, Vec<u8>>(5)?,
            ))
        })
        .map_err(sql_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err)?;
    let mut rooms = BTreeMap::new();
    let mut firsts = BTreeMap::new();
    for head in heads {
        let (room, snapshot, accepted_first) = read_room(c, head)?;
        firsts.insert(room.clone(), accepted_first);
        rooms.insert(room, snapshot);
    }
    let (dedup_first, dedup) = window(
        c,
        "notify_dedup",
        "SELECT ord, hash, 0 FROM notify_dedup ORDER BY ord",
        [],
    )?;
    let snapshot = ServerSnapshot {
        domain,
        core,
        follower,
        notify_dedup: dedup.iter().map(|(h, _)| *h).collect(),
        rooms,
    };
    let written = Written {
        core: Some(hash(&cbor(&(&snapshot.domain, &snapshot.core)))),
        follower: Some(hash(&cbor(&snapshot.follower))),
        dedup: Window {
            first: dedup_first,
            items: snapshot.notify_dedup.iter().copied().collect(),
        },
        rooms: snapshot
            .rooms
            .iter()
            .map(|(k, r)| {
                let mut w = WrittenRoom::of(r);
                w.accepted.first = firsts.get(k).copied().unwrap_or(0);
                (k.clone(), w)
            })
            .collect(),
    };
    Ok(Some((covers, snapshot, written)))
}

/// A `hub_rooms` row: room, seq_base, group_id, core, group_info, ratchet_tree.
type RoomHead = (String, i64, Option<Vec<u8>>, Vec<u8>, Vec<u8>, Vec<u8>);

/// One room from its `hub_rooms` row and its rows in the other tables; with the first
/// `ord` of its accepted window.
fn read_room(c: &Connection, head: RoomHead) -> Result<(RoomUri, RoomSnapshot, i64), String> {
    let (uri, seq_base, group_id, room_core, group_info, ratchet_tree) = head;
    let room: RoomUri = uri
        .parse()
        .map_err(|e| format!("hub_rooms: room {uri:?}: {e}"))?;
    let room_core: RoomCore = uncbor(&format!("hub_rooms row of {room}"), &room_core)?;
    let log = read_room_log(c, &uri, &room)?;
    let public_group = read_public_group(c, &uri, &room, group_id)?;
    let (accepted_first, accepted) = window(
        c,
        &format!("room_accepted of {room}"),
        "SELECT ord, hash, accepted_at FROM room_accepted WHERE room = ?1 ORDER BY ord",
        [&uri],
    )?;
    let fanout_queue = read_fanout_queue(c, &uri, &room)?;
    let snapshot = RoomSnapshot {
        seq_base: seq_base as u64,
        log,
        public_group,
        fanout_queue,
        accepted,
        group_info,
        ratchet_tree,
        core: room_core,
    };
    Ok((room, snapshot, accepted_first))
}

fn read_room_log(c: &Connection, uri: &str, room: &RoomUri) -> Result<Vec<LogRecord>, String> {
    let sql_err = |e: rusqlite::Error| e.to_string();
    c.prepare(
        "SELECT seq, epoch, kind, timestamp, recipients, message FROM room_log \
         WHERE room = ?1 ORDER BY seq",
    )
    .map_err(sql_err)?
    .query_map([&uri], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Vec<u8>>(4)?,
            r.get::<_, Vec<u8>>(5)?,
        ))
    })
    .map_err(sql_err)?
    .collect::<Result<Vec<_>, _>>()
    .map_err(sql_err)?
    .into_iter()
    .map(|(seq, epoch, kind, timestamp, recipients, message)| {
        Ok(LogRecord {
            seq: seq as u64,
            timestamp: timestamp as u64,
            epoch: epoch as u64,
            kind,
            recipients: uncbor(&format!("room_log {room} seq {seq}"), &recipients)?,
            message,
        })
    })
    .collect::<Result<Vec<_>, String>>()
}

fn read_public_group(
    c: &Connection,
    uri: &str,
    room: &RoomUri,
    group_id: Option<Vec<u8>>,
) -> Result<Option<PublicGroupEntries>, String> {
    let sql_err = |e: rusqlite::Error| e.to_string();
    let entries: BTreeMap<Vec<u8>, Vec<u8>> = c
        .prepare("SELECT key, value FROM public_group WHERE room = ?1 ORDER BY key")
        .map_err(sql_err)?
        .query_map([&uri], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql_err)?
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    Ok(match group_id {
        Some(group_id) => Some(PublicGroupEntries { group_id, entries }),
        None if entries.is_empty() => None,
        None => return Err(format!("public_group rows of {room}, which has no group")),
    })
}

fn read_fanout_queue(
    c: &Connection,
    uri: &str,
    room: &RoomUri,
) -> Result<BTreeMap<Domain, Outbound>, String> {
    let sql_err = |e: rusqlite::Error| e.to_string();
    let queue = c
        .prepare(
            "SELECT provider, next, in_flight FROM fanout_queue WHERE room = ?1 \
             ORDER BY provider",
        )
        .map_err(sql_err)?
        .query_map([&uri], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
            ))
        })
        .map_err(sql_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err)?;
    let mut fanout_queue = BTreeMap::new();
    for (provider, next, in_flight) in queue {
        let d = Domain::new(&provider)
            .map_err(|e| format!("fanout_queue of {room}: provider {provider:?}: {e}"))?;
        let in_flight: Option<InFlight> = match in_flight {
            Some(b) => Some(uncbor(&format!("fanout_queue of {room} to {d}"), &b)?),
            None => None,
        };
        fanout_queue.insert(
            d,
            Outbound {
                next: next as usize,
                in_flight,
            },
        );
    }
    Ok(fanout_queue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodes::client::core::Command;
    use nodes::hub::{Enforcement, EnforcementConfig};
    use nodes::ids::{ClientUri, UserUri};
    use nodes::room::RolePreset;
    use nodes::world::MemoryWorld;

    fn client(d: &str, user: &str) -> ClientUri {
        UserUri::new(&Domain::new(d).unwrap(), user)
            .unwrap()
            .client("1")
            .unwrap()
    }

    /// A window that slides (items dropped at the front, appended at the back) is
    /// written as deletions and insertions of single rows, and one that does not follow
    /// from the last is rewritten; its rows always read back as the window.
    #[test]
    fn a_sliding_window_moves_row_by_row() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let item = |i: u8| [i; 32];
        let mut old: Option<Window> = None;
        let steps: Vec<Vec<u8>> = vec![
            vec![],
            vec![1],
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![4, 5],
            vec![9, 8],
            vec![],
            vec![7],
        ];
        for step in steps {
            let now: Vec<Digest> = step.iter().map(|i| item(*i)).collect();
            let (mut deleted, mut inserted) = (0, 0);
            let w = Window::write(
                old.as_ref(),
                &now,
                |from, to| {
                    deleted += to - from;
                    conn.execute(
                        "DELETE FROM notify_dedup WHERE ord >= ?1 AND ord < ?2",
                        params![from, to],
                    )
                    .map(|_| ())
                },
                |ord, i| {
                    inserted += 1;
                    conn.execute(
                        "INSERT INTO notify_dedup (ord, hash) VALUES (?1, ?2)",
                        params![ord, &now[i][..]],
                    )
                    .map(|_| ())
                },
            )
            .unwrap();
            let (first, back) = window(
                &conn,
                "notify_dedup",
                "SELECT ord, hash, 0 FROM notify_dedup ORDER BY ord",
                [],
            )
            .unwrap();
            assert_eq!(back.iter().map(|(h, _)| *h).collect::<Vec<_>>(), now);
            assert!(now.is_empty() || first == w.first, "{step:?}");
            if step == vec![2, 3, 4] {
                assert_eq!((deleted, inserted), (1, 1));
            }
            if step == vec![9, 8] {
                assert_eq!((deleted, inserted), (2, 2));
            }
            old = Some(w);
        }
    }

    /// After every work item of a run (room created, members added, messages, commits,
    /// a removal), the rows written only where they changed read back as the hub's
    /// snapshot of that moment, byte for byte.
    #[test]
    fn rows_written_as_they_change_read_back_as_the_snapshot_of_the_moment() {
        let a = Domain::new("a.example").unwrap();
        let mut w = MemoryWorld::new(5);
        for d in ["a.example", "b.example"] {
            w.add_server(
                &Domain::new(d).unwrap(),
                EnforcementConfig::new(Enforcement::Full),
            );
        }
        let (alice, bob) = (client("a.example", "alice"), client("b.example", "bob"));
        w.add_client(&alice, 4);
        w.add_client(&bob, 4);
        w.run();
        let room = w.create_room(&alice, "r", RolePreset::Cooperative).unwrap();
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let mut written: Option<Written> = None;
        let mut checked = 0;
        let mut check = |w: &MemoryWorld, written: &mut Option<Written>| {
            let s = w.server(&a).snapshot_state().unwrap();
            let now = write(&conn, &s, written.as_ref(), checked).unwrap();
            let (covers, back, read_written) = read(&conn).unwrap().unwrap();
            assert_eq!(covers, checked);
            assert_eq!(cbor(&back), cbor(&s), "after {checked} work items");
            assert_eq!(read_written, now);
            *written = Some(now);
            checked += 1;
        };
        let commands = [
            (
                &alice,
                Command::AddUser {
                    room: room.clone(),
                    user: bob.user(),
                    role: None,
                },
            ),
            (
                &bob,
                Command::Send {
                    room: room.clone(),
                    text: "hello".into(),
                },
            ),
            (&bob, Command::SelfUpdate { room: room.clone() }),
            (
                &alice,
                Command::Send {
                    room: room.clone(),
                    text: "hi".into(),
                },
            ),
            (
                &alice,
                Command::RemoveUser {
                    room: room.clone(),
                    user: bob.user(),
                },
            ),
        ];
        check(&w, &mut written);
        for (who, cmd) in commands {
            w.queue_command(who, cmd).unwrap();
            // Bounded: each command settles in a few hundred work items.
            for _ in 0..10_000 {
                if !w.step() {
                    break;
                }
                check(&w, &mut written);
            }
            w.run();
            check(&w, &mut written);
        }
        let log: i64 = conn
            .query_row("SELECT COUNT(*) FROM room_log", [], |r| r.get(0))
            .unwrap();
        assert!(log >= 6, "{log} log rows");
        assert!(checked > 20, "{checked}");
    }
}
