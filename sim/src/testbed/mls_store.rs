//! The clients' state on disk: one SQLite file per client, `<state>/mls/<client>.db`.
//! openmls writes the client's MLS state into it through
//! `openmls_sqlite_storage::SqliteStorageProvider` (serde_json codec); beside openmls'
//! tables, our own hold the rest of the client ([`ClientRecord`]: the core's
//! [`ClientSnapshot`] and the node's offline outbox and held mail of the client) and the
//! journal row the file includes (`mimi_client.applied_seq`). One file per client, not
//! one per node: two clients of one provider in the same room hold the same group id, and
//! openmls keys its tables by group id.
//!
//! A client is **restored from its file**: its record is read, its groups are loaded
//! with `MlsGroup::load` from openmls' tables (`Client::restore`,
//! `nodes/src/client/snapshot.rs`). The journal (`state.db`, [`super::store`]) only keeps
//! the client inputs of the last commit, to repair a file a `kill -9` left one commit
//! behind.
//!
//! # Order of writes
//!
//! Each client database always has one transaction open. openmls writes into it while the
//! client handles an input (a step, a message, ticks); nothing of it is on disk yet. Then
//! [`super::node::Node::commit`] finds the clients the input changed (openmls wrote
//! something, or their record's bytes differ from the last written ones) and writes, in
//! this order:
//!
//! 1. `state.db`, one transaction ([`super::store::Store::commit_client`]): the journal
//!    row(s) of the input, the mailbox changes, per changed client a *mark* (the row
//!    number, the previous mark's row number, the SHA-256 of its new record), and the
//!    deletion of the previous commit's client rows (every client file includes them by
//!    now, step 2 of that commit);
//! 2. per changed client, one transaction in its file ([`MlsStates::commit`]): openmls'
//!    writes, the record and `applied_seq` = the journal's last row;
//! 3. the outputs: the client's messages go to the provider's core.
//!
//! What a `kill -9` between them means:
//!
//! * before 1: neither the input nor any state change is on disk; nothing left the
//!   process. The restarted node never saw the input.
//! * between 1 and 2 (or between two clients' files in 2): the journal has the input;
//!   a changed client's file is one commit behind (its `applied_seq` is its mark's
//!   previous row). The restart restores the client from its file and replays the
//!   journal rows after its `applied_seq` into it, so the input is not lost; its outputs
//!   were never carried out and are carried out after the restart (`from_clients` rows).
//! * between 2 and 3: both are on disk; the outputs are in the journal's `from_clients`
//!   table and go out after the restart, once.
//!
//! # Restart
//!
//! [`MlsStates::open`] reads every file (a file that is not a database or lacks our
//! tables refuses the start, exit 2). The node checks each against its mark: a file must
//! include the mark's row or the previous one (anything older lost a commit the journal
//! no longer holds: refused, exit 2), restores the clients, replays the remaining journal
//! rows into the clients whose files do not include them, and checks every client's
//! record against the SHA-256 its mark holds ([`StoreError::MlsDiverged`] otherwise).
//! Then the repaired files are committed and the journal's rows before its last commit
//! are deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nodes::client::snapshot::ClientSnapshot;
use nodes::ids::ClientUri;
use nodes::io::{ClientToProvider, ProviderToClient};
use openmls_sqlite_storage::{Codec, SqliteStorageProvider};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::store::StoreError;

/// The directory of the client databases inside `--state`.
pub const MLS_DIR: &str = "mls";
/// How long a statement waits for a lock (only this process opens the files).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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

/// Our own tables in each client database (openmls' tables are all `openmls_*`): whose
/// state it is and which journal row it includes; the client's [`ClientRecord`].
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mimi_client (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    client TEXT NOT NULL,
    applied_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mimi_client_state (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    record BLOB NOT NULL
);";

/// Everything of a client outside openmls' tables: the core's snapshot and, if the
/// client is offline (control API `/online`), its outbox and held mail.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client: ClientSnapshot,
    pub offline: Option<(Vec<ClientToProvider>, Vec<ProviderToClient>)>,
}

impl ClientRecord {
    /// The CBOR bytes written to the file (the same record gives the same bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail, and every part of a record serializes.
        if let Err(e) = ciborium::into_writer(self, &mut out) {
            tracing::error!("could not encode a client record: {e}");
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<ClientRecord, String> {
        ciborium::from_reader(bytes).map_err(|e| format!("the client record is damaged: {e}"))
    }
}

/// The SHA-256 of a record's bytes (a journal mark holds it).
pub fn record_digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Opens (creating if needed) a client database: WAL, openmls' migrations, our tables,
/// then `synchronous = FULL` (every commit is on disk before it returns, as `state.db`).
/// The migrations run before, without `fsync` (a dozen small transactions: one `fsync`
/// each would cost 10–100 ms per client); the first commit's `fsync` of the WAL file
/// covers them (no checkpoint has moved them into the main file unsynced).
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
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "wal_autocheckpoint", 1000)
        .map_err(|e| e.to_string())?;
    Ok(Rc::new(conn))
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

