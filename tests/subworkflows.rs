//! Subworkflows on both stores: sync (the parent waits for the child's result, including
//! failures), async (the parent carries on with the child's id), links, depth bound.

use std::sync::Arc;

use ledgerflow::ledger::verify_chain;
use ledgerflow::{
    replay, Effect, Engine, FailureCode, ManualClock, MemoryStore, RunId, RunStatus, SledStore,
    StepContext, StepPlan, Store, WorkflowSpec,
};
use serde_json::{json, Value};

type Ctx<'a> = StepContext<'a>;

fn stores() -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sled = Arc::new(SledStore::open(dir.path()).expect("sled"));
    vec![
        ("memory", Arc::new(MemoryStore::new()), None),
        ("sled", sled, Some(dir)),
    ]
}

fn engine(store: Arc<dyn Store>) -> Engine {
    let engine = Engine::new(store, Arc::new(ManualClock::new(1_700_000_000_000)));
    engine.register(
        WorkflowSpec::builder("child", 1)
            .node("work", |ctx: &mut Ctx<'_>| {
                let n = ctx.var("n").and_then(Value::as_i64).unwrap_or(0);
                match ctx.var("mode").and_then(Value::as_str) {
                    Some("fail") => StepPlan::fail(format!("cannot handle {n}")),
                    Some("ask") => {
                        StepPlan::effect(Effect::ask_user("approve child?", &[]).result_key("ok"))
                            .then_complete(json!(n * 10))
                    }
                    _ => StepPlan::complete(json!(n * 2)),
                }
            })
            .entry("work")
            .build()
            .expect("valid spec"),
    );
    engine.register(
        WorkflowSpec::builder("parent", 1)
            .node("spawn", |ctx: &mut Ctx<'_>| {
                let input = json!({ "n": 21, "mode": ctx.var("child_mode").cloned().unwrap_or(Value::Null) });
                let payload = json!({ "workflow_id": "child", "version": 1, "input": input, "mode": "sync" });
                StepPlan::effect(Effect::custom("start_subworkflow", payload).result_key("child")).then_next("join")
            })
            .node("join", |ctx: &mut Ctx<'_>| {
                let child = ctx.var("child").cloned().unwrap_or_default();
                match child["status"].as_str() {
                    Some("completed") => StepPlan::complete(json!({ "got": child["output"] })),
                    _ => StepPlan::complete(json!({ "child_failed": child["failure"]["message"] })),
                }
            })
            .entry("spawn")
            .build()
            .expect("valid spec"),
    );
    engine.register(
        WorkflowSpec::builder("fire-and-forget", 1)
            .node("spawn", |_: &mut Ctx<'_>| {
                let payload = json!({ "workflow_id": "child", "version": 1, "input": { "n": 4 }, "mode": "async" });
                StepPlan::effect(Effect::custom("start_subworkflow", payload).result_key("child_id")).then_next("done")
            })
            .node("done", |ctx: &mut Ctx<'_>| StepPlan::complete(ctx.var("child_id").cloned().unwrap_or_default()))
            .entry("spawn")
            .build()
            .expect("valid spec"),
    );
    engine.register(
        WorkflowSpec::builder("recurse", 1)
            .node("again", |_: &mut Ctx<'_>| {
                let payload = json!({ "workflow_id": "recurse", "version": 1, "mode": "sync" });
                StepPlan::effect(Effect::custom("start_subworkflow", payload).result_key("inner"))
                    .then_complete(json!("unreachable"))
            })
            .entry("again")
            .build()
            .expect("valid spec"),
    );
    engine
}

fn consistent(engine: &Engine, run: RunId) {
    let records = engine.records(run, 1, 10_000).expect("records");
    verify_chain(&records).expect("chain");
    assert_eq!(
        replay(&records).expect("replay"),
        engine.load(run).expect("load")
    );
}

