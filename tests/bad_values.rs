//! Bad input at the door, on both stores: values nested too deep are refused with a typed
//! error (or fail only their own run), nothing stored changes, and every other run stays
//! readable; `respond` answers only waits a person or an event answers; `check` reports
//! events no run can ever consume.

use std::sync::Arc;

use ledgerflow::{
    Effect, EffectOutcome, Engine, ErrorKind, FailureCode, ManualClock, MemoryStore, RunStatus,
    ScheduledRuntime, SledStore, StepContext, StepPlan, Store, SubworkflowMode, WorkflowSpec,
};
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000_000;

/// An array nested `depth` levels deep.
fn nested(depth: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..depth {
        value = Value::Array(vec![value]);
    }
    value
}

fn each_store(test: impl Fn(Arc<Engine>, Option<&SledStore>)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sled = Arc::new(SledStore::open(dir.path()).expect("sled"));
    for store in [None, Some(Arc::clone(&sled))] {
        let dyn_store: Arc<dyn Store> = match &store {
            Some(sled) => Arc::clone(sled) as Arc<dyn Store>,
            None => Arc::new(MemoryStore::new()),
        };
        let engine = Arc::new(Engine::new(dyn_store, Arc::new(ManualClock::new(T0))));
        engine.register(
            WorkflowSpec::builder("deep", 1)
                .node("set", |ctx: &mut StepContext<'_>| {
                    let depth = ctx.var("depth").and_then(Value::as_u64).unwrap_or(0);
                    ctx.set("value", nested(depth as usize));
                    StepPlan::effect(Effect::wait_event(format!("go-{depth}")).result_key("r"))
                        .then_next("call")
                })
                .node("call", |_: &mut StepContext<'_>| {
                    StepPlan::effect(Effect::custom("deep_result", json!({})))
                        .then_complete(json!("done"))
                })
                .entry("set")
                .build()
                .expect("valid spec"),
        );
        engine
            .register_effect("deep_result", |_: &ledgerflow::EffectCall<'_>| {
                EffectOutcome::Completed(nested(300))
            })
            .expect("handler");
        test(engine, store.as_deref());
    }
}

#[test]
fn values_nested_too_deep_are_refused_at_the_door() {
    each_store(|engine, sled| {
        let fine = engine
            .start(("deep", 1), json!({"depth": 3}))
            .expect("start");
        assert_eq!(engine.tick(fine).expect("tick").status, RunStatus::Waiting);
        let runs_before = engine.store().list_runs(None, None, 100).expect("list");

        // Input from outside: refused, nothing stored.
        let e = engine
            .start(("deep", 1), json!({"x": nested(200)}))
            .expect_err("too deep");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
        assert!(e.to_string().contains("over the limit of 64"), "{e}");
        let e = engine.deliver("go-3", nested(200)).expect_err("too deep");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        let e = engine
            .resume(fine, "go-3", nested(65))
            .expect_err("too deep");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert_eq!(
            engine.store().list_runs(None, None, 100).expect("list"),
            runs_before
        );
        assert!(engine.store().inbox("go-3", 10).expect("inbox").is_empty());
        assert_eq!(engine.load(fine).expect("load").status, RunStatus::Waiting);

        // A value at the limit is fine.
        let edge = engine
            .start(("deep", 1), json!({"x": nested(64)}))
            .expect("at the limit");
        assert_eq!(engine.load(edge).expect("load").status, RunStatus::Running);

        // A handler's value: fails its own run only, with a coded failure.
        let bad = engine
            .start(("deep", 1), json!({"depth": 200}))
            .expect("start");
        let failed = engine.tick(bad).expect("tick");
        assert_eq!(failed.status, RunStatus::Failed);
        let failure = failed.failure.expect("failure");
        assert_eq!(
            failure.code,
            FailureCode::LimitExceeded,
            "{}",
            failure.message
        );

        // An effect handler's result: fails the effect, so the run.
        let done = engine.resume(fine, "go-3", json!("go")).expect("resume");
        assert_eq!(done.status, RunStatus::Failed, "{done:?}");

        // Every run stays readable, and the store checks.
        for run in engine.store().list_runs(None, None, 100).expect("list") {
            engine.verify_run(run).expect("readable and verifies");
        }
        if let Some(sled) = sled {
            let report = sled.check().expect("check");
            assert!(report.orphaned_inboxes.is_empty());
        }
    });
}

