//! Exactly-once under races, long runs and start-up, through the public API: an event is
//! applied once even when a later step loses a race, `respond` reports the answer it
//! committed, long runs keep being scheduled, start-up work waits for its workflow, one
//! owner ticks a run at a time, and identities and lifecycles are enforced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledgerflow::{
    Delivered, Effect, Engine, Error, ErrorKind, ManualClock, MemoryStore, RunQuery, RunStatus,
    RuntimeConfig, ScheduledRuntime, SledStore, StepContext, StepPlan, Store, StoreChoice,
    WorkflowSpec,
};
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000_000;
const WAIT: Duration = Duration::from_secs(30);

type Ctx<'a> = StepContext<'a>;

/// A gate a node handler can be held at: the test learns when the handler is inside, and
/// lets it go on when it wants.
#[derive(Clone)]
struct Gate {
    armed: Arc<AtomicBool>,
    entered: Arc<Mutex<mpsc::Sender<()>>>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl Gate {
    fn new() -> (Gate, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let gate = Gate {
            armed: Arc::new(AtomicBool::new(false)),
            entered: Arc::new(Mutex::new(entered_tx)),
            release: Arc::new(Mutex::new(release_rx)),
        };
        (gate, entered_rx, release_tx)
    }

    /// Blocks the first caller after `arm` until released.
    fn pass(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            let _ = self.entered.lock().expect("gate").send(());
            let _ = self
                .release
                .lock()
                .expect("gate")
                .recv_timeout(Duration::from_secs(30));
        }
    }
}

/// `wait` → `note` → `done`, where `note` emits an event (so the resume and `note` are
/// committed before `done` is planned: an emitted event is durable before anything
/// follows it) and `done` passes `gate` before completing with the event.
fn invoice(effect: Effect, gate: Option<Gate>) -> WorkflowSpec {
    WorkflowSpec::builder("invoice", 1)
        .node("wait", move |_: &mut Ctx<'_>| {
            StepPlan::effect(effect.clone().result_key("paid")).then_next("note")
        })
        .node("note", |ctx: &mut Ctx<'_>| {
            let paid = ctx.var("paid").cloned().unwrap_or(Value::Null);
            StepPlan::effect(Effect::emit_event("invoice-log", paid)).then_next("done")
        })
        .node("done", move |ctx: &mut Ctx<'_>| {
            if let Some(gate) = &gate {
                gate.pass();
            }
            StepPlan::complete(ctx.var("paid").cloned().unwrap_or(Value::Null))
        })
        .entry("wait")
        .build()
        .expect("valid spec")
}

fn two_engines_on_one_sled(
    effect: Effect,
) -> (
    tempfile::TempDir,
    Arc<Engine>,
    Arc<Engine>,
    Gate,
    mpsc::Receiver<()>,
    mpsc::Sender<()>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("open"));
    let clock = Arc::new(ManualClock::new(T0));
    let (gate, entered, release) = Gate::new();
    let a = Arc::new(Engine::new(Arc::clone(&store), clock.clone()));
    a.register(invoice(effect.clone(), Some(gate.clone())));
    let b = Arc::new(Engine::new(store, clock));
    b.register(invoice(effect, None));
    (dir, a, b, gate, entered, release)
}

/// Item 1: A's resume committed (with the step after it); its next step loses to B. The event was consumed by A's
/// commit, so `deliver` reports it resumed and queues nothing.
#[test]
fn an_event_is_applied_once_when_a_later_step_loses_a_race() {
    for _ in 0..5 {
        let (_dir, a, b, gate, entered, release) =
            two_engines_on_one_sled(Effect::wait_event("invoice-7"));
        let run = a.start(("invoice", 1), json!({})).expect("start");
        assert_eq!(a.tick(run).expect("tick").status, RunStatus::Waiting);
        gate.armed.store(true, Ordering::SeqCst);
        let deliverer = {
            let a = Arc::clone(&a);
            std::thread::spawn(move || a.deliver("invoice-7", json!({"amount": 7})))
        };
        entered.recv_timeout(WAIT).expect("A's done handler runs");
        let done = b.tick(run).expect("B ticks the resumed run");
        assert_eq!(done.status, RunStatus::Completed);
        release.send(()).expect("release A");
        let delivered = deliverer.join().expect("no panic").expect("delivered");
        match delivered {
            Delivered::Resumed(state) => assert_eq!(state.status, RunStatus::Completed),
            other => panic!("the event was applied by A's resume, not {other:?}"),
        }
        assert!(
            a.store().inbox("invoice-7", 10).expect("inbox").is_empty(),
            "nothing queued again"
        );
        // The next run waiting on the key must wait, not complete with a stale event.
        let next = a.start(("invoice", 1), json!({})).expect("start");
        assert_eq!(a.tick(next).expect("tick").status, RunStatus::Waiting);
        let records = a.records(run, 1, 100).expect("records");
        let resumed = records.iter().filter(|r| r.kind() == "resumed").count();
        assert_eq!(resumed, 1, "the event is in the ledger once");
    }
}

