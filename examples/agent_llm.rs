//! A tool-using agent with a person's approval, on the `llm_call` and `tool_calls`
//! effects: the model looks an order up with a tool, asks to refund it, a person
//! approves, the refund tool runs once, and the model answers. Every prompt and answer is
//! in the run's ledger.
//!
//! With no setting it runs in hybrid mode against a stub model this example starts on
//! 127.0.0.1 (no network), the tools in this process:
//!
//!     cargo run --features agent --example agent_llm
//!
//! `LEDGERFLOW_AGENT_MODE=local` runs a scripted model in this process instead, and
//! `LEDGERFLOW_AGENT_MODE=remote` passes the tool calls through to this program as the
//! host (the run waits until it submits their results). The same code against a real
//! endpoint:
//!
//!     LEDGERFLOW_LLM_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-… \
//!     LEDGERFLOW_LLM_MODEL=gpt-4o-mini cargo run --features agent --example agent_llm

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ledgerflow::agent::stub::{chat_answer, StubReply, StubServer};
use ledgerflow::agent::{
    passthrough_submission, AgentConfig, AgentLoop, CallContext, ChatRequest, LlmResponse, Mode,
    OpenAiCompatible, Secret, ToolCall, ToolRegistry, PASSTHROUGH_PREFIX,
};
use ledgerflow::{RunState, RunStatus, ScheduledRuntime};
use serde_json::{json, Value};

mod common;

/// The scripted model's next turn, given which tool calls have been answered: look the
/// order up, then ask to refund it, then say it is done.
fn script(answered: impl Fn(&str) -> bool) -> (Option<&'static str>, Vec<ToolCall>) {
    let call = |id: &str, name: &str, arguments: Value| ToolCall {
        id: id.into(),
        name: name.into(),
        arguments,
    };
    if answered("call_refund") {
        (Some("I refunded order o-991 ($45.99)."), Vec::new())
    } else if answered("call_lookup") {
        (
            None,
            vec![call(
                "call_refund",
                "refund",
                json!({ "order": "o-991", "cents": 4599 }),
            )],
        )
    } else {
        (
            None,
            vec![call(
                "call_lookup",
                "lookup_order",
                json!({ "customer": "c-17" }),
            )],
        )
    }
}

/// The stub server's answer to a chat-completions request (OpenAI's wire form).
fn stub_model(request: &Value) -> Value {
    let (content, calls) = script(|id| {
        request["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["tool_call_id"] == id))
    });
    chat_answer("stub-model", content, &calls)
}

/// The same script as an in-process model (local mode).
fn local_model(
    request: &ChatRequest,
    _: &CallContext,
) -> Result<LlmResponse, ledgerflow::agent::AgentError> {
    let (content, calls) = script(|id| {
        request
            .messages
            .iter()
            .any(|m| m.tool_call_id.as_deref() == Some(id))
    });
    Ok(match content {
        Some(text) => LlmResponse::text("local-script", text),
        None => LlmResponse::calling("local-script", calls),
    })
}

/// The endpoint the remote and hybrid modes ask: `LEDGERFLOW_LLM_URL` if set, else a stub
/// started here (returned so it lives as long as the run).
fn endpoint() -> Result<(OpenAiCompatible, String, Option<StubServer>), Box<dyn std::error::Error>>
{
    if let Ok(url) = std::env::var("LEDGERFLOW_LLM_URL") {
        let mut endpoint = OpenAiCompatible::new(url);
        if let Some(key) = Secret::from_env("OPENAI_API_KEY") {
            endpoint = endpoint.api_key(key);
        }
        let model = std::env::var("LEDGERFLOW_LLM_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
        return Ok((endpoint, model, None));
    }
    let stub = StubServer::start(|request| StubReply::Json(200, stub_model(&request.json())))?;
    println!(
        "model: a stub on {} (set LEDGERFLOW_LLM_URL for a real one)",
        stub.url()
    );
    let endpoint = OpenAiCompatible::new(format!("{}/v1", stub.url()));
    Ok((endpoint, "stub-model".to_owned(), Some(stub)))
}

/// Drives the run as its host until it ends: answers the person's question with "yes"
/// and, in remote mode, runs the passed-through tool calls with `tools` and submits their
/// results.
fn drive(
    runtime: &ScheduledRuntime,
    run: &RunState,
    tools: &ToolRegistry,
) -> Result<RunState, Box<dyn std::error::Error>> {
    loop {
        let state = runtime.await_waiting(run.run_id, Duration::from_secs(120))?;
        if state.status != RunStatus::Waiting {
            return Ok(runtime.await_end(run.run_id, Duration::from_secs(120))?);
        }
        let Some(wait) = state.waiting.clone() else {
            return Err("a waiting run without a wait".into());
        };
        let key = wait.wait_key.clone().unwrap_or_default();
        if let Some(effect_key) = key.strip_prefix(PASSTHROUGH_PREFIX) {
            let answer = LlmResponse::from_value(&state.vars["answer"])?;
            println!(
                "the host runs the passed-through calls: {:?}",
                answer
                    .tool_calls
                    .iter()
                    .map(|c| &c.name)
                    .collect::<Vec<_>>()
            );
            let results = tools.run(run.run_id, effect_key, &answer.tool_calls);
            runtime.deliver(&key, passthrough_submission(&answer.tool_calls, results)?)?;
        } else {
            println!(
                "the agent stops for a person: {}",
                wait.prompt.unwrap_or_default()
            );
            println!("a person answers: yes");
            runtime.respond(run.run_id, json!("yes"))?;
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mode: Mode = std::env::var("LEDGERFLOW_AGENT_MODE")
        .unwrap_or_else(|_| "hybrid".into())
        .parse()?;
    println!("mode: {mode:?} (LEDGERFLOW_AGENT_MODE=local|remote|hybrid)");
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
    // The one place the mode is chosen: the workflow below is the same in all three.
    let (config, model, _stub) = match mode {
        Mode::Local => (
            AgentConfig::local(local_model, tools.clone()),
            "local-script".to_owned(),
            None,
        ),
        Mode::Remote => {
            let (endpoint, model, stub) = endpoint()?;
            (AgentConfig::remote(endpoint), model, stub)
        }
        Mode::Hybrid => {
            let (endpoint, model, stub) = endpoint()?;
            (AgentConfig::hybrid(endpoint, tools.clone()), model, stub)
        }
    };
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
    let done = drive(&runtime, &run, &tools)?;
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
