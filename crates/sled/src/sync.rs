//! Durability: flushing sled and fsyncing its files for real, with group commit so that
//! concurrent committers share one flush + fsync.
//!
//! sled 0.34's `flush` ends in `sync_file_range`, which neither flushes the drive's cache
//! nor the file's metadata. A commit acknowledged as durable therefore also waits for
//! `fsync` (`File::sync_all`) on sled's log file, and on any blob files sled wrote.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ledgerflow_kernel::store::Error;
use ledgerflow_ledger::merkle::{Frontier, TreeHash};

use crate::rounds::RoundWaiters;

/// When a commit counts as durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `commit` returns only after sled's files are flushed and fsynced (sled's flush and
    /// the fsync: two device flushes). An acknowledged step survives a crash or power
    /// loss. Concurrent commits share one flush + fsync (group commit). As durable as
    /// [`Durability::Log`], slower; each commit is a sled transaction.
    Sync,
    /// `commit` returns at once; a background thread flushes and fsyncs at least every
    /// `max_delay_ms`. A crash loses at most that window of acknowledged steps.
    Batched {
        /// Longest time a commit stays only in memory.
        max_delay_ms: u64,
    },
    /// No explicit flush: sled writes in its own time. For tests and throwaway data.
    None,
    /// The default: `commit` returns once its entry in the store's own commit log
    /// (`wal/`) is fdatasynced — one device flush per group of commits. sled's files are
    /// flushed in the background every `checkpoint_ms` (then the log's older segments
    /// go), and the log is replayed into sled on open. An acknowledged step survives a
    /// crash or power loss, as with [`Durability::Sync`].
    Log {
        /// How often sled's files are flushed and fsynced, letting older log segments go.
        checkpoint_ms: u64,
    },
}

impl Default for Durability {
    /// [`Durability::Log`], sled flushed every second.
    fn default() -> Self {
        Durability::Log {
            checkpoint_ms: 1_000,
        }
    }
}

#[derive(Debug, Default)]
struct SyncState {
    /// Tickets handed out: one per commit that needs to become durable.
    requested: u64,
    /// Every ticket up to this one is durable.
    synced: u64,
    /// A flush + fsync is running.
    syncing: bool,
    /// Rounds started so far (the running one's number while `syncing`), and the last
    /// ticket the latest round covers.
    round: u64,
    target: u64,
    /// The first fsync failure. After it the store refuses writes: the kernel may have
    /// dropped dirty pages, so nothing written since can be trusted to be on disk.
    failed: Option<String>,
    /// The global log size (and root) made durable by the last round, and the size made
    /// durable by the round before it.
    durable_size: u64,
    durable_root: TreeHash,
    previous_durable_size: u64,
}

/// What a round of flush + fsync made durable: the global log's size as it was when the
/// round began, and the size the round before it made durable.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Round {
    pub durable_size: u64,
    pub durable_root: TreeHash,
    pub previous_durable_size: u64,
}

pub(crate) struct GroupSync {
    db: sled::Db,
    /// The global log's right edge as applied so far (durable or not).
    applied: Arc<Mutex<Frontier>>,
    dir: PathBuf,
    log_file: File,
    state: Mutex<SyncState>,
    done: RoundWaiters,
    fsyncs: AtomicU64,
    fail_next: AtomicBool,
}

impl GroupSync {
    pub fn new(db: sled::Db, dir: &Path, applied: Arc<Mutex<Frontier>>) -> Result<Self, Error> {
        let log_path = dir.join("db");
        let log_file = File::open(&log_path)
            .map_err(|e| Error::Missing(format!("{}: {e}", log_path.display())))?;
        Ok(GroupSync {
            db,
            applied,
            dir: dir.to_owned(),
            log_file,
            state: Mutex::default(),
            done: RoundWaiters::default(),
            fsyncs: AtomicU64::new(0),
            fail_next: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails with the first fsync error, if one happened.
    pub fn check_healthy(&self) -> Result<(), Error> {
        match &self.lock().failed {
            Some(reason) => Err(poisoned(reason)),
            None => Ok(()),
        }
    }

    /// Returns once everything committed before the call is durable. One caller at a time
    /// runs the flush + fsync; callers arriving meanwhile wait for the next round, which
    /// covers all of them.
    pub fn sync(&self) -> Result<Round, Error> {
        let mut state = self.lock();
        state.requested += 1;
        let ticket = state.requested;
        loop {
            if let Some(reason) = &state.failed {
                return Err(poisoned(reason));
            }
            if state.synced >= ticket {
                return Ok(Round {
                    durable_size: state.durable_size,
                    durable_root: state.durable_root,
                    previous_durable_size: state.previous_durable_size,
                });
            }
            if state.syncing {
                // Covered by the running round, or else by the next one.
                let round = state.round + u64::from(ticket > state.target);
                state = self.done.wait(state, round);
                continue;
            }
            state.syncing = true;
            state.round += 1;
            let target = state.requested;
            state.target = target;
            // Every commit with a ticket up to `target` has applied, so the log size read
            // now covers them all (and perhaps more, which this round makes durable too).
            let frontier = self
                .applied
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            drop(state);
            let result = self.flush_and_fsync();
            // Once per round, by the thread that ran it: the root the checkpoint signs.
            let (size, root) = (frontier.size(), frontier.root());
            state = self.lock();
            state.syncing = false;
            match result {
                Ok(()) => {
                    state.synced = state.synced.max(target);
                    if size > state.durable_size {
                        state.previous_durable_size = state.durable_size;
                        state.durable_size = size;
                        state.durable_root = root;
                    }
                }
                Err(e) => {
                    state.failed.get_or_insert(e);
                }
            }
            self.done
                .finished(state.round, state.requested > state.synced);
        }
    }

    /// Syncs if anything was committed since the last sync (for `Batched`).
    pub fn sync_if_dirty(&self) -> Result<Option<Round>, Error> {
        let dirty = {
            let state = self.lock();
            state.requested > state.synced
        };
        if dirty {
            self.sync().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Sets the durable size and root found on open.
    pub fn set_durable(&self, size: u64, root: TreeHash) {
        let mut state = self.lock();
        state.durable_size = size;
        state.durable_root = root;
        state.previous_durable_size = size;
    }

    /// Records that a commit happened without waiting for it to be durable.
    pub fn mark_dirty(&self) {
        self.lock().requested += 1;
    }

    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Makes the next fsync fail, to test that the failure is surfaced.
    pub fn fail_next_sync(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }

    fn flush_and_fsync(&self) -> Result<(), String> {
        self.db
            .flush()
            .map_err(|e| format!("sled flush failed: {e}"))?;
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err("fsync failed: injected failure".into());
        }
        self.log_file
            .sync_all()
            .map_err(|e| format!("fsync of sled's log failed: {e}"))?;
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        sync_blobs(&self.dir.join("blobs")).map_err(|e| format!("fsync of sled blobs failed: {e}"))
    }
}

fn poisoned(reason: &str) -> Error {
    Error::io_failed(format!(
        "{reason}; the store refuses writes until it is reopened"
    ))
}

/// sled writes values over its blob threshold to separate files without fsync. This
/// store keeps values under that threshold, but if a blob exists, it is synced too.
fn sync_blobs(blobs: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(blobs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut any = false;
    for entry in entries {
        File::open(entry?.path())?.sync_all()?;
        any = true;
    }
    if any {
        sync_dir(blobs)?;
    }
    Ok(())
}

/// fsyncs a directory, so that files created in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
