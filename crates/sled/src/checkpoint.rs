//! Signed checkpoints of a sled store's global Merkle log, kept outside sled's files: the
//! signing key, the append-only checkpoint log (`checkpoints.log`), the background
//! checkpointer that signs each durable tree head, and the check on open that the data is
//! not behind the last checkpoint.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use ledgerflow_kernel::store::Error;
use ledgerflow_ledger::checkpoint::{
    self, CheckpointKey, CheckpointSigner, SignedCheckpoint, TreeHead,
};
use ledgerflow_ledger::merkle::{self, NodeReader, TreeHash};

use crate::sync::sync_dir;

/// The checkpoint log, beside sled's files.
pub const CHECKPOINT_LOG_FILE: &str = "checkpoints.log";
/// The default signing key file: the private key line, then the public key line.
pub const KEY_FILE: &str = "checkpoint.key";
/// The public key, written beside the private one for operators to publish.
pub const PUBLIC_KEY_FILE: &str = "checkpoint.pub";
/// Public keys of retired signing keys, one per line: checkpoints they signed still
/// verify on open after a key rotation.
pub const RETIRED_KEYS_FILE: &str = "checkpoint.retired";

/// How checkpoints are signed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Signing {
    /// Ed25519 with the key in `<store dir>/checkpoint.key`, made on first open.
    #[default]
    StoreKey,
    /// Ed25519 with the key in this file (made there on first open if missing). Keep it
    /// outside the store's directory so that whoever can write the store cannot sign.
    KeyFile(PathBuf),
    /// No signatures: checkpoints still detect a store that lost data on open, but prove
    /// nothing to anyone else. For tests only.
    Unsigned,
}

/// When checkpoints are written and how big the log may grow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// How checkpoints are signed. Default: a key made in the store's directory.
    pub signing: Signing,
    /// The checkpoint log is rotated (to `checkpoints.log.1`, replacing an older one)
    /// when it would grow past this. Default 64 MiB: about 300,000 checkpoints.
    pub log_bytes_max: u64,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            signing: Signing::StoreKey,
            log_bytes_max: 64 << 20,
        }
    }
}

fn io(context: String, e: std::io::Error) -> Error {
    Error::io(context, e)
}

/// Loads the signing key from `path` (a private key line, then the public key line),
/// making a new one named `name` there, owner-only and fsynced, if the file is missing.
pub fn load_or_make_key(path: &Path, name: &str) -> Result<CheckpointSigner, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut lines = text.lines();
            let (Some(private), Some(public)) = (lines.next(), lines.next()) else {
                return Err(Error::Corrupt(format!(
                    "{}: a checkpoint key file holds a private and a public key line",
                    path.display()
                )));
            };
            CheckpointSigner::new(private, public)
                .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed)
                .map_err(|e| Error::io_failed(format!("reading the OS's random source: {e}")))?;
            let (private, public) = CheckpointSigner::generate(name, seed)
                .map_err(|e| Error::InvalidInput(e.to_string()))?;
            write_new_file(path, &format!("{private}\n{public}\n"), true)?;
            let signer = CheckpointSigner::new(&private, &public)
                .map_err(|e| Error::io_failed(format!("new key does not load: {e}")))?;
            Ok(signer)
        }
        Err(e) => Err(io(format!("reading {}", path.display()), e)),
    }
}

/// Creates `path` with `text`, fsynced with its directory; `secret` makes it owner-only.
fn write_new_file(path: &Path, text: &str, secret: bool) -> Result<(), Error> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options
        .open(path)
        .map_err(|e| io(format!("creating {}", path.display()), e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io(format!("writing {}", path.display()), e))?;
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(dir).map_err(|e| io(format!("fsync of {}", dir.display()), e))?;
    }
    Ok(())
}

/// The public key in the store's `checkpoint.pub`, if it has one (an unsigned store
/// does not).
pub fn public_key(dir: &Path) -> Result<Option<CheckpointKey>, Error> {
    let path = dir.join(PUBLIC_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => CheckpointKey::parse(&text)
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("reading {}", path.display()), e)),
    }
}

/// The public keys a store's checkpoints may be signed with: the current one and any
/// retired ones. With no current key (an unsigned open, or a copy made for inspection),
/// the public key in `checkpoint.pub` is the current one.
pub(crate) fn trusted_keys(
    dir: &Path,
    current: Option<&CheckpointKey>,
) -> Result<Vec<CheckpointKey>, Error> {
    let mut keys: Vec<CheckpointKey> = current.into_iter().cloned().collect();
    if keys.is_empty() {
        keys.extend(public_key(dir)?);
    }
    let path = dir.join(RETIRED_KEYS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                keys.push(
                    CheckpointKey::parse(line)
                        .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?,
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("reading {}", path.display()), e)),
    }
    Ok(keys)
}

