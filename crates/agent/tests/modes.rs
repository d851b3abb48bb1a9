//! The agent effects end to end on a real scheduler, every HTTP peer a server on
//! 127.0.0.1 in the test: each mode (local, hybrid, remote with passthrough tools, a
//! remote tool worker), retries of 429 / 500 / timeouts with backoff, a 400 that is not
//! retried, malformed answers, tool failures, and provenance in the ledger.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ledgerflow_agent::stub::{chat_answer, StubReply, StubServer};
use ledgerflow_agent::{
    passthrough_submission, AgentConfig, ErrorCode, LlmResponse, OpenAiCompatible, RemoteTools,
    Secret, ToolBackend, ToolCall, ToolRegistry, ToolResult, ToolResults, IDEMPOTENCY_HEADER,
    PASSTHROUGH_PREFIX,
};
use ledgerflow_kernel::{FailureCode, MemoryStore, RunStatus};
use serde_json::{json, Value};

fn call(id: &str, name: &str, arguments: Value) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        arguments,
    }
}

fn lookup_tools() -> ToolRegistry {
    ToolRegistry::new().tool(
        "lookup_order",
        "Finds a customer's last order",
        json!({"type": "object", "properties": {"customer": {"type": "string"}}}),
        |args, _| Ok(json!({ "order": "o-991", "customer": args["customer"], "cents": 4599 })),
    )
}

/// A model that calls `lookup_order` first and answers once it has a tool result.
fn scripted_answer(request: &Value) -> Value {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    match messages.iter().rev().find(|m| m["role"] == "tool") {
        None => chat_answer(
            "stub-model",
            None,
            &[call("call_1", "lookup_order", json!({"customer": "c-17"}))],
        ),
        Some(tool) => chat_answer(
            "stub-model",
            Some(&format!(
                "The last order is {}",
                tool["content"].as_str().unwrap_or("")
            )),
            &[],
        ),
    }
}

/// The message of the run's failure, which must be a failed effect's.
fn effect_failure(run: &ledgerflow_kernel::RunState) -> String {
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let failure = run.failure.clone().expect("a failure");
    assert_eq!(failure.code, FailureCode::EffectFailed);
    failure.message
}

/// The message of the run's failure, which must be a failed effect's starting with
/// `code`, told too by the run's last record: `effect_failed`, not retryable.
fn failed_with(
    run: &ledgerflow_kernel::RunState,
    records: &[ledgerflow_ledger::Record],
    code: &str,
) -> String {
    let message = effect_failure(run);
    assert!(message.starts_with(code), "{message}");
    let last = records.last().expect("records");
    assert_eq!(last.kind(), "effect_failed");
    assert_eq!(last.body()["error"], message.as_str(), "{}", last.body());
    assert_eq!(last.body()["retryable"], false, "{}", last.body());
    message
}

/// The stub model's lookup conversation run to its end, which must be completion.
fn completed_lookup(config: &AgentConfig) -> Finished {
    let finished = run_to_end(
        config,
        "stub-model",
        lookup_tools().specs(),
        "Where is my order?",
    );
    assert_eq!(
        finished.run.status,
        RunStatus::Completed,
        "{:?}",
        finished.run
    );
    finished
}

