//! The node's durable state: one SQLite file, `<state>/state.db` (rusqlite, bundled
//! SQLite, WAL, `synchronous = FULL`: every commit is on disk before it returns).
//!
//! The **server core** (hub and follower roles) is kept as tables of its state: a
//! [`nodes::server::ServerSnapshot`] taken apart into the hub's room logs, public groups,
//! fan-out queues and the rest ([`super::server_tables`] has those tables), written in the
//! transaction of each input, before the input's outputs leave the process. A restart
//! restores the core from them ([`nodes::server::Server::restore`]). The input itself is
//! journalled in the same transaction and its row deleted once the snapshot covers it, so
//! `server_inputs` does not grow; it keeps rows only when the core could not be
//! snapshotted (a malicious provider's follower role, whose own state a snapshot does not
//! hold: that node's journal keeps every input, as the clients' does).
//!
//! The **clients** are restored from their own files ([`super::mls_store`]: openmls'
//! tables and each client's snapshot). Their inputs are kept as a **write-ahead journal**
//! too ([`super::journal`]; the cores are deterministic: seeded keys and nonces, no
//! clock, no OS randomness), but only the last commit's rows, to repair a file a crash
//! left one commit behind. Tables:
//!
//! | table | what |
//! | --- | --- |
//! | `meta` | schema version, provider, seed, enforcement (a restart checks them) |
//! | `server_core`, `hub_rooms`, `room_log`, `room_accepted`, `public_group`, `fanout_queue`, `notify_dedup` | the server core's state ([`super::server_tables`]) |
//! | `server_inputs` | the server core's inputs ([`ServerInput`]) not covered by the state in the tables above (none after a commit, unless the core cannot be snapshotted), in the order it took them |
//! | `client_inputs` | the clients' inputs ([`ClientInput`]) of the last commit (older rows are in every client's file, see [`super::mls_store`]) |
//! | `client_marks` | per client: the row of its last change, the row of the change before, the SHA-256 of its record ([`Mark`]) |
//! | `to_clients` | the last-mile mailbox: messages the server core handed to a local client that the client has not taken yet |
//! | `from_clients` | messages clients sent to their provider that its server core has not taken yet |
//! | `event_lines` | the `events.jsonl` lines of the clients' events of the last commit (a restart appends those the file lacks) |
//!
//! Each row is one CBOR value; an input row also holds the SHA-256 of the outputs the
//! core produced for it ([`digest`]), so that a restart checks that replay rebuilt the
//! same core (a core that is not deterministic is an error, not a silent divergence). A
//! commit writes one input together with the mailbox changes it causes, in one
//! transaction, before the input's outputs are carried out.

use std::path::{Path, PathBuf};

use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::io::{
    ClientToProvider, Millis, ProviderToClient, Request, RequestId, Response, Token, TransportError,
};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::server_tables;
use crate::scenario::Preset;
use nodes::server::ServerSnapshot;

/// The file in the `--state` directory.
pub const STATE_FILE: &str = "state.db";
/// The layout this build writes and reads (3: the server core's state in tables,
/// [`super::server_tables`], and the clients' marks, `client_marks`; 2 had only the
/// former, 1 kept only journals).
pub const SCHEMA_VERSION: u32 = 3;
/// SQLite page size of a new file, in bytes.
const PAGE_SIZE: u32 = 1024;
/// How long a commit waits for a lock (only this process opens the file).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the state could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{path}: not a readable mimi-sim node state database ({source}); move it away or \
         start with another --state directory"
    )]
    Unreadable {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: {what} failed: {source}")]
    Sqlite {
        path: PathBuf,
        what: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "{path} holds the state of {stored}, but this node was started as {given}; restart \
         it with the same --provider, --seed and --enforcement, or use another --state \
         directory"
    )]
    Mismatch {
        path: PathBuf,
        stored: Box<NodeIdentity>,
        given: Box<NodeIdentity>,
    },
    #[error(
        "{path}: schema version {found:?}, this mimi-sim reads version {SCHEMA_VERSION} \
         (a state directory is read only by a mimi-sim of its own layout); move it away \
         or start with another --state directory"
    )]
    Version { path: PathBuf, found: String },
    /// The server core's tables ([`super::server_tables`]) do not hold a core that can be
    /// restored.
    #[error(
        "{path}: the server core's tables cannot be restored: {reason}; move the --state \
         directory away to start afresh"
    )]
    ServerTables { path: PathBuf, reason: String },
    #[error(
        "{path}: replaying row {seq} of {table} produced other outputs than the core \
         produced before the restart: the core is not deterministic (a bug); the state \
         cannot be resumed"
    )]
    Diverged {
        path: PathBuf,
        table: &'static str,
        seq: i64,
    },
    #[error("{path}: row {seq} of {table} is damaged: {reason}")]
    BadRow {
        path: PathBuf,
        table: &'static str,
        seq: i64,
        reason: String,
    },
    /// A client's MLS database ([`super::mls_store`]) could not be opened, read or written.
    #[error(
        "{path}: a client's MLS state database could not be {what}: {reason}; move the \
         --state directory away to start afresh"
    )]
    MlsState {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    /// A client's file is further behind its journal mark than one commit: it lost a
    /// commit the journal no longer holds (or it is not from this state directory).
    #[error(
        "{path}: the state of {client} in this file includes journal row {applied}, but \
         the journal says its last change was row {seq} (and the one before row {prev}): \
         the file is older than the journal can repair (it lost a commit, or it is from \
         another run); the state cannot be resumed, move the --state directory away to \
         start afresh"
    )]
    MlsBehind {
        path: PathBuf,
        client: String,
        applied: i64,
        seq: i64,
        prev: i64,
    },
    /// A client's MLS database does not hold the state its journal rebuilds.
    #[error(
        "{path}: the MLS state of {client} does not match its journal at client_inputs \
         row {seq}: {what}; the state cannot be resumed (the database is damaged or from \
         another run, or a core is not deterministic)"
    )]
    MlsDiverged {
        path: PathBuf,
        client: String,
        seq: i64,
        what: String,
    },
}

