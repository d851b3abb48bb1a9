//! `PostgresStore`: every `Store` call as SQL. A commit is one transaction that locks the
//! run's row (the version check), the wait keys it touches (in key order, so two commits
//! never wait on each other in a cycle), then the global log's head (last, so it is held
//! for the shortest time: it orders every commit's records into the feed and the Merkle
//! log without gaps).

use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use ledgerflow_kernel::store::{
    CheckReport, Commit, Delivery, Error, FeedEntry, InboxEntry, IndexChange, IndexReader, Leases,
    Store, StoreLimits, TimeField, TimerEntry,
};
use ledgerflow_kernel::{
    ArtifactRef, Hash, Record, RunId, RunState, RunStatus, Snapshot, SnapshotFilter,
};
use ledgerflow_ledger::checkpoint::{
    self, CheckpointKey, CheckpointSigner, SignedCheckpoint, TreeHead,
};
use ledgerflow_ledger::merkle::{self, Frontier, TreeHash};
use postgres::types::ToSql;
use postgres::{GenericClient, Row, Statement};
use serde_json::Value;
use uuid::Uuid;

use crate::codec::{self, db_error, int, run_id, uint, uuid};
use crate::group::Group;
use crate::pool::{Conn, Pool, Statements};
use crate::schema;

/// Where and how to reach the database.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// A libpq connection string: `postgres://user:password@host:port/database` or
    /// `host=... user=... dbname=...` (`host` may be a unix-socket directory).
    pub url: String,
    /// The schema the store's tables live in (a plain lowercase identifier; created if
    /// missing). Several stores can share a database under different schemas.
    pub schema: String,
    /// Connections the store opens at most; calls beyond wait for one.
    pub connections_max: usize,
    /// How long a call waits for a free connection before it fails.
    pub connection_wait_ms_max: u64,
    /// The store's bounds.
    pub limits: StoreLimits,
    /// Most step commits one transaction carries (group commit: commits that arrive while
    /// one transaction commits share the next).
    pub commit_batch_max: usize,
    /// This worker's name in run leases (see [`Leases`]). Default: the host name, the
    /// process id and a random suffix, so two stores opened in one process are two
    /// workers.
    pub worker: String,
    /// How long a run lease lasts without renewal: how long the runs of a worker that
    /// crashed or stalled wait before another worker takes them over. Default 30 s. A
    /// connection idle inside a transaction for half of it is closed by the server, so a
    /// stalled worker cannot hold row locks past its leases.
    pub lease_ms: u64,
}

impl PostgresConfig {
    /// The store in schema `ledgerflow` of the database at `url`, with up to 8 connections
    /// (the default worker count and a few readers; each connection is a server process,
    /// so more cost the database more than they give) and calls that wait up to 30 s for
    /// one (longer than any healthy transaction, shorter than a stuck caller notices).
    pub fn new(url: impl Into<String>) -> PostgresConfig {
        PostgresConfig {
            url: url.into(),
            schema: "ledgerflow".into(),
            connections_max: 8,
            connection_wait_ms_max: 30_000,
            limits: StoreLimits::default(),
            // Enough to amortize one WAL flush over the default workers many times over,
            // small enough that one transaction stays well under a megabyte of rows.
            commit_batch_max: 256,
            worker: default_worker_name(),
            lease_ms: 30_000,
        }
    }
}

/// `<host>-<pid>-<random>`: a worker name no other process or store shares.
fn default_worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let suffix = Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..8])
}

/// A [`Store`] on PostgreSQL. See the crate docs.
pub struct PostgresStore {
    pool: Pool,
    schema: String,
    limits: StoreLimits,
    store_id: [u8; 16],
    /// The global log's origin, `ledgerflow/<store id>`.
    origin: String,
    /// Signs each commit's checkpoint, once set; unsigned checkpoints until then.
    signer: OnceLock<CheckpointSigner>,
    /// Commits waiting for, or in, the batch being committed.
    group: Group<Pending>,
    /// The run leases this worker holds (see [`crate::leases`]).
    pub(crate) leases: crate::leases::Held,
    /// The global log's right edge as this process's last commit left it (see
    /// `append_log`); none until a commit, or after one failed.
    log_edge: std::sync::Mutex<Option<Frontier>>,
    closed: AtomicBool,
}

/// A commit waiting for its batch, with the fencing epoch of the lease its worker holds
/// on the run (none: the worker holds no lease on it).
pub(crate) struct Pending {
    commit: Commit,
    epoch: Option<i64>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, creates the schema or applies the migrations it lacks, and reads the
    /// store's identity. A bad connection string or schema name is
    /// [`Error::InvalidInput`]; a database that cannot be reached is [`Error::Io`].
    pub fn open(config: PostgresConfig) -> Result<PostgresStore, Error> {
        PostgresStore::open_with(config, schema::Open::Create)
    }

    /// Opens the store only if its schema holds one ([`Error::Missing`] otherwise): what
    /// an operator's command does, so a typo never creates an empty store.
    pub fn open_existing(config: PostgresConfig) -> Result<PostgresStore, Error> {
        PostgresStore::open_with(config, schema::Open::Existing)
    }

    /// Opens an existing store for reading only: no migration is applied (a schema of an
    /// older version is refused) and writes fail with [`Error::Closed`].
    pub fn open_read_only(config: PostgresConfig) -> Result<PostgresStore, Error> {
        let store = PostgresStore::open_with(config, schema::Open::ReadOnly)?;
        store.close()?;
        Ok(store)
    }

