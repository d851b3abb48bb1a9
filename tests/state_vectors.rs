//! The run-state test vectors: `crates/ledger/tests/vectors/state-v1.jsonl`, an export of
//! runs that between them write every record kind. Each record carries the hash of the
//! state it produces; a verifier written from docs/ledger-format.md ("Run state") replays
//! the records and recomputes every one (`tools/ledger_verify.py verify` does, in CI).
//! This test checks that the committed file verifies and replays in Rust too.
//! Regenerate (only when the format changes) with
//! `LEDGERFLOW_WRITE_VECTORS=1 cargo test --test state_vectors`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ledgerflow::ledger::{export_jsonl, import_jsonl, verify_chain};
use ledgerflow::{
    replay, Effect, EffectCall, EffectOutcome, Engine, EngineConfig, ManualClock, MemoryStore,
    Record, RetryPolicy, RunId, StepContext, StepPlan, Store, SubworkflowMode, WorkflowSpec,
};
use serde_json::{json, Value};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crates/ledger/tests/vectors/state-v1.jsonl"
);
const T0: i64 = 1_700_000_000_000;

fn generate() -> Vec<Record> {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(T0);
    let engine = Engine::with_config(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::new(clock.clone()),
        EngineConfig::default(),
    );
    let flaky = Arc::new(AtomicU32::new(0));
    let calls = Arc::clone(&flaky);
    engine
        .register_effect("flaky", move |_: &EffectCall<'_>| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                EffectOutcome::Failed {
                    error: "try again".into(),
                    retryable: true,
                }
            } else {
                EffectOutcome::Completed(json!({"ok": true, "n": 1.5}))
            }
        })
        .expect("register");
    engine
        .register_effect("broken", |_: &EffectCall<'_>| EffectOutcome::Failed {
            error: "no such account".into(),
            retryable: false,
        })
        .expect("register");
    engine
        .register_effect("job", |_: &EffectCall<'_>| EffectOutcome::Waiting {
            wait_key: "job-42".into(),
        })
        .expect("register");
    engine.register(
        WorkflowSpec::builder("everything", 1)
            .node("start", |ctx: &mut StepContext<'_>| {
                ctx.set("n", json!(1));
                ctx.set("nested", json!({"a": {"b": [1, 2]}, "drop": true}));
                StepPlan::next("ask")
            })
            .node("ask", |_: &mut StepContext<'_>| {
                StepPlan::effect(Effect::ask_user("Go on?", &["yes", "no"]).result_key("answer"))
                    .then_next("emit")
            })
            .node("emit", |ctx: &mut StepContext<'_>| {
                ctx.set("nested", json!({"a": {"b": [3]}}));
                StepPlan::effect(Effect::emit_event("elsewhere", json!({"hello": "é"})))
                    .then_next("sleep")
            })
            .node("sleep", |_: &mut StepContext<'_>| {
                StepPlan::effect(Effect::wait_until(T0 + 5_000).result_key("woke"))
                    .then_next("flaky")
            })
            .node("flaky", |_: &mut StepContext<'_>| {
                StepPlan::effect(
                    Effect::custom("flaky", json!({"x": 1}))
                        .result_key("flaky")
                        .retry(RetryPolicy::exponential(3)),
                )
                .then_next("job")
            })
            .node("job", |_: &mut StepContext<'_>| {
                StepPlan::effect(Effect::custom("job", json!({})).result_key("job"))
                    .then_next("child")
            })
            .node("child", |_: &mut StepContext<'_>| {
                StepPlan::effect(
                    Effect::start_subworkflow("child", 1, json!({"k": "v"}), SubworkflowMode::Sync)
                        .result_key("child"),
                )
                .then_next("async_child")
            })
            .node("async_child", |_: &mut StepContext<'_>| {
                StepPlan::effect(
                    Effect::start_subworkflow("child", 1, json!({}), SubworkflowMode::Async)
                        .result_key("async_child"),
                )
                .then_complete(json!({"done": true}))
            })
            .entry("start")
            .build()
            .expect("spec"),
    );
    engine.register(
        WorkflowSpec::builder("child", 1)
            .node("c", |ctx: &mut StepContext<'_>| {
                let k = ctx.var("k").cloned().unwrap_or(Value::Null);
                StepPlan::complete(json!({"child saw": k}))
            })
            .entry("c")
            .build()
            .expect("spec"),
    );
    engine.register(
        WorkflowSpec::builder("failing", 1)
            .node("a", |_: &mut StepContext<'_>| {
                StepPlan::effect(Effect::custom("broken", json!(null))).then_next("b")
            })
            .node("b", |_: &mut StepContext<'_>| StepPlan::fail("unreachable"))
            .entry("a")
            .build()
            .expect("spec"),
    );
    engine.register(
        WorkflowSpec::builder("node_fails", 1)
            .node("a", |ctx: &mut StepContext<'_>| {
                ctx.set("tried", json!(true));
                StepPlan::fail("the node says no")
            })
            .entry("a")
            .build()
            .expect("spec"),
    );
    engine.register(
        WorkflowSpec::builder("listen", 1)
            .node("w", |_: &mut StepContext<'_>| {
                StepPlan::effect(Effect::wait_event("elsewhere").result_key("heard"))
                    .then_complete(json!("heard"))
            })
            .entry("w")
            .build()
            .expect("spec"),
    );

    // The main run: every step kind.
    let run = engine
        .start(("everything", 1), json!({"input": [1, "two", null]}))
        .expect("start");
    let asked = engine.tick(run).expect("tick");
    let key = asked.respond_key().expect("asks").to_owned();
    engine.pause(run).expect("pause");
    engine.unpause(run).expect("unpause");
    clock.advance_ms(10);
    engine.resume(run, &key, json!("yes")).expect("resume");
    clock.set_ms(T0 + 5_000);
    engine.fire_due_timers(10).expect("timers");
    engine.tick(run).expect("tick");
    clock.set_ms(T0 + 60_000);
    engine.fire_due_timers(10).expect("retry timer");
    engine.tick(run).expect("tick");
    engine
        .deliver("job-42", json!({"job": "done"}))
        .expect("job result");
    for _ in 0..5 {
        engine.tick(run).expect("tick");
    }
    // A listener that finds the emitted event in its inbox.
    let listener = engine.start(("listen", 1), json!({})).expect("start");
    engine.tick(listener).expect("tick");
    // Failures and a cancel.
    let failing = engine.start(("failing", 1), json!({})).expect("start");
    engine.tick(failing).expect("tick");
    let node_fails = engine.start(("node_fails", 1), json!({})).expect("start");
    engine.tick(node_fails).expect("tick");
    let cancelled = engine.start(("everything", 1), json!({})).expect("start");
    engine.tick(cancelled).expect("tick");
    engine.pause(cancelled).expect("pause");
    engine.cancel(cancelled, "not needed").expect("cancel");
    // A fork of the main run while it waited for the answer.
    let fork = engine.fork(run, 3).expect("fork");
    let mut runs: Vec<RunId> = store.list_runs(None, None, 100).expect("runs");
    runs.sort_by_key(|r| (r != &run, r != &fork, *r));
    let mut records = Vec::new();
    for id in runs {
        records.extend(engine.records(id, 1, 1_000).expect("records"));
    }
    records
}