impl StoreError {
    /// A problem with the files the node was given (exit code 2), not a failure while
    /// running.
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            StoreError::Sqlite { .. }
                | StoreError::Diverged { .. }
                | StoreError::MlsDiverged { .. }
        )
    }
}

/// What a state directory belongs to; a restart must name the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub provider: Domain,
    pub seed: u64,
    pub enforcement: String,
    /// What configured the cores: `none`, or a `--scenario` file's fingerprint
    /// ([`super::setup::Setup::fingerprint`]).
    pub configuration: String,
}

impl std::fmt::Display for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "provider {} with seed {}, enforcement {} and configuration {}",
            self.provider, self.seed, self.enforcement, self.configuration
        )
    }
}

/// One input of the server core, as the host adapter handed it over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerInput {
    Request {
        now: Millis,
        id: RequestId,
        request: Request,
    },
    Response {
        now: Millis,
        token: Token,
        result: Result<Response, TransportError>,
    },
    Client {
        now: Millis,
        client: ClientUri,
        message: ClientToProvider,
    },
    /// Timer ticks, in order (ticks that produced nothing are batched into the next row).
    Ticks {
        nows: Vec<Millis>,
    },
    Restart {
        now: Millis,
    },
}

/// A step of the control API as the client took it (enough to build the same command).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInput {
    pub client: ClientUri,
    pub room: RoomUri,
    pub hub: Domain,
    pub users: std::collections::BTreeMap<String, UserUri>,
    /// The providers whose external senders the step could name.
    pub senders: Vec<Domain>,
    pub preset: Preset,
    /// The scenario op, as JSON.
    pub op: String,
}

/// One input of this node's clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientInput {
    /// `POST /clients`: a new client that published `key_packages` KeyPackages.
    Create {
        client: ClientUri,
        key_packages: usize,
    },
    Step {
        now: Millis,
        step: StepInput,
    },
    Message {
        now: Millis,
        client: ClientUri,
        message: ProviderToClient,
    },
    /// Ticks of every online client (URI order), in order; batched like
    /// [`ServerInput::Ticks`].
    Ticks {
        nows: Vec<Millis>,
    },
    /// `POST /online`: the client goes offline, or back online (its outbox goes out, its
    /// held mail is handed to it).
    Online {
        now: Millis,
        client: ClientUri,
        online: bool,
    },
    /// A mailbox row for an offline client, held for it until it comes back online.
    Held {
        client: ClientUri,
        message: ProviderToClient,
    },
}

/// Which row of the last-mile mailbox (`to_clients`) a client input took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// The oldest row (the live path: the mailbox and the host's queue are in one order).
    Oldest,
    /// Row `seq` (a restart hands over the rows it read).
    Row(i64),
}

/// What the journal knows of a client's last change (`client_marks`): the row of that
/// change, the row of the change before (0: none), the SHA-256 of the client's record
/// after it ([`super::mls_store::record_digest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub seq: i64,
    pub prev: i64,
    pub record: Digest,
}

/// A row of the last-mile mailbox: its number, the client and the message.
pub type Mail = (i64, (ClientUri, ProviderToClient));