    fn open_with(config: PostgresConfig, open: schema::Open) -> Result<PostgresStore, Error> {
        if !schema::valid_schema_name(&config.schema) {
            return Err(Error::InvalidInput(format!(
                "schema {:?}: give a lowercase identifier (a-z, 0-9, _; at most 63 bytes; not pg_…)",
                config.schema
            )));
        }
        let mut pg = postgres::Config::from_str(&config.url)
            .map_err(|e| Error::InvalidInput(format!("the PostgreSQL connection string: {e}")))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(10));
        }
        pg.application_name("ledgerflow");
        let mut client = pg
            .connect(postgres::NoTls)
            .map_err(|e| db_error("connecting to the database", e))?;
        schema::migrate(&mut client, &config.schema, open)?;
        drop(client);
        let pool = Pool::new(
            pg.clone(),
            config.schema.clone(),
            config.connections_max,
            config.connection_wait_ms_max,
            config.lease_ms / 2,
        );
        let store_id = {
            let mut conn = pool.get()?;
            let rows = query(&mut conn, "SELECT store_id FROM lf_meta", &[])?;
            let bytes: Vec<u8> = rows
                .first()
                .map(|r| r.get(0))
                .ok_or_else(|| Error::Corrupt("lf_meta has no row".into()))?;
            bytes
                .try_into()
                .map_err(|_| Error::Corrupt("lf_meta.store_id is not 16 bytes".into()))?
        };
        let leases = crate::leases::Held::new(pg, &config.schema, config.worker, config.lease_ms);
        Ok(PostgresStore {
            pool,
            schema: config.schema,
            limits: config.limits,
            store_id,
            origin: checkpoint::origin_of_store(&store_id),
            signer: OnceLock::new(),
            group: Group::new(config.commit_batch_max),
            leases,
            log_edge: std::sync::Mutex::default(),
            closed: AtomicBool::new(false),
        })
    }

    /// Signs the checkpoint every commit writes with `signer` from now on (before, and
    /// without a key, checkpoints are unsigned: they still give an export a tree head, but
    /// prove nothing about who wrote it). Keep the key on the worker hosts, not in the
    /// database: whoever can write the database cannot sign. Set once.
    pub fn sign_checkpoints_with(&self, signer: CheckpointSigner) -> Result<(), Error> {
        self.signer
            .set(signer)
            .map_err(|_| Error::InvalidInput("the store already has a signing key".into()))
    }

    /// The global log's origin (`ledgerflow/<store id>`): the name a signing key for this
    /// store is made with.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The schema the tables are in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Runs `f` in a transaction on a pooled connection, committing when it returns `Ok`
    /// (an error rolls back: nothing of it is stored).
    fn transaction<T>(
        &self,
        what: &str,
        f: impl FnMut(&mut postgres::Transaction<'_>, &mut Statements) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.transaction_outcome(what, f)
            .map_err(|failure| match failure {
                TxFailure::Failed(e) | TxFailure::Unknown(e) => e,
            })
    }

    /// [`PostgresStore::transaction`], telling a transaction that surely failed from one
    /// whose `COMMIT` was sent but not answered (the connection broke): that one may be
    /// stored. A transaction that failed because its connection was broken (a pooled
    /// connection the server or the network cut while it was idle), or that the server
    /// rolled back as a deadlock's victim or as unserializable, stored nothing, and is
    /// run again (up to [`ATTEMPTS_MAX`] times in all; on a new connection if broken).
    fn transaction_outcome<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&mut postgres::Transaction<'_>, &mut Statements) -> Result<T, Error>,
    ) -> Result<T, TxFailure> {
        let mut attempts_left = ATTEMPTS_MAX;
        loop {
            attempts_left -= 1;
            let mut conn = self.pool.get().map_err(TxFailure::Failed)?;
            conn.statements.take_transient_error();
            let outcome = transaction_on(&mut conn, what, &mut f);
            match outcome {
                Err(TxFailure::Failed(_))
                    if attempts_left > 0
                        && (conn.statements.take_transient_error() || conn.broke()) => {}
                Err(TxFailure::Unknown(e)) => {
                    conn.set_broken();
                    return Err(TxFailure::Unknown(e));
                }
                outcome => return outcome,
            }
        }
    }

    /// Runs `f` on a pooled connection, again (on a new one if the first was broken)
    /// after a broken connection or a transient error, as [`PostgresStore::transaction`]
    /// does: for reads, and statements that are safe to repeat.
    pub(crate) fn with_conn<T>(
        &self,
        mut f: impl FnMut(&mut Conn) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut attempts_left = ATTEMPTS_MAX;
        loop {
            attempts_left -= 1;
            let mut conn = self.pool.get()?;
            conn.statements.take_transient_error();
            match f(&mut conn) {
                Err(_)
                    if attempts_left > 0
                        && (conn.statements.take_transient_error() || conn.broke()) => {}
                outcome => return outcome,
            }
        }
    }

    /// Whether the transaction that wrote `probe` was stored, after the connection broke
    /// with its `COMMIT` unanswered. Every commit locks the log head row until its
    /// transaction ends, so taking that lock waits out a transaction still finishing on
    /// the server (one the server has not yet seen cut off ends by
    /// `idle_in_transaction_session_timeout`); then the probe's last record is stored or
    /// it never will be. Asks a few times, on new connections, while the database cannot
    /// be reached.
    fn landed(&self, probe: &Commit) -> Result<bool, Error> {
        let Some(last) = probe.records.last() else {
            return Err(Error::io_failed(
                "a commit without records cannot be read back",
            ));
        };
        let (id, seq) = (uuid(probe.run_id), int(last.seq(), "a seq")?);
        let line = codec::record_line(last);
        let found = self.ask_after_cut("reading back a commit", |tx, statements| {
            tx_query(
                tx,
                statements,
                "SELECT size FROM lf_log_head FOR UPDATE",
                &[],
            )?;
            let rows = tx_query(
                tx,
                statements,
                "SELECT line FROM lf_records WHERE run_id = $1 AND seq = $2",
                &[&id, &seq],
            )?;
            Ok(rows.first().map(|row| row.get::<_, &str>(0) == line))
        })?;
        Ok(found == Some(true))
    }

    /// Runs the read-back transaction `f` after a connection was cut with a `COMMIT`
    /// unanswered: a few times, with growing pauses, while the database cannot be reached.
    fn ask_after_cut<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&mut postgres::Transaction<'_>, &mut Statements) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut backoff = Duration::from_millis(50);
        let mut attempt = 1;
        loop {
            match self.transaction(what, &mut f) {
                Ok(answer) => return Ok(answer),
                Err(e) if attempt >= COMMIT_READ_BACK_ATTEMPTS => return Err(e),
                Err(_) => {
                    std::thread::sleep(backoff);
                    backoff *= 2;
                    attempt += 1;
                }
            }
        }
    }

    /// Runs the statement `sql` on a pooled connection.
    pub(crate) fn rows(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        self.with_conn(|conn| query(conn, sql, params))
    }
}

/// One transaction of `f` on `conn`.
fn transaction_on<T>(
    conn: &mut Conn,
    what: &str,
    f: &mut impl FnMut(&mut postgres::Transaction<'_>, &mut Statements) -> Result<T, Error>,
) -> Result<T, TxFailure> {
    let Conn {
        client, statements, ..
    } = conn;
    let mut tx = client
        .transaction()
        .map_err(|e| TxFailure::Failed(db_error(&format!("{what}: starting a transaction"), e)))?;
    let value = f(&mut tx, statements).map_err(TxFailure::Failed)?;
    tx.commit().map_err(|e| {
        // The server answered with an error: it rolled back. No answer: unknown.
        let answered = e.as_db_error().is_some();
        statements.failed(&e);
        let e = db_error(&format!("{what}: committing"), e);
        if answered {
            TxFailure::Failed(e)
        } else {
            TxFailure::Unknown(e)
        }
    })?;
    Ok(value)
}

/// Drops schema `schema` of the database at `url` with every table in it: the whole
/// store, for tests and benchmarks that made one. A name that is not a plain identifier
/// is refused.
pub fn drop_schema(url: &str, schema: &str) -> Result<(), Error> {
    if !schema::valid_schema_name(schema) {
        return Err(Error::InvalidInput(format!("schema {schema:?}")));
    }
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| db_error("connecting to the database", e))?;
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .map_err(|e| db_error("dropping the schema", e))
}

fn prepared(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    sql: &'static str,
) -> Result<Statement, Error> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql).map_err(|e| {
        statements.failed(&e);
        db_error("preparing a statement", e)
    })?;
    statements.insert(sql, statement.clone());
    Ok(statement)
}

