//! The clients' MLS state on disk: one SQLite file per client,
//! `<state>/mls/<client>.db`, written by openmls itself through
//! `openmls_sqlite_storage::SqliteStorageProvider` (serde_json codec). One file per
//! client, not one per node: two clients of one provider in the same room hold the same
//! group id, and openmls keys its tables by group id.
//!
//! # Order of writes
//!
//! Each client database always has one transaction open. openmls writes into it while the
//! client handles an input (a step, a message, ticks); nothing of it is on disk yet. Then
//! [`super::node::Node::commit`] writes, in this order:
//!
//! 1. the journal row(s) of the input in `state.db` ([`super::store::Store::commit_client`]);
//! 2. the MLS state: every client database the input changed records the journal's last
//!    `client_inputs` row number (`mimi_client.applied_seq`) and commits
//!    ([`MlsStates::commit`]);
//! 3. the outputs: the client's messages go to the provider's core.
//!
//! What a `kill -9` between them means:
//!
//! * before 1: neither the input nor its MLS changes are on disk; nothing left the
//!   process. The restarted node never saw the input.
//! * between 1 and 2: the journal has the input, the client's database is one commit
//!   behind (its `applied_seq` is older). The restart rebuilds the client from the
//!   journal, so the input is not lost; its outputs were never carried out and are
//!   carried out after the restart (`from_clients` rows).
//! * between 2 and 3: both are on disk; the outputs are in the journal's `from_clients`
//!   table and go out after the restart, once.
//!
//! # Restart
//!
//! The journal stays the source of truth; the MLS databases are checked against it. A
//! restart moves `<state>/mls` to `<state>/mls.old` ([`MlsStates::reopen`]), rebuilds
//! every client by replaying the journal into a **fresh** database, and, right after
//! replaying the row a client's old database says it had applied, compares every group
//! in the two databases: the same group ids, and per group the same epoch, epoch
//! authenticator (RFC 9420 §8.7) and own leaf index ([`MlsStates::check_replayed`]).
//! Any difference, an old database the replay never reached, or one that cannot be read
//! refuses the restart with a [`StoreError`] that names the file. Only when every
//! client's database matched are the fresh ones committed (with one `fsync` each: they
//! are written without `fsync` while rebuilding, see [`open`]) and `mls.old` removed
//! ([`MlsStates::finish_rebuild`]). A crash during a restart leaves `mls.old` in place:
//! the next start takes it as the old state again.
//!
//! A state directory without `mls/` (e.g. written before this file existed) has nothing
//! to compare: its clients are rebuilt from the journal alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nodes::ids::ClientUri;
use openmls::prelude::{GroupId, MlsGroup};
use openmls_sqlite_storage::{Codec, SqliteStorageProvider};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::store::StoreError;

/// The directory of the client databases inside `--state`.
pub const MLS_DIR: &str = "mls";
/// Where a restart keeps the previous run's databases until the rebuilt ones matched.
pub const MLS_OLD_DIR: &str = "mls.old";
/// How long a statement waits for a lock (only this process opens the files).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Our own table in each client database (openmls' tables are all `openmls_*`): whose
/// state it is and which journal row it includes.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS mimi_client (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    client TEXT NOT NULL,
    applied_seq INTEGER NOT NULL
);";

/// openmls' objects as JSON (the codec `openmls_sqlite_storage` stores them with).
#[derive(Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    type Error = serde_json::Error;

    fn to_vec<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Self::Error> {
        serde_json::to_vec(value)
    }

    fn from_slice<T: serde::de::DeserializeOwned>(slice: &[u8]) -> Result<T, Self::Error> {
        serde_json::from_slice(slice)
    }
}

/// A client's MLS storage: openmls' tables in the client's own SQLite file.
pub type MlsDb = SqliteStorageProvider<JsonCodec, Rc<Connection>>;

/// The file name of `client`'s database: its URI made file-safe, plus a hash of the URI so
/// that two URIs made alike stay apart.
pub fn file_name(client: &ClientUri) -> String {
    let safe: String = client
        .as_str()
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '.' || ch == '-' {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let hash = hex::encode(&Sha256::digest(client.as_str().as_bytes())[..4]);
    format!("{safe}-{hash}.db")
}

/// What a restart compares of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMark {
    pub epoch: u64,
    pub epoch_authenticator: Vec<u8>,
    pub own_leaf: u32,
}

