//! `SledStore`: the kernel's `Store` on sled, with every step committed in one sled
//! transaction and made durable according to the configured `Durability`.

use std::ops::Bound;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ledgerflow_kernel::store::{
    CheckReport, Commit, Delivery, Error, FeedEntry, InboxEntry, IndexChange, IndexReader, Store,
    StoreLimits, TimeField, TimerEntry,
};
use ledgerflow_kernel::{
    replay_stored, ArtifactRef, Hash, Record, Replayer, RunId, RunState, RunStatus,
};
use serde_json::Value;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use ledgerflow_kernel::{Snapshot, SnapshotFilter};
use ledgerflow_ledger::checkpoint::{CheckpointKey, SignedCheckpoint};
use ledgerflow_ledger::merkle::{
    self, split_stored_hash_index, stored_hash_index, Frontier, NodeReader, TreeHash,
};

use crate::checkpoint::{
    self, CheckpointConfig, Checkpointer, Signing, CHECKPOINT_LOG_FILE, KEY_FILE, PUBLIC_KEY_FILE,
};
use crate::codec::{self, keys, InboxMetaV1};
use crate::recent::RecentStates;
use crate::sync::{sync_dir, Durability, GroupSync};
use crate::wal::Wal;

/// The text stored under `meta/format`: the layout version of `docs/storage.md`.
pub(crate) const STORE_FORMAT: &[u8] = b"ledgerflow-sled/3";
/// The format before state snapshots (`runs` always held the head state, which is a
/// snapshot too): opening such a store only changes the marker, so that a program that
/// knows only format 2 refuses it from then on.
const STORE_FORMAT_2: &[u8] = b"ledgerflow-sled/2";
/// The format before the global log; opening such a store builds its log once.
const STORE_FORMAT_1: &[u8] = b"ledgerflow-sled/1";

/// Whether this program opens a store of this format (upgrading it when older).
fn known_format(format: &[u8]) -> bool {
    [STORE_FORMAT, STORE_FORMAT_2, STORE_FORMAT_1].contains(&format)
}

/// The file, beside sled's, that records that a store was created in a directory and
/// its id: `ledgerflow-sled/1\n<store id, 32 hex digits>\n`. Written (and fsynced) once
/// the new store is durable, so a `db` file that later loses or replaces its content is
/// `StoreCorrupt`, never silently a new, empty store.
pub const MARKER_FILE: &str = "ledgerflow.store";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The store id the marker file records, or `None` if there is no marker file.
fn read_marker(dir: &Path) -> Result<Option<[u8; 16]>, Error> {
    let path = dir.join(MARKER_FILE);
    let text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&format!("reading {}", path.display()), e)),
    };
    let corrupt = || Error::Corrupt(format!("{}: not a ledgerflow store marker", path.display()));
    let text = std::str::from_utf8(&text).map_err(|_| corrupt())?;
    let mut lines = text.lines();
    let format = lines.next().map(str::as_bytes);
    if !format.is_some_and(known_format) {
        return Err(corrupt());
    }
    let id = lines
        .next()
        .filter(|id| id.len() == 32)
        .ok_or_else(corrupt)?;
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(id.get(2 * i..2 * i + 2).ok_or_else(corrupt)?, 16)
            .map_err(|_| corrupt())?;
    }
    Ok(Some(bytes))
}

/// Writes the marker file (through a temporary file, renamed, both fsynced).
fn write_marker(dir: &Path, store_id: &[u8; 16]) -> Result<(), Error> {
    use std::io::Write;
    let path = dir.join(MARKER_FILE);
    let tmp = dir.join(format!("{MARKER_FILE}.tmp"));
    let text = format!(
        "{}\n{}\n",
        String::from_utf8_lossy(STORE_FORMAT),
        hex(store_id)
    );
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir)
    };
    write().map_err(|e| io(&format!("writing {}", path.display()), e))
}

/// sled's segment size for new stores (a store keeps the size it was made with: sled
/// refuses another). Values over a quarter of it become separate blob files, which sled
/// does not fsync; every value this store writes is kept under
/// [`crate::VALUE_BYTES_MAX`] (192 KiB), far below that. 16 MiB: smaller segments open
/// small stores faster (sled writes out its last segment on open: 200,000 records, 287
/// ms with 16 MiB, 186 with 4) but large ones slower (100,000 runs, 568 ms against 662;
/// a million runs, 7.6 s with 4 MiB), and the targets are about large stores
/// (docs/benchmarks.md).
pub const SEGMENT_BYTES: usize = 16 << 20;

/// Settings of a [`SledStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SledConfig {
    /// When a commit counts as durable. Default [`Durability::Log`] with a sled
    /// checkpoint every second.
    pub durability: Durability,
    /// Signed checkpoints of the global log: key and log size.
    pub checkpoints: CheckpointConfig,
    /// Read and inbox bounds.
    pub limits: StoreLimits,
    /// sled's page cache size. Default 256 MiB: enough to keep the indexes of a million
    /// waiting runs hot on a small machine.
    pub cache_bytes: u64,
}

impl Default for SledConfig {
    fn default() -> Self {
        SledConfig {
            durability: Durability::default(),
            checkpoints: CheckpointConfig::default(),
            limits: StoreLimits::default(),
            cache_bytes: 256 << 20,
        }
    }
}

impl Trees {
    /// The trees a step transaction spans, in the order that numbers them in commit log
    /// entries (a write's tree is its index here).
    fn step_trees(&self) -> [&sled::Tree; 14] {
        [
            &self.runs,
            &self.records,
            &self.wait_keys,
            &self.timers,
            &self.status,
            &self.inbox,
            &self.inbox_meta,
            &self.children,
            &self.feed,
            &self.by_workflow,
            &self.by_created,
            &self.by_updated,
            &self.log,
            &self.meta,
        ]
    }
}

pub(crate) struct Trees {
    pub meta: sled::Tree,
    pub runs: sled::Tree,
    pub records: sled::Tree,
    pub wait_keys: sled::Tree,
    pub timers: sled::Tree,
    pub status: sled::Tree,
    pub inbox: sled::Tree,
    pub inbox_meta: sled::Tree,
    pub children: sled::Tree,
    pub feed: sled::Tree,
    /// The global Merkle log's complete subtrees at levels 4, 8, 12, …: stored hash index
    /// (u64 big-endian) → 32-byte hash. Leaf hashes are in the feed values, each record
    /// value holds its leaf index, and the levels between are recomputed when read.
    pub log: sled::Tree,
    pub by_workflow: sled::Tree,
    pub by_created: sled::Tree,
    pub by_updated: sled::Tree,
    pub snapshots: sled::Tree,
    pub artifacts: sled::Tree,
    pub artifact_chunks: sled::Tree,
    pub artifact_runs: sled::Tree,
}

/// Background flusher of [`Durability::Batched`].
struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

/// The embedded, durable store. See `docs/storage.md` for its layout on disk.
///
/// ```
/// use ledgerflow_kernel::Store;
/// use ledgerflow_sled::SledStore;
/// let dir = std::env::temp_dir().join(format!("ledgerflow-doc-{}", std::process::id()));
/// let store = SledStore::open(&dir)?;
/// assert!(store.next_timer()?.is_none());
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), ledgerflow_kernel::store::Error>(())
/// ```
pub struct SledStore {
    dir: PathBuf,
    pub(crate) trees: Trees,
    config: SledConfig,
    sync: Arc<GroupSync>,
    closed: AtomicBool,
    store_id: [u8; 16],
    /// The right edge of the global log; its size is the last feed seq. Held across each
    /// commit's transaction, which gives the feed and the log their order (the order
    /// transactions apply in) and spares sled's optimistic transactions from conflicting
    /// with each other; the fsync happens after, outside it.
    log: Mutex<Frontier>,
    /// A copy of the log's right edge as applied (durable or not), for the group sync to
    /// read when a round begins: what the round makes durable, and its root.
    applied: Arc<Mutex<Frontier>>,
    /// Signs each durable tree head into `checkpoints.log`.
    checkpointer: Checkpointer,
    /// The last feed seq whose commit was acknowledged (after its fsync, in `Sync` mode):
    /// readers of the feed see nothing past it, so they never act on undurable entries.
    /// A commit acknowledged at seq S makes every seq before S durable too: those
    /// transactions applied first, so the fsync that covered S covered them.
    acked_feed_seq: AtomicU64,
    /// Commits waiting for the lock holder to apply them (see `commit`).
    pending: Mutex<Vec<Arc<Slot>>>,
    flusher: Mutex<Option<Flusher>>,
    /// The commit log, with `Durability::Log`.
    wal: Option<Arc<Wal>>,
    /// With the commit log: the global log's size and root after each recent entry, so
    /// that a sync round can ask for the checkpoint of what it made durable.
    logged_heads: Mutex<std::collections::BTreeMap<crate::wal::Lsn, (u64, TreeHash)>>,
    /// Set when this handle reads a copy (see [`SledStore::open_for_inspection`]): the
    /// copy is removed when the handle drops, after sled lets go of it.
    copy: Option<InspectionCopy>,
    /// The latest state of recently committed runs: a load of one is a copy.
    recent: RecentStates,
}

/// A copy of a store's directory made for inspection, removed on drop.
#[derive(Debug)]
struct InspectionCopy {
    dir: PathBuf,
    source: PathBuf,
}

/// The inspection copies this process holds, for [`remove_inspection_copies`].
static INSPECTION_COPIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

impl InspectionCopy {
    /// A new, empty directory of its own under the temporary directory. Created
    /// exclusively: a directory left by a process that exited without cleaning up (and
    /// whose process id this one now has) is never reused.
    fn new(source: &Path) -> Result<Self, Error> {
        static COPIES: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        for attempt in 0..100u32 {
            let dir = std::env::temp_dir().join(format!(
                "ledgerflow-inspect-{}-{}-{nanos:08x}{attempt:02}",
                std::process::id(),
                COPIES.fetch_add(1, Ordering::SeqCst)
            ));
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    lock(&INSPECTION_COPIES).push(dir.clone());
                    return Ok(InspectionCopy {
                        dir,
                        source: source.to_owned(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(&format!("creating {}", dir.display()), e)),
            }
        }
        Err(Error::io_failed(format!(
            "no free name for an inspection copy in {}",
            std::env::temp_dir().display()
        )))
    }
}

impl Drop for InspectionCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        lock(&INSPECTION_COPIES).retain(|dir| *dir != self.dir);
    }
}

