//! An application that mounts ledgerflow's server in its own process, so operators reach
//! its live store: `cargo run -p ledgerflow-server --example embedded` serves an approval
//! workflow on http://127.0.0.1:7070/ (the inspector; the API under /api) until stopped.
//! `--check` answers the waiting run through the HTTP API instead, and exits.

use std::sync::Arc;
use std::time::Duration;

use ledgerflow::{Effect, ScheduledRuntime, StepContext, StepPlan, WorkflowSpec};
use ledgerflow_server::{Backend, Server, ServerConfig};
use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let check = std::env::args().any(|a| a == "--check");
    let runtime = Arc::new(
        ScheduledRuntime::builder()
            .memory()
            .register(
                WorkflowSpec::builder("expense", 1)
                    .node("ask", |_: &mut StepContext<'_>| {
                        StepPlan::effect(
                            Effect::ask_user("Approve the expense?", &["yes", "no"])
                                .result_key("answer"),
                        )
                        .then_next("done")
                    })
                    .node("done", |ctx: &mut StepContext<'_>| {
                        StepPlan::complete(ctx.var("answer").cloned().unwrap_or(Value::Null))
                    })
                    .entry("ask")
                    .build()?,
            )
            .start()?,
    );
    let run = runtime
        .run(("expense", 1), json!({ "amount": 120 }))?
        .run_id;
    runtime.await_waiting(run, Duration::from_secs(10))?;
    let config = ServerConfig {
        // --check takes any free port, so it never collides with a server already running.
        listen: if check {
            "127.0.0.1:0"
        } else {
            "127.0.0.1:7070"
        }
        .parse()?,
        ..ServerConfig::default()
    };
    let server = Server::start(Backend::live(Arc::clone(&runtime)), config)?;
    let base = format!("http://{}", server.addr());
    if !check {
        println!("run {run} waits for an answer; open {base}/ to answer it, or:");
        println!("  curl -X POST -H 'Content-Type: application/json' -d '{{\"payload\": \"yes\"}}' {base}/api/runs/{run}/respond");
        println!("  ledgerflow --url {base} runs list");
        server.wait();
        return Ok(());
    }
    let answered: Value = ureq::post(&format!("{base}/api/runs/{run}/respond"))
        .header("Content-Type", "application/json")
        .send(json!({ "payload": "yes" }).to_string())?
        .body_mut()
        .read_json()?;
    println!(
        "answered over HTTP: run {} is {}",
        answered["run_id"], answered["status"]
    );
    let done = runtime.await_end(run, Duration::from_secs(10))?;
    println!(
        "the application's workers finished it: output {}",
        done.output.unwrap_or_default()
    );
    server.stop();
    runtime.stop()?;
    Ok(())
}
