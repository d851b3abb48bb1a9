//! A ready-made tool-using agent loop as a workflow: think (`llm_call`), ask a person
//! before the tools that need approval (`ask_user`), act (`tool_calls`), observe (the
//! results join the conversation), until the model answers in text.

use ledgerflow_kernel::{Effect, RetryPolicy, SpecError, StepContext, StepPlan, WorkflowSpec};
use serde_json::{json, Map, Value};

use crate::config::{default_agent_retry, AgentEffects};
use crate::error::ErrorCode;
use crate::llm::{ChatRequest, LlmResponse, Message, ToolSpec};
use crate::tools::{ToolResult, ToolResults};

/// The workflow of a tool-using agent. Input: `{"messages": [...]}` (the conversation's
/// first turns) or `{"prompt": "..."}` (one user message). Output: `{"answer": text,
/// "turns": model calls}`. Vars while it runs: `messages` (the conversation), `answer`
/// (the model's last response), `tool_results`, `approved`, `turns`.
///
/// ```
/// use ledgerflow_agent::{AgentLoop, ToolRegistry};
///
/// let tools = ToolRegistry::new();
/// let spec = AgentLoop::new("support-agent", 1, "gpt-4o-mini")
///     .system("You help customers with their orders.")
///     .tools(tools.specs())
///     .approve("refund")
///     .build()?;
/// assert_eq!(spec.entry_node(), "think");
/// # Ok::<(), ledgerflow_kernel::SpecError>(())
/// ```
#[derive(Clone, Debug)]
pub struct AgentLoop {
    workflow_id: String,
    version: u32,
    model: String,
    system: Option<String>,
    tools: Vec<ToolSpec>,
    approve: Vec<String>,
    parameters: Map<String, Value>,
    turns_max: u64,
    retry: RetryPolicy,
}

impl AgentLoop {
    /// The loop registered as (`workflow_id`, `version`), asking `model`; at most 16 model
    /// calls a run.
    pub fn new(workflow_id: impl Into<String>, version: u32, model: impl Into<String>) -> Self {
        AgentLoop {
            workflow_id: workflow_id.into(),
            version,
            model: model.into(),
            system: None,
            tools: Vec::new(),
            approve: Vec::new(),
            parameters: Map::new(),
            turns_max: 16,
            retry: default_agent_retry(),
        }
    }

    /// A system message put before the input's messages.
    pub fn system(mut self, text: impl Into<String>) -> Self {
        self.system = Some(text.into());
        self
    }

    /// The tools offered to the model.
    pub fn tools(mut self, tools: Vec<ToolSpec>) -> Self {
        self.tools = tools;
        self
    }

    /// Asks a person before any call of tool `name` runs: the run waits (`ask_user`,
    /// choices `yes` / `no`); on `no` the calls are answered `declined` and the model is
    /// told.
    pub fn approve(mut self, name: impl Into<String>) -> Self {
        self.approve.push(name.into());
        self
    }

