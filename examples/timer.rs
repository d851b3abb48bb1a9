//! A durable `wait_until` that survives a restart: the first process starts a run that
//! waits on a timer and exits; the second reopens the store, and its scheduler fires the
//! timer (at once if it came due while nothing was running).
//!
//! Run it with `cargo run --example timer`. It keeps its store in
//! `./ledgerflow-examples/timer` (a restart needs a store on disk, so `--memory` does not
//! apply).

use std::time::Duration;

use ledgerflow::{Effect, RunStatus, ScheduledRuntime, StepContext, StepPlan, WorkflowSpec};

mod common;
use serde_json::json;

fn reminder() -> Result<WorkflowSpec, ledgerflow::SpecError> {
    WorkflowSpec::builder("reminder", 1)
        .node("schedule", |ctx: &mut StepContext<'_>| {
            let remind_at_ms = ctx.now_ms + 500;
            ctx.set("remind_at_ms", json!(remind_at_ms));
            StepPlan::effect(Effect::wait_until(remind_at_ms).result_key("fired_for_ms"))
                .then_next("remind")
        })
        .node("remind", |ctx: &mut StepContext<'_>| {
            let note = ctx.var("note").cloned().unwrap_or_default();
            StepPlan::complete(json!({ "reminded": note, "at_ms": ctx.now_ms }))
        })
        .entry("schedule")
        .build()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from("ledgerflow-examples").join("timer");
    println!("store: the embedded sled store in ./{}", dir.display());
    let run_id = {
        let runtime = ScheduledRuntime::builder()
            .sled(&dir)
            .register(reminder()?)
            .start()?;
        let run = runtime.run(("reminder", 1), json!({ "note": "stand up and stretch" }))?;
        let until = run
            .waiting
            .as_ref()
            .and_then(|w| w.until_ms)
            .ok_or("expected a timer")?;
        println!(
            "run {} is {} until {until} ms; the process now stops",
            run.run_id, run.status
        );
        runtime.stop()?;
        run.run_id
    };
    std::thread::sleep(Duration::from_millis(700)); // the timer comes due while nothing runs

    // Workflows are registered before the threads start, so start-up recovery fires the
    // overdue timer at once.
    let runtime = ScheduledRuntime::builder()
        .sled(&dir)
        .register(reminder()?)
        .start()?;
    println!("a new process opened the store; its scheduler finds the overdue timer");
    let done = runtime.await_end(run_id, Duration::from_secs(10))?;
    println!(
        "run {run_id} is {} with output {}",
        done.status,
        done.output.clone().unwrap_or_default()
    );
    let stats = runtime.stats();
    println!(
        "timers fired: {}, lag of the last one: {} ms (it was due while the process was down)",
        stats.timers_fired, stats.timer_lag_last_ms
    );
    runtime.stop()?;
    common::print_how_to_look(Some(&dir));
    if done.status != RunStatus::Completed || stats.timers_fired != 1 {
        return Err("the reminder should complete, its timer fired once".into());
    }
    Ok(())
}
