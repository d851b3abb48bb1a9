//! What the agent effect tests share: the agent loop (think with `llm_call`, act with
//! `tool_calls`, stop for a person before a refund), an engine and scheduler on a store,
//! and readers of a run's records.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use ledgerflow_agent::{AgentConfig, AgentLoop, Message, ToolSpec, LLM_CALL, TOOL_CALLS};
use ledgerflow_kernel::store::Store;
use ledgerflow_kernel::{Engine, RetryPolicy, RunId, RunState, WorkflowSpec};
use ledgerflow_ledger::{verify_chain, Record};
use ledgerflow_scheduler::{Scheduler, SchedulerConfig, SystemClock};
use serde_json::{json, Value};

pub const WAIT: Duration = Duration::from_secs(30);

/// Retries quick enough for a test: 5 attempts, 50 ms, 100 ms, 200 ms, … with no jitter.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        attempts_max: 5,
        initial_backoff_ms: 50,
        max_backoff_ms: 1_000,
        multiplier: 2.0,
        jitter: 0.0,
    }
}

/// The agent loop the tests run: `lookup_order`-style tools, a person's approval before
/// any `refund`, quick retries.
pub fn agent_loop(model: &str, tools: Vec<ToolSpec>) -> WorkflowSpec {
    AgentLoop::new("agent", 1, model)
        .tools(tools)
        .approve("refund")
        .retry(quick_retry())
        .build()
        .expect("a valid spec")
}

/// The conversation's first turn, as a run's input.
pub fn input(question: &str) -> Value {
    json!({ "messages": [Message::system("You help customers."), Message::user(question)] })
}

/// An engine on `store` with the wall clock, `config`'s effects and the agent loop, and a
/// scheduler driving it.
pub fn start(
    store: Arc<dyn Store>,
    config: &AgentConfig,
    spec: WorkflowSpec,
) -> (Arc<Engine>, Scheduler) {
    let engine = Arc::new(Engine::new(store, Arc::new(SystemClock)));
    let (llm, tools) = config.handlers();
    engine
        .register_effect(LLM_CALL, llm)
        .expect("register llm_call");
    engine
        .register_effect(TOOL_CALLS, tools)
        .expect("register tool_calls");
    engine.register(spec);
    let scheduler = Scheduler::start(Arc::clone(&engine), SchedulerConfig::default())
        .expect("scheduler starts");
    (engine, scheduler)
}

/// An agent run that has ended, on a scheduler since stopped.
pub struct Finished {
    /// Its state at the end.
    pub run: RunState,
    /// Its records, the chain verified.
    pub records: Vec<Record>,
}

/// Runs the agent loop of `model` with `tools` on a memory store, asked `question`, to
/// its end.
pub fn run_to_end(
    config: &AgentConfig,
    model: &str,
    tools: Vec<ToolSpec>,
    question: &str,
) -> Finished {
    let store = Arc::new(ledgerflow_kernel::MemoryStore::new());
    let (engine, scheduler) = start(store, config, agent_loop(model, tools));
    let started = scheduler.run(("agent", 1), input(question)).expect("run");
    let run = ended(&scheduler, started.run_id);
    scheduler.stop();
    let records = records(&engine, run.run_id);
    Finished { run, records }
}

/// The run once it has ended (or failed the test after [`WAIT`]).
pub fn ended(scheduler: &Scheduler, run: RunId) -> RunState {
    scheduler.await_end(run, WAIT).expect("the run ends")
}

/// The run's records, its chain verified.
pub fn records(engine: &Engine, run: RunId) -> Vec<Record> {
    let records = engine.records(run, 1, 10_000).expect("records");
    verify_chain(&records).expect("the chain verifies");
    records
}

/// The kinds of the run's records.
pub fn kinds(records: &[Record]) -> Vec<&str> {
    records.iter().map(Record::kind).collect()
}

/// The records of kind `kind` whose effect (or pending effect) is `effect_kind`.
pub fn effect_records<'a>(records: &'a [Record], kind: &str, effect_kind: &str) -> Vec<&'a Record> {
    let requested: Vec<String> = records
        .iter()
        .filter(|r| r.kind() == "effect_requested" && r.body()["effect"]["kind"] == effect_kind)
        .filter_map(|r| r.body()["idempotency_key"].as_str().map(str::to_owned))
        .collect();
    records
        .iter()
        .filter(|r| r.kind() == kind)
        .filter(|r| {
            r.body()["idempotency_key"]
                .as_str()
                .is_some_and(|k| requested.iter().any(|q| q == k))
        })
        .collect()
}

/// The whole ledger as its JSONL export.
pub fn export(records: &[Record]) -> String {
    let mut out = Vec::new();
    ledgerflow_ledger::export_jsonl(records, &mut out).expect("export");
    String::from_utf8(out).expect("utf-8")
}