/// Removes the inspection copies this process still holds. For a program about to end
/// with `std::process::exit`, which runs no destructors (the CLI, when its output pipe
/// closes); the handles on them must not be used afterwards.
pub fn remove_inspection_copies() {
    for dir in std::mem::take(&mut *lock(&INSPECTION_COPIES)) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Files of a store's directory that an inspection copy leaves out: the signing key.
fn copied(name: &std::ffi::OsStr) -> bool {
    name != std::ffi::OsStr::new(KEY_FILE)
}

/// Copies `from` into the new directory `to`: the checkpoint logs first (so that the
/// data copied after them is never behind them), then the rest, recursively.
fn copy_store_dir(from: &Path, to: &Path) -> Result<(), Error> {
    let failed = |what: &Path, e: std::io::Error| io(&format!("copying {}", what.display()), e);
    std::fs::create_dir_all(to).map_err(|e| failed(to, e))?;
    let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(from)
        .map_err(|e| failed(from, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| failed(from, e))?;
    entries.sort_by_key(|e| {
        !e.file_name()
            .to_string_lossy()
            .starts_with(CHECKPOINT_LOG_FILE)
    });
    for entry in entries {
        let name = entry.file_name();
        if !copied(&name) {
            continue;
        }
        let source = entry.path();
        let kind = entry.file_type().map_err(|e| failed(&source, e))?;
        if kind.is_dir() {
            copy_store_dir(&source, &to.join(&name))?;
        } else if kind.is_file() {
            std::fs::copy(&source, to.join(&name)).map_err(|e| failed(&source, e))?;
        }
    }
    Ok(())
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// An IO error of the store's own files: what failed, and the operating system's error.
pub(crate) fn io(context: &str, e: std::io::Error) -> Error {
    Error::io(context, e)
}

/// A sled error as a store error: its corruption as `Corrupt`, its IO errors with their
/// source kept.
pub(crate) fn sled_err(e: sled::Error) -> Error {
    match e {
        sled::Error::Corruption { .. } => Error::Corrupt(e.to_string()),
        sled::Error::Io(io_err) => Error::io("sled", io_err),
        other => Error::io_failed(format!("sled: {other}")),
    }
}

/// How long opening waits for another handle on the same directory to let go of sled's
/// file lock: a store dropped a moment ago releases it from a background thread.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Checks sled's settings file `conf` (its text, then a little-endian CRC-32 of it)
/// before sled opens the store: sled silently rewrites a `conf` of 8 bytes or less and
/// only warns on a bad checksum, which would change a store an operator only wanted to
/// inspect and hide the damage. A missing `conf` is left to the caller.
/// Checks sled's settings file in `dir`, and returns the segment size sled's files were
/// made with (`None` for a new store).
pub fn segment_size_of(dir: &Path) -> Result<Option<usize>, Error> {
    let path = dir.join("conf");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&format!("reading {}", path.display()), e)),
    };
    let damaged = |what: &str| {
        Error::Corrupt(format!(
            "{}: sled's settings file is damaged ({what}); nothing was changed. \
             Restore the store directory from a backup (docs/operations.md)",
            path.display()
        ))
    };
    if bytes.len() <= 8 {
        return Err(damaged(&format!("{} bytes, too short", bytes.len())));
    }
    let (text, crc) = bytes.split_at(bytes.len() - 4);
    let mut stored = [0u8; 4];
    stored.copy_from_slice(crc);
    if crc32fast::hash(text) != u32::from_le_bytes(stored) {
        return Err(damaged("its checksum does not match"));
    }
    let segment_size = String::from_utf8_lossy(text)
        .lines()
        .find_map(|line| line.strip_prefix("segment_size: ")?.trim().parse().ok())
        .ok_or_else(|| damaged("no segment size"))?;
    Ok(Some(segment_size))
}

/// Opens sled in `dir`, waiting up to [`LOCK_WAIT`] for its file lock.
fn open_db(dir: &Path, config: &SledConfig, where_: &str) -> Result<sled::Db, Error> {
    let segment_size = segment_size_of(dir)?.unwrap_or(SEGMENT_BYTES);
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let opened = no_panic(where_, || {
            sled::Config::new()
                .path(dir)
                .segment_size(segment_size)
                .cache_capacity(config.cache_bytes)
                .flush_every_ms(match config.durability {
                    Durability::None | Durability::Log { .. } => Some(500),
                    _ => None,
                })
                .open()
                .map_err(|e| match e {
                    // sled reports a held lock as an `Other` IO error with this text.
                    sled::Error::Io(io_err)
                        if io_err.to_string().contains("could not acquire lock") =>
                    {
                        Error::io(
                            format!("{where_}: the store is open elsewhere (file lock held)"),
                            io_err,
                        )
                    }
                    sled::Error::Io(io_err) => Error::io(where_, io_err),
                    // sled reads its settings from `conf` first; what it cannot read there
                    // it reports as "unsupported" (e.g. "created using a sled version
                    // earlier than 0.29" for a damaged file).
                    sled::Error::Unsupported(message) => Error::Corrupt(format!(
                        "{where_}: the settings file {} is damaged or not sled's: {message}",
                        dir.join("conf").display()
                    )),
                    other => Error::Corrupt(format!("{where_}: {other}")),
                })
        });
        match opened {
            Err(Error::Io { message, .. })
                if message.contains("file lock held") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Runs `f`, turning a panic inside sled into a typed corruption error.
fn no_panic<T>(what: &str, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(Error::Corrupt(format!("{what}: sled panicked: {message}")))
    })
}