    /// A model parameter (`temperature`, `max_tokens`, …).
    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.parameters.insert(name.into(), value.into());
        self
    }

    /// Most model calls a run makes; one more fails the run (`node_failed`).
    pub fn turns_max(mut self, turns: u64) -> Self {
        self.turns_max = turns;
        self
    }

    /// How the loop's effects retry (default [`default_agent_retry`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The workflow spec.
    pub fn build(self) -> Result<WorkflowSpec, SpecError> {
        let think = self.clone();
        let decide = self.clone();
        let act = self.clone();
        WorkflowSpec::builder(self.workflow_id.clone(), self.version)
            .node("think", move |ctx: &mut StepContext<'_>| think.think(ctx))
            .node("decide", move |ctx: &mut StepContext<'_>| {
                decide.decide(ctx)
            })
            .node("act", move |ctx: &mut StepContext<'_>| act.act(ctx))
            .node("observe", observe)
            .entry("think")
            .build()
    }

    fn think(&self, ctx: &mut StepContext<'_>) -> StepPlan {
        if ctx.var("turns").is_none() {
            // The first turn: the system message, the input's messages, its prompt.
            let mut first = Vec::new();
            if let Some(system) = &self.system {
                first.push(json!(Message::system(system.clone())));
            }
            first.extend(as_list(ctx.var("messages")));
            if let Some(Value::String(prompt)) = ctx.vars.remove("prompt") {
                first.push(json!(Message::user(prompt)));
            }
            ctx.set("messages", Value::Array(first));
        }
        let turns = ctx.var("turns").and_then(Value::as_u64).unwrap_or(0);
        if turns >= self.turns_max {
            return StepPlan::fail(format!(
                "the agent made {turns} model calls without a final answer (turns_max {})",
                self.turns_max
            ));
        }
        ctx.set("turns", json!(turns + 1));
        let messages = match serde_json::from_value(Value::Array(as_list(ctx.var("messages")))) {
            Ok(messages) => messages,
            Err(e) => return StepPlan::fail(format!("vars.messages is not a conversation: {e}")),
        };
        let mut request = ChatRequest::new(self.model.clone(), messages).tools(self.tools.clone());
        request.parameters = self.parameters.clone();
        StepPlan::effect(
            Effect::llm_call(&request)
                .retry(self.retry)
                .result_key("answer"),
        )
        .then_next("decide")
    }

    fn decide(&self, ctx: &mut StepContext<'_>) -> StepPlan {
        let answer = match answer(ctx) {
            Ok(answer) => answer,
            Err(why) => return StepPlan::fail(why),
        };
        push(ctx, &Message::assistant(&answer));
        ctx.vars.remove("approved");
        if answer.tool_calls.is_empty() {
            return StepPlan::complete(json!({
                "answer": answer.content,
                "turns": ctx.var("turns").cloned().unwrap_or(json!(0)),
            }));
        }
        let needs: Vec<&str> = answer
            .tool_calls
            .iter()
            .filter(|c| self.approve.contains(&c.name))
            .map(|c| c.name.as_str())
            .collect();
        if needs.is_empty() {
            return StepPlan::next("act");
        }
        let described: Vec<String> = answer
            .tool_calls
            .iter()
            .map(|c| format!("{}({})", c.name, c.arguments))
            .collect();
        let prompt = format!("The agent wants to call {}. Allow?", described.join(", "));
        StepPlan::effect(Effect::ask_user(prompt, &["yes", "no"]).result_key("approved"))
            .then_next("act")
    }

    fn act(&self, ctx: &mut StepContext<'_>) -> StepPlan {
        let answer = match answer(ctx) {
            Ok(answer) => answer,
            Err(why) => return StepPlan::fail(why),
        };
        let declined = matches!(ctx.var("approved"), Some(v) if v != "yes");
        if declined {
            let results = answer
                .tool_calls
                .iter()
                .map(|c| ToolResult::failed(c, ErrorCode::Declined, "a person declined this call"))
                .collect();
            ctx.set("tool_results", json!(ToolResults { results }));
            return StepPlan::next("observe");
        }
        StepPlan::effect(
            Effect::tool_calls(&answer.tool_calls)
                .retry(self.retry)
                .result_key("tool_results"),
        )
        .then_next("observe")
    }
}

fn observe(ctx: &mut StepContext<'_>) -> StepPlan {
    let results = match ctx.var("tool_results").map(ToolResults::from_value) {
        Some(Ok(results)) => results,
        Some(Err(e)) => return StepPlan::fail(format!("vars.tool_results: {e}")),
        None => return StepPlan::fail("no tool results in vars"),
    };
    for result in &results.results {
        push(ctx, &Message::tool(result));
    }
    StepPlan::next("think")
}

/// The model's last response in `vars`, or why there is none (the run fails with it).
fn answer(ctx: &StepContext<'_>) -> Result<LlmResponse, String> {
    match ctx.var("answer").map(LlmResponse::from_value) {
        Some(Ok(answer)) => Ok(answer),
        Some(Err(e)) => Err(format!("vars.answer: {e}")),
        None => Err("no model answer in vars".to_owned()),
    }
}

fn as_list(value: Option<&Value>) -> Vec<Value> {
    value.and_then(Value::as_array).cloned().unwrap_or_default()
}

fn push(ctx: &mut StepContext<'_>, message: &Message) {
    let mut messages = as_list(ctx.var("messages"));
    messages.push(json!(message));
    ctx.set("messages", Value::Array(messages));
}
