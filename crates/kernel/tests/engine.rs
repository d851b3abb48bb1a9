//! Every transition of the run state machine and every engine error, by name, on the
//! memory store with a manual clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ledgerflow_kernel::store::{self, Store};
use ledgerflow_kernel::{
    replay, Delivered, Effect, EffectOutcome, Engine, EngineConfig, Error, FailureCode,
    ManualClock, MemoryStore, RunId, RunState, RunStatus, SpecError, StepContext, StepPlan,
    WaitReason, WorkflowSpec,
};
use ledgerflow_ledger::verify_chain;
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000_000;

type Ctx<'a> = StepContext<'a>;

fn engine() -> (Engine, ManualClock) {
    let clock = ManualClock::new(T0);
    let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(clock.clone()));
    (engine, clock)
}

/// Checks the invariants that must hold after every operation.
fn assert_consistent(engine: &Engine, run_id: RunId) -> RunState {
    let stored = engine.load(run_id).expect("run exists");
    let records = engine.records(run_id, 1, 10_000).expect("records");
    verify_chain(&records).expect("chain verifies");
    assert_eq!(
        replay(&records).expect("replays"),
        stored,
        "replay == stored"
    );
    assert_eq!(engine.verify_run(run_id).expect("verify_run"), stored);
    stored
}

fn kinds(engine: &Engine, run_id: RunId) -> Vec<String> {
    engine
        .records(run_id, 1, 10_000)
        .expect("records")
        .iter()
        .map(|r| r.kind().to_owned())
        .collect()
}

fn linear() -> WorkflowSpec {
    WorkflowSpec::builder("linear", 1)
        .node("a", |ctx: &mut Ctx<'_>| {
            ctx.set("a", json!(1));
            StepPlan::next("b")
        })
        .node("b", |ctx: &mut Ctx<'_>| {
            let a = ctx.var("a").and_then(Value::as_i64).unwrap_or(0);
            StepPlan::complete(json!({ "sum": a + 1 }))
        })
        .entry("a")
        .build()
        .expect("valid spec")
}

fn waits_then_completes(effect: Effect) -> WorkflowSpec {
    WorkflowSpec::builder("waits", 1)
        .node("wait", move |_: &mut Ctx<'_>| {
            StepPlan::effect(effect.clone()).then_next("done")
        })
        .node("done", |ctx: &mut Ctx<'_>| {
            StepPlan::complete(ctx.var("r").cloned().unwrap_or(Value::Null))
        })
        .entry("wait")
        .build()
        .expect("valid spec")
}

#[test]
fn start_records_started_and_tick_runs_to_completion() {
    let (engine, _) = engine();
    engine.register(linear());
    let run = engine
        .start(("linear", 1), json!({"x": "in"}))
        .expect("start");
    let started = assert_consistent(&engine, run);
    assert_eq!(started.status, RunStatus::Running);
    assert_eq!(started.node.as_deref(), Some("a"));
    assert_eq!(started.vars.get("x"), Some(&json!("in")));
    let done = engine.tick(run).expect("tick");
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.output, Some(json!({"sum": 2})));
    assert_eq!(kinds(&engine, run), ["started", "advanced", "completed"]);
    assert_eq!(done.ended_seq, Some(3));
    assert_consistent(&engine, run);
    // Ticking an ended run changes nothing.
    assert_eq!(engine.tick(run).expect("tick"), done);
}

#[test]
fn spec_errors_by_name() {
    let node = |_: &mut Ctx<'_>| StepPlan::complete(Value::Null);
    let missing = WorkflowSpec::builder("w", 1)
        .node("a", node)
        .entry("nope")
        .build();
    assert!(matches!(missing, Err(SpecError::EntryMissing { .. })));
    let no_entry = WorkflowSpec::builder("w", 1).node("a", node).build();
    assert!(matches!(no_entry, Err(SpecError::NoEntry { .. })));
    let empty = WorkflowSpec::builder("", 1)
        .node("a", node)
        .entry("a")
        .build();
    assert!(matches!(empty, Err(SpecError::EmptyId)));
    let dup = WorkflowSpec::builder("w", 1)
        .node("a", node)
        .node("a", node)
        .entry("a")
        .build();
    assert!(matches!(dup, Err(SpecError::DuplicateNode { .. })));
}

#[test]
fn start_errors_by_name() {
    let (engine, _) = engine();
    assert!(matches!(
        engine.start(("linear", 1), json!({})),
        Err(Error::WorkflowNotRegistered { version: 1, .. })
    ));
    engine.register(linear());
    assert!(matches!(
        engine.start(("linear", 2), json!({})),
        Err(Error::WorkflowNotRegistered { version: 2, .. })
    ));
    assert!(matches!(
        engine.start(("linear", 1), json!([1])),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        engine.tick(RunId::new_v4()),
        Err(Error::RunNotFound { .. })
    ));
    let run = engine
        .start(("linear", 1), Value::Null)
        .expect("null input is empty vars");
    assert!(engine.load(run).expect("load").vars.is_empty());
}

#[test]
fn unregistered_version_leaves_the_run_untouched() {
    let (engine, _) = engine();
    engine.register(linear());
    let run = engine.start(("linear", 1), json!({})).expect("start");
    let other = Engine::new(Arc::clone(engine.store()), Arc::new(ManualClock::new(T0)));
    let before = engine.load(run).expect("load");
    assert!(matches!(
        other.tick(run),
        Err(Error::WorkflowNotRegistered { .. })
    ));
    assert_eq!(engine.load(run).expect("load"), before);
}

