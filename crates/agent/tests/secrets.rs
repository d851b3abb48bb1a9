//! API keys never reach the ledger, a log line or an error: a model and a tool worker (on
//! 127.0.0.1) that echo the key back in their error bodies, every span and event captured
//! at TRACE level, and the key looked for everywhere it could leak.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use ledgerflow_agent::stub::{chat_answer, StubReply, StubServer};
use ledgerflow_agent::{
    AgentConfig, OpenAiCompatible, RemoteTools, Secret, ToolBackend, ToolCall, ToolRegistry,
};
use ledgerflow_kernel::{MemoryStore, RunStatus};
use serde_json::json;

const API_KEY: &str = "sk-test-4f1c9a7e2b-DO-NOT-LEAK";
const WORKER_TOKEN: &str = "tok-worker-93ab51-DO-NOT-LEAK";

/// Everything the subscriber writes, kept for the test to search.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

fn assert_hidden(what: &str, text: &str) {
    assert!(!text.contains(API_KEY), "{what} holds the API key: {text}");
    assert!(
        !text.contains(WORKER_TOKEN),
        "{what} holds the worker token: {text}"
    );
}

#[test]
fn keys_and_tokens_stay_out_of_the_ledger_logs_and_errors() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

    // The model answers with a tool call, then refuses the key and quotes it back.
    let model = StubServer::start(|request| {
        let told = request.json()["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
        if told {
            StubReply::Json(
                401,
                json!({ "error": { "message": format!("Incorrect API key provided: {API_KEY}.") } }),
            )
        } else {
            let call = ToolCall { id: "c1".into(), name: "lookup".into(), arguments: json!({}) };
            StubReply::Json(200, chat_answer("stub-model", None, &[call]))
        }
    })
    .expect("stub model");
    // The tool worker answers with its token in a 500 (retried, then given up on) the
    // first times, and properly after.
    let worker_calls = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&worker_calls);
    let worker = StubServer::start(move |request| {
        let mut n = seen.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        if *n < 3 {
            return StubReply::Text(
                500,
                format!("auth header was {:?}", request.header("authorization")),
            );
        }
        StubReply::Json(
            200,
            json!({ "results": [{ "id": "c1", "name": "lookup", "output": 1 }] }),
        )
    })
    .expect("stub worker");

    let endpoint =
        OpenAiCompatible::new(format!("{}/v1", model.url())).api_key(Secret::new(API_KEY));
    let remote_tools = RemoteTools::new(worker.url()).token(Secret::new(WORKER_TOKEN));
    assert_hidden("the endpoint's Debug", &format!("{endpoint:?}"));
    assert_hidden("the worker's Debug", &format!("{remote_tools:?}"));
    let config =
        AgentConfig::hybrid(endpoint, ToolRegistry::new()).tools(ToolBackend::Remote(remote_tools));

    let (engine, scheduler) = start(
        Arc::new(MemoryStore::new()),
        &config,
        agent_loop("stub-model", Vec::new()),
    );
    let run = scheduler
        .run(("agent", 1), input("Where is my order?"))
        .expect("run");
    let done = ended(&scheduler, run.run_id);
    scheduler.stop();

    // The key was sent: the peers saw it in the header, and nowhere else.
    let model_requests = model.requests();
    assert!(model_requests
        .iter()
        .all(|r| r.header("authorization") == Some(&format!("Bearer {API_KEY}"))));
    for request in model_requests.iter().chain(worker.requests().iter()) {
        assert_hidden("a request body", &request.body);
    }
    assert!(worker
        .requests()
        .iter()
        .all(|r| r.header("authorization") == Some(&format!("Bearer {WORKER_TOKEN}"))));

    assert_eq!(done.status, RunStatus::Failed, "{done:?}");
    let failure = done.failure.clone().expect("a failure");
    assert!(
        failure.message.contains("Incorrect API key provided: ***"),
        "{}",
        failure.message
    );
    assert_hidden("the run's failure", &failure.message);
    assert_hidden("the run's state", &format!("{done:?}"));
    let records = records(&engine, run.run_id);
    assert_hidden("the ledger", &export(&records));
    let log = captured.text();
    assert!(log.contains("llm_call"), "the spans were captured: {log}");
    assert_hidden("the log", &log);
}
