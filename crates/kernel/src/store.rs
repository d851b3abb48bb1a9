//! The `Store` port: what the engine needs from storage, with the contract every
//! implementation must keep (checked by the conformance suite).

use ledgerflow_ledger::merkle::TreeHash;
use ledgerflow_ledger::Record;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ArtifactRef, Hash, RunId, RunState, RunStatus, Snapshot, SnapshotFilter};
use ledgerflow_ledger::checkpoint::{CheckpointKey, SignedCheckpoint};

/// Storage errors. Conflicts are expected under concurrency; the rest are not.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The run is not at the version the commit expected: someone else committed first.
    #[error("run {run_id}: expected ledger head seq {expected_seq}, found {actual_seq}")]
    Conflict {
        /// The run.
        run_id: RunId,
        /// The head seq the commit expected (0: the run must not exist).
        expected_seq: u64,
        /// The head seq found (0: the run does not exist).
        actual_seq: u64,
    },
    /// A commit registers a wait_key another run already waits on.
    #[error("wait_key {wait_key:?} is already waited on by run {holder}")]
    WaitKeyTaken {
        /// The key.
        wait_key: String,
        /// The run waiting on it.
        holder: RunId,
    },
    /// A commit registers a wait on a key whose inbox holds events: consume them instead.
    #[error("wait_key {wait_key:?} has undelivered events in its inbox")]
    InboxNotEmpty {
        /// The key.
        wait_key: String,
    },
    /// A commit consumes an inbox entry that is not the oldest of its key (or is gone).
    #[error("inbox of {wait_key:?}: entry {seq} is not the next to consume")]
    InboxEntryGone {
        /// The key.
        wait_key: String,
        /// The entry.
        seq: u64,
    },
    /// The inbox of a key is at its configured bound.
    #[error("inbox of {wait_key:?} is full ({entries_max} entries)")]
    InboxFull {
        /// The key.
        wait_key: String,
        /// The bound.
        entries_max: usize,
    },
    /// A read asked for more items than the store allows.
    #[error("limit {requested} is larger than the maximum {max}")]
    LimitTooLarge {
        /// What was asked for.
        requested: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A commit that breaks the store's invariants (records not continuing the head, a
    /// state that is not the last record's). A bug in the caller, refused before writing.
    #[error("invalid commit for run {run_id}: {reason}")]
    InvalidCommit {
        /// The run.
        run_id: RunId,
        /// What was wrong.
        reason: String,
    },
    /// A value is larger than the store can hold.
    #[error("{what} is {bytes} bytes, over the limit of {max}")]
    ValueTooLarge {
        /// What was too large.
        what: String,
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A request the store refuses as given (an empty snapshot name, …).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A named object (snapshot, artifact) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A named object (snapshot) already exists.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// Stored data is damaged.
    #[error("store corrupt: {0}")]
    Corrupt(String),
    /// The store's files are missing.
    #[error("store missing: {0}")]
    Missing(String),
    /// An IO error (including a failed fsync): the commit was not acknowledged. The
    /// message says what failed and includes the operating system's error text; the
    /// error itself is the [`std::error::Error::source`] when there was one (to tell a
    /// full disk from a failed device, say).
    #[error("store io: {message}")]
    Io {
        /// What failed.
        message: String,
        /// The operating system's error, when there was one.
        #[source]
        source: Option<std::sync::Arc<std::io::Error>>,
    },
    /// The store was closed; it rejects writes.
    #[error("store is closed")]
    Closed,
    /// The run is leased to another worker (see [`Leases`]): this process's lease on it
    /// expired and was taken over, or it never held one while the other's is live. The
    /// commit wrote nothing; the run's holder carries it on.
    #[error("run {run_id} is leased to worker {holder:?}: the commit of this worker is refused")]
    Fenced {
        /// The run.
        run_id: RunId,
        /// The worker holding the run's lease now.
        holder: String,
    },
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            Error::Conflict { .. } => K::Conflict,
            Error::WaitKeyTaken { .. } | Error::InboxNotEmpty { .. } => K::InvalidState,
            Error::InboxEntryGone { .. } => K::Conflict,
            Error::InboxFull { .. } | Error::LimitTooLarge { .. } | Error::ValueTooLarge { .. } => {
                K::LimitExceeded
            }
            Error::InvalidCommit { .. } => K::Internal,
            Error::NotFound(_) => K::NotFound,
            Error::AlreadyExists(_) | Error::InvalidInput(_) => K::InvalidInput,
            Error::Corrupt(_) => K::Corrupt,
            Error::Missing(_) => K::Missing,
            Error::Io { .. } => K::Io,
            Error::Closed => K::Closed,
            Error::Fenced { .. } => K::Conflict,
        }
    }

    /// An IO error: `context` says what failed, `source` is the operating system's error.
    pub fn io(context: impl std::fmt::Display, source: std::io::Error) -> Error {
        Error::Io {
            message: format!("{context}: {source}"),
            source: Some(std::sync::Arc::new(source)),
        }
    }

    /// An IO error with no operating-system error behind it (a storage engine's own
    /// failure, a store poisoned by an earlier one).
    pub fn io_failed(message: impl Into<String>) -> Error {
        Error::Io {
            message: message.into(),
            source: None,
        }
    }

    /// Whether this is a lost race ([`Error::Conflict`]): nothing was written.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
}