#[test]
fn wait_event_then_resume_puts_payload_at_result_key() {
    let (engine, _) = engine();
    engine.register(waits_then_completes(
        Effect::wait_event("order-7").result_key("r"),
    ));
    let run = engine.start(("waits", 1), json!({})).expect("start");
    let waiting = engine.tick(run).expect("tick");
    assert_eq!(waiting.status, RunStatus::Waiting);
    let wait = waiting.waiting.clone().expect("wait state");
    assert_eq!(
        (wait.wait_key.as_deref(), wait.reason),
        (Some("order-7"), WaitReason::Event)
    );
    assert_eq!(
        engine.store().waiting_on("order-7").expect("index"),
        Some(run)
    );
    assert_consistent(&engine, run);
    let done = engine
        .resume(run, "order-7", json!({"paid": true}))
        .expect("resume");
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.output, Some(json!({"paid": true})));
    assert_eq!(done.vars.get("r"), Some(&json!({"paid": true})));
    assert_eq!(engine.store().waiting_on("order-7").expect("index"), None);
    assert_eq!(
        kinds(&engine, run),
        ["started", "waiting", "resumed", "completed"]
    );
    assert_consistent(&engine, run);
}

#[test]
fn resume_errors_by_name_change_nothing() {
    let (engine, _) = engine();
    engine.register(waits_then_completes(
        Effect::wait_event("k").result_key("r"),
    ));
    engine.register(linear());
    let run = engine.start(("waits", 1), json!({})).expect("start");
    assert!(matches!(
        engine.resume(run, "k", json!(1)),
        Err(Error::NotWaiting {
            status: RunStatus::Running,
            ..
        })
    ));
    let waiting = engine.tick(run).expect("tick");
    match engine.resume(run, "wrong", json!(1)) {
        Err(Error::WaitKeyMismatch { expected, got, .. }) => {
            assert_eq!((expected.as_deref(), got.as_str()), (Some("k"), "wrong"));
        }
        other => panic!("expected WaitKeyMismatch, got {other:?}"),
    }
    assert_eq!(
        engine.load(run).expect("load"),
        waiting,
        "wrong key changed nothing"
    );
    engine.resume(run, "k", json!(1)).expect("right key");
    assert!(matches!(
        engine.resume(run, "k", json!(2)),
        Err(Error::RunTerminal {
            status: RunStatus::Completed,
            ..
        })
    ));
    assert!(matches!(
        engine.resume(RunId::new_v4(), "k", json!(1)),
        Err(Error::RunNotFound { .. })
    ));
}

#[test]
fn ask_user_waits_with_prompt_choices_and_generated_key() {
    let (engine, _) = engine();
    engine.register(waits_then_completes(
        Effect::ask_user("Ship it?", &["yes", "no"]).result_key("r"),
    ));
    let run = engine.start(("waits", 1), json!({})).expect("start");
    let waiting = engine.tick(run).expect("tick");
    let wait = waiting.waiting.expect("waits");
    assert_eq!(wait.reason, WaitReason::User);
    assert_eq!(wait.prompt.as_deref(), Some("Ship it?"));
    assert_eq!(wait.choices, ["yes", "no"]);
    let key = wait.wait_key.expect("generated key");
    assert_eq!(key, format!("ask:{run}:2"));
    let done = engine.resume(run, &key, json!("yes")).expect("resume");
    assert_eq!(done.output, Some(json!("yes")));
    assert_consistent(&engine, run);
}

#[test]
fn wait_until_fires_only_when_due() {
    let (engine, clock) = engine();
    engine.register(waits_then_completes(
        Effect::wait_until(T0 + 5_000).result_key("r"),
    ));
    let run = engine.start(("waits", 1), json!({})).expect("start");
    let waiting = engine.tick(run).expect("tick");
    assert_eq!(
        waiting.waiting.as_ref().and_then(|w| w.until_ms),
        Some(T0 + 5_000)
    );
    let timer = engine
        .store()
        .next_timer()
        .expect("timers")
        .expect("one timer");
    assert_eq!((timer.run_id, timer.due_at_ms), (run, T0 + 5_000));
    assert_eq!(engine.fire_due_timers(10).expect("fire"), 0);
    assert_eq!(
        engine
            .fire_timer(run, T0 + 5_000)
            .expect("early fire is a no-op"),
        waiting
    );
    clock.advance_ms(5_000);
    assert_eq!(engine.fire_due_timers(10).expect("fire"), 1);
    let done = engine.load(run).expect("load");
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.output, Some(json!(T0 + 5_000)));
    assert_eq!(engine.store().next_timer().expect("timers"), None);
    assert_eq!(
        kinds(&engine, run),
        ["started", "waiting", "timer_fired", "completed"]
    );
    assert_consistent(&engine, run);
    assert_eq!(engine.fire_due_timers(10).expect("fire"), 0, "fires once");
}

#[test]
fn overdue_wait_until_fires_in_the_same_step() {
    let (engine, _) = engine();
    engine.register(waits_then_completes(
        Effect::wait_until(T0 - 1).result_key("r"),
    ));
    let run = engine.start(("waits", 1), json!({})).expect("start");
    let done = engine.tick(run).expect("tick");
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(
        kinds(&engine, run),
        ["started", "waiting", "timer_fired", "completed"]
    );
    assert_consistent(&engine, run);
}

