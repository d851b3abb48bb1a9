//! Many worker processes on one database: three OS processes (this test binary, started
//! again as `many_workers worker …`) each run a scheduler over one PostgreSQL store, and
//! share 2,000 runs that wait for a timer and then an event. Mid-way one worker is
//! SIGKILLed and another SIGSTOPped past its lease and then let go on: every run completes
//! exactly once, each step is one record, the store (every chain and the global log)
//! checks clean, and the stopped worker's late commits were refused by the fence.
//!
//! A test of its own harness (`harness = false`), since it runs itself as the workers.
//! `LEDGERFLOW_MANY_WORKERS_RUNS` sets the number of runs (default 2,000). Skipped, saying
//! why, on a machine without PostgreSQL unless `LEDGERFLOW_REQUIRE_POSTGRES=1` (CI).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledgerflow_kernel::store::read_all_records;
use ledgerflow_kernel::{
    Clock, Effect, Engine, Error, RunId, RunStatus, StepContext, StepPlan, Store, WorkflowSpec,
};
use ledgerflow_postgres::testing::{self, TestStore};
use ledgerflow_postgres::{PostgresConfig, PostgresStore};
use ledgerflow_scheduler::{Scheduler, SchedulerConfig, SystemClock};
use serde_json::{json, Value};

/// The workers' lease time: short, so the stopped worker's runs are taken over soon.
const LEASE_MS: u64 = 1_500;
const WORKERS: usize = 3;

/// `order` v1 (input `n`, `due_ms`): some work, a timer, a payment event, more work.
fn order() -> WorkflowSpec {
    WorkflowSpec::builder("order", 1)
        .node("work", |_: &mut StepContext<'_>| {
            // Work that takes a while (a handler's computation): a worker stopped mid-job
            // is most likely here, between its commits.
            std::thread::sleep(Duration::from_millis(20));
            StepPlan::next("nap")
        })
        .node("nap", |ctx: &mut StepContext<'_>| {
            let due_ms = ctx.var("due_ms").and_then(Value::as_i64).unwrap_or(0);
            StepPlan::effect(Effect::wait_until(due_ms)).then_next("pay")
        })
        .node("pay", |ctx: &mut StepContext<'_>| {
            let n = ctx.var("n").cloned().unwrap_or_default();
            StepPlan::effect(Effect::wait_event(format!("order-{n}")).result_key("paid"))
                .then_next("done")
        })
        .node("done", |ctx: &mut StepContext<'_>| {
            std::thread::sleep(Duration::from_millis(10));
            StepPlan::complete(ctx.var("paid").cloned().unwrap_or_default())
        })
        .entry("work")
        .build()
        .expect("spec")
}

fn config(url: &str, schema: &str, worker: &str) -> PostgresConfig {
    PostgresConfig {
        schema: schema.to_owned(),
        worker: worker.to_owned(),
        lease_ms: LEASE_MS,
        ..PostgresConfig::new(url.to_owned())
    }
}

/// A worker process: a scheduler of 4 threads over the store until its stdin closes; then
/// prints its stats as one JSON line.
fn worker(url: &str, schema: &str, name: &str) {
    let store = PostgresStore::open(config(url, schema, name)).expect("open the store");
    let engine = Arc::new(Engine::new(
        Arc::new(store) as Arc<dyn Store>,
        Arc::new(SystemClock),
    ));
    engine.register(order());
    let scheduler = Scheduler::start(
        Arc::clone(&engine),
        SchedulerConfig {
            workers: 4,
            ..SchedulerConfig::default()
        },
    )
    .expect("start the scheduler");
    println!("READY");
    std::io::stdout().flush().expect("stdout");
    // Until the test closes stdin.
    let _ = std::io::stdin().lines().count();
    let stats = scheduler.stats();
    scheduler.stop();
    println!(
        "STATS {}",
        json!({
            "runs_ticked": stats.runs_ticked,
            "timers_fired": stats.timers_fired,
            "conflicts_retried": stats.conflicts_retried,
            "job_errors": stats.job_errors,
            "runs_leased_elsewhere": stats.runs_leased_elsewhere,
            "commits_fenced": stats.commits_fenced,
        })
    );
}