/// A change to a secondary index, applied in the same atomic commit as the state and
/// records it belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum IndexChange {
    /// The run now waits on this key. Refused with [`Error::WaitKeyTaken`] if another run
    /// waits on it, and with [`Error::InboxNotEmpty`] if its inbox holds events.
    WaitKeySet(String),
    /// The run no longer waits on this key.
    WaitKeyClear(String),
    /// The run's timer is due at this time.
    TimerSet(i64),
    /// The run's timer at this time is gone.
    TimerClear(i64),
    /// The run moved between statuses (`from: None` for a new run).
    Status {
        /// The old status.
        from: Option<RunStatus>,
        /// The new status.
        to: RunStatus,
    },
    /// Consume the oldest inbox entry of a key, which must have this seq.
    InboxConsume {
        /// The key.
        wait_key: String,
        /// The entry.
        seq: u64,
    },
    /// The run is a child of `parent` (written when the child is created).
    Child {
        /// The parent run.
        parent: RunId,
    },
    /// The run was created from workflow (id, version).
    Workflow {
        /// The workflow id.
        workflow_id: String,
        /// Its version.
        version: u32,
    },
    /// The run was created at this time.
    Created(i64),
    /// The run's last change moved from one time to another.
    Updated {
        /// The previous time (`None` for a new run).
        from: Option<i64>,
        /// The new time.
        to: i64,
    },
    /// Queue an event for a key (no run waits on it inside this commit).
    InboxPush {
        /// The key.
        wait_key: String,
        /// The event.
        payload: Value,
    },
}

/// Everything one step changes, committed atomically by [`Store::commit`].
#[derive(Clone, Debug, PartialEq)]
pub struct Commit {
    /// The run.
    pub run_id: RunId,
    /// The ledger head seq the run must be at (0: the run must not exist yet).
    pub expected_seq: u64,
    /// The run's new state, whose head is the last of `records`.
    pub state: RunState,
    /// The new records, continuing the run's chain.
    pub records: Vec<Record>,
    /// The index changes.
    pub index: Vec<IndexChange>,
    /// When the commit was made (ms since the Unix epoch), stamped on inbox entries.
    pub at_ms: i64,
    /// Made by the engine from its own fold: every record sealed from its fields and the
    /// state the fold's result, so the shape check need not hash them again (debug builds
    /// still do). Only the kernel can set it.
    sealed: bool,
}