#[test]
fn deliver_before_wait_is_queued_then_consumed() {
    let (engine, _) = engine();
    engine.register(waits_then_completes(
        Effect::wait_event("early").result_key("r"),
    ));
    assert_eq!(
        engine.deliver("early", json!("first")).expect("deliver"),
        Delivered::Queued(1)
    );
    assert_eq!(
        engine.deliver("early", json!("second")).expect("deliver"),
        Delivered::Queued(2)
    );
    let run = engine.start(("waits", 1), json!({})).expect("start");
    let done = engine.tick(run).expect("tick");
    assert_eq!(done.output, Some(json!("first")), "oldest event first");
    assert_eq!(
        kinds(&engine, run),
        ["started", "waiting", "resumed", "completed"]
    );
    let left = engine.store().inbox("early", 10).expect("inbox");
    assert_eq!(
        left.iter().map(|e| e.payload.clone()).collect::<Vec<_>>(),
        [json!("second")]
    );
    let second = engine.start(("waits", 1), json!({})).expect("start");
    assert_eq!(
        engine.tick(second).expect("tick").output,
        Some(json!("second"))
    );
    assert!(engine.store().inbox("early", 10).expect("inbox").is_empty());
    assert_consistent(&engine, run);
    assert_consistent(&engine, second);
}

#[test]
fn deliver_to_a_waiting_run_resumes_it_once() {
    let (engine, _) = engine();
    engine.register(waits_then_completes(
        Effect::wait_event("k").result_key("r"),
    ));
    let run = engine.start(("waits", 1), json!({})).expect("start");
    engine.tick(run).expect("tick");
    match engine.deliver("k", json!(42)).expect("deliver") {
        Delivered::Resumed(state) => assert_eq!(state.output, Some(json!(42))),
        other => panic!("expected a resume, got {other:?}"),
    }
    // The wait ended: a second event is queued, not applied to the ended run.
    assert_eq!(
        engine.deliver("k", json!(43)).expect("deliver"),
        Delivered::Queued(1)
    );
    assert_eq!(engine.load(run).expect("load").output, Some(json!(42)));
    assert_consistent(&engine, run);
}

#[test]
fn emit_event_reaches_the_waiting_run() {
    let (engine, _) = engine();
    engine.register(waits_then_completes(
        Effect::wait_event("ping").result_key("r"),
    ));
    engine.register(
        WorkflowSpec::builder("emitter", 1)
            .node("emit", |_: &mut Ctx<'_>| {
                StepPlan::effect(Effect::emit_event("ping", json!("pong")))
                    .then_complete(json!("sent"))
            })
            .entry("emit")
            .build()
            .expect("valid spec"),
    );
    let waiter = engine.start(("waits", 1), json!({})).expect("start");
    engine.tick(waiter).expect("tick");
    let emitter = engine.start(("emitter", 1), json!({})).expect("start");
    assert_eq!(
        engine.tick(emitter).expect("tick").output,
        Some(json!("sent"))
    );
    assert_eq!(
        engine.load(waiter).expect("load").output,
        Some(json!("pong"))
    );
    assert_eq!(kinds(&engine, emitter), ["started", "event_emitted"]);
    assert_consistent(&engine, waiter);
    assert_consistent(&engine, emitter);
}

#[test]
fn second_waiter_on_a_taken_key_fails_clearly() {
    let (engine, _) = engine();
    engine.register(waits_then_completes(
        Effect::wait_event("shared").result_key("r"),
    ));
    let first = engine.start(("waits", 1), json!({})).expect("start");
    engine.tick(first).expect("tick");
    let second = engine.start(("waits", 1), json!({})).expect("start");
    let failed = engine.tick(second).expect("tick");
    assert_eq!(failed.status, RunStatus::Failed);
    let failure = failed.failure.clone().expect("failure");
    assert_eq!(failure.code, FailureCode::WaitKeyInUse);
    assert!(
        failure.message.contains(&first.to_string()),
        "{}",
        failure.message
    );
    assert_eq!(
        engine.store().waiting_on("shared").expect("index"),
        Some(first)
    );
    assert_consistent(&engine, second);
}

#[test]
fn unknown_next_node_fails_the_run_with_a_record() {
    let (engine, _) = engine();
    engine.register(
        WorkflowSpec::builder("typo", 1)
            .node("a", |ctx: &mut Ctx<'_>| {
                ctx.set("kept", json!(true));
                StepPlan::next("nowhere")
            })
            .entry("a")
            .build()
            .expect("valid spec"),
    );
    let run = engine.start(("typo", 1), json!({})).expect("start");
    let failed = engine.tick(run).expect("tick");
    assert_eq!(failed.status, RunStatus::Failed);
    let failure = failed.failure.clone().expect("failure");
    assert_eq!(failure.code, FailureCode::UnknownNode);
    assert!(failure.message.contains("nowhere"));
    assert_eq!(
        failed.vars.get("kept"),
        Some(&json!(true)),
        "the node's vars change is kept"
    );
    assert_eq!(kinds(&engine, run), ["started", "failed"]);
    assert_consistent(&engine, run);
}

#[test]
fn custom_effect_without_handler_fails_the_run() {
    let (engine, _) = engine();
    engine.register(waits_then_completes(Effect::custom(
        "llm_call",
        json!({"prompt": "hi"}),
    )));
    let run = engine.start(("waits", 1), json!({})).expect("start");
    let failed = engine.tick(run).expect("tick");
    assert_eq!(
        failed.failure.map(|f| f.code),
        Some(FailureCode::UnknownEffect)
    );
    assert_consistent(&engine, run);
}

#[test]
fn malformed_builtin_payload_fails_the_run() {
    let (engine, _) = engine();
    engine.register(waits_then_completes(Effect::custom(
        "wait_until",
        json!({"at_ms": "soon"}),
    )));
    let run = engine.start(("waits", 1), json!({})).expect("start");
    let failed = engine.tick(run).expect("tick");
    assert_eq!(
        failed.failure.map(|f| f.code),
        Some(FailureCode::InvalidEffect)
    );
    assert_consistent(&engine, run);
}

