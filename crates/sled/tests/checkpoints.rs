//! Signed checkpoints of the global log: a store rolled back or rewritten behind its last
//! checkpoint refuses to open, every acknowledged commit is covered by a checkpoint at
//! most one group later, and keys can be rotated.

use std::path::Path;
use std::sync::Arc;

use ledgerflow_kernel::store::{Error, Store};
use ledgerflow_kernel::{log_head, Engine, ManualClock, StepContext, StepPlan, WorkflowSpec};
use ledgerflow_ledger::checkpoint::CheckpointKey;
use ledgerflow_sled::{
    latest_checkpoint, read_checkpoints, CheckpointConfig, Signing, SledConfig, SledStore,
    CHECKPOINT_LOG_FILE, KEY_FILE, PUBLIC_KEY_FILE, RETIRED_KEYS_FILE,
};
use serde_json::{json, Value};

fn engine(store: Arc<SledStore>) -> Engine {
    let engine = Engine::new(store as Arc<dyn Store>, Arc::new(ManualClock::new(1_000)));
    engine.register(
        WorkflowSpec::builder("count", 1)
            .node("n", |ctx: &mut StepContext<'_>| {
                let n = ctx.var("n").and_then(Value::as_u64).unwrap_or(0);
                let to = ctx.var("to").and_then(Value::as_u64).unwrap_or(3);
                ctx.set("n", json!(n + 1));
                if n + 1 < to {
                    StepPlan::next("n")
                } else {
                    StepPlan::complete(json!(n))
                }
            })
            .entry("n")
            .build()
            .expect("valid spec"),
    );
    engine
}

/// Runs `runs` workflows of `to` steps each in the store at `path`, then closes it.
fn add_runs(path: &Path, runs: usize, input: Value) -> u64 {
    let store = Arc::new(SledStore::open(path).expect("open"));
    let engine = engine(Arc::clone(&store));
    for _ in 0..runs {
        let run = engine.start(("count", 1), input.clone()).expect("start");
        engine.tick(run).expect("tick");
    }
    let size = store.feed_head().expect("head");
    store.close().expect("close");
    size
}

fn copy_dir(from: &Path, to: &Path) {
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

fn corrupt_message(result: Result<SledStore, Error>) -> String {
    match result {
        Err(Error::Corrupt(message)) => message,
        Err(other) => panic!("expected StoreCorrupt, got {other:?}"),
        Ok(_) => panic!("expected StoreCorrupt, the store opened"),
    }
}

#[test]
fn close_checkpoints_everything_and_the_checkpoint_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let size = add_runs(&path, 4, json!({"to": 3}));
    assert_eq!(size, 4 * 4, "started + 2 advanced + completed per run");
    let latest = latest_checkpoint(&path)
        .expect("read")
        .expect("a checkpoint");
    assert_eq!(latest.head.size, size);
    let public = std::fs::read_to_string(path.join(PUBLIC_KEY_FILE)).expect("public key");
    let key = CheckpointKey::parse(&public).expect("key");
    latest.verify(&key).expect("signed by the store's key");
    let store = SledStore::open(&path).expect("reopen");
    assert_eq!(log_head(&store).expect("head").root, latest.head.root);
    assert_eq!(
        store.checkpoint_key().map(|k| k.as_str()),
        Some(public.trim())
    );
}

#[test]
fn a_store_rolled_back_behind_its_checkpoint_is_corrupt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let old_size = add_runs(&path, 3, json!({"to": 2}));
    let old = dir.path().join("old");
    copy_dir(&path, &old);
    let size = add_runs(&path, 2, json!({"to": 2}));
    assert!(size > old_size);
    // The old data with the new checkpoint log: what sled's recovery cutting a tail, or
    // a restore of an old backup, looks like.
    std::fs::copy(
        path.join(CHECKPOINT_LOG_FILE),
        old.join(CHECKPOINT_LOG_FILE),
    )
    .expect("copy");
    let message = corrupt_message(SledStore::open_existing(&old, SledConfig::default()));
    assert!(
        message.contains(&format!("holds {old_size} records"))
            && message.contains(&format!("signed {size}"))
            && message.contains(&format!("leaves {old_size}..{}", size - 1)),
        "{message}"
    );
    assert!(message.contains("docs/operations.md"), "{message}");
}

#[test]
fn a_store_rewritten_to_the_same_size_is_corrupt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    add_runs(&path, 2, json!({"to": 2}));
    let other = dir.path().join("other");
    copy_dir(&path, &other);
    let size = add_runs(&path, 2, json!({"to": 2}));
    // The same number of records, with other content.
    let other_size = add_runs(&other, 2, json!({"to": 2, "x": "rewritten"}));
    assert_eq!(size, other_size);
    std::fs::copy(
        path.join(CHECKPOINT_LOG_FILE),
        other.join(CHECKPOINT_LOG_FILE),
    )
    .expect("copy");
    let message = corrupt_message(SledStore::open_existing(&other, SledConfig::default()));
    assert!(message.contains("do not hash to the root"), "{message}");
}