#[test]
fn local_mode_runs_the_loop_in_process_and_records_each_call() {
    let model = |request: &ledgerflow_agent::ChatRequest, _: &ledgerflow_agent::CallContext| {
        let tool_said = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == ledgerflow_agent::Role::Tool);
        Ok(match tool_said {
            None => LlmResponse::calling(
                "tiny-local",
                vec![call("c1", "lookup_order", json!({"customer": "c-17"}))],
            ),
            Some(m) => LlmResponse::text(
                "tiny-local",
                format!("found {}", m.content.clone().unwrap_or_default()),
            ),
        })
    };
    let tools = lookup_tools();
    let config = AgentConfig::local(model, tools.clone());
    let Finished { run, records } =
        run_to_end(&config, "tiny-local", tools.specs(), "Where is my order?");
    let done = run.clone();
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let answer = done.output.expect("output")["answer"].clone();
    assert!(answer.as_str().unwrap_or("").contains("o-991"), "{answer}");

    let asked = effect_records(&records, "effect_requested", "llm_call");
    let answered = effect_records(&records, "effect_completed", "llm_call");
    assert_eq!((asked.len(), answered.len()), (2, 2));
    // The request (model, messages, tools) is in the record written before the call.
    let first = asked[0].body();
    assert_eq!(first["effect"]["payload"]["model"], "tiny-local");
    assert_eq!(
        first["effect"]["payload"]["messages"][1]["content"],
        "Where is my order?"
    );
    assert_eq!(
        first["effect"]["payload"]["tools"][0]["name"],
        "lookup_order"
    );
    // The response, with provider and latency, in the record written after it.
    let response = LlmResponse::from_value(&answered[1].body()["result"]).expect("a response");
    assert_eq!(response.provider, "local");
    assert_eq!(response.model, "tiny-local");
    let tool_results = effect_records(&records, "effect_completed", "tool_calls");
    assert_eq!(tool_results.len(), 1);
    assert_eq!(
        tool_results[0].body()["result"]["results"][0]["output"]["order"],
        "o-991"
    );
}

#[test]
fn hybrid_mode_asks_the_http_model_with_key_and_idempotency_key_and_runs_tools_here() {
    let model = StubServer::start(|request| StubReply::Json(200, scripted_answer(&request.json())))
        .expect("stub model");
    let endpoint =
        OpenAiCompatible::new(format!("{}/v1", model.url())).api_key(Secret::new("sk-hybrid"));
    let tools = lookup_tools();
    let config = AgentConfig::hybrid(endpoint, tools.clone());
    let Finished { run, records } =
        run_to_end(&config, "stub-model", tools.specs(), "Where is my order?");
    let done = run.clone();
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");

    let requests = model.requests();
    assert_eq!(requests.len(), 2, "one request a think step");
    let asked = effect_records(&records, "effect_requested", "llm_call");
    for (request, record) in requests.iter().zip(&asked) {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v1/chat/completions");
        assert_eq!(request.header("authorization"), Some("Bearer sk-hybrid"));
        assert_eq!(
            request.header(IDEMPOTENCY_HEADER),
            record.body()["idempotency_key"].as_str(),
            "the provider gets the key the ledger recorded"
        );
        let body = request.json();
        assert_eq!(body["model"], "stub-model");
        assert_eq!(body["tools"][0]["function"]["name"], "lookup_order");
    }
    // The second request carries the tool's result back to the model, as a tool message.
    let second = requests[1].json();
    let tool_message = second["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "tool"))
        .cloned()
        .expect("a tool message");
    assert_eq!(tool_message["tool_call_id"], "call_1");
    let answered = effect_records(&records, "effect_completed", "llm_call");
    let last = LlmResponse::from_value(&answered[1].body()["result"]).expect("a response");
    assert_eq!(last.provider, "openai-compatible");
    assert_eq!(last.usage.total_tokens, 15);
    assert_eq!(last.finish_reason, "stop");
}

#[test]
fn remote_mode_passes_tool_calls_through_until_the_host_submits_results() {
    let model = StubServer::start(|request| StubReply::Json(200, scripted_answer(&request.json())))
        .expect("stub model");
    let config = AgentConfig::remote(OpenAiCompatible::new(format!("{}/v1", model.url())));
    let (engine, scheduler) = start(
        Arc::new(MemoryStore::new()),
        &config,
        agent_loop("stub-model", lookup_tools().specs()),
    );
    let run = scheduler
        .run(("agent", 1), input("Where is my order?"))
        .expect("run");
    let waiting = scheduler
        .await_waiting(run.run_id, WAIT)
        .expect("the run waits for the host's tool results");
    let wait_key = waiting
        .waiting
        .as_ref()
        .and_then(|w| w.wait_key.clone())
        .expect("a wait key");
    assert!(wait_key.starts_with(PASSTHROUGH_PREFIX), "{wait_key}");

    // The host reads the calls from the model's answer and answers them.
    let answer = LlmResponse::from_value(&waiting.vars["answer"]).expect("the model's answer");
    let wrong = passthrough_submission(&answer.tool_calls, Vec::new()).expect_err("no results");
    assert_eq!(wrong.code, ErrorCode::InvalidSubmission);
    let results = answer
        .tool_calls
        .iter()
        .map(|c| ToolResult::ok(c, json!({ "order": "o-555", "host": true })))
        .collect();
    let submission = passthrough_submission(&answer.tool_calls, results).expect("a submission");
    scheduler.deliver(&wait_key, submission).expect("deliver");
    let done = ended(&scheduler, run.run_id);
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert!(done.output.expect("output")["answer"]
        .as_str()
        .unwrap_or("")
        .contains("o-555"));
    let records = records(&engine, run.run_id);
    assert!(
        kinds(&records).contains(&"effect_waiting"),
        "{:?}",
        kinds(&records)
    );
    scheduler.stop();
}

#[test]
fn a_remote_tool_worker_gets_the_calls_and_its_answer_is_checked() {
    let model = StubServer::start(|request| StubReply::Json(200, scripted_answer(&request.json())))
        .expect("stub model");
    let worker = StubServer::start(|request| {
        let body = request.json();
        let results: Vec<Value> = body["calls"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| json!({ "id": c["id"], "name": c["name"], "output": { "order": "o-777" } }))
            .collect();
        StubReply::Json(200, json!({ "results": results }))
    })
    .expect("stub tool worker");
    let config = AgentConfig::hybrid(
        OpenAiCompatible::new(format!("{}/v1", model.url())),
        ToolRegistry::new(),
    )
    .tools(ToolBackend::Remote(
        RemoteTools::new(format!("{}/tools", worker.url())).token(Secret::new("worker-token")),
    ));
    let Finished { run, records } = completed_lookup(&config);
    let requests = worker.requests();
    assert_eq!(requests.len(), 1);
    let body = requests[0].json();
    assert_eq!(body["run_id"], run.run_id.to_string());
    assert_eq!(body["calls"][0]["name"], "lookup_order");
    assert_eq!(body["calls"][0]["arguments"]["customer"], "c-17");
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer worker-token")
    );
    assert_eq!(
        requests[0].header(IDEMPOTENCY_HEADER),
        body["idempotency_key"].as_str()
    );
    assert_eq!(
        effect_records(&records, "effect_completed", "tool_calls").len(),
        1
    );

    // A worker whose answer does not answer the calls fails the effect, typed.
    let liar = StubServer::start(|_| StubReply::Json(200, json!({ "results": [] }))).expect("stub");
    let config = AgentConfig::hybrid(
        OpenAiCompatible::new(format!("{}/v1", model.url())),
        ToolRegistry::new(),
    )
    .tools(ToolBackend::Remote(RemoteTools::new(liar.url())));
    let Finished { run, .. } = run_to_end(&config, "stub-model", lookup_tools().specs(), "?");
    let message = effect_failure(&run);
    assert!(message.starts_with("malformed_response:"), "{message}");
}

