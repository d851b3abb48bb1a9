//! The commit log of storage v2 (issue 12), used by `Durability::Log`: an append-only log of entries in preallocated segment files, made durable by one
//! `fdatasync` per group of appends, with every entry checksummed so that recovery keeps
//! exactly the entries that were completely written.
//!
//! An entry is `length (u32 LE) || crc32 of the payload (u32 LE) || payload`. Segments are
//! `wal-<first lsn, 16 hex digits>.log`, preallocated with zeros (so an append changes
//! no file metadata and its `fdatasync` is a plain data flush). Entries are numbered from
//! 1 (their LSN) across segments.
//!
//! Recovery reads the segments in order. A zero length marks the end of the written part.
//! An entry that does not check at the end of the last segment — followed only by zeros —
//! is a write a crash cut short: it was never acknowledged, it is dropped and zeroed. Any
//! other entry that does not check is damage: `StoreCorrupt`, never skipped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ledgerflow_kernel::store::Error;

use crate::rounds::RoundWaiters;
use crate::sync::sync_dir;

/// Bytes of an entry's header.
const HEADER_BYTES: usize = 8;

/// The largest entry payload accepted (64 MiB).
pub const ENTRY_BYTES_MAX: usize = 64 << 20;

/// A log sequence number: entries are numbered from 1.
pub type Lsn = u64;

/// Entries read back on open: each with its LSN.
pub type Recovered = Vec<(Lsn, Vec<u8>)>;

fn io(context: String, e: std::io::Error) -> Error {
    Error::io(context, e)
}

/// The error of every caller after the log's `fdatasync` failed: the first failure's
/// text, then `then`, with the operating system's error as the source.
fn fsync_failed(e: &Arc<std::io::Error>, then: &str) -> Error {
    Error::Io {
        message: format!("the commit log's fsync failed: {e}{then}"),
        source: Some(Arc::clone(e)),
    }
}

fn segment_name(first_lsn: Lsn) -> String {
    format!("wal-{first_lsn:016x}.log")
}

fn segment_first_lsn(name: &str) -> Option<Lsn> {
    let hex = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok())?
}

struct Writer {
    file: File,
    path: PathBuf,
    /// Where the next entry goes in the current segment.
    position: u64,
    /// The current segment's length (entries, then zeros).
    allocated: u64,
    /// The LSN the next entry gets.
    next_lsn: Lsn,
    /// A failed write or sync: the log refuses appends from then on.
    failed: Option<String>,
}

#[derive(Default)]
struct SyncState {
    /// Every entry up to this LSN is durable.
    durable: Lsn,
    /// What the sync round before the last one made durable.
    previous_durable: Lsn,
    /// A sync is running.
    syncing: bool,
    /// Sync rounds started (the running one's number while `syncing`), and the last LSN
    /// the latest round covers.
    round: u64,
    target: Lsn,
    failed: Option<Arc<std::io::Error>>,
}

/// What a sync round made durable (see [`Wal::sync`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRound {
    /// Every entry up to this LSN is durable.
    pub durable: Lsn,
    /// The round before had made every entry up to this one durable.
    pub previous: Lsn,
}

/// The commit log. See the module documentation.
pub struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    synced: RoundWaiters,
    /// `fdatasync`s done, and a failure injected into the next one (tests).
    syncs: AtomicU64,
    fail_next: AtomicBool,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The segments in `dir`, by first LSN.