/// Item 2: `respond` whose answer committed returns the run's state, not an error, when
/// the step after it loses a race.
#[test]
fn respond_reports_its_committed_answer_when_a_later_step_loses_a_race() {
    let (_dir, a, b, gate, entered, release) =
        two_engines_on_one_sled(Effect::ask_user("pay?", &["yes"]));
    let scheduler =
        ledgerflow::Scheduler::start(Arc::clone(&a), Default::default()).expect("scheduler");
    let run = scheduler
        .run(("invoice", 1), json!({}))
        .expect("run")
        .run_id;
    gate.armed.store(true, Ordering::SeqCst);
    let responder = std::thread::scope(|s| {
        let handle = s.spawn(|| scheduler.respond(run, json!("yes")));
        entered.recv_timeout(WAIT).expect("A's done handler runs");
        assert_eq!(b.tick(run).expect("B").status, RunStatus::Completed);
        release.send(()).expect("release");
        handle.join().expect("no panic")
    });
    let state = responder.expect("the answer was committed: respond succeeds");
    assert_eq!(state.status, RunStatus::Completed);
    assert_eq!(state.output, Some(json!("yes")));
    scheduler.stop();
}

/// A resume is committed together with the steps after it that stay inside the run: when
/// that commit loses to another writer (here an operator's cancel while the next node is
/// being planned), nothing of the resume was written, and `deliver` looks again: the
/// event is queued for the next waiter instead of being lost or applied to the cancelled
/// run.
#[test]
fn a_resume_whose_commit_loses_writes_nothing_and_the_event_is_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("open"));
    let engine = Arc::new(Engine::new(store, Arc::new(ManualClock::new(T0))));
    let (gate, entered, release) = Gate::new();
    engine.register(
        WorkflowSpec::builder("refund", 1)
            .node("wait", |_: &mut Ctx<'_>| {
                StepPlan::effect(Effect::wait_event("refund-9").result_key("amount"))
                    .then_next("done")
            })
            .node("done", {
                let gate = gate.clone();
                move |ctx: &mut Ctx<'_>| {
                    gate.pass();
                    StepPlan::complete(ctx.var("amount").cloned().unwrap_or(Value::Null))
                }
            })
            .entry("wait")
            .build()
            .expect("valid spec"),
    );
    let run = engine.start(("refund", 1), json!({})).expect("start");
    assert_eq!(engine.tick(run).expect("tick").status, RunStatus::Waiting);
    gate.armed.store(true, Ordering::SeqCst);
    let deliverer = {
        let engine = Arc::clone(&engine);
        std::thread::spawn(move || engine.deliver("refund-9", json!(9)))
    };
    entered.recv_timeout(WAIT).expect("the done handler runs");
    let cancelled = engine.cancel(run, "duplicate").expect("cancel");
    assert_eq!(cancelled.state.status, RunStatus::Cancelled);
    release.send(()).expect("release");
    match deliverer.join().expect("no panic").expect("delivered") {
        Delivered::Queued(_) => {}
        other => panic!("the run was cancelled before the resume committed: {other:?}"),
    }
    let kinds: Vec<String> = engine
        .records(run, 1, 100)
        .expect("records")
        .iter()
        .map(|r| r.kind().to_owned())
        .collect();
    assert_eq!(kinds, ["started", "waiting", "cancelled"]);
    let queued = engine.store().inbox("refund-9", 10).expect("inbox");
    assert_eq!(
        queued.len(),
        1,
        "the event waits for the next run on the key"
    );
    assert_eq!(queued[0].payload, json!(9));
}