/// One checkpoint log file as read: its checkpoints, where its complete entries end,
/// where its written part ends (a torn entry lies between the two), and its length (the
/// rest is preallocated zeros).
pub(crate) struct LogFile {
    checkpoints: Vec<SignedCheckpoint>,
    end: u64,
    written: u64,
    allocated: u64,
}

/// Reads a checkpoint log file; `None` if there is none.
pub(crate) fn read_log_file(path: &Path) -> Result<Option<LogFile>, Error> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("reading {}", path.display()), e)),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        Error::Corrupt(format!(
            "{}: the checkpoint log is not UTF-8",
            path.display()
        ))
    })?;
    // The log is preallocated: its entries are followed by zeros.
    let written = text.trim_end_matches('\0');
    let (checkpoints, torn) = checkpoint::split_log(written)
        .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
    Ok(Some(LogFile {
        checkpoints,
        end: (written.len() - torn.as_ref().map_or(0, String::len)) as u64,
        written: written.len() as u64,
        allocated: bytes.len() as u64,
    }))
}

/// Reads every checkpoint of the store in `dir`: the rotated log's, then the current
/// log's, oldest first. A torn last entry (a crash while appending) is left out.
pub fn read_checkpoints(dir: &Path) -> Result<Vec<SignedCheckpoint>, Error> {
    let mut all = Vec::new();
    for path in [rotated_log(dir), dir.join(CHECKPOINT_LOG_FILE)] {
        all.extend(
            read_log_file(&path)?
                .map(|log| log.checkpoints)
                .unwrap_or_default(),
        );
    }
    Ok(all)
}

fn rotated_log(dir: &Path) -> PathBuf {
    dir.join(format!("{CHECKPOINT_LOG_FILE}.1"))
}

/// The current checkpoint log as read on open, and the latest checkpoint (from the
/// rotated log when the current one has none yet): read once, for the check on open
/// and for the writer.
pub(crate) fn read_for_open(
    dir: &Path,
) -> Result<(Option<LogFile>, Option<SignedCheckpoint>), Error> {
    let current = read_log_file(&dir.join(CHECKPOINT_LOG_FILE))?;
    let latest = match current.as_ref().and_then(|log| log.checkpoints.last()) {
        Some(latest) => Some(latest.clone()),
        None => {
            read_log_file(&rotated_log(dir))?.and_then(|log| log.checkpoints.into_iter().last())
        }
    };
    Ok((current, latest))
}

/// The latest checkpoint of the store in `dir`, if any.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<SignedCheckpoint>, Error> {
    Ok(read_checkpoints(dir)?.pop())
}

/// Checks sled's data against the latest checkpoint: it must hold at least that many
/// leaves, with the same root at that size, and the checkpoint must verify with a
/// trusted key. Otherwise the store lost or changed acknowledged records.
pub(crate) fn check_against_latest(
    dir: &Path,
    latest: Option<&SignedCheckpoint>,
    origin: &str,
    size: u64,
    nodes: &impl NodeReader,
    keys: &[CheckpointKey],
) -> Result<(), Error> {
    let Some(latest) = latest else {
        return Ok(());
    };
    let log = dir.join(CHECKPOINT_LOG_FILE);
    let recovery = "Nothing was changed. Keep this directory as evidence, restore the store \
                    from a backup taken after that checkpoint, or read what is left from a \
                    copy (docs/operations.md, \"A store behind its checkpoint\")";
    if latest.head.origin != origin {
        return Err(Error::Corrupt(format!(
            "{}: the last checkpoint is for log {}, but this store's log is {origin} \
             (files of two stores mixed?). {recovery}",
            log.display(),
            latest.head.origin
        )));
    }
    if latest.signed && !keys.is_empty() && !keys.iter().any(|k| latest.verify(k).is_ok()) {
        return Err(Error::Corrupt(format!(
            "{}: the last checkpoint (size {}) is not signed by this store's key {} or a \
             retired one. {recovery}",
            log.display(),
            latest.head.size,
            keys.first().map(|k| k.id()).unwrap_or_default()
        )));
    }
    if size < latest.head.size {
        return Err(Error::Corrupt(format!(
            "{}: the store holds {size} records in its global log, but the last checkpoint \
             in {} (tree size {}, root {}) signed {} of them: records at leaves {size}..{} \
             are missing (lost by the storage engine or removed). {recovery}",
            dir.display(),
            log.display(),
            latest.head.size,
            merkle::tree_hash_hex(&latest.head.root),
            latest.head.size,
            latest.head.size - 1
        )));
    }
    let root = merkle::tree_root(latest.head.size, nodes)
        .map_err(|e| Error::Corrupt(format!("{}: the global log: {e}", dir.display())))?;
    if root != latest.head.root {
        return Err(Error::Corrupt(format!(
            "{}: the first {} records of the global log do not hash to the root the last \
             checkpoint in {} signed ({}): acknowledged records were changed or replaced. \
             {recovery}",
            dir.display(),
            latest.head.size,
            log.display(),
            merkle::tree_hash_hex(&latest.head.root)
        )));
    }
    Ok(())
}

