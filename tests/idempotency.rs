//! Idempotency across a crash on both stores: an effect is recorded as requested before its
//! handler runs; after a crash between the two it runs again with the same key; once its
//! completion is recorded it never runs again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ledgerflow::{
    Effect, EffectCall, EffectOutcome, Engine, EngineConfig, ManualClock, MemoryStore, RunStatus,
    SledStore, StepContext, StepPlan, Store, WorkflowSpec,
};
use serde_json::json;

fn spec() -> WorkflowSpec {
    WorkflowSpec::builder("pay", 1)
        .node("charge", |_: &mut StepContext<'_>| {
            StepPlan::effect(
                Effect::custom("charge_card", json!({ "cents": 1299 })).result_key("receipt"),
            )
            .then_next("done")
        })
        .node("done", |ctx: &mut StepContext<'_>| {
            StepPlan::complete(ctx.var("receipt").cloned().unwrap_or_default())
        })
        .entry("charge")
        .build()
        .expect("valid spec")
}

/// A payment provider that counts charges and remembers keys, as a real one would.
#[derive(Default)]
struct Provider {
    calls: AtomicUsize,
    keys: Mutex<Vec<String>>,
}

fn engine(store: Arc<dyn Store>, provider: &Arc<Provider>, steps_per_tick_max: u32) -> Engine {
    let config = EngineConfig {
        steps_per_tick_max,
        ..EngineConfig::default()
    };
    let engine = Engine::with_config(store, Arc::new(ManualClock::new(0)), config);
    engine.register(spec());
    let provider = Arc::clone(provider);
    engine
        .register_effect("charge_card", move |call: &EffectCall<'_>| {
            provider.calls.fetch_add(1, Ordering::SeqCst);
            provider
                .keys
                .lock()
                .expect("lock")
                .push(call.idempotency_key.to_owned());
            EffectOutcome::Completed(json!({ "charge_id": format!("ch_{}", call.idempotency_key) }))
        })
        .expect("register");
    engine
}

#[test]
fn effect_reruns_with_the_same_key_after_a_crash_and_never_after_completion() {
    let dir = tempfile::tempdir().expect("temp dir");
    let open_sled = || Arc::new(SledStore::open(dir.path()).expect("sled")) as Arc<dyn Store>;
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    for (name, reopen) in [("memory", None), ("sled", Some(&open_sled))] {
        let provider = Arc::new(Provider::default());
        let store = match reopen {
            Some(open) => open(),
            None => Arc::clone(&memory),
        };
        // Process 1 records effect_requested (budget: one step), then "crashes" before the
        // handler runs: everything is dropped.
        let run = {
            let first = engine(Arc::clone(&store), &provider, 1);
            let run = first.start(("pay", 1), json!({})).expect("start");
            let state = first.tick(run).expect("tick");
            assert!(
                state.pending_effect.is_some(),
                "{name}: requested, not yet run"
            );
            run
        };
        drop(store);
        let store = match reopen {
            Some(open) => open(),
            None => Arc::clone(&memory),
        };
        // Process 2 finds the pending effect and runs it, with the recorded key.
        let second = engine(Arc::clone(&store), &provider, 1_000);
        let key = second
            .load(run)
            .expect("load")
            .pending_effect
            .expect("pending")
            .idempotency_key;
        let done = second.tick(run).expect("tick");
        assert_eq!(done.status, RunStatus::Completed, "{name}");
        assert_eq!(
            provider.keys.lock().expect("lock").as_slice(),
            std::slice::from_ref(&key),
            "{name}: same key"
        );
        // Completed is recorded: ticking again, or on a third process, never charges again.
        for _ in 0..3 {
            second.tick(run).expect("tick");
        }
        let third = engine(store, &provider, 1_000);
        third.tick(run).expect("tick");
        assert_eq!(
            provider.calls.load(Ordering::SeqCst),
            1,
            "{name}: charged exactly once"
        );
        assert_eq!(
            done.output,
            Some(json!({ "charge_id": format!("ch_{key}") }))
        );
    }
}
