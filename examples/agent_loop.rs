//! An agent loop: the agent "thinks" (an `llm_call` effect, here a scripted local model),
//! calls local tools through a `tool_calls` effect handler, asks a person before a
//! dangerous tool, and makes an idempotent tool call whose key survives retries.
//!
//! Run it with `cargo run --example agent_loop`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledgerflow::{
    Effect, EffectCall, EffectOutcome, RunStatus, StepContext, StepPlan, WorkflowSpec,
};
use serde_json::{json, Value};

/// A scripted stand-in for a language model: given the tool results so far, it picks the
/// next action. A real host would call its model here; the workflow does not change.
fn model(call: &EffectCall<'_>) -> EffectOutcome {
    let results = call.payload["results"].as_array().map_or(0, Vec::len);
    let action = match results {
        0 => json!({ "tool": "search_orders", "args": { "customer": "c-17" } }),
        1 => {
            json!({ "tool": "refund", "args": { "order": "o-991", "cents": 4599 }, "dangerous": true })
        }
        _ => json!({ "answer": "Refunded order o-991 ($45.99) for customer c-17." }),
    };
    EffectOutcome::Completed(action)
}

/// Local tools. `refund` is idempotent: the provider remembers idempotency keys, so a
/// repeated call (after a crash or a retry) returns the first result instead of paying twice.
fn tools(
    refunds: Arc<Mutex<HashMap<String, Value>>>,
) -> impl Fn(&EffectCall<'_>) -> EffectOutcome + Send + Sync {
    move |call: &EffectCall<'_>| match call.payload["tool"].as_str() {
        Some("search_orders") => EffectOutcome::Completed(json!({ "orders": ["o-991"] })),
        Some("refund") => {
            let mut done = refunds.lock().unwrap_or_else(|p| p.into_inner());
            let receipt = done
                .entry(call.idempotency_key.to_owned())
                .or_insert_with(|| json!({ "refund_id": format!("rf-{}", call.idempotency_key), "cents": call.payload["args"]["cents"] }))
                .clone();
            EffectOutcome::Completed(receipt)
        }
        other => EffectOutcome::Failed {
            error: format!("unknown tool {other:?}"),
            retryable: false,
        },
    }
}

fn agent() -> Result<WorkflowSpec, ledgerflow::SpecError> {
    WorkflowSpec::builder("support-agent", 1)
        .node("think", |ctx: &mut StepContext<'_>| {
            let results = ctx.var("results").cloned().unwrap_or_else(|| json!([]));
            StepPlan::effect(
                Effect::custom(
                    "llm_call",
                    json!({ "goal": ctx.var("goal"), "results": results }),
                )
                .result_key("action"),
            )
            .then_next("act")
        })
        .node("act", |ctx: &mut StepContext<'_>| {
            let action = ctx.var("action").cloned().unwrap_or_default();
            if let Some(answer) = action.get("answer") {
                return StepPlan::complete(
                    json!({ "answer": answer, "results": ctx.var("results") }),
                );
            }
            if action["dangerous"] == json!(true) && ctx.var("approved") != Some(&json!("yes")) {
                let prompt = format!(
                    "The agent wants to run {} with {}. Allow?",
                    action["tool"], action["args"]
                );
                return StepPlan::effect(
                    Effect::ask_user(prompt, &["yes", "no"]).result_key("approved"),
                )
                .then_next("act");
            }
            if ctx.var("approved") == Some(&json!("no")) {
                return StepPlan::complete(json!({ "answer": "A person declined the refund." }));
            }
            StepPlan::effect(Effect::custom("tool_calls", action).result_key("last_result"))
                .then_next("observe")
        })
        .node("observe", |ctx: &mut StepContext<'_>| {
            let mut results = ctx.var("results").cloned().unwrap_or_else(|| json!([]));
            if let Some(list) = results.as_array_mut() {
                list.push(ctx.var("last_result").cloned().unwrap_or_default());
            }
            ctx.set("results", results);
            ctx.vars.remove("approved");
            StepPlan::next("think")
        })
        .entry("think")
        .build()
}

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let refunds = Arc::new(Mutex::new(HashMap::new()));
    let (builder, dir) = common::runtime("agent_loop");
    let runtime = builder
        .register(agent()?)
        .register_effect("llm_call", model)
        .register_effect("tool_calls", tools(Arc::clone(&refunds)))
        .start()?;

    let run = runtime.run(
        ("support-agent", 1),
        json!({ "goal": "refund the customer's last order" }),
    )?;
    let wait = run
        .waiting
        .clone()
        .ok_or("the agent should stop for approval")?;
    println!(
        "agent paused for a person: {}",
        wait.prompt.unwrap_or_default()
    );

    let done = runtime.respond(run.run_id, json!("yes"))?;
    let done = if done.status.is_terminal() {
        done
    } else {
        runtime.await_end(run.run_id, Duration::from_secs(10))?
    };
    println!(
        "agent finished ({}): {}",
        done.status,
        done.output.clone().unwrap_or_default()["answer"]
    );

    println!("\nledger:");
    for record in runtime.engine().records(run.run_id, 1, 1_000)? {
        let detail = match record.kind() {
            "effect_requested" => format!(
                "{} key={}",
                record.body()["effect"]["kind"],
                record.body()["idempotency_key"]
            ),
            "waiting" => "ask_user".to_owned(),
            _ => String::new(),
        };
        println!("  {:>3} {:<17} {detail}", record.seq(), record.kind());
    }
    let refunds = refunds.lock().unwrap_or_else(|p| p.into_inner());
    println!(
        "\nrefunds issued: {} (keyed by idempotency key, so a retried call cannot pay twice)",
        refunds.len()
    );
    runtime.stop()?;
    common::print_how_to_look(dir.as_ref());
    if done.status != RunStatus::Completed || refunds.len() != 1 {
        return Err("the agent should complete with exactly one refund".into());
    }
    Ok(())
}
