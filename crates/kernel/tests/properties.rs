//! Property tests: random workflows driven by random operation sequences. After every
//! operation each run's chain verifies, replaying its ledger gives exactly the stored
//! state, and an operation that returns an error has changed nothing.

use std::sync::Arc;

use ledgerflow_kernel::{
    replay, Effect, EffectOutcome, Engine, EngineConfig, ManualClock, MemoryStore, RunId,
    RunStatus, StepContext, StepPlan, WorkflowSpec,
};
use ledgerflow_ledger::verify_chain;
use proptest::prelude::*;
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000_000;
const KEYS: [&str; 3] = ["k0", "k1", "k2"];

/// What one node does. `target` picks the next node modulo the node count; `None` as a
/// target means a node name the spec does not have.
#[derive(Clone, Debug)]
enum Behaviour {
    Next {
        target: Option<usize>,
        set: (u8, i64),
    },
    Complete,
    Fail,
    DeleteVar {
        target: usize,
        key: u8,
    },
    SetNull {
        target: usize,
        key: u8,
    },
    WaitEvent {
        key: usize,
        target: usize,
    },
    AskUser {
        target: usize,
    },
    WaitUntil {
        offset_ms: i64,
        target: usize,
    },
    Tool {
        outcome: u8,
        target: usize,
    },
    Emit {
        key: usize,
        target: usize,
    },
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        4 => (prop::option::weighted(0.9, 0..8usize), (0u8..4, any::<i64>()))
            .prop_map(|(target, set)| Behaviour::Next { target, set }),
        1 => Just(Behaviour::Complete),
        1 => Just(Behaviour::Fail),
        1 => (0..8usize, 0u8..4).prop_map(|(target, key)| Behaviour::DeleteVar { target, key }),
        1 => (0..8usize, 0u8..4).prop_map(|(target, key)| Behaviour::SetNull { target, key }),
        2 => (0..KEYS.len(), 0..8usize).prop_map(|(key, target)| Behaviour::WaitEvent { key, target }),
        2 => (0..8usize).prop_map(|target| Behaviour::AskUser { target }),
        2 => (-10i64..500, 0..8usize).prop_map(|(offset_ms, target)| Behaviour::WaitUntil { offset_ms, target }),
        2 => (0u8..3, 0..8usize).prop_map(|(outcome, target)| Behaviour::Tool { outcome, target }),
        1 => (0..KEYS.len(), 0..8usize).prop_map(|(key, target)| Behaviour::Emit { key, target }),
    ]
}

fn node_name(i: usize, count: usize) -> String {
    format!("n{}", i % count)
}

fn build_spec(behaviours: &[Behaviour]) -> WorkflowSpec {
    let count = behaviours.len();
    let mut builder = WorkflowSpec::builder("random", 1);
    for (i, b) in behaviours.iter().enumerate() {
        let b = b.clone();
        builder = builder.node(node_name(i, count), move |ctx: &mut StepContext<'_>| {
            let visits = ctx.var("visits").and_then(Value::as_u64).unwrap_or(0);
            ctx.set("visits", json!(visits + 1));
            let next = |t: usize| node_name(t, count);
            match &b {
                Behaviour::Next {
                    target: Some(t),
                    set: (k, v),
                } => {
                    ctx.set(format!("v{k}"), json!({ "n": v, "at": ctx.now_ms }));
                    StepPlan::next(next(*t))
                }
                Behaviour::Next { target: None, .. } => StepPlan::next("missing-node"),
                Behaviour::Complete => StepPlan::complete(json!({ "visits": visits + 1 })),
                Behaviour::Fail => StepPlan::fail("chosen failure"),
                Behaviour::DeleteVar { target, key } => {
                    ctx.vars.remove(&format!("v{key}"));
                    StepPlan::next(next(*target))
                }
                Behaviour::SetNull { target, key } => {
                    ctx.set(format!("v{key}"), Value::Null);
                    StepPlan::next(next(*target))
                }
                Behaviour::WaitEvent { key, target } => {
                    StepPlan::effect(Effect::wait_event(KEYS[*key]).result_key("event"))
                        .then_next(next(*target))
                }
                Behaviour::AskUser { target } => {
                    StepPlan::effect(Effect::ask_user("ok?", &["y", "n"]).result_key("answer"))
                        .then_next(next(*target))
                }
                Behaviour::WaitUntil { offset_ms, target } => {
                    StepPlan::effect(Effect::wait_until(ctx.now_ms + offset_ms).result_key("woke"))
                        .then_next(next(*target))
                }
                Behaviour::Tool { outcome, target } => StepPlan::effect(
                    Effect::custom("tool", json!({ "outcome": outcome })).result_key("tool"),
                )
                .then_next(next(*target)),
                Behaviour::Emit { key, target } => {
                    StepPlan::effect(Effect::emit_event(KEYS[*key], json!({ "from": visits })))
                        .then_next(next(*target))
                }
            }
        });
    }
    builder
        .entry(node_name(0, count))
        .build()
        .expect("entry exists")
}