impl SledStore {
    /// Creates or opens the store in `dir` with default settings.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, Error> {
        SledStore::open_with(dir, SledConfig::default())
    }

    /// Opens the store in `dir`, which must already hold one: a missing directory or
    /// store is [`Error::Missing`].
    pub fn open_existing(dir: impl AsRef<Path>, config: SledConfig) -> Result<Self, Error> {
        let dir = dir.as_ref();
        SledStore::check_exists(dir)?;
        SledStore::open_inner(dir, config, false)
    }

    /// Opens the store in `dir` for reading without changing a byte of it. sled has no
    /// read-only mode (opening runs its recovery, which may rewrite a damaged file), so
    /// this copies the directory — without the signing key — to a temporary directory and
    /// opens the copy; the copy is removed when the handle drops. The copy is checked
    /// against the last checkpoint like any open. Writes are refused ([`Error::Closed`]).
    ///
    /// The copy is taken while holding sled's file lock on `db`, so a store that another
    /// process has open is refused ([`Error::Io`], after waiting up to 5 s for the lock as
    /// `open` does) instead of copied mid-write.
    pub fn open_for_inspection(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref();
        SledStore::check_exists(dir)?;
        let db = dir.join("db");
        let lock =
            std::fs::File::open(&db).map_err(|e| io(&format!("opening {}", db.display()), e))?;
        // As `open` does, wait a moment for a lock held by a store just closed (sled's
        // threads let go of its files shortly after the last handle drops).
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let locked = loop {
            match lock.try_lock() {
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break other,
            }
        };
        match locked {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::io_failed(format!(
                    "{}: the store is open in another process (file lock held); stop it, or \
                     inspect a live store through that process",
                    dir.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io(&format!("locking {}", db.display()), e))
            }
        }
        let copy = InspectionCopy::new(dir)?;
        let copy_dir = copy.dir.clone();
        copy_store_dir(dir, &copy_dir)?;
        drop(lock);
        let config = SledConfig {
            durability: Durability::None,
            checkpoints: CheckpointConfig {
                signing: Signing::Unsigned,
                ..CheckpointConfig::default()
            },
            ..SledConfig::default()
        };
        let mut store = SledStore::open_inner(&copy_dir, config, false)?;
        store.closed.store(true, Ordering::SeqCst);
        store.copy = Some(copy);
        Ok(store)
    }

    /// The directory this handle inspects a copy of, when opened with
    /// [`SledStore::open_for_inspection`].
    pub fn inspected_dir(&self) -> Option<&Path> {
        self.copy.as_ref().map(|c| c.source.as_path())
    }

    fn check_exists(dir: &Path) -> Result<(), Error> {
        if !dir.is_dir() {
            return Err(Error::Missing(format!(
                "{}: no such store directory",
                dir.display()
            )));
        }
        if !dir.join("db").is_file() || !dir.join("conf").is_file() {
            return Err(Error::Missing(format!(
                "{}: not a ledgerflow store (sled's db or conf file is missing)",
                dir.display()
            )));
        }
        Ok(())
    }

    /// Creates or opens the store in `dir` with `config`.
    pub fn open_with(dir: impl AsRef<Path>, config: SledConfig) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let existed = dir.join("db").is_file();
        if !existed {
            std::fs::create_dir_all(dir)
                .map_err(|e| io(&format!("creating {}", dir.display()), e))?;
        }
        SledStore::open_inner(dir, config, !existed)
    }

    fn open_inner(dir: &Path, config: SledConfig, creating: bool) -> Result<Self, Error> {
        let where_ = format!("opening {}", dir.display());
        let db = open_db(dir, &config, &where_)?;
        let tree = |name: &str| no_panic(&where_, || db.open_tree(name).map_err(sled_err));
        let trees = Trees {
            meta: tree("meta")?,
            runs: tree("runs")?,
            records: tree("records")?,
            wait_keys: tree("wait_keys")?,
            timers: tree("timers")?,
            status: tree("status")?,
            inbox: tree("inbox")?,
            inbox_meta: tree("inbox_meta")?,
            children: tree("children")?,
            feed: tree("feed")?,
            log: tree("log")?,
            by_workflow: tree("by_workflow")?,
            by_created: tree("by_created")?,
            by_updated: tree("by_updated")?,
            snapshots: tree("snapshots")?,
            artifacts: tree("artifacts")?,
            artifact_chunks: tree("artifact_chunks")?,
            artifact_runs: tree("artifact_runs")?,
        };
        let applied = Arc::new(Mutex::new(Frontier::new()));
        let sync = Arc::new(GroupSync::new(db.clone(), dir, Arc::clone(&applied))?);
        let wal = replay_commit_log(dir, &trees, &sync, &config.durability)?;
        let marker = read_marker(dir)?;
        let format = trees.meta.get("format").map_err(sled_err)?;
        let store_id = match (format, marker) {
            (Some(found), marker) if known_format(&found) => {
                let id = trees.meta.get("store_id").map_err(sled_err)?;
                let id = keys::decode_run_id(id.as_deref().unwrap_or_default()).map_err(|_| {
                    Error::Corrupt(format!("{}: store_id is damaged", dir.display()))
                })?;
                match marker {
                    Some(marked) if marked != *id.as_bytes() => {
                        return Err(Error::Corrupt(format!(
                            "{}: sled's data belongs to store {}, but {MARKER_FILE} names store {} \
                             (files of two stores mixed?)",
                            dir.display(),
                            hex(id.as_bytes()),
                            hex(&marked)
                        )))
                    }
                    Some(_) => {}
                    // A store created before the marker file existed: write it now.
                    None => write_marker(dir, id.as_bytes())?,
                }
                id
            }
            (Some(other), _) => {
                return Err(Error::Corrupt(format!(
                    "{}: unknown store format {:?}",
                    dir.display(),
                    String::from_utf8_lossy(&other)
                )))
            }
            (None, Some(marked)) => {
                return Err(Error::Corrupt(format!(
                    "{}: {MARKER_FILE} says store {} was created here, but sled's data has no \
                     format marker: the db file is damaged or was replaced. Nothing was \
                     changed; restore the directory from a backup (docs/operations.md)",
                    dir.display(),
                    hex(&marked)
                )))
            }
            (None, None) if !creating && !trees.runs.is_empty() => {
                return Err(Error::Corrupt(format!(
                    "{}: runs present but no format marker",
                    dir.display()
                )))
            }
            // A new store, or one whose creation a crash cut short before anything was
            // stored (the marker file is written last): initialise it.
            (None, None) => {
                let id = RunId::new_v4();
                trees
                    .meta
                    .insert("format", STORE_FORMAT)
                    .map_err(sled_err)?;
                trees
                    .meta
                    .insert("store_id", &id.as_bytes()[..])
                    .map_err(sled_err)?;
                sync.sync()?;
                write_marker(dir, id.as_bytes())?;
                id
            }
        };
        let last_feed_seq = match trees.feed.last().map_err(sled_err)? {
            Some((key, _)) => keys::seq_suffix(&key)?,
            None => 0,
        };
        let format = trees.meta.get("format").map_err(sled_err)?;
        let format_1 = format.as_deref() == Some(STORE_FORMAT_1);
        let frontier = load_log(dir, &trees, last_feed_seq, format_1, &sync)?;
        if format.as_deref() == Some(STORE_FORMAT_2) {
            trees
                .meta
                .insert("format", STORE_FORMAT)
                .map_err(sled_err)?;
            sync.sync()?;
        }
        if format.as_deref() != Some(STORE_FORMAT) {
            write_marker(dir, store_id.as_bytes())?;
        }
        *lock(&applied) = frontier.clone();
        sync.set_durable(last_feed_seq, frontier.root());
        let origin = ledgerflow_ledger::checkpoint::origin_of_store(store_id.as_bytes());
        let signer = match &config.checkpoints.signing {
            Signing::StoreKey => Some(checkpoint::load_or_make_key(&dir.join(KEY_FILE), &origin)?),
            Signing::KeyFile(path) => Some(checkpoint::load_or_make_key(path, &origin)?),
            Signing::Unsigned => None,
        };
        if let Some(signer) = &signer {
            let public = dir.join(PUBLIC_KEY_FILE);
            if !public.exists() {
                std::fs::write(&public, format!("{}\n", signer.public_key().as_str()))
                    .map_err(|e| io(&format!("writing {}", public.display()), e))?;
            }
        }
        let keys = checkpoint::trusted_keys(dir, signer.as_ref().map(|s| s.public_key()))?;
        let reader = NodeTree::of(&trees);
        let (found, latest) = checkpoint::read_for_open(dir)?;
        checkpoint::check_against_latest(
            dir,
            latest.as_ref(),
            &origin,
            last_feed_seq,
            &reader,
            &keys,
        )?;
        let checkpointer = Checkpointer::start(
            dir,
            found,
            origin,
            signer,
            config.checkpoints.log_bytes_max,
            latest.map_or(0, |c| c.head.size),
        )?;
        if creating {
            sync.sync()?;
            sync_dir(dir).map_err(|e| io("fsync of the store directory", e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent).map_err(|e| io("fsync of the parent directory", e))?;
            }
        }
        let store = SledStore {
            dir: dir.to_owned(),
            trees,
            config,
            sync,
            closed: AtomicBool::new(false),
            log: Mutex::new(frontier),
            applied,
            checkpointer,
            acked_feed_seq: AtomicU64::new(last_feed_seq),
            pending: Mutex::new(Vec::new()),
            store_id: *store_id.as_bytes(),
            flusher: Mutex::new(None),
            wal,
            logged_heads: Mutex::default(),
            copy: None,
            recent: RecentStates::default(),
        };
        match store.config.durability {
            Durability::Batched { max_delay_ms } => store.start_flusher(max_delay_ms, None),
            Durability::Log { checkpoint_ms } => {
                store.start_flusher(checkpoint_ms, store.wal.clone())
            }
            Durability::Sync | Durability::None => {}
        }
        // Everything found on open is durable: checkpoint it now (a no-op when the last
        // checkpoint already covers it).
        let found = lock(&store.log).clone();
        store.checkpointer.request(found.size(), found.root());
        Ok(store)
    }

    /// The background flusher: `Batched`'s syncs, or `Log`'s checkpoints of sled (flush
    /// and fsync, then the commit log's older segments go).
    fn start_flusher(&self, max_delay_ms: u64, wal: Option<Arc<Wal>>) {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (thread_stop, sync) = (Arc::clone(&stop), Arc::clone(&self.sync));
        let checkpoints = self.checkpointer.requester();
        let meta = self.trees.meta.clone();
        let handle = std::thread::Builder::new()
            .name("ledgerflow-sled-flusher".into())
            .spawn(move || {
                let (lock, wake) = &*thread_stop;
                let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
                while !*stopped {
                    let (guard, _) = wake
                        .wait_timeout(stopped, Duration::from_millis(max_delay_ms.max(1)))
                        .unwrap_or_else(|p| p.into_inner());
                    stopped = guard;
                    // A failure poisons the store; commits report it.
                    if let Some(wal) = &wal {
                        // Every entry before `upto` was applied to sled before it was
                        // logged, so the sync below covers it.
                        let upto = wal.next_lsn();
                        if sync.sync().is_ok() {
                            // Durable with the next sync; until then a replay starts
                            // earlier, which is harmless.
                            let synced = (upto - 1).to_be_bytes();
                            if meta.insert(WAL_SYNCED_KEY, &synced[..]).is_ok() {
                                let _ = wal.remove_before(upto);
                            }
                        }
                    } else if let Ok(Some(round)) = sync.sync_if_dirty() {
                        checkpoints.request(round.durable_size, round.durable_root);
                    }
                }
            })
            .ok();
        *self.flusher.lock().unwrap_or_else(|p| p.into_inner()) = Some(Flusher { stop, handle });
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The random identity minted when the store was created.
    pub fn store_id(&self) -> [u8; 16] {
        self.store_id
    }

    /// The settings it was opened with.
    pub fn config(&self) -> &SledConfig {
        &self.config
    }

    /// How many device flushes this store has made for commits: fsyncs of sled's log,
    /// and with [`Durability::Log`] `fdatasync`s of the commit log (group commit shares
    /// them).
    pub fn fsyncs(&self) -> u64 {
        self.sync.fsyncs() + self.wal.as_ref().map_or(0, |wal| wal.syncs())
    }

    /// Makes the next checkpoint write fail, to test that it poisons the store without
    /// failing the commit that is already durable. Not for production use.
    #[doc(hidden)]
    pub fn inject_checkpoint_failure(&self) {
        self.checkpointer.fail_next();
    }

    /// Makes the next fsync fail, to test that a failed fsync is reported and poisons
    /// the store. Not for production use.
    #[doc(hidden)]
    pub fn inject_fsync_failure(&self) {
        match &self.wal {
            Some(wal) => wal.fail_next_sync(),
            None => self.sync.fail_next_sync(),
        }
    }

    /// Flushes and fsyncs everything committed so far, whatever the durability mode,
    /// and waits until a signed checkpoint covers it.
    pub fn sync(&self) -> Result<(), Error> {
        let round = self.sync.sync()?;
        self.checkpointer
            .request(round.durable_size, round.durable_root);
        self.checkpointer.wait_for(round.durable_size)
    }

    /// Makes everything durable, checkpoints it, and refuses writes from now on; reads
    /// keep working.
    pub fn close(&self) -> Result<(), Error> {
        self.closed.store(true, Ordering::SeqCst);
        self.stop_flusher();
        let synced = match &self.wal {
            Some(wal) => self.sync_and_trim_log(wal),
            None => self.sync(),
        };
        self.checkpointer.stop();
        synced
    }

    /// Everything logged is in sled: makes it durable there and lets the commit log's
    /// older segments go, so the next open has nothing to replay.
    fn sync_and_trim_log(&self, wal: &Wal) -> Result<(), Error> {
        let upto = wal.next_lsn();
        self.trees
            .meta
            .insert(WAL_SYNCED_KEY, &(upto - 1).to_be_bytes()[..])
            .map_err(sled_err)?;
        self.sync()?;
        wal.remove_before(upto).map(drop)
    }

    /// The public key this store's checkpoints are signed with (`None` when unsigned).
    pub fn checkpoint_key(&self) -> Option<&CheckpointKey> {
        self.checkpointer.public_key()
    }

    /// The size of the last checkpoint written (and fsynced) by this handle or found on
    /// open.
    pub fn checkpointed_size(&self) -> u64 {
        self.checkpointer.done()
    }

    fn stop_flusher(&self) {
        let flusher = self
            .flusher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut flusher) = flusher {
            let (lock, wake) = &*flusher.stop;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
            wake.notify_all();
            if let Some(handle) = flusher.handle.take() {
                let _ = handle.join();
            }
        }
    }

    /// The index of runs by `field` time.
    fn time_index(&self, field: TimeField) -> &sled::Tree {
        match field {
            TimeField::Created => &self.trees.by_created,
            TimeField::Updated => &self.trees.by_updated,
        }
    }

    pub(crate) fn check_writable(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        if let Some(e) = self.checkpointer.failure() {
            return Err(Error::io_failed(format!(
                "writing a checkpoint failed: {e}; the store refuses writes until it is reopened"
            )));
        }
        if let Some(wal) = &self.wal {
            wal.check_healthy()?;
        }
        self.sync.check_healthy()
    }

    /// `Durability::Log`: waits until the commit log entry is durable, then asks for a
    /// checkpoint of what it covers and waits for the one of the batch before (as
    /// [`SledStore::after_write`] does for a group).
    fn after_logged(&self, wal: &Wal, logged: Logged) -> Result<(), Error> {
        let round = wal.sync(logged.lsn)?;
        // The checkpoint of what this round made durable, and a wait for the one of the
        // round before (written while this round's fdatasync ran), as with `Sync`.
        let (head, previous_size) = {
            let mut heads = lock(&self.logged_heads);
            let head = heads
                .range(..=round.durable)
                .next_back()
                .map(|(_, head)| *head)
                .filter(|(size, _)| *size >= logged.size)
                .unwrap_or((logged.size, logged.root));
            let previous = heads
                .range(..=round.previous)
                .next_back()
                .map(|(lsn, (size, _))| (*lsn, *size));
            if let Some((lsn, _)) = previous {
                // Older heads are not asked for again.
                let keep = heads.split_off(&lsn);
                *heads = keep;
            }
            (head, previous.map_or(0, |(_, size)| size))
        };
        self.checkpointer.request(head.0, head.1);
        let _ = self.checkpointer.wait_for(previous_size);
        Ok(())
    }

    /// Waits until a write is as durable as the configured mode promises. In `Sync` mode
    /// it also asks for a checkpoint of what the round made durable and waits for the
    /// one of the round before (written while this round's fsync ran): every
    /// acknowledged commit is covered by a checkpoint at most one group later.
    pub(crate) fn after_write(&self) -> Result<(), Error> {
        match self.config.durability {
            Durability::Sync => {
                let round = self.sync.sync()?;
                self.checkpointer
                    .request(round.durable_size, round.durable_root);
                // The commit is durable now, whatever happens to the checkpoint: a failed
                // checkpoint write is not this commit's failure (an error would say it did
                // not happen). The failure poisons the store instead: the next write is
                // refused, and reopening checkpoints everything.
                let _ = self.checkpointer.wait_for(round.previous_durable_size);
                Ok(())
            }
            Durability::Batched { .. } => {
                self.sync.mark_dirty();
                Ok(())
            }
            Durability::None => Ok(()),
            // Commits and deliveries wait on the commit log instead (`after_logged`); what
            // is written outside it (artifacts, snapshots — rare) is made durable in sled
            // at once, before any commit that refers to it can be acknowledged.
            Durability::Log { .. } => self.sync.sync().map(|_| ()),
        }
    }

    /// Runs `f` over the step trees and returns what it made with every write it did, in
    /// order. With the commit log (the caller holds the log lock, so these writes are the
    /// only ones), `f` runs once against sled plus its own pending writes, which are then
    /// applied to sled: the log entry the caller writes next is what makes them atomic.
    /// Otherwise `f` runs in a sled transaction (and no writes are returned).
    fn transact_logged<T>(
        &self,
        f: impl Fn(&StepTrees<'_>) -> Result<T, ConflictableTransactionError<Error>>,
    ) -> Result<(T, Vec<Op>), Error> {
        if self.wal.is_some() {
            return self.write_logged(f);
        }
        self.transact(f).map(|value| (value, Vec::new()))
    }

    /// The commit log's half of [`SledStore::transact_logged`].
    fn write_logged<T>(
        &self,
        f: impl Fn(&StepTrees<'_>) -> Result<T, ConflictableTransactionError<Error>>,
    ) -> Result<(T, Vec<Op>), Error> {
        let trees = self.trees.step_trees();
        let ops = std::cell::RefCell::new(Vec::new());
        let pending = std::cell::RefCell::new(Pending::new());
        let step = StepTrees::from_fn(|id| Target::Logged {
            tree: trees[id],
            pending: &pending,
            ops: &ops,
        });
        let value = match f(&step) {
            Ok(value) => value,
            Err(ConflictableTransactionError::Abort(e)) => return Err(e),
            Err(ConflictableTransactionError::Storage(e)) => return Err(sled_err(e)),
            Err(e) => return Err(Error::io_failed(format!("sled: {e:?}"))),
        };
        let ops = ops.into_inner();
        apply_ops(
            &trees,
            ops.iter().map(|(t, k, v)| (*t, k.as_slice(), v.as_deref())),
        )?;
        Ok((value, ops))
    }

    /// Runs a sled transaction over the step trees, mapping its errors.
    fn transact<T>(
        &self,
        f: impl Fn(&StepTrees<'_>) -> Result<T, ConflictableTransactionError<Error>>,
    ) -> Result<T, Error> {
        // sled makes tuples of trees transactional; `StepTrees` numbers them as an array.
        let t = self.trees.step_trees();
        let trees = (
            t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13],
        );
        let result = trees.transaction(|t| {
            let trees = [
                &t.0, &t.1, &t.2, &t.3, &t.4, &t.5, &t.6, &t.7, &t.8, &t.9, &t.10, &t.11, &t.12,
                &t.13,
            ];
            f(&StepTrees::from_fn(|id| Target::Transaction(trees[id])))
        });
        match result {
            Ok(value) => Ok(value),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(sled_err(e)),
        }
    }

    /// Replays a run's stored ledger (up to `up_to_seq`, or all of it), as a store error:
    /// anything wrong with the ledger is corruption.
    pub(crate) fn replay_run(
        &self,
        run_id: RunId,
        up_to_seq: Option<u64>,
    ) -> Result<RunState, Error> {
        replay_stored(self, run_id, up_to_seq).map_err(|e| match e {
            ledgerflow_kernel::Error::Store(e) => e,
            other => Error::Corrupt(format!("run {run_id}: {other}")),
        })
    }

    /// The run's state from sled: its snapshot and the records after it, folded (the
    /// chain and each state hash checked).
    fn load_stored(&self, run_id: RunId) -> Result<Option<RunState>, Error> {
        let Some(snapshot) = self.load_snapshot(run_id)? else {
            return Ok(None);
        };
        // The records after the snapshot (fewer than `STATE_SNAPSHOT_RECORDS` plus one
        // commit's), folded onto it.
        let start = keys::record(run_id, snapshot.head.seq + 1);
        let end = keys::record(run_id, u64::MAX);
        let mut after = self.trees.records.range(start..=end).peekable();
        if after.peek().is_none() {
            return Ok(Some(snapshot));
        }
        let mut replayer = Replayer::after(snapshot);
        for item in after {
            let (_, value) = item.map_err(sled_err)?;
            let record = codec::decode_record(run_id, &value)?;
            replayer
                .push(&record)
                .map_err(|e| Error::Corrupt(format!("run {run_id}: {e}")))?;
        }
        replayer
            .finish()
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("run {run_id}: {e}")))
    }

    /// The run's stored state snapshot (its state at some seq up to its head).
    fn load_snapshot(&self, run_id: RunId) -> Result<Option<RunState>, Error> {
        match self.trees.runs.get(run_id.as_bytes()).map_err(sled_err)? {
            Some(bytes) => {
                let state = codec::decode_state(&bytes)?;
                if state.run_id != run_id {
                    return Err(Error::Corrupt(format!(
                        "run {run_id}: state names run {}",
                        state.run_id
                    )));
                }
                Ok(Some(state))
            }
            None => Ok(None),
        }
    }

    /// Verifies a run's chain and replays it: the replay must equal the stored snapshot
    /// at its seq, and the records after it must fold onto it. Returns the run's current
    /// state (what [`Store::load`] gives).
    fn check_run(&self, run_id: RunId, snapshot: &RunState) -> Result<RunState, Error> {
        let replayed = self.replay_run(run_id, Some(snapshot.head.seq))?;
        if &replayed != snapshot {
            return Err(Error::Corrupt(format!(
                "run {run_id}: replayed ledger differs from the stored state at seq {}",
                snapshot.head.seq
            )));
        }
        self.load_stored(run_id)?
            .ok_or_else(|| Error::Corrupt(format!("run {run_id}: state gone while checked")))
    }

    /// [`Store::check`] on sled: every run's chain, replay == stored state, the wait_key,
    /// timer, status, workflow and time indexes against the runs, and the global log
    /// recomputed from the records. Reads everything once.
    fn check_all(&self) -> Result<CheckReport, Error> {
        let mut report = CheckReport::default();
        for item in self.trees.runs.iter() {
            let (key, value) = item.map_err(sled_err)?;
            let run_id = keys::decode_run_id(&key)?;
            let snapshot = codec::decode_state(&value)?;
            if snapshot.run_id != run_id {
                return Err(Error::Corrupt(format!(
                    "run {run_id}: state names run {}",
                    snapshot.run_id
                )));
            }
            let state = self.check_run(run_id, &snapshot)?;
            report.records += state.head.seq;
            report.runs += 1;
            let corrupt = |what: &str| Error::Corrupt(format!("run {run_id}: {what}"));
            if !self
                .trees
                .status
                .contains_key(keys::status(state.status, run_id))
                .map_err(sled_err)?
            {
                return Err(corrupt("missing from the status index"));
            }
            let indexed = |tree: &sled::Tree, key: &[u8]| tree.contains_key(key).map_err(sled_err);
            if !indexed(
                &self.trees.by_workflow,
                &keys::workflow(&state.workflow_id, state.workflow_version, run_id),
            )? || !indexed(
                &self.trees.by_created,
                &keys::timer(state.created_at_ms, run_id),
            )? || !indexed(
                &self.trees.by_updated,
                &keys::timer(state.updated_at_ms, run_id),
            )? {
                return Err(corrupt(
                    "missing from the workflow, created or updated index",
                ));
            }
            if let Some(wait) = &state.waiting {
                if let Some(key) = &wait.wait_key {
                    let holder = self.trees.wait_keys.get(key.as_bytes()).map_err(sled_err)?;
                    if holder.as_deref() != Some(&run_id.as_bytes()[..]) {
                        return Err(corrupt("wait_key index does not point at the run"));
                    }
                }
                if let Some(due) = wait.until_ms {
                    if !self
                        .trees
                        .timers
                        .contains_key(keys::timer(due, run_id))
                        .map_err(sled_err)?
                    {
                        return Err(corrupt("timer missing from the timer index"));
                    }
                }
            }
        }
        let index_len = self.trees.status.len();
        if index_len as u64 != report.runs {
            return Err(Error::Corrupt(format!(
                "status index has {index_len} entries for {} runs",
                report.runs
            )));
        }
        for item in self.trees.wait_keys.iter() {
            let (key, value) = item.map_err(sled_err)?;
            let run_id = keys::decode_run_id(&value)?;
            let waits = self
                .load(run_id)?
                .is_some_and(|s| s.waits_on(&String::from_utf8_lossy(&key)));
            if !waits {
                return Err(Error::Corrupt(format!(
                    "wait_key index entry for run {run_id} that does not wait on it"
                )));
            }
        }
        report.orphaned_inboxes = ledgerflow_kernel::orphaned_inboxes(self, usize::MAX)?;
        report.log_leaves = self.check_log(report.records)?;
        Ok(report)
    }

    /// Recomputes the global log from the records, in feed order: every feed entry's leaf
    /// hash must be its record's, each record a leaf exactly once (so the log has as many
    /// leaves as the store has records), and the root of the stored subtrees must be the
    /// recomputed root. Returns the number of leaves.
    fn check_log(&self, records: u64) -> Result<u64, Error> {
        let mut frontier = Frontier::new();
        let mut nodes = 0u64;
        for item in self.trees.feed.iter() {
            let (key, value) = item.map_err(sled_err)?;
            let (entry, stored_leaf) = codec::decode_feed_leaf(keys::seq_suffix(&key)?, &value)?;
            let leaf_index = frontier.size();
            let corrupt = |what: String| {
                Error::Corrupt(format!(
                    "global log leaf {leaf_index} (record {} of run {}): {what}",
                    entry.seq, entry.run_id
                ))
            };
            if entry.feed_seq != leaf_index + 1 {
                return Err(corrupt(format!(
                    "the feed jumps to entry {}",
                    entry.feed_seq
                )));
            }
            let bytes = self
                .trees
                .records
                .get(keys::record(entry.run_id, entry.seq))
                .map_err(sled_err)?
                .ok_or_else(|| corrupt("the record is missing".into()))?;
            if codec::decode_record_leaf(&bytes)? != Some(leaf_index) {
                return Err(corrupt("the record names another leaf".into()));
            }
            let record = codec::decode_record(entry.run_id, &bytes)?;
            let leaf = merkle::leaf_hash(entry.run_id, entry.seq, &record.hash());
            if stored_leaf != Some(leaf.0) {
                return Err(corrupt("the stored leaf hash is not the record's".into()));
            }
            for (index, hash) in frontier.append(leaf) {
                if !stored_level(index) {
                    continue;
                }
                nodes += 1;
                let found = self.trees.log.get(index.to_be_bytes()).map_err(sled_err)?;
                if found.as_deref() != Some(&hash.0[..]) {
                    return Err(corrupt(format!(
                        "the stored subtree hash {index} is missing or wrong"
                    )));
                }
            }
        }
        if self.trees.log.len() as u64 != nodes {
            return Err(Error::Corrupt(format!(
                "the global log stores {} subtree hashes, {nodes} expected",
                self.trees.log.len()
            )));
        }
        if frontier.size() != records {
            return Err(Error::Corrupt(format!(
                "the global log has {} leaves for {records} records",
                frontier.size()
            )));
        }
        let stored = merkle::tree_root(frontier.size(), &NodeTree::of(&self.trees))
            .map_err(|e| Error::Corrupt(format!("the global log: {e}")))?;
        if stored != frontier.root() {
            return Err(Error::Corrupt(
                "the global log's stored subtrees do not hash to the root of its leaves".into(),
            ));
        }
        Ok(frontier.size())
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        self.stop_flusher();
        if let (Some(wal), false) = (&self.wal, self.closed.load(Ordering::SeqCst)) {
            // As `close` does; a failure leaves the log to be replayed on the next open.
            let _ = self.sync_and_trim_log(wal);
        } else if self.config.durability != Durability::None {
            if let Ok(Some(round)) = self.sync.sync_if_dirty() {
                self.checkpointer
                    .request(round.durable_size, round.durable_root);
            }
        }
        // Writes the checkpoint asked for last, and lets go of sled (the thread holds a
        // handle on its log tree).
        self.checkpointer.stop();
    }
}

