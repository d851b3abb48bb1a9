//! Reopening a sled store restores every run, wait, timer, inbox entry, snapshot and
//! artifact; missing and foreign directories give typed errors; fsync failures are
//! reported and not acknowledged.

use std::sync::Arc;

use ledgerflow_kernel::store::{Error, Store};
use ledgerflow_kernel::SnapshotFilter;
use ledgerflow_kernel::{
    Delivered, Effect, Engine, ManualClock, RunStatus, StepContext, StepPlan, WorkflowSpec,
};
use ledgerflow_sled::{Durability, SledConfig, SledStore};
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000_000;

fn waits(effect: Effect, id: &str) -> WorkflowSpec {
    WorkflowSpec::builder(id, 1)
        .node("wait", move |_: &mut StepContext<'_>| {
            StepPlan::effect(effect.clone()).then_next("done")
        })
        .node("done", |ctx: &mut StepContext<'_>| {
            StepPlan::complete(ctx.var("r").cloned().unwrap_or(Value::Null))
        })
        .entry("wait")
        .build()
        .expect("valid spec")
}

fn engine(store: Arc<SledStore>, clock: &ManualClock) -> Engine {
    let engine = Engine::new(store, Arc::new(clock.clone()));
    engine.register(waits(Effect::wait_event("evt").result_key("r"), "event"));
    engine.register(waits(
        Effect::wait_until(T0 + 1_000).result_key("r"),
        "timer",
    ));
    engine.register(waits(Effect::wait_event("early").result_key("r"), "early"));
    engine
}

#[test]
fn reopen_restores_runs_waits_timers_inbox_snapshots_artifacts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let clock = ManualClock::new(T0);
    let (event_run, timer_run, artifact);
    {
        let store = Arc::new(SledStore::open(&path).expect("create"));
        let engine = engine(Arc::clone(&store), &clock);
        event_run = engine
            .start(("event", 1), json!({"who": "ada"}))
            .expect("start");
        engine.tick(event_run).expect("tick");
        timer_run = engine.start(("timer", 1), json!({})).expect("start");
        engine.tick(timer_run).expect("tick");
        assert_eq!(
            engine.deliver("early", json!("queued")).expect("deliver"),
            Delivered::Queued(1)
        );
        engine
            .create_snapshot(
                event_run,
                "before-answer",
                "waiting for evt",
                &["review", "v1"],
            )
            .expect("snapshot");
        artifact = store
            .put_artifact(
                &vec![7u8; 300_000],
                "application/octet-stream",
                Some(event_run),
            )
            .expect("artifact");
        store.close().expect("close");
        assert!(
            matches!(store.deliver("x", json!(1), T0), Err(Error::Closed)),
            "closed store rejects writes"
        );
        assert!(store.load(event_run).expect("reads still work").is_some());
    }
    let store = Arc::new(SledStore::open(&path).expect("reopen"));
    let report = store.check().expect("check after reopen");
    assert_eq!((report.runs, report.records), (2, 4));
    assert_eq!(store.waiting_on("evt").expect("index"), Some(event_run));
    let timer = store.next_timer().expect("timers").expect("timer survived");
    assert_eq!((timer.run_id, timer.due_at_ms), (timer_run, T0 + 1_000));
    assert_eq!(store.inbox("early", 10).expect("inbox").len(), 1);
    let snapshots = store
        .list_snapshots(
            &SnapshotFilter {
                tag: Some("review".into()),
                ..SnapshotFilter::default()
            },
            10,
        )
        .expect("snapshots");
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].seq, 2);
    assert_eq!(
        store.get_artifact(&artifact.digest).expect("read"),
        Some(vec![7u8; 300_000])
    );
    assert_eq!(
        store.artifacts_of_run(event_run, 10).expect("list"),
        vec![artifact.clone()]
    );

    // The reopened store carries on: the event resumes, the timer fires, the inbox drains.
    let engine = engine(Arc::clone(&store), &clock);
    let done = engine
        .resume(event_run, "evt", json!("yes"))
        .expect("resume");
    assert_eq!(done.output, Some(json!("yes")));
    clock.advance_ms(1_000);
    assert_eq!(engine.fire_due_timers(10).expect("fire"), 1);
    assert_eq!(
        engine.load(timer_run).expect("load").status,
        RunStatus::Completed
    );
    let early = engine.start(("early", 1), json!({})).expect("start");
    assert_eq!(
        engine.tick(early).expect("tick").output,
        Some(json!("queued"))
    );
    let at_snapshot = engine
        .snapshot_state(event_run, "before-answer")
        .expect("snapshot state");
    assert_eq!(at_snapshot.status, RunStatus::Waiting);
    assert_eq!(at_snapshot.vars.get("who"), Some(&json!("ada")));
    store.check().expect("check after more work");
}