/// A child's parent link cites the parent's record before the step that starts it, so
/// the steps carried before that step are committed first: when they lose a race (an
/// operator cancels the parent while the step is planned), no child is created at all,
/// rather than one citing a parent record that was never stored.
#[test]
fn a_child_is_started_only_after_what_its_parent_link_cites_is_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("open"));
    let engine = Arc::new(Engine::new(store, Arc::new(ManualClock::new(T0))));
    let (gate, entered, release) = Gate::new();
    engine.register(invoice(Effect::wait_event("never"), None));
    engine.register(
        WorkflowSpec::builder("batch", 1)
            .node("wait", |_: &mut Ctx<'_>| {
                StepPlan::effect(Effect::wait_event("go")).then_next("spawn")
            })
            .node("spawn", {
                let gate = gate.clone();
                move |_: &mut Ctx<'_>| {
                    gate.pass();
                    let mode = ledgerflow::SubworkflowMode::Async;
                    StepPlan::effect(Effect::start_subworkflow("invoice", 1, json!({}), mode))
                        .then_complete(json!("spawned"))
                }
            })
            .entry("wait")
            .build()
            .expect("valid spec"),
    );
    // Undisturbed: the child cites the parent's stored record before its start.
    let parent = engine.run(("batch", 1), json!({})).expect("run").run_id;
    engine.deliver("go", json!(1)).expect("deliver");
    let child = engine.store().children(parent, None, 10).expect("children");
    assert_eq!(child.len(), 1);
    let link = engine
        .load(child[0])
        .expect("child")
        .parent
        .expect("a parent link");
    let after = link.after.expect("the record it follows");
    let cited = engine.records(parent, after.seq, 1).expect("records");
    assert_eq!(cited[0].hash(), after.hash, "the cited record is stored");

    // Raced: the parent is cancelled while `spawn` is planned.
    let parent = engine.run(("batch", 1), json!({})).expect("run").run_id;
    gate.armed.store(true, Ordering::SeqCst);
    let deliverer = {
        let engine = Arc::clone(&engine);
        std::thread::spawn(move || engine.deliver("go", json!(2)))
    };
    entered.recv_timeout(WAIT).expect("the spawn handler runs");
    engine.cancel(parent, "stop").expect("cancel");
    release.send(()).expect("release");
    deliverer.join().expect("no panic").expect("delivered");
    assert!(
        engine
            .store()
            .children(parent, None, 10)
            .expect("children")
            .is_empty(),
        "no child of a step that was never committed"
    );
}

/// A run that keeps waiting on the same key, counting the events it gets, consumes an
/// emitted event once: its resume (from the inbox) and the steps up to its next wait on
/// the key share a commit, and that wait must not find the event it just consumed.
#[test]
fn a_run_waiting_again_on_its_key_consumes_each_event_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stores: [Arc<dyn Store>; 2] = [
        Arc::new(MemoryStore::new()),
        Arc::new(SledStore::open(dir.path()).expect("open")),
    ];
    for store in stores {
        let engine = Engine::new(store, Arc::new(ManualClock::new(T0)));
        engine.register(
            WorkflowSpec::builder("collector", 1)
                .node("wait", |_: &mut Ctx<'_>| {
                    StepPlan::effect(Effect::wait_event("ping").result_key("last"))
                        .then_next("count")
                })
                .node("count", |ctx: &mut Ctx<'_>| {
                    let got = ctx.var("got").and_then(Value::as_u64).unwrap_or(0);
                    ctx.set("got", json!(got + 1));
                    StepPlan::next("wait")
                })
                .entry("wait")
                .build()
                .expect("valid spec"),
        );
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
        let collector = engine.run(("collector", 1), json!({})).expect("run");
        assert_eq!(collector.status, RunStatus::Waiting);
        for sent in 1..=3u64 {
            let emitter = engine.run(("emitter", 1), json!({})).expect("emit");
            assert_eq!(emitter.output, Some(json!("sent")));
            let state = engine.load(collector.run_id).expect("load");
            assert_eq!(state.status, RunStatus::Waiting, "waits for the next one");
            assert_eq!(state.vars.get("got"), Some(&json!(sent)), "each event once");
            assert!(engine.store().inbox("ping", 10).expect("inbox").is_empty());
        }
        let resumed = engine
            .records(collector.run_id, 1, 100)
            .expect("records")
            .iter()
            .filter(|r| r.kind() == "resumed")
            .count();
        assert_eq!(resumed, 3);
        assert_eq!(
            engine.verify_run(collector.run_id).expect("verifies").head,
            engine.load(collector.run_id).expect("load").head
        );
    }
}