/// How much the checkpoint log grows at a time. The space is written (with zeros) and
/// fsynced when it is added, so appending a checkpoint changes no file metadata and its
/// `fdatasync` is a plain data flush.
const PREALLOCATE_BYTES: u64 = 1 << 20;

/// Appends checkpoints to the log and fsyncs them.
struct LogWriter {
    dir: PathBuf,
    file: File,
    /// Where the next entry goes: the end of the last complete entry.
    position: u64,
    /// The file's length (entries, then zeros).
    allocated: u64,
    bytes_max: u64,
}

impl LogWriter {
    /// Opens the log, finds the end of its last complete entry, and zeroes a torn entry
    /// after it (a crash while appending; it was never acknowledged), so the next entry
    /// follows the complete ones.
    fn open(dir: &Path, bytes_max: u64, found: Option<LogFile>) -> Result<Self, Error> {
        let path = dir.join(CHECKPOINT_LOG_FILE);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(format!("opening {}", path.display()), e))?;
        if found.is_none() {
            sync_dir(dir).map_err(|e| io(format!("fsync of {}", dir.display()), e))?;
        }
        let (end, written, allocated) =
            found.map_or((0, 0, 0), |f| (f.end, f.written, f.allocated));
        let mut writer = LogWriter {
            dir: dir.to_owned(),
            file,
            position: end,
            allocated,
            bytes_max,
        };
        if end < written {
            let zeros = vec![0u8; (written - end) as usize];
            writer
                .write_at(end, &zeros)
                .and_then(|()| writer.file.sync_data())
                .map_err(|e| io(format!("clearing a torn entry of {}", path.display()), e))?;
        }
        Ok(writer)
    }

    fn write_at(&mut self, at: u64, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(at))?;
        self.file.write_all(bytes)
    }

    fn append(&mut self, checkpoint: &SignedCheckpoint) -> Result<(), String> {
        let entry = checkpoint::log_entry(checkpoint);
        let len = entry.len() as u64;
        if self.position > 0 && self.position + len > self.bytes_max {
            self.rotate()?;
        }
        if self.position + len > self.allocated {
            let grown = (self.position + len).max(self.allocated + PREALLOCATE_BYTES);
            let zeros = vec![0u8; (grown - self.allocated) as usize];
            self.write_at(self.allocated, &zeros)
                .and_then(|()| self.file.sync_all())
                .map_err(|e| format!("growing {CHECKPOINT_LOG_FILE}: {e}"))?;
            self.allocated = grown;
        }
        self.write_at(self.position, entry.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("appending to {CHECKPOINT_LOG_FILE}: {e}"))?;
        self.position += len;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), String> {
        let current = self.dir.join(CHECKPOINT_LOG_FILE);
        let old = rotated_log(&self.dir);
        std::fs::rename(&current, &old).map_err(|e| format!("rotating the checkpoint log: {e}"))?;
        self.file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&current)
            .map_err(|e| format!("opening {}: {e}", current.display()))?;
        sync_dir(&self.dir).map_err(|e| format!("fsync of {}: {e}", self.dir.display()))?;
        self.position = 0;
        self.allocated = 0;
        Ok(())
    }
}

#[derive(Default)]
struct State {
    /// The largest durable tree size asked to be checkpointed, and its root.
    wanted: u64,
    wanted_root: TreeHash,
    /// The size of the last checkpoint written and fsynced.
    done: u64,
    /// The first failure; later waits report it.
    failed: Option<String>,
    stop: bool,
    /// Test hook: the next checkpoint write fails.
    fail_next: bool,
}

/// The background thread that signs and appends a checkpoint for each durable tree size
/// it is told about, newest first (sizes asked for while it works are folded into one).
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    handle: Mutex<Option<JoinHandle<()>>>,
    public_key: Option<CheckpointKey>,
}