#[test]
fn rate_limits_server_errors_and_timeouts_are_retried_with_backoff_and_the_same_key() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let model = StubServer::start(
        move |request| match counter.fetch_add(1, Ordering::SeqCst) {
            0 => StubReply::Json(429, json!({ "error": { "message": "slow down" } })),
            1 => StubReply::Json(500, json!({ "error": { "message": "boom" } })),
            2 => StubReply::Silence(Duration::from_millis(1_500)),
            _ => StubReply::Json(200, scripted_answer(&request.json())),
        },
    )
    .expect("stub model");
    let endpoint =
        OpenAiCompatible::new(format!("{}/v1", model.url())).timeout(Duration::from_millis(400));
    let config = AgentConfig::hybrid(endpoint, lookup_tools());
    let Finished { records, .. } = completed_lookup(&config);

    let requests = model.requests();
    assert_eq!(requests.len(), 5, "three failures, then two good calls");
    let first_key = requests[0].header(IDEMPOTENCY_HEADER).expect("a key");
    for request in &requests[..4] {
        assert_eq!(request.header(IDEMPOTENCY_HEADER), Some(first_key));
    }
    assert_ne!(
        requests[4].header(IDEMPOTENCY_HEADER),
        Some(first_key),
        "a new call, a new key"
    );
    // Backoff on durable timers: 50 ms, 100 ms, 200 ms (no jitter) after each failure
    // (the timeout adds its 400 ms before the third wait). Timers are due in whole
    // milliseconds of the engine's clock, so a wait may look up to a few ms short here.
    for (n, least_ms) in [(1, 45), (2, 95), (3, 400 + 195)] {
        let gap = requests[n].at.duration_since(requests[n - 1].at);
        assert!(
            gap >= Duration::from_millis(least_ms),
            "wait {n} was {gap:?}"
        );
    }
    let retries: Vec<String> = records
        .iter()
        .filter(|r| r.kind() == "effect_retry_scheduled")
        .map(|r| r.body()["error"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(retries.len(), 3, "{retries:?}");
    assert!(retries[0].starts_with("rate_limited:"), "{}", retries[0]);
    assert!(retries[1].starts_with("server_error:"), "{}", retries[1]);
    assert!(retries[2].starts_with("timeout:"), "{}", retries[2]);
    assert_eq!(
        effect_records(&records, "effect_completed", "llm_call").len(),
        2
    );
}

/// One run against a model that always answers `reply`: its end and the model's requests.
fn one_call_against(
    reply: StubReply,
) -> (
    ledgerflow_kernel::RunState,
    usize,
    Vec<ledgerflow_ledger::Record>,
) {
    let model = StubServer::start(move |_| reply.clone()).expect("stub model");
    let config = AgentConfig::hybrid(
        OpenAiCompatible::new(format!("{}/v1", model.url())),
        lookup_tools(),
    );
    let Finished { run, records } = run_to_end(&config, "stub-model", Vec::new(), "?");
    let done = run.clone();
    (done, model.requests().len(), records)
}

#[test]
fn a_400_is_not_retried_and_fails_the_run_with_its_code() {
    let (done, requests, records) = one_call_against(StubReply::Json(
        400,
        json!({ "error": { "message": "unknown parameter: tempreature" } }),
    ));
    assert_eq!(requests, 1, "a 4xx is not retried");
    let message = failed_with(&done, &records, "http_status: ");
    assert!(
        message.contains("tempreature"),
        "the peer's reason is kept: {message}"
    );
    assert!(!kinds(&records).contains(&"effect_retry_scheduled"));
}

#[test]
fn malformed_provider_json_fails_the_run_with_a_coded_record() {
    for reply in [
        StubReply::Text(200, "{\"choices\": [".into()),
        StubReply::Json(200, json!({ "choices": [] })),
        StubReply::Json(200, json!({ "choices": [{ "message": { "content": 7 } }] })),
    ] {
        let (done, requests, records) = one_call_against(reply.clone());
        assert_eq!(requests, 1, "{reply:?}: a malformed answer is not retried");
        failed_with(&done, &records, "malformed_response: ");
    }
}

#[test]
fn tool_failures_unknown_tools_timeouts_and_oversized_results_are_told_to_the_model() {
    let tools = ToolRegistry::new()
        .tool("fails", "", Value::Null, |_, _| {
            Err("the card was declined".into())
        })
        .tool("panics", "", Value::Null, |_, _| panic!("tool bug"))
        .tool("big", "", Value::Null, |_, _| Ok(json!("x".repeat(4_096))))
        .timeout(Duration::from_millis(200))
        .tool("slow", "", Value::Null, |_, _| {
            std::thread::sleep(Duration::from_secs(2));
            Ok(json!("late"))
        })
        .result_bytes_max(1_024);
    let calls = vec![
        call("a", "fails", json!({})),
        call("b", "nope", json!({})),
        call("c", "slow", json!({})),
        call("d", "big", json!({})),
        call("e", "panics", json!({})),
    ];
    let script = calls.clone();
    let model = move |request: &ledgerflow_agent::ChatRequest,
                      _: &ledgerflow_agent::CallContext| {
        let told: Vec<String> = request
            .messages
            .iter()
            .filter(|m| m.role == ledgerflow_agent::Role::Tool)
            .filter_map(|m| m.content.clone())
            .collect();
        Ok(if told.is_empty() {
            LlmResponse::calling("m", script.clone())
        } else {
            LlmResponse::text("m", told.join("\n"))
        })
    };
    let config = AgentConfig::local(model, tools.clone());
    let Finished { run, records } = run_to_end(&config, "m", tools.specs(), "do it all");
    let done = run.clone();
    assert_eq!(
        done.status,
        RunStatus::Completed,
        "a failed tool call does not fail the run"
    );
    let result = &effect_records(&records, "effect_completed", "tool_calls")[0].body()["result"];
    let results = ToolResults::from_value(result).expect("results");
    let codes: Vec<Option<ErrorCode>> = results
        .results
        .iter()
        .map(|r| r.error.as_ref().map(|e| e.code))
        .collect();
    assert_eq!(
        codes,
        [
            Some(ErrorCode::ToolFailed),
            Some(ErrorCode::UnknownTool),
            Some(ErrorCode::Timeout),
            Some(ErrorCode::ResultTooLarge),
            Some(ErrorCode::ToolFailed),
        ]
    );
    assert_eq!(
        results.results[0]
            .error
            .as_ref()
            .map(|e| e.message.as_str()),
        Some("the card was declined")
    );
    let answer = done.output.expect("output")["answer"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        answer.contains("error: unknown_tool"),
        "the model read the failures: {answer}"
    );
}

#[test]
fn a_human_approval_stops_the_loop_until_a_person_answers() {
    let model = StubServer::start(|request| {
        let body = request.json();
        let told = body["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
        StubReply::Json(
            200,
            if told {
                chat_answer("stub-model", Some("Refunded."), &[])
            } else {
                chat_answer(
                    "stub-model",
                    None,
                    &[call("r1", "refund", json!({"order": "o-991"}))],
                )
            },
        )
    })
    .expect("stub model");
    let refunds = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&refunds);
    let tools =
        ToolRegistry::new().tool("refund", "Refunds an order", Value::Null, move |_, ctx| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(json!({ "refund_id": format!("rf-{}", ctx.idempotency_key) }))
        });
    let config = AgentConfig::hybrid(
        OpenAiCompatible::new(format!("{}/v1", model.url())),
        tools.clone(),
    );
    let (_engine, scheduler) = start(
        Arc::new(MemoryStore::new()),
        &config,
        agent_loop("stub-model", tools.specs()),
    );
    let run = scheduler
        .run(("agent", 1), input("Refund my order"))
        .expect("run");
    let waiting = scheduler
        .await_waiting(run.run_id, WAIT)
        .expect("asks a person");
    assert!(waiting
        .waiting
        .and_then(|w| w.prompt)
        .unwrap_or_default()
        .contains("refund"));
    assert_eq!(
        refunds.load(Ordering::SeqCst),
        0,
        "nothing refunded before a person says yes"
    );
    scheduler
        .respond(run.run_id, json!("yes"))
        .expect("respond");
    let done = ended(&scheduler, run.run_id);
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(refunds.load(Ordering::SeqCst), 1);
    scheduler.stop();
}