#[test]
fn state_vectors_verify_and_replay() {
    if std::env::var_os("LEDGERFLOW_WRITE_VECTORS").is_some() {
        let records = generate();
        let mut out = Vec::new();
        export_jsonl(&records, &mut out).expect("export");
        std::fs::write(VECTORS, out).expect("write vectors");
    }
    let text = std::fs::read(VECTORS).expect("the state vectors");
    let records = import_jsonl(text.as_slice()).expect("import");
    let kinds: std::collections::BTreeSet<&str> = records.iter().map(Record::kind).collect();
    for kind in [
        "started",
        "forked",
        "advanced",
        "waiting",
        "effect_requested",
        "effect_completed",
        "effect_waiting",
        "effect_retry_scheduled",
        "effect_failed",
        "subworkflow_started",
        "event_emitted",
        "resumed",
        "timer_fired",
        "completed",
        "failed",
        "paused",
        "unpaused",
        "cancelled",
    ] {
        assert!(
            kinds.contains(kind),
            "the vectors lack a {kind} record: {kinds:?}"
        );
    }
    let mut runs: Vec<RunId> = records.iter().map(Record::run_id).collect();
    runs.dedup();
    for run in runs {
        let chain: Vec<&Record> = records.iter().filter(|r| r.run_id() == run).collect();
        verify_chain(chain.iter().copied()).expect("chain");
        replay(chain.iter().copied()).expect("every state_hash is the replayed state's");
    }
}