fn only_child(engine: &Engine, parent: RunId) -> RunId {
    let children = engine.store().children(parent, None, 10).expect("children");
    assert_eq!(children.len(), 1, "one child");
    children[0]
}

#[test]
fn sync_subworkflow_resumes_the_parent_with_the_childs_output() {
    for (name, store, _dir) in stores() {
        let engine = engine(store);
        let parent = engine.start(("parent", 1), json!({})).expect("start");
        let done = engine.tick(parent).expect("tick");
        assert_eq!(done.status, RunStatus::Completed, "{name}");
        assert_eq!(done.output, Some(json!({ "got": 42 })), "{name}");
        let child = only_child(&engine, parent);
        let child_state = engine.load(child).expect("child");
        assert_eq!(
            child_state.parent.as_ref().map(|p| (p.run_id, p.depth)),
            Some((parent, 1))
        );
        let kinds: Vec<String> = engine
            .records(parent, 1, 100)
            .expect("records")
            .iter()
            .map(|r| r.kind().to_owned())
            .collect();
        assert_eq!(
            kinds,
            ["started", "subworkflow_started", "resumed", "completed"],
            "{name}"
        );
        consistent(&engine, parent);
        consistent(&engine, child);
    }
}

#[test]
fn failed_child_resumes_the_parent_with_a_typed_error_value() {
    for (name, store, _dir) in stores() {
        let engine = engine(store);
        let parent = engine
            .start(("parent", 1), json!({ "child_mode": "fail" }))
            .expect("start");
        let done = engine.tick(parent).expect("tick");
        assert_eq!(
            done.output,
            Some(json!({ "child_failed": "cannot handle 21" })),
            "{name}"
        );
        let result = &done.vars["child"];
        assert_eq!(result["status"], json!("failed"));
        assert_eq!(result["failure"]["code"], json!("node_failed"));
        consistent(&engine, parent);
    }
}

#[test]
fn waiting_child_keeps_the_parent_waiting_until_it_ends() {
    for (name, store, _dir) in stores() {
        let engine = engine(store);
        let parent = engine
            .start(("parent", 1), json!({ "child_mode": "ask" }))
            .expect("start");
        let waiting = engine.tick(parent).expect("tick");
        assert_eq!(waiting.status, RunStatus::Waiting, "{name}");
        let child = only_child(&engine, parent);
        let key = engine
            .load(child)
            .expect("child")
            .waiting
            .and_then(|w| w.wait_key)
            .expect("child asks");
        engine
            .resume(child, &key, json!(true))
            .expect("answer the child");
        let done = engine.load(parent).expect("parent");
        assert_eq!(done.output, Some(json!({ "got": 210 })), "{name}");
        consistent(&engine, parent);
        consistent(&engine, child);
    }
}

#[test]
fn cancelled_child_resumes_the_parent_with_cancelled() {
    for (_name, store, _dir) in stores() {
        let engine = engine(store);
        let parent = engine
            .start(("parent", 1), json!({ "child_mode": "ask" }))
            .expect("start");
        engine.tick(parent).expect("tick");
        let child = only_child(&engine, parent);
        engine.cancel(child, "not needed").expect("cancel child");
        let done = engine.load(parent).expect("parent");
        assert_eq!(done.status, RunStatus::Completed);
        assert_eq!(done.vars["child"]["status"], json!("cancelled"));
        assert_eq!(done.vars["child"]["reason"], json!("not needed"));
        consistent(&engine, parent);
    }
}

#[test]
fn async_subworkflow_gives_the_parent_the_child_id() {
    for (name, store, _dir) in stores() {
        let engine = engine(store);
        let parent = engine
            .start(("fire-and-forget", 1), json!({}))
            .expect("start");
        let done = engine.tick(parent).expect("tick");
        let child = only_child(&engine, parent);
        assert_eq!(done.output, Some(json!(child.to_string())), "{name}");
        assert_eq!(
            engine.load(child).expect("child").output,
            Some(json!(8)),
            "the child ran too"
        );
        assert_eq!(
            engine
                .load(child)
                .expect("child")
                .parent
                .and_then(|p| p.wait_key),
            None,
            "async: no wait"
        );
        consistent(&engine, parent);
    }
}

