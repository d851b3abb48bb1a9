//! Limits on both stores, each with its documented default: wait_key length, vars size,
//! value size (over the artifact threshold → artifact, over the hard limit → refused),
//! records per read, subworkflow depth (see tests/subworkflows.rs).

use std::sync::Arc;

use ledgerflow::{
    Effect, Engine, EngineConfig, Error, FailureCode, ManualClock, MemoryStore, SledStore,
    StepContext, StepPlan, Store, WorkflowSpec,
};
use serde_json::{json, Value};

fn each_store(test: impl Fn(Engine)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sled: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("sled"));
    for store in [Arc::new(MemoryStore::new()) as Arc<dyn Store>, sled] {
        let engine = Engine::new(store, Arc::new(ManualClock::new(0)));
        engine.register(
            WorkflowSpec::builder("limits", 1)
                .node("a", |ctx: &mut StepContext<'_>| {
                    let key = ctx
                        .var("key")
                        .and_then(Value::as_str)
                        .unwrap_or("k")
                        .to_owned();
                    let many = ctx.var("many").and_then(Value::as_u64).unwrap_or(0);
                    for i in 0..many {
                        ctx.set(format!("v{i}"), json!("x".repeat(4_000)));
                    }
                    StepPlan::effect(Effect::wait_event(key)).then_complete(Value::Null)
                })
                .entry("a")
                .build()
                .expect("valid spec"),
        );
        test(engine);
    }
}

#[test]
fn defaults_are_documented_values() {
    let config = EngineConfig::default();
    assert_eq!(config.artifact_threshold_bytes, 8 << 10);
    assert_eq!(config.value_bytes_max, 16 << 20);
    assert_eq!(config.vars_bytes_max, 128 << 10);
    assert_eq!(config.wait_key_bytes_max, 512);
    assert_eq!(config.subworkflow_depth_max, 8);
    assert_eq!(MemoryStore::new().limits().read_items_max, 10_000);
}

#[test]
fn long_wait_key_fails_the_run_and_is_refused_from_callers() {
    each_store(|engine| {
        let long = "k".repeat(513);
        let run = engine
            .start(("limits", 1), json!({ "key": long }))
            .expect("start");
        let failed = engine.tick(run).expect("tick");
        assert_eq!(
            failed.failure.map(|f| f.code),
            Some(FailureCode::LimitExceeded)
        );
        assert!(matches!(
            engine.deliver(&long, json!(1)),
            Err(Error::LimitExceeded { .. })
        ));
        let ok = engine
            .start(("limits", 1), json!({ "key": "k".repeat(512) }))
            .expect("start");
        assert!(
            engine.tick(ok).expect("tick").waiting.is_some(),
            "512 bytes is allowed"
        );
    });
}

#[test]
fn vars_over_the_limit_fail_the_run_or_refuse_the_input() {
    each_store(|engine| {
        // 40 vars of 4 KB each stay under the artifact threshold but add up to 160 KB.
        let run = engine
            .start(("limits", 1), json!({ "many": 40 }))
            .expect("start");
        let failed = engine.tick(run).expect("tick");
        let failure = failed.failure.expect("failed");
        assert_eq!(failure.code, FailureCode::LimitExceeded);
        assert!(failure.message.contains("vars of"), "{}", failure.message);
        let big_input: serde_json::Map<String, Value> = (0..40)
            .map(|i| (format!("k{i}"), json!("y".repeat(4_000))))
            .collect();
        assert!(matches!(
            engine.start(("limits", 1), Value::Object(big_input)),
            Err(Error::LimitExceeded { .. })
        ));
    });
}

#[test]
fn payloads_over_the_hard_limit_are_refused_and_large_ones_become_artifacts() {
    each_store(|engine| {
        let run = engine.start(("limits", 1), json!({})).expect("start");
        engine.tick(run).expect("tick");
        let before = engine.load(run).expect("load");
        let huge = json!("z".repeat((16 << 20) + 1));
        assert!(matches!(
            engine.resume(run, "k", huge),
            Err(Error::ValueTooLarge { .. })
        ));
        assert_eq!(engine.load(run).expect("load"), before, "nothing changed");
        let large = json!("w".repeat(100_000));
        let done = engine.resume(run, "k", large.clone()).expect("resume");
        let records = engine.records(run, 1, 10).expect("records");
        let resumed = records
            .iter()
            .find(|r| r.kind() == "resumed")
            .expect("resumed");
        assert!(
            resumed.body()["payload"].get("$artifact").is_some(),
            "the record holds a reference"
        );
        assert_eq!(done.status, ledgerflow::RunStatus::Completed);
        let artifact =
            ledgerflow::ArtifactRef::from_value(&resumed.body()["payload"]).expect("ref");
        assert_eq!(
            engine.resolve(&artifact.to_value()).expect("resolve"),
            large
        );
    });
}

#[test]
fn reads_over_the_limit_are_refused() {
    each_store(|engine| {
        let run = engine.start(("limits", 1), json!({})).expect("start");
        let max = engine.store().limits().read_items_max;
        assert!(matches!(
            engine.records(run, 1, max + 1),
            Err(Error::Store(ledgerflow::store::Error::LimitTooLarge { requested, max: m })) if requested == max + 1 && m == max
        ));
    });
}
