//! Running the real `ledgerflow` binary from the CLI's tests, and the workflow they share.
// Each test file uses some of these helpers.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use ledgerflow_kernel::{Effect, StepContext, StepPlan, WorkflowSpec};
use serde_json::Value;

/// `approve` v1: asks a person "Ship it?" (yes or no), then completes with the answer.
pub fn approval() -> WorkflowSpec {
    WorkflowSpec::builder("approve", 1)
        .node("ask", |_: &mut StepContext<'_>| {
            StepPlan::effect(Effect::ask_user("Ship it?", &["yes", "no"]).result_key("answer"))
                .then_next("done")
        })
        .node("done", |ctx: &mut StepContext<'_>| {
            StepPlan::complete(ctx.var("answer").cloned().unwrap_or_default())
        })
        .entry("ask")
        .build()
        .expect("spec")
}

/// Runs `ledgerflow --db DB ARGS…`.
pub fn ledgerflow(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ledgerflow"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run the binary")
}

/// Runs a command with `--json` that must succeed, and returns its one JSON document.
pub fn ok_json(db: &Path, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = ledgerflow(db, &full);
    assert!(
        out.status.success(),
        "{args:?} failed: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: stdout is not one JSON document: {e}"))
}