pub(crate) fn query(
    conn: &mut Conn,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, Error> {
    let Conn {
        client, statements, ..
    } = conn;
    tx_query(client, statements, sql, params)
}

pub(crate) fn tx_query(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, Error> {
    let statement = prepared(client, statements, sql)?;
    client.query(&statement, params).map_err(|e| {
        statements.failed(&e);
        db_error("reading", e)
    })
}

pub(crate) fn tx_execute(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, Error> {
    let statement = prepared(client, statements, sql)?;
    client.execute(&statement, params).map_err(|e| {
        statements.failed(&e);
        db_error("writing", e)
    })
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Takes the row lock of a wait key (creating its row): deliveries to a key and commits
/// that wait on it, consume its inbox or push to it are serialized by it.
const LOCK_KEY: &str = "INSERT INTO lf_inbox_keys (wait_key, last_seq) VALUES ($1, 0)
     ON CONFLICT (wait_key) DO UPDATE SET last_seq = lf_inbox_keys.last_seq RETURNING last_seq";

/// The index columns of a run, as a commit changes them.
struct Columns {
    status: RunStatus,
    workflow_id: String,
    workflow_version: i64,
    created_ms: i64,
    updated_ms: i64,
    parent: Option<Uuid>,
    wait_key: Option<String>,
    timer_ms: Option<i64>,
}

impl Columns {
    fn of_new(state: &RunState) -> Columns {
        Columns {
            status: state.status,
            workflow_id: state.workflow_id.clone(),
            workflow_version: i64::from(state.workflow_version),
            created_ms: state.created_at_ms,
            updated_ms: state.updated_at_ms,
            parent: state.parent.as_ref().map(|p| uuid(p.run_id)),
            wait_key: None,
            timer_ms: None,
        }
    }

    fn of_row(row: &Row) -> Result<Columns, Error> {
        Ok(Columns {
            status: codec::status(row.get("status"))?,
            workflow_id: row.get("workflow_id"),
            workflow_version: row.get("workflow_version"),
            created_ms: row.get("created_ms"),
            updated_ms: row.get("updated_ms"),
            parent: row.get("parent"),
            wait_key: row.get("wait_key"),
            timer_ms: row.get("timer_ms"),
        })
    }
}

/// The index rules' view of the store inside a commit's transaction.
struct TxReader<'a, 't> {
    tx: RefCell<&'a mut postgres::Transaction<'t>>,
    statements: RefCell<&'a mut Statements>,
}

impl TxReader<'_, '_> {
    fn rows(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error> {
        let mut tx = self.tx.borrow_mut();
        let mut statements = self.statements.borrow_mut();
        tx_query(&mut **tx, &mut statements, sql, params)
    }
}

impl IndexReader for TxReader<'_, '_> {
    type Error = Error;

    fn wait_key_holder(&self, wait_key: &str) -> Result<Option<RunId>, Error> {
        let rows = self.rows(
            "SELECT run_id FROM lf_runs WHERE wait_key = $1",
            &[&wait_key],
        )?;
        Ok(rows.first().map(|r| run_id(r.get(0))))
    }

    fn inbox_span(&self, wait_key: &str) -> Result<(u64, u64), Error> {
        let rows = self.rows(
            "SELECT coalesce(min(seq), 0), count(*) FROM lf_inbox WHERE wait_key = $1",
            &[&wait_key],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| Error::io_failed("an aggregate returned no row"))?;
        Ok((
            uint(row.get(0), "an inbox seq")?,
            uint(row.get(1), "an inbox count")?,
        ))
    }
}

/// Queues `payload` for `wait_key` (whose row lock the transaction holds); its inbox seq.
fn push_inbox(
    tx: &mut postgres::Transaction<'_>,
    statements: &mut Statements,
    wait_key: &str,
    payload: &Value,
    at_ms: i64,
) -> Result<u64, Error> {
    let rows = tx_query(
        tx,
        statements,
        "UPDATE lf_inbox_keys SET last_seq = last_seq + 1 WHERE wait_key = $1 RETURNING last_seq",
        &[&wait_key],
    )?;
    let seq: i64 = rows
        .first()
        .map(|r| r.get(0))
        .ok_or_else(|| Error::io_failed(format!("the inbox row of {wait_key:?} is gone")))?;
    tx_execute(
        tx,
        statements,
        "INSERT INTO lf_inbox (wait_key, seq, payload, at_ms) VALUES ($1, $2, $3, $4)",
        &[&wait_key, &seq, &payload.to_string(), &at_ms],
    )?;
    uint(seq, "an inbox seq")
}

/// How a commit's checkpoint is made.
struct Signing<'a> {
    origin: &'a str,
    signer: Option<&'a CheckpointSigner>,
}

impl Signing<'_> {
    fn checkpoint(&self, size: u64, root: TreeHash) -> Result<SignedCheckpoint, Error> {
        let head = TreeHead {
            origin: self.origin.to_owned(),
            size,
            root,
        };
        match self.signer {
            Some(signer) => signer.sign(&head),
            None => checkpoint::unsigned(&head),
        }
        .map_err(|e| Error::io_failed(format!("signing the checkpoint: {e}")))
    }
}

/// How a transaction failed.
enum TxFailure {
    /// It did not commit: nothing of it is stored.
    Failed(Error),
    /// Its `COMMIT` went unanswered: it may be stored.
    Unknown(Error),
}

/// How many times a transaction is tried in all when it fails in a way that stored
/// nothing and may pass next time (a broken connection, a deadlock, a serialization
/// failure).
const ATTEMPTS_MAX: u32 = 3;

/// How many times a commit whose answer was lost is read back (waiting 50 ms, then twice
/// as long each time: about 1.5 s in all) before its caller is told the outcome is unknown.
const COMMIT_READ_BACK_ATTEMPTS: u32 = 5;

/// What a commit is checked and written with besides itself.
struct Context<'a> {
    limits: StoreLimits,
    signing: Signing<'a>,
    /// This worker's name and lease time.
    worker: &'a str,
    lease_ms: i64,
}

/// The lease rules of a commit on an existing run (see [`Leases`]): with a lease, the
/// run's holder and epoch must still be this worker's; without one, no other worker may
/// hold a live lease.
fn check_fence(row: &Row, commit: &Pending, worker: &str) -> Result<(), Error> {
    let holder: Option<String> = row.get("lease_holder");
    let fenced = match commit.epoch {
        Some(epoch) => {
            holder.as_deref() != Some(worker) || row.get::<_, i64>("lease_epoch") != epoch
        }
        None => row.get::<_, bool>("lease_live") && holder.as_deref() != Some(worker),
    };
    if fenced {
        return Err(Error::Fenced {
            run_id: commit.commit.run_id,
            holder: holder
                .unwrap_or_else(|| "(none: it took the lease over and let it go since)".to_owned()),
        });
    }
    Ok(())
}

fn commit_in(
    tx: &mut postgres::Transaction<'_>,
    statements: &mut Statements,
    pending: &Pending,
    context: &Context<'_>,
) -> Result<(), Error> {
    let commit = &pending.commit;
    let limits = context.limits;
    let id = uuid(commit.run_id);
    let current = tx_query(
        tx,
        statements,
        "SELECT seq, head_hash, status, workflow_id, workflow_version, created_ms, updated_ms,
                parent, wait_key, timer_ms, lease_holder, lease_epoch,
                coalesce(lease_expires_at > now(), false) AS lease_live
         FROM lf_runs WHERE run_id = $1 FOR UPDATE",
        &[&id],
    )?;
    if let Some(row) = current.first() {
        check_fence(row, pending, context.worker)?;
    }
    let (actual_seq, head_hash, mut columns) = match current.first() {
        Some(row) => (
            uint(row.get("seq"), "a run's seq")?,
            codec::hash(row.get("head_hash"), "a run's head hash")?,
            Columns::of_row(row)?,
        ),
        None => (0, Hash::GENESIS, Columns::of_new(&commit.state)),
    };
    if actual_seq != commit.expected_seq {
        return Err(Error::Conflict {
            run_id: commit.run_id,
            expected_seq: commit.expected_seq,
            actual_seq,
        });
    }
    commit.check_shape(head_hash)?;
    let mut keys: Vec<&str> = touched_keys(commit).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        tx_query(tx, statements, LOCK_KEY, &[&key])?;
    }
    {
        let reader = TxReader {
            tx: RefCell::new(&mut *tx),
            statements: RefCell::new(&mut *statements),
        };
        commit.check_index_rules(&reader, limits.inbox_entries_max, |e| e)?;
    }
    for change in &commit.index {
        match change {
            IndexChange::WaitKeySet(key) => columns.wait_key = Some(key.clone()),
            IndexChange::WaitKeyClear(key) => {
                if columns.wait_key.as_ref() == Some(key) {
                    columns.wait_key = None;
                }
            }
            IndexChange::TimerSet(due_at_ms) => columns.timer_ms = Some(*due_at_ms),
            IndexChange::TimerClear(due_at_ms) => {
                if columns.timer_ms == Some(*due_at_ms) {
                    columns.timer_ms = None;
                }
            }
            IndexChange::Status { to, .. } => columns.status = *to,
            IndexChange::InboxConsume { wait_key, seq } => {
                tx_execute(
                    tx,
                    statements,
                    "DELETE FROM lf_inbox WHERE wait_key = $1 AND seq = $2",
                    &[wait_key, &int(*seq, "an inbox seq")?],
                )?;
            }
            IndexChange::InboxPush { wait_key, payload } => {
                push_inbox(tx, statements, wait_key, payload, commit.at_ms)?;
            }
            IndexChange::Child { parent } => columns.parent = Some(uuid(*parent)),
            IndexChange::Workflow {
                workflow_id,
                version,
            } => {
                columns.workflow_id = workflow_id.clone();
                columns.workflow_version = i64::from(*version);
            }
            IndexChange::Created(at_ms) => columns.created_ms = *at_ms,
            IndexChange::Updated { to, .. } => columns.updated_ms = *to,
        }
    }
    let state = codec::state_bytes(&commit.state)?;
    let seq = int(commit.state.head.seq, "a seq")?;
    let head = commit.state.head.hash.as_bytes().to_vec();
    let holds = pending.epoch.is_some() || current.is_empty();
    let params: [&(dyn ToSql + Sync); 15] = [
        &id,
        &seq,
        &head,
        &state,
        &columns.status.as_str(),
        &columns.workflow_id,
        &columns.workflow_version,
        &columns.created_ms,
        &columns.updated_ms,
        &columns.parent,
        &columns.wait_key,
        &columns.timer_ms,
        &holds,
        &context.worker,
        &context.lease_ms,
    ];
    if current.is_empty() {
        let inserted = tx_execute(
            tx,
            statements,
            "INSERT INTO lf_runs (run_id, seq, head_hash, state, status, workflow_id,
                 workflow_version, created_ms, updated_ms, parent, wait_key, timer_ms,
                 lease_holder, lease_epoch, lease_expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                 CASE WHEN $13 AND $5 = 'running' THEN $14::text END, 1,
                 CASE WHEN $13 AND $5 = 'running'
                     THEN now() + $15::bigint * interval '1 millisecond' END)
             ON CONFLICT (run_id) DO NOTHING",
            &params,
        )?;
        if inserted == 0 {
            // Another commit created the run first (its row was not there to lock).
            return Err(Error::Conflict {
                run_id: commit.run_id,
                expected_seq: 0,
                actual_seq: 1,
            });
        }
    } else {
        tx_execute(
            tx,
            statements,
            "UPDATE lf_runs SET seq = $2, head_hash = $3, state = $4, status = $5,
                 workflow_id = $6, workflow_version = $7, created_ms = $8, updated_ms = $9,
                 parent = $10, wait_key = $11, timer_ms = $12,
                 lease_holder = CASE WHEN $13 AND lease_holder = $14 AND $5 <> 'running'
                     THEN NULL ELSE lease_holder END,
                 lease_expires_at = CASE WHEN $13 AND lease_holder = $14 THEN
                     CASE WHEN $5 = 'running' THEN now() + $15::bigint * interval '1 millisecond' END
                     ELSE lease_expires_at END
             WHERE run_id = $1",
            &params,
        )?;
    }
    Ok(())
}