fn segments(dir: &Path) -> Result<Vec<(Lsn, PathBuf)>, Error> {
    let mut found = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| io(format!("reading {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(format!("reading {}", dir.display()), e))?;
        if let Some(first) = entry.file_name().to_str().and_then(segment_first_lsn) {
            found.push((first, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// What reading one segment found.
struct Scan {
    entries: Vec<Vec<u8>>,
    /// The end of the last complete entry.
    end: u64,
    /// Bytes of a torn last entry after `end` (zero if none).
    torn: u64,
}

/// The entry at `at`, if one is there whole with its checksum right.
fn entry_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let header = bytes.get(at..at + HEADER_BYTES)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > ENTRY_BYTES_MAX {
        return None;
    }
    let payload = bytes.get(at + HEADER_BYTES..at + HEADER_BYTES + len)?;
    (crc32fast::hash(payload) == crc).then_some(payload)
}

fn scan(path: &Path, bytes: &[u8], last_segment: bool) -> Result<Scan, Error> {
    let mut entries = Vec::new();
    let mut at = 0usize;
    while let Some(payload) = entry_at(bytes, at) {
        entries.push(payload.to_vec());
        at += HEADER_BYTES + payload.len();
    }
    let Some(last_nonzero) = bytes[at..].iter().rposition(|b| *b != 0) else {
        // Zeros after the last entry: the unwritten part of the segment.
        return Ok(Scan {
            entries,
            end: at as u64,
            torn: 0,
        });
    };
    // Bytes after the last whole entry. In the last segment, with no whole entry after
    // them, they are a write a crash cut short (any part of it may have reached the disk):
    // never acknowledged. Anywhere else they are damage, and entries after them would be
    // lost: refuse.
    let acknowledged_after = (at + 1..bytes.len()).any(|off| entry_at(bytes, off).is_some());
    if !last_segment || acknowledged_after {
        return Err(Error::Corrupt(format!(
            "{}: the commit log is damaged at byte {at}{}",
            path.display(),
            if acknowledged_after {
                " and whole entries follow the damage"
            } else {
                ""
            }
        )));
    }
    Ok(Scan {
        entries,
        end: at as u64,
        torn: (last_nonzero + 1) as u64,
    })
}

impl Wal {
    /// Opens (or creates) the log in `dir`, with segments of `segment_bytes`, and returns
    /// it with every entry it holds from `from_lsn` on. A torn last entry is zeroed.
    pub fn open(dir: &Path, segment_bytes: u64, from_lsn: Lsn) -> Result<(Wal, Recovered), Error> {
        Wal::open_inner(dir, segment_bytes, from_lsn, 1)
    }

    /// Like [`Wal::open`], but an empty log's first entry gets `first_lsn`.
    pub fn open_at(
        dir: &Path,
        segment_bytes: u64,
        first_lsn: Lsn,
    ) -> Result<(Wal, Recovered), Error> {
        Wal::open_inner(dir, segment_bytes, first_lsn, first_lsn)
    }

    fn open_inner(
        dir: &Path,
        segment_bytes: u64,
        from_lsn: Lsn,
        first_lsn: Lsn,
    ) -> Result<(Wal, Recovered), Error> {
        std::fs::create_dir_all(dir).map_err(|e| io(format!("creating {}", dir.display()), e))?;
        let found = segments(dir)?;
        let mut recovered = Vec::new();
        let mut next_lsn = found.first().map_or(first_lsn, |(first, _)| *first);
        let mut tail = None;
        for (i, (first, path)) in found.iter().enumerate() {
            if *first != next_lsn {
                return Err(Error::Corrupt(format!(
                    "{}: the commit log's segment starts at entry {first}, but the one before \
                     it ends at {}",
                    path.display(),
                    next_lsn - 1
                )));
            }
            let mut bytes = Vec::new();
            File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| io(format!("reading {}", path.display()), e))?;
            let last = i + 1 == found.len();
            let scanned = scan(path, &bytes, last)?;
            for entry in scanned.entries {
                if next_lsn >= from_lsn {
                    recovered.push((next_lsn, entry));
                }
                next_lsn += 1;
            }
            if last {
                tail = Some((path.clone(), scanned.end, scanned.torn, bytes.len() as u64));
            }
        }
        let writer = match tail {
            Some((path, end, torn, allocated)) => {
                let mut file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| io(format!("opening {}", path.display()), e))?;
                if torn > 0 {
                    file.seek(SeekFrom::Start(end))
                        .and_then(|_| file.write_all(&vec![0u8; torn as usize]))
                        .and_then(|()| file.sync_data())
                        .map_err(|e| {
                            io(format!("clearing a torn entry of {}", path.display()), e)
                        })?;
                }
                Writer {
                    file,
                    path,
                    position: end,
                    allocated,
                    next_lsn,
                    failed: None,
                }
            }
            None => Wal::new_segment(dir, next_lsn, segment_bytes)?,
        };
        let durable = writer.next_lsn - 1;
        Ok((
            Wal {
                dir: dir.to_owned(),
                segment_bytes,
                writer: Mutex::new(writer),
                sync: Mutex::new(SyncState {
                    durable,
                    previous_durable: durable,
                    ..SyncState::default()
                }),
                synced: RoundWaiters::default(),
                syncs: AtomicU64::new(0),
                fail_next: AtomicBool::new(false),
            },
            recovered,
        ))
    }

    fn new_segment(dir: &Path, first_lsn: Lsn, segment_bytes: u64) -> Result<Writer, Error> {
        let path = dir.join(segment_name(first_lsn));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io(format!("creating {}", path.display()), e))?;
        file.write_all(&vec![0u8; segment_bytes as usize])
            .and_then(|()| file.sync_all())
            .map_err(|e| io(format!("preallocating {}", path.display()), e))?;
        sync_dir(dir).map_err(|e| io(format!("fsync of {}", dir.display()), e))?;
        Ok(Writer {
            file,
            path,
            position: 0,
            allocated: segment_bytes,
            next_lsn: first_lsn,
            failed: None,
        })
    }

    /// Appends an entry (not yet durable: see [`Wal::sync`]) and returns its LSN.
    pub fn append(&self, payload: &[u8]) -> Result<Lsn, Error> {
        if payload.is_empty() || payload.len() > ENTRY_BYTES_MAX {
            return Err(Error::InvalidInput(format!(
                "a commit log entry is 1 to {ENTRY_BYTES_MAX} bytes, not {}",
                payload.len()
            )));
        }
        let mut w = lock(&self.writer);
        if let Some(e) = &w.failed {
            return Err(Error::io_failed(format!(
                "the commit log failed earlier: {e}"
            )));
        }
        let len = (HEADER_BYTES + payload.len()) as u64;
        if w.position + len > w.allocated {
            // Full: the next segment, made durable before it is used.
            let next = Wal::new_segment(&self.dir, w.next_lsn, self.segment_bytes.max(len))?;
            w.file
                .sync_data()
                .map_err(|e| io(format!("fsync of {}", w.path.display()), e))?;
            *w = next;
        }
        let mut entry = Vec::with_capacity(len as usize);
        entry.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        entry.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        entry.extend_from_slice(payload);
        let position = w.position;
        let written = w
            .file
            .seek(SeekFrom::Start(position))
            .and_then(|_| w.file.write_all(&entry));
        if let Err(e) = written {
            let context = format!("writing {}", w.path.display());
            w.failed = Some(format!("{context}: {e}"));
            return Err(io(context, e));
        }
        w.position += len;
        let lsn = w.next_lsn;
        w.next_lsn += 1;
        Ok(lsn)
    }

    /// Returns once every entry up to `lsn` is durable. One caller at a time runs the
    /// `fdatasync`; callers arriving meanwhile wait for the next one, which covers them
    /// all (group commit).
    /// Returns the round that made it durable: everything up to `durable` is, and the
    /// round before it had made everything up to `previous` durable.
    pub fn sync(&self, lsn: Lsn) -> Result<SyncRound, Error> {
        let mut state = lock(&self.sync);
        loop {
            if let Some(e) = &state.failed {
                return Err(fsync_failed(e, ""));
            }
            if state.durable >= lsn {
                return Ok(SyncRound {
                    durable: state.durable,
                    previous: state.previous_durable,
                });
            }
            if !state.syncing {
                break;
            }
            // Covered by the running round, or else by the next one.
            let round = state.round + u64::from(lsn > state.target);
            state = self.synced.wait(state, round);
        }
        // Everything appended before this point is covered by the fdatasync below.
        let (file, covered) = {
            let w = lock(&self.writer);
            (w.file.try_clone(), w.next_lsn - 1)
        };
        state.syncing = true;
        state.round += 1;
        state.target = covered;
        drop(state);
        let result = if self.fail_next.swap(false, Ordering::SeqCst) {
            Err(std::io::Error::other("injected failure"))
        } else {
            self.syncs.fetch_add(1, Ordering::Relaxed);
            file.and_then(|f| f.sync_data())
        };
        let mut state = lock(&self.sync);
        state.syncing = false;
        match result {
            Ok(()) if covered > state.durable => {
                state.previous_durable = state.durable;
                state.durable = covered;
            }
            Ok(()) => {}
            Err(e) => {
                state.failed.get_or_insert(Arc::new(e));
            }
        }
        // Whether anyone waits for a next round is not counted: wake one to be sure.
        self.synced.finished(state.round, true);
        drop(state);
        self.sync(lsn)
    }

    /// Fails with the first failed `fdatasync`, if one happened: nothing appended since
    /// can be trusted to reach the disk.
    pub fn check_healthy(&self) -> Result<(), Error> {
        match &lock(&self.sync).failed {
            Some(e) => Err(fsync_failed(
                e,
                "; the store refuses writes until it is reopened",
            )),
            None => Ok(()),
        }
    }

    /// How many `fdatasync`s the log has done.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Makes the next `fdatasync` fail (tests).
    pub fn fail_next_sync(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }

    /// The LSN the next entry will get.
    pub fn next_lsn(&self) -> Lsn {
        lock(&self.writer).next_lsn
    }

    /// Deletes the segments whose entries all come before `lsn` (what a checkpoint of the
    /// derived data made unnecessary); the current segment is kept.
    pub fn remove_before(&self, lsn: Lsn) -> Result<usize, Error> {
        let current = lock(&self.writer).path.clone();
        let found = segments(&self.dir)?;
        let mut removed = 0;
        for (i, (_, path)) in found.iter().enumerate() {
            let next_first = found.get(i + 1).map(|(first, _)| *first);
            if *path == current || next_first.is_none_or(|next| next > lsn) {
                break;
            }
            std::fs::remove_file(path)
                .map_err(|e| io(format!("removing {}", path.display()), e))?;
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.dir).map_err(|e| io(format!("fsync of {}", self.dir.display()), e))?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn payload(i: u64) -> Vec<u8> {
        format!("entry {i} {}", "x".repeat((i % 50) as usize)).into_bytes()
    }

    /// The last segment's path and bytes.
    fn last_segment(dir: &Path) -> (PathBuf, Vec<u8>) {
        let (_, path) = segments(dir).expect("segments").pop().expect("segment");
        let bytes = std::fs::read(&path).expect("read");
        (path, bytes)
    }

    fn write(dir: &Path, count: u64, segment: u64) -> Wal {
        let (wal, _) = Wal::open(dir, segment, 1).expect("open");
        for i in 1..=count {
            let lsn = wal.append(&payload(i)).expect("append");
            assert_eq!(lsn, i);
        }
        wal.sync(count).expect("sync");
        wal
    }

    #[test]
    fn entries_come_back_in_order_across_segments_and_reopens() {
        let dir = tempfile::tempdir().expect("dir");
        drop(write(dir.path(), 200, 1_024));
        assert!(segments(dir.path()).expect("segments").len() > 3);
        let (wal, entries) = Wal::open(dir.path(), 1_024, 1).expect("reopen");
        assert_eq!(entries.len(), 200);
        for (lsn, bytes) in &entries {
            assert_eq!(bytes, &payload(*lsn));
        }
        assert_eq!(wal.append(b"more").expect("append"), 201);
        wal.sync(201).expect("sync");
        let (_, from) = Wal::open(dir.path(), 1_024, 150).expect("reopen");
        assert_eq!(from.first().map(|(lsn, _)| *lsn), Some(150));
        assert_eq!(from.last().map(|(_, b)| b.as_slice()), Some(&b"more"[..]));
    }

    #[test]
    fn a_cut_last_entry_is_dropped_and_cleared_every_byte_of_the_way() {
        let dir = tempfile::tempdir().expect("dir");
        drop(write(dir.path(), 5, 1 << 16));
        let (path, bytes) = last_segment(dir.path());
        let end = bytes.iter().rposition(|b| *b != 0).expect("data") + 1;
        let last_len = HEADER_BYTES + payload(5).len();
        for cut in (end - last_len + 1)..end {
            let mut damaged = bytes.clone();
            for b in &mut damaged[cut..end] {
                *b = 0;
            }
            std::fs::write(&path, &damaged).expect("write");
            let (wal, entries) = Wal::open(dir.path(), 1 << 16, 1).expect("a torn tail opens");
            assert_eq!(entries.len(), 4, "cut at {cut}");
            assert_eq!(wal.next_lsn(), 5);
            // The torn bytes were cleared: a new entry follows the complete ones.
            wal.append(&payload(5)).expect("append");
            wal.sync(5).expect("sync");
            drop(wal);
            let (_, again) = Wal::open(dir.path(), 1 << 16, 1).expect("reopen");
            assert_eq!(again.len(), 5, "cut at {cut}");
        }
    }

    /// A crash can persist a later part of the last write and not an earlier one.
    #[test]
    fn a_last_entry_missing_its_start_is_torn_too() {
        let dir = tempfile::tempdir().expect("dir");
        drop(write(dir.path(), 5, 1 << 16));
        let (path, mut bytes) = last_segment(dir.path());
        let end = bytes.iter().rposition(|b| *b != 0).expect("data") + 1;
        let start = end - (HEADER_BYTES + payload(5).len());
        for b in &mut bytes[start..start + 12] {
            *b = 0;
        }
        std::fs::write(&path, &bytes).expect("write");
        let (wal, entries) = Wal::open(dir.path(), 1 << 16, 1).expect("opens");
        assert_eq!(entries.len(), 4);
        assert_eq!(wal.next_lsn(), 5);
    }

    #[test]
    fn damage_before_the_last_entry_is_corrupt() {
        let dir = tempfile::tempdir().expect("dir");
        drop(write(dir.path(), 10, 1 << 16));
        let (path, mut bytes) = last_segment(dir.path());
        bytes[HEADER_BYTES + 2] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            Wal::open(dir.path(), 1 << 16, 1),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn a_missing_segment_is_corrupt_and_old_segments_can_be_removed() {
        let dir = tempfile::tempdir().expect("dir");
        let wal = write(dir.path(), 100, 512);
        let found = segments(dir.path()).expect("segments");
        assert!(wal.remove_before(found[2].0).expect("remove") == 2);
        drop(wal);
        let (_, entries) = Wal::open(dir.path(), 512, 1).expect("reopen after removal");
        assert_eq!(entries.first().map(|(lsn, _)| *lsn), Some(found[2].0));
        let middle = &segments(dir.path()).expect("segments")[1].1;
        std::fs::remove_file(middle).expect("remove");
        assert!(matches!(
            Wal::open(dir.path(), 512, 1),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn concurrent_appenders_share_syncs() {
        let dir = tempfile::tempdir().expect("dir");
        let (wal, _) = Wal::open(dir.path(), 1 << 20, 1).expect("open");
        let wal = Arc::new(wal);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let wal = Arc::clone(&wal);
                std::thread::spawn(move || {
                    for i in 0..50u64 {
                        let lsn = wal.append(&payload(t * 1_000 + i)).expect("append");
                        wal.sync(lsn).expect("sync");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        drop(wal);
        let (_, entries) = Wal::open(dir.path(), 1 << 20, 1).expect("reopen");
        assert_eq!(entries.len(), 400);
    }

    #[test]
    fn bad_input_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let (wal, _) = Wal::open(dir.path(), 4_096, 1).expect("open");
        assert!(matches!(wal.append(b""), Err(Error::InvalidInput(_))));
    }
}
