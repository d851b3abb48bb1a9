//! Damaged stores give typed errors on open or on `check()`, never a panic, and are never
//! silently repaired; arbitrary bytes into every envelope decoder give an error, never a
//! panic or an allocation past the value limit.

use std::sync::Arc;

use ledgerflow_kernel::store::{Error, Store};
use ledgerflow_kernel::{Engine, ManualClock, RunId, StepContext, StepPlan, WorkflowSpec};
use ledgerflow_sled::{decode_any, Durability, SledConfig, SledStore};
use proptest::prelude::*;
use serde_json::{json, Value};

fn populate(path: &std::path::Path, config: SledConfig) -> Vec<RunId> {
    let store = populate_open(path, config);
    let runs = store
        .runs_by_time(
            ledgerflow_kernel::store::TimeField::Created,
            0,
            i64::MAX,
            None,
            100,
        )
        .expect("runs")
        .into_iter()
        .map(|(_, run)| run)
        .collect();
    store.close().expect("close");
    runs
}

/// Makes a store of 20 completed runs of 22 records each, and leaves it open.
fn populate_open(path: &std::path::Path, config: SledConfig) -> Arc<SledStore> {
    let store = Arc::new(SledStore::open_with(path, config).expect("create"));
    let engine = Engine::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::new(ManualClock::new(1_000)),
    );
    engine.register(
        WorkflowSpec::builder("count", 1)
            .node("n", |ctx: &mut StepContext<'_>| {
                let n = ctx.var("n").and_then(Value::as_u64).unwrap_or(0);
                ctx.set("n", json!(n + 1));
                if n < 20 {
                    StepPlan::next("n")
                } else {
                    StepPlan::complete(json!(n))
                }
            })
            .entry("n")
            .build()
            .expect("valid spec"),
    );
    for _ in 0..20 {
        let run = engine.start(("count", 1), json!({})).expect("start");
        engine.tick(run).expect("tick");
    }
    store
}

/// Opens (and checks) a damaged store; any outcome but a panic is acceptable, and the
/// outcome must be a typed store error when it is not a clean, consistent store.
/// Returns the runs and records `check` verified.
fn open_and_check(path: &std::path::Path) -> Result<(u64, u64), Error> {
    let result = std::panic::catch_unwind(|| {
        let store = SledStore::open_existing(path, SledConfig::default())?;
        let report = store.check()?;
        Ok((report.runs, report.records))
    });
    match result {
        Ok(outcome) => outcome,
        Err(_) => panic!("opening or checking a damaged store panicked"),
    }
}

/// One way of damaging a file.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// XOR one byte.
    Flip(u64),
    /// Zero `len` bytes from an offset.
    Zero(u64, u64),
    /// Cut the file at an offset.
    Cut(u64),
}

fn apply(path: &std::path::Path, damage: Damage) {
    let mut bytes = std::fs::read(path).expect("read");
    match damage {
        Damage::Flip(at) => {
            if let Some(byte) = bytes.get_mut(at as usize) {
                *byte ^= 0x5a;
            }
        }
        Damage::Zero(at, len) => {
            let end = (at + len).min(bytes.len() as u64) as usize;
            for byte in bytes.iter_mut().take(end).skip(at as usize) {
                *byte = 0;
            }
        }
        Damage::Cut(at) => bytes.truncate(at as usize),
    }
    std::fs::write(path, bytes).expect("write");
}

/// Offsets spread over a file of `len` bytes: evenly spaced, plus pseudo-random ones.
fn offsets(len: u64, count: u64, seed: u64) -> Vec<u64> {
    let mut out: Vec<u64> = (0..count).map(|i| i * len / count).collect();
    let mut x = seed;
    for _ in 0..count {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push((x >> 11) % len.max(1));
    }
    out.push(len.saturating_sub(1));
    out
}