#[test]
fn node_fail_and_node_panic_fail_the_run() {
    let (engine, _) = engine();
    engine.register(
        WorkflowSpec::builder("bad", 1)
            .node("a", |ctx: &mut Ctx<'_>| {
                if ctx.var("panic").is_some() {
                    panic!("boom");
                }
                StepPlan::fail("validation failed")
            })
            .entry("a")
            .build()
            .expect("valid spec"),
    );
    let run = engine.start(("bad", 1), json!({})).expect("start");
    let failed = engine.tick(run).expect("tick");
    let failure = failed.failure.expect("failure");
    assert_eq!(
        (failure.code, failure.message.as_str()),
        (FailureCode::NodeFailed, "validation failed")
    );
    let run = engine
        .start(("bad", 1), json!({"panic": 1}))
        .expect("start");
    let failed = engine.tick(run).expect("tick");
    let failure = failed.failure.expect("failure");
    assert_eq!(failure.code, FailureCode::HandlerPanicked);
    assert!(failure.message.contains("boom"));
    assert_consistent(&engine, run);
}

#[test]
fn custom_effect_is_recorded_before_and_after_it_runs() {
    let (engine, _) = engine();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen_calls = Arc::clone(&calls);
    let keys = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen_keys = Arc::clone(&keys);
    engine
        .register_effect("tool", move |call: &ledgerflow_kernel::EffectCall<'_>| {
            seen_calls.fetch_add(1, Ordering::SeqCst);
            seen_keys
                .lock()
                .expect("lock")
                .push(call.idempotency_key.to_owned());
            EffectOutcome::Completed(json!({"echo": call.payload.clone()}))
        })
        .expect("custom kind");
    engine.register(waits_then_completes(
        Effect::custom("tool", json!("x")).result_key("r"),
    ));
    let run = engine.start(("waits", 1), json!({})).expect("start");
    let done = engine.tick(run).expect("tick");
    assert_eq!(done.output, Some(json!({"echo": "x"})));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(keys.lock().expect("lock").as_slice(), [format!("{run}:2")]);
    assert_eq!(
        kinds(&engine, run),
        [
            "started",
            "effect_requested",
            "effect_completed",
            "completed"
        ]
    );
    assert_consistent(&engine, run);
    assert!(matches!(
        engine.register_effect("ask_user", |_: &ledgerflow_kernel::EffectCall<'_>| {
            EffectOutcome::Completed(Value::Null)
        }),
        Err(Error::BuiltinEffectKind { .. })
    ));
}

#[test]
fn effect_failure_and_job_wait() {
    let (engine, _) = engine();
    engine
        .register_effect("flaky", |_: &ledgerflow_kernel::EffectCall<'_>| {
            EffectOutcome::Failed {
                error: "503 from upstream".into(),
                retryable: true,
            }
        })
        .expect("register");
    engine
        .register_effect("job", |call: &ledgerflow_kernel::EffectCall<'_>| {
            EffectOutcome::Waiting {
                wait_key: format!("job:{}", call.idempotency_key),
            }
        })
        .expect("register");
    engine.register(waits_then_completes(Effect::custom("flaky", Value::Null)));
    let run = engine.start(("waits", 1), json!({})).expect("start");
    let failed = engine.tick(run).expect("tick");
    let failure = failed.failure.expect("failed");
    assert_eq!(
        (failure.code, failure.message.as_str()),
        (FailureCode::EffectFailed, "503 from upstream")
    );

    engine.register(waits_then_completes(
        Effect::custom("job", Value::Null).result_key("r"),
    ));
    let run = engine.start(("waits", 1), json!({})).expect("start");
    let waiting = engine.tick(run).expect("tick");
    let wait = waiting.waiting.expect("waits for the job");
    assert_eq!(wait.reason, WaitReason::Job);
    let key = wait.wait_key.expect("job key");
    let done = engine
        .resume(run, &key, json!("job result"))
        .expect("resume");
    assert_eq!(done.output, Some(json!("job result")));
    assert_consistent(&engine, run);
}

#[test]
fn pending_effect_reruns_after_a_crash_with_the_same_key() {
    // Simulate a crash between `effect_requested` and `effect_completed`: the first
    // engine's handler panics the "process" away before returning; the effect stays
    // pending, and a fresh engine on the same store runs it again with the same key.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(T0));
    let spec = || waits_then_completes(Effect::custom("charge", json!(10)).result_key("r"));
    // Budget 1: only the node step (which records effect_requested) runs.
    let stepped = Engine::with_config(
        Arc::clone(&store),
        clock.clone(),
        EngineConfig {
            steps_per_tick_max: 1,
            ..EngineConfig::default()
        },
    );
    stepped.register(spec());
    stepped
        .register_effect("charge", |_: &ledgerflow_kernel::EffectCall<'_>| {
            EffectOutcome::Completed(json!("unused"))
        })
        .expect("register");
    let run = stepped.start(("waits", 1), json!({})).expect("start");
    let pending = stepped.tick(run).expect("tick");
    let key = pending
        .pending_effect
        .clone()
        .expect("requested, not completed")
        .idempotency_key;

    let second = Engine::new(Arc::clone(&store), clock);
    second.register(spec());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen_in = Arc::clone(&seen);
    second
        .register_effect("charge", move |call: &ledgerflow_kernel::EffectCall<'_>| {
            seen_in
                .lock()
                .expect("lock")
                .push(call.idempotency_key.to_owned());
            EffectOutcome::Completed(json!("charged"))
        })
        .expect("register");
    let done = second.tick(run).expect("tick");
    assert_eq!(done.output, Some(json!("charged")));
    assert_eq!(seen.lock().expect("lock").as_slice(), [key]);
    assert_consistent(&second, run);
}

