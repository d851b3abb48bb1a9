//! Effect retries on both stores: each attempt is a ledger record, waits between attempts
//! are durable timers, exhausted retries fail the run with the last error, non-retryable
//! errors fail at once, and every attempt carries the same idempotency key.

use std::sync::{Arc, Mutex};

use ledgerflow::ledger::verify_chain;
use ledgerflow::{
    replay, Effect, EffectCall, EffectOutcome, Engine, EngineConfig, FailureCode, ManualClock,
    MemoryStore, RetryPolicy, RunStatus, SledStore, StepContext, StepPlan, Store, WaitReason,
    WorkflowSpec,
};
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000_000;

fn stores() -> Vec<(Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sled = Arc::new(SledStore::open(dir.path()).expect("sled"));
    vec![(Arc::new(MemoryStore::new()), None), (sled, Some(dir))]
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts_max: 3,
        initial_backoff_ms: 100,
        max_backoff_ms: 1_000,
        multiplier: 2.0,
        jitter: 0.0,
    }
}

/// A handler that fails (retryably unless told otherwise) `failures` times, then succeeds,
/// logging (attempt, idempotency key) of each call.
fn flaky(engine: &Engine, failures: u32, retryable: bool) -> Arc<Mutex<Vec<(u32, String)>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::clone(&log);
    engine
        .register_effect("flaky", move |call: &EffectCall<'_>| {
            calls
                .lock()
                .expect("lock")
                .push((call.attempt, call.idempotency_key.to_owned()));
            if call.attempt <= failures {
                EffectOutcome::Failed {
                    error: format!("attempt {} failed", call.attempt),
                    retryable,
                }
            } else {
                EffectOutcome::Completed(json!({ "ok_on": call.attempt }))
            }
        })
        .expect("register");
    log
}

fn workflow(retry: Option<RetryPolicy>) -> WorkflowSpec {
    WorkflowSpec::builder("call", 1)
        .node("call", move |_: &mut StepContext<'_>| {
            let mut effect = Effect::custom("flaky", Value::Null).result_key("r");
            effect.retry = retry;
            StepPlan::effect(effect).then_next("done")
        })
        .node("done", |ctx: &mut StepContext<'_>| {
            StepPlan::complete(ctx.var("r").cloned().unwrap_or_default())
        })
        .entry("call")
        .build()
        .expect("valid spec")
}

fn kinds(engine: &Engine, run: ledgerflow::RunId) -> Vec<String> {
    engine
        .records(run, 1, 100)
        .expect("records")
        .iter()
        .map(|r| r.kind().to_owned())
        .collect()
}

fn consistent(engine: &Engine, run: ledgerflow::RunId) {
    let records = engine.records(run, 1, 100).expect("records");
    verify_chain(&records).expect("chain");
    assert_eq!(
        replay(&records).expect("replay"),
        engine.load(run).expect("load")
    );
}

#[test]
fn retries_wait_on_durable_timers_then_succeed() {
    for (store, _dir) in stores() {
        let clock = ManualClock::new(T0);
        let engine = Engine::new(store, Arc::new(clock.clone()));
        let log = flaky(&engine, 2, true);
        engine.register(workflow(Some(policy())));
        let run = engine.start(("call", 1), json!({})).expect("start");
        let waiting = engine.tick(run).expect("tick");
        let wait = waiting.waiting.clone().expect("waits for the retry");
        assert_eq!(
            (wait.reason, wait.until_ms),
            (WaitReason::Retry, Some(T0 + 100))
        );
        let timer = engine
            .store()
            .next_timer()
            .expect("timers")
            .expect("a durable timer");
        assert_eq!((timer.run_id, timer.due_at_ms), (run, T0 + 100));
        assert_eq!(engine.fire_due_timers(10).expect("fire"), 0, "not due yet");

        clock.advance_ms(100);
        assert_eq!(engine.fire_due_timers(10).expect("fire"), 1);
        let again = engine.load(run).expect("load");
        assert_eq!(
            again.waiting.and_then(|w| w.until_ms),
            Some(T0 + 100 + 200),
            "backoff doubles"
        );

        clock.advance_ms(200);
        engine.fire_due_timers(10).expect("fire");
        let done = engine.load(run).expect("load");
        assert_eq!(done.status, RunStatus::Completed);
        assert_eq!(done.output, Some(json!({ "ok_on": 3 })));
        let calls = log.lock().expect("lock").clone();
        assert_eq!(calls.iter().map(|c| c.0).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(
            calls.iter().all(|c| c.1 == calls[0].1),
            "one idempotency key for every attempt"
        );
        assert_eq!(
            kinds(&engine, run),
            [
                "started",
                "effect_requested",
                "effect_retry_scheduled",
                "timer_fired",
                "effect_retry_scheduled",
                "timer_fired",
                "effect_completed",
                "completed"
            ]
        );
        consistent(&engine, run);
    }
}

#[test]
fn exhausted_retries_fail_the_run_with_the_last_error() {
    for (store, _dir) in stores() {
        let clock = ManualClock::new(T0);
        let engine = Engine::new(store, Arc::new(clock.clone()));
        let log = flaky(&engine, 10, true);
        engine.register(workflow(Some(policy())));
        let run = engine.start(("call", 1), json!({})).expect("start");
        engine.tick(run).expect("tick");
        for _ in 0..5 {
            clock.advance_ms(1_000);
            engine.fire_due_timers(10).expect("fire");
        }
        let failed = engine.load(run).expect("load");
        assert_eq!(failed.status, RunStatus::Failed);
        let failure = failed.failure.clone().expect("failure");
        assert_eq!(
            (failure.code, failure.message.as_str()),
            (FailureCode::EffectFailed, "attempt 3 failed")
        );
        assert_eq!(
            log.lock().expect("lock").len(),
            3,
            "attempts_max attempts in all"
        );
        consistent(&engine, run);
    }
}

#[test]
fn non_retryable_failure_fails_at_once() {
    let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(ManualClock::new(T0)));
    let log = flaky(&engine, 10, false);
    engine.register(workflow(Some(policy())));
    let run = engine.start(("call", 1), json!({})).expect("start");
    let failed = engine.tick(run).expect("tick");
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(log.lock().expect("lock").len(), 1);
    assert_eq!(
        kinds(&engine, run),
        ["started", "effect_requested", "effect_failed"]
    );
}