fn counter_loop(steps: u64) -> WorkflowSpec {
    WorkflowSpec::builder("loop", 1)
        .node("step", move |ctx: &mut Ctx<'_>| {
            let i = ctx.var("i").and_then(Value::as_u64).unwrap_or(0) + 1;
            ctx.set("i", json!(i));
            if i >= steps {
                StepPlan::complete(json!(i))
            } else {
                StepPlan::next("step")
            }
        })
        .entry("step")
        .build()
        .expect("valid spec")
}

/// Item 3: a run longer than one tick's step budget keeps being scheduled, both when
/// `run` ticks it on the caller's thread and when the workers do.
#[test]
fn long_runs_finish_past_the_step_budget() {
    let runtime = ScheduledRuntime::in_memory().expect("runtime");
    runtime.register(counter_loop(2_500));
    let run = runtime.run(("loop", 1), json!({})).expect("run");
    assert_eq!(run.status, RunStatus::Completed, "run() returns at the end");
    assert_eq!(run.output, Some(json!(2_500)));
    let started = runtime.start_run(("loop", 1), json!({})).expect("start");
    let done = runtime.await_end(started, WAIT).expect("workers finish it");
    assert_eq!(done.output, Some(json!(2_500)));
    runtime.stop().expect("stop");
}

/// Item 3, fairness: a run that never ends does not starve a short one on one worker.
#[test]
fn an_endless_run_does_not_starve_others() {
    let config = RuntimeConfig {
        store: StoreChoice::Memory,
        scheduler: ledgerflow::SchedulerConfig {
            workers: 1,
            ..Default::default()
        },
        ..RuntimeConfig::default()
    };
    let runtime =
        ScheduledRuntime::with_config(config, Arc::new(ManualClock::new(T0))).expect("runtime");
    runtime.register(counter_loop(u64::MAX));
    runtime.register(
        WorkflowSpec::builder("short", 1)
            .node("only", |_: &mut Ctx<'_>| StepPlan::complete(json!("ok")))
            .entry("only")
            .build()
            .expect("valid spec"),
    );
    let endless = runtime.start_run(("loop", 1), json!({})).expect("start");
    let short = runtime.start_run(("short", 1), json!({})).expect("start");
    let done = runtime
        .await_end(short, WAIT)
        .expect("the short run gets a turn");
    assert_eq!(done.output, Some(json!("ok")));
    let state = runtime.engine().load(endless).expect("load");
    assert_eq!(state.status, RunStatus::Running, "still looping");
    runtime.cancel(endless, "test over").expect("cancel");
    runtime.stop().expect("stop");
}

/// Item 5: `run` right after opening never races start-up recovery for the same run:
/// recovery pages slowly through runs a restart left running while new runs are started
/// and run on the caller's thread, and no commit of the scheduler ever loses a race.
#[test]
fn run_right_after_open_has_one_owner() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = RuntimeConfig {
        limits: ledgerflow::StoreLimits {
            read_items_max: 2,
            ..Default::default()
        },
        ..runtime_config(dir.path())
    };
    {
        // Runs a process that runs no steps left running: recovery's work.
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("open"));
        let recorder = Engine::with_config(
            store,
            Arc::new(ManualClock::new(T0)),
            ledgerflow::EngineConfig {
                steps_per_tick_max: 0,
                ..Default::default()
            },
        );
        recorder.register(counter_loop(20));
        for _ in 0..30 {
            recorder.start(("loop", 1), json!({})).expect("start");
        }
    }
    for round in 0..3 {
        let runtime = ScheduledRuntime::builder()
            .config(config.clone())
            .register(counter_loop(20))
            .start()
            .expect("open");
        for i in 0..10 {
            let run = runtime
                .run(("loop", 1), json!({}))
                .unwrap_or_else(|e| panic!("round {round}, run {i}: {e}"));
            assert_eq!(run.status, RunStatus::Completed);
        }
        assert!(runtime.wait_recovered(WAIT));
        let stats = runtime.stats();
        assert_eq!(stats.conflicts_retried, 0, "one owner per run: {stats:?}");
        runtime.stop().expect("stop");
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(
        store
            .list_runs(Some(RunStatus::Running), None, 2)
            .expect("list"),
        Vec::new(),
        "recovery finished every run left running"
    );
}

