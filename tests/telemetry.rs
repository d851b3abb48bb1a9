//! The OpenTelemetry exporter (feature `otel`): a runtime's spans reach an OTLP/HTTP
//! collector — here a server on 127.0.0.1 in the test — as protobuf, named, with the
//! service name, and none of the payloads.

use std::time::Duration;

use ledgerflow::agent::stub::{StubReply, StubServer};
use ledgerflow::{Effect, ScheduledRuntime, StepContext, StepPlan, WorkflowSpec};
use serde_json::{json, Value};

#[test]
fn spans_of_ticks_commits_and_effects_reach_the_collector() {
    let collector = StubServer::start(|_| StubReply::Text(200, String::new())).expect("collector");
    let telemetry = ledgerflow::telemetry::export_otlp(
        &format!("{}/v1/traces", collector.url()),
        "ledgerflow-telemetry-test",
    )
    .expect("the exporter installs");

    let spec = WorkflowSpec::builder("charge", 1)
        .node("charge", |_: &mut StepContext<'_>| {
            StepPlan::effect(
                Effect::custom("charge_card", json!({ "card": "4242-secret-pan" })).result_key("r"),
            )
            .then_complete(json!("charged"))
        })
        .entry("charge")
        .build()
        .expect("spec");
    let runtime = ScheduledRuntime::builder()
        .memory()
        .register(spec)
        .register_effect("charge_card", |_: &ledgerflow::EffectCall<'_>| {
            ledgerflow::EffectOutcome::Completed(Value::from("ok"))
        })
        .start()
        .expect("runtime");
    let run = runtime.run(("charge", 1), json!({})).expect("run");
    let done = runtime
        .await_end(run.run_id, Duration::from_secs(10))
        .expect("ends");
    assert_eq!(done.output, Some(json!("charged")));
    runtime.stop().expect("stop");
    telemetry.flush().expect("flush");

    let requests = collector.requests();
    assert!(!requests.is_empty(), "the collector got the spans");
    let exports: Vec<_> = requests.iter().filter(|r| r.path == "/v1/traces").collect();
    assert_eq!(
        exports.len(),
        requests.len(),
        "every request is an OTLP traces export"
    );
    assert!(exports
        .iter()
        .all(|r| r.header("content-type") == Some("application/x-protobuf")));
    // Protobuf keeps strings as they are: the span names, service and fields are findable.
    let bodies: String = exports.iter().map(|r| r.body.as_str()).collect();
    for name in [
        "tick",
        "commit",
        "effect",
        "charge_card",
        "ledgerflow-telemetry-test",
    ] {
        assert!(bodies.contains(name), "no {name:?} in the exported spans");
    }
    assert!(
        bodies.contains(&run.run_id.to_string()),
        "spans carry the run id"
    );
    assert!(
        !bodies.contains("4242-secret-pan"),
        "payloads stay out of spans"
    );
}