#[test]
fn a_checkpoint_signed_by_another_key_is_corrupt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    add_runs(&a, 1, json!({}));
    copy_dir(&a, &b);
    // b gets its own key but keeps a's checkpoints.
    std::fs::remove_file(b.join(KEY_FILE)).expect("rm key");
    std::fs::remove_file(b.join(PUBLIC_KEY_FILE)).expect("rm pub");
    let message = corrupt_message(SledStore::open_existing(&b, SledConfig::default()));
    assert!(
        message.contains("not signed by this store's key"),
        "{message}"
    );
}

#[test]
fn a_rotated_key_still_accepts_checkpoints_signed_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    add_runs(&path, 1, json!({}));
    let old_public = std::fs::read_to_string(path.join(PUBLIC_KEY_FILE)).expect("public");
    std::fs::rename(path.join(KEY_FILE), dir.path().join("retired.key")).expect("retire");
    std::fs::remove_file(path.join(PUBLIC_KEY_FILE)).expect("rm pub");
    std::fs::write(path.join(RETIRED_KEYS_FILE), &old_public).expect("retired list");
    add_runs(&path, 1, json!({}));
    let new_public = std::fs::read_to_string(path.join(PUBLIC_KEY_FILE)).expect("new public");
    assert_ne!(old_public, new_public);
    let all = read_checkpoints(&path).expect("checkpoints");
    let old_key = CheckpointKey::parse(&old_public).expect("old key");
    let new_key = CheckpointKey::parse(&new_public).expect("new key");
    assert!(all.first().expect("first").verify(&old_key).is_ok());
    assert!(all.last().expect("last").verify(&new_key).is_ok());
    SledStore::open_existing(&path, SledConfig::default()).expect("opens after rotation");
}

#[test]
fn a_key_file_outside_the_store_and_unsigned_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let key_path = dir.path().join("keys").join("ledgerflow.key");
    std::fs::create_dir_all(key_path.parent().expect("parent")).expect("mkdir");
    let config = SledConfig {
        checkpoints: CheckpointConfig {
            signing: Signing::KeyFile(key_path.clone()),
            ..CheckpointConfig::default()
        },
        ..SledConfig::default()
    };
    let store = SledStore::open_with(&path, config.clone()).expect("open");
    store.close().expect("close");
    drop(store);
    assert!(key_path.exists() && !path.join(KEY_FILE).exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the private key is readable by its owner only"
        );
    }
    let unsigned = dir.path().join("unsigned");
    let config = SledConfig {
        checkpoints: CheckpointConfig {
            signing: Signing::Unsigned,
            ..CheckpointConfig::default()
        },
        ..SledConfig::default()
    };
    let store = Arc::new(SledStore::open_with(&unsigned, config).expect("open"));
    let engine = engine(Arc::clone(&store));
    let run = engine.start(("count", 1), json!({})).expect("start");
    engine.tick(run).expect("tick");
    store.close().expect("close");
    let latest = latest_checkpoint(&unsigned)
        .expect("read")
        .expect("checkpoint");
    assert!(!latest.signed);
    assert!(!unsigned.join(KEY_FILE).exists());
}

#[test]
fn every_acknowledged_commit_is_checkpointed_at_most_one_group_later() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SledStore::open(dir.path()).expect("open"));
    let engine = engine(Arc::clone(&store));
    let mut acked = Vec::new();
    for _ in 0..20 {
        let run = engine.start(("count", 1), json!({"to": 1})).expect("start");
        engine.tick(run).expect("tick");
        acked.push(store.feed_head().expect("head"));
        // One commit at a time: each is its own group, so once commit k is acknowledged
        // a checkpoint covers commit k - 1.
        if acked.len() >= 2 {
            let before = acked[acked.len() - 2];
            assert!(
                store.checkpointed_size() >= before,
                "checkpoint {} does not cover {before}",
                store.checkpointed_size()
            );
        }
    }
    // Concurrent committers share groups; the same bound holds per group.
    let engine = Arc::new(engine);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                for _ in 0..10 {
                    let run = engine.start(("count", 1), json!({"to": 2})).expect("start");
                    engine.tick(run).expect("tick");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    let head = store.feed_head().expect("head");
    store.sync().expect("sync");
    assert_eq!(store.checkpointed_size(), head);
}