/// How many damage offsets per file and kind: `LEDGERFLOW_CORRUPTION_OFFSETS` (default 24).
fn offsets_per_file() -> u64 {
    std::env::var("LEDGERFLOW_CORRUPTION_OFFSETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

/// Damages a copy of `pristine` in each of `files` (paths inside the store) at many
/// offsets, each kind of damage in turn, and opens and checks it: it must fail with a
/// typed error, or open intact with all `expected` (runs, records), never "ok" with
/// fewer. Prints the counts and returns how many copies were refused.
fn damage_matrix(
    work: &std::path::Path,
    pristine: &std::path::Path,
    files: &[String],
    expected: (u64, u64),
) -> u64 {
    let count = offsets_per_file();
    let mut counts: std::collections::BTreeMap<(String, &str), [u64; 2]> = Default::default();
    let mut case = 0;
    for file in files {
        // Damage where the data is: sled's log file is mostly unwritten space.
        let bytes = std::fs::read(pristine.join(file)).expect("file");
        let len = bytes
            .iter()
            .rposition(|b| *b != 0)
            .map_or(0, |i| i as u64 + 1);
        let mut damages = Vec::new();
        for (i, at) in offsets(len, count, 7 + len).into_iter().enumerate() {
            damages.push(("flip", Damage::Flip(at)));
            damages.push(("zero", Damage::Zero(at, [1, 64, 4096][i % 3])));
            damages.push(("cut", Damage::Cut(at)));
        }
        for (kind, damage) in damages {
            case += 1;
            let copy = work.join(format!("case-{case}"));
            copy_dir(pristine, &copy);
            apply(&copy.join(file), damage);
            let outcome = open_and_check(&copy);
            let slot = counts.entry((file.clone(), kind)).or_default();
            match outcome {
                Ok(found) => {
                    assert_eq!(
                        found, expected,
                        "{file} {damage:?}: check passed with records missing"
                    );
                    slot[0] += 1;
                }
                Err(Error::Corrupt(_) | Error::Missing(_) | Error::Io { .. }) => slot[1] += 1,
                Err(other) => panic!("{file} {damage:?}: unexpected error {other:?}"),
            }
            std::fs::remove_dir_all(&copy).ok();
        }
    }
    let (runs, records) = expected;
    eprintln!(
        "corruption matrix ({records} records in {runs} runs): file, damage: intact / refused"
    );
    let mut refused = 0;
    for ((file, kind), [intact, bad]) in &counts {
        eprintln!("  {file:32} {kind:5} {intact:4} / {bad:4}");
        refused += bad;
    }
    refused
}

/// For many offsets and lengths in each file of a real `Durability::Sync` store (sled's
/// log and settings and the checkpoint log), a damaged copy either fails to open or check with a typed
/// error, or opens intact with every run and record: never "ok" with fewer records
/// than the last checkpoint signed. The counts are printed
/// (`cargo test -p ledgerflow-sled --test corruption -- --nocapture`);
/// `LEDGERFLOW_CORRUPTION_OFFSETS` (default 24) sets how many offsets per file and kind.
#[test]
fn corruption_matrix_never_reports_ok_with_lost_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pristine = dir.path().join("pristine");
    // `Sync`: sled's file is all there is (with the commit log, a replay could redo what
    // damage to sled's file cut; that log has its own matrix below).
    let sync = SledConfig {
        durability: Durability::Sync,
        ..SledConfig::default()
    };
    populate(&pristine, sync);
    let expected = open_and_check(&pristine).expect("the pristine store checks");
    assert_eq!(expected.0, 20);
    let files = ["db", "conf", ledgerflow_sled::CHECKPOINT_LOG_FILE].map(String::from);
    let refused = damage_matrix(dir.path(), &pristine, &files, expected);
    assert!(refused > 0, "some damage must be detected");
}

/// The same for the commit log of `Durability::Log`, on the image a crash leaves: the
/// store's files copied while it is open, after its last group was checkpointed (sled
/// not flushed since it opened, so its file may lack what only the log holds).
#[test]
fn corruption_of_the_commit_log_never_reports_ok_with_lost_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let live = dir.path().join("live");
    let pristine = dir.path().join("pristine");
    let config = SledConfig {
        durability: Durability::Log {
            checkpoint_ms: 3_600_000,
        },
        ..SledConfig::default()
    };
    let store = populate_open(&live, config);
    let records = store.feed_head().expect("feed head");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.checkpointed_size() < records {
        assert!(
            std::time::Instant::now() < deadline,
            "the last group is never checkpointed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    copy_dir(&live, &pristine);
    drop(store);
    // Opening replays the log into sled and removes it: look at a copy.
    let baseline = dir.path().join("baseline");
    copy_dir(&pristine, &baseline);
    let expected = open_and_check(&baseline).expect("the crash image recovers");
    assert_eq!(expected, (20, records));
    // Whether sled's own background writes had reached the file before the copy decides
    // if the log was needed; say which it was.
    let without_log = dir.path().join("without-log");
    copy_dir(&pristine, &without_log);
    std::fs::remove_dir_all(without_log.join("wal")).expect("remove the log");
    eprintln!(
        "the image without its commit log: {:?}",
        open_and_check(&without_log)
    );
    let segments: Vec<String> = std::fs::read_dir(pristine.join("wal"))
        .expect("the image has a commit log")
        .map(|e| format!("wal/{}", e.expect("entry").file_name().to_string_lossy()))
        .collect();
    assert!(!segments.is_empty(), "the image has commit log segments");
    let refused = damage_matrix(dir.path(), &pristine, &segments, expected);
    assert!(refused > 0, "some damage must be detected");
}

#[test]
fn damaged_values_are_reported_not_repaired() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let runs = populate(&path, SledConfig::default());
    {
        let db = raw_open(&path);
        let records = db.open_tree("records").expect("tree");
        // Change one byte of a record's state_hash field: the envelope still decodes, the
        // record's hash no longer matches.
        let (key, value) = records.iter().nth(5).expect("a record").expect("read");
        let mut value = value.to_vec();
        let last = value.len() - 40;
        value[last] ^= 0x01;
        records.insert(key, value).expect("write");
        // Garble one run's state envelope entirely.
        db.open_tree("runs")
            .expect("tree")
            .insert(runs[3].as_bytes(), &b"\x01garbage"[..])
            .expect("write");
        db.flush().expect("flush");
    }
    let store =
        SledStore::open_existing(&path, SledConfig::default()).expect("values are checked lazily");
    assert!(matches!(store.load(runs[3]), Err(Error::Corrupt(_))));
    match store.check() {
        Err(Error::Corrupt(message)) => assert!(!message.is_empty()),
        other => panic!("check must report the damage, got {other:?}"),
    }
    // Still damaged on a second look: nothing was rewritten.
    assert!(matches!(store.check(), Err(Error::Corrupt(_))));
    assert!(matches!(store.load(runs[3]), Err(Error::Corrupt(_))));
}

#[test]
fn unknown_envelope_version_is_corrupt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let runs = populate(&path, SledConfig::default());
    {
        let db = raw_open(&path);
        let tree = db.open_tree("runs").expect("tree");
        let mut value = tree
            .get(runs[0].as_bytes())
            .expect("read")
            .expect("exists")
            .to_vec();
        value[0] = 99;
        tree.insert(runs[0].as_bytes(), value).expect("write");
        db.flush().expect("flush");
    }
    let store = SledStore::open_existing(&path, SledConfig::default()).expect("open");
    match store.load(runs[0]) {
        Err(Error::Corrupt(message)) => {
            assert!(message.contains("unknown envelope version 99"), "{message}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Opens the store's sled database directly, waiting for the dropped store's file lock.
fn raw_open(path: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let segment_size = ledgerflow_sled::segment_size_of(path)
            .expect("conf")
            .expect("a store");
        match sled::Config::new()
            .path(path)
            .segment_size(segment_size)
            .open()
        {
            Ok(db) => return db,
            Err(e)
                if std::time::Instant::now() < deadline
                    && e.to_string().contains("could not acquire lock") =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("raw open: {e}"),
        }
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_any(&bytes);
    }

    #[test]
    fn huge_length_prefixes_are_refused_without_allocating(
        version in 0u8..3,
        len in (1u64 << 20)..u64::MAX,
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        // A v1 envelope whose first length field claims far more than the value limit.
        let mut bytes = vec![version];
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&tail);
        decode_any(&bytes);
        let mut bytes = vec![version, 0, 0, 0, 0, 0, 0, 0, 0];
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&tail);
        decode_any(&bytes);
    }
}

/// `check` recomputes the global log from the records: a damaged stored subtree hash or
/// leaf hash is reported even when no checkpoint covers it (here the checkpoint log is
/// gone, so opening cannot notice).
#[test]
fn check_recomputes_the_global_log() {
    for damage in ["subtree", "leaf"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store");
        populate(&path, SledConfig::default());
        let intact = SledStore::open_existing(&path, SledConfig::default())
            .expect("open")
            .check()
            .expect("check");
        assert_eq!(intact.log_leaves, intact.records);
        std::fs::remove_file(path.join(ledgerflow_sled::CHECKPOINT_LOG_FILE)).expect("rm log");
        {
            let db = raw_open(&path);
            match damage {
                "subtree" => {
                    let log = db.open_tree("log").expect("log tree");
                    let (key, mut value) = log
                        .iter()
                        .next()
                        .expect("a stored subtree")
                        .map(|(k, v)| (k, v.to_vec()))
                        .expect("entry");
                    value[0] ^= 1;
                    log.insert(key, value).expect("insert");
                }
                _ => {
                    let feed = db.open_tree("feed").expect("feed tree");
                    let (key, mut value) = feed
                        .iter()
                        .nth(3)
                        .expect("a feed entry")
                        .map(|(k, v)| (k, v.to_vec()))
                        .expect("entry");
                    let last = value.len() - 1;
                    value[last] ^= 1;
                    feed.insert(key, value).expect("insert");
                }
            }
            db.flush().expect("flush");
        }
        let store = SledStore::open_existing(&path, SledConfig::default()).expect("opens");
        match store.check() {
            Err(Error::Corrupt(message)) => assert!(message.contains("global log"), "{message}"),
            other => panic!("{damage}: check must fail, got {other:?}"),
        }
    }
}