/// Every group in a client database, by hex group id (openmls' `MlsGroup::load`).
pub fn groups(conn: &Rc<Connection>) -> Result<BTreeMap<String, GroupMark>, String> {
    let ids: Vec<Vec<u8>> = {
        let mut stmt = conn
            .prepare("SELECT DISTINCT group_id FROM openmls_group_data ORDER BY group_id")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())?
    };
    let storage = MlsDb::new(conn.clone());
    let mut out = BTreeMap::new();
    for key in ids {
        let id: GroupId = serde_json::from_slice(&key)
            .map_err(|e| format!("a group id is not openmls' JSON: {e}"))?;
        let hex_id = hex::encode(id.as_slice());
        let group = MlsGroup::load(&storage, &id)
            .map_err(|e| format!("group {hex_id} cannot be loaded: {e:?}"))?
            .ok_or_else(|| format!("group {hex_id} has data but no group state"))?;
        out.insert(
            hex_id,
            GroupMark {
                epoch: group.epoch().as_u64(),
                epoch_authenticator: group.epoch_authenticator().as_slice().to_vec(),
                own_leaf: group.own_leaf_index().u32(),
            },
        );
    }
    Ok(out)
}

/// Opens (creating if needed) a client database: WAL, openmls' migrations, our table.
/// It is not yet durable: `synchronous = OFF` and no automatic checkpoint, so everything
/// written so far stays in the WAL file until [`make_durable`] (the migrations are a
/// dozen small transactions: one `fsync` each would cost a restart 10–100 ms per client,
/// far more on a disk other processes keep busy).
pub fn open(path: &Path) -> Result<Rc<Connection>, String> {
    let mut conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "synchronous", "OFF")
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(|e| e.to_string())?;
    SqliteStorageProvider::<JsonCodec, &mut Connection>::new(&mut conn)
        .run_migrations()
        .map_err(|e| format!("openmls_sqlite_storage migrations: {e}"))?;
    conn.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
    Ok(Rc::new(conn))
}

/// From now on every commit is on disk before it returns (`synchronous = FULL`, as
/// `state.db`). The next commit's `fsync` of the WAL file also covers what was written
/// before (no checkpoint has moved it into the main file unsynced).
fn make_durable(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 1000)
}

/// Whose state a database holds and the journal row it includes (`None`: it never
/// committed anything).
pub fn applied(conn: &Connection) -> Result<Option<(String, i64)>, String> {
    conn.query_row(
        "SELECT client, applied_seq FROM mimi_client WHERE id = 0",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(|e| e.to_string())
}

/// One client's open database with its open transaction.
struct ClientDb {
    path: PathBuf,
    conn: Rc<Connection>,
    /// `total_changes` when the open transaction began.
    changes_at_begin: u64,
}

impl ClientDb {
    fn begin(&mut self) -> rusqlite::Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.changes_at_begin = self.conn.total_changes();
        Ok(())
    }

    /// Commits the open transaction (recording `seq`) if openmls changed anything in it;
    /// begins the next one.
    fn commit(&mut self, client: &ClientUri, seq: i64) -> rusqlite::Result<bool> {
        if self.conn.total_changes() == self.changes_at_begin {
            return Ok(false);
        }
        self.end(client, seq)?;
        self.begin()?;
        Ok(true)
    }

    /// Records `seq` and commits the open transaction (no new one begins).
    fn end(&mut self, client: &ClientUri, seq: i64) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO mimi_client (id, client, applied_seq) VALUES (0, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET applied_seq = excluded.applied_seq",
            params![client.as_str(), seq],
        )?;
        self.conn.execute_batch("COMMIT")
    }

    /// The end of a rebuild: commits (recording `seq`), makes the database durable and
    /// checkpoints it (at `synchronous = FULL` a checkpoint syncs the WAL and the main
    /// file, so everything written without `fsync` is on disk), then begins the next
    /// transaction.
    fn finish(&mut self, client: &ClientUri, seq: i64) -> rusqlite::Result<()> {
        self.end(client, seq)?;
        make_durable(&self.conn)?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        self.begin()
    }
}

/// The previous run's database of a client, read at the start of a restart.
struct OldDb {
    path: PathBuf,
    applied: i64,
    groups: BTreeMap<String, GroupMark>,
}

/// The MLS databases of a node's clients.
pub struct MlsStates {
    state: PathBuf,
    dbs: BTreeMap<ClientUri, ClientDb>,
    /// During a restart: the previous run's databases not yet compared.
    old: BTreeMap<ClientUri, OldDb>,
    /// Until [`Self::finish_rebuild`]: new databases are not durable yet (a crash before
    /// it keeps `mls.old` as the state).
    rebuilding: bool,
}

