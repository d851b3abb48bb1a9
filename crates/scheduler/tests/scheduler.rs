//! Scheduler behaviour: timers by manual clock, races, the inbox, restarts, operator
//! control, await, drain on stop. Waiting in these tests blocks on the scheduler's
//! condition variables (`await_*`), never on sleeps that decide an outcome.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ledgerflow_kernel::store::Store;
use ledgerflow_kernel::{
    replay, Delivered, Effect, Engine, ManualClock, MemoryStore, RunId, RunStatus, StepContext,
    StepPlan, WorkflowSpec,
};
use ledgerflow_ledger::verify_chain;
use ledgerflow_scheduler::{Error, Scheduler, SchedulerConfig};
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000_000;
const WAIT: Duration = Duration::from_secs(20);

type Ctx<'a> = StepContext<'a>;

fn waits_then_completes(id: &str, effect: Effect) -> WorkflowSpec {
    WorkflowSpec::builder(id, 1)
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

fn timer_at(due: i64) -> WorkflowSpec {
    waits_then_completes(
        &format!("timer-{due}"),
        Effect::wait_until(due).result_key("r"),
    )
}

fn setup(store: Arc<dyn Store>, clock: &ManualClock) -> (Arc<Engine>, Scheduler) {
    let engine = Arc::new(Engine::new(store, Arc::new(clock.clone())));
    let scheduler =
        Scheduler::start(Arc::clone(&engine), SchedulerConfig::default()).expect("start");
    (engine, scheduler)
}

fn check(engine: &Engine, run: RunId) {
    let records = engine.records(run, 1, 10_000).expect("records");
    verify_chain(&records).expect("chain verifies");
    assert_eq!(
        replay(&records).expect("replay"),
        engine.load(run).expect("load")
    );
}

fn kinds(engine: &Engine, run: RunId) -> Vec<String> {
    engine
        .records(run, 1, 10_000)
        .expect("records")
        .iter()
        .map(|r| r.kind().to_owned())
        .collect()
}

#[test]
fn timers_fire_when_the_manual_clock_reaches_them() {
    let clock = ManualClock::new(T0);
    let (engine, scheduler) = setup(Arc::new(MemoryStore::new()), &clock);
    engine.register(timer_at(T0 + 100));
    engine.register(timer_at(T0 + 200));
    let early = scheduler
        .run((format!("timer-{}", T0 + 100).as_str(), 1), json!({}))
        .expect("run")
        .run_id;
    let late = scheduler
        .run((format!("timer-{}", T0 + 200).as_str(), 1), json!({}))
        .expect("run")
        .run_id;

    clock.set_ms(T0 + 150);
    scheduler.wake();
    let done = scheduler.await_end(early, WAIT).expect("early timer fires");
    assert_eq!(done.output, Some(json!(T0 + 100)));
    assert_eq!(
        scheduler.stats().timers_fired,
        1,
        "await_end returns after the job that ended the run has been counted"
    );
    assert_eq!(
        engine.load(late).expect("load").status,
        RunStatus::Waiting,
        "not due yet"
    );

    clock.set_ms(T0 + 200);
    scheduler.wake();
    assert_eq!(
        scheduler
            .await_end(late, WAIT)
            .expect("late timer fires")
            .output,
        Some(json!(T0 + 200))
    );
    scheduler.stop(); // joins the workers, so their counters are final
    let stats = scheduler.stats();
    assert_eq!(stats.timers_fired, 2);
    assert!(
        stats.timer_lag_max_ms <= 50,
        "lag by the manual clock: {stats:?}"
    );
    check(&engine, early);
    check(&engine, late);
}

#[test]
fn racing_workers_commit_exactly_one_step() {
    let clock = ManualClock::new(T0);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let spec = move || {
        let counted = Arc::clone(&counted);
        WorkflowSpec::builder("once", 1)
            .node("step", move |_: &mut Ctx<'_>| {
                counted.fetch_add(1, Ordering::SeqCst);
                StepPlan::effect(Effect::wait_event("after-step")).then_next("step")
            })
            .entry("step")
            .build()
            .expect("valid spec")
    };
    let engine = Arc::new(Engine::new(Arc::clone(&store), Arc::new(clock.clone())));
    engine.register(spec());
    let other = Arc::new(Engine::new(Arc::clone(&store), Arc::new(clock.clone())));
    other.register(spec());
    let scheduler = Scheduler::start(
        Arc::clone(&engine),
        SchedulerConfig {
            workers: 4,
            ..SchedulerConfig::default()
        },
    )
    .expect("start");
    let run = engine.start(("once", 1), json!({})).expect("start");
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..50 {
                    scheduler.enqueue(run).expect("enqueue");
                }
            });
        }
        scope.spawn(|| {
            for _ in 0..50 {
                // A second engine ticking the same run: a lost race is a typed conflict.
                match other.tick(run) {
                    Ok(_) => {}
                    Err(ledgerflow_kernel::Error::Store(
                        ledgerflow_kernel::store::Error::Conflict { .. },
                    )) => {}
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
        });
    });
    let state = scheduler.await_waiting(run, WAIT).expect("waits");
    assert_eq!(state.status, RunStatus::Waiting);
    assert_eq!(
        kinds(&engine, run),
        ["started", "waiting"],
        "exactly one step committed"
    );
    assert!(calls.load(Ordering::SeqCst) >= 1);
    check(&engine, run);
}