/// Takes the row locks of a batch in the order every transaction takes them: the runs'
/// rows by run id, then the wait keys' rows by key (the log head comes last, in the first
/// commit's append). Two batches in two processes then never wait on each other in a
/// cycle, however their commits interleave.
fn lock_in_order(
    tx: &mut postgres::Transaction<'_>,
    statements: &mut Statements,
    batch: &[(u64, Pending)],
) -> Result<(), Error> {
    if batch.len() < 2 {
        return Ok(()); // one commit takes its locks in this order itself
    }
    let mut runs: Vec<Uuid> = batch.iter().map(|(_, p)| uuid(p.commit.run_id)).collect();
    runs.sort_unstable();
    runs.dedup();
    let mut keys: Vec<&str> = batch
        .iter()
        .flat_map(|(_, p)| touched_keys(&p.commit))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    tx_query(
        tx,
        statements,
        "SELECT run_id FROM lf_runs WHERE run_id = ANY($1) ORDER BY run_id FOR UPDATE",
        &[&runs],
    )?;
    for key in keys {
        tx_query(tx, statements, LOCK_KEY, &[&key])?;
    }
    Ok(())
}

/// The wait keys whose rows a commit locks: those it waits on, consumes from, pushes to.
fn touched_keys(commit: &Commit) -> impl Iterator<Item = &str> {
    commit.index.iter().filter_map(|change| match change {
        IndexChange::WaitKeySet(key)
        | IndexChange::InboxConsume { wait_key: key, .. }
        | IndexChange::InboxPush { wait_key: key, .. } => Some(key.as_str()),
        _ => None,
    })
}

/// Appends the records of the commits of one transaction to the global log, in commit
/// order: one update of the log head (its row lock orders the writers of all processes),
/// one insert each of records and of tree hashes, and the checkpoint of the new tree
/// head. `edge` is the log's right edge as this process last committed it: used when the
/// log has not grown since (no other writer came between), read from the stored hashes
/// otherwise. Returns the new right edge, to keep once the transaction commits.
fn append_log(
    tx: &mut postgres::Transaction<'_>,
    statements: &mut Statements,
    commits: &[&Commit],
    signing: &Signing<'_>,
    edge: Option<Frontier>,
) -> Result<Frontier, Error> {
    let total: usize = commits.iter().map(|c| c.records.len()).sum();
    let count = int(total as u64, "a record count")?;
    let rows = tx_query(
        tx,
        statements,
        "UPDATE lf_log_head SET size = size + $1 RETURNING size, public_key",
        &[&count],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| Error::Corrupt("lf_log_head has no row".into()))?;
    let size: i64 = row.get(0);
    let signed_by: Option<String> = row.get(1);
    if let (Some(key), None) = (&signed_by, signing.signer) {
        // An unsigned checkpoint would replace the signed one: writes need the key.
        return Err(Error::InvalidInput(format!(
            "this store signs its checkpoints (key {key}); open it with its signing key to \
             write to it (checkpoint_key=PATH in a postgres:// location)"
        )));
    }
    let start = uint(size - count, "the global log's size")?;
    let mut frontier = match edge {
        // A tree's size names one tree: the log only grows.
        Some(edge) if edge.size() == start => edge,
        _ => {
            let reader = |indexes: &[u64]| -> Result<Vec<TreeHash>, String> {
                read_log_nodes(&mut *tx, statements, indexes).map_err(|e| e.to_string())
            };
            let cell = RefCell::new(reader);
            Frontier::load(start, &|indexes: &[u64]| (cell.borrow_mut())(indexes))
                .map_err(|e| Error::Corrupt(format!("the global log's right edge: {e}")))?
        }
    };
    let mut runs = Vec::with_capacity(total);
    let (mut seqs, mut feed_seqs, mut kinds, mut ats, mut lines) = (
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
    );
    let (mut indexes, mut hashes) = (Vec::new(), Vec::new());
    let records = commits
        .iter()
        .flat_map(|c| c.records.iter().map(move |r| (c.run_id, r)));
    for (i, (run, record)) in records.enumerate() {
        runs.push(uuid(run));
        seqs.push(int(record.seq(), "a seq")?);
        feed_seqs.push(int(start + i as u64 + 1, "a feed seq")?);
        kinds.push(record.kind().to_owned());
        ats.push(record.at_ms());
        lines.push(codec::record_line(record));
        let leaf = merkle::leaf_hash(run, record.seq(), &record.hash());
        for (index, hash) in frontier.append(leaf) {
            indexes.push(int(index, "a log index")?);
            hashes.push(hash.0.to_vec());
        }
    }
    tx_execute(
        tx,
        statements,
        "INSERT INTO lf_records (run_id, seq, feed_seq, kind, at_ms, line)
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[],
             $5::bigint[], $6::text[])",
        &[&runs, &seqs, &feed_seqs, &kinds, &ats, &lines],
    )?;
    tx_execute(
        tx,
        statements,
        "INSERT INTO lf_log_nodes (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
        &[&indexes, &hashes],
    )?;
    let checkpoint = signing.checkpoint(frontier.size(), frontier.root())?;
    let public_key = signing.signer.map(|s| s.public_key().as_str().to_owned());
    tx_execute(
        tx,
        statements,
        "UPDATE lf_log_head SET checkpoint = $1, public_key = $2",
        &[&checkpoint.note, &public_key],
    )?;
    Ok(frontier)
}

