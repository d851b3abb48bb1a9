//! `ScheduledRuntime` end to end on the sled store: run, respond, timers, stop, reopen.

use std::time::Duration;

use ledgerflow::{Effect, RunStatus, ScheduledRuntime, StepContext, StepPlan, WorkflowSpec};
use serde_json::json;

fn approval() -> WorkflowSpec {
    WorkflowSpec::builder("approval", 1)
        .node("ask", |_: &mut StepContext<'_>| {
            StepPlan::effect(Effect::ask_user("ok?", &["yes", "no"]).result_key("answer"))
                .then_next("wait")
        })
        .node("wait", |ctx: &mut StepContext<'_>| {
            StepPlan::effect(Effect::wait_until(ctx.now_ms + 50)).then_next("done")
        })
        .node("done", |ctx: &mut StepContext<'_>| {
            StepPlan::complete(ctx.var("answer").cloned().unwrap_or_default())
        })
        .entry("ask")
        .build()
        .expect("valid spec")
}

#[test]
fn runtime_runs_responds_fires_timers_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run_id = {
        let runtime = ScheduledRuntime::open(dir.path()).expect("open");
        runtime.register(approval());
        let feed = runtime.subscribe(100);
        let run = runtime.run(("approval", 1), json!({})).expect("run");
        assert_eq!(run.status, RunStatus::Waiting);
        // `run` commits the start with the steps up to the wait: one acknowledged commit,
        // reported once acknowledged.
        let reported = feed
            .recv_timeout(Duration::from_secs(10))
            .expect("the feed reports the commit");
        assert_eq!(
            (reported.head.seq, reported.status),
            (2, RunStatus::Waiting),
            "`started` and `waiting` in one commit"
        );
        runtime.stop().expect("stop");
        assert!(
            runtime.respond(run.run_id, json!("yes")).is_err(),
            "a stopped runtime refuses work"
        );
        run.run_id
    };
    let runtime = ScheduledRuntime::open(dir.path()).expect("reopen");
    runtime.register(approval());
    assert_eq!(
        runtime.engine().load(run_id).expect("load").status,
        RunStatus::Waiting
    );
    let after = runtime.respond(run_id, json!("yes")).expect("respond");
    assert_eq!(after.status, RunStatus::Waiting, "now on the timer");
    let done = runtime
        .await_end(run_id, Duration::from_secs(20))
        .expect("timer fires");
    assert_eq!(done.output, Some(json!("yes")));
    runtime.stop().expect("stop");
    let report = runtime.store().check().expect("check");
    assert_eq!(report.runs, 1);
    let stats = runtime.stats();
    assert_eq!((stats.timers_fired, stats.events_delivered), (1, 1));
}