#[test]
fn event_delivered_before_the_wait_is_consumed_not_lost() {
    let clock = ManualClock::new(T0);
    let (engine, scheduler) = setup(Arc::new(MemoryStore::new()), &clock);
    for i in 0..20 {
        engine.register(waits_then_completes(
            &format!("w{i}"),
            Effect::wait_event(format!("key-{i}")).result_key("r"),
        ));
    }
    // Half the events arrive before their run exists; the rest race with the run's start.
    let mut runs = Vec::new();
    std::thread::scope(|scope| {
        let deliveries = scope.spawn(|| {
            for i in 0..20 {
                scheduler
                    .deliver(&format!("key-{i}"), json!(i))
                    .expect("deliver");
            }
        });
        for i in 0..20 {
            runs.push(
                scheduler
                    .start_run((format!("w{i}").as_str(), 1), json!({}))
                    .expect("start"),
            );
        }
        deliveries.join().expect("deliveries");
    });
    for (i, run) in runs.iter().enumerate() {
        let done = scheduler
            .await_end(*run, WAIT)
            .expect("each run gets its event");
        assert_eq!(done.output, Some(json!(i)));
        check(&engine, *run);
    }
    assert_eq!(scheduler.stats().inbox_depth, 0);
    let stats = scheduler.stats();
    assert_eq!(stats.events_delivered + stats.events_queued, 20);
}

#[test]
fn restart_fires_overdue_timers_and_consumes_buffered_events_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::new(T0);
    let specs = |engine: &Engine| {
        engine.register(timer_at(T0 + 10));
        for i in 0..3 {
            engine.register(waits_then_completes(
                &format!("e{i}"),
                Effect::wait_event(format!("buffered-{i}")).result_key("r"),
            ));
        }
    };
    let timer_runs: Vec<RunId> = {
        let store = Arc::new(ledgerflow_sled::SledStore::open(dir.path()).expect("open"));
        let (engine, scheduler) = setup(store, &clock);
        specs(&engine);
        let runs = (0..5)
            .map(|_| {
                scheduler
                    .run((format!("timer-{}", T0 + 10).as_str(), 1), json!({}))
                    .expect("run")
                    .run_id
            })
            .collect();
        for i in 0..3 {
            assert_eq!(
                scheduler
                    .deliver(&format!("buffered-{i}"), json!(format!("event {i}")))
                    .expect("deliver"),
                Delivered::Queued(1)
            );
        }
        scheduler.stop();
        runs
    };
    clock.set_ms(T0 + 1_000); // the process was down while the timers came due
    let store = Arc::new(ledgerflow_sled::SledStore::open(dir.path()).expect("reopen"));
    let engine = Arc::new(Engine::new(store, Arc::new(clock.clone())));
    specs(&engine);
    let scheduler =
        Scheduler::start(Arc::clone(&engine), SchedulerConfig::default()).expect("start");
    for run in &timer_runs {
        assert_eq!(
            scheduler
                .await_end(*run, WAIT)
                .expect("fires at start-up")
                .status,
            RunStatus::Completed
        );
        assert_eq!(
            kinds(&engine, *run)
                .iter()
                .filter(|k| *k == "timer_fired")
                .count(),
            1
        );
        check(&engine, *run);
    }
    for i in 0..3 {
        let run = scheduler
            .run((format!("e{i}").as_str(), 1), json!({}))
            .expect("run");
        assert_eq!(
            run.output,
            Some(json!(format!("event {i}"))),
            "buffered event consumed"
        );
    }
    assert_eq!(scheduler.stats().inbox_depth, 0, "each event consumed once");
}