/// What the index rules of a commit read of a store, as it is before the commit: who
/// holds a wait_key, and which entries a key's inbox holds. Each store implements it over
/// its own storage (the sled store over its transaction, whose writes of earlier commits
/// in the same batch it sees) and calls [`Commit::check_index_rules`].
pub trait IndexReader {
    /// The store's own error on the way (a storage engine's transaction error).
    type Error;
    /// The run waiting on `wait_key`, if any.
    fn wait_key_holder(&self, wait_key: &str) -> Result<Option<RunId>, Self::Error>;
    /// The seq of the oldest entry queued for `wait_key` and how many are queued (the
    /// entries are `head .. head + len`; any head when `len` is 0).
    fn inbox_span(&self, wait_key: &str) -> Result<(u64, u64), Self::Error>;
}

impl Commit {
    /// The rules every store checks of a commit's index changes, after its head and shape
    /// checks and before writing anything, in one place so that every store refuses the
    /// same commits with the same errors: a wait on a key another run holds
    /// (`WaitKeyTaken`) or whose inbox holds events (`InboxNotEmpty`); consumes that do
    /// not take a key's entries oldest first, each once, several in one commit included
    /// (`InboxEntryGone`); pushes past `inbox_entries_max` (the store's
    /// [`StoreLimits::inbox_entries_max`]: `InboxFull`). `refuse` turns a refusal into the
    /// reader's error.
    pub fn check_index_rules<R: IndexReader>(
        &self,
        reader: &R,
        inbox_entries_max: usize,
        refuse: impl Fn(Error) -> R::Error,
    ) -> Result<(), R::Error> {
        // Per key: how many entries this commit consumed and pushed so far.
        let mut seen: std::collections::HashMap<&str, (u64, u64)> =
            std::collections::HashMap::new();
        for change in &self.index {
            match change {
                IndexChange::WaitKeySet(key) => {
                    if let Some(holder) = reader.wait_key_holder(key)? {
                        if holder != self.run_id {
                            return Err(refuse(Error::WaitKeyTaken {
                                wait_key: key.clone(),
                                holder,
                            }));
                        }
                    }
                    if reader.inbox_span(key)?.1 > 0 {
                        return Err(refuse(Error::InboxNotEmpty {
                            wait_key: key.clone(),
                        }));
                    }
                }
                IndexChange::InboxConsume { wait_key, seq } => {
                    let (head, len) = reader.inbox_span(wait_key)?;
                    let (consumed, _) = seen.entry(wait_key).or_insert((0, 0));
                    if *consumed >= len || head + *consumed != *seq {
                        return Err(refuse(Error::InboxEntryGone {
                            wait_key: wait_key.clone(),
                            seq: *seq,
                        }));
                    }
                    *consumed += 1;
                }
                IndexChange::InboxPush { wait_key, .. } => {
                    let (_, len) = reader.inbox_span(wait_key)?;
                    let (consumed, pushed) = seen.entry(wait_key).or_insert((0, 0));
                    *pushed += 1;
                    if len - (*consumed).min(len) + *pushed > inbox_entries_max as u64 {
                        return Err(refuse(Error::InboxFull {
                            wait_key: wait_key.clone(),
                            entries_max: inbox_entries_max,
                        }));
                    }
                }
                IndexChange::WaitKeyClear(_)
                | IndexChange::Child { .. }
                | IndexChange::Workflow { .. }
                | IndexChange::Created(_)
                | IndexChange::Updated { .. }
                | IndexChange::TimerSet(_)
                | IndexChange::TimerClear(_)
                | IndexChange::Status { .. } => {}
            }
        }
        Ok(())
    }