/// One write of a step transaction: tree (its index in [`StepTrees`] order), key, and
/// the value (`None`: removed).
pub(crate) type Op = (u8, Vec<u8>, Option<Vec<u8>>);

/// A tree inside a step's writes; `id` is its position in [`Trees::step_trees`].
#[derive(Clone, Copy)]
struct Tx<'a> {
    target: Target<'a>,
    id: u8,
}

/// Where a step's writes go: a sled transaction (`Sync`, `Batched`, `None`: sled's
/// atomicity makes the step atomic), or, with the commit log, only the list of writes
/// (`ops`, in order, for the log entry), read back through `pending` until they are
/// applied to sled after the step (the log entry makes the step atomic; no sled
/// transaction, whose global lock stalls readers).
#[derive(Clone, Copy)]
enum Target<'a> {
    Transaction(&'a sled::transaction::TransactionalTree),
    Logged {
        tree: &'a sled::Tree,
        pending: &'a std::cell::RefCell<Pending>,
        ops: &'a std::cell::RefCell<Vec<Op>>,
    },
}

/// Writes of a logged step not yet applied to sled: (tree id, key) → value (`None`:
/// removed).
type Pending = std::collections::HashMap<(u8, Vec<u8>), Option<Vec<u8>>>;

type TxResult = Result<Option<sled::IVec>, sled::transaction::UnabortableTransactionError>;