fn read_log_nodes(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    indexes: &[u64],
) -> Result<Vec<TreeHash>, Error> {
    let wanted: Vec<i64> = indexes
        .iter()
        .map(|&i| int(i, "a log index"))
        .collect::<Result<_, _>>()?;
    let rows = tx_query(
        client,
        statements,
        "SELECT idx, hash FROM lf_log_nodes WHERE idx = ANY($1)",
        &[&wanted],
    )?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        let index: i64 = row.get(0);
        found.insert(index, codec::tree_hash(row.get(1), index)?);
    }
    wanted
        .iter()
        .map(|i| {
            found
                .get(i)
                .copied()
                .ok_or_else(|| Error::Corrupt(format!("global log hash {i} is missing")))
        })
        .collect()
}

fn runs(rows: &[Row]) -> Vec<RunId> {
    rows.iter().map(|r| run_id(r.get(0))).collect()
}

fn snapshot_of(row: &Row) -> Result<Snapshot, Error> {
    Ok(Snapshot {
        run_id: run_id(row.get("run_id")),
        name: row.get("name"),
        seq: uint(row.get("seq"), "a snapshot's seq")?,
        record_hash: codec::hash(row.get("record_hash"), "a snapshot's record hash")?,
        description: row.get("description"),
        tags: row.get("tags"),
        created_at_ms: row.get("created_ms"),
    })
}

impl Store for PostgresStore {
    fn commit(&self, commit: Commit) -> Result<(), Error> {
        self.check_open()?;
        let (run_id, creates) = (commit.run_id, commit.expected_seq == 0);
        // A run that waits or has ended needs no worker: its commit lets the lease go (see
        // `commit_in`), so whoever answers or times it out next need not wait for it.
        let keeps_lease = commit.state.status == RunStatus::Running;
        let epoch = self.leases.epoch(run_id);
        let ticket = {
            let mut group = self.group.lock();
            let ticket = group.next_ticket;
            group.next_ticket += 1;
            group.queue.push((ticket, Pending { commit, epoch }));
            ticket
        };
        let result = self
            .group
            .wait_for(ticket, |batch| self.commit_batch(batch));
        match &result {
            Ok(()) if creates && keeps_lease => self.leases.hold(run_id, 1),
            Ok(()) if epoch.is_some() && keeps_lease => self.leases.renewed(run_id),
            Ok(()) if epoch.is_some() => self.leases.lost(run_id),
            Err(Error::Fenced { .. }) => self.leases.lost(run_id),
            _ => {}
        }
        result
    }

    fn load(&self, run_id: RunId) -> Result<Option<RunState>, Error> {
        let rows = self.rows(
            "SELECT state FROM lf_runs WHERE run_id = $1",
            &[&uuid(run_id)],
        )?;
        rows.first()
            .map(|r| codec::state(r.get(0), run_id))
            .transpose()
    }

    fn read_records(
        &self,
        run_id: RunId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        self.check_limit(limit)?;
        let from = i64::try_from(from_seq).unwrap_or(i64::MAX);
        let rows = self.rows(
            "SELECT seq, line FROM lf_records WHERE run_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
            &[&uuid(run_id), &from, &limit_param(limit)],
        )?;
        rows.iter()
            .map(|r| codec::record(r.get(1), run_id, r.get(0)))
            .collect()
    }

    fn waiting_on(&self, wait_key: &str) -> Result<Option<RunId>, Error> {
        let rows = self.rows(
            "SELECT run_id FROM lf_runs WHERE wait_key = $1",
            &[&wait_key],
        )?;
        Ok(rows.first().map(|r| run_id(r.get(0))))
    }

    fn due_timers(
        &self,
        now_ms: i64,
        after: Option<TimerEntry>,
        limit: usize,
    ) -> Result<Vec<TimerEntry>, Error> {
        self.check_limit(limit)?;
        let rows = match after {
            None => self.rows(
                "SELECT timer_ms, run_id FROM lf_runs WHERE timer_ms <= $1
                 ORDER BY timer_ms, run_id LIMIT $2",
                &[&now_ms, &limit_param(limit)],
            )?,
            Some(after) => self.rows(
                "SELECT timer_ms, run_id FROM lf_runs
                 WHERE timer_ms <= $1 AND (timer_ms, run_id) > ($2, $3)
                 ORDER BY timer_ms, run_id LIMIT $4",
                &[
                    &now_ms,
                    &after.due_at_ms,
                    &uuid(after.run_id),
                    &limit_param(limit),
                ],
            )?,
        };
        Ok(timers(&rows))
    }

    fn next_timer(&self) -> Result<Option<TimerEntry>, Error> {
        let rows = self.rows(
            "SELECT timer_ms, run_id FROM lf_runs WHERE timer_ms IS NOT NULL
             ORDER BY timer_ms, run_id LIMIT 1",
            &[],
        )?;
        Ok(timers(&rows).pop())
    }

    fn next_timer_after(&self, after_ms: i64) -> Result<Option<TimerEntry>, Error> {
        let rows = self.rows(
            "SELECT timer_ms, run_id FROM lf_runs WHERE timer_ms > $1
             ORDER BY timer_ms, run_id LIMIT 1",
            &[&after_ms],
        )?;
        Ok(timers(&rows).pop())
    }

    fn deliver(&self, wait_key: &str, payload: Value, at_ms: i64) -> Result<Delivery, Error> {
        self.check_open()?;
        let mut cut_off = 0;
        loop {
            // Each attempt its own receipt: one that surely stored nothing leaves none.
            let delivery = uuid::Uuid::new_v4();
            match self.deliver_once(delivery, wait_key, &payload, at_ms) {
                Err(TxFailure::Unknown(cause)) => match self.delivered(delivery, wait_key) {
                    Ok(Some(seq)) => return Ok(Delivery::Queued(seq)),
                    // Surely not stored: delivering again queues it once.
                    Ok(None) if cut_off < ATTEMPTS_MAX => cut_off += 1,
                    Ok(None) => return Err(cause),
                    Err(e) => {
                        return Err(Error::io_failed(format!(
                            "{cause}; the connection broke before the database answered, and \
                             reading the delivery back failed too ({e}): the event to \
                             {wait_key:?} may or may not be queued"
                        )))
                    }
                },
                Err(TxFailure::Failed(e)) => return Err(e),
                Ok(delivery) => return Ok(delivery),
            }
        }
    }