#[test]
fn step_budget_bounds_a_tick() {
    let clock = Arc::new(ManualClock::new(T0));
    let config = EngineConfig {
        steps_per_tick_max: 25,
        ..EngineConfig::default()
    };
    let engine = Engine::with_config(Arc::new(MemoryStore::new()), clock, config);
    engine.register(
        WorkflowSpec::builder("forever", 1)
            .node("loop", |ctx: &mut Ctx<'_>| {
                let n = ctx.var("n").and_then(Value::as_u64).unwrap_or(0);
                ctx.set("n", json!(n + 1));
                StepPlan::next("loop")
            })
            .entry("loop")
            .build()
            .expect("valid spec"),
    );
    let run = engine.start(("forever", 1), json!({})).expect("start");
    let after = engine.tick(run).expect("tick");
    assert_eq!(after.status, RunStatus::Running);
    assert_eq!(after.vars.get("n"), Some(&json!(25)));
    assert_eq!(after.head.seq, 26);
    assert_consistent(&engine, run);
}

#[test]
fn pause_blocks_steps_until_unpause() {
    let (engine, clock) = engine();
    engine.register(waits_then_completes(
        Effect::wait_until(T0 + 10).result_key("r"),
    ));
    let run = engine.start(("waits", 1), json!({})).expect("start");
    engine.tick(run).expect("tick");
    let paused = engine.pause(run).expect("pause");
    assert!(paused.paused);
    assert_eq!(engine.pause(run).expect("pause again is a no-op"), paused);
    clock.advance_ms(10);
    assert_eq!(
        engine.fire_due_timers(10).expect("fire"),
        1,
        "the timer fires"
    );
    let fired = engine.load(run).expect("load");
    assert_eq!(
        (fired.status, fired.paused),
        (RunStatus::Running, true),
        "but no step runs"
    );
    assert_eq!(engine.tick(run).expect("tick"), fired);
    let done = engine.unpause(run).expect("unpause");
    assert_eq!((done.status, done.paused), (RunStatus::Completed, false));
    assert_eq!(
        kinds(&engine, run),
        [
            "started",
            "waiting",
            "paused",
            "timer_fired",
            "unpaused",
            "completed"
        ]
    );
    assert_consistent(&engine, run);
    assert!(matches!(engine.pause(run), Err(Error::RunTerminal { .. })));
    assert!(matches!(
        engine.unpause(run),
        Err(Error::RunTerminal { .. })
    ));
}

#[test]
fn paused_running_run_is_not_stepped() {
    let (engine, _) = engine();
    engine.register(linear());
    let run = engine.start(("linear", 1), json!({})).expect("start");
    engine.pause(run).expect("pause");
    assert_eq!(engine.tick(run).expect("tick").head.seq, 2);
    assert_eq!(
        engine.unpause(run).expect("unpause").status,
        RunStatus::Completed
    );
    assert!(matches!(
        engine.unpause(run),
        Err(Error::RunTerminal { .. })
    ));
}

#[test]
fn cancel_is_idempotent_and_keeps_the_first_ending() {
    let (engine, _) = engine();
    engine.register(waits_then_completes(
        Effect::wait_event("c").result_key("r"),
    ));
    engine.register(linear());
    let run = engine.start(("waits", 1), json!({})).expect("start");
    engine.tick(run).expect("tick");
    let first = engine.cancel(run, "operator said so").expect("cancel");
    assert!(first.changed);
    assert_eq!(first.state.status, RunStatus::Cancelled);
    assert_eq!(
        first.state.cancel_reason.as_deref(),
        Some("operator said so")
    );
    assert_eq!(first.record.kind(), "cancelled");
    assert_eq!(
        engine.store().waiting_on("c").expect("index"),
        None,
        "wait index cleared"
    );
    let second = engine.cancel(run, "again").expect("cancel again");
    assert!(!second.changed);
    assert_eq!(second.record, first.record, "the first cancel's record");
    assert_eq!(
        second.state.cancel_reason.as_deref(),
        Some("operator said so")
    );
    assert_consistent(&engine, run);
    assert!(matches!(
        engine.resume(run, "c", json!(1)),
        Err(Error::RunTerminal { .. })
    ));

    let done = engine.start(("linear", 1), json!({})).expect("start");
    engine.tick(done).expect("tick");
    let after_complete = engine.cancel(done, "too late").expect("cancel");
    assert!(!after_complete.changed);
    assert_eq!(after_complete.state.status, RunStatus::Completed);
    assert_eq!(after_complete.record.kind(), "completed");
    assert_consistent(&engine, done);
}

#[test]
fn stale_commit_conflicts_through_the_engine() {
    let (engine, _) = engine();
    engine.register(linear());
    let run = engine.start(("linear", 1), json!({})).expect("start");
    let stale = engine.load(run).expect("load");
    engine.tick(run).expect("tick");
    // A commit built on the stale state must lose.
    let store = engine.store();
    let mut replayed = stale.clone();
    replayed.vars.insert("x".into(), json!(1));
    let err = store
        .commit(ledgerflow_kernel::store::Commit::between(
            Some(&stale),
            replayed,
            Vec::new(),
            T0,
        ))
        .expect_err("stale");
    assert!(matches!(
        err,
        store::Error::Conflict {
            expected_seq: 1,
            actual_seq: 3,
            ..
        }
    ));
}