/// Item 6: a `db` file overwritten with garbage is corrupt, never a new empty store.
#[test]
fn a_garbage_db_file_is_corrupt_not_reinitialised() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store_id = {
        let store = SledStore::open(dir.path()).expect("open");
        let engine = Engine::new(Arc::new(store), Arc::new(ManualClock::new(T0)));
        engine.register(counter_loop(3));
        let run = engine.start(("loop", 1), json!({})).expect("start");
        engine.tick(run).expect("tick");
        engine.store().store_id()
    };
    let db = dir.path().join("db");
    let len = std::fs::metadata(&db).expect("db").len() as usize;
    let garbage: Vec<u8> = (0..len.max(4096)).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(&db, garbage).expect("overwrite");
    for attempt in [
        SledStore::open_existing(dir.path(), Default::default()),
        SledStore::open(dir.path()),
    ] {
        match attempt {
            Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}"),
            Ok(store) => panic!(
                "a damaged store opened (store id {:?}, was {store_id:?})",
                store.store_id()
            ),
        }
    }
}

/// Item 7: the records of a run that does not exist are `RunNotFound`.
#[test]
fn records_of_an_unknown_run_is_not_found() {
    let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(ManualClock::new(T0)));
    let unknown = ledgerflow::RunId::new_v4();
    assert!(matches!(
        engine.records(unknown, 1, 10),
        Err(Error::RunNotFound { run_id }) if run_id == unknown
    ));
}

/// Item 8: a query cursor names its store; another store refuses it.
#[test]
fn query_cursors_are_refused_by_another_store() {
    let engines: Vec<Engine> = (0..2)
        .map(|_| {
            let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(ManualClock::new(T0)));
            engine.register(counter_loop(1));
            for _ in 0..3 {
                engine.start(("loop", 1), json!({})).expect("start");
            }
            engine
        })
        .collect();
    let query = RunQuery::default();
    let page = engines[0].query_runs(&query, None, 2).expect("page");
    let cursor = page.next_cursor.expect("more to read");
    assert_eq!(
        engines[0]
            .query_runs(&query, Some(&cursor), 2)
            .expect("own cursor")
            .runs
            .len(),
        1
    );
    let foreign = engines[1].query_runs(&query, Some(&cursor), 2);
    assert!(
        matches!(foreign, Err(Error::CursorFromAnotherStore { .. })),
        "{foreign:?}"
    );
}

/// Item 9: a stopped in-memory runtime refuses writes through its engine too.
#[test]
fn a_stopped_memory_runtime_refuses_writes() {
    let runtime = ScheduledRuntime::in_memory().expect("runtime");
    runtime.register(counter_loop(1));
    let run = runtime.run(("loop", 1), json!({})).expect("run");
    runtime.stop().expect("stop");
    let refused = runtime.engine().start(("loop", 1), json!({}));
    assert!(
        matches!(&refused, Err(e) if e.kind() == ErrorKind::Closed),
        "{refused:?}"
    );
    assert_eq!(
        runtime
            .engine()
            .load(run.run_id)
            .expect("reads work")
            .status,
        RunStatus::Completed
    );
}

fn timer_workflow() -> WorkflowSpec {
    WorkflowSpec::builder("nap", 1)
        .node("sleep", |_: &mut Ctx<'_>| {
            StepPlan::effect(Effect::wait_until(T0 + 10)).then_next("done")
        })
        .node("done", |_: &mut Ctx<'_>| {
            StepPlan::complete(json!("rested"))
        })
        .entry("sleep")
        .build()
        .expect("valid spec")
}

fn waiter_workflow() -> WorkflowSpec {
    invoice(Effect::wait_event("k"), None)
}

fn emitter_workflow() -> WorkflowSpec {
    WorkflowSpec::builder("emitter", 1)
        .node("emit", |_: &mut Ctx<'_>| {
            StepPlan::effect(Effect::emit_event("k", json!("paid"))).then_complete(json!("sent"))
        })
        .entry("emit")
        .build()
        .expect("valid spec")
}