fn parent_and_child() -> [WorkflowSpec; 2] {
    let child = WorkflowSpec::builder("child", 1)
        .node("ask", |_: &mut StepContext<'_>| {
            StepPlan::effect(Effect::ask_user("ok?", &["yes", "no"]).result_key("a"))
                .then_next("done")
        })
        .node("done", |ctx: &mut StepContext<'_>| {
            StepPlan::complete(ctx.var("a").cloned().unwrap_or_default())
        })
        .entry("ask")
        .build()
        .expect("valid spec");
    let parent = WorkflowSpec::builder("parent", 1)
        .node("spawn", |_: &mut StepContext<'_>| {
            StepPlan::effect(
                Effect::start_subworkflow("child", 1, json!({}), SubworkflowMode::Sync)
                    .result_key("child"),
            )
            .then_next("done")
        })
        .node("done", |ctx: &mut StepContext<'_>| {
            StepPlan::complete(ctx.var("child").cloned().unwrap_or_default())
        })
        .entry("spawn")
        .build()
        .expect("valid spec");
    [parent, child]
}

#[test]
fn respond_answers_people_and_events_not_children_or_timers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let [parent, child] = parent_and_child();
    let runtime = ScheduledRuntime::builder()
        .sled(dir.path())
        .register(parent)
        .register(child)
        .start()
        .expect("start");
    let run = runtime.run(("parent", 1), json!({})).expect("run");
    assert_eq!(run.status, RunStatus::Waiting);
    let e = runtime
        .respond(run.run_id, json!("yes"))
        .expect_err("not an answer");
    assert_eq!(e.kind(), ErrorKind::InvalidState);
    assert!(e.to_string().contains("child workflow"), "{e}");
    let child_id = runtime
        .engine()
        .store()
        .children(run.run_id, None, 10)
        .expect("children")[0];
    // The child runs on the workers: wait for it to ask.
    runtime
        .await_waiting(child_id, std::time::Duration::from_secs(30))
        .expect("the child asks");
    runtime
        .respond(child_id, json!("yes"))
        .expect("the child asks a person");
    let done = runtime
        .await_end(run.run_id, std::time::Duration::from_secs(30))
        .expect("the parent gets the child's result");
    assert_eq!(done.output.expect("output")["output"], json!("yes"));
    runtime.stop().expect("stop");
    assert!(runtime
        .store()
        .check()
        .expect("check")
        .orphaned_inboxes
        .is_empty());
}

#[test]
fn check_reports_events_no_run_can_consume() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SledStore::open(dir.path()).expect("open"));
    let engine = Engine::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::new(ManualClock::new(T0)),
    );
    let [parent, child] = parent_and_child();
    engine.register(parent);
    engine.register(child);
    let run = engine.start(("parent", 1), json!({})).expect("start");
    engine.tick(run).expect("tick");
    let child_id = store.children(run, None, 10).expect("children")[0];
    engine.respond(child_id, json!("no")).expect("answer");
    assert_eq!(engine.load(run).expect("load").status, RunStatus::Completed);
    assert!(store.check().expect("check").orphaned_inboxes.is_empty());
    // An event for the parent's child key after it moved on: no run can ever take it.
    let key = format!("child:{child_id}");
    engine.deliver(&key, json!("late")).expect("queued");
    // A user's own key with a queued event is not an orphan: a run may wait on it later.
    engine.deliver("invoice-9", json!(1)).expect("queued");
    let report = store.check().expect("check");
    assert_eq!(report.orphaned_inboxes, vec![(key, 1)]);
}