#[test]
fn nesting_depth_is_bounded() {
    for (name, store, _dir) in stores() {
        let engine = engine(store);
        let root = engine.start(("recurse", 1), json!({})).expect("start");
        engine.tick(root).expect("tick");
        // Walk down to the deepest run: it failed on the depth limit, and every ancestor
        // received that failure as its child's result.
        let mut chain = vec![root];
        while let Some(child) = engine
            .store()
            .children(*chain.last().expect("non-empty"), None, 10)
            .expect("children")
            .first()
            .copied()
        {
            chain.push(child);
        }
        assert_eq!(chain.len(), 9, "{name}: depth 0..=8");
        let deepest = engine.load(*chain.last().expect("deepest")).expect("load");
        assert_eq!(
            deepest.failure.map(|f| f.code),
            Some(FailureCode::LimitExceeded),
            "{name}"
        );
        for run in &chain[..8] {
            let state = engine.load(*run).expect("load");
            assert_eq!(
                state.status,
                RunStatus::Completed,
                "{name}: ancestors complete with the child's failure as data"
            );
            assert_eq!(
                state.vars["inner"]["status"],
                json!(if *run == chain[7] {
                    "failed"
                } else {
                    "completed"
                })
            );
            consistent(&engine, *run);
        }
    }
}

#[test]
fn unknown_child_workflow_fails_the_parent_clearly() {
    let engine = engine(Arc::new(MemoryStore::new()));
    engine.register(
        WorkflowSpec::builder("typo", 1)
            .node("a", |_: &mut Ctx<'_>| {
                let payload = json!({ "workflow_id": "chlid", "version": 1 });
                StepPlan::effect(Effect::custom("start_subworkflow", payload))
                    .then_complete(Value::Null)
            })
            .entry("a")
            .build()
            .expect("valid spec"),
    );
    let run = engine.start(("typo", 1), json!({})).expect("start");
    let failed = engine.tick(run).expect("tick");
    let failure = failed.failure.expect("failed");
    assert_eq!(failure.code, FailureCode::InvalidEffect);
    assert!(
        failure
            .message
            .contains("\"chlid\" version 1 is not registered"),
        "{}",
        failure.message
    );
}

/// A worker may run a child to its end before the parent's step that started it is
/// committed (the scheduler hears of the child's first commit and ticks it at once). The
/// child's result is then already queued when the parent commits its wait for it: that
/// commit consumes it, instead of being refused over and over as a wait on a key whose
/// inbox is not empty.
#[test]
fn a_child_that_ends_before_its_parent_waits_resumes_the_parent() {
    for (name, store, _dir) in stores() {
        let engine = Arc::new(engine(store));
        let eager = Arc::downgrade(&engine);
        engine.observe(move |state| {
            let is_new_child = state.parent.is_some() && state.head.seq == 1;
            if let (true, Some(engine)) = (is_new_child, eager.upgrade()) {
                let ended = engine.tick(state.run_id).expect("the child runs at once");
                assert_eq!(ended.status, RunStatus::Completed);
            }
        });
        let done = engine.run(("parent", 1), json!({})).expect("run");
        assert_eq!(done.status, RunStatus::Completed, "{name}: {done:?}");
        assert_eq!(done.output, Some(json!({ "got": 42 })), "{name}");
        consistent(&engine, done.run_id);
        let child = only_child(&engine, done.run_id);
        assert_eq!(
            engine.load(child).expect("child").status,
            RunStatus::Completed
        );
        let report = engine.store().check().expect("check");
        assert!(report.orphaned_inboxes.is_empty(), "{name}: {report:?}");
    }
}