#[test]
fn artifacts_are_content_addressed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open(dir.path()).expect("create");
    let a = store
        .put_artifact(b"hello", "text/plain", None)
        .expect("put");
    let b = store
        .put_artifact(b"hello", "text/plain", None)
        .expect("put again");
    assert_eq!(a, b);
    assert_eq!(a.digest, ledgerflow_kernel::Hash::of(b"hello"));
    assert!(store.has_artifact(&a.digest).expect("has"));
    assert_eq!(
        store
            .get_artifact(&ledgerflow_kernel::Hash::of(b"other"))
            .expect("get"),
        None
    );
    let too_big = vec![0u8; (64 << 20) + 1];
    assert!(matches!(
        store.put_artifact(&too_big, "x", None),
        Err(Error::ValueTooLarge { .. })
    ));
}

#[test]
fn missing_and_foreign_directories_are_typed_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nothing-here");
    match SledStore::open_existing(&missing, SledConfig::default()) {
        Err(Error::Missing(message)) => assert!(message.contains("nothing-here"), "{message}"),
        other => panic!("expected Missing, got {other:?}"),
    }
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    assert!(matches!(
        SledStore::open_existing(&empty, SledConfig::default()),
        Err(Error::Missing(_))
    ));
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    assert!(SledStore::open(&file).is_err(), "a file is not a store");
}

/// The two durable modes: sled flushed and fsynced per group, or the commit log.
fn durable_modes() -> [SledConfig; 2] {
    [Durability::Sync, Durability::default()].map(|durability| SledConfig {
        durability,
        ..SledConfig::default()
    })
}

#[test]
fn failed_fsync_is_reported_and_poisons_the_store() {
    for config in durable_modes() {
        failed_fsync_poisons(config);
    }
}

fn failed_fsync_poisons(config: SledConfig) {
    let commit_log = matches!(config.durability, Durability::Log { .. });
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SledStore::open_with(dir.path(), config).expect("create"));
    let engine = engine(Arc::clone(&store), &ManualClock::new(T0));
    let run = engine.start(("event", 1), json!({})).expect("start");
    store.inject_fsync_failure();
    match engine.tick(run) {
        Err(ledgerflow_kernel::Error::Store(Error::Io { message, source })) => {
            assert!(message.contains("fsync"), "{message}");
            // The commit log keeps the operating system's error as the source.
            if commit_log {
                let source = source.expect("the fsync's own error");
                assert_eq!(source.to_string(), "injected failure");
            }
        }
        other => panic!("expected an fsync error, got {other:?}"),
    }
    // Not acknowledged, and no later write is either: the store must be reopened.
    assert!(matches!(
        engine.start(("event", 1), json!({})),
        Err(ledgerflow_kernel::Error::Store(Error::Io { .. }))
    ));
    assert!(matches!(
        store.deliver("k", json!(1), T0),
        Err(Error::Io { .. })
    ));
}

#[test]
fn batched_and_none_modes_commit_and_reopen() {
    for durability in [Durability::Batched { max_delay_ms: 5 }, Durability::None] {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = SledConfig {
            durability,
            ..SledConfig::default()
        };
        let run = {
            let store = Arc::new(SledStore::open_with(dir.path(), config.clone()).expect("create"));
            let engine = engine(Arc::clone(&store), &ManualClock::new(T0));
            let run = engine.start(("event", 1), json!({})).expect("start");
            engine.tick(run).expect("tick");
            run
        };
        let store = SledStore::open_with(dir.path(), config).expect("reopen");
        assert_eq!(
            store.load(run).expect("load").map(|s| s.status),
            Some(RunStatus::Waiting),
            "{durability:?}"
        );
        store.check().expect("check");
    }
}

#[test]
fn durable_modes_fsync_and_concurrent_commits_share_fsyncs() {
    for config in durable_modes() {
        concurrent_commits_share_fsyncs(config);
    }
}