    /// A commit from `old` (`None` for a new run) to `new`, with the wait_key, timer and
    /// status index changes the two states imply. Inbox changes are added by the caller.
    pub fn between(
        old: Option<&RunState>,
        new: RunState,
        records: Vec<Record>,
        at_ms: i64,
    ) -> Self {
        let mut index = Vec::new();
        let old_wait = old.and_then(|s| s.waiting.as_ref());
        let new_wait = new.waiting.as_ref();
        let old_key = old_wait.and_then(|w| w.wait_key.clone());
        let new_key = new_wait.and_then(|w| w.wait_key.clone());
        if old_key != new_key {
            index.extend(old_key.map(IndexChange::WaitKeyClear));
            index.extend(new_key.map(IndexChange::WaitKeySet));
        }
        let old_due = old_wait.and_then(|w| w.until_ms);
        let new_due = new_wait.and_then(|w| w.until_ms);
        if old_due != new_due {
            index.extend(old_due.map(IndexChange::TimerClear));
            index.extend(new_due.map(IndexChange::TimerSet));
        }
        if let (None, Some(parent)) = (old, &new.parent) {
            index.push(IndexChange::Child {
                parent: parent.run_id,
            });
        }
        if old.is_none() {
            index.push(IndexChange::Workflow {
                workflow_id: new.workflow_id.clone(),
                version: new.workflow_version,
            });
            index.push(IndexChange::Created(new.created_at_ms));
        }
        let old_updated = old.map(|s| s.updated_at_ms);
        if old_updated != Some(new.updated_at_ms) {
            index.push(IndexChange::Updated {
                from: old_updated,
                to: new.updated_at_ms,
            });
        }
        let old_status = old.map(|s| s.status);
        if old_status != Some(new.status) {
            index.push(IndexChange::Status {
                from: old_status,
                to: new.status,
            });
        }
        Commit {
            run_id: new.run_id,
            expected_seq: old.map_or(0, |s| s.head.seq),
            state: new,
            records,
            index,
            at_ms,
            sealed: false,
        }
    }

    /// Marks a commit whose records and state the kernel's fold (`event::append`) just
    /// produced: their hashes are right by construction.
    pub(crate) fn sealed_by_fold(mut self) -> Self {
        self.sealed = true;
        self
    }

    /// Checks what every store must check before writing: the records continue the run's
    /// chain from `expected_seq` (seqs, links, run ids) and the state is the one the last
    /// record produced. Each record's hash and the state's hash are recomputed too, except
    /// for a commit the engine sealed from its own fold in a release build (the engine
    /// computed them a moment ago; hashing once is most of a step's CPU).
    pub fn check_shape(&self, current_head_hash: ledgerflow_ledger::Hash) -> Result<(), Error> {
        let invalid = |reason: String| Error::InvalidCommit {
            run_id: self.run_id,
            reason,
        };
        let last = self
            .records
            .last()
            .ok_or_else(|| invalid("no records".into()))?;
        if self.state.run_id != self.run_id {
            return Err(invalid(format!("state is of run {}", self.state.run_id)));
        }
        // Seqs, links and run ids: cheap, always.
        let (mut seq, mut prev) = (self.expected_seq, current_head_hash);
        for record in &self.records {
            if record.run_id() != self.run_id
                || record.seq() != seq + 1
                || record.prev_hash() != prev
            {
                return Err(invalid(format!(
                    "record {} does not continue the chain at seq {seq}",
                    record.seq()
                )));
            }
            (seq, prev) = (record.seq(), record.hash());
        }
        let rehash = !self.sealed || cfg!(debug_assertions);
        if rehash {
            let mut verifier =
                ledgerflow_ledger::ChainVerifier::after(ledgerflow_ledger::ChainHead {
                    run_id: self.run_id,
                    seq: self.expected_seq,
                    hash: current_head_hash,
                });
            for record in &self.records {
                verifier.push(record).map_err(|e| invalid(e.to_string()))?;
            }
        }
        if self.state.head.seq != last.seq() || self.state.head.hash != last.hash() {
            return Err(invalid("state head is not the last record".into()));
        }
        if rehash && self.state.state_hash() != last.state_hash() {
            return Err(invalid(
                "state does not hash to the last record's state_hash".into(),
            ));
        }
        Ok(())
    }
}

/// One entry of the store's event feed: a record, in the order commits were applied
/// across all runs of the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    /// Position in the feed, from 1, without gaps.
    pub feed_seq: u64,
    /// The run.
    pub run_id: RunId,
    /// The record's seq in the run's ledger.
    pub seq: u64,
    /// The record's kind (`started`, `waiting`, `resumed`, `completed`, …).
    pub kind: String,
    /// When the record was written.
    pub at_ms: i64,
}