fn mls_error(path: &Path, what: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::MlsState {
        path: path.to_path_buf(),
        what,
        reason: reason.to_string(),
    }
}

impl MlsStates {
    /// Opens the MLS state of `--state` directory `state` for a (re)start: the previous
    /// run's databases are moved to `mls.old` and read; new ones will be created in `mls`
    /// as the replay creates the clients.
    pub fn reopen(state: &Path) -> Result<MlsStates, StoreError> {
        let dir = state.join(MLS_DIR);
        let old_dir = state.join(MLS_OLD_DIR);
        if old_dir.exists() {
            // A restart was cut short: `mls.old` is still the previous run's state and
            // `mls` a partial rebuild.
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| mls_error(&dir, "removed (a cut-short rebuild)", e))?;
            }
        } else if dir.exists() {
            std::fs::rename(&dir, &old_dir).map_err(|e| mls_error(&dir, "moved to mls.old", e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| mls_error(&dir, "created", e))?;
        let mut old = BTreeMap::new();
        if old_dir.exists() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&old_dir)
                .map_err(|e| mls_error(&old_dir, "listed", e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "db"))
                .collect();
            files.sort();
            for path in files {
                let conn = open(&path).map_err(|e| mls_error(&path, "read", e))?;
                let Some((client, applied)) =
                    applied(&conn).map_err(|e| mls_error(&path, "read", e))?
                else {
                    // Created, but the crash came before its first commit.
                    continue;
                };
                let uri: ClientUri = client
                    .parse()
                    .map_err(|e| mls_error(&path, "read", format!("client {client:?}: {e}")))?;
                let groups = groups(&conn).map_err(|e| mls_error(&path, "read", e))?;
                old.insert(
                    uri,
                    OldDb {
                        path,
                        applied,
                        groups,
                    },
                );
            }
        }
        Ok(MlsStates {
            state: state.to_path_buf(),
            dbs: BTreeMap::new(),
            old,
            rebuilding: true,
        })
    }

    /// The storage of a new client: a fresh database (any file of that name is from an
    /// earlier client of the same URI and is replaced).
    pub fn create(&mut self, client: &ClientUri) -> Result<MlsDb, StoreError> {
        let path = self.state.join(MLS_DIR).join(file_name(client));
        // Close an earlier connection to that file before removing it.
        self.dbs.remove(client);
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(mls_error(&p, "replaced", e)),
            }
        }
        let conn = open(&path).map_err(|e| mls_error(&path, "created", e))?;
        if !self.rebuilding {
            make_durable(&conn).map_err(|e| mls_error(&path, "created", e))?;
        }
        let mut db = ClientDb {
            path: path.clone(),
            conn: conn.clone(),
            changes_at_begin: 0,
        };
        db.begin().map_err(|e| mls_error(&path, "created", e))?;
        self.dbs.insert(client.clone(), db);
        Ok(MlsDb::new(conn))
    }

    /// Step 2 of the order of writes (module doc): commits every client database the last
    /// input changed, recording journal row `seq`.
    pub fn commit(&mut self, seq: i64) -> Result<(), StoreError> {
        for (client, db) in &mut self.dbs {
            db.commit(client, seq)
                .map_err(|e| mls_error(&db.path, "committed", e))?;
        }
        Ok(())
    }

    /// During a restart, after replaying journal row `seq`: compares the rebuilt state of
    /// every client whose old database says it included row `seq` with that database.
    pub fn check_replayed(&mut self, seq: i64) -> Result<(), StoreError> {
        let due: Vec<ClientUri> = self
            .old
            .iter()
            .filter(|(_, o)| o.applied == seq)
            .map(|(c, _)| c.clone())
            .collect();
        for client in due {
            let old = self.old.remove(&client).expect("listed above");
            let diverged = |what: String| StoreError::MlsDiverged {
                path: old.path.clone(),
                client: client.to_string(),
                seq,
                what,
            };
            let Some(db) = self.dbs.get(&client) else {
                return Err(diverged(
                    "the replay has not created this client by that row".into(),
                ));
            };
            let new = groups(&db.conn).map_err(|e| mls_error(&db.path, "read", e))?;
            compare(&old.groups, &new).map_err(diverged)?;
        }
        Ok(())
    }

    /// The end of a restart's replay (`last` = the last replayed `client_inputs` row, 0
    /// if none): every old database must have been compared; the rebuilt ones are
    /// committed and `mls.old` is removed.
    pub fn finish_rebuild(&mut self, last: i64) -> Result<(), StoreError> {
        if let Some((client, old)) = self.old.iter().next() {
            return Err(StoreError::MlsDiverged {
                path: old.path.clone(),
                client: client.to_string(),
                seq: old.applied,
                what: format!(
                    "the database says it includes journal row {}, but the journal's \
                     client rows end at {last} or that row is not this client's",
                    old.applied
                ),
            });
        }
        for (client, db) in &mut self.dbs {
            db.finish(client, last)
                .map_err(|e| mls_error(&db.path, "committed", e))?;
        }
        self.rebuilding = false;
        let old_dir = self.state.join(MLS_OLD_DIR);
        if old_dir.exists() {
            std::fs::remove_dir_all(&old_dir).map_err(|e| mls_error(&old_dir, "removed", e))?;
        }
        Ok(())
    }
}