#[test]
fn large_values_are_stored_as_artifacts_and_records_hash_the_digest() {
    let clock = ManualClock::new(T0);
    let config = EngineConfig {
        artifact_threshold_bytes: 64,
        value_bytes_max: 4_096,
        ..EngineConfig::default()
    };
    let engine = Engine::with_config(Arc::new(MemoryStore::new()), Arc::new(clock), config);
    engine.register(
        WorkflowSpec::builder("big", 1)
            .node("ask", |ctx: &mut Ctx<'_>| {
                // The handler sees the whole input, not its reference.
                let doc_len = ctx.var("doc").and_then(Value::as_str).map_or(0, str::len);
                ctx.set("doc_len", json!(doc_len));
                StepPlan::effect(Effect::wait_event("big-answer").result_key("answer"))
                    .then_next("done")
            })
            .node("done", |ctx: &mut Ctx<'_>| {
                let answer = ctx.var("answer").cloned().unwrap_or_default();
                if ctx.var("explode").is_some() {
                    ctx.set("huge", json!("z".repeat(5_000)));
                }
                StepPlan::complete(json!({ "echo": answer }))
            })
            .entry("ask")
            .build()
            .expect("valid spec"),
    );
    let doc = "d".repeat(500);
    let run = engine
        .start(("big", 1), json!({ "doc": doc }))
        .expect("start");
    let started = engine.load(run).expect("load");
    let doc_ref =
        ledgerflow_kernel::ArtifactRef::from_value(&started.vars["doc"]).expect("input offloaded");
    assert_eq!(doc_ref.size, 502);
    let waiting = engine.tick(run).expect("tick");
    assert_eq!(waiting.vars.get("doc_len"), Some(&json!(500)));

    let before = engine.load(run).expect("load");
    let too_big = json!("y".repeat(5_000));
    assert!(matches!(
        engine.resume(run, "big-answer", too_big),
        Err(Error::ValueTooLarge { .. })
    ));
    assert_eq!(
        engine.load(run).expect("load"),
        before,
        "a refused payload changes nothing"
    );

    let answer = json!({ "text": "a".repeat(300) });
    let done = engine
        .resume(run, "big-answer", answer.clone())
        .expect("resume");
    assert_eq!(done.status, RunStatus::Completed);
    let output = done.output.clone().expect("output");
    assert!(
        ledgerflow_kernel::ArtifactRef::from_value(&output).is_some(),
        "large output offloaded"
    );
    assert_eq!(
        engine.resolve(&output).expect("resolve"),
        json!({ "echo": answer })
    );
    for record in engine.records(run, 1, 100).expect("records") {
        let body = record.body().to_string();
        assert!(
            !body.contains(&"a".repeat(300)) && !body.contains(&"d".repeat(500)),
            "record {} holds a large value",
            record.seq()
        );
    }
    assert_consistent(&engine, run);

    let exploding = engine
        .start(("big", 1), json!({ "explode": true }))
        .expect("start");
    engine.tick(exploding).expect("tick");
    let failed = engine
        .resume(exploding, "big-answer", json!("ok"))
        .expect("resume");
    assert_eq!(
        failed.failure.map(|f| f.code),
        Some(FailureCode::ValueTooLarge)
    );
    assert_consistent(&engine, exploding);
}

/// The digest a value offloaded as an artifact is stored under.
fn artifact_digest(value: &Value) -> ledgerflow_kernel::Hash {
    ledgerflow_kernel::Hash::of(&ledgerflow_ledger::canonical_json(value))
}

#[test]
fn a_refused_start_stores_no_artifact_and_a_carried_one_is_read_before_it_is_written() {
    let config = EngineConfig {
        artifact_threshold_bytes: 64,
        value_bytes_max: 4_096,
        ..EngineConfig::default()
    };
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::with_config(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::new(ManualClock::new(T0)),
        config,
    );
    engine.register(
        WorkflowSpec::builder("carry", 1)
            .node("make", |ctx: &mut Ctx<'_>| {
                ctx.set("made", json!("m".repeat(300)));
                StepPlan::next("use")
            })
            .node("use", |ctx: &mut Ctx<'_>| {
                // Set by the step before, carried in this tick's one commit: its artifact
                // is not in the store yet, and the handler still sees the whole value.
                let made = ctx.var("made").and_then(Value::as_str).map_or(0, str::len);
                StepPlan::complete(json!({ "made_len": made }))
            })
            .entry("make")
            .build()
            .expect("valid spec"),
    );

    // "a" (under the value limit, over the threshold) is planned as an artifact before
    // "b" is found too large: the refused start stores neither.
    let a = json!("a".repeat(200));
    let refused = engine.start(("carry", 1), json!({ "a": a, "b": "b".repeat(5_000) }));
    assert!(
        matches!(refused, Err(Error::ValueTooLarge { .. })),
        "{refused:?}"
    );
    assert_eq!(
        store.get_artifact(&artifact_digest(&a)).expect("read"),
        None
    );
    assert_eq!(store.feed_head().expect("feed"), 0, "nothing committed");

    let done = engine.run(("carry", 1), json!({})).expect("run");
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.output, Some(json!({ "made_len": 300 })));
    assert_eq!(
        engine.records(done.run_id, 1, 10).expect("records").len(),
        3,
        "start and both steps in one commit"
    );
    let made = json!("m".repeat(300));
    assert!(
        store
            .get_artifact(&artifact_digest(&made))
            .expect("read")
            .is_some(),
        "the carried step's artifact is written with its commit"
    );
    assert_consistent(&engine, done.run_id);
}

