//! The global log from the command line: read-only commands never change a byte of the
//! store (intact or damaged), and an export's proof file catches a cut tail, a deleted
//! run, a re-hashed history, a changed checkpoint and a foreign key.

mod common;

use common::{ledgerflow, ok_json};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use ledgerflow_kernel::{
    Effect, Engine, ManualClock, RunId, StepContext, StepPlan, Store, WorkflowSpec,
};
use ledgerflow_ledger::{export_jsonl, import_jsonl, Hash, Record, RecordDraft};
use ledgerflow_sled::SledStore;
use serde_json::{json, Value};

/// A new sled store at `db` and an engine on it (a manual clock).
fn open_engine(db: &Path) -> (Arc<SledStore>, Engine) {
    let store = Arc::new(SledStore::open(db).expect("create"));
    let engine = Engine::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::new(ManualClock::new(1_700_000_000_000)),
    );
    (store, engine)
}

/// Closes the store (making it durable and checkpointed) and lets go of it.
fn close(store: Arc<SledStore>, engine: Engine) {
    drop(engine);
    store.close().expect("close");
}

/// A store of `runs` completed runs (5 records each) and one waiting run.
fn store(runs: usize) -> (tempfile::TempDir, PathBuf, Vec<RunId>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let (store, engine) = open_engine(&db);
    engine.register(
        WorkflowSpec::builder("steps", 1)
            .node("a", |ctx: &mut StepContext<'_>| {
                ctx.set("a", json!(1));
                StepPlan::next("b")
            })
            .node("b", |ctx: &mut StepContext<'_>| {
                ctx.set("b", json!(2));
                StepPlan::next("c")
            })
            .node("c", |ctx: &mut StepContext<'_>| {
                ctx.set("c", json!(3));
                StepPlan::next("d")
            })
            .node("d", |_: &mut StepContext<'_>| {
                StepPlan::complete(json!("done"))
            })
            .entry("a")
            .build()
            .expect("spec"),
    );
    engine.register(
        WorkflowSpec::builder("wait", 1)
            .node("w", |_: &mut StepContext<'_>| {
                StepPlan::effect(Effect::wait_event("log-test").result_key("e")).then_next("w")
            })
            .entry("w")
            .build()
            .expect("spec"),
    );
    let mut ids = Vec::new();
    for _ in 0..runs {
        let run = engine.start(("steps", 1), json!({})).expect("start");
        engine.tick(run).expect("tick");
        ids.push(run);
    }
    let waiting = engine.start(("wait", 1), json!({})).expect("start");
    engine.tick(waiting).expect("tick");
    ids.push(waiting);
    close(store, engine);
    (dir, db, ids)
}

/// Every file of a directory, by path, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).expect("read dir") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_dir() {
                stack.push(entry.path());
            } else {
                files.insert(entry.path(), std::fs::read(entry.path()).expect("read"));
            }
        }
    }
    files
}

fn read_only_commands(run: &str, export: &str) -> Vec<Vec<String>> {
    let commands: [&[&str]; 14] = [
        &["runs", "list"],
        &["runs", "show", run],
        &["ledger", "show", run],
        &["ledger", "verify", "--all"],
        &["ledger", "verify", run],
        &["ledger", "export", "--all", "--out", export],
        &["events", "tail", "--from-start"],
        &["check"],
        &["stats"],
        &["snapshot", "list"],
        &["log", "checkpoint"],
        &["log", "key"],
        &["log", "prove", run],
        &["log", "consistency", "1"],
    ];
    commands
        .iter()
        .map(|c| c.iter().map(|s| (*s).to_owned()).collect())
        .collect()
}