fn concurrent_commits_share_fsyncs(config: SledConfig) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SledStore::open_with(dir.path(), config).expect("create"));
    let engine = Arc::new(engine(Arc::clone(&store), &ManualClock::new(T0)));
    let before = store.fsyncs();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                for _ in 0..25 {
                    engine.start(("event", 1), json!({})).expect("start");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let fsyncs = store.fsyncs() - before;
    assert!(fsyncs > 0, "a durable mode fsyncs");
    assert!(fsyncs <= 200, "at most one fsync per commit, got {fsyncs}");
    assert_eq!(
        store
            .list_runs(Some(RunStatus::Running), None, 1_000)
            .expect("list")
            .len(),
        200
    );
}

/// The `runs` tree holds a snapshot of each run's state, not always its head: a run
/// stopped in the middle of a long stretch of steps loads from its last snapshot and the
/// records after it, in a fresh process (no state kept in memory) as in the one that
/// wrote it, and a damaged record after the snapshot is reported when the run is loaded.
#[test]
fn a_running_run_loads_from_its_snapshot_and_the_records_after_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let steps = WorkflowSpec::builder("count", 1)
        .node("n", |ctx: &mut StepContext<'_>| {
            let n = ctx.var("n").and_then(Value::as_u64).unwrap_or(0);
            ctx.set("n", json!(n + 1));
            StepPlan::next("n")
        })
        .entry("n")
        .build()
        .expect("valid spec");
    let run = {
        let store = Arc::new(SledStore::open(&path).expect("create"));
        let engine = Engine::with_config(
            Arc::clone(&store) as Arc<dyn Store>,
            Arc::new(ManualClock::new(T0)),
            // A commit per step, so the steps cross multiples of 16 one at a time.
            ledgerflow_kernel::EngineConfig {
                steps_per_tick_max: 40,
                records_per_commit_max: 1,
                ..ledgerflow_kernel::EngineConfig::default()
            },
        );
        engine.register(steps);
        let run = engine.start(("count", 1), json!({})).expect("start");
        let state = engine.tick(run).expect("tick");
        assert_eq!(state.status, RunStatus::Running, "over its step budget");
        assert_eq!(store.load(run).expect("load").as_ref(), Some(&state));
        store.close().expect("close");
        run
    };
    let head = 41; // `started`, then 40 steps
                   // The stored snapshot is the one of the last multiple of 16 the steps crossed.
    let snapshot_seq = {
        let db = raw_open(&path);
        let value = db
            .open_tree("runs")
            .expect("tree")
            .get(run.as_bytes())
            .expect("read")
            .expect("a snapshot");
        // Version byte, then the envelope's head seq (u64, little-endian).
        u64::from_le_bytes(value[1..9].try_into().expect("8 bytes"))
    };
    assert_eq!(
        snapshot_seq,
        head / ledgerflow_sled::STATE_SNAPSHOT_RECORDS * ledgerflow_sled::STATE_SNAPSHOT_RECORDS
    );
    let store = SledStore::open(&path).expect("reopen");
    let records = store.read_records(run, 1, 1_000).expect("records");
    assert_eq!(records.len() as u64, head);
    let loaded = store.load(run).expect("load").expect("the run");
    assert_eq!(loaded, ledgerflow_kernel::replay(&records).expect("replay"));
    assert_eq!(loaded.vars.get("n"), Some(&json!(40)));
    store.check().expect("check");
    drop(store);
    // Damage the last record's body (its hash no longer matches): loading the run, which
    // replays it onto the snapshot, reports it.
    {
        let db = raw_open(&path);
        let tree = db.open_tree("records").expect("tree");
        let (key, value) = tree
            .scan_prefix(run.as_bytes())
            .last()
            .expect("a record")
            .expect("read");
        let mut value = value.to_vec();
        value[20] ^= 0x01;
        tree.insert(key, value).expect("write");
        db.flush().expect("flush");
    }
    let store = SledStore::open(&path).expect("reopen");
    assert!(matches!(store.load(run), Err(Error::Corrupt(_))));
    assert!(matches!(store.check(), Err(Error::Corrupt(_))));
}

/// Opens a closed store's sled database directly, with the segment size it was made with.
fn raw_open(path: &std::path::Path) -> sled::Db {
    sled::Config::new()
        .path(path)
        .segment_size(
            ledgerflow_sled::segment_size_of(path)
                .expect("conf")
                .expect("a store"),
        )
        .open()
        .expect("raw open")
}