#[test]
fn engine_default_policy_applies_to_effects_without_one() {
    let clock = ManualClock::new(T0);
    let config = EngineConfig {
        default_retry: Some(policy()),
        ..EngineConfig::default()
    };
    let engine = Engine::with_config(
        Arc::new(MemoryStore::new()),
        Arc::new(clock.clone()),
        config,
    );
    flaky(&engine, 1, true);
    engine.register(workflow(None));
    let run = engine.start(("call", 1), json!({})).expect("start");
    assert_eq!(engine.tick(run).expect("tick").status, RunStatus::Waiting);
    clock.advance_ms(100);
    engine.fire_due_timers(10).expect("fire");
    assert_eq!(
        engine.load(run).expect("load").output,
        Some(json!({ "ok_on": 2 }))
    );
}

#[test]
fn backoff_grows_is_capped_and_jitter_only_shortens() {
    let p = RetryPolicy {
        attempts_max: 10,
        initial_backoff_ms: 100,
        max_backoff_ms: 1_000,
        multiplier: 3.0,
        jitter: 0.5,
    };
    assert_eq!(p.backoff_ms(1, 0.0), 100);
    assert_eq!(p.backoff_ms(2, 0.0), 300);
    assert_eq!(p.backoff_ms(3, 0.0), 900);
    assert_eq!(p.backoff_ms(4, 0.0), 1_000, "capped");
    assert_eq!(p.backoff_ms(2, 0.999_999), 150, "at most half taken off");
    assert_eq!(p.backoff_ms(50, 0.5), 750);
}

#[test]
fn a_retry_after_waits_at_least_as_asked_and_still_counts_against_the_attempts() {
    for (store, _dir) in stores() {
        let clock = ManualClock::new(T0);
        let engine = Engine::new(store, Arc::new(clock.clone()));
        engine
            .register_effect("busy", |call: &EffectCall<'_>| EffectOutcome::RetryAfter {
                error: format!("attempt {}: come back in 5 s", call.attempt),
                after_ms: 5_000,
            })
            .expect("register");
        let spec = |id: &str, retry: Option<RetryPolicy>| {
            WorkflowSpec::builder(id, 1)
                .node("call", move |_: &mut StepContext<'_>| {
                    let mut effect = Effect::custom("busy", Value::Null);
                    effect.retry = retry;
                    StepPlan::effect(effect).then_complete(json!("done"))
                })
                .entry("call")
                .build()
                .expect("valid spec")
        };
        engine.register(spec("busy", Some(policy())));
        engine.register(spec("busy-no-policy", None));

        let run = engine.start(("busy", 1), json!({})).expect("start");
        let waiting = engine.tick(run).expect("tick");
        assert_eq!(
            waiting.waiting.and_then(|w| w.until_ms),
            Some(T0 + 5_000),
            "the asked wait, not the policy's 100 ms"
        );
        clock.advance_ms(5_000);
        engine.fire_due_timers(10).expect("fire");
        clock.advance_ms(5_000);
        engine.fire_due_timers(10).expect("fire");
        let failed = engine.load(run).expect("load");
        assert_eq!(failed.status, RunStatus::Failed, "three attempts in all");
        let failure = failed.failure.expect("a failure");
        assert_eq!(failure.code, FailureCode::EffectFailed);
        assert!(
            failure.message.starts_with("attempt 3"),
            "{}",
            failure.message
        );
        consistent(&engine, run);

        let run = engine
            .start(("busy-no-policy", 1), json!({}))
            .expect("start");
        let failed = engine.tick(run).expect("tick");
        assert_eq!(failed.status, RunStatus::Failed, "no policy: no retry");
        consistent(&engine, run);
    }
}
