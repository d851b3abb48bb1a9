//! Quickstart: an expense approval on the embedded, durable sled store. The run asks a
//! person and waits; the process then drops everything and reopens the store, as if it had
//! restarted; the answer resumes the run, which waits on a durable timer, completes, and
//! prints and verifies its hash-chained ledger.
//!
//! Run it with `cargo run --example quickstart`. Data goes to `./ledgerflow-data` (or the
//! directory given as the first argument).

use std::sync::Arc;
use std::time::Duration;

use ledgerflow::ledger::verify_chain;
use ledgerflow::{
    Clock, Effect, Engine, RunStatus, SledStore, StepContext, StepPlan, SystemClock, WorkflowSpec,
};
use serde_json::{json, Value};

mod common;

fn approval_workflow() -> Result<WorkflowSpec, ledgerflow::SpecError> {
    WorkflowSpec::builder("expense-approval", 1)
        .node("request", |ctx: &mut StepContext<'_>| {
            let amount = ctx.var("amount").and_then(Value::as_u64).unwrap_or(0);
            let prompt = format!("Approve an expense of ${amount}?");
            StepPlan::effect(
                Effect::ask_user(prompt, &["approve", "reject"]).result_key("decision"),
            )
            .then_next("decide")
        })
        .node("decide", |ctx: &mut StepContext<'_>| {
            if ctx.var("decision") != Some(&json!("approve")) {
                return StepPlan::complete(json!({ "paid": false }));
            }
            // Payments go out in a batch shortly after approval: a durable timer.
            let batch_at_ms = ctx.now_ms + 300;
            StepPlan::effect(Effect::wait_until(batch_at_ms).result_key("paid_at_ms"))
                .then_next("pay")
        })
        .node("pay", |ctx: &mut StepContext<'_>| {
            let paid_at_ms = ctx.var("paid_at_ms").cloned().unwrap_or(Value::Null);
            StepPlan::complete(json!({ "paid": true, "paid_at_ms": paid_at_ms }))
        })
        .entry("request")
        .build()
}

/// An engine over the store in `data_dir`, with the workflow registered: what a process
/// does at start-up.
fn open_engine(data_dir: &str) -> Result<Engine, Box<dyn std::error::Error>> {
    let store = Arc::new(SledStore::open(data_dir)?);
    let engine = Engine::new(store, Arc::new(SystemClock));
    engine.register(approval_workflow()?);
    Ok(engine)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ledgerflow-data".to_owned());
    println!("store: {data_dir} (sled, durable: every step is fsynced before it is acknowledged)");

    let (run, key) = {
        let engine = open_engine(&data_dir)?;
        let run = engine.start(("expense-approval", 1), json!({ "amount": 120 }))?;
        println!("started run {run}");
        let waiting = engine.tick(run)?;
        let wait = waiting
            .waiting
            .ok_or("the run should be waiting for a person")?;
        println!(
            "run is {}: {:?} (choices {:?})",
            waiting.status,
            wait.prompt.unwrap_or_default(),
            wait.choices
        );
        (run, wait.wait_key.ok_or("ask_user waits on a key")?)
    }; // the engine and the store are dropped here, as if the process had exited

    println!("process restarted: reopening the store");
    let engine = open_engine(&data_dir)?;
    let reloaded = engine.load(run)?;
    println!("run {run} is still {} on wait_key {key}", reloaded.status);

    let after_answer = engine.resume(run, &key, json!("approve"))?;
    let due_ms = after_answer
        .waiting
        .as_ref()
        .and_then(|w| w.until_ms)
        .ok_or("expected a timer")?;
    println!(
        "approved; run is {} until the payment batch at {due_ms} ms",
        after_answer.status
    );

    // A host (or ledgerflow's scheduler) sleeps until the next timer is due, then fires it.
    let sleep_ms = (due_ms - SystemClock.now_ms()).max(0);
    std::thread::sleep(Duration::from_millis(u64::try_from(sleep_ms).unwrap_or(0)));
    let fired = engine.fire_due_timers(100)?;
    let done = engine.load(run)?;
    println!(
        "{fired} timer fired; run is {} with output {}",
        done.status,
        done.output.clone().unwrap_or_default()
    );
    if done.status != RunStatus::Completed {
        return Err(format!("expected the run to complete, it is {}", done.status).into());
    }

    let records = engine.records(run, 1, 1_000)?;
    println!("\nledger of run {run}:");
    println!(
        "{:>4}  {:<16}  {:<16}  {:<16}",
        "seq", "kind", "prev_hash", "hash"
    );
    for record in &records {
        println!(
            "{:>4}  {:<16}  {:<16}  {:<16}",
            record.seq(),
            record.kind(),
            &record.prev_hash().to_hex()[..16],
            &record.hash().to_hex()[..16]
        );
    }
    let head = verify_chain(&records)?.ok_or("the ledger is empty")?;
    engine.verify_run(run)?;
    println!("\nchain verified: {} records, head {}", head.seq, head.hash);
    println!("replay verified: replaying the ledger reproduces the stored run state");
    common::print_how_to_look(Some(&std::path::PathBuf::from(&data_dir)));
    Ok(())
}