struct Worker {
    name: String,
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn spawn(url: &str, schema: &str, name: &str) -> Worker {
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .args(["worker", url, schema, name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a worker");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "READY", "worker {name} did not start");
        Worker {
            name: name.to_owned(),
            child,
            stdout,
        }
    }

    fn signal(&self, signal: &str) {
        // The shell's own `kill`: there on every machine.
        let status = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {}", self.child.id())])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Closes its stdin and reads the stats it prints as it stops.
    fn stop(mut self) -> Value {
        drop(self.child.stdin.take());
        let mut stats = None;
        for line in (&mut self.stdout).lines() {
            let line = line.expect("read");
            if let Some(json) = line.strip_prefix("STATS ") {
                stats = Some(serde_json::from_str(json).expect("stats JSON"));
            }
        }
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "worker {} exited with {status}",
            self.name
        );
        stats.unwrap_or_else(|| panic!("worker {} printed no stats", self.name))
    }
}

fn count(store: &PostgresStore, status: RunStatus) -> u64 {
    store
        .count_by_status()
        .expect("count")
        .into_iter()
        .find(|(s, _)| *s == status)
        .map_or(0, |(_, n)| n)
}

/// Waits until `ready` or `deadline`, checking that every live worker still runs.
fn wait_for(
    workers: &mut [Worker],
    deadline: Instant,
    what: &str,
    mut ready: impl FnMut() -> bool,
) {
    while !ready() {
        for worker in workers.iter_mut() {
            assert!(worker.alive(), "worker {} died", worker.name);
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Delivers `order-n`, asking again while a worker's commit races it.
fn pay(engine: &Engine, n: u64) {
    let mut attempts = 0;
    loop {
        match engine.deliver(&format!("order-{n}"), json!({ "n": n })) {
            Ok(_) => return,
            Err(e) if attempts < 20 && (e.is_conflict() || is_fenced(&e)) => attempts += 1,
            Err(e) => panic!("delivering order-{n}: {e}"),
        }
    }
}

fn is_fenced(e: &Error) -> bool {
    matches!(
        e,
        Error::Store(ledgerflow_kernel::store::Error::Fenced { .. })
    )
}

fn many_workers() {
    let runs_total: u64 = std::env::var("LEDGERFLOW_MANY_WORKERS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let test_store = TestStore::new().expect("a test store");
    let (url, schema) = (
        test_store.config().url.clone(),
        test_store.config().schema.clone(),
    );
    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|i| Worker::spawn(&url, &schema, &format!("w{i}")))
        .collect();

    // The test is the application: it starts the runs and pays for three in four before
    // their runs wait (those events wait in the inbox), the rest once they may be waiting.
    let store = Arc::new(PostgresStore::open(config(&url, &schema, "app")).expect("open"));
    let engine = Engine::new(Arc::clone(&store) as Arc<dyn Store>, Arc::new(SystemClock));
    engine.register(order());
    let early = runs_total * 3 / 4;
    for n in 0..early {
        pay(&engine, n);
    }
    let started_ms = SystemClock.now_ms();
    let leases = store.leases().expect("leases");
    let runs: HashMap<RunId, u64> = std::thread::scope(|scope| {
        let starters: Vec<_> = (0..4u64)
            .map(|t| {
                let engine = &engine;
                scope.spawn(move || {
                    (t..runs_total)
                        .step_by(4)
                        .map(|n| {
                            // Timers due over the next four seconds.
                            let due_ms = started_ms + 1_000 + (n % 40) as i64 * 75;
                            let input = json!({ "n": n, "due_ms": due_ms });
                            let run = engine.start(("order", 1), input).expect("start");
                            // Let the workers have it at once.
                            leases.release(run).expect("release");
                            (run, n)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        starters
            .into_iter()
            .flat_map(|s| s.join().expect("starter"))
            .collect()
    });
    let deadline = Instant::now() + Duration::from_secs(240);

    // One worker is killed outright with runs in hand.
    let completed = || count(&store, RunStatus::Completed);
    wait_for(&mut workers, deadline, "200 completed runs", || {
        completed() >= 200
    });
    let killed = workers.remove(0);
    killed.signal("KILL");
    let mut killed_child = killed.child;
    killed_child.wait().expect("reap the killed worker");

    // Another is stopped while it holds leases, past them, then let go on.
    let holds = |name: &str| {
        store
            .live_leases()
            .expect("live leases")
            .into_iter()
            .find(|(holder, _)| holder == name)
            .map_or(0, |(_, n)| n)
    };
    wait_for(&mut workers, deadline, "w1 to hold 4 leases", || {
        holds("w1") >= 4
    });
    workers[0].signal("STOP");
    std::thread::sleep(Duration::from_millis(LEASE_MS * 3));
    workers[0].signal("CONT");

    for n in early..runs_total {
        pay(&engine, n);
    }
    wait_for(&mut workers, deadline, "every run to complete", || {
        completed() == runs_total
    });
    let stats: Vec<(String, Value)> = workers
        .into_iter()
        .map(|w| (w.name.clone(), w.stop()))
        .collect();
    eprintln!("worker stats: {stats:?}");

    // Exactly once: each run is stored once, ended once with its own payment, and each
    // of its steps is one record.
    assert_eq!(count(&store, RunStatus::Completed), runs_total);
    let checked = store
        .check()
        .expect("every chain and the global log verify");
    assert_eq!(checked.runs, runs_total, "no run stored twice or lost");
    for (run, n) in &runs {
        let state = store.load(*run).expect("load").expect("the run");
        assert_eq!(state.status, RunStatus::Completed);
        assert_eq!(state.output, Some(json!({ "n": n })), "run {run}");
        let records = read_all_records(&*store, *run).expect("records");
        let mut steps: HashMap<String, usize> = HashMap::new();
        for record in &records {
            let node = record.body().get("node").and_then(Value::as_str);
            let key = format!("{}:{}", record.kind(), node.unwrap_or("-"));
            *steps.entry(key).or_default() += 1;
        }
        for (key, times) in &steps {
            assert_eq!(
                *times, 1,
                "run {run}: {key} recorded {times} times: {steps:?}"
            );
        }
        for step in ["started:work", "advanced:work", "completed:done"] {
            assert!(steps.contains_key(step), "run {run}: no {step}: {steps:?}");
        }
    }
    // The stopped worker's commits after its leases were taken over were refused.
    let fenced = stats
        .iter()
        .find(|(name, _)| name == "w1")
        .and_then(|(_, s)| s["commits_fenced"].as_u64())
        .expect("w1's stats");
    assert!(
        fenced > 0,
        "no commit of the stopped worker was fenced: {stats:?}"
    );
    eprintln!(
        "{runs_total} runs on {WORKERS} workers (one killed, one stopped) in {:.1} s; \
         {fenced} late commits fenced",
        (SystemClock.now_ms() - started_ms) as f64 / 1000.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, url, schema, name] = args.as_slice() {
        if role == "worker" {
            worker(url, schema, name);
            return;
        }
    }
    if let Some(reason) = testing::unavailable() {
        println!("many_workers: skipped: {reason}");
        return;
    }
    many_workers();
    println!("many_workers: ok");
}