/// A store left with all three kinds of start-up work: an overdue timer, a run left
/// running, and an event queued for a run that waits on its key. Returns the runs.
fn store_with_start_up_work(dir: &std::path::Path) -> [ledgerflow::RunId; 3] {
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).expect("open"));
    let clock = Arc::new(ManualClock::new(T0));
    let engine = Engine::new(Arc::clone(&store), clock.clone());
    engine.register(timer_workflow());
    engine.register(waiter_workflow());
    let timer = engine.start(("nap", 1), json!({})).expect("start");
    assert_eq!(engine.tick(timer).expect("tick").status, RunStatus::Waiting);
    let waiter = engine.start(("invoice", 1), json!({})).expect("start");
    assert_eq!(
        engine.tick(waiter).expect("tick").status,
        RunStatus::Waiting
    );
    // A process that runs no steps leaves a started run running.
    let recorder = Engine::with_config(
        Arc::clone(&store),
        clock.clone(),
        ledgerflow::EngineConfig {
            steps_per_tick_max: 0,
            ..Default::default()
        },
    );
    recorder.register(timer_workflow());
    let left_running = recorder.start(("nap", 1), json!({})).expect("start");
    // A process that knows only the emitter queues an event it cannot hand to the
    // waiter (whose workflow it does not have): the event stays in the inbox.
    let other = Engine::new(Arc::clone(&store), clock);
    other.register(emitter_workflow());
    let emitter = other.start(("emitter", 1), json!({})).expect("start");
    assert_eq!(
        other.tick(emitter).expect("tick").status,
        RunStatus::Completed
    );
    assert_eq!(store.inbox("k", 10).expect("inbox").len(), 1);
    store.close().expect("close");
    [timer, left_running, waiter]
}

fn runtime_config(dir: &std::path::Path) -> RuntimeConfig {
    RuntimeConfig {
        store: StoreChoice::Sled(dir.to_owned()),
        ..RuntimeConfig::default()
    }
}

/// Item 4: workflows registered through the builder before the threads start: start-up
/// recovery finds them, and when it reports done, all start-up work is done.
#[test]
fn start_up_work_runs_when_workflows_are_registered_before_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runs = store_with_start_up_work(dir.path());
    let runtime = ScheduledRuntime::builder()
        .config(runtime_config(dir.path()))
        .clock(Arc::new(ManualClock::new(T0 + 100)))
        .register(timer_workflow())
        .register(waiter_workflow())
        .register(emitter_workflow())
        .start()
        .expect("start");
    assert!(runtime.wait_recovered(WAIT), "recovery finishes");
    for run in runs {
        let state = runtime.engine().load(run).expect("load");
        assert_eq!(state.status, RunStatus::Completed, "{run}: {state:?}");
    }
    let stats = runtime.stats();
    assert!(stats.recovered);
    assert_eq!((stats.runs_parked, stats.job_errors), (0, 0));
    assert_eq!(stats.timers_fired, 1);
    assert!(runtime.store().inbox("k", 10).expect("inbox").is_empty());
    runtime.stop().expect("stop");
}

/// Item 4: workflows registered after the threads started: the start-up work for them
/// is parked, not lost, and runs as soon as each is registered.
#[test]
fn start_up_work_waits_for_workflows_registered_late() {
    let dir = tempfile::tempdir().expect("temp dir");
    let [timer, left_running, waiter] = store_with_start_up_work(dir.path());
    let runtime = ScheduledRuntime::with_config(
        runtime_config(dir.path()),
        Arc::new(ManualClock::new(T0 + 100)),
    )
    .expect("start");
    assert!(runtime.wait_recovered(WAIT), "recovery finishes");
    let stats = runtime.stats();
    assert_eq!(stats.runs_parked, 3, "{stats:?}");
    assert_eq!(
        stats.job_errors, 0,
        "an unregistered workflow is not an error"
    );
    assert_eq!(
        runtime.engine().load(timer).expect("load").status,
        RunStatus::Waiting
    );
    runtime.register(timer_workflow());
    for run in [timer, left_running] {
        let done = runtime.await_end(run, WAIT).expect("runs once registered");
        assert_eq!(done.output, Some(json!("rested")));
    }
    // The worker counts the firing just after the commit that `await_end` saw.
    let deadline = std::time::Instant::now() + WAIT;
    while runtime.stats().timers_fired == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        runtime.stats().timers_fired,
        1,
        "a parked timer is counted when it fires"
    );
    runtime.register(waiter_workflow());
    let done = runtime
        .await_end(waiter, WAIT)
        .expect("consumes the queued event");
    assert_eq!(done.output, Some(json!("paid")));
    assert_eq!(runtime.stats().runs_parked, 0);
    runtime.stop().expect("stop");
}