impl Tx<'_> {
    fn get(&self, key: impl AsRef<[u8]>) -> TxResult {
        match self.target {
            Target::Transaction(tree) => tree.get(key.as_ref()),
            Target::Logged { tree, pending, .. } => {
                let key = key.as_ref();
                if let Some(value) = pending.borrow().get(&(self.id, key.to_vec())) {
                    return Ok(value.as_deref().map(sled::IVec::from));
                }
                Ok(tree.get(key)?)
            }
        }
    }

    /// Writes `value` (`None`: removes the key). The old value is not returned.
    fn write(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), sled::transaction::UnabortableTransactionError> {
        match self.target {
            Target::Transaction(tree) => match value {
                Some(value) => tree.insert(key, value).map(drop),
                None => tree.remove(key).map(drop),
            },
            Target::Logged { pending, ops, .. } => {
                let value = value.map(<[u8]>::to_vec);
                ops.borrow_mut()
                    .push((self.id, key.to_vec(), value.clone()));
                pending.borrow_mut().insert((self.id, key.to_vec()), value);
                Ok(())
            }
        }
    }

    fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), sled::transaction::UnabortableTransactionError> {
        self.write(key.as_ref(), Some(value.as_ref()))
    }

    fn remove(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<(), sled::transaction::UnabortableTransactionError> {
        self.write(key.as_ref(), None)
    }
}

/// The trees of one step's writes, in [`Trees::step_trees`] order.
struct StepTrees<'a> {
    runs: Tx<'a>,
    records: Tx<'a>,
    wait_keys: Tx<'a>,
    timers: Tx<'a>,
    status: Tx<'a>,
    inbox: Tx<'a>,
    inbox_meta: Tx<'a>,
    children: Tx<'a>,
    feed: Tx<'a>,
    by_workflow: Tx<'a>,
    by_created: Tx<'a>,
    by_updated: Tx<'a>,
    log: Tx<'a>,
    meta: Tx<'a>,
}

impl<'a> StepTrees<'a> {
    /// Each tree's handle from its position in [`Trees::step_trees`].
    fn from_fn(target: impl Fn(usize) -> Target<'a>) -> Self {
        let tx = |id: usize| Tx {
            target: target(id),
            id: id as u8,
        };
        StepTrees {
            runs: tx(0),
            records: tx(1),
            wait_keys: tx(2),
            timers: tx(3),
            status: tx(4),
            inbox: tx(5),
            inbox_meta: tx(6),
            children: tx(7),
            feed: tx(8),
            by_workflow: tx(9),
            by_created: tx(10),
            by_updated: tx(11),
            log: tx(12),
            meta: tx(13),
        }
    }
}

fn abort<T>(e: Error) -> Result<T, ConflictableTransactionError<Error>> {
    Err(ConflictableTransactionError::Abort(e))
}

/// The commit rules read the step's trees as the batch has left them so far.
impl IndexReader for StepTrees<'_> {
    type Error = ConflictableTransactionError<Error>;

    fn wait_key_holder(&self, wait_key: &str) -> Result<Option<RunId>, Self::Error> {
        match self.wait_keys.get(wait_key.as_bytes())? {
            Some(holder) => keys::decode_run_id(&holder).map(Some).or_else(abort),
            None => Ok(None),
        }
    }

    fn inbox_span(&self, wait_key: &str) -> Result<(u64, u64), Self::Error> {
        let meta = codec::decode_inbox_meta(self.inbox_meta.get(wait_key.as_bytes())?.as_deref())
            .or_else(abort)?;
        Ok((meta.head, meta.len()))
    }
}

/// A commit's values, encoded before the transaction so the closure (which sled may run
/// more than once) only moves bytes.
struct Encoded {
    /// The run state, when this commit writes a snapshot of it (see [`snapshot_due`]).
    state: Option<Vec<u8>>,
    records: Vec<([u8; 24], Vec<u8>)>,
    pushes: Vec<Vec<u8>>,
}

/// A commit waiting to be applied, and what happened to it: the feed seq of its last
/// record, or why it was refused.
struct Slot {
    /// The committing thread, woken when its commit is applied or it should lead.
    thread: std::thread::Thread,
    prepared: Prepared,
    outcome: Mutex<Option<Result<u64, Error>>>,
    /// With `Durability::Log`: the commit log entry that holds this commit's writes, the
    /// global log's size and root after its batch, and the size before it.
    logged: Mutex<Option<Logged>>,
}

/// Where a batch of commits went in the commit log, and the global log's size and root
/// after it.
#[derive(Clone, Copy)]
struct Logged {
    lsn: crate::wal::Lsn,
    size: u64,
    root: TreeHash,
}

/// A commit with its values encoded before the transaction, so the transaction closure
/// (which sled may run more than once) only moves bytes.
struct Prepared {
    commit: Commit,
    encoded: Encoded,
    feed_values: Vec<Vec<u8>>,
    /// Each record's leaf hash in the global log.
    leaf_hashes: Vec<TreeHash>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn prepare(commit: Commit) -> Result<Prepared, Error> {
    let encoded = Encoded {
        state: if snapshot_due(&commit) {
            Some(codec::encode_state(&commit.state)?)
        } else {
            None
        },
        records: commit
            .records
            .iter()
            .map(|r| {
                Ok((
                    keys::record(commit.run_id, r.seq()),
                    codec::encode_record(r, 0)?,
                ))
            })
            .collect::<Result<_, Error>>()?,
        pushes: commit
            .index
            .iter()
            .filter_map(|c| match c {
                IndexChange::InboxPush { payload, .. } => {
                    Some(codec::encode_inbox(payload, commit.at_ms))
                }
                _ => None,
            })
            .collect::<Result<_, Error>>()?,
    };
    let leaf_hashes: Vec<TreeHash> = commit
        .records
        .iter()
        .map(|r| merkle::leaf_hash(commit.run_id, r.seq(), &r.hash()))
        .collect();
    let feed_values = commit
        .records
        .iter()
        .zip(&leaf_hashes)
        .map(|(r, leaf)| {
            codec::encode_feed(&codec::FeedEnvelopeV2 {
                run_id: *commit.run_id.as_bytes(),
                seq: r.seq(),
                kind: r.kind().to_owned(),
                at_ms: r.at_ms(),
                leaf_hash: leaf.0,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Prepared {
        commit,
        encoded,
        feed_values,
        leaf_hashes,
    })
}

/// Checks one commit against what the transaction sees and writes it; its feed entries
/// get seqs from `first_feed_seq` on. Any refusal aborts the transaction before this
/// commit's first write is kept.
fn apply_prepared(
    t: &StepTrees<'_>,
    p: &Prepared,
    first_feed_seq: u64,
    inbox_max: u64,
) -> Result<(), ConflictableTransactionError<Error>> {
    let run_key = p.commit.run_id.as_bytes();
    let (actual_seq, head_hash) = stored_head(t, p.commit.run_id, p.commit.expected_seq)?;
    if actual_seq != p.commit.expected_seq {
        return abort(Error::Conflict {
            run_id: p.commit.run_id,
            expected_seq: p.commit.expected_seq,
            actual_seq,
        });
    }
    p.commit.check_shape(head_hash).or_else(abort)?;
    p.commit
        .check_index_rules(t, inbox_max as usize, ConflictableTransactionError::Abort)?;
    let mut pushes = p.encoded.pushes.iter();
    for change in &p.commit.index {
        match change {
            IndexChange::WaitKeySet(key) => {
                t.wait_keys.insert(key.as_bytes(), &run_key[..])?;
            }
            IndexChange::WaitKeyClear(key) => {
                if t.wait_keys.get(key.as_bytes())?.as_deref() == Some(&run_key[..]) {
                    t.wait_keys.remove(key.as_bytes())?;
                }
            }
            IndexChange::TimerSet(due) => {
                t.timers
                    .insert(&keys::timer(*due, p.commit.run_id)[..], &[][..])?;
            }
            IndexChange::TimerClear(due) => {
                t.timers.remove(&keys::timer(*due, p.commit.run_id)[..])?;
            }
            IndexChange::Status { from, to } => {
                if let Some(from) = from {
                    t.status.remove(&keys::status(*from, p.commit.run_id)[..])?;
                }
                t.status
                    .insert(&keys::status(*to, p.commit.run_id)[..], &[][..])?;
            }
            IndexChange::InboxConsume { wait_key, seq } => {
                // Checked by the index rules: `seq` is the oldest entry left.
                let mut meta =
                    codec::decode_inbox_meta(t.inbox_meta.get(wait_key.as_bytes())?.as_deref())
                        .or_else(abort)?;
                t.inbox.remove(keys::inbox(wait_key, *seq))?;
                meta.head += 1;
                t.inbox_meta.insert(
                    wait_key.as_bytes(),
                    codec::encode_inbox_meta(meta).or_else(abort)?,
                )?;
            }
            IndexChange::Workflow {
                workflow_id,
                version,
            } => {
                let key = keys::workflow(workflow_id, *version, p.commit.run_id);
                t.by_workflow.insert(key, &[][..])?;
            }
            IndexChange::Created(at_ms) => {
                t.by_created
                    .insert(&keys::timer(*at_ms, p.commit.run_id)[..], &[][..])?;
            }
            IndexChange::Updated { from, to } => {
                if let Some(from) = from {
                    t.by_updated
                        .remove(&keys::timer(*from, p.commit.run_id)[..])?;
                }
                t.by_updated
                    .insert(&keys::timer(*to, p.commit.run_id)[..], &[][..])?;
            }
            IndexChange::Child { parent } => {
                t.children
                    .insert(&keys::child(*parent, p.commit.run_id)[..], &[][..])?;
            }
            IndexChange::InboxPush { wait_key, .. } => {
                let value = pushes.next().cloned().unwrap_or_default();
                push_inbox(t, wait_key, value, inbox_max)?;
            }
        }
    }
    for (i, (key, value)) in p.encoded.records.iter().enumerate() {
        let mut value = value.clone();
        codec::set_record_leaf(&mut value, first_feed_seq - 1 + i as u64);
        t.records.insert(&key[..], value)?;
    }
    for (i, value) in p.feed_values.iter().enumerate() {
        let key = (first_feed_seq + i as u64).to_be_bytes();
        t.feed.insert(&key[..], value.as_slice())?;
    }
    if let Some(state) = &p.encoded.state {
        t.runs.insert(&run_key[..], state.as_slice())?;
    }
    Ok(())
}

/// How many records a run may be ahead of its stored state snapshot: a step that crosses
/// a multiple of this writes one (see [`snapshot_due`]), so loading a running run replays
/// fewer than this many records plus one commit's.
pub const STATE_SNAPSHOT_RECORDS: u64 = 16;

/// Whether a commit writes the run's state (the `runs` tree holds a snapshot, not always
/// the head): for a new run, when the run stops running (waits, ends), and when the step
/// crosses a multiple of [`STATE_SNAPSHOT_RECORDS`]. Other steps write only their records
/// and index changes; loading replays the records after the snapshot.
fn snapshot_due(commit: &Commit) -> bool {
    let new_seq = commit.state.head.seq;
    commit.expected_seq == 0
        || commit.state.status != RunStatus::Running
        || commit.state.waiting.is_some()
        || commit.expected_seq / STATE_SNAPSHOT_RECORDS != new_seq / STATE_SNAPSHOT_RECORDS
}

/// The run's stored ledger head: its last record's seq and hash ((0, genesis) for no
/// run), found from the records around `expected_seq` (the head the commit expects: two
/// reads when it is right).
fn stored_head(
    t: &StepTrees<'_>,
    run_id: RunId,
    expected_seq: u64,
) -> Result<(u64, Hash), ConflictableTransactionError<Error>> {
    let record = |seq: u64| t.records.get(keys::record(run_id, seq));
    let exists = |seq: u64| -> Result<bool, ConflictableTransactionError<Error>> {
        Ok(seq == 0 || record(seq)?.is_some())
    };
    let at_expected = match expected_seq {
        0 => None,
        seq => record(seq)?,
    };
    let last = if (expected_seq == 0 || at_expected.is_some()) && !exists(expected_seq + 1)? {
        expected_seq
    } else {
        // A conflict: find the last seq (records are contiguous from 1), galloping from
        // the expected one and then halving.
        let (mut low, mut high) = if expected_seq == 0 || at_expected.is_some() {
            let mut step = 1u64;
            let mut low = expected_seq + 1;
            while exists(low.saturating_add(step))? {
                low = low.saturating_add(step);
                step = step.saturating_mul(2);
            }
            (low, low.saturating_add(step))
        } else {
            (0, expected_seq)
        };
        // exists(low) and !exists(high)
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if exists(mid)? {
                low = mid;
            } else {
                high = mid;
            }
        }
        low
    };
    let hash = match last {
        0 => Hash::GENESIS,
        seq if seq == expected_seq => {
            codec::decode_record_hash(at_expected.as_deref().unwrap_or_default()).or_else(abort)?
        }
        seq => match record(seq)? {
            Some(bytes) => codec::decode_record_hash(&bytes).or_else(abort)?,
            None => Hash::GENESIS,
        },
    };
    Ok((last, hash))
}

/// A batch taken by a leader. Dropping it — after the batch is applied, or while
/// unwinding from a panic in the middle — wakes every committer of the batch, and gives
/// one that has no outcome yet an error instead of leaving it asleep.
struct Batch(Vec<Arc<Slot>>);

impl Drop for Batch {
    fn drop(&mut self) {
        for slot in &self.0 {
            lock(&slot.outcome).get_or_insert_with(|| {
                Err(Error::io_failed(
                    "the commit was not applied: applying its batch panicked",
                ))
            });
            if slot.thread.id() != std::thread::current().id() {
                slot.thread.unpark();
            }
        }
    }
}

/// The commit lock (the global log's right edge). Letting go of it wakes the thread of
/// the first commit still queued, which leads the next batch: committers that found the
/// lock taken sleep until woken, so whoever releases it must hand it on.
struct LogGuard<'a> {
    guard: Option<std::sync::MutexGuard<'a, Frontier>>,
    pending: &'a Mutex<Vec<Arc<Slot>>>,
}

impl std::ops::Deref for LogGuard<'_> {
    type Target = Frontier;
    fn deref(&self) -> &Frontier {
        self.guard.as_deref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for LogGuard<'_> {
    fn deref_mut(&mut self) -> &mut Frontier {
        self.guard.as_deref_mut().expect("held until dropped")
    }
}

impl Drop for LogGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        // A committer that queued after the batch was taken, and found the lock held.
        if let Some(next) = lock(self.pending).first() {
            next.thread.unpark();
        }
    }
}