#[test]
fn paused_run_is_not_resumed_by_its_timer_until_unpaused() {
    let clock = ManualClock::new(T0);
    let (engine, scheduler) = setup(Arc::new(MemoryStore::new()), &clock);
    engine.register(timer_at(T0 + 10));
    let run = scheduler
        .run((format!("timer-{}", T0 + 10).as_str(), 1), json!({}))
        .expect("run")
        .run_id;
    scheduler.pause(run).expect("pause");
    clock.set_ms(T0 + 10);
    scheduler.wake();
    // The timer fires (recorded), but no step runs while paused: await keeps blocking.
    match scheduler.await_waiting(run, Duration::from_millis(300)) {
        Err(Error::Timeout { run_id, .. }) => assert_eq!(run_id, run),
        other => panic!("await must block while paused, got {other:?}"),
    }
    let paused = engine.load(run).expect("load");
    assert!(paused.paused);
    assert_ne!(paused.status, RunStatus::Completed);
    let done = scheduler.unpause(run).expect("unpause");
    let done = if done.status.is_terminal() {
        done
    } else {
        scheduler.await_end(run, WAIT).expect("ends")
    };
    assert_eq!(done.status, RunStatus::Completed);
    assert!(kinds(&engine, run).contains(&"paused".to_owned()));
    assert!(kinds(&engine, run).contains(&"unpaused".to_owned()));
    check(&engine, run);
}

#[test]
fn cancelling_a_parent_cancels_its_children_and_awaits_fail_fast() {
    let clock = ManualClock::new(T0);
    let (engine, scheduler) = setup(Arc::new(MemoryStore::new()), &clock);
    engine.register(waits_then_completes(
        "idle",
        Effect::wait_event("never").result_key("r"),
    ));
    engine.register(waits_then_completes(
        "idle-child",
        Effect::ask_user("?", &[]).result_key("r"),
    ));
    let parent = scheduler.run(("idle", 1), json!({})).expect("run").run_id;
    let children: Vec<RunId> = (0..3)
        .map(|_| {
            let child = engine
                .start_child(parent, ("idle-child", 1), json!({}))
                .expect("child");
            // The scheduler's workers may tick the new child first: a lost race is fine.
            match engine.tick(child) {
                Err(e) if !e.is_conflict() => panic!("tick child: {e}"),
                _ => {}
            }
            scheduler.await_waiting(child, WAIT).expect("child waits");
            child
        })
        .collect();
    let grandchild = engine
        .start_child(children[0], ("idle-child", 1), json!({}))
        .expect("grandchild");
    let outcome = scheduler.cancel(parent, "operator stop").expect("cancel");
    assert!(outcome.changed);
    for run in children.iter().chain([&grandchild]) {
        let state = engine.load(*run).expect("load");
        assert_eq!(state.status, RunStatus::Cancelled, "descendant {run}");
        assert!(state
            .cancel_reason
            .as_deref()
            .unwrap_or_default()
            .contains(&parent.to_string()));
        check(&engine, *run);
    }
    for _ in 0..3 {
        match scheduler.await_waiting(parent, WAIT) {
            Err(Error::Cancelled { run_id }) => assert_eq!(run_id, parent),
            other => panic!("await on a cancelled run must fail fast, got {other:?}"),
        }
    }
    let again = scheduler.cancel(parent, "twice").expect("idempotent");
    assert!(!again.changed);
    assert_eq!(again.record, outcome.record);
}

#[test]
fn respond_finds_the_wait_key_and_errors_are_typed() {
    let clock = ManualClock::new(T0);
    let (engine, scheduler) = setup(Arc::new(MemoryStore::new()), &clock);
    engine.register(waits_then_completes(
        "ask",
        Effect::ask_user("Ship?", &["yes", "no"]).result_key("r"),
    ));
    engine.register(timer_at(T0 + 5));
    let run = scheduler.run(("ask", 1), json!({})).expect("run").run_id;
    let done = scheduler.respond(run, json!("yes")).expect("respond");
    assert_eq!(done.output, Some(json!("yes")));
    assert!(matches!(
        scheduler.respond(run, json!("again")),
        Err(Error::NotWaitingOnKey {
            status: RunStatus::Completed,
            ..
        })
    ));
    let timer = scheduler
        .run((format!("timer-{}", T0 + 5).as_str(), 1), json!({}))
        .expect("run")
        .run_id;
    assert!(matches!(
        scheduler.respond(timer, json!(1)),
        Err(Error::NotWaitingOnKey { .. })
    ));
    assert!(matches!(
        scheduler.run(("nope", 9), json!({})),
        Err(Error::Engine(
            ledgerflow_kernel::Error::WorkflowNotRegistered { .. }
        ))
    ));
}

#[test]
fn unregistered_version_leaves_the_run_untouched_and_others_proceed() {
    let clock = ManualClock::new(T0);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let old = Engine::new(Arc::clone(&store), Arc::new(clock.clone()));
    old.register(timer_at(T0 + 10));
    old.register(timer_at(T0 + 20));
    let orphan = old
        .start((format!("timer-{}", T0 + 10).as_str(), 1), json!({}))
        .expect("start");
    old.tick(orphan).expect("tick");
    let fine = old
        .start((format!("timer-{}", T0 + 20).as_str(), 1), json!({}))
        .expect("start");
    old.tick(fine).expect("tick");
    // A new deployment that no longer registers the first workflow's version.
    let engine = Arc::new(Engine::new(Arc::clone(&store), Arc::new(clock.clone())));
    engine.register(timer_at(T0 + 20));
    let scheduler =
        Scheduler::start(Arc::clone(&engine), SchedulerConfig::default()).expect("start");
    let before = engine.load(orphan).expect("load");
    clock.set_ms(T0 + 30);
    scheduler.wake();
    assert_eq!(
        scheduler.await_end(fine, WAIT).expect("fires").status,
        RunStatus::Completed
    );
    assert_eq!(engine.load(orphan).expect("load"), before, "untouched");
    assert!(matches!(
        scheduler.respond(orphan, json!(1)),
        Err(Error::NotWaitingOnKey { .. })
    ));
}

