//! The workflows this crate's tests share.
// Each test file uses some of these.
#![allow(dead_code)]

use ledgerflow_kernel::{Effect, StepContext, StepPlan, WorkflowSpec};

/// `approval` v1: asks a person "approve?", then completes with the answer.
pub fn approval() -> WorkflowSpec {
    WorkflowSpec::builder("approval", 1)
        .node("ask", |_: &mut StepContext<'_>| {
            StepPlan::effect(Effect::ask_user("approve?", &[]).result_key("answer"))
                .then_next("done")
        })
        .node("done", |ctx: &mut StepContext<'_>| {
            StepPlan::complete(ctx.var("answer").cloned().unwrap_or_default())
        })
        .entry("ask")
        .build()
        .expect("spec")
}