impl Checkpointer {
    /// Starts the thread, appending to the current log as [`read_for_open`] found it.
    /// `done` is the size of the latest checkpoint on disk.
    pub(crate) fn start(
        dir: &Path,
        found: Option<LogFile>,
        origin: String,
        signer: Option<CheckpointSigner>,
        log_bytes_max: u64,
        done: u64,
    ) -> Result<Self, Error> {
        let mut writer = LogWriter::open(dir, log_bytes_max, found)?;
        let public_key = signer.as_ref().map(|s| s.public_key().clone());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                wanted: done,
                done,
                ..State::default()
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("ledgerflow-checkpointer".into())
            .spawn(move || {
                let shared = &*thread_shared;
                loop {
                    let (size, root) = {
                        let mut state = lock(&shared.state);
                        while state.wanted <= state.done && !state.stop {
                            state = shared.work.wait(state).unwrap_or_else(|p| p.into_inner());
                        }
                        if state.wanted <= state.done || state.failed.is_some() {
                            return;
                        }
                        if std::mem::take(&mut state.fail_next) {
                            state.failed = Some("injected checkpoint failure".into());
                            shared.done.notify_all();
                            return;
                        }
                        (state.wanted, state.wanted_root)
                    };
                    let head = TreeHead {
                        origin: origin.clone(),
                        size,
                        root,
                    };
                    let result = match &signer {
                        Some(signer) => signer.sign(&head),
                        None => checkpoint::unsigned(&head),
                    }
                    .map_err(|e| e.to_string())
                    .and_then(|signed| writer.append(&signed));
                    let mut state = lock(&shared.state);
                    match result {
                        Ok(()) => state.done = state.done.max(size),
                        Err(e) => {
                            state.failed.get_or_insert(e);
                        }
                    }
                    shared.done.notify_all();
                }
            })
            .map_err(|e| io("starting the checkpointer".into(), e))?;
        Ok(Checkpointer {
            shared,
            handle: Mutex::new(Some(handle)),
            public_key,
        })
    }

    /// A handle that asks for checkpoints (for the background flusher).
    pub(crate) fn requester(&self) -> Requester {
        Requester(Arc::clone(&self.shared))
    }

    /// The public key checkpoints are signed with (none when unsigned).
    pub(crate) fn public_key(&self) -> Option<&CheckpointKey> {
        self.public_key.as_ref()
    }

    /// Asks for a checkpoint of the durable tree of `size` leaves whose root is `root`.
    pub(crate) fn request(&self, size: u64, root: TreeHash) {
        self.shared.request(size, root);
    }

    /// Waits until a checkpoint of at least `size` leaves is durable.
    pub(crate) fn wait_for(&self, size: u64) -> Result<(), Error> {
        let mut state = lock(&self.shared.state);
        loop {
            if state.done >= size {
                return Ok(());
            }
            if let Some(e) = &state.failed {
                return Err(Error::io_failed(format!(
                    "writing a checkpoint failed: {e}; the store refuses writes until it is reopened"
                )));
            }
            if state.stop {
                return Err(Error::Closed);
            }
            // (When `wanted` is still below `size`, the committer of the round that made
            // `size` durable is about to ask for it.)
            state = self
                .shared
                .done
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Makes the next checkpoint write fail (tests).
    pub(crate) fn fail_next(&self) {
        lock(&self.shared.state).fail_next = true;
    }

    /// The size of the last durable checkpoint.
    pub(crate) fn done(&self) -> u64 {
        lock(&self.shared.state).done
    }

    /// The first failure, if any.
    pub(crate) fn failure(&self) -> Option<String> {
        lock(&self.shared.state).failed.clone()
    }

    /// Finishes what was asked for and stops the thread.
    pub(crate) fn stop(&self) {
        {
            lock(&self.shared.state).stop = true;
            self.shared.work.notify_all();
            self.shared.done.notify_all();
        }
        let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Asks a [`Checkpointer`] for checkpoints from another thread.
pub(crate) struct Requester(Arc<Shared>);

/// The checkpointer's state, with one condition for its thread (work asked for, or
/// stop) and one for the callers waiting for a checkpoint (done, or failed).
struct Shared {
    state: Mutex<State>,
    work: Condvar,
    done: Condvar,
}

impl Requester {
    /// Asks for a checkpoint of the durable tree of `size` leaves whose root is `root`.
    pub(crate) fn request(&self, size: u64, root: TreeHash) {
        self.0.request(size, root);
    }
}

impl Shared {
    fn request(&self, size: u64, root: TreeHash) {
        let mut state = lock(&self.state);
        if size > state.wanted {
            state.wanted = size;
            state.wanted_root = root;
            self.work.notify_one();
        }
    }
}
