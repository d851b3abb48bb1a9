//! Group commit on PostgreSQL: many threads step many runs at once, two threads racing on
//! each run, so commits share transactions and some lose their race inside a batch. Every
//! run ends with exactly its steps counted once, and the store checks clean. Skipped,
//! saying why, on a machine without PostgreSQL unless `LEDGERFLOW_REQUIRE_POSTGRES=1` (CI).

use std::sync::Arc;

use ledgerflow_kernel::{
    Engine, EngineConfig, ManualClock, RunStatus, StepContext, StepPlan, Store, WorkflowSpec,
};
use ledgerflow_postgres::testing::{self, TestStore};
use serde_json::{json, Value};

const RUNS: usize = 24;
const STEPS: u64 = 10;

fn counter() -> WorkflowSpec {
    WorkflowSpec::builder("count", 1)
        .node("step", |ctx: &mut StepContext<'_>| {
            let n = ctx.var("n").and_then(Value::as_u64).unwrap_or(0) + 1;
            ctx.set("n", json!(n));
            if n >= STEPS {
                StepPlan::complete(json!(n))
            } else {
                StepPlan::next("step")
            }
        })
        .entry("step")
        .build()
        .expect("spec")
}

#[test]
fn racing_steps_in_shared_transactions_each_count_once() {
    if let Some(reason) = testing::unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let test_store = TestStore::new().expect("a test store");
    let store = test_store.shared() as Arc<dyn Store>;
    let engine = Arc::new(Engine::with_config(
        Arc::clone(&store),
        Arc::new(ManualClock::new(1_700_000_000_000)),
        EngineConfig {
            steps_per_tick_max: 1,
            ..EngineConfig::default()
        },
    ));
    engine.register(counter());
    let runs: Vec<_> = (0..RUNS)
        .map(|_| engine.start(("count", 1), json!({})).expect("start"))
        .collect();
    std::thread::scope(|scope| {
        for &run in &runs {
            for _ in 0..2 {
                let engine = Arc::clone(&engine);
                scope.spawn(move || {
                    // Bounded: each tick commits a step or learns another thread did.
                    for _ in 0..4 * STEPS {
                        match engine.tick(run) {
                            Ok(state) if state.status.is_terminal() => return,
                            Ok(_) => {}
                            Err(e) if e.kind() == ledgerflow_kernel::ErrorKind::Conflict => {}
                            Err(e) => panic!("tick: {e}"),
                        }
                    }
                    panic!("run {run} did not finish within its bound");
                });
            }
        }
    });
    for &run in &runs {
        let state = engine.load(run).expect("load");
        assert_eq!(state.status, RunStatus::Completed);
        assert_eq!(state.output, Some(json!(STEPS)), "every step counted once");
    }
    let checked = store.check().expect("the store checks clean");
    assert_eq!(checked.runs, RUNS as u64);
    assert_eq!(store.feed_head().expect("head"), checked.records);
}
