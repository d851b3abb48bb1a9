//! An auditor's view: export every run's ledger with the store's signed checkpoint, verify
//! it with nothing but the export and the public key, then tamper with it three ways —
//! change a byte, cut a run's tail, rewrite and re-hash a history — and see each caught.
//!
//! Run it with `cargo run --example auditor` (it keeps its store in
//! `./ledgerflow-examples/auditor`; checkpoints need a durable store, so `--memory` uses a
//! temporary directory instead).

use std::path::PathBuf;
use std::sync::Arc;

use ledgerflow::ledger::bundle::ProofBundle;
use ledgerflow::ledger::checkpoint::CheckpointKey;
use ledgerflow::ledger::{export_jsonl, import_jsonl, verify_chain, Record, RecordDraft};
use ledgerflow::{
    latest_checkpoint, log_leaves, public_key, Effect, Engine, RunId, SledStore, StepContext,
    StepPlan, Store, SystemClock, WorkflowSpec, PUBLIC_KEY_FILE,
};
use serde_json::json;

mod common;

/// Verifies an export the way an auditor does: every chain, then the proof file against
/// the key they trust. Returns what failed, if anything.
fn audit(records: &[Record], proof: &ProofBundle, key: &CheckpointKey) -> Result<String, String> {
    let mut runs: Vec<RunId> = records.iter().map(Record::run_id).collect();
    runs.dedup();
    for run in &runs {
        let chain: Vec<&Record> = records.iter().filter(|r| r.run_id() == *run).collect();
        verify_chain(chain).map_err(|e| format!("chain of run {run}: {e}"))?;
    }
    let coverage = proof
        .verify(records, Some(key))
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "{} runs, {} records; every leaf of the checkpoint (tree size {}) is in the export",
        runs.len(),
        records.len(),
        coverage.tree_size
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (dir, _temp): (PathBuf, Option<tempfile::TempDir>) = match common::store_dir("auditor") {
        Some(dir) => (dir, None),
        None => {
            let temp = tempfile::tempdir()?;
            println!(
                "(checkpoints need a durable store: using {})",
                temp.path().display()
            );
            (temp.path().join("store"), Some(temp))
        }
    };
    let store = Arc::new(SledStore::open(&dir)?);
    // A few runs to audit: loan decisions with a human approval.
    let engine = Engine::new(Arc::clone(&store) as Arc<dyn Store>, Arc::new(SystemClock));
    engine.register(
        WorkflowSpec::builder("loan", 1)
            .node("score", |ctx: &mut StepContext<'_>| {
                ctx.set("score", json!(712));
                StepPlan::effect(
                    Effect::ask_user("Approve the loan at score 712?", &["approve", "decline"])
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
    let mut loans = Vec::new();
    for (applicant, answer) in [
        ("A-1042", "approve"),
        ("A-1043", "decline"),
        ("A-1044", "approve"),
    ] {
        let run = engine.start(
            ("loan", 1),
            json!({ "applicant": applicant, "amount": 5000 }),
        )?;
        let key = engine
            .tick(run)?
            .waiting
            .and_then(|w| w.wait_key)
            .ok_or("expected a wait")?;
        engine.resume(run, &key, json!(answer))?;
        loans.push(run);
    }
    // Closing makes everything durable and signs a checkpoint of all of it.
    drop(engine);
    store.close()?;
    drop(store);

    // 1. Export every record, with the signed checkpoint and the leaf order beside it.
    let checkpoint = latest_checkpoint(&dir)?.ok_or("no checkpoint")?;
    let key = public_key(&dir)?.ok_or("the store signs no checkpoints")?;
    let reader = SledStore::open_for_inspection(&dir)?;
    let mut records = Vec::new();
    let mut runs: Vec<RunId> = log_leaves(&reader, checkpoint.head.size)?
        .into_iter()
        .map(|(run, _)| run)
        .collect();
    runs.sort();
    runs.dedup();
    for run in &runs {
        records.extend(reader.read_records(*run, 1, 1_000)?);
    }
    let proof = ProofBundle::complete(
        &checkpoint,
        Some(&key),
        log_leaves(&reader, checkpoint.head.size)?,
    );
    let mut jsonl = Vec::new();
    export_jsonl(&records, &mut jsonl)?;
    println!(
        "exported {} records of {} runs, with this checkpoint:\n\n{}",
        records.len(),
        runs.len(),
        checkpoint.note
    );
    println!(
        "the store's public key (publish it; auditors pin it):\n  {}\n",
        key.as_str()
    );

    // 2. The auditor verifies the export alone, against the key they trust.
    let exported = import_jsonl(jsonl.as_slice())?;
    println!("verified: {}", audit(&exported, &proof, &key)?);

    // 3a. Change one byte of a hashed field: that record's chain breaks.
    let changed: Vec<Record> = exported
        .iter()
        .map(|r| {
            if r.run_id() == loans[0] && r.seq() == 3 {
                let line = String::from_utf8(export_line(r)).unwrap_or_default();
                let line = line.replacen("\"approve\"", "\"bpprove\"", 1);
                import_jsonl(line.as_bytes())
                    .ok()
                    .and_then(|v| v.into_iter().next())
                    .unwrap_or_else(|| r.clone())
            } else {
                r.clone()
            }
        })
        .collect();
    report(
        "one byte of run 1's answer changed",
        audit(&changed, &proof, &key),
    )?;

    // 3b. Cut a run's tail: drop its `completed` record. Its chain alone still verifies.
    let cut: Vec<Record> = exported
        .iter()
        .filter(|r| !(r.run_id() == loans[1] && r.kind() == "completed"))
        .cloned()
        .collect();
    report("run 2's last record cut", audit(&cut, &proof, &key))?;

    // 3c. Rewrite a decision and recompute every hash after it: the chains verify again,
    //     but the records no longer hash to the root the store signed.
    let mut prev = ledgerflow::Hash::GENESIS;
    let rewritten: Vec<Record> = exported
        .iter()
        .map(|r| {
            if r.run_id() != loans[2] {
                return r.clone();
            }
            let body = if r.kind() == "resumed" {
                json!({ "wait_key": r.body()["wait_key"], "payload": "decline", "inbox_seq": null })
            } else {
                r.body().clone()
            };
            let sealed = RecordDraft {
                run_id: r.run_id(),
                seq: r.seq(),
                at_ms: r.at_ms(),
                kind: r.kind().to_owned(),
                body,
                state_hash: r.state_hash(),
            }
            .seal(prev);
            prev = sealed.hash();
            sealed
        })
        .collect();
    report(
        "run 3's decision rewritten and re-hashed",
        audit(&rewritten, &proof, &key),
    )?;

    println!("\nthe same with the command line, and without Rust (pip install blake3 first):");
    let db = dir.display();
    println!("  ledgerflow --db {db} ledger export --all --out loans.jsonl");
    println!("  ledgerflow ledger verify --file loans.jsonl --public-key @{db}/{PUBLIC_KEY_FILE}");
    println!(
        "  python3 tools/ledger_verify.py verify loans.jsonl --public-key @{db}/{PUBLIC_KEY_FILE}"
    );
    Ok(())
}

fn export_line(record: &Record) -> Vec<u8> {
    let mut line = Vec::new();
    let _ = export_jsonl(std::slice::from_ref(record), &mut line);
    line
}

/// Prints how a tampered export failed; a tampered export that verifies is an error.
fn report(what: &str, outcome: Result<String, String>) -> Result<(), Box<dyn std::error::Error>> {
    match outcome {
        Ok(_) => Err(format!("{what}: the tampered export verified").into()),
        Err(reason) => {
            println!("{what}: detected — {reason}");
            Ok(())
        }
    }
}