    fn inbox_keys(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, Error> {
        self.check_limit(limit)?;
        let rows = self.rows(
            "SELECT DISTINCT wait_key FROM lf_inbox WHERE ($1::text IS NULL OR wait_key > $1)
             ORDER BY wait_key LIMIT $2",
            &[&after, &limit_param(limit)],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn inbox(&self, wait_key: &str, limit: usize) -> Result<Vec<InboxEntry>, Error> {
        self.check_limit(limit)?;
        let rows = self.rows(
            "SELECT seq, payload, at_ms FROM lf_inbox WHERE wait_key = $1 ORDER BY seq LIMIT $2",
            &[&wait_key, &limit_param(limit)],
        )?;
        rows.iter()
            .map(|r| {
                let seq = uint(r.get(0), "an inbox seq")?;
                let payload = serde_json::from_str(r.get(1)).map_err(|e| {
                    Error::Corrupt(format!("inbox entry {seq} of {wait_key:?}: {e}"))
                })?;
                Ok(InboxEntry {
                    seq,
                    payload,
                    at_ms: r.get(2),
                })
            })
            .collect()
    }

    fn list_runs(
        &self,
        status: Option<RunStatus>,
        after: Option<RunId>,
        limit: usize,
    ) -> Result<Vec<RunId>, Error> {
        self.check_limit(limit)?;
        let after = after.map(uuid);
        let limit = limit_param(limit);
        let rows = match status {
            Some(status) => self.rows(
                "SELECT run_id FROM lf_runs WHERE status = $1 AND ($2::uuid IS NULL OR run_id > $2)
                 ORDER BY run_id LIMIT $3",
                &[&status.as_str(), &after, &limit],
            )?,
            None => self.rows(
                "SELECT run_id FROM lf_runs WHERE ($1::uuid IS NULL OR run_id > $1)
                 ORDER BY run_id LIMIT $2",
                &[&after, &limit],
            )?,
        };
        Ok(runs(&rows))
    }

    fn runs_by_workflow(
        &self,
        workflow_id: &str,
        version: Option<u32>,
        after: Option<(u32, RunId)>,
        limit: usize,
    ) -> Result<Vec<(u32, RunId)>, Error> {
        self.check_limit(limit)?;
        let version = version.map(i64::from);
        let after_version = after.map(|(v, _)| i64::from(v));
        let after_run = after.map(|(_, r)| uuid(r));
        let rows = self.rows(
            "SELECT workflow_version, run_id FROM lf_runs
             WHERE workflow_id = $1 AND ($2::bigint IS NULL OR workflow_version = $2)
               AND ($3::bigint IS NULL OR (workflow_version, run_id) > ($3, $4::uuid))
             ORDER BY workflow_version, run_id LIMIT $5",
            &[
                &workflow_id,
                &version,
                &after_version,
                &after_run,
                &limit_param(limit),
            ],
        )?;
        rows.iter()
            .map(|r| {
                let version: i64 = r.get(0);
                let version = u32::try_from(version).map_err(|_| {
                    Error::Corrupt(format!("workflow version {version} is out of range"))
                })?;
                Ok((version, run_id(r.get(1))))
            })
            .collect()
    }

    fn runs_by_time(
        &self,
        field: TimeField,
        from_ms: i64,
        to_ms: i64,
        after: Option<(i64, RunId)>,
        limit: usize,
    ) -> Result<Vec<(i64, RunId)>, Error> {
        self.check_limit(limit)?;
        let sql = match field {
            TimeField::Created => {
                "SELECT created_ms, run_id FROM lf_runs WHERE created_ms BETWEEN $1 AND $2
                   AND ($3::bigint IS NULL OR (created_ms, run_id) > ($3, $4::uuid))
                 ORDER BY created_ms, run_id LIMIT $5"
            }
            TimeField::Updated => {
                "SELECT updated_ms, run_id FROM lf_runs WHERE updated_ms BETWEEN $1 AND $2
                   AND ($3::bigint IS NULL OR (updated_ms, run_id) > ($3, $4::uuid))
                 ORDER BY updated_ms, run_id LIMIT $5"
            }
        };
        self.time_page(sql, from_ms, to_ms, after, limit)
    }

    fn runs_by_time_desc(
        &self,
        field: TimeField,
        from_ms: i64,
        to_ms: i64,
        before: Option<(i64, RunId)>,
        limit: usize,
    ) -> Result<Vec<(i64, RunId)>, Error> {
        self.check_limit(limit)?;
        let sql = match field {
            TimeField::Created => {
                "SELECT created_ms, run_id FROM lf_runs WHERE created_ms BETWEEN $1 AND $2
                   AND ($3::bigint IS NULL OR (created_ms, run_id) < ($3, $4::uuid))
                 ORDER BY created_ms DESC, run_id DESC LIMIT $5"
            }
            TimeField::Updated => {
                "SELECT updated_ms, run_id FROM lf_runs WHERE updated_ms BETWEEN $1 AND $2
                   AND ($3::bigint IS NULL OR (updated_ms, run_id) < ($3, $4::uuid))
                 ORDER BY updated_ms DESC, run_id DESC LIMIT $5"
            }
        };
        self.time_page(sql, from_ms, to_ms, before, limit)
    }

    fn count_by_status(&self) -> Result<Vec<(RunStatus, u64)>, Error> {
        let rows = self.rows("SELECT status, count(*) FROM lf_runs GROUP BY status", &[])?;
        let mut counts = rows
            .iter()
            .map(|r| Ok((codec::status(r.get(0))?, uint(r.get(1), "a count")?)))
            .collect::<Result<Vec<_>, Error>>()?;
        counts.sort_unstable();
        Ok(counts)
    }

    fn children(
        &self,
        parent: RunId,
        after: Option<RunId>,
        limit: usize,
    ) -> Result<Vec<RunId>, Error> {
        self.check_limit(limit)?;
        let rows = self.rows(
            "SELECT run_id FROM lf_runs WHERE parent = $1 AND ($2::uuid IS NULL OR run_id > $2)
             ORDER BY run_id LIMIT $3",
            &[&uuid(parent), &after.map(uuid), &limit_param(limit)],
        )?;
        Ok(runs(&rows))
    }

    fn put_artifact(
        &self,
        bytes: &[u8],
        media_type: &str,
        run_id: Option<RunId>,
    ) -> Result<ArtifactRef, Error> {
        self.check_open()?;
        ledgerflow_kernel::check_artifact(bytes, media_type)?;
        let digest = Hash::of(bytes);
        let key = digest.as_bytes().to_vec();
        let size = int(bytes.len() as u64, "an artifact's size")?;
        self.transaction("storing an artifact", |tx, statements| {
            tx_execute(
                tx,
                statements,
                "INSERT INTO lf_artifacts (digest, size, media_type, bytes) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (digest) DO NOTHING",
                &[&key, &size, &media_type, &bytes],
            )?;
            if let Some(run) = run_id {
                tx_execute(
                    tx,
                    statements,
                    "INSERT INTO lf_run_artifacts (run_id, digest) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&uuid(run), &key],
                )?;
            }
            let rows = tx_query(
                tx,
                statements,
                "SELECT size, media_type FROM lf_artifacts WHERE digest = $1",
                &[&key],
            )?;
            let row = rows
                .first()
                .ok_or_else(|| Error::io_failed("an artifact just stored is not there"))?;
            Ok(ArtifactRef {
                digest,
                size: uint(row.get(0), "an artifact's size")?,
                media_type: row.get(1),
            })
        })
    }

    fn get_artifact(&self, digest: &Hash) -> Result<Option<Vec<u8>>, Error> {
        let key = digest.as_bytes().to_vec();
        let rows = self.rows("SELECT bytes FROM lf_artifacts WHERE digest = $1", &[&key])?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let bytes: Vec<u8> = row.get(0);
        if Hash::of(&bytes) != *digest {
            return Err(Error::Corrupt(format!(
                "artifact {digest}: the stored bytes do not match their digest"
            )));
        }
        Ok(Some(bytes))
    }

    fn store_id(&self) -> [u8; 16] {
        self.store_id
    }

    fn read_feed(&self, after_feed_seq: u64, limit: usize) -> Result<Vec<FeedEntry>, Error> {
        self.check_limit(limit)?;
        let after = i64::try_from(after_feed_seq).unwrap_or(i64::MAX);
        let rows = self.rows(
            "SELECT feed_seq, run_id, seq, kind, at_ms FROM lf_records WHERE feed_seq > $1
             ORDER BY feed_seq LIMIT $2",
            &[&after, &limit_param(limit)],
        )?;
        rows.iter()
            .map(|r| {
                Ok(FeedEntry {
                    feed_seq: uint(r.get(0), "a feed seq")?,
                    run_id: run_id(r.get(1)),
                    seq: uint(r.get(2), "a seq")?,
                    kind: r.get(3),
                    at_ms: r.get(4),
                })
            })
            .collect()
    }

    fn feed_head(&self) -> Result<u64, Error> {
        let rows = self.rows("SELECT size FROM lf_log_head", &[])?;
        let size: i64 = rows
            .first()
            .map(|r| r.get(0))
            .ok_or_else(|| Error::Corrupt("lf_log_head has no row".into()))?;
        uint(size, "the global log's size")
    }

    fn log_nodes(&self, indexes: &[u64]) -> Result<Vec<TreeHash>, Error> {
        self.with_conn(|conn| {
            let Conn {
                client, statements, ..
            } = conn;
            read_log_nodes(client, statements, indexes)
        })
    }

    fn leaf_index(&self, run_id: RunId, seq: u64) -> Result<Option<u64>, Error> {
        let Ok(seq) = i64::try_from(seq) else {
            return Ok(None);
        };
        let rows = self.rows(
            "SELECT feed_seq - 1 FROM lf_records WHERE run_id = $1 AND seq = $2",
            &[&uuid(run_id), &seq],
        )?;
        rows.first()
            .map(|r| uint(r.get(0), "a leaf index"))
            .transpose()
    }

    fn limits(&self) -> StoreLimits {
        self.limits
    }

    fn create_snapshot(&self, snapshot: &Snapshot) -> Result<(), Error> {
        snapshot.check_fields()?;
        self.check_open()?;
        let run = snapshot.run_id;
        let seq = int(snapshot.seq, "a seq")?;
        self.transaction("storing a snapshot", |tx, statements| {
            let exists = tx_query(
                tx,
                statements,
                "SELECT 1 FROM lf_runs WHERE run_id = $1",
                &[&uuid(run)],
            )?;
            if exists.is_empty() {
                return Err(Error::NotFound(format!("run {run}")));
            }
            let marked = tx_query(
                tx,
                statements,
                "SELECT line FROM lf_records WHERE run_id = $1 AND seq = $2",
                &[&uuid(run), &seq],
            )?;
            let hash = marked
                .first()
                .map(|r| codec::record(r.get(0), run, seq))
                .transpose()?
                .map(|r| r.hash());
            if hash != Some(snapshot.record_hash) {
                return Err(Error::InvalidInput(format!(
                    "run {run} has no record {} with hash {}",
                    snapshot.seq, snapshot.record_hash
                )));
            }
            let inserted = tx_execute(
                tx,
                statements,
                "INSERT INTO lf_snapshots (run_id, name, seq, record_hash, description, tags, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &uuid(run),
                    &snapshot.name,
                    &seq,
                    &snapshot.record_hash.as_bytes().to_vec(),
                    &snapshot.description,
                    &snapshot.tags,
                    &snapshot.created_at_ms,
                ],
            )?;
            if inserted == 0 {
                return Err(Error::AlreadyExists(format!(
                    "snapshot {:?} of run {run}",
                    snapshot.name
                )));
            }
            Ok(())
        })
    }

    fn snapshot(&self, run_id: RunId, name: &str) -> Result<Option<Snapshot>, Error> {
        let rows = self.rows(
            "SELECT * FROM lf_snapshots WHERE run_id = $1 AND name = $2",
            &[&uuid(run_id), &name],
        )?;
        rows.first().map(snapshot_of).transpose()
    }

    fn list_snapshots(
        &self,
        filter: &SnapshotFilter,
        limit: usize,
    ) -> Result<Vec<Snapshot>, Error> {
        self.check_limit(limit)?;
        let rows = self.rows(
            "SELECT * FROM lf_snapshots
             WHERE ($1::uuid IS NULL OR run_id = $1) AND ($2::text IS NULL OR $2 = ANY (tags))
               AND ($3::text IS NULL OR strpos(name, $3) > 0)
             ORDER BY run_id, name LIMIT $4",
            &[
                &filter.run_id.map(uuid),
                &filter.tag,
                &filter.name_contains,
                &limit_param(limit),
            ],
        )?;
        rows.iter().map(snapshot_of).collect()
    }

    fn check(&self) -> Result<CheckReport, Error> {
        let mut report = crate::check::check(self)?;
        report.orphaned_inboxes = ledgerflow_kernel::orphaned_inboxes(self, usize::MAX)?;
        Ok(report)
    }

    fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, Error> {
        let rows = self.rows("SELECT checkpoint FROM lf_log_head", &[])?;
        let note: Option<String> = rows.first().and_then(|r| r.get(0));
        note.map(|note| {
            SignedCheckpoint::parse(&note)
                .map_err(|e| Error::Corrupt(format!("the stored checkpoint: {e}")))
        })
        .transpose()
    }

    fn checkpoint_public_key(&self) -> Result<Option<CheckpointKey>, Error> {
        if let Some(signer) = self.signer.get() {
            return Ok(Some(signer.public_key().clone()));
        }
        let rows = self.rows("SELECT public_key FROM lf_log_head", &[])?;
        let key: Option<String> = rows.first().and_then(|r| r.get(0));
        key.map(|key| {
            CheckpointKey::parse(&key)
                .map_err(|e| Error::Corrupt(format!("the stored public key: {e}")))
        })
        .transpose()
    }

    fn leases(&self) -> Option<&dyn Leases> {
        Some(self)
    }

    fn close(&self) -> Result<(), Error> {
        // Every acknowledged commit is already durable (synchronous_commit).
        self.closed.store(true, Ordering::Release);
        self.pool.close_idle();
        Ok(())
    }
}

impl PostgresStore {
    /// Commits `batch` in one transaction, each commit under a savepoint of its own: a
    /// refused commit (a conflict, a rule) is rolled back alone and gets its error; the
    /// others share one `COMMIT`, so one WAL flush acknowledges them all.
    fn commit_batch(&self, batch: Vec<(u64, Pending)>) -> Vec<(u64, Result<(), Error>)> {
        let context = Context {
            limits: self.limits,
            signing: Signing {
                origin: &self.origin,
                signer: self.signer.get(),
            },
            worker: self.leases.worker(),
            lease_ms: i64::try_from(self.leases.lease_ms()).unwrap_or(i64::MAX),
        };
        // Workers asleep until their next timer hear of an earlier one set here.
        let sets_timer = |p: &Pending| {
            p.commit
                .index
                .iter()
                .any(|c| matches!(c, IndexChange::TimerSet(_)))
        };
        let notify = |tx: &mut postgres::Transaction<'_>, statements: &mut Statements| {
            tx_query(
                tx,
                statements,
                "SELECT pg_notify($1, '')",
                &[&self.leases.channel()],
            )
            .map(drop)
        };
        let edge = self
            .log_edge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let mut kept_edge = None;
        if let [(ticket, pending)] = batch.as_slice() {
            // Alone: the transaction is its savepoint (round trips fewer).
            let outcome = self.transaction_outcome("a commit", |tx, statements| {
                commit_in(tx, statements, pending, &context)?;
                let edge = append_log(
                    tx,
                    statements,
                    &[&pending.commit],
                    &context.signing,
                    edge.clone(),
                )?;
                if sets_timer(pending) {
                    notify(tx, statements)?;
                }
                kept_edge = Some(edge);
                Ok(())
            });
            let result = match outcome {
                Ok(()) => {
                    self.keep_log_edge(kept_edge);
                    Ok(())
                }
                Err(TxFailure::Failed(e)) => Err(e),
                Err(TxFailure::Unknown(e)) => self.read_back(&pending.commit, e),
            };
            return vec![(*ticket, result)];
        }
        let mut results = Vec::with_capacity(batch.len());
        let outcome = self.transaction_outcome("a commit", |tx, statements| {
            // Run again on a new connection if the first was broken: start over.
            results.clear();
            kept_edge = None;
            lock_in_order(tx, statements, &batch)?;
            let mut timer_set = false;
            let savepoint = |tx: &mut postgres::Transaction<'_>, sql: &str| {
                tx.batch_execute(sql)
                    .map_err(|e| db_error("a commit: its savepoint", e))
            };
            savepoint(tx, "SAVEPOINT lf_commit")?;
            let mut stored = Vec::with_capacity(batch.len());
            for (i, (ticket, pending)) in batch.iter().enumerate() {
                let last = i + 1 == batch.len();
                // The next commit's savepoint goes with this one's release or rollback
                // (one round trip); the last one's release is the `COMMIT`.
                match commit_in(tx, statements, pending, &context) {
                    Ok(()) => {
                        if !last {
                            savepoint(tx, "RELEASE SAVEPOINT lf_commit; SAVEPOINT lf_commit")?;
                        }
                        timer_set |= sets_timer(pending);
                        stored.push(&pending.commit);
                        results.push((*ticket, Ok(())));
                    }
                    Err(e) => {
                        savepoint(tx, "ROLLBACK TO SAVEPOINT lf_commit")?;
                        results.push((*ticket, Err(e)));
                    }
                }
            }
            if !stored.is_empty() {
                kept_edge = Some(append_log(
                    tx,
                    statements,
                    &stored,
                    &context.signing,
                    edge.clone(),
                )?);
            }
            if timer_set {
                notify(tx, statements)?;
            }
            Ok(())
        });
        if outcome.is_ok() {
            self.keep_log_edge(kept_edge);
        }
        let failed = |e: Error| {
            batch
                .iter()
                .map(|(ticket, _)| (*ticket, Err(e.clone())))
                .collect()
        };
        match outcome {
            Ok(()) => results,
            // Nothing of the batch is stored: every commit in it fails with the cause.
            Err(TxFailure::Failed(e)) => failed(e),
            // The batch is stored whole or not at all: one commit of it that went in tells.
            Err(TxFailure::Unknown(e)) => {
                let probe = batch
                    .iter()
                    .zip(&results)
                    .find(|(_, (_, result))| result.is_ok())
                    .map(|((_, pending), _)| &pending.commit);
                match probe.map(|commit| self.read_back(commit, e.clone())) {
                    Some(Ok(())) => results,
                    Some(Err(e)) => failed(e),
                    None => failed(e),
                }
            }
        }
    }

