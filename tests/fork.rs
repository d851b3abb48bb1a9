//! Fork / time travel on both stores: a new run from any earlier seq (or a snapshot),
//! whose first record cites the parent's record hash; `verify_lineage` checks it.

use std::sync::Arc;

use ledgerflow::ledger::verify_chain;
use ledgerflow::{
    replay, Effect, Engine, Error, ManualClock, MemoryStore, RunStatus, SledStore, StepContext,
    StepPlan, Store, WorkflowSpec,
};
use serde_json::{json, Value};

fn spec() -> WorkflowSpec {
    WorkflowSpec::builder("decide", 1)
        .node("prepare", |ctx: &mut StepContext<'_>| {
            ctx.set("prepared", json!(true));
            StepPlan::next("ask")
        })
        .node("ask", |_: &mut StepContext<'_>| {
            StepPlan::effect(Effect::ask_user("Which way?", &["left", "right"]).result_key("way"))
                .then_next("go")
        })
        .node("go", |ctx: &mut StepContext<'_>| {
            StepPlan::complete(json!({ "went": ctx.var("way").cloned().unwrap_or(Value::Null) }))
        })
        .entry("prepare")
        .build()
        .expect("valid spec")
}

fn check(engine: &Engine, run: ledgerflow::RunId) {
    let records = engine.records(run, 1, 100).expect("records");
    verify_chain(&records).expect("chain");
    assert_eq!(
        replay(&records).expect("replay"),
        engine.load(run).expect("load")
    );
}

/// A store to test on, with the sled store itself when it is one.
type StoreUnderTest = (Arc<dyn Store>, Option<Arc<SledStore>>);

fn each_store(test: impl Fn(Engine, Option<Arc<SledStore>>)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sled = Arc::new(SledStore::open(dir.path()).expect("sled"));
    let stores: Vec<StoreUnderTest> = vec![
        (Arc::new(MemoryStore::new()), None),
        (Arc::clone(&sled) as Arc<dyn Store>, Some(sled)),
    ];
    for (store, sled) in stores {
        let engine = Engine::new(store, Arc::new(ManualClock::new(1_700_000_000_000)));
        engine.register(spec());
        test(engine, sled);
    }
}

#[test]
fn fork_from_a_waiting_seq_takes_another_path_and_leaves_the_parent_alone() {
    each_store(|engine, _| {
        let run = engine.start(("decide", 1), json!({})).expect("start");
        engine.tick(run).expect("tick"); // started, advanced, waiting
        let parent_key = engine
            .load(run)
            .expect("load")
            .waiting
            .and_then(|w| w.wait_key)
            .expect("key");
        let done = engine
            .resume(run, &parent_key, json!("left"))
            .expect("answer");
        assert_eq!(done.output, Some(json!({ "went": "left" })));

        // Go back to seq 3 (waiting for the answer) and answer differently.
        let fork = engine.fork(run, 3).expect("fork");
        let forked = engine.load(fork).expect("load");
        assert_eq!(forked.status, RunStatus::Waiting);
        assert_eq!(forked.vars.get("prepared"), Some(&json!(true)));
        let fork_key = forked.waiting.and_then(|w| w.wait_key).expect("fork waits");
        assert_eq!(fork_key, format!("fork:{fork}:{parent_key}"));
        let other = engine
            .resume(fork, &fork_key, json!("right"))
            .expect("answer the fork");
        assert_eq!(other.output, Some(json!({ "went": "right" })));

        assert_eq!(
            engine.load(run).expect("parent").output,
            Some(json!({ "went": "left" })),
            "parent unchanged"
        );
        assert_eq!(engine.verify_lineage(fork).expect("lineage"), (run, 3));
        let first = engine.records(fork, 1, 1).expect("records");
        assert_eq!(first[0].kind(), "forked");
        assert_eq!(
            first[0].body()["from_record_hash"],
            json!(engine.records(run, 3, 1).expect("r")[0].hash())
        );
        check(&engine, fork);
        check(&engine, run);
    });
}

#[test]
fn fork_from_a_running_seq_runs_again() {
    each_store(|engine, _| {
        let run = engine.start(("decide", 1), json!({})).expect("start");
        engine.tick(run).expect("tick");
        let fork = engine.fork(run, 1).expect("fork at started");
        let state = engine.tick(fork).expect("tick the fork");
        assert_eq!(state.status, RunStatus::Waiting);
        assert_eq!(engine.verify_lineage(fork).expect("lineage"), (run, 1));
        check(&engine, fork);
    });
}

#[test]
fn fork_refuses_ended_and_out_of_range_seqs() {
    each_store(|engine, _| {
        let run = engine.start(("decide", 1), json!({})).expect("start");
        engine.tick(run).expect("tick");
        let key = engine
            .load(run)
            .expect("load")
            .waiting
            .and_then(|w| w.wait_key)
            .expect("key");
        let done = engine.resume(run, &key, json!("left")).expect("answer");
        assert!(
            matches!(
                engine.fork(run, done.head.seq),
                Err(Error::InvalidInput { .. })
            ),
            "ended"
        );
        assert!(matches!(
            engine.fork(run, 0),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            engine.fork(run, done.head.seq + 1),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            engine.fork(ledgerflow::RunId::new_v4(), 1),
            Err(Error::RunNotFound { .. })
        ));
        assert!(
            matches!(
                engine.verify_lineage(run),
                Err(Error::LineageMismatch { .. })
            ),
            "not a fork"
        );
    });
}

#[test]
fn fork_at_a_snapshot() {
    each_store(|engine, _| {
        let run = engine.start(("decide", 1), json!({})).expect("start");
        let waiting = engine.tick(run).expect("tick");
        let snapshot = engine
            .create_snapshot(run, "before-answer", "", &["checkpoint"])
            .expect("snapshot");
        assert_eq!(
            engine.snapshot(run, "before-answer").expect("found"),
            snapshot
        );
        let key = engine
            .load(run)
            .expect("load")
            .waiting
            .and_then(|w| w.wait_key)
            .expect("key");
        engine.resume(run, &key, json!("left")).expect("answer");
        let fork = engine
            .fork(run, snapshot.seq)
            .expect("fork at the snapshot");
        assert_eq!(
            engine.verify_lineage(fork).expect("lineage"),
            (run, snapshot.seq)
        );
        assert_eq!(engine.load(fork).expect("load").status, RunStatus::Waiting);
        // The snapshot still replays to the state it marked, though the run moved on.
        assert_eq!(
            engine
                .snapshot_state(run, "before-answer")
                .expect("replayed"),
            waiting
        );
        let missing = engine.snapshot(run, "never-made");
        assert_eq!(
            missing.err().map(|e| e.kind()),
            Some(ledgerflow::ErrorKind::NotFound)
        );
    });
}