#[test]
fn large_prompts_and_answers_are_kept_as_artifacts_by_digest() {
    let long_question = format!("Summarise: {}", "lorem ipsum ".repeat(2_000));
    let long_answer = "a summary ".repeat(2_000);
    let answer_text = long_answer.clone();
    let model = move |request: &ledgerflow_agent::ChatRequest,
                      _: &ledgerflow_agent::CallContext| {
        let asked = request
            .messages
            .last()
            .and_then(|m| m.content.clone())
            .unwrap_or_default();
        assert!(asked.len() > 20_000, "the provider gets the whole prompt");
        Ok(LlmResponse::text("m", answer_text.clone()))
    };
    let config = AgentConfig::local(model, ToolRegistry::new());
    let (engine, scheduler) = start(
        Arc::new(MemoryStore::new()),
        &config,
        agent_loop("m", Vec::new()),
    );
    let run = scheduler
        .run(("agent", 1), input(&long_question))
        .expect("run");
    let done = ended(&scheduler, run.run_id);
    scheduler.stop();
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let records = records(&engine, run.run_id);
    let asked = effect_records(&records, "effect_requested", "llm_call");
    let answered = effect_records(&records, "effect_completed", "llm_call");
    let request = &asked[0].body()["effect"]["payload"];
    let response = &answered[0].body()["result"];
    for (what, cited) in [("request", request), ("response", response)] {
        assert!(
            cited["$artifact"]["digest"]
                .as_str()
                .is_some_and(|d| d.len() == 64),
            "the {what} is cited by digest: {cited}"
        );
    }
    let response = engine.resolve(response).expect("the artifact reads back");
    let response = LlmResponse::from_value(&response).expect("a response");
    assert_eq!(response.content.as_deref(), Some(long_answer.as_str()));
    let request = engine.resolve(request).expect("the artifact reads back");
    assert_eq!(request["messages"][1]["content"], long_question.as_str());
}