    /// Keeps the log's right edge as the transaction that just committed left it.
    fn keep_log_edge(&self, edge: Option<Frontier>) {
        if edge.is_some() {
            *self.log_edge.lock().unwrap_or_else(|p| p.into_inner()) = edge;
        }
    }

    /// The outcome of `commit` after its `COMMIT` went unanswered with `cause`: `Ok` if it
    /// was stored; the cause if it surely was not; an IO error saying so if the database
    /// could not be asked.
    fn read_back(&self, commit: &Commit, cause: Error) -> Result<(), Error> {
        match self.landed(commit) {
            Ok(true) => Ok(()),
            Ok(false) => Err(cause),
            Err(e) => Err(Error::io_failed(format!(
                "{cause}; the connection broke before the database answered, and reading \
                 the commit back failed too ({e}): run {} may or may not hold it",
                commit.run_id
            ))),
        }
    }

    fn time_page(
        &self,
        sql: &'static str,
        from_ms: i64,
        to_ms: i64,
        cursor: Option<(i64, RunId)>,
        limit: usize,
    ) -> Result<Vec<(i64, RunId)>, Error> {
        let rows = self.rows(
            sql,
            &[
                &from_ms,
                &to_ms,
                &cursor.map(|(at, _)| at),
                &cursor.map(|(_, r)| uuid(r)),
                &limit_param(limit),
            ],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), run_id(r.get(1)))).collect())
    }
}

