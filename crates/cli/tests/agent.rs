//! An agent run's ledger through the real `ledgerflow` binary: `ledger show` prints each
//! model call's prompt and answer and each tool call's result as a person reads them, the
//! chain verifies, and its export verifies without the store.

mod common;

use std::sync::Arc;

use ledgerflow_agent::{
    AgentConfig, AgentLoop, CallContext, ChatRequest, LlmResponse, Role, ToolCall, ToolRegistry,
    LLM_CALL, TOOL_CALLS,
};
use ledgerflow_kernel::{Engine, ManualClock, RunStatus, Store};
use ledgerflow_sled::SledStore;
use serde_json::json;

#[test]
fn ledger_show_prints_prompts_answers_and_tool_results() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let model = |request: &ChatRequest, _: &CallContext| {
        let told = request.messages.iter().rev().find(|m| m.role == Role::Tool);
        Ok(match told {
            None => LlmResponse::calling(
                "tiny-local",
                vec![ToolCall {
                    id: "c1".into(),
                    name: "lookup_order".into(),
                    arguments: json!({"customer": "c-17"}),
                }],
            ),
            Some(m) => LlmResponse::text(
                "tiny-local",
                format!("Your order: {}", m.content.clone().unwrap_or_default()),
            ),
        })
    };
    let tools = ToolRegistry::new().tool("lookup_order", "Finds an order", json!(null), |_, _| {
        Ok(json!("o-991"))
    });
    let config = AgentConfig::local(model, tools.clone());
    let run = {
        let store = Arc::new(SledStore::open(&db).expect("create"));
        let engine = Engine::new(
            store as Arc<dyn Store>,
            Arc::new(ManualClock::new(1_700_000_000_000)),
        );
        let (llm, tool_calls) = config.handlers();
        engine.register_effect(LLM_CALL, llm).expect("llm_call");
        engine
            .register_effect(TOOL_CALLS, tool_calls)
            .expect("tool_calls");
        engine.register(
            AgentLoop::new("agent", 1, "tiny-local")
                .tools(tools.specs())
                .build()
                .expect("spec"),
        );
        let run = engine
            .start(("agent", 1), json!({ "prompt": "Where is my order?" }))
            .expect("start");
        let mut state = engine.tick(run).expect("tick");
        for _ in 0..20 {
            if state.status != RunStatus::Running {
                break;
            }
            state = engine.tick(run).expect("tick");
        }
        assert_eq!(state.status, RunStatus::Completed, "{state:?}");
        run
    };

    let shown = common::ledgerflow(&db, &["ledger", "show", &run.to_string()]);
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("llm_call tiny-local (1 messages), last user: Where is my order?"),
        "{text}"
    );
    assert!(
        text.contains("calls lookup_order({\"customer\":\"c-17\"})"),
        "{text}"
    );
    assert!(text.contains("tool_calls lookup_order("), "{text}");
    assert!(
        text.contains("tool results: lookup_order → \"o-991\""),
        "{text}"
    );
    assert!(text.contains("answer from tiny-local (0 tokens,"), "{text}");
    assert!(text.contains("Your order: \"o-991\""), "{text}");
    let verified = common::ledgerflow(&db, &["ledger", "verify", &run.to_string()]);
    assert!(verified.status.success(), "{verified:?}");

    // An auditor's copy: the export, with its proof and artifacts, verifies on its own.
    let out = dir.path().join("agent.jsonl");
    let out_text = out.to_string_lossy().into_owned();
    let exported = common::ledgerflow(
        &db,
        &[
            "ledger",
            "export",
            &run.to_string(),
            "--out",
            &out_text,
            "--with-artifacts",
        ],
    );
    assert!(exported.status.success(), "{exported:?}");
    let exported_text = std::fs::read_to_string(&out).expect("the export");
    assert!(
        exported_text.contains("Where is my order?"),
        "the prompt is in the export"
    );
    let offline = common::ledgerflow(&db, &["ledger", "verify", "--file", &out_text]);
    assert!(offline.status.success(), "{offline:?}");
}