#[test]
fn a_tool_result_over_the_engine_value_limit_fails_the_run_typed() {
    // Each call under the registry's bound, all of them together over the engine's.
    let tools = ToolRegistry::new().tool("half", "", Value::Null, |_, _| {
        Ok(json!("y".repeat(40_000)))
    });
    let calls: Vec<ToolCall> = (0..4)
        .map(|i| call(&format!("c{i}"), "half", json!({})))
        .collect();
    let model = move |_: &ledgerflow_agent::ChatRequest, _: &ledgerflow_agent::CallContext| {
        Ok(LlmResponse::calling("m", calls.clone()))
    };
    let config = AgentConfig::local(model, tools.clone());
    let engine_config = ledgerflow_kernel::EngineConfig {
        value_bytes_max: 100_000,
        ..ledgerflow_kernel::EngineConfig::default()
    };
    let engine = Arc::new(ledgerflow_kernel::Engine::with_config(
        Arc::new(MemoryStore::new()),
        Arc::new(ledgerflow_scheduler::SystemClock),
        engine_config,
    ));
    let (llm, tool_calls) = config.handlers();
    engine
        .register_effect(ledgerflow_agent::LLM_CALL, llm)
        .expect("llm");
    engine
        .register_effect(ledgerflow_agent::TOOL_CALLS, tool_calls)
        .expect("tools");
    engine.register(agent_loop("m", tools.specs()));
    let run = engine.start(("agent", 1), input("go")).expect("start");
    let mut state = engine.tick(run).expect("tick");
    for _ in 0..10 {
        if state.status.is_terminal() {
            break;
        }
        state = engine.tick(run).expect("tick");
    }
    let message = failed_with(&state, &records(&engine, run), "");
    assert!(message.contains("100000"), "the bound is named: {message}");
}