/// Due timers of runs the scheduler cannot advance (their workflow is not registered
/// here) fill whole batches of the timer index; the timers behind them still fire.
#[test]
fn parked_timers_do_not_hide_the_timers_behind_them() {
    let clock = ManualClock::new(T0);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let old = Engine::new(Arc::clone(&store), Arc::new(clock.clone()));
    old.register(timer_at(T0 + 10));
    old.register(timer_at(T0 + 20));
    let orphans: Vec<RunId> = (0..5)
        .map(|_| {
            old.run((format!("timer-{}", T0 + 10).as_str(), 1), json!({}))
                .expect("run")
                .run_id
        })
        .collect();
    let fine = old
        .run((format!("timer-{}", T0 + 20).as_str(), 1), json!({}))
        .expect("run")
        .run_id;
    let engine = Arc::new(Engine::new(Arc::clone(&store), Arc::new(clock.clone())));
    engine.register(timer_at(T0 + 20));
    let scheduler = Scheduler::start(
        Arc::clone(&engine),
        SchedulerConfig {
            timer_batch_max: 2,
            ..SchedulerConfig::default()
        },
    )
    .expect("start");
    assert!(scheduler.wait_recovered(WAIT));
    clock.set_ms(T0 + 30);
    scheduler.wake();
    assert_eq!(
        scheduler.await_end(fine, WAIT).expect("fires").status,
        RunStatus::Completed,
        "five parked timers ahead of it, read two at a time"
    );
    for orphan in orphans {
        assert_eq!(
            engine.load(orphan).expect("load").status,
            RunStatus::Waiting
        );
    }
}

#[test]
fn stop_drains_the_queue_and_refuses_more_work() {
    let clock = ManualClock::new(T0);
    let (engine, scheduler) = setup(Arc::new(MemoryStore::new()), &clock);
    engine.register(
        WorkflowSpec::builder("count", 1)
            .node("a", |ctx: &mut Ctx<'_>| {
                ctx.set("x", json!(1));
                StepPlan::next("b")
            })
            .node("b", |_: &mut Ctx<'_>| StepPlan::complete(json!("done")))
            .entry("a")
            .build()
            .expect("valid spec"),
    );
    // Subscribed first: the runs may all end before a later subscription would begin.
    let feed = scheduler.subscribe(1_000);
    let runs: Vec<RunId> = (0..50)
        .map(|_| scheduler.start_run(("count", 1), json!({})).expect("start"))
        .collect();
    scheduler.stop();
    for run in &runs {
        assert_eq!(
            engine.load(*run).expect("load").status,
            RunStatus::Completed,
            "drained before stopping"
        );
    }
    assert!(matches!(
        scheduler.start_run(("count", 1), json!({})),
        Err(Error::Stopped)
    ));
    assert!(matches!(
        scheduler.deliver("k", json!(1)),
        Err(Error::Stopped)
    ));
    let seen: Vec<_> = feed.try_iter().collect();
    assert!(seen.iter().all(|s| runs.contains(&s.run_id)));
    assert!(
        seen.iter().any(|s| s.status == RunStatus::Completed),
        "the feed reports commits"
    );
}

#[test]
fn wait_events_wakes_on_new_durable_events_only() {
    let clock = ManualClock::new(T0);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(ledgerflow_sled::SledStore::open(dir.path()).expect("open"));
    let (engine, scheduler) = setup(store, &clock);
    engine.register(waits_then_completes(
        "ask",
        Effect::ask_user("?", &[]).result_key("r"),
    ));
    let cursor = engine.cursor_now().expect("cursor");
    let empty = scheduler
        .wait_events(&cursor, 10, Duration::from_millis(50))
        .expect("times out empty");
    assert!(empty.events.is_empty());
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| scheduler.wait_events(&cursor, 10, WAIT).expect("wakes"));
        let run = scheduler.run(("ask", 1), json!({})).expect("run").run_id;
        let page = waiter.join().expect("waiter");
        assert!(!page.events.is_empty());
        assert!(page.events.iter().all(|e| e.run_id == run));
        assert_eq!(page.events[0].kind, "started");
    });
}