fn timers(rows: &[Row]) -> Vec<TimerEntry> {
    rows.iter()
        .map(|r| TimerEntry {
            due_at_ms: r.get(0),
            run_id: run_id(r.get(1)),
        })
        .collect()
}

impl PostgresStore {
    /// One delivery transaction, its receipt `delivery` written with a queued event.
    fn deliver_once(
        &self,
        delivery: uuid::Uuid,
        wait_key: &str,
        payload: &Value,
        at_ms: i64,
    ) -> Result<Delivery, TxFailure> {
        let entries_max = self.limits.inbox_entries_max;
        self.transaction_outcome("a delivery", |tx, statements| {
            tx_query(tx, statements, LOCK_KEY, &[&wait_key])?;
            let holder = tx_query(
                tx,
                statements,
                "SELECT run_id FROM lf_runs WHERE wait_key = $1",
                &[&wait_key],
            )?;
            if let Some(row) = holder.first() {
                return Ok(Delivery::Waiter(run_id(row.get(0))));
            }
            let queued: i64 = tx_query(
                tx,
                statements,
                "SELECT count(*) FROM lf_inbox WHERE wait_key = $1",
                &[&wait_key],
            )?
            .first()
            .map_or(0, |r| r.get(0));
            if uint(queued, "an inbox count")? >= entries_max as u64 {
                return Err(Error::InboxFull {
                    wait_key: wait_key.to_owned(),
                    entries_max,
                });
            }
            let seq = push_inbox(tx, statements, wait_key, payload, at_ms)?;
            tx_execute(
                tx,
                statements,
                "WITH old AS (DELETE FROM lf_deliveries WHERE at < now() - interval '1 hour')
                 INSERT INTO lf_deliveries (delivery, wait_key, seq) VALUES ($1, $2, $3)",
                &[&delivery, &wait_key, &int(seq, "an inbox seq")?],
            )?;
            Ok(Delivery::Queued(seq))
        })
    }

    /// The inbox seq delivery `delivery` was queued at, if it was stored, asked after its
    /// `COMMIT` went unanswered: the key's row lock waits out the cut-off transaction.
    fn delivered(&self, delivery: uuid::Uuid, wait_key: &str) -> Result<Option<u64>, Error> {
        self.ask_after_cut("reading back a delivery", |tx, statements| {
            tx_query(tx, statements, LOCK_KEY, &[&wait_key])?;
            let rows = tx_query(
                tx,
                statements,
                "SELECT seq FROM lf_deliveries WHERE delivery = $1",
                &[&delivery],
            )?;
            rows.first()
                .map(|r| uint(r.get(0), "an inbox seq"))
                .transpose()
        })
    }
}