#[test]
fn a_retry_after_from_the_provider_is_waited_out_before_the_next_attempt() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let model = StubServer::start(
        move |request| match counter.fetch_add(1, Ordering::SeqCst) {
            0 => StubReply::WithHeaders(
                429,
                vec![("Retry-After".into(), "1".into())],
                json!({ "error": { "message": "slow down" } }),
            ),
            1 => StubReply::WithHeaders(
                503,
                vec![("retry-after-ms".into(), "700".into())],
                json!({ "error": { "message": "busy" } }),
            ),
            _ => StubReply::Json(200, scripted_answer(&request.json())),
        },
    )
    .expect("stub model");
    let config = AgentConfig::hybrid(
        OpenAiCompatible::new(format!("{}/v1", model.url())),
        lookup_tools(),
    );
    let Finished { records, .. } = completed_lookup(&config);
    let requests = model.requests();
    assert_eq!(requests.len(), 4, "two refusals, then two good calls");
    // The policy alone would wait 50 ms, then 100 ms; the provider asked for 1 s, 0.7 s.
    for (n, least_ms) in [(1, 995), (2, 695)] {
        let gap = requests[n].at.duration_since(requests[n - 1].at);
        assert!(
            gap >= Duration::from_millis(least_ms),
            "wait {n} was {gap:?}"
        );
    }
    let retries: Vec<(i64, i64)> = records
        .iter()
        .filter(|r| r.kind() == "effect_retry_scheduled")
        .map(|r| (r.at_ms(), r.body()["retry_at_ms"].as_i64().unwrap_or(0)))
        .collect();
    assert_eq!(retries.len(), 2);
    // The record's time is its commit's, a few ms after the retry was planned.
    for ((at_ms, retry_at_ms), asked_ms) in retries.iter().zip([1_000, 700]) {
        let kept = retry_at_ms - at_ms;
        assert!(
            (asked_ms - 20..=asked_ms).contains(&kept),
            "the record keeps the wait: {retries:?}"
        );
    }
}