/// Moving a manual clock wakes the timer thread: no `wake()` needed.
#[test]
fn moving_a_manual_clock_fires_due_timers() {
    let clock = ManualClock::new(T0);
    let runtime = ScheduledRuntime::builder()
        .memory()
        .clock(Arc::new(clock.clone()))
        .register(timer_workflow())
        .start()
        .expect("start");
    let run = runtime.run(("nap", 1), json!({})).expect("run");
    assert_eq!(run.status, RunStatus::Waiting);
    clock.set_ms(T0 + 10);
    let done = runtime.await_end(run.run_id, WAIT).expect("fires");
    assert_eq!(done.output, Some(json!("rested")));
    runtime.stop().expect("stop");
}

/// Errors answer `kind()` whatever their layer, and a whole ledger reads without paging.
#[test]
fn errors_have_kinds_and_ledgers_read_whole() {
    let runtime = ScheduledRuntime::builder()
        .memory()
        .register(counter_loop(3))
        .start()
        .expect("start");
    let run = runtime.run(("loop", 1), json!({})).expect("run");
    let unknown = ledgerflow::RunId::new_v4();
    let e = runtime.respond(unknown, json!(1)).expect_err("no such run");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = runtime.respond(run.run_id, json!(1)).expect_err("ended");
    assert_eq!(e.kind(), ErrorKind::InvalidState);
    let e = runtime
        .engine()
        .records(run.run_id, 1, 1_000_000)
        .expect_err("over the read limit");
    assert_eq!(e.kind(), ErrorKind::LimitExceeded);
    let ledger: Vec<_> = runtime
        .engine()
        .ledger(run.run_id, 1)
        .collect::<Result<_, _>>()
        .expect("ledger");
    assert_eq!(ledger.len() as u64, run.head.seq);
    runtime.stop().expect("stop");
    assert_eq!(
        runtime
            .run(("loop", 1), json!({}))
            .expect_err("stopped")
            .kind(),
        ErrorKind::Closed
    );
}

/// Issue 10, item 3: on the sled store, `respond` right after `run` reported the run
/// waiting finds it waiting, every time (one owner per run; nothing else moves it).
#[test]
fn respond_right_after_run_finds_the_run_waiting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let agent = || {
        WorkflowSpec::builder("agent", 1)
            .node("think", |_: &mut Ctx<'_>| {
                StepPlan::effect(Effect::custom("llm_call", json!({})).result_key("plan"))
                    .then_next("ask")
            })
            .node("ask", |_: &mut Ctx<'_>| {
                StepPlan::effect(Effect::ask_user("allow?", &["yes", "no"]).result_key("ok"))
                    .then_next("act")
            })
            .node("act", |ctx: &mut Ctx<'_>| {
                let ok = ctx.var("ok").cloned().unwrap_or_default();
                StepPlan::effect(Effect::custom("tool_calls", json!({ "ok": ok })).result_key("r"))
                    .then_complete(json!("done"))
            })
            .entry("think")
            .build()
            .expect("valid spec")
    };
    for round in 0..3 {
        let runtime = ScheduledRuntime::builder()
            .sled(dir.path())
            .register(agent())
            .register_effect("llm_call", |_: &ledgerflow::EffectCall<'_>| {
                ledgerflow::EffectOutcome::Completed(json!("plan"))
            })
            .register_effect("tool_calls", |_: &ledgerflow::EffectCall<'_>| {
                ledgerflow::EffectOutcome::Completed(json!("called"))
            })
            .start()
            .expect("open");
        for i in 0..8 {
            let run = runtime.run(("agent", 1), json!({})).expect("run");
            assert_eq!(run.status, RunStatus::Waiting, "round {round}, run {i}");
            let done = runtime
                .respond(run.run_id, json!("yes"))
                .unwrap_or_else(|e| panic!("round {round}, run {i}: {e}"));
            assert_eq!(done.status, RunStatus::Completed, "round {round}, run {i}");
        }
        assert_eq!(runtime.stats().conflicts_retried, 0);
        runtime.stop().expect("stop");
    }
}
