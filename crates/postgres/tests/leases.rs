//! Run leases between two workers (two stores on one schema, as two processes would
//! open it): a live lease keeps the other worker out, an expired one is taken over and the
//! old holder's late commit is refused by the fence, a run that waits lets its lease go, claims never hand one run to both,
//! a released lease is free at once, and a commit that sets a timer wakes a listening
//! worker. Skipped, saying why, on a machine without PostgreSQL unless
//! `LEDGERFLOW_REQUIRE_POSTGRES=1` (CI).

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ledgerflow_kernel::store::Error as StoreError;
use ledgerflow_kernel::{
    Effect, Engine, Error, ManualClock, RunId, RunStatus, StepContext, StepPlan, Store,
    WorkflowSpec,
};
use ledgerflow_postgres::testing::{self, TestStore};
use ledgerflow_postgres::{PostgresConfig, PostgresStore};
use serde_json::json;

const T0: i64 = 1_700_000_000_000;
const LEASE_MS: u64 = 400;

fn nap() -> WorkflowSpec {
    WorkflowSpec::builder("nap", 1)
        .node("sleep", |_: &mut StepContext<'_>| {
            StepPlan::effect(Effect::wait_until(T0 + 1_000)).then_complete(json!("rested"))
        })
        .entry("sleep")
        .build()
        .expect("spec")
}

/// Worker `name` on the schema of `config`, with short leases.
fn worker(config: &PostgresConfig, name: &str) -> Arc<PostgresStore> {
    let mut config = config.clone();
    config.worker = name.to_owned();
    config.lease_ms = LEASE_MS;
    Arc::new(PostgresStore::open(config).expect("open a worker's store"))
}

fn engine(store: &Arc<PostgresStore>) -> Engine {
    let engine = Engine::new(
        Arc::clone(store) as Arc<dyn Store>,
        Arc::new(ManualClock::new(T0)),
    );
    engine.register(common::approval());
    engine.register(nap());
    engine
}

fn fenced_by(result: Result<ledgerflow_kernel::RunState, Error>, holder: &str) {
    match result {
        Err(Error::Store(StoreError::Fenced { holder: h, .. })) => assert_eq!(h, holder),
        other => panic!("expected a commit fenced by {holder}, got {other:?}"),
    }
}

#[test]
fn an_expired_lease_is_taken_over_and_the_old_holder_is_fenced() {
    if let Some(reason) = testing::unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let test_store = TestStore::new().expect("a test store");
    let (a, b) = (
        worker(test_store.config(), "a"),
        worker(test_store.config(), "b"),
    );
    let (engine_a, engine_b) = (engine(&a), engine(&b));
    let leases_a = a.leases().expect("a store shared by workers has leases");
    let leases_b = b.leases().expect("leases");
    assert_eq!((leases_a.holder(), leases_b.holder()), ("a", "b"));

    // The creating commit gives a the lease on its new, running run.
    let run = engine_a.start(("approval", 1), json!({})).expect("start");
    // While a's lease is live, b can neither take it nor commit past it.
    assert!(!leases_b.acquire(run).expect("acquire"));
    fenced_by(engine_b.tick(run), "a");

    // a stalls past its lease: b takes the run over and a's late step is refused.
    std::thread::sleep(Duration::from_millis(LEASE_MS + 200));
    assert!(
        leases_b.acquire(run).expect("acquire"),
        "an expired lease is free"
    );
    let seq_before = engine_a.load(run).expect("load").head.seq;
    fenced_by(engine_a.tick(run), "b");
    assert_eq!(
        engine_b.load(run).expect("load").head.seq,
        seq_before,
        "a fenced commit writes nothing"
    );
    let waiting = engine_b.tick(run).expect("b ticks the run");
    assert_eq!(waiting.status, RunStatus::Waiting);
    // A waiting run needs no worker: its commit let b's lease go, so a's answer (an
    // operator's, say) goes in at once.
    let done = engine_a.respond(run, json!("a")).expect("a answers");
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.output, Some(json!("a")));

    // Released, a lease is free at once (no wait for expiry).
    let run = engine_b.start(("approval", 1), json!({})).expect("start");
    assert!(!leases_a.acquire(run).expect("acquire"));
    leases_b.release(run).expect("release");
    assert!(leases_a.acquire(run).expect("acquire at once"));
    assert!(engine_a.tick(run).is_ok());
    let report = a.check().expect("the store checks clean");
    assert_eq!(report.runs, 2);
}

#[test]
fn due_timers_are_claimed_by_one_worker_each() {
    if let Some(reason) = testing::unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    const RUNS: usize = 60;
    let test_store = TestStore::new().expect("a test store");
    let maker = worker(test_store.config(), "maker");
    let engine = engine(&maker);
    let runs: HashSet<RunId> = (0..RUNS)
        .map(|_| engine.run(("nap", 1), json!({})).expect("run").run_id)
        .collect();
    // The maker's leases lapse; two workers then claim the due timers at the same time.
    std::thread::sleep(Duration::from_millis(LEASE_MS + 200));
    let claimants: Vec<_> = ["x", "y"]
        .iter()
        .map(|name| worker(test_store.config(), name))
        .collect();
    let claimed: Vec<Vec<RunId>> = std::thread::scope(|scope| {
        let handles: Vec<_> = claimants
            .iter()
            .map(|store| {
                scope.spawn(move || {
                    let leases = store.leases().expect("leases");
                    let mut mine = Vec::new();
                    loop {
                        let batch = leases.claim_work(T0 + 1_000, 7).expect("claim");
                        if batch.is_empty() {
                            break mine;
                        }
                        mine.extend(batch);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("claimant"))
            .collect()
    });
    let (x, y): (HashSet<RunId>, HashSet<RunId>) = (
        claimed[0].iter().copied().collect(),
        claimed[1].iter().copied().collect(),
    );
    assert_eq!(
        x.len() + y.len(),
        RUNS,
        "each run claimed once: {x:?} {y:?}"
    );
    assert!(x.is_disjoint(&y));
    assert_eq!(&x | &y, runs);
    // Claimed, a run is its claimant's: the other cannot take it.
    let one = *x.iter().next().expect("x claimed some");
    assert!(!claimants[1]
        .leases()
        .expect("leases")
        .acquire(one)
        .expect("acquire"));
    // Timers not yet due are not work.
    assert!(claimants[1]
        .leases()
        .expect("leases")
        .claim_work(T0, 100)
        .expect("claim")
        .is_empty());
}

#[test]
fn a_commit_that_sets_a_timer_wakes_a_listening_worker() {
    if let Some(reason) = testing::unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let test_store = TestStore::new().expect("a test store");
    let (a, b) = (
        worker(test_store.config(), "a"),
        worker(test_store.config(), "b"),
    );
    let leases_b = b.leases().expect("leases");
    // The first wait connects and listens; nothing is said yet.
    assert!(!leases_b
        .wait_notice(Duration::from_millis(50))
        .expect("listen"));
    let engine_a = engine(&a);
    std::thread::scope(|scope| {
        let listener = scope.spawn(|| leases_b.wait_notice(Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(100));
        engine_a
            .run(("nap", 1), json!({}))
            .expect("a run that sets a timer");
        assert!(
            listener.join().expect("listener").expect("listen"),
            "the notice came before the timeout"
        );
    });
    // A commit that sets no timer says nothing.
    engine_a
        .run(("approval", 1), json!({}))
        .expect("a run that asks");
    assert!(!leases_b
        .wait_notice(Duration::from_millis(300))
        .expect("listen"));
}
