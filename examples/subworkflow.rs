//! Fan-out and join: a parent starts three child runs (async subworkflows), each child
//! reports its result to the parent with `emit_event`, and the parent waits for all three
//! and joins them. Events that arrive before the parent waits wait in the durable inbox.
//!
//! Run it with `cargo run --example subworkflow`.

use std::time::Duration;

use ledgerflow::{Effect, RunStatus, StepContext, StepPlan, SubworkflowMode, WorkflowSpec};
use serde_json::{json, Value};

const CITIES: [&str; 3] = ["Lisbon", "Osaka", "Quito"];

fn child() -> Result<WorkflowSpec, ledgerflow::SpecError> {
    WorkflowSpec::builder("forecast", 1)
        .node("fetch", |ctx: &mut StepContext<'_>| {
            let city = ctx
                .var("city")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            // A real child would call a weather API through an effect; this one computes.
            let temp_c = city.bytes().map(u32::from).sum::<u32>() % 30;
            let report = json!({ "city": city, "temp_c": temp_c });
            let key = ctx
                .var("reply_to")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            StepPlan::effect(Effect::emit_event(key, report.clone())).then_complete(report)
        })
        .entry("fetch")
        .build()
}

fn parent() -> Result<WorkflowSpec, ledgerflow::SpecError> {
    let mut builder = WorkflowSpec::builder("trip", 1);
    for (i, city) in CITIES.iter().enumerate() {
        let next = if i + 1 < CITIES.len() {
            format!("spawn{}", i + 1)
        } else {
            "gather0".to_owned()
        };
        builder = builder.node(format!("spawn{i}"), move |ctx: &mut StepContext<'_>| {
            let reply_to = format!("forecast:{}:{i}", ctx.run_id);
            let input = json!({ "city": city, "reply_to": reply_to });
            StepPlan::effect(
                Effect::start_subworkflow("forecast", 1, input, SubworkflowMode::Async)
                    .result_key(format!("child{i}")),
            )
            .then_next(next.clone())
        });
    }
    for i in 0..CITIES.len() {
        let next = if i + 1 < CITIES.len() {
            format!("gather{}", i + 1)
        } else {
            "join".to_owned()
        };
        builder = builder.node(format!("gather{i}"), move |ctx: &mut StepContext<'_>| {
            StepPlan::effect(
                Effect::wait_event(format!("forecast:{}:{i}", ctx.run_id))
                    .result_key(format!("report{i}")),
            )
            .then_next(next.clone())
        });
    }
    builder
        .node("join", |ctx: &mut StepContext<'_>| {
            let reports: Vec<Value> = (0..CITIES.len())
                .filter_map(|i| ctx.var(&format!("report{i}")).cloned())
                .collect();
            let warmest = reports.iter().max_by_key(|r| r["temp_c"].as_u64()).cloned();
            StepPlan::complete(json!({ "reports": reports, "warmest": warmest }))
        })
        .entry("spawn0")
        .build()
}

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (builder, dir) = common::runtime("subworkflow");
    let runtime = builder.register(child()?).register(parent()?).start()?;
    let run = runtime.run(("trip", 1), json!({}))?;
    let done = runtime.await_end(run.run_id, Duration::from_secs(10))?;
    let children = runtime.engine().store().children(run.run_id, None, 10)?;
    println!("parent {} started {} children:", run.run_id, children.len());
    for child in &children {
        let state = runtime.engine().load(*child)?;
        println!(
            "  child {child}: {} -> {}",
            state.status,
            state.output.unwrap_or_default()
        );
    }
    let output = done.output.clone().unwrap_or_default();
    println!("joined ({}): warmest is {}", done.status, output["warmest"]);
    runtime.stop()?;
    common::print_how_to_look(dir.as_ref());
    if done.status != RunStatus::Completed || output["reports"].as_array().map(Vec::len) != Some(3)
    {
        return Err("the parent should join three reports".into());
    }
    Ok(())
}