/// The node's SQLite file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// What the server core's tables hold (`None`: not known, the next snapshot is
    /// written whole).
    server_written: Option<server_tables::Written>,
}

/// SHA-256 of the CBOR encoding of a core's outputs for one journalled input.
pub type Digest = [u8; 32];

/// The [`Digest`] of `outputs`.
pub fn digest<T: Serialize>(outputs: &[T]) -> Digest {
    use sha2::Digest as _;
    sha2::Sha256::digest(encode(&outputs)).into()
}

/// The rows one commit journals: the silent ticks before it as one row (`as_ticks`), then
/// `input`. The digest of `outputs` goes with the input or, when there is none, with the
/// ticks (the last tick produced them); the other row produced nothing.
pub fn rows<I, O: Serialize>(
    ticks: Vec<Millis>,
    as_ticks: impl FnOnce(Vec<Millis>) -> I,
    input: Option<I>,
    outputs: &[O],
) -> Vec<(I, Digest)> {
    let mut rows = Vec::with_capacity(2);
    if !ticks.is_empty() {
        let d = if input.is_none() {
            digest(outputs)
        } else {
            digest::<O>(&[])
        };
        rows.push((as_ticks(ticks), d));
    }
    rows.extend(input.map(|i| (i, digest(outputs))));
    rows
}

/// A journalled input with its row number and the digest of its outputs.
pub struct Row<I> {
    pub seq: i64,
    pub input: I,
    pub outputs: Digest,
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and every journalled type serializes.
    if let Err(e) = ciborium::into_writer(v, &mut out) {
        tracing::error!("could not encode a journal row: {e}");
    }
    out
}