fn record_bytes(conn: &Connection) -> Result<Option<Vec<u8>>, String> {
    conn.query_row(
        "SELECT record FROM mimi_client_state WHERE id = 0",
        [],
        |r| r.get(0),
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
    /// The record bytes in the file (empty: none yet).
    written: Vec<u8>,
}

impl ClientDb {
    fn begin(&mut self) -> rusqlite::Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.changes_at_begin = self.conn.total_changes();
        Ok(())
    }

    /// Writes `record` and `seq`, commits the open transaction (openmls' writes with
    /// them) and begins the next one.
    fn commit(&mut self, client: &ClientUri, seq: i64, record: &[u8]) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO mimi_client (id, client, applied_seq) VALUES (0, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET applied_seq = excluded.applied_seq",
            params![client.as_str(), seq],
        )?;
        self.conn.execute(
            "INSERT INTO mimi_client_state (id, record) VALUES (0, ?1)
             ON CONFLICT (id) DO UPDATE SET record = excluded.record",
            params![record],
        )?;
        self.conn.execute_batch("COMMIT")?;
        self.written = record.to_vec();
        self.begin()
    }
}

/// A client as its file holds it, read at a restart.
pub struct Stored {
    pub path: PathBuf,
    /// The journal row the file includes.
    pub applied: i64,
    pub record: ClientRecord,
    /// The client's storage: openmls' tables in its file.
    pub storage: MlsDb,
}

/// The MLS databases of a node's clients.
pub struct MlsStates {
    state: PathBuf,
    dbs: BTreeMap<ClientUri, ClientDb>,
}

fn mls_error(path: &Path, what: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::MlsState {
        path: path.to_path_buf(),
        what,
        reason: reason.to_string(),
    }
}

impl MlsStates {
    /// Opens the client databases of `--state` directory `state` and reads each client
    /// they hold (a file whose client never committed is left for [`Self::create`] to
    /// replace: its creation is still in the journal).
    pub fn open(state: &Path) -> Result<(MlsStates, BTreeMap<ClientUri, Stored>), StoreError> {
        let dir = state.join(MLS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| mls_error(&dir, "created", e))?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| mls_error(&dir, "listed", e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "db"))
            .collect();
        files.sort();
        let mut states = MlsStates {
            state: state.to_path_buf(),
            dbs: BTreeMap::new(),
        };
        let mut stored = BTreeMap::new();
        for path in files {
            let read = |e: String| mls_error(&path, "read", e);
            let conn = open(&path).map_err(read)?;
            let Some((client, applied)) = applied(&conn).map_err(read)? else {
                continue;
            };
            let uri: ClientUri = client
                .parse()
                .map_err(|e| read(format!("client {client:?}: {e}")))?;
            if path.file_name().and_then(|n| n.to_str()) != Some(&file_name(&uri)) {
                return Err(read(format!("it holds {uri}, whose file has another name")));
            }
            let bytes = record_bytes(&conn).map_err(read)?.ok_or_else(|| {
                read(
                    "it has no mimi_client_state (written by a mimi-sim that rebuilt clients \
                     from the journal)"
                        .to_string(),
                )
            })?;
            let record = ClientRecord::decode(&bytes).map_err(read)?;
            if record.client.uri() != &uri {
                return Err(read(format!(
                    "it is {uri}'s but its record is {}'s",
                    record.client.uri()
                )));
            }
            let mut db = ClientDb {
                path: path.clone(),
                conn: conn.clone(),
                changes_at_begin: 0,
                written: bytes,
            };
            db.begin().map_err(|e| read(e.to_string()))?;
            states.dbs.insert(uri.clone(), db);
            stored.insert(
                uri,
                Stored {
                    path,
                    applied,
                    record,
                    storage: MlsDb::new(conn),
                },
            );
        }
        Ok((states, stored))
    }

    /// The storage of a new client: a fresh database (any file of that name is from an
    /// earlier client of the same URI, or one whose creation never committed, and is
    /// replaced).
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
        let mut db = ClientDb {
            path: path.clone(),
            conn: conn.clone(),
            changes_at_begin: 0,
            written: Vec::new(),
        };
        db.begin().map_err(|e| mls_error(&path, "created", e))?;
        self.dbs.insert(client.clone(), db);
        Ok(MlsDb::new(conn))
    }

    /// Whether `client`'s state changed since its file was last written: openmls wrote
    /// into the open transaction, or `record` is not the record in the file.
    pub fn changed(&self, client: &ClientUri, record: &[u8]) -> bool {
        self.dbs
            .get(client)
            .is_none_or(|db| db.conn.total_changes() != db.changes_at_begin || db.written != record)
    }

    /// The file of `client` (for errors).
    pub fn path(&self, client: &ClientUri) -> PathBuf {
        self.state.join(MLS_DIR).join(file_name(client))
    }

    /// Step 2 of the order of writes (module doc): commits each changed client's database
    /// with its record, recording journal row `seq`.
    pub fn commit(&mut self, seq: i64, changed: &[(ClientUri, Vec<u8>)]) -> Result<(), StoreError> {
        for (client, record) in changed {
            let Some(db) = self.dbs.get_mut(client) else {
                return Err(mls_error(
                    &self.path(client),
                    "committed",
                    "the client has no open database",
                ));
            };
            db.commit(client, seq, record)
                .map_err(|e| mls_error(&db.path, "committed", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