#[test]
fn event_feed_pages_from_cursors_and_refuses_foreign_ones() {
    let (engine, _) = engine();
    engine.register(linear());
    let first = engine.start(("linear", 1), json!({})).expect("start");
    engine.tick(first).expect("tick");
    let start = engine.cursor_from_start();
    let page = engine.read_events(&start, 2).expect("read");
    assert_eq!(
        page.events
            .iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>(),
        ["started", "advanced"]
    );
    assert!(page.has_more);
    let rest = engine.read_events(&page.next_cursor, 10).expect("read");
    assert_eq!(
        rest.events
            .iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>(),
        ["completed"]
    );
    assert!(!rest.has_more);

    let now = engine.cursor_now().expect("now");
    assert!(engine
        .read_events(&now, 10)
        .expect("read")
        .events
        .is_empty());
    let second = engine.start(("linear", 1), json!({})).expect("start");
    let new = engine.read_events(&now, 10).expect("read");
    assert_eq!(new.events.len(), 1);
    assert_eq!(
        (new.events[0].run_id, new.events[0].kind.as_str()),
        (second, "started")
    );

    // Cursors survive as text.
    let text = new.next_cursor.to_string();
    let parsed: ledgerflow_kernel::FeedCursor = text.parse().expect("own cursor parses");
    assert_eq!(parsed, new.next_cursor);

    let max = engine.store().limits().read_items_max;
    assert!(matches!(
        engine.read_events(&start, max + 1),
        Err(Error::Store(store::Error::LimitTooLarge { .. }))
    ));
    let (other, _) = self::engine();
    assert!(matches!(
        other.read_events(&start, 10),
        Err(Error::CursorFromAnotherStore { .. })
    ));
    assert!("lf1.nonsense"
        .parse::<ledgerflow_kernel::FeedCursor>()
        .is_err());
}

#[test]
fn an_emitted_event_the_waiter_cannot_take_here_stays_queued_and_the_step_succeeds() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(T0);
    let with_waiter = Engine::new(Arc::clone(&store), Arc::new(clock.clone()));
    with_waiter.register(waits_then_completes(
        Effect::wait_event("handoff").result_key("r"),
    ));
    let waiter = with_waiter.start(("waits", 1), json!({})).expect("start");
    with_waiter.tick(waiter).expect("tick");

    // Another process only knows the emitter: the waiter's workflow is not registered there.
    let emitter_only = Engine::new(Arc::clone(&store), Arc::new(clock));
    emitter_only.register(
        WorkflowSpec::builder("emitter", 1)
            .node("emit", |_: &mut Ctx<'_>| {
                StepPlan::effect(Effect::emit_event("handoff", json!("parcel")))
                    .then_complete(json!("sent"))
            })
            .entry("emit")
            .build()
            .expect("valid spec"),
    );
    let emitter = emitter_only
        .start(("emitter", 1), json!({}))
        .expect("start");
    assert_eq!(
        emitter_only
            .tick(emitter)
            .expect("the emitting step succeeded")
            .output,
        Some(json!("sent"))
    );
    assert_eq!(engine_waiting(&with_waiter, waiter), RunStatus::Waiting);
    assert_eq!(
        store.inbox("handoff", 10).expect("inbox").len(),
        1,
        "the event is kept"
    );

    assert!(with_waiter.drain_inbox("handoff").expect("drain"));
    assert_eq!(
        with_waiter.load(waiter).expect("load").output,
        Some(json!("parcel"))
    );
    assert_consistent(&with_waiter, waiter);
}

fn engine_waiting(engine: &Engine, run: RunId) -> RunStatus {
    engine.load(run).expect("load").status
}

/// Counts the commits an engine makes and keeps the states they acknowledged.
fn commits_of(engine: &Engine) -> Arc<std::sync::Mutex<Vec<RunState>>> {
    let states = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&states);
    engine.observe(move |state| seen.lock().expect("states").push(state.clone()));
    states
}

