//! An auditor's view: export a run's ledger as JSONL, verify it with nothing but the
//! export, change one byte of a hashed field, and see verification fail at that record.
//!
//! Run it with `cargo run --example auditor`.

use std::sync::Arc;

use ledgerflow::ledger::{export_jsonl, import_jsonl, verify_chain};
use ledgerflow::{
    Effect, Engine, MemoryStore, SledStore, StepContext, StepPlan, Store, SystemClock, WorkflowSpec,
};
use serde_json::json;

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = common::store_dir("auditor");
    let store: Arc<dyn Store> = match &dir {
        Some(dir) => Arc::new(SledStore::open(dir)?),
        None => Arc::new(MemoryStore::new()),
    };
    // A small run to audit: a loan decision with a human approval.
    let engine = Engine::new(Arc::clone(&store), Arc::new(SystemClock));
    engine.register(
        WorkflowSpec::builder("loan", 1)
            .node("score", |ctx: &mut StepContext<'_>| {
                ctx.set("score", json!(712));
                StepPlan::effect(
                    Effect::ask_user(
                        "Approve a $5,000 loan at score 712?",
                        &["approve", "decline"],
                    )
                    .result_key("decision"),
                )
                .then_next("decide")
            })
            .node("decide", |ctx: &mut StepContext<'_>| {
                StepPlan::complete(json!({ "decision": ctx.var("decision").cloned() }))
            })
            .entry("score")
            .build()?,
    );
    let run = engine.start(
        ("loan", 1),
        json!({ "applicant": "A-1042", "amount": 5000 }),
    )?;
    let key = engine
        .tick(run)?
        .waiting
        .and_then(|w| w.wait_key)
        .ok_or("expected a wait")?;
    engine.resume(run, &key, json!("approve"))?;

    // 1. Export: one JSON object per record, every hashed field included.
    let mut export = Vec::new();
    export_jsonl(&engine.records(run, 1, 1_000)?, &mut export)?;
    let text = String::from_utf8(export)?;
    println!("exported {} records of run {run}:", text.lines().count());
    for line in text.lines() {
        println!("  {}…", &line[..line.len().min(110)]);
    }

    // 2. Verify the export alone (no store): recompute every hash and link.
    let records = import_jsonl(text.as_bytes())?;
    let head = verify_chain(&records)?.ok_or("empty export")?;
    println!("\nverified: {} records, head {}", head.seq, head.hash);

    // 3. Tamper: change one byte of the approval in record 3's body ("approve" → "bpprove").
    let tampered: Vec<String> = text
        .lines()
        .map(|line| {
            if line.contains("\"seq\":3,") {
                line.replacen("\"approve\"", "\"bpprove\"", 1)
            } else {
                line.to_owned()
            }
        })
        .collect();
    let records = import_jsonl(tampered.join("\n").as_bytes())?;
    match verify_chain(&records) {
        Ok(_) => return Err("a changed byte must not verify".into()),
        Err(e) => println!(
            "after changing one byte of record 3: verification fails at run {} seq {}: {}",
            e.run_id, e.seq, e.fault
        ),
    }
    println!("\nan auditor can check the same thing without Rust (pip install blake3 first):");
    println!("  python3 tools/ledger_verify.py verify EXPORT.jsonl");
    store.close()?;
    common::print_how_to_look(dir.as_ref());
    Ok(())
}