#[derive(Clone, Debug)]
enum Op {
    Start,
    Tick(usize),
    Resume { run: usize, payload: i64 },
    ResumeWrongKey(usize),
    Deliver { key: usize, payload: i64 },
    Cancel(usize),
    Pause(usize),
    Unpause(usize),
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Start),
        3 => (0..4usize).prop_map(Op::Tick),
        3 => (0..4usize, any::<i64>()).prop_map(|(run, payload)| Op::Resume { run, payload }),
        1 => (0..4usize).prop_map(Op::ResumeWrongKey),
        2 => (0..KEYS.len(), any::<i64>()).prop_map(|(key, payload)| Op::Deliver { key, payload }),
        1 => (0..4usize).prop_map(Op::Cancel),
        1 => (0..4usize).prop_map(Op::Pause),
        1 => (0..4usize).prop_map(Op::Unpause),
        2 => (0i64..300).prop_map(Op::Advance),
    ]
}

fn check_run(engine: &Engine, run_id: RunId) -> Result<(), TestCaseError> {
    let stored = engine
        .load(run_id)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let records = engine
        .records(run_id, 1, 10_000)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(verify_chain(&records).is_ok(), "chain of {run_id} fails");
    let replayed = replay(&records).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(replayed, stored);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn replay_equals_stored_after_every_operation(
        behaviours in prop::collection::vec(behaviour(), 1..7),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let clock = ManualClock::new(T0);
        let engine = Engine::with_config(
            Arc::new(MemoryStore::new()),
            Arc::new(clock.clone()),
            EngineConfig { steps_per_tick_max: 20, ..EngineConfig::default() },
        );
        engine.register(build_spec(&behaviours));
        engine
            .register_effect("tool", |call: &ledgerflow_kernel::EffectCall<'_>| {
                match call.payload.get("outcome").and_then(Value::as_u64) {
                    Some(0) => EffectOutcome::Completed(json!({ "key": call.idempotency_key })),
                    Some(1) => EffectOutcome::Failed { error: "tool failed".into(), retryable: false },
                    _ => EffectOutcome::Waiting { wait_key: format!("job:{}", call.idempotency_key) },
                }
            })
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut runs: Vec<RunId> = vec![engine.start(("random", 1), json!({})).map_err(|e| TestCaseError::fail(e.to_string()))?];

        for op in ops {
            let pick = |i: usize| runs[i % runs.len()];
            let before: Vec<_> = runs.iter().map(|r| engine.load(*r).ok()).collect();
            let result: Result<(), ledgerflow_kernel::Error> = match op {
                Op::Start => engine.start(("random", 1), json!({ "seed": runs.len() })).map(|id| runs.push(id)),
                Op::Tick(i) => engine.tick(pick(i)).map(drop),
                Op::Resume { run, payload } => {
                    let id = pick(run);
                    let key = engine.load(id).ok().and_then(|s| s.waiting).and_then(|w| w.wait_key);
                    match key {
                        Some(key) => engine.resume(id, &key, json!(payload)).map(drop),
                        None => Ok(()),
                    }
                }
                Op::ResumeWrongKey(i) => engine.resume(pick(i), "no-such-key", json!(0)).map(drop),
                Op::Deliver { key, payload } => engine.deliver(KEYS[key], json!(payload)).map(drop),
                Op::Cancel(i) => engine.cancel(pick(i), "random cancel").map(drop),
                Op::Pause(i) => engine.pause(pick(i)).map(drop),
                Op::Unpause(i) => engine.unpause(pick(i)).map(drop),
                Op::Advance(ms) => {
                    clock.advance_ms(ms);
                    engine.fire_due_timers(100).map(drop)
                }
            };
            if result.is_err() {
                let after: Vec<_> = runs.iter().take(before.len()).map(|r| engine.load(*r).ok()).collect();
                prop_assert_eq!(before, after, "a failed operation changed stored state");
            }
            for run in &runs {
                check_run(&engine, *run)?;
                let state = engine.load(*run).map_err(|e| TestCaseError::fail(e.to_string()))?;
                if state.status.is_terminal() {
                    prop_assert!(state.waiting.is_none() && state.pending_effect.is_none());
                    prop_assert!(state.ended_seq.is_some());
                }
                if state.status == RunStatus::Waiting {
                    prop_assert!(state.waiting.is_some());
                }
            }
        }
    }
}