/// A store written by ledgerflow before the global log (store format 1, kept in
/// `tests/golden/store-v1`) opens: its log is built from its feed once, the format is
/// upgraded, and everything still checks.
#[test]
fn a_format_1_store_gets_its_log_built_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/store-v1"),
        &path,
    );
    let store = SledStore::open_existing(&path, SledConfig::default()).expect("open format 1");
    let report = store.check().expect("check");
    assert!(report.runs > 0 && report.records > 0);
    let head = log_head(&store).expect("head");
    assert_eq!(head.size, report.records);
    let first = store.read_feed(0, 1).expect("feed")[0].clone();
    let proof = ledgerflow_kernel::prove_record(&store, first.run_id, first.seq, None)
        .expect("a record of the old store has a proof");
    proof.verify(head.root).expect("verifies");
    store.close().expect("close");
    drop(store);
    assert_eq!(
        latest_checkpoint(&path).expect("read").map(|c| c.head.size),
        Some(head.size)
    );
    let marker = std::fs::read_to_string(path.join("ledgerflow.store")).expect("marker");
    assert!(marker.starts_with("ledgerflow-sled/3\n"), "{marker}");
    let again = SledStore::open_existing(&path, SledConfig::default()).expect("reopen");
    assert_eq!(log_head(&again).expect("head"), head);
}

/// A crash while appending leaves part of an entry after the last complete one; the next
/// open clears it and the log stays readable, with later checkpoints after it.
#[test]
fn a_torn_checkpoint_entry_is_cleared_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let size = add_runs(&path, 1, json!({}));
    let log = path.join(CHECKPOINT_LOG_FILE);
    let mut bytes = std::fs::read(&log).expect("log");
    let end = bytes.iter().rposition(|b| *b != 0).expect("entries") + 1;
    let fragment = format!("ledgerflow/{}\n{}\nAAAA", "ab".repeat(16), size + 3);
    bytes[end..end + fragment.len()].copy_from_slice(fragment.as_bytes());
    std::fs::write(&log, &bytes).expect("write");
    assert_eq!(
        latest_checkpoint(&path)
            .expect("a torn tail is no error")
            .map(|c| c.head.size),
        Some(size)
    );
    let more = add_runs(&path, 1, json!({}));
    assert!(more > size);
    let all = read_checkpoints(&path).expect("readable after the torn entry");
    assert_eq!(all.last().map(|c| c.head.size), Some(more));
    SledStore::open_existing(&path, SledConfig::default()).expect("reopens");
}

/// The checkpoint log is rotated when it would pass its bound; the latest checkpoint is
/// always found, and the store reopens.
#[test]
fn the_checkpoint_log_rotates_at_its_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let config = SledConfig {
        checkpoints: CheckpointConfig {
            log_bytes_max: 1_000,
            ..CheckpointConfig::default()
        },
        ..SledConfig::default()
    };
    let store = Arc::new(SledStore::open_with(&path, config.clone()).expect("open"));
    let engine = engine(Arc::clone(&store));
    for _ in 0..10 {
        let run = engine.start(("count", 1), json!({"to": 2})).expect("start");
        engine.tick(run).expect("tick");
    }
    let head = store.feed_head().expect("head");
    drop(engine);
    store.close().expect("close");
    drop(store);
    assert!(path.join(format!("{CHECKPOINT_LOG_FILE}.1")).exists());
    assert!(
        std::fs::metadata(path.join(CHECKPOINT_LOG_FILE))
            .expect("log")
            .len()
            < 1 << 21
    );
    assert_eq!(
        latest_checkpoint(&path).expect("read").map(|c| c.head.size),
        Some(head)
    );
    SledStore::open_existing(&path, config).expect("reopens");
}

/// A checkpoint that cannot be written does not turn a durable commit into an error; it
/// poisons the store (writes refused until reopened), and reopening checkpoints
/// everything.
#[test]
fn a_failed_checkpoint_poisons_the_store_but_not_the_durable_commit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let store = Arc::new(SledStore::open(&path).expect("open"));
    let engine = engine(Arc::clone(&store));
    let first = engine.start(("count", 1), json!({"to": 1})).expect("start");
    store.inject_checkpoint_failure();
    // The checkpoint of this commit (or the next) fails; the commits that are durable
    // still return Ok, and then writes are refused.
    let mut refused = None;
    for _ in 0..5 {
        match engine.start(("count", 1), json!({"to": 1})) {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        }
    }
    let refused = refused.expect("writes are refused after the checkpoint failed");
    assert!(refused.contains("checkpoint"), "{refused}");
    let head = store.feed_head().expect("head");
    drop(engine);
    drop(store);
    let reopened = SledStore::open_existing(&path, SledConfig::default()).expect("reopens");
    assert!(reopened.load(first).expect("load").is_some());
    assert_eq!(reopened.feed_head().expect("head"), head);
    reopened.close().expect("close");
    assert_eq!(
        latest_checkpoint(&path).expect("read").map(|c| c.head.size),
        Some(head)
    );
}