#[test]
fn read_only_commands_never_change_the_store_intact_or_damaged() {
    let (dir, db, runs) = store(30);
    let export = dir.path().join("out.jsonl");
    let run = runs[0].to_string();
    let before = snapshot(&db);
    for command in read_only_commands(&run, export.to_str().expect("utf-8")) {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let out = ledgerflow(&db, &args);
        assert!(
            out.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            snapshot(&db) == before,
            "{command:?} changed the store's files"
        );
    }
    // Damage sled's log where its data is; the commands fail or not, but change nothing.
    let db_file = db.join("db");
    let mut bytes = std::fs::read(&db_file).expect("db");
    let used = bytes.iter().rposition(|b| *b != 0).expect("data");
    for at in [used / 3, used / 2] {
        bytes[at] ^= 0x5a;
    }
    std::fs::write(&db_file, &bytes).expect("write");
    // Without the commit log, which would redo what the damage cut (as it does after a
    // crash): sled's file is all there is, as once the log's segments were checkpointed.
    std::fs::remove_dir_all(db.join("wal")).expect("remove the commit log");
    let damaged = snapshot(&db);
    let mut refused = 0;
    for command in read_only_commands(&run, export.to_str().expect("utf-8")) {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let out = ledgerflow(&db, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{command:?}: {stderr}");
        if !out.status.success() {
            refused += 1;
        }
        assert!(
            snapshot(&db) == damaged,
            "{command:?} changed a damaged store's files"
        );
    }
    let check = ledgerflow(&db, &["check"]);
    assert_eq!(
        check.status.code(),
        Some(1),
        "check must not pass a damaged store"
    );
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("store corrupt"),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(refused > 0);
}

#[test]
fn a_store_open_in_another_process_is_not_copied_mid_write() {
    let (_dir, db, _) = store(1);
    let store = SledStore::open(&db).expect("open");
    let out = ledgerflow(&db, &["runs", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("open in another process"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(store);
}

/// `records` with `victim`'s bodies changed by `edit` (given each record's seq) and its
/// chain re-sealed from the first record on: what a forger who can rewrite a store does.
fn forge(records: &[Record], victim: RunId, edit: impl Fn(u64, &mut Value)) -> Vec<Record> {
    let mut prev = Hash::GENESIS;
    records
        .iter()
        .map(|r| {
            if r.run_id() != victim {
                return r.clone();
            }
            let mut body = r.body().clone();
            edit(r.seq(), &mut body);
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
        .collect()
}

fn records_of(path: &Path) -> Vec<Record> {
    import_jsonl(std::io::BufReader::new(
        std::fs::File::open(path).expect("open"),
    ))
    .expect("import")
}

fn write_records(path: &Path, records: &[Record]) {
    let mut out = Vec::new();
    export_jsonl(records, &mut out).expect("export");
    std::fs::write(path, out).expect("write");
}

/// Verifies `jsonl` against the original proof file with the store's key.
fn verify_tampered(db: &Path, dir: &Path, name: &str, records: &[Record]) -> Output {
    let path = dir.join(name);
    write_records(&path, records);
    let proof = dir.join("all.jsonl.proof.json");
    let key = format!("@{}", db.join("checkpoint.pub").display());
    ledgerflow(
        db,
        &[
            "ledger",
            "verify",
            "--file",
            path.to_str().expect("utf-8"),
            "--proof",
            proof.to_str().expect("utf-8"),
            "--public-key",
            &key,
        ],
    )
}

fn assert_fails(out: &Output, expect: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(expect), "{stdout} lacks {expect:?}");
}

#[test]
fn an_export_with_its_proof_file_detects_cuts_deletions_and_rewrites() {
    let (dir, db, runs) = store(3);
    let all = dir.path().join("all.jsonl");
    let all_arg = all.to_str().expect("utf-8");
    let exported = ok_json(&db, &["ledger", "export", "--all", "--out", all_arg]);
    assert_eq!(exported["tree_size"], json!(3 * 5 + 2));
    let key = format!("@{}", db.join("checkpoint.pub").display());
    let verified = ok_json(
        &db,
        &["ledger", "verify", "--file", all_arg, "--public-key", &key],
    );
    assert_eq!(verified["ok"], json!(true));
    assert_eq!(verified["log"]["covered"], json!(17));
    assert_eq!(verified["log"]["key_pinned"], json!(true));
    let records = records_of(&all);

    // A cut tail: the completed run loses its `completed` record; its chain still verifies.
    let victim = runs[1];
    let cut: Vec<Record> = records
        .iter()
        .filter(|r| !(r.run_id() == victim && r.seq() == 5))
        .cloned()
        .collect();
    assert_fails(
        &verify_tampered(&db, dir.path(), "cut.jsonl", &cut),
        &format!("record 5 of run {victim} is missing"),
    );
    // A deleted run.
    let deleted: Vec<Record> = records
        .iter()
        .filter(|r| r.run_id() != victim)
        .cloned()
        .collect();
    assert_fails(
        &verify_tampered(&db, dir.path(), "deleted.jsonl", &deleted),
        &format!("of run {victim} is missing"),
    );
    // A re-hashed history: a body changed and every later hash of the run recomputed.
    let rewritten = forge(&records, victim, |seq, body| {
        if seq == 2 {
            body["vars"] = json!({"set": {"a": 1000}});
        }
    });
    let out = verify_tampered(&db, dir.path(), "rehashed.jsonl", &rewritten);
    assert_fails(&out, "do not hash to the checkpoint's root");
    // (Replay catches it too, since the forger did not recompute state hashes; one who
    // did would still not match the signed root.)

    // Another key, a changed checkpoint.
    let other = tempfile::tempdir().expect("other");
    let other_db = other.path().join("db");
    drop(SledStore::open(&other_db).expect("other store"));
    let other_key = format!("@{}", other_db.join("checkpoint.pub").display());
    let out = ledgerflow(
        &db,
        &[
            "ledger",
            "verify",
            "--file",
            all_arg,
            "--public-key",
            &other_key,
        ],
    );
    assert_fails(&out, "does not verify with key");
    let proof_path = dir.path().join("all.jsonl.proof.json");
    let proof = std::fs::read_to_string(&proof_path).expect("proof");
    let mut bundle: Value = serde_json::from_str(&proof).expect("json");
    let note = bundle["checkpoint"].as_str().expect("note").to_owned();
    bundle["checkpoint"] = json!(note.replacen("\n17\n", "\n16\n", 1));
    bundle["tree_size"] = json!(16);
    bundle["leaves"].as_array_mut().expect("leaves").pop();
    std::fs::write(&proof_path, bundle.to_string()).expect("write");
    let out = ledgerflow(
        &db,
        &["ledger", "verify", "--file", all_arg, "--public-key", &key],
    );
    assert_fails(&out, "does not verify with key");
}

#[test]
fn a_single_run_export_carries_an_inclusion_proof_per_record() {
    let (dir, db, runs) = store(2);
    let one = dir.path().join("one.jsonl");
    let one_arg = one.to_str().expect("utf-8");
    let run = runs[0].to_string();
    ok_json(&db, &["ledger", "export", &run, "--out", one_arg]);
    let verified = ok_json(&db, &["ledger", "verify", "--file", one_arg]);
    assert_eq!(verified["log"]["covered"], json!(5));
    assert_eq!(verified["log"]["complete"], json!(false));
    assert_eq!(verified["log"]["key_pinned"], json!(false));
    // A record changed and re-hashed is no longer the leaf the proof names.
    let mut records = records_of(&one);
    let last = records.pop().expect("record");
    let resealed = RecordDraft {
        run_id: last.run_id(),
        seq: last.seq(),
        at_ms: last.at_ms() + 1,
        kind: last.kind().to_owned(),
        body: last.body().clone(),
        state_hash: last.state_hash(),
    }
    .seal(last.prev_hash());
    records.push(resealed);
    write_records(&one, &records);
    let out = ledgerflow(&db, &["ledger", "verify", "--file", one_arg]);
    assert_fails(&out, "is not leaf");
    let proved = ok_json(&db, &["log", "prove", &run, "--seq", "2"]);
    assert_eq!(proved["proofs"].as_array().map(Vec::len), Some(1));
    let consistency = ok_json(&db, &["log", "consistency", "3"]);
    assert_eq!(consistency["old_size"], json!(3));
    assert_eq!(consistency["tree_size"], json!(2 * 5 + 2));
}

/// A fork's and a subworkflow's first records cite a record of their parent; `verify
/// --file` checks the citation when the parent is in the export.
#[test]
fn verify_file_checks_fork_and_subworkflow_lineage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let (store, engine) = open_engine(&db);
    engine.register(
        WorkflowSpec::builder("child", 1)
            .node("c", |_: &mut StepContext<'_>| {
                StepPlan::complete(json!("child done"))
            })
            .entry("c")
            .build()
            .expect("spec"),
    );
    engine.register(
        WorkflowSpec::builder("parent", 1)
            .node("a", |ctx: &mut StepContext<'_>| {
                ctx.set("a", json!(1));
                StepPlan::effect(
                    Effect::start_subworkflow(
                        "child",
                        1,
                        json!({}),
                        ledgerflow_kernel::SubworkflowMode::Async,
                    )
                    .result_key("child"),
                )
                .then_next("b")
            })
            .node("b", |_: &mut StepContext<'_>| {
                StepPlan::complete(json!("parent done"))
            })
            .entry("a")
            .build()
            .expect("spec"),
    );
    let parent = engine.start(("parent", 1), json!({})).expect("start");
    engine.tick(parent).expect("tick");
    let fork = engine.fork(parent, 2).expect("fork");
    close(store, engine);
    let all = dir.path().join("lineage.jsonl");
    ok_json(
        &db,
        &[
            "ledger",
            "export",
            "--all",
            "--out",
            all.to_str().expect("utf-8"),
        ],
    );
    let records = records_of(&all);
    let child_first = records
        .iter()
        .find(|r| r.seq() == 1 && r.body()["parent"]["run_id"] == json!(parent.to_string()))
        .expect("the child's started record");
    assert_eq!(
        child_first.body()["parent"]["after"]["hash"],
        json!(records
            .iter()
            .find(|r| r.run_id() == parent && r.seq() == 1)
            .expect("parent record 1")
            .hash()
            .to_hex()),
        "the child cites the parent's last record when it was created"
    );
    // The whole export checks, lineage included.
    let no_proof = dir.path().join("plain.jsonl");
    write_records(&no_proof, &records);
    let plain = no_proof.to_str().expect("utf-8");
    assert_eq!(
        ok_json(&db, &["ledger", "verify", "--file", plain])["ok"],
        json!(true)
    );
    // Re-seal a run's chain with a wrong citation: the chain verifies, the lineage does not.
    for (victim, field) in [(fork, "from_record_hash"), (child_first.run_id(), "parent")] {
        let forged = forge(&records, victim, |seq, body| {
            if seq == 1 {
                let wrong = json!(Hash::of(b"another history").to_hex());
                if field == "parent" {
                    body["parent"]["after"]["hash"] = wrong;
                } else {
                    body[field] = wrong;
                }
            }
        });
        write_records(&no_proof, &forged);
        let out = ledgerflow(&db, &["ledger", "verify", "--file", plain]);
        assert_fails(
            &out,
            &format!("FAIL  run {victim} seq 1: lineage: cites record"),
        );
    }
}

/// A value over the artifact threshold is stored apart; `artifact get` returns its bytes
/// (its canonical JSON, which hash to the cited digest), and an export with
/// `--with-artifacts` carries them so `verify --file` checks them.
#[test]
fn artifacts_are_exported_and_checked_against_their_digests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let (store, engine) = open_engine(&db);
    engine.register(
        WorkflowSpec::builder("big", 1)
            .node("a", |_: &mut StepContext<'_>| {
                StepPlan::complete(json!("ok"))
            })
            .entry("a")
            .build()
            .expect("spec"),
    );
    let big: Vec<Value> = (0..2_000)
        .map(|i| json!({ "i": i, "text": "a line of a long document" }))
        .collect();
    let run = engine
        .start(("big", 1), json!({ "doc": big }))
        .expect("start");
    engine.tick(run).expect("tick");
    close(store, engine);

    let out = dir.path().join("with.jsonl");
    let out_arg = out.to_str().expect("utf-8");
    let exported = ok_json(
        &db,
        &[
            "ledger",
            "export",
            "--all",
            "--with-artifacts",
            "--out",
            out_arg,
        ],
    );
    assert_eq!(exported["artifacts"]["written"], json!(1));
    let cites: Vec<_> = records_of(&out)
        .iter()
        .flat_map(|r| ledgerflow_ledger::artifact_cites(r.body()))
        .collect();
    assert!(!cites.is_empty());
    let digest = cites[0].digest.to_hex();
    // `artifact get` gives the bytes: the value's canonical JSON.
    let got = ledgerflow(&db, &["artifact", "get", &digest]);
    assert!(got.status.success());
    assert_eq!(Hash::of(&got.stdout), cites[0].digest);
    assert_eq!(got.stdout, ledgerflow_ledger::canonical_json(&json!(big)));
    let verified = ok_json(&db, &["ledger", "verify", "--file", out_arg]);
    assert_eq!(verified["log"]["artifacts"]["ok"], json!(1));
    // A changed artifact fails verification.
    let artifact = dir.path().join("with.jsonl.artifacts").join(&digest);
    let mut bytes = std::fs::read(&artifact).expect("artifact");
    bytes[10] ^= 1;
    std::fs::write(&artifact, bytes).expect("write");
    let out = ledgerflow(&db, &["ledger", "verify", "--file", out_arg]);
    assert_fails(&out, &format!("FAIL  artifact {digest}"));
    // An unknown digest is a clear error.
    let missing = ledgerflow(&db, &["artifact", "get", &"0".repeat(64)]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no artifact"));
}