#[test]
fn steps_that_stay_inside_the_run_share_one_commit() {
    let (engine, clock) = engine();
    engine.register(linear());
    engine.register(
        WorkflowSpec::builder("nap", 1)
            .node("sleep", |_: &mut Ctx<'_>| {
                StepPlan::effect(Effect::wait_until(T0 + 1_000)).then_next("a")
            })
            .node("a", |_: &mut Ctx<'_>| StepPlan::next("b"))
            .node("b", |_: &mut Ctx<'_>| StepPlan::complete(json!("rested")))
            .entry("sleep")
            .build()
            .expect("valid"),
    );
    let commits = commits_of(&engine);

    // a → b → complete: one commit after the start, holding both steps' records.
    let run = engine.start(("linear", 1), json!({})).expect("start");
    let done = engine.tick(run).expect("tick");
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(
        commits.lock().expect("states").len(),
        2,
        "start, then one commit"
    );
    assert_eq!(kinds(&engine, run), ["started", "advanced", "completed"]);
    assert_consistent(&engine, run);

    // A timer that fires and the steps after it: one commit, from waiting to completed.
    commits.lock().expect("states").clear();
    let run = engine.start(("nap", 1), json!({})).expect("start");
    assert_eq!(engine.tick(run).expect("tick").status, RunStatus::Waiting);
    clock.advance_ms(1_000);
    assert_eq!(engine.fire_due_timers(10).expect("fire"), 1);
    let states = commits.lock().expect("states").clone();
    assert_eq!(states.len(), 3, "start, wait, then fire + a + b in one");
    assert_eq!(states[2].status, RunStatus::Completed);
    assert_eq!(
        kinds(&engine, run),
        ["started", "waiting", "timer_fired", "advanced", "completed"]
    );
    assert!(engine
        .store()
        .due_timers(T0 + 10_000, None, 10)
        .expect("timers")
        .is_empty());
    assert_consistent(&engine, run);
}

#[test]
fn an_effect_request_is_committed_before_its_handler_runs() {
    let (engine, _clock) = engine();
    let stored_before_call = Arc::new(AtomicUsize::new(usize::MAX));
    let store = Arc::clone(engine.store());
    let seen = Arc::clone(&stored_before_call);
    engine
        .register_effect("charge", move |call: &ledgerflow_kernel::EffectCall<'_>| {
            let records = store.read_records(call.run_id, 1, 100).expect("records");
            seen.store(records.len(), Ordering::SeqCst);
            EffectOutcome::Completed(json!("charged"))
        })
        .expect("not a built-in kind");
    engine.register(
        WorkflowSpec::builder("pay", 1)
            .node("start", |_: &mut Ctx<'_>| StepPlan::next("charge"))
            .node("charge", |_: &mut Ctx<'_>| {
                StepPlan::effect(Effect::custom("charge", json!({})).result_key("r"))
                    .then_next("done")
            })
            .node("done", |ctx: &mut Ctx<'_>| {
                StepPlan::complete(ctx.var("r").cloned().unwrap_or_default())
            })
            .entry("start")
            .build()
            .expect("valid"),
    );
    let commits = commits_of(&engine);
    let run = engine.start(("pay", 1), json!({})).expect("start");
    assert_eq!(
        engine.tick(run).expect("tick").output,
        Some(json!("charged"))
    );
    // started | advanced + effect_requested | effect_completed + completed
    assert_eq!(
        stored_before_call.load(Ordering::SeqCst),
        3,
        "the handler saw its request durable"
    );
    assert_eq!(commits.lock().expect("states").len(), 3);
    assert_eq!(
        kinds(&engine, run),
        [
            "started",
            "advanced",
            "effect_requested",
            "effect_completed",
            "completed"
        ]
    );
    assert_consistent(&engine, run);
}

#[test]
fn run_commits_the_start_with_the_first_steps_and_refuses_a_taken_id() {
    let (engine, _clock) = engine();
    engine.register(linear());
    engine.register(waits_then_completes(Effect::wait_event("k-1")));
    let commits = commits_of(&engine);
    let done = engine.run(("linear", 1), json!({})).expect("run");
    assert_eq!(done.output, Some(json!({ "sum": 2 })));
    assert_eq!(commits.lock().expect("states").len(), 1, "one commit");
    assert_consistent(&engine, done.run_id);

    let waiting = engine.run(("waits", 1), json!({})).expect("run");
    assert_eq!(waiting.status, RunStatus::Waiting);
    assert_eq!(kinds(&engine, waiting.run_id), ["started", "waiting"]);

    // An id the store holds already: a conflict, and the run is as it was.
    let taken = engine.run_as(waiting.run_id, ("linear", 1), json!({}));
    assert!(
        matches!(&taken, Err(e) if e.is_conflict()),
        "a taken id is a conflict: {taken:?}"
    );
    assert_eq!(assert_consistent(&engine, waiting.run_id), waiting);
    // Unknown workflows are refused before anything is written.
    assert!(matches!(
        engine.run(("nope", 1), json!({})),
        Err(Error::WorkflowNotRegistered { .. })
    ));
}

#[test]
fn cancel_cascade_cancels_descendants_or_nothing_over_the_bound() {
    let (engine, _clock) = engine();
    let waits = |id: &str| {
        WorkflowSpec::builder(id, 1)
            .node("w", |_: &mut Ctx<'_>| {
                StepPlan::effect(Effect::wait_event("never-sent")).then_next("w")
            })
            .entry("w")
            .build()
            .expect("valid")
    };
    // A run that starts a synchronous child of `child` and waits for it.
    let spawner = |id: &str, child: &'static str| {
        WorkflowSpec::builder(id, 1)
            .node("spawn", move |_: &mut Ctx<'_>| {
                let mode = ledgerflow_kernel::SubworkflowMode::Sync;
                StepPlan::effect(Effect::start_subworkflow(child, 1, json!({}), mode))
                    .then_next("spawn")
            })
            .entry("spawn")
            .build()
            .expect("valid")
    };
    engine.register(waits("leaf"));
    engine.register(spawner("middle", "leaf"));
    engine.register(spawner("top", "middle"));
    let top = engine.run(("top", 1), json!({})).expect("run").run_id;
    let tree = engine.descendants(top, 10).expect("descendants");
    assert_eq!(tree.len(), 2, "a middle run and its leaf");

    // Over the bound: refused before anything is cancelled.
    assert!(matches!(
        engine.cancel_cascade(top, "too big", 1),
        Err(Error::LimitExceeded { .. })
    ));
    for run in std::iter::once(top).chain(tree.iter().copied()) {
        assert_eq!(engine.load(run).expect("load").status, RunStatus::Waiting);
    }

    let outcome = engine.cancel_cascade(top, "duplicate", 10).expect("cancel");
    assert!(outcome.root.changed);
    assert_eq!(outcome.children_cancelled, tree, "parents before children");
    for run in &tree {
        let state = assert_consistent(&engine, *run);
        assert_eq!(state.status, RunStatus::Cancelled);
        let last = engine.records(*run, state.head.seq, 1).expect("records");
        assert_eq!(
            last[0].body()["reason"],
            json!(format!("parent run {top} cancelled: duplicate"))
        );
    }
    // Again: nothing changes, nothing is reported cancelled.
    let again = engine.cancel_cascade(top, "again", 10).expect("cancel");
    assert!(!again.root.changed);
    assert!(again.children_cancelled.is_empty());
}