/// What one commit adds to the global log: its first and last leaf, and the subtree
/// hashes to store (levels 4, 8, 12, …).
struct LogPlan {
    first_leaf: u64,
    end_leaf: u64,
    nodes: Vec<(u64, TreeHash)>,
}

/// Appends a commit's records to `frontier` (a copy until the transaction commits).
fn plan_log(frontier: &mut Frontier, p: &Prepared) -> LogPlan {
    let first_leaf = frontier.size();
    let mut nodes = Vec::new();
    for leaf in &p.leaf_hashes {
        nodes.extend(
            frontier
                .append(*leaf)
                .into_iter()
                .filter(|(index, _)| stored_level(*index)),
        );
    }
    LogPlan {
        first_leaf,
        end_leaf: frontier.size(),
        nodes,
    }
}

/// Whether the `log` tree keeps the subtree hash at this stored index: levels 4, 8, 12, …
fn stored_level(index: u64) -> bool {
    let (level, _) = split_stored_hash_index(index);
    level > 0 && level.is_multiple_of(LOG_LEVEL_STRIDE)
}

/// The `log` tree keeps every fourth level of subtrees; a level between is recomputed
/// from at most 2^3 hashes below it when read.
const LOG_LEVEL_STRIDE: u8 = 4;

/// With the commit log: records in sled the LSN of the entry this transaction's writes go
/// to (`meta/wal_lsn`).
fn note_lsn(
    t: &StepTrees<'_>,
    lsn: Option<crate::wal::Lsn>,
) -> Result<(), ConflictableTransactionError<Error>> {
    if let Some(lsn) = lsn {
        t.meta.insert(WAL_LSN_KEY, lsn.to_be_bytes())?;
    }
    Ok(())
}

fn write_log(t: &StepTrees<'_>, plan: &LogPlan) -> Result<(), ConflictableTransactionError<Error>> {
    for (index, hash) in &plan.nodes {
        t.log.insert(&index.to_be_bytes()[..], &hash.0[..])?;
    }
    Ok(())
}

impl SledStore {
    /// Applies a batch of commits: all in one transaction when they all pass, otherwise
    /// each in its own, so every commit gets exactly the outcome it would have had alone.
    fn apply_batch(&self, batch: &[Arc<Slot>], log: &mut Frontier) {
        // The entry's LSN, known now (appends happen under this lock): each transaction
        // records it in sled, so a replay after a crash starts after what sled has.
        let lsn = self.wal.as_ref().map(|wal| wal.next_lsn());
        let ops = self.apply_batch_ops(batch, log, lsn);
        self.remember_states(batch);
        let Some(wal) = &self.wal else {
            return;
        };
        if ops.is_empty() {
            return;
        }
        let logged = wal.append(&encode_ops(&ops)).map(|lsn| Logged {
            lsn,
            size: log.size(),
            root: log.root(),
        });
        if let Ok(logged) = &logged {
            lock(&self.logged_heads).insert(logged.lsn, (logged.size, logged.root));
        }
        for slot in batch {
            let mut outcome = lock(&slot.outcome);
            match (&logged, outcome.as_ref()) {
                (Ok(logged), Some(Ok(_))) => *lock(&slot.logged) = Some(*logged),
                (Err(e), Some(Ok(_))) => {
                    self.recent.forget(slot.prepared.commit.run_id);
                    *outcome = Some(Err(Error::io_failed(format!("the commit log: {e}"))))
                }
                _ => {}
            }
        }
    }

    /// The commit lock, if free now; see [`LogGuard`].
    fn try_lock_log(&self) -> Option<LogGuard<'_>> {
        let guard = match self.log.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(LogGuard {
            guard: Some(guard),
            pending: &self.pending,
        })
    }

    /// The commit lock, waiting for it; see [`LogGuard`].
    fn lock_log(&self) -> LogGuard<'_> {
        LogGuard {
            guard: Some(lock(&self.log)),
            pending: &self.pending,
        }
    }

    /// Keeps the new state of each commit of the batch that applied (under the commit
    /// lock, so no load sees a kept state older than sled's).
    fn remember_states(&self, batch: &[Arc<Slot>]) {
        for slot in batch {
            if matches!(lock(&slot.outcome).as_ref(), Some(Ok(_))) {
                self.recent.put(slot.prepared.commit.state.clone());
            }
        }
    }

    /// Applies the batch (see [`SledStore::apply_batch`]) and returns the writes of the
    /// transactions that committed, in order, when the commit log needs them.
    fn apply_batch_ops(
        &self,
        batch: &[Arc<Slot>],
        log: &mut Frontier,
        lsn: Option<crate::wal::Lsn>,
    ) -> Vec<Op> {
        let inbox_max = self.config.limits.inbox_entries_max as u64;
        if batch.len() > 1 {
            let mut after = log.clone();
            let plans: Vec<LogPlan> = batch
                .iter()
                .map(|slot| plan_log(&mut after, &slot.prepared))
                .collect();
            let combined = self.transact_logged(|t| {
                for (slot, plan) in batch.iter().zip(&plans) {
                    apply_prepared(t, &slot.prepared, plan.first_leaf + 1, inbox_max)?;
                    write_log(t, plan)?;
                }
                note_lsn(t, lsn)
            });
            if let Ok(((), ops)) = combined {
                for (slot, plan) in batch.iter().zip(&plans) {
                    *lock(&slot.outcome) = Some(Ok(plan.end_leaf));
                }
                *log = after;
                *lock(&self.applied) = log.clone();
                return ops;
            }
        }
        let mut all_ops = Vec::new();
        for slot in batch {
            let mut after = log.clone();
            let first = after.size() + 1;
            let plan = plan_log(&mut after, &slot.prepared);
            let outcome = self.transact_logged(|t| {
                apply_prepared(t, &slot.prepared, first, inbox_max)?;
                write_log(t, &plan)?;
                note_lsn(t, lsn)
            });
            let outcome = match outcome {
                Ok(((), ops)) => {
                    all_ops.extend(ops);
                    *log = after;
                    *lock(&self.applied) = log.clone();
                    Ok(log.size())
                }
                Err(e) => Err(e),
            };
            *lock(&slot.outcome) = Some(outcome);
        }
        all_ops
    }
}

impl Store for SledStore {
    fn commit(&self, commit: Commit) -> Result<(), Error> {
        self.check_writable()?;
        let slot = Arc::new(Slot {
            thread: std::thread::current(),
            prepared: prepare(commit)?,
            outcome: Mutex::new(None),
            logged: Mutex::new(None),
        });
        lock(&self.pending).push(Arc::clone(&slot));
        // Leader and followers: a committer that gets the commit lock applies every commit
        // queued so far, as one batch, and wakes their threads; the others sleep until
        // woken (their commit applied, or the lock free for them to lead). Sleeping on
        // the lock itself instead would wake the queued threads one by one through it.
        while lock(&slot.outcome).is_none() {
            match self.try_lock_log() {
                Some(mut log) => {
                    let batch = Batch(std::mem::take(&mut *lock(&self.pending)));
                    self.apply_batch(&batch.0, &mut log);
                }
                None => std::thread::park(),
            }
        }
        let outcome = lock(&slot.outcome).take();
        let last_feed_seq =
            outcome.unwrap_or_else(|| Err(Error::io_failed("commit was not applied")))?;
        // The wait for the device flush that makes this commit durable (shared with the
        // commits of its group).
        tracing::debug_span!("fsync_wait").in_scope(|| match (&self.wal, *lock(&slot.logged)) {
            (Some(wal), Some(logged)) => self.after_logged(wal, logged),
            _ => self.after_write(),
        })?;
        self.acked_feed_seq
            .fetch_max(last_feed_seq, Ordering::SeqCst);
        Ok(())
    }

    fn load(&self, run_id: RunId) -> Result<Option<RunState>, Error> {
        match self.recent.get(run_id) {
            Some(state) => Ok(Some(state)),
            None => self.load_stored(run_id),
        }
    }

    fn read_records(
        &self,
        run_id: RunId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        self.check_limit(limit)?;
        let start = keys::record(run_id, from_seq.max(1));
        let end = keys::record(run_id, u64::MAX);
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.trees.records.range(start..=end).take(limit) {
            let (key, value) = item.map_err(sled_err)?;
            let record = codec::decode_record(run_id, &value)?;
            if keys::seq_suffix(&key)? != record.seq() {
                return Err(Error::Corrupt(format!(
                    "run {run_id}: record key and seq disagree"
                )));
            }
            out.push(record);
        }
        Ok(out)
    }

