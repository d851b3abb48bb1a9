//! Crash and resume: a child process runs a five-batch workflow on the sled store and is
//! killed (SIGKILL) partway; a new process opens the same store and finishes the run.
//! Every batch ran under an idempotency key; a batch interrupted mid-call runs again with
//! the same key, and no completed batch runs twice.
//!
//! Run it with `cargo run --example crash_resume`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use ledgerflow::{
    Effect, EffectCall, EffectOutcome, Engine, RunId, RunStatus, ScheduledRuntime, SledStore,
    StepContext, StepPlan, SystemClock, WorkflowSpec,
};
use serde_json::{json, Value};

const BATCHES: u64 = 5;

fn workflow() -> Result<WorkflowSpec, ledgerflow::SpecError> {
    WorkflowSpec::builder("import", 1)
        .node("batch", |ctx: &mut StepContext<'_>| {
            let done = ctx.var("done").and_then(Value::as_u64).unwrap_or(0);
            if done == BATCHES {
                return StepPlan::complete(json!({ "batches": done }));
            }
            ctx.set("done", json!(done + 1));
            StepPlan::effect(Effect::custom(
                "process_batch",
                json!({ "batch": done + 1 }),
            ))
            .then_next("batch")
        })
        .entry("batch")
        .build()
}

/// The batch processor: slow, and it logs every call with its idempotency key.
fn processor(
    log: PathBuf,
    who: &'static str,
) -> impl Fn(&EffectCall<'_>) -> EffectOutcome + Send + Sync {
    move |call: &EffectCall<'_>| {
        std::thread::sleep(Duration::from_millis(150));
        let line = format!(
            "{who} batch {} key {}\n",
            call.payload["batch"], call.idempotency_key
        );
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        match written {
            Ok(()) => EffectOutcome::Completed(json!({ "imported": call.payload["batch"] })),
            Err(e) => EffectOutcome::Failed {
                error: e.to_string(),
                retryable: true,
            },
        }
    }
}

fn child(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new(
        Arc::new(SledStore::open(dir.join("store"))?),
        Arc::new(SystemClock),
    );
    engine.register(workflow()?);
    engine.register_effect(
        "process_batch",
        processor(dir.join("calls.log"), "first process "),
    )?;
    let run = engine.start(("import", 1), json!({}))?;
    std::fs::write(dir.join("run_id"), run.to_string())?;
    engine.tick(run)?; // runs until killed
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let [_, flag, dir] = std::env::args().collect::<Vec<_>>().as_slice() {
        if flag == "--child" {
            return child(Path::new(dir));
        }
    }
    // A fresh directory each time (its call log counts this run's calls only), kept after
    // for inspection.
    let dir = Path::new("ledgerflow-examples").join("crash_resume");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    println!(
        "store: the embedded sled store in ./{}",
        dir.join("store").display()
    );
    let mut process = Command::new(std::env::current_exe()?)
        .arg("--child")
        .arg(&dir)
        .spawn()?;
    // Let it finish two batches and get into the third, then kill it without warning.
    let started = Instant::now();
    while std::fs::read_to_string(dir.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("the child made no progress".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(60));
    process.kill()?;
    process.wait()?;
    println!("killed the first process (SIGKILL) in the middle of the run");

    let run: RunId = std::fs::read_to_string(dir.join("run_id"))?.parse()?;
    // Registered before the threads start: start-up recovery carries the run on at once.
    let runtime = ScheduledRuntime::builder()
        .sled(dir.join("store"))
        .register(workflow()?)
        .register_effect(
            "process_batch",
            processor(dir.join("calls.log"), "second process"),
        )
        .start()?;
    let state = runtime.engine().load(run)?;
    println!(
        "the second process finds run {run} {} after seq {}, batches done: {}",
        state.status, state.head.seq, state.vars["done"]
    );
    let done = runtime.await_end(run, Duration::from_secs(30))?;
    println!(
        "the run finished: {} with {}",
        done.status,
        done.output.clone().unwrap_or_default()
    );
    runtime.engine().verify_run(run)?;
    println!("chain verified, replay equals stored state\n\ncalls of the batch processor:");
    let calls = std::fs::read_to_string(dir.join("calls.log"))?;
    print!("{calls}");
    let mut keys: Vec<&str> = calls
        .lines()
        .filter_map(|l| l.split(" key ").nth(1))
        .collect();
    let total = keys.len();
    keys.dedup();
    println!("{total} calls, {} distinct keys: a repeated key is a batch the crash interrupted, run again with the same key", keys.len());
    runtime.stop()?;
    common::print_how_to_look(Some(&dir.join("store")));
    if done.status != RunStatus::Completed || keys.len() as u64 != BATCHES {
        return Err("every batch should have run under exactly one key".into());
    }
    Ok(())
}
