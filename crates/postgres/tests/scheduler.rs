//! A scheduler's workers on a PostgreSQL store: runs that wait for events (some delivered
//! before the run waits, so they wait in the inbox) and then for a timer all complete once,
//! and the store checks clean. Skipped, saying why, on a machine without PostgreSQL unless
//! `LEDGERFLOW_REQUIRE_POSTGRES=1` (CI).

use std::sync::Arc;
use std::time::Duration;

use ledgerflow_kernel::{Effect, Engine, ManualClock, StepContext, StepPlan, Store, WorkflowSpec};
use ledgerflow_postgres::testing::{self, TestStore};
use ledgerflow_scheduler::{Scheduler, SchedulerConfig};
use serde_json::json;

const T0: i64 = 1_700_000_000_000;
const RUNS: usize = 100;

fn event_then_timer() -> WorkflowSpec {
    WorkflowSpec::builder("event-then-timer", 1)
        .node("event", |ctx: &mut StepContext<'_>| {
            let key = format!("order-{}", ctx.var("n").cloned().unwrap_or_default());
            StepPlan::effect(Effect::wait_event(&key).result_key("paid")).then_next("timer")
        })
        .node("timer", |_: &mut StepContext<'_>| {
            StepPlan::effect(Effect::wait_until(T0 + 1_000)).then_next("done")
        })
        .node("done", |ctx: &mut StepContext<'_>| {
            StepPlan::complete(ctx.var("paid").cloned().unwrap_or_default())
        })
        .entry("event")
        .build()
        .expect("spec")
}

#[test]
fn waits_events_and_timers_complete_every_run_once() {
    if let Some(reason) = testing::unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let test_store = TestStore::new().expect("a test store");
    let store = test_store.shared() as Arc<dyn Store>;
    let clock = ManualClock::new(T0);
    let engine = Arc::new(Engine::new(Arc::clone(&store), Arc::new(clock.clone())));
    engine.register(event_then_timer());
    let scheduler = Scheduler::start(
        Arc::clone(&engine),
        SchedulerConfig {
            workers: 4,
            ..SchedulerConfig::default()
        },
    )
    .expect("start");
    // Half the events arrive before their run exists: they wait in the inbox.
    for n in 0..RUNS / 2 {
        scheduler
            .deliver(&format!("order-{n}"), json!({ "n": n }))
            .expect("queued");
    }
    let runs: Vec<_> = (0..RUNS)
        .map(|n| {
            scheduler
                .run(("event-then-timer", 1), json!({ "n": n }))
                .expect("start")
                .run_id
        })
        .collect();
    for n in RUNS / 2..RUNS {
        scheduler
            .deliver(&format!("order-{n}"), json!({ "n": n }))
            .expect("delivered");
    }
    clock.set_ms(T0 + 1_000);
    scheduler.wake();
    for (n, &run) in runs.iter().enumerate() {
        let done = scheduler
            .await_end(run, Duration::from_secs(30))
            .expect("completes");
        assert_eq!(done.output, Some(json!({ "n": n })));
    }
    scheduler.stop();
    let checked = store.check().expect("the store checks clean");
    assert_eq!(checked.runs, RUNS as u64);
    assert!(checked.orphaned_inboxes.is_empty());
    // Every queued event was consumed by its run.
    assert_eq!(
        store.inbox_keys(None, 10).expect("keys"),
        Vec::<String>::new()
    );
}