    fn waiting_on(&self, wait_key: &str) -> Result<Option<RunId>, Error> {
        self.trees
            .wait_keys
            .get(wait_key.as_bytes())
            .map_err(sled_err)?
            .map(|v| keys::decode_run_id(&v))
            .transpose()
    }

    fn due_timers(
        &self,
        now_ms: i64,
        after: Option<TimerEntry>,
        limit: usize,
    ) -> Result<Vec<TimerEntry>, Error> {
        self.check_limit(limit)?;
        let end = keys::timer(now_ms, RunId::from_bytes([0xff; 16]));
        let start = match after {
            Some(after) => Bound::Excluded(keys::timer(after.due_at_ms, after.run_id).to_vec()),
            None => Bound::Unbounded,
        };
        self.trees
            .timers
            .range::<Vec<u8>, _>((start, Bound::Included(end.to_vec())))
            .take(limit)
            .map(|item| {
                let (key, _) = item.map_err(sled_err)?;
                let (due_at_ms, run_id) = keys::decode_timer(&key)?;
                Ok(TimerEntry { due_at_ms, run_id })
            })
            .collect()
    }

    fn next_timer(&self) -> Result<Option<TimerEntry>, Error> {
        match self.trees.timers.first().map_err(sled_err)? {
            Some((key, _)) => {
                let (due_at_ms, run_id) = keys::decode_timer(&key)?;
                Ok(Some(TimerEntry { due_at_ms, run_id }))
            }
            None => Ok(None),
        }
    }

    fn next_timer_after(&self, after_ms: i64) -> Result<Option<TimerEntry>, Error> {
        let Some(from_ms) = after_ms.checked_add(1) else {
            return Ok(None);
        };
        let start = keys::timer(from_ms, RunId::from_bytes([0; 16]));
        match self.trees.timers.range(&start[..]..).next() {
            Some(item) => {
                let (key, _) = item.map_err(sled_err)?;
                let (due_at_ms, run_id) = keys::decode_timer(&key)?;
                Ok(Some(TimerEntry { due_at_ms, run_id }))
            }
            None => Ok(None),
        }
    }

    fn inbox_keys(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, Error> {
        self.check_limit(limit)?;
        let start: Vec<u8> = match after {
            Some(after) => {
                let mut key = after.as_bytes().to_vec();
                key.push(0);
                key
            }
            None => Vec::new(),
        };
        let mut out = Vec::new();
        // Bounded by the number of keys that ever had an inbox; empty ones are skipped.
        for item in self.trees.inbox_meta.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item.map_err(sled_err)?;
            if !codec::decode_inbox_meta(Some(&value))?.is_empty() {
                let key = String::from_utf8(key.to_vec())
                    .map_err(|_| Error::Corrupt("inbox key is not UTF-8".into()))?;
                out.push(key);
            }
        }
        Ok(out)
    }

    fn deliver(&self, wait_key: &str, payload: Value, at_ms: i64) -> Result<Delivery, Error> {
        self.check_writable()?;
        let value = codec::encode_inbox(&payload, at_ms)?;
        let inbox_max = self.config.limits.inbox_entries_max as u64;
        // With the commit log, under the log lock: the log's order must be the order
        // the writes were applied in.
        let log = self.wal.as_ref().map(|_| self.lock_log());
        let lsn = self.wal.as_ref().map(|wal| wal.next_lsn());
        let (delivery, ops) = self.transact_logged(|t| {
            if let Some(holder) = t.wait_keys.get(wait_key.as_bytes())? {
                return Ok(Delivery::Waiter(
                    keys::decode_run_id(&holder).or_else(abort)?,
                ));
            }
            let queued = push_inbox(t, wait_key, value.clone(), inbox_max)?;
            note_lsn(t, lsn)?;
            Ok(Delivery::Queued(queued))
        })?;
        let lsn = match &self.wal {
            Some(wal) if !ops.is_empty() => Some(wal.append(&encode_ops(&ops))?),
            _ => None,
        };
        drop(log);
        match (&self.wal, lsn) {
            (Some(wal), Some(lsn)) => {
                wal.sync(lsn)?;
            }
            (Some(_), None) => {}
            (None, _) => {
                if let Delivery::Queued(_) = delivery {
                    self.after_write()?;
                }
            }
        }
        Ok(delivery)
    }

    fn inbox(&self, wait_key: &str, limit: usize) -> Result<Vec<InboxEntry>, Error> {
        self.check_limit(limit)?;
        self.trees
            .inbox
            .scan_prefix(keys::inbox_prefix(wait_key))
            .take(limit)
            .map(|item| {
                let (key, value) = item.map_err(sled_err)?;
                codec::decode_inbox(keys::seq_suffix(&key)?, &value)
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
        let after_key = |prefix: &[u8]| {
            let mut key = prefix.to_vec();
            if let Some(after) = after {
                key.extend_from_slice(after.as_bytes());
                key.push(0); // just past `after`
            }
            key
        };
        let ids = match status {
            Some(status) => {
                let prefix = [keys::status_byte(status)];
                let end = [keys::status_byte(status) + 1];
                self.trees
                    .status
                    .range(after_key(&prefix)..end.to_vec())
                    .take(limit)
                    .map(|item| keys::decode_run_id(&item.map_err(sled_err)?.0[1..]))
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => self
                .trees
                .runs
                .range(after_key(&[])..)
                .take(limit)
                .map(|item| keys::decode_run_id(&item.map_err(sled_err)?.0))
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(ids)
    }

    fn children(
        &self,
        parent: RunId,
        after: Option<RunId>,
        limit: usize,
    ) -> Result<Vec<RunId>, Error> {
        self.check_limit(limit)?;
        let start = match after {
            Some(after) => {
                let mut key = keys::child(parent, after).to_vec();
                key.push(0);
                key
            }
            None => parent.as_bytes().to_vec(),
        };
        let end = keys::child(parent, RunId::from_bytes([0xff; 16]));
        self.trees
            .children
            .range(start..=end.to_vec())
            .take(limit)
            .map(|item| keys::decode_run_id(&item.map_err(sled_err)?.0[16..]))
            .collect()
    }

    fn put_artifact(
        &self,
        bytes: &[u8],
        media_type: &str,
        run_id: Option<RunId>,
    ) -> Result<ArtifactRef, Error> {
        SledStore::put_artifact(self, bytes, media_type, run_id)
    }

    fn get_artifact(&self, digest: &Hash) -> Result<Option<Vec<u8>>, Error> {
        SledStore::get_artifact(self, digest)
    }

    fn runs_by_workflow(
        &self,
        workflow_id: &str,
        version: Option<u32>,
        after: Option<(u32, RunId)>,
        limit: usize,
    ) -> Result<Vec<(u32, RunId)>, Error> {
        self.check_limit(limit)?;
        let prefix = keys::workflow_prefix(workflow_id);
        let start = match after {
            Some((v, id)) => {
                let mut key = keys::workflow(workflow_id, v, id);
                key.push(0);
                key
            }
            None => {
                let mut key = prefix.clone();
                key.extend_from_slice(&version.unwrap_or(0).to_be_bytes());
                key
            }
        };
        let mut out = Vec::new();
        for item in self.trees.by_workflow.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (key, _) = item.map_err(sled_err)?;
            if !key.starts_with(&prefix) {
                break;
            }
            let (v, id) = keys::decode_workflow_suffix(&key[prefix.len()..])?;
            if version.is_some_and(|want| want != v) {
                break;
            }
            out.push((v, id));
        }
        Ok(out)
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
        let tree = self.time_index(field);
        let start = match after {
            Some((at, id)) => {
                let mut key = keys::timer(at, id).to_vec();
                key.push(0);
                key
            }
            None => keys::timer(from_ms, RunId::from_bytes([0; 16])).to_vec(),
        };
        let end = keys::timer(to_ms, RunId::from_bytes([0xff; 16])).to_vec();
        tree.range(start..=end)
            .take(limit)
            .map(|item| keys::decode_timer(&item.map_err(sled_err)?.0))
            .collect()
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
        let tree = self.time_index(field);
        let start = keys::timer(from_ms, RunId::from_bytes([0; 16])).to_vec();
        let end = match before {
            Some((at, id)) => Bound::Excluded(keys::timer(at, id).to_vec()),
            None => Bound::Included(keys::timer(to_ms, RunId::from_bytes([0xff; 16])).to_vec()),
        };
        tree.range((Bound::Included(start), end))
            .rev()
            .take(limit)
            .map(|item| keys::decode_timer(&item.map_err(sled_err)?.0))
            .collect()
    }

    fn count_by_status(&self) -> Result<Vec<(RunStatus, u64)>, Error> {
        let mut out = Vec::new();
        for status in RunStatus::ALL {
            // Counts index keys only; no run is read.
            let count = self
                .trees
                .status
                .scan_prefix([keys::status_byte(status)])
                .keys()
                .count() as u64;
            if count > 0 {
                out.push((status, count));
            }
        }
        Ok(out)
    }

    fn store_id(&self) -> [u8; 16] {
        self.store_id
    }

    fn read_feed(&self, after_feed_seq: u64, limit: usize) -> Result<Vec<FeedEntry>, Error> {
        self.check_limit(limit)?;
        let Some(start) = after_feed_seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        let acked = self.acked_feed_seq.load(Ordering::SeqCst);
        self.trees
            .feed
            .range(start.to_be_bytes()..=acked.to_be_bytes())
            .take(limit)
            .map(|item| {
                let (key, value) = item.map_err(sled_err)?;
                codec::decode_feed(keys::seq_suffix(&key)?, &value)
            })
            .collect()
    }

    fn feed_head(&self) -> Result<u64, Error> {
        Ok(self.acked_feed_seq.load(Ordering::SeqCst))
    }

    fn log_nodes(&self, indexes: &[u64]) -> Result<Vec<TreeHash>, Error> {
        NodeTree::of(&self.trees)
            .read_nodes(indexes)
            .map_err(Error::Corrupt)
    }

    fn leaf_index(&self, run_id: RunId, seq: u64) -> Result<Option<u64>, Error> {
        match self
            .trees
            .records
            .get(keys::record(run_id, seq))
            .map_err(sled_err)?
        {
            Some(bytes) => codec::decode_record_leaf(&bytes),
            None => Ok(None),
        }
    }

    fn close(&self) -> Result<(), Error> {
        SledStore::close(self)
    }

    fn create_snapshot(&self, snapshot: &Snapshot) -> Result<(), Error> {
        self.put_snapshot(snapshot)
    }

    fn snapshot(&self, run_id: RunId, name: &str) -> Result<Option<Snapshot>, Error> {
        self.get_snapshot(run_id, name)
    }

    fn list_snapshots(
        &self,
        filter: &SnapshotFilter,
        limit: usize,
    ) -> Result<Vec<Snapshot>, Error> {
        self.find_snapshots(filter, limit)
    }

    fn check(&self) -> Result<CheckReport, Error> {
        self.check_all()
    }

    fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, Error> {
        crate::checkpoint::latest_checkpoint(self.dir())
    }

    fn checkpoint_public_key(&self) -> Result<Option<CheckpointKey>, Error> {
        crate::checkpoint::public_key(self.dir())
    }

    fn limits(&self) -> StoreLimits {
        self.config.limits
    }
}

/// Appends an encoded entry to a key's inbox inside a transaction; returns its seq.
fn push_inbox(
    t: &StepTrees<'_>,
    wait_key: &str,
    value: Vec<u8>,
    entries_max: u64,
) -> Result<u64, ConflictableTransactionError<Error>> {
    let mut meta: InboxMetaV1 =
        codec::decode_inbox_meta(t.inbox_meta.get(wait_key.as_bytes())?.as_deref())
            .or_else(abort)?;
    if meta.len() >= entries_max {
        return abort(Error::InboxFull {
            wait_key: wait_key.to_owned(),
            entries_max: entries_max as usize,
        });
    }
    if meta.is_empty() {
        meta.head = meta.tail + 1;
    }
    meta.tail += 1;
    t.inbox.insert(keys::inbox(wait_key, meta.tail), value)?;
    t.inbox_meta.insert(
        wait_key.as_bytes(),
        codec::encode_inbox_meta(meta).or_else(abort)?,
    )?;
    Ok(meta.tail)
}

/// The global log's stored hashes, read from the feed (leaves), the `log` tree (levels 4,
/// 8, 12, …) and recomputed between.
#[derive(Clone)]
struct NodeTree {
    feed: sled::Tree,
    log: sled::Tree,
}

impl NodeTree {
    fn of(trees: &Trees) -> Self {
        NodeTree {
            feed: trees.feed.clone(),
            log: trees.log.clone(),
        }
    }

    /// The hash of the complete subtree `n` at `level`.
    fn node(&self, level: u8, n: u64) -> Result<TreeHash, String> {
        if level == 0 {
            let feed_seq = n + 1;
            return match self.feed.get(feed_seq.to_be_bytes()) {
                Ok(Some(bytes)) => match codec::decode_feed_leaf(feed_seq, &bytes) {
                    Ok((_, Some(leaf))) => Ok(TreeHash(leaf)),
                    Ok((_, None)) => Err(format!("feed entry {feed_seq} has no leaf hash")),
                    Err(e) => Err(e.to_string()),
                },
                Ok(None) => Err(format!(
                    "global log leaf {n} (feed entry {feed_seq}) is missing"
                )),
                Err(e) => Err(format!("reading feed entry {feed_seq}: {e}")),
            };
        }
        if level.is_multiple_of(LOG_LEVEL_STRIDE) {
            let index = stored_hash_index(level, n);
            return match self.log.get(index.to_be_bytes()) {
                Ok(Some(bytes)) => <[u8; 32]>::try_from(bytes.as_ref())
                    .map(TreeHash)
                    .map_err(|_| format!("global log hash {index} is damaged")),
                Ok(None) => Err(format!("global log hash {index} is missing")),
                Err(e) => Err(format!("reading global log hash {index}: {e}")),
            };
        }
        Ok(merkle::node_hash(
            self.node(level - 1, 2 * n)?,
            self.node(level - 1, 2 * n + 1)?,
        ))
    }
}

impl NodeReader for NodeTree {
    fn read_nodes(&self, indexes: &[u64]) -> Result<Vec<TreeHash>, String> {
        indexes
            .iter()
            .map(|index| {
                let (level, n) = split_stored_hash_index(*index);
                self.node(level, n)
            })
            .collect()
    }
}

/// Loads the global log's right edge for a store whose feed ends at `size`. A store of
/// format 1 (before the global log) gets its log built from its feed and records, once:
/// feed entries and records are rewritten with their leaf hash and index.
fn load_log(
    dir: &Path,
    trees: &Trees,
    size: u64,
    format_1: bool,
    sync: &GroupSync,
) -> Result<Frontier, Error> {
    let nodes = NodeTree::of(trees);
    if let Some((key, _)) = trees.log.last().map_err(sled_err)? {
        let index = keys::seq_suffix(&key)?;
        let (level, n) = split_stored_hash_index(index);
        if (n + 1) << level > size {
            return Err(Error::Corrupt(format!(
                "{}: the global log has a subtree past the feed's last entry ({size}): the \
                 feed lost entries",
                dir.display()
            )));
        }
    }
    if !format_1 {
        return Frontier::load(size, &nodes)
            .map_err(|e| Error::Corrupt(format!("{}: the global log: {e}", dir.display())));
    }
    let mut frontier = Frontier::new();
    for item in trees.feed.iter() {
        let (key, value) = item.map_err(sled_err)?;
        let entry = codec::decode_feed(keys::seq_suffix(&key)?, &value)?;
        if entry.feed_seq != frontier.size() + 1 {
            return Err(Error::Corrupt(format!(
                "{}: feed entry {} follows {}",
                dir.display(),
                entry.feed_seq,
                frontier.size()
            )));
        }
        let record_key = keys::record(entry.run_id, entry.seq);
        let bytes = trees
            .records
            .get(record_key)
            .map_err(sled_err)?
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "{}: feed entry {} names record {} of run {}, which is missing",
                    dir.display(),
                    entry.feed_seq,
                    entry.seq,
                    entry.run_id
                ))
            })?;
        let record = codec::decode_record(entry.run_id, &bytes)?;
        let leaf = merkle::leaf_hash(entry.run_id, entry.seq, &record.hash());
        trees
            .records
            .insert(
                &record_key[..],
                codec::encode_record(&record, frontier.size())?,
            )
            .map_err(sled_err)?;
        trees
            .feed
            .insert(
                &key,
                codec::encode_feed(&codec::FeedEnvelopeV2 {
                    run_id: *entry.run_id.as_bytes(),
                    seq: entry.seq,
                    kind: entry.kind,
                    at_ms: entry.at_ms,
                    leaf_hash: leaf.0,
                })?,
            )
            .map_err(sled_err)?;
        for (index, hash) in frontier.append(leaf) {
            if stored_level(index) {
                trees
                    .log
                    .insert(&index.to_be_bytes()[..], &hash.0[..])
                    .map_err(sled_err)?;
            }
        }
    }
    if frontier.size() != size {
        return Err(Error::Corrupt(format!(
            "{}: the feed has {} entries but ends at {size}",
            dir.display(),
            frontier.size()
        )));
    }
    trees
        .meta
        .insert("format", STORE_FORMAT)
        .map_err(sled_err)?;
    sync.sync()?;
    Ok(frontier)
}