/// The first difference between the groups of an old database and of the rebuilt one.
fn compare(
    old: &BTreeMap<String, GroupMark>,
    new: &BTreeMap<String, GroupMark>,
) -> Result<(), String> {
    if let Some(id) = old.keys().find(|id| !new.contains_key(*id)) {
        return Err(format!(
            "group {id} is in the database but not in the replay"
        ));
    }
    if let Some(id) = new.keys().find(|id| !old.contains_key(*id)) {
        return Err(format!(
            "group {id} is in the replay but not in the database"
        ));
    }
    for (id, o) in old {
        let n = &new[id];
        if o.epoch != n.epoch {
            return Err(format!(
                "group {id}: epoch {} in the database, {} after replay",
                o.epoch, n.epoch
            ));
        }
        if o.epoch_authenticator != n.epoch_authenticator {
            return Err(format!(
                "group {id}: epoch authenticator {} in the database, {} after replay \
                 (epoch {})",
                hex::encode(&o.epoch_authenticator),
                hex::encode(&n.epoch_authenticator),
                o.epoch
            ));
        }
        if o.own_leaf != n.own_leaf {
            return Err(format!(
                "group {id}: own leaf {} in the database, {} after replay",
                o.own_leaf, n.own_leaf
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(epoch: u64, auth: u8, own_leaf: u32) -> GroupMark {
        GroupMark {
            epoch,
            epoch_authenticator: vec![auth; 4],
            own_leaf,
        }
    }

    #[test]
    fn uris_made_alike_by_the_file_name_still_get_their_own_file() {
        let a: ClientUri = "mimi://a.example/d/al_ice/1".parse().unwrap();
        let b: ClientUri = "mimi://a.example/d/al/ice_1".parse().unwrap();
        let (fa, fb) = (file_name(&a), file_name(&b));
        assert_eq!(
            fa.rsplit_once('-').unwrap().0,
            fb.rsplit_once('-').unwrap().0
        );
        assert_ne!(fa, fb);
        assert!(fa.starts_with("mimi___a.example_d_al_ice_1-") && fa.ends_with(".db"));
        assert_eq!(fa, file_name(&a));
    }

    #[test]
    fn the_comparison_names_the_first_difference_of_a_group() {
        let g = |m: GroupMark| BTreeMap::from([("0a".to_string(), m)]);
        assert_eq!(compare(&g(mark(3, 1, 2)), &g(mark(3, 1, 2))), Ok(()));
        let e = compare(&g(mark(3, 1, 2)), &g(mark(4, 1, 2))).unwrap_err();
        assert!(e.contains("epoch 3 in the database, 4 after replay"), "{e}");
        let e = compare(&g(mark(3, 1, 2)), &g(mark(3, 9, 2))).unwrap_err();
        assert!(e.contains("epoch authenticator 01010101"), "{e}");
        let e = compare(&g(mark(3, 1, 2)), &g(mark(3, 1, 0))).unwrap_err();
        assert!(
            e.contains("own leaf 2 in the database, 0 after replay"),
            "{e}"
        );
        let e = compare(&g(mark(3, 1, 2)), &BTreeMap::new()).unwrap_err();
        assert!(
            e.contains("group 0a is in the database but not in the replay"),
            "{e}"
        );
        let e = compare(&BTreeMap::new(), &g(mark(3, 1, 2))).unwrap_err();
        assert!(e.contains("in the replay but not in the database"), "{e}");
    }
}