/// Which timestamp of a run a time-range query looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeField {
    /// When the run started.
    Created,
    /// When its last record was written.
    Updated,
}

/// A run waiting until `due_at_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimerEntry {
    /// When it is due.
    pub due_at_ms: i64,
    /// The run.
    pub run_id: RunId,
}

/// An event queued for a wait_key no run waited on when it arrived.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboxEntry {
    /// Position in the key's inbox, increasing from 1.
    pub seq: u64,
    /// The event.
    pub payload: Value,
    /// When it was queued.
    pub at_ms: i64,
}

/// What [`Store::deliver`] did with an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivery {
    /// A run waits on the key: resume it with the event (nothing was stored).
    Waiter(RunId),
    /// No run waits on the key: the event is queued at this inbox seq.
    Queued(u64),
}

/// Bounds a store enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most items one read returns (records, runs, timers, inbox entries).
    pub read_items_max: usize,
    /// Most events queued for one wait_key.
    pub inbox_entries_max: usize,
}

impl Default for StoreLimits {
    /// 10,000 items a read keeps one page of records well under a few MB; 1,000 inbox
    /// entries a key bounds what a producer with no consumer can pile up.
    fn default() -> Self {
        StoreLimits {
            read_items_max: 10_000,
            inbox_entries_max: 1_000,
        }
    }
}

/// Durable storage of runs, ledgers and indexes.
///
/// Contract (every implementation passes the conformance suite that checks it):
/// - **Atomicity**: [`Store::commit`] applies the state, records and index changes of a
///   [`Commit`] all together or not at all. When it returns `Ok`, all of it is visible to
///   every later read (and durable, for durable stores).
/// - **Optimistic concurrency**: a commit whose `expected_seq` is not the run's head seq
///   fails with [`Error::Conflict`] and writes nothing; of two commits expecting the same
///   seq, at most one succeeds.
/// - **Shape**: a commit whose records do not continue the run's chain, or whose state is
///   not the one its last record produced, fails with [`Error::InvalidCommit`]
///   ([`Commit::check_shape`]).
/// - **Immutability**: a record, once committed, is never changed or removed.
/// - **Ordering**: records read back in seq order; timers in (due time, run id) order;
///   inbox entries in arrival order.
/// - **Bounded reads**: every read takes a limit; a limit above
///   [`StoreLimits::read_items_max`] fails with [`Error::LimitTooLarge`].
pub trait Store: Send + Sync {
    /// Applies a commit atomically (see the trait docs).
    fn commit(&self, commit: Commit) -> Result<(), Error>;

    /// The run's current state, or `None` if it does not exist.
    fn load(&self, run_id: RunId) -> Result<Option<RunState>, Error>;