/// The commit log's folder in a store directory.
const WAL_DIR: &str = "wal";

/// Size of a commit log segment (8 MiB, preallocated).
const WAL_SEGMENT_BYTES: u64 = 8 << 20;

/// Encodes a transaction's writes as a commit log entry: a count (u32 LE), then per write
/// the tree (u8), the key length (u32 LE) and key, and the value length (u32 LE, or
/// `u32::MAX` for a removal) and value.
fn encode_ops(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        4 + ops
            .iter()
            .map(|(_, k, v)| 9 + k.len() + v.as_ref().map_or(0, Vec::len))
            .sum::<usize>(),
    );
    out.extend_from_slice(&(ops.len() as u32).to_le_bytes());
    for (tree, key, value) in ops {
        out.push(*tree);
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        match value {
            Some(value) => {
                out.extend_from_slice(&(value.len() as u32).to_le_bytes());
                out.extend_from_slice(value);
            }
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
    }
    out
}

fn decode_ops(bytes: &[u8]) -> Result<Vec<Op>, Error> {
    let bad = || Error::Corrupt("a commit log entry does not decode".into());
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], Error> {
        let slice = bytes.get(at..at + n).ok_or_else(bad)?;
        at += n;
        Ok(slice)
    };
    let u32_of = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let count = u32_of(take(4)?) as usize;
    let mut ops = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let tree = take(1)?[0];
        let key_len = u32_of(take(4)?) as usize;
        let key = take(key_len)?.to_vec();
        let value_len = u32_of(take(4)?);
        let value = if value_len == u32::MAX {
            None
        } else {
            Some(take(value_len as usize)?.to_vec())
        };
        ops.push((tree, key, value));
    }
    if at != bytes.len() {
        return Err(bad());
    }
    Ok(ops)
}

/// Applies writes to sled's trees (by [`Trees::step_trees`] id) in order, outside any
/// transaction: the commit log entry holding them is what makes them atomic.
fn apply_ops<'a>(
    trees: &[&sled::Tree; 14],
    ops: impl Iterator<Item = (u8, &'a [u8], Option<&'a [u8]>)>,
) -> Result<(), Error> {
    for (tree, key, value) in ops {
        let tree = trees[usize::from(tree)];
        match value {
            Some(value) => tree.insert(key, value).map(drop),
            None => tree.remove(key).map(drop),
        }
        .map_err(sled_err)?;
    }
    Ok(())
}

/// The `meta` key that holds the LSN of the last commit log entry whose writes sled holds.
const WAL_LSN_KEY: &[u8] = b"wal_lsn";

/// The `meta` key that holds the LSN of the last commit log entry whose writes a sled
/// flush and fsync had made durable before the key was written.
const WAL_SYNCED_KEY: &[u8] = b"wal_synced";

/// Replays the commit log into sled — the entries after the last one whose writes sled
/// already holds (`meta/wal_lsn`, written in the same transactions), in order — then
/// makes sled durable and removes the log. With `Durability::Log` a new log starts after
/// both, for new commits.
fn replay_commit_log(
    dir: &Path,
    trees: &Trees,
    sync: &GroupSync,
    durability: &Durability,
) -> Result<Option<Arc<Wal>>, Error> {
    let wal_dir = dir.join(WAL_DIR);
    let logging = matches!(durability, Durability::Log { .. });
    let in_sled = match trees.meta.get(WAL_LSN_KEY).map_err(sled_err)? {
        Some(bytes) => {
            u64::from_be_bytes(<[u8; 8]>::try_from(bytes.as_ref()).map_err(|_| {
                Error::Corrupt(format!("{}: meta/wal_lsn is damaged", dir.display()))
            })?)
        }
        None => 0,
    };
    // Commit log writes reach sled outside transactions, so what sled recovered may hold
    // some writes of entries after `in_sled` and miss some before it: replay from the
    // last entry known to be durable in sled (redoing writes sled has is harmless: each
    // sets a key's final value, in order).
    let synced = match trees.meta.get(WAL_SYNCED_KEY).map_err(sled_err)? {
        Some(bytes) => u64::from_be_bytes(<[u8; 8]>::try_from(bytes.as_ref()).map_err(|_| {
            Error::Corrupt(format!("{}: meta/wal_synced is damaged", dir.display()))
        })?),
        None => 0,
    };
    let mut next_lsn = in_sled + 1;
    if wal_dir.exists() {
        let (wal, entries) = Wal::open(&wal_dir, WAL_SEGMENT_BYTES, synced.min(in_sled) + 1)?;
        let by_id = trees.step_trees();
        let replayed = !entries.is_empty();
        for (lsn, entry) in entries {
            let ops = decode_ops(&entry)?;
            if let Some((tree, _, _)) = ops.iter().find(|(t, _, _)| usize::from(*t) >= by_id.len())
            {
                return Err(Error::Corrupt(format!(
                    "commit log entry {lsn} names tree {tree}"
                )));
            }
            apply_ops(
                &by_id,
                ops.iter().map(|(t, k, v)| (*t, k.as_slice(), v.as_deref())),
            )?;
        }
        next_lsn = next_lsn.max(wal.next_lsn());
        drop(wal);
        if replayed {
            for key in [WAL_LSN_KEY, WAL_SYNCED_KEY] {
                trees
                    .meta
                    .insert(key, &(next_lsn - 1).to_be_bytes()[..])
                    .map_err(sled_err)?;
            }
        }
        // Everything is in sled now; durable before the log goes.
        sync.sync()?;
        std::fs::remove_dir_all(&wal_dir)
            .map_err(|e| io(&format!("removing {}", wal_dir.display()), e))?;
        sync_dir(dir).map_err(|e| io("fsync of the store directory", e))?;
    }
    if !logging {
        return Ok(None);
    }
    let (wal, _) = Wal::open_at(&wal_dir, WAL_SEGMENT_BYTES, next_lsn)?;
    Ok(Some(Arc::new(wal)))
}
