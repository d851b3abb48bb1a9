//! A tool-using agent with a person's approval, on the `llm_call` and `tool_calls`
//! effects: the model (an OpenAI-compatible server) looks an order up with a local tool,
//! asks to refund it, a person approves, the refund tool runs once, and the model
//! answers. Every prompt and answer is in the run's ledger.
//!
//! With no setting it runs against a stub model this example starts on 127.0.0.1 (no
//! network):
//!
//!     cargo run --features agent --example agent_llm
//!
//! The same code against a real endpoint:
//!
//!     LEDGERFLOW_LLM_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-… \
//!     LEDGERFLOW_LLM_MODEL=gpt-4o-mini cargo run --features agent --example agent_llm

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ledgerflow::agent::stub::{chat_answer, StubReply, StubServer};
use ledgerflow::agent::{
    AgentConfig, AgentLoop, LlmResponse, OpenAiCompatible, Secret, ToolCall, ToolRegistry,
};
use serde_json::{json, Value};

mod common;

/// A scripted stand-in for a model, answering as one would: look the order up, then
/// ask to refund it, then say it is done.
fn stub_model(request: &Value) -> Value {
    let answered = |id: &str| {
        request["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["tool_call_id"] == id))
    };
    let call = |id: &str, name: &str, arguments: Value| ToolCall {
        id: id.into(),
        name: name.into(),
        arguments,
    };
    if answered("call_refund") {
        chat_answer("stub-model", Some("I refunded order o-991 ($45.99)."), &[])
    } else if answered("call_lookup") {
        let refund = call(
            "call_refund",
            "refund",
            json!({ "order": "o-991", "cents": 4599 }),
        );
        chat_answer("stub-model", None, &[refund])
    } else {
        let lookup = call("call_lookup", "lookup_order", json!({ "customer": "c-17" }));
        chat_answer("stub-model", None, &[lookup])
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A real endpoint when one is named; else the stub, kept alive until the end.
    let (endpoint, model, _stub) = match std::env::var("LEDGERFLOW_LLM_URL") {
        Ok(url) => {
            let mut endpoint = OpenAiCompatible::new(url);
            if let Some(key) = Secret::from_env("OPENAI_API_KEY") {
                endpoint = endpoint.api_key(key);
            }
            let model =
                std::env::var("LEDGERFLOW_LLM_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
            (endpoint, model, None)
        }
        Err(_) => {
            let stub =
                StubServer::start(|request| StubReply::Json(200, stub_model(&request.json())))?;
            println!(
                "model: a stub on {} (set LEDGERFLOW_LLM_URL for a real one)",
                stub.url()
            );
            let endpoint = OpenAiCompatible::new(format!("{}/v1", stub.url()));
            (endpoint, "stub-model".to_owned(), Some(stub))
        }
    };

    let refunds = Arc::new(AtomicUsize::new(0));
    let refunded = Arc::clone(&refunds);
    let tools = ToolRegistry::new()
        .tool(
            "lookup_order",
            "Finds a customer's last order",
            json!({ "type": "object", "properties": { "customer": { "type": "string" } }, "required": ["customer"] }),
            |args, _| Ok(json!({ "order": "o-991", "customer": args["customer"], "cents": 4599 })),
        )
        .tool(
            "refund",
            "Refunds an order",
            json!({ "type": "object", "properties": { "order": { "type": "string" }, "cents": { "type": "integer" } }, "required": ["order"] }),
            move |args, ctx| {
                // A real payment API would take ctx.idempotency_key, so a call made again
                // after a crash refunds once.
                refunded.fetch_add(1, Ordering::SeqCst);
                Ok(json!({ "refund_id": format!("rf-{}", ctx.idempotency_key), "order": args["order"] }))
            },
        );
    let config = AgentConfig::hybrid(endpoint, tools.clone());
    let agent = AgentLoop::new("support-agent", 1, model)
        .system("You help customers with their orders. Use the tools; refunds need approval.")
        .tools(tools.specs())
        .approve("refund")
        .build()?;

    let (builder, dir) = common::runtime("agent_llm");
    let runtime = builder.agent(&config).register(agent).start()?;
    let run = runtime.run(
        ("support-agent", 1),
        json!({ "prompt": "I'm customer c-17 and I want a refund for my last order." }),
    )?;
    let waiting = runtime.await_waiting(run.run_id, Duration::from_secs(120))?;
    let prompt = waiting.waiting.and_then(|w| w.prompt).unwrap_or_default();
    println!("the agent stops for a person: {prompt}");
    println!("a person answers: yes");
    runtime.respond(run.run_id, json!("yes"))?;
    let done = runtime.await_end(run.run_id, Duration::from_secs(120))?;
    println!(
        "agent {} after {} model calls: {}",
        done.status,
        done.output
            .as_ref()
            .map_or(json!(0), |o| o["turns"].clone()),
        done.output
            .as_ref()
            .map_or(json!(null), |o| o["answer"].clone())
    );
    println!("refunds made: {}", refunds.load(Ordering::SeqCst));

    println!("\nwhat the ledger keeps of each call:");
    let records = runtime.engine().records(run.run_id, 1, 1_000)?;
    ledgerflow::ledger::verify_chain(&records)?;
    for record in &records {
        let body = record.body();
        match record.kind() {
            "effect_requested" if body["effect"]["kind"] == "llm_call" => {
                let messages = body["effect"]["payload"]["messages"]
                    .as_array()
                    .map_or(0, Vec::len);
                println!(
                    "  {:>3} llm_call asked  ({messages} messages, key {})",
                    record.seq(),
                    body["idempotency_key"]
                );
            }
            "effect_requested" if body["effect"]["kind"] == "tool_calls" => {
                let names: Vec<&str> = body["effect"]["payload"]["calls"]
                    .as_array()
                    .map_or(Vec::new(), |c| {
                        c.iter().filter_map(|c| c["name"].as_str()).collect()
                    });
                println!("  {:>3} tool_calls asked {names:?}", record.seq());
            }
            "effect_completed" => match LlmResponse::from_value(&body["result"]) {
                Ok(answer) if !answer.provider.is_empty() => println!(
                    "  {:>3} llm_call answered: {} (tokens {}, {} ms)",
                    record.seq(),
                    answer.content.unwrap_or_else(|| format!(
                        "call {:?}",
                        answer
                            .tool_calls
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                    )),
                    answer.usage.total_tokens,
                    answer.latency_ms
                ),
                _ => println!(
                    "  {:>3} tool_calls answered: {}",
                    record.seq(),
                    body["result"]
                ),
            },
            "waiting" => println!("  {:>3} waiting for a person", record.seq()),
            _ => {}
        }
    }
    println!("the chain of {} records verifies", records.len());
    if let Some(dir) = &dir {
        println!(
            "every prompt and answer: ledgerflow --db {} ledger show {}",
            dir.display(),
            run.run_id
        );
    }
    common::print_how_to_look(dir.as_ref());
    runtime.stop()?;
    Ok(())
}