    /// Up to `limit` records of the run from `from_seq` on, in seq order.
    fn read_records(
        &self,
        run_id: RunId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Record>, Error>;

    /// The run waiting on `wait_key`, if any.
    fn waiting_on(&self, wait_key: &str) -> Result<Option<RunId>, Error>;

    /// Up to `limit` timers due at or before `now_ms`, earliest first (by due time, then
    /// run id), starting just after `after` when given: the cursor that pages through all
    /// due timers, whatever happened to the ones already read.
    fn due_timers(
        &self,
        now_ms: i64,
        after: Option<TimerEntry>,
        limit: usize,
    ) -> Result<Vec<TimerEntry>, Error>;

    /// The earliest timer, if any.
    fn next_timer(&self) -> Result<Option<TimerEntry>, Error>;

    /// The earliest timer due strictly after `after_ms`, if any: where a scheduler that has
    /// dispatched every due timer sleeps until.
    fn next_timer_after(&self, after_ms: i64) -> Result<Option<TimerEntry>, Error>;

    /// Atomically: if a run waits on `wait_key`, returns it; otherwise queues `payload` in
    /// the key's inbox (bounded by [`StoreLimits::inbox_entries_max`]).
    fn deliver(&self, wait_key: &str, payload: Value, at_ms: i64) -> Result<Delivery, Error>;

    /// Up to `limit` wait_keys whose inbox holds at least one event, in key order, after
    /// `after` if given. Lets a scheduler find, at start-up, events a crash left behind.
    fn inbox_keys(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, Error>;

    /// Up to `limit` of the oldest inbox entries of `wait_key`.
    fn inbox(&self, wait_key: &str, limit: usize) -> Result<Vec<InboxEntry>, Error>;

    /// Up to `limit` run ids, with status `status` if given, in run id order, after
    /// `after` if given (for paging).
    fn list_runs(
        &self,
        status: Option<RunStatus>,
        after: Option<RunId>,
        limit: usize,
    ) -> Result<Vec<RunId>, Error>;

    /// Up to `limit` runs of workflow `workflow_id` (of `version` only, if given), in
    /// (version, run id) order, after `after` if given.
    fn runs_by_workflow(
        &self,
        workflow_id: &str,
        version: Option<u32>,
        after: Option<(u32, RunId)>,
        limit: usize,
    ) -> Result<Vec<(u32, RunId)>, Error>;

    /// Up to `limit` runs whose `field` time is in `from_ms..=to_ms`, in (time, run id)
    /// order, after `after` if given.
    fn runs_by_time(
        &self,
        field: TimeField,
        from_ms: i64,
        to_ms: i64,
        after: Option<(i64, RunId)>,
        limit: usize,
    ) -> Result<Vec<(i64, RunId)>, Error>;

    /// [`Store::runs_by_time`] newest first: up to `limit` runs whose `field` time is in
    /// `from_ms..=to_ms`, in descending (time, run id) order, before `before` if given.
    fn runs_by_time_desc(
        &self,
        field: TimeField,
        from_ms: i64,
        to_ms: i64,
        before: Option<(i64, RunId)>,
        limit: usize,
    ) -> Result<Vec<(i64, RunId)>, Error>;

    /// How many runs have each status (statuses with none are left out).
    fn count_by_status(&self) -> Result<Vec<(RunStatus, u64)>, Error>;

    /// Up to `limit` child runs of `parent`, in run id order, after `after` if given.
    fn children(
        &self,
        parent: RunId,
        after: Option<RunId>,
        limit: usize,
    ) -> Result<Vec<RunId>, Error>;

    /// Stores `bytes` under their blake3 digest (idempotent: the same bytes are stored
    /// once) and, if `run_id` is given, lists the artifact under that run. Durable like a
    /// commit before it returns.
    fn put_artifact(
        &self,
        bytes: &[u8],
        media_type: &str,
        run_id: Option<RunId>,
    ) -> Result<ArtifactRef, Error>;

    /// The bytes stored under `digest`, checked against it, if stored.
    fn get_artifact(&self, digest: &Hash) -> Result<Option<Vec<u8>>, Error>;

    /// A random identity minted when the store was created; cursors carry it so that a
    /// cursor from another store is refused.
    fn store_id(&self) -> [u8; 16];

    /// Up to `limit` feed entries after `after_feed_seq` (0: from the start), in order. Each
    /// committed record gets one entry, in commit order, in the same atomic commit.
    fn read_feed(&self, after_feed_seq: u64, limit: usize) -> Result<Vec<FeedEntry>, Error>;

    /// The feed seq of the last entry (0 when empty). It is also the size of the global
    /// Merkle log: leaf `i` stands for the record of feed entry `i + 1`.
    fn feed_head(&self) -> Result<u64, Error>;

    /// Stored hashes of the global Merkle log, by their
    /// [`stored_hash_index`](ledgerflow_ledger::merkle::stored_hash_index): every leaf and
    /// every complete subtree, written in the same atomic commit as the records. An index
    /// not written yet is [`Error::Corrupt`] (callers ask only for what the size implies).
    fn log_nodes(&self, indexes: &[u64]) -> Result<Vec<TreeHash>, Error>;

    /// The leaf index of record `seq` of `run_id` in the global Merkle log, if stored.
    fn leaf_index(&self, run_id: RunId, seq: u64) -> Result<Option<u64>, Error>;

    /// The store's bounds.
    fn limits(&self) -> StoreLimits;

    /// Stores a snapshot (see [`Snapshot::check_fields`] for what is refused). The run
    /// must exist and hold `snapshot.record_hash` at `snapshot.seq` ([`Error::NotFound`],
    /// [`Error::InvalidInput`]); a name the run already uses is [`Error::AlreadyExists`].
    fn create_snapshot(&self, snapshot: &Snapshot) -> Result<(), Error>;

    /// The run's snapshot named `name`, if there is one.
    fn snapshot(&self, run_id: RunId, name: &str) -> Result<Option<Snapshot>, Error>;

    /// Up to `limit` snapshots matching `filter`, by run then name.
    fn list_snapshots(&self, filter: &SnapshotFilter, limit: usize)
        -> Result<Vec<Snapshot>, Error>;

    /// Verifies the whole store: every run's chain, replay equal to its state, the indexes
    /// agreeing with the runs, and the global log recomputed from the records. Damage is
    /// [`Error::Corrupt`]; events no run can ever consume are reported, not an error.
    /// Reads everything once: an operator's command, not a hot path.
    fn check(&self) -> Result<CheckReport, Error>;

    /// The latest signed checkpoint of the global log, for a store that keeps them.
    fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, Error> {
        Ok(None)
    }

    /// The public key the store signs its checkpoints with, for a store that signs them.
    fn checkpoint_public_key(&self) -> Result<Option<CheckpointKey>, Error> {
        Ok(None)
    }

    /// The leases of a store that many worker processes share ([`Leases`]); `None` for a
    /// store one process owns (the scheduler's own bookkeeping then keeps one run to one
    /// thread).
    fn leases(&self) -> Option<&dyn Leases> {
        None
    }

    /// Makes everything committed so far durable and refuses writes from now on
    /// ([`Error::Closed`] from `commit`, `deliver` and `put_artifact`); reads keep
    /// working. Idempotent.
    fn close(&self) -> Result<(), Error>;

    /// Checks a read limit against [`StoreLimits::read_items_max`].
    fn check_limit(&self, limit: usize) -> Result<(), Error> {
        let max = self.limits().read_items_max;
        if limit > max {
            return Err(Error::LimitTooLarge {
                requested: limit,
                max,
            });
        }
        Ok(())
    }
}

/// Run leases of a store shared by many worker processes: a run is advanced by the worker
/// holding its lease, and the store refuses, in the commit's own transaction, a commit from
/// a worker whose lease was taken over (a fencing epoch), so a worker that stalled past its
/// lease (paused, partitioned) can never commit over the one that took the run on. Lease
/// time is the store's clock, not the hosts'.
///
/// The rules a store keeps: a worker holds at most one lease a run; a lease not renewed
/// for [`Leases::lease_ms`] expires and can be taken over by any worker (the epoch goes
/// up); a commit of a worker holding the run's lease must carry its epoch; a commit of a
/// worker holding none is accepted only while no other worker holds a live lease; the
/// commit that creates a running run gives its worker the run's lease; a commit that
/// leaves a run waiting or ended lets its worker's lease go (the run needs no worker until
/// an answer or a timer comes, and whoever brings it need not wait for the lease).
pub trait Leases: Send + Sync {
    /// This worker's name, as leases and [`Error::Fenced`] show it.
    fn holder(&self) -> &str;

    /// How long a lease lasts without renewal.
    fn lease_ms(&self) -> u64;

    /// Takes the run's lease for this worker if it is free, expired or already this
    /// worker's (renewing it): whether this worker holds it now. `false`: another worker
    /// holds a live lease. A run that does not exist yet counts as held (its creating
    /// commit takes the lease).
    fn acquire(&self, run_id: RunId) -> Result<bool, Error>;

    /// Gives the run's lease back, so the next worker need not wait for it to expire. A
    /// run let go with work left (still running) is told to the workers waiting in
    /// [`Leases::wait_notice`], so one claims it at once.
    fn release(&self, run_id: RunId) -> Result<(), Error>;

    /// Stops renewing the run's lease without giving it back: another worker may take
    /// the run over once the lease expires (a run this worker cannot advance, its
    /// workflow not being registered here).
    fn abandon(&self, run_id: RunId);

    /// Claims, for this worker, up to `limit` runs that need one and whose lease is free
    /// or expired: timers due at `now_ms`, and runs left running by a worker that stopped
    /// renewing (crashed, stalled). Runs another worker is claiming at the same moment are
    /// skipped, not waited for, so each is claimed by one worker. A run under a live lease,
    /// this worker's own included, is never claimed: calling again until fewer than
    /// `limit` come back ends. Returns the runs claimed.
    fn claim_work(&self, now_ms: i64, limit: usize) -> Result<Vec<RunId>, Error>;

    /// Renews every lease this worker holds; call well within [`Leases::lease_ms`].
    fn renew(&self) -> Result<(), Error>;

    /// Blocks until another worker tells of new work (a timer set, a run let go with work
    /// left) or `timeout` passes; whether a notice came. An error (the connection broke)
    /// is returned at once; call again to listen again.
    fn wait_notice(&self, timeout: std::time::Duration) -> Result<bool, Error>;
}

/// Every record of `run`, read a page of [`StoreLimits::read_items_max`] at a time (none
/// for a run that does not exist).
pub fn read_all_records(store: &dyn Store, run: RunId) -> Result<Vec<Record>, Error> {
    let page = store.limits().read_items_max.max(1);
    let mut records = Vec::new();
    loop {
        let more = store.read_records(run, records.len() as u64 + 1, page)?;
        let done = more.len() < page;
        records.extend(more);
        if done {
            return Ok(records);
        }
    }
}

/// What [`Store::check`] verified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Runs checked.
    pub runs: u64,
    /// Records verified.
    pub records: u64,
    /// Leaves of the global log recomputed from the records and matched with the stored
    /// log (one per record).
    pub log_leaves: u64,
    /// Inboxes holding events no run can ever consume (a key only one run could wait on,
    /// which no longer does), with how many events each holds. Not damage to the files,
    /// but events lost to the workflows: `ledgerflow check` fails when there are any.
    pub orphaned_inboxes: Vec<(String, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{append, Event};

    fn sealed_start(run_id: RunId) -> Commit {
        let events = vec![
            crate::event::fixtures::started(),
            Event::Advanced {
                node: "a".into(),
                vars: None,
                next: "b".into(),
            },
        ];
        let (state, records) = append(None, run_id, &events, 1_000).expect("applies");
        Commit::between(None, state, records, 1_000).sealed_by_fold()
    }

    /// A sealed commit skips re-hashing in release builds, but its seqs, links and run ids
    /// are always checked.
    #[test]
    fn a_sealed_commit_still_has_its_links_checked() {
        let run_id = RunId::new_v4();
        assert!(sealed_start(run_id).check_shape(Hash::GENESIS).is_ok());
        let mut gap = sealed_start(run_id);
        gap.records.remove(0);
        assert!(matches!(
            gap.check_shape(Hash::GENESIS),
            Err(Error::InvalidCommit { .. })
        ));
        let other = sealed_start(run_id);
        assert!(matches!(
            other.check_shape(Hash::of(b"another head")),
            Err(Error::InvalidCommit { .. })
        ));
        let mut foreign = sealed_start(run_id);
        foreign.records = sealed_start(RunId::new_v4()).records;
        assert!(matches!(
            foreign.check_shape(Hash::GENESIS),
            Err(Error::InvalidCommit { .. })
        ));
    }
}