fn decode<T: for<'de> Deserialize<'de>>(
    path: &Path,
    table: &'static str,
    seq: i64,
    bytes: &[u8],
) -> Result<T, StoreError> {
    ciborium::from_reader(bytes).map_err(|e| StoreError::BadRow {
        path: path.to_path_buf(),
        table,
        seq,
        reason: e.to_string(),
    })
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS server_inputs
    (seq INTEGER PRIMARY KEY AUTOINCREMENT, input BLOB NOT NULL, outputs BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS client_inputs
    (seq INTEGER PRIMARY KEY, input BLOB NOT NULL, outputs BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS to_clients (seq INTEGER PRIMARY KEY, message BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS from_clients (seq INTEGER PRIMARY KEY, message BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS event_lines (seq INTEGER PRIMARY KEY, line TEXT NOT NULL);
";

/// The clients' marks ([`Mark`]).
const CLIENT_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS client_marks
    (client TEXT PRIMARY KEY, seq INTEGER NOT NULL, prev INTEGER NOT NULL, record BLOB NOT NULL);
";

impl Store {
    /// Opens (or creates) `<dir>/state.db` for `identity`. A file of another provider,
    /// seed or enforcement, of another schema, or that is not a database is an error.
    pub fn open(dir: &Path, identity: &NodeIdentity) -> Result<Store, StoreError> {
        let path = dir.join(STATE_FILE);
        let unreadable = |source| StoreError::Unreadable {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(unreadable)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(unreadable)?;
        // The first statements read the header: a file that is not a database fails here.
        // Small pages: a commit writes whole pages, and most rows are a few hundred bytes
        // (only takes effect on a new file).
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(unreadable)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unreadable)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(unreadable)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(unreadable)?;
        if check != "ok" {
            return Err(StoreError::Unreadable {
                path,
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                    Some(check),
                ),
            });
        }
        // A file of another layout is refused before any table of this one is added.
        let meta: bool = conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                [],
                |r| r.get(0),
            )
            .map_err(unreadable)?;
        if meta {
            let found: Option<String> = conn
                .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(unreadable)?;
            if let Some(found) = found.filter(|v| *v != SCHEMA_VERSION.to_string()) {
                return Err(StoreError::Version { path, found });
            }
        }
        conn.execute_batch(SCHEMA).map_err(unreadable)?;
        conn.execute_batch(server_tables::SCHEMA)
            .map_err(unreadable)?;
        conn.execute_batch(CLIENT_SCHEMA).map_err(unreadable)?;
        let mut store = Store {
            conn,
            path,
            server_written: None,
        };
        store.check_identity(identity)?;
        Ok(store)
    }

    /// Reading the file failed: it is damaged (or not ours).
    fn unreadable(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Unreadable {
            path: self.path.clone(),
            source,
        }
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(self.unreadable())
    }

    fn check_identity(&mut self, given: &NodeIdentity) -> Result<(), StoreError> {
        let version = self.meta("schema")?;
        let Some(version) = version else {
            let tx = self
                .conn
                .transaction()
                .map_err(|source| StoreError::Sqlite {
                    path: self.path.clone(),
                    what: "writing meta",
                    source,
                })?;
            for (k, v) in [
                ("schema", SCHEMA_VERSION.to_string()),
                ("provider", given.provider.to_string()),
                ("seed", given.seed.to_string()),
                ("enforcement", given.enforcement.clone()),
                ("configuration", given.configuration.clone()),
            ] {
                tx.execute("INSERT INTO meta (key, value) VALUES (?1, ?2)", [k, &v])
                    .map_err(|source| StoreError::Sqlite {
                        path: self.path.clone(),
                        what: "writing meta",
                        source,
                    })?;
            }
            return tx.commit().map_err(|source| StoreError::Sqlite {
                path: self.path.clone(),
                what: "writing meta",
                source,
            });
        };
        if version != SCHEMA_VERSION.to_string() {
            return Err(StoreError::Version {
                path: self.path.clone(),
                found: version,
            });
        }
        let field = |k: &str| -> Result<String, StoreError> {
            self.meta(k)?.ok_or_else(|| StoreError::BadRow {
                path: self.path.clone(),
                table: "meta",
                seq: 0,
                reason: format!("no {k}"),
            })
        };
        let (provider, seed, enforcement, configuration) = (
            field("provider")?,
            field("seed")?,
            field("enforcement")?,
            field("configuration")?,
        );
        let bad = |reason: String| StoreError::BadRow {
            path: self.path.clone(),
            table: "meta",
            seq: 0,
            reason,
        };
        let stored = NodeIdentity {
            provider: Domain::new(&provider).map_err(|e| bad(e.to_string()))?,
            seed: seed.parse().map_err(|_| bad(format!("seed {seed:?}")))?,
            enforcement,
            configuration,
        };
        if &stored != given {
            return Err(StoreError::Mismatch {
                path: self.path.clone(),
                stored: Box::new(stored),
                given: Box::new(given.clone()),
            });
        }
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rows(&self, table: &'static str) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let sql = if table == "to_clients" {
            "SELECT seq, message FROM to_clients ORDER BY seq"
        } else {
            "SELECT seq, message FROM from_clients ORDER BY seq"
        };
        let mut stmt = self.conn.prepare(sql).map_err(self.unreadable())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(self.unreadable())?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.unreadable())
    }

    fn decoded<T: for<'de> Deserialize<'de>>(
        &self,
        table: &'static str,
    ) -> Result<Vec<(i64, T)>, StoreError> {
        self.rows(table)?
            .into_iter()
            .map(|(seq, b)| Ok((seq, decode(&self.path, table, seq, &b)?)))
            .collect()
    }

    fn input_rows<I: for<'de> Deserialize<'de>>(
        &self,
        table: &'static str,
    ) -> Result<Vec<Row<I>>, StoreError> {
        let sql = if table == "server_inputs" {
            "SELECT seq, input, outputs FROM server_inputs ORDER BY seq"
        } else {
            "SELECT seq, input, outputs FROM client_inputs ORDER BY seq"
        };
        let mut stmt = self.conn.prepare(sql).map_err(self.unreadable())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(self.unreadable())?;
        let rows = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.unreadable())?;
        rows.into_iter()
            .map(|(seq, input, outputs)| {
                Ok(Row {
                    seq,
                    input: decode(&self.path, table, seq, &input)?,
                    outputs: outputs.try_into().map_err(|_| StoreError::BadRow {
                        path: self.path.clone(),
                        table,
                        seq,
                        reason: "the outputs digest is not 32 bytes".into(),
                    })?,
                })
            })
            .collect()
    }

    /// The server core's inputs, in order.
    pub fn server_inputs(&self) -> Result<Vec<Row<ServerInput>>, StoreError> {
        self.input_rows("server_inputs")
    }

    /// The clients' inputs, in order.
    pub fn client_inputs(&self) -> Result<Vec<Row<ClientInput>>, StoreError> {
        self.input_rows("client_inputs")
    }

    /// The error for a replayed row whose outputs differ.
    pub fn diverged(&self, table: &'static str, seq: i64) -> StoreError {
        StoreError::Diverged {
            path: self.path.clone(),
            table,
            seq,
        }
    }

    /// Messages for local clients not taken yet, oldest first, with their row number.
    pub fn to_clients(&self) -> Result<Vec<Mail>, StoreError> {
        self.decoded("to_clients")
    }

    /// Messages from local clients the server core has not taken yet, oldest first.
    pub fn from_clients(&self) -> Result<Vec<(ClientUri, ClientToProvider)>, StoreError> {
        Ok(self
            .decoded("from_clients")?
            .into_iter()
            .map(|(_, m)| m)
            .collect())
    }

    /// [`Store::commit_server_state`] without a snapshot (the journal keeps the inputs).
    pub fn commit_server(
        &mut self,
        inputs: &[(ServerInput, Digest)],
        to_clients: &[(&ClientUri, &ProviderToClient)],
    ) -> Result<(), StoreError> {
        self.commit_server_state(inputs, to_clients, None)
    }

    /// Commits server inputs (batched silent ticks, then one input): their rows, the
    /// oldest `from_clients` row per input that took a client's message, and a
    /// `to_clients` row per message for a client; with `snapshot` (the core after the
    /// inputs), the core's tables ([`super::server_tables`]) too, and the `server_inputs`
    /// rows the snapshot covers are deleted.
    pub fn commit_server_state(
        &mut self,
        inputs: &[(ServerInput, Digest)],
        to_clients: &[(&ClientUri, &ProviderToClient)],
        snapshot: Option<&ServerSnapshot>,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            what: "committing a server input",
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        for (input, outputs) in inputs {
            tx.execute(
                "INSERT INTO server_inputs (input, outputs) VALUES (?1, ?2)",
                params![encode(input), &outputs[..]],
            )
            .map_err(err)?;
            if matches!(input, ServerInput::Client { .. }) {
                tx.execute(
                    "DELETE FROM from_clients WHERE seq = (SELECT MIN(seq) FROM from_clients)",
                    [],
                )
                .map_err(err)?;
            }
        }
        for m in to_clients {
            tx.execute("INSERT INTO to_clients (message) VALUES (?1)", [encode(m)])
                .map_err(err)?;
        }
        let written = match snapshot {
            Some(s) => {
                let covers: i64 = tx
                    .query_row("SELECT COALESCE(MAX(seq), 0) FROM server_inputs", [], |r| {
                        r.get(0)
                    })
                    .map_err(err)?;
                let w = server_tables::write(&tx, s, self.server_written.as_ref(), covers)
                    .map_err(err)?;
                tx.execute("DELETE FROM server_inputs WHERE seq <= ?1", [covers])
                    .map_err(err)?;
                Some(w)
            }
            None => None,
        };
        tx.commit().map_err(err)?;
        if written.is_some() {
            self.server_written = written;
        }
        Ok(())
    }

    /// The server core's state in its tables, if a snapshot was written: the last
    /// `server_inputs` row it covers, and the snapshot. The next snapshot written is
    /// compared with it (only changed rows are written).
    pub fn server_snapshot(&mut self) -> Result<Option<(i64, ServerSnapshot)>, StoreError> {
        match server_tables::read(&self.conn) {
            Ok(Some((covers, snapshot, written))) => {
                self.server_written = Some(written);
                Ok(Some((covers, snapshot)))
            }
            Ok(None) => Ok(None),
            Err(reason) => Err(self.server_tables_error(reason)),
        }
    }

    /// The error for server-core tables that cannot be restored.
    pub fn server_tables_error(&self, reason: impl std::fmt::Display) -> StoreError {
        StoreError::ServerTables {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// The number of rows of `table` (for the restart log line and tests).
    pub fn rows_in(&self, table: &str) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .map_err(self.unreadable())?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Commits client inputs (batched silent ticks, then one input): their rows, the
    /// `to_clients` row taken, if any, a `from_clients` row per message the clients sent,
    /// and a mark per client the inputs changed (with the SHA-256 of its new record). The
    /// client rows of earlier commits are deleted (every client's file includes them:
    /// step 2 of the order of writes in [`super::mls_store`]). Returns the number of the
    /// last `client_inputs` row (0 if none): the changed clients' files record it.
    pub fn commit_client(
        &mut self,
        inputs: &[(ClientInput, Digest)],
        took: Option<Taken>,
        sent: &[(&ClientUri, &ClientToProvider)],
        lines: &[String],
        changed: &[(&ClientUri, Digest)],
    ) -> Result<i64, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            what: "committing a client input",
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let mut first = None;
        for (input, outputs) in inputs {
            tx.execute(
                "INSERT INTO client_inputs (input, outputs) VALUES (?1, ?2)",
                params![encode(input), &outputs[..]],
            )
            .map_err(err)?;
            first = first.or(Some(tx.last_insert_rowid()));
        }
        // Deleted only after inserting: the table is never left empty, so row numbers
        // keep growing (SQLite reuses the number after the largest).
        if let Some(first) = first {
            tx.execute("DELETE FROM client_inputs WHERE seq < ?1", params![first])
                .map_err(err)?;
        }
        match took {
            None => {}
            Some(Taken::Oldest) => {
                tx.execute(
                    "DELETE FROM to_clients WHERE seq = (SELECT MIN(seq) FROM to_clients)",
                    [],
                )
                .map_err(err)?;
            }
            Some(Taken::Row(seq)) => {
                tx.execute("DELETE FROM to_clients WHERE seq = ?1", params![seq])
                    .map_err(err)?;
            }
        }
        for m in sent {
            tx.execute(
                "INSERT INTO from_clients (message) VALUES (?1)",
                [encode(m)],
            )
            .map_err(err)?;
        }
        // The previous commit's lines are in events.jsonl by now (appended right after it).
        tx.execute("DELETE FROM event_lines", []).map_err(err)?;
        for l in lines {
            tx.execute("INSERT INTO event_lines (line) VALUES (?1)", [l])
                .map_err(err)?;
        }
        let last: i64 = tx
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM client_inputs", [], |r| {
                r.get(0)
            })
            .map_err(err)?;
        for (client, record) in changed {
            tx.execute(
                "INSERT INTO client_marks (client, seq, prev, record) VALUES (?1, ?2, 0, ?3)
                 ON CONFLICT (client) DO UPDATE SET
                     prev = CASE WHEN seq = excluded.seq THEN prev ELSE seq END,
                     seq = excluded.seq, record = excluded.record",
                params![client.as_str(), last, &record[..]],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(last)
    }

    /// Every client's [`Mark`].
    pub fn client_marks(&self) -> Result<std::collections::BTreeMap<ClientUri, Mark>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT client, seq, prev, record FROM client_marks ORDER BY client")
            .map_err(self.unreadable())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(self.unreadable())?;
        let mut out = std::collections::BTreeMap::new();
        for (i, row) in rows.enumerate() {
            let (client, seq, prev, record) = row.map_err(self.unreadable())?;
            let bad = |reason: String| StoreError::BadRow {
                path: self.path.clone(),
                table: "client_marks",
                seq: i64::try_from(i).unwrap_or(i64::MAX),
                reason,
            };
            let uri: ClientUri = client
                .parse()
                .map_err(|e| bad(format!("client {client:?}: {e}")))?;
            let record: Digest = record
                .try_into()
                .map_err(|_| bad("the record digest is not 32 bytes".into()))?;
            out.insert(uri, Mark { seq, prev, record });
        }
        Ok(out)
    }

    /// Deletes the client rows before row `seq` (a restart did what their commit left
    /// undone: every client's file includes them now).
    pub fn forget_client_inputs_before(&mut self, seq: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM client_inputs WHERE seq < ?1", params![seq])
            .map(|_| ())
            .map_err(|source| StoreError::Sqlite {
                path: self.path.clone(),
                what: "deleting the repaired client inputs",
                source,
            })
    }

    /// The `events.jsonl` lines of the last client commit (maybe not appended: a crash
    /// right after the commit).
    pub fn event_lines(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT line FROM event_lines ORDER BY seq")
            .map_err(self.unreadable())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.unreadable())?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.unreadable())
    }

    /// Runs `sql` (tests tamper with the file through it).
    #[cfg(test)]
    pub(crate) fn execute_for_tests(&self, sql: &str) {
        self.conn.execute_batch(sql).unwrap();
    }

    /// Rows per table (for the restart log line and tests).
    pub fn counts(&self) -> Result<[u64; 4], StoreError> {
        let mut out = [0u64; 4];
        for (i, t) in [
            "server_inputs",
            "client_inputs",
            "to_clients",
            "from_clients",
        ]
        .iter()
        .enumerate()
        {
            let n: i64 = self
                .conn
                .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
                .map_err(self.unreadable())?;
            out[i] = u64::try_from(n).unwrap_or(0);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodes::endpoint::Endpoint;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mimi-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn id(p: &str, seed: u64) -> NodeIdentity {
        NodeIdentity {
            provider: Domain::new(p).unwrap(),
            seed,
            enforcement: "full".into(),
            configuration: "none".into(),
        }
    }

    fn room() -> RoomUri {
        RoomUri::new(&Domain::new("a.example").unwrap(), "lobby").unwrap()
    }

    fn alice() -> ClientUri {
        UserUri::new(&Domain::new("a.example").unwrap(), "alice")
            .unwrap()
            .client("1")
            .unwrap()
    }

    fn server_inputs() -> Vec<ServerInput> {
        let request = Request {
            from: Domain::new("b.example").unwrap(),
            to: Domain::new("a.example").unwrap(),
            endpoint: Endpoint::SubmitMessage(room()),
            body: vec![0, 1, 2, 255],
        };
        vec![
            ServerInput::Restart { now: 5 },
            ServerInput::Request {
                now: 10,
                id: 3,
                request,
            },
            ServerInput::Response {
                now: 11,
                token: 7,
                result: Ok(Response::new(201, vec![9; 40])),
            },
            ServerInput::Response {
                now: 12,
                token: 8,
                result: Err(TransportError::Timeout),
            },
            ServerInput::Client {
                now: 13,
                client: alice(),
                message: ClientToProvider::PublishKeyPackages {
                    key_packages: vec![vec![1; 3], vec![], vec![2; 300]],
                },
            },
            ServerInput::Client {
                now: 14,
                client: alice(),
                message: ClientToProvider::TakeOver {
                    corr: 1,
                    room: room(),
                    group_info: vec![4; 10],
                    ratchet_tree: vec![5; 11],
                    body: vec![6; 12],
                },
            },
            ServerInput::Ticks {
                nows: vec![100, 200, 300],
            },
        ]
    }

    /// Each input with a made-up digest of its own (its debug text's length).
    fn with_digests<I: Clone + std::fmt::Debug>(inputs: &[I]) -> Vec<(I, Digest)> {
        inputs
            .iter()
            .map(|i| (i.clone(), digest(&[format!("{i:?}").len()])))
            .collect()
    }

    #[test]
    fn every_journalled_input_and_mailbox_row_reads_back_as_written() {
        let d = dir("roundtrip");
        let me = id("a.example", 1);
        let deliver = ProviderToClient::Deliver {
            room: room(),
            fanout: vec![7; 64],
        };
        let reply = ProviderToClient::Reply {
            corr: 2,
            response: Response::error(503, "hub unreachable"),
        };
        let relay = ClientToProvider::Relay {
            corr: 4,
            endpoint: Endpoint::Update(room()),
            body: vec![8; 33],
        };
        let step = StepInput {
            client: alice(),
            room: room(),
            hub: Domain::new("a.example").unwrap(),
            users: [(
                "bob".to_string(),
                UserUri::new(&Domain::new("b.example").unwrap(), "bob").unwrap(),
            )]
            .into(),
            senders: vec![Domain::new("a.example").unwrap()],
            preset: Preset::default(),
            op: r#"{"op":"send","text":"hi"}"#.into(),
        };
        let client_inputs = vec![
            ClientInput::Create {
                client: alice(),
                key_packages: 8,
            },
            ClientInput::Step { now: 20, step },
            ClientInput::Message {
                now: 21,
                client: alice(),
                message: deliver.clone(),
            },
            ClientInput::Ticks { nows: vec![1, 2] },
        ];
        {
            let mut s = Store::open(&d, &me).unwrap();
            let inputs = with_digests(&server_inputs());
            s.commit_client(&[], None, &[(&alice(), &relay)], &[], &[])
                .unwrap();
            s.commit_client(&[], None, &[(&alice(), &relay)], &["x".into()], &[])
                .unwrap();
            // The Client inputs take the two from_clients rows.
            s.commit_server(&inputs[..5], &[(&alice(), &deliver)])
                .unwrap();
            s.commit_server(&inputs[5..], &[(&alice(), &reply)])
                .unwrap();
            let client_rows = with_digests(&client_inputs);
            let seq = s
                .commit_client(
                    &client_rows[..2],
                    None,
                    &[],
                    &["a".into(), "b".into()],
                    &[(&alice(), [1; 32])],
                )
                .unwrap();
            assert_eq!(seq, 2);
            // The Message input took the oldest mailbox row; the rows of the commit
            // before are deleted.
            let seq = s
                .commit_client(
                    &client_rows[2..],
                    Some(Taken::Oldest),
                    &[(&alice(), &relay)],
                    &["c".into()],
                    &[(&alice(), [2; 32])],
                )
                .unwrap();
            assert_eq!(seq, 4);
        }
        let s = Store::open(&d, &me).unwrap();
        let rows = s.server_inputs().unwrap();
        assert_eq!(
            rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (1..=7).collect::<Vec<i64>>()
        );
        let rows: Vec<_> = rows.into_iter().map(|r| (r.input, r.outputs)).collect();
        assert_eq!(rows, with_digests(&server_inputs()));
        let rows = s.client_inputs().unwrap();
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4]);
        let rows: Vec<_> = rows.into_iter().map(|r| (r.input, r.outputs)).collect();
        assert_eq!(rows, with_digests(&client_inputs)[2..]);
        assert_eq!(
            s.client_marks().unwrap(),
            [(
                alice(),
                Mark {
                    seq: 4,
                    prev: 2,
                    record: [2; 32]
                }
            )]
            .into()
        );
        let mailbox = s.to_clients().unwrap();
        assert_eq!(mailbox.len(), 1);
        assert_eq!(mailbox[0].1, (alice(), reply));
        assert_eq!(s.from_clients().unwrap(), vec![(alice(), relay)]);
        assert_eq!(s.event_lines().unwrap(), vec!["c".to_string()]);
        assert_eq!(s.counts().unwrap(), [7, 2, 1, 1]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_file_of_the_journal_only_layout_is_refused_and_left_as_it_was() {
        let d = dir("v1");
        Connection::open(d.join(STATE_FILE))
            .unwrap()
            .execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO meta VALUES ('schema', '1');
                 CREATE TABLE server_inputs
                     (seq INTEGER PRIMARY KEY, input BLOB NOT NULL, outputs BLOB NOT NULL);",
            )
            .unwrap();
        let e = Store::open(&d, &id("a.example", 1)).err().unwrap();
        assert!(
            matches!(e, StoreError::Version { .. }) && e.is_bad_input(),
            "{e}"
        );
        let text = e.to_string();
        assert!(text.contains("\"1\"") && text.contains("--state"), "{text}");
        let tables: i64 = Connection::open(d.join(STATE_FILE))
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 2);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn another_provider_seed_enforcement_or_scenario_is_refused() {
        let d = dir("identity");
        drop(Store::open(&d, &id("a.example", 1)).unwrap());
        for other in [
            id("b.example", 1),
            id("a.example", 2),
            NodeIdentity {
                enforcement: "off".into(),
                ..id("a.example", 1)
            },
            NodeIdentity {
                configuration: "scenario sha256:00 with variants []".into(),
                ..id("a.example", 1)
            },
        ] {
            let e = Store::open(&d, &other).err().unwrap();
            assert!(matches!(e, StoreError::Mismatch { .. }), "{e}");
            assert!(e.is_bad_input());
            let text = e.to_string();
            assert!(
                text.contains("a.example") && text.contains("--state"),
                "{text}"
            );
        }
        assert!(Store::open(&d, &id("a.example", 1)).is_ok());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_damaged_file_or_row_is_a_clear_error_not_a_panic() {
        // Not a database at all.
        let d = dir("garbage");
        std::fs::write(d.join(STATE_FILE), vec![0x42; 4096]).unwrap();
        let e = Store::open(&d, &id("a.example", 1)).err().unwrap();
        assert!(matches!(e, StoreError::Unreadable { .. }), "{e}");
        assert!(
            e.is_bad_input() && e.to_string().contains("state.db"),
            "{e}"
        );

        // A database cut short: the first page only, later pages gone.
        let d = dir("torn");
        {
            let mut s = Store::open(&d, &id("a.example", 1)).unwrap();
            for _ in 0..200 {
                s.commit_server(&with_digests(&server_inputs()), &[])
                    .unwrap();
            }
            s.conn
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                .unwrap();
        }
        let bytes = std::fs::read(d.join(STATE_FILE)).unwrap();
        assert!(bytes.len() > 3 * 4096, "{}", bytes.len());
        std::fs::write(d.join(STATE_FILE), &bytes[..bytes.len() / 2]).unwrap();
        let e = Store::open(&d, &id("a.example", 1))
            .and_then(|s| s.server_inputs().map(|_| ()))
            .err()
            .unwrap();
        assert!(e.is_bad_input(), "{e}");
        assert!(e.to_string().contains("state.db"), "{e}");

        // A row whose bytes are not a journalled input.
        let d = dir("row");
        {
            let s = Store::open(&d, &id("a.example", 1)).unwrap();
            s.conn
                .execute(
                    "INSERT INTO server_inputs (input, outputs) VALUES (x'ff00ff', x'00')",
                    [],
                )
                .unwrap();
        }
        let s = Store::open(&d, &id("a.example", 1)).unwrap();
        let e = s.server_inputs().err().unwrap();
        assert!(
            matches!(
                e,
                StoreError::BadRow {
                    table: "server_inputs",
                    seq: 1,
                    ..
                }
            ),
            "{e}"
        );
        for d in ["garbage", "torn", "row"] {
            let _ = std::fs::remove_dir_all(dir(d));
        }
    }
}
