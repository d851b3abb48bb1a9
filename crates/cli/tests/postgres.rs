//! The `ledgerflow` command on a PostgreSQL store (`--db postgres://…?schema=…`): listing,
//! answering, verifying and checking runs an application's engine wrote there, and a
//! schema that holds no store refused, not created. Skipped, saying why, on a machine
//! without PostgreSQL unless `LEDGERFLOW_REQUIRE_POSTGRES=1` (CI).

mod common;

use std::process::{Command, Output};
use std::sync::Arc;

use ledgerflow_kernel::{Engine, ManualClock, RunId, Store};
use ledgerflow_postgres::testing::{self, TestStore};
use serde_json::{json, Value};

fn ledgerflow(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ledgerflow"))
        .args(["--db", db, "--json"])
        .args(args)
        .output()
        .expect("run the binary")
}

fn ok_json(db: &str, args: &[&str]) -> Value {
    let out = ledgerflow(db, args);
    assert!(
        out.status.success(),
        "{args:?}: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

#[test]
fn the_cli_operates_and_verifies_a_postgres_store() {
    if let Some(reason) = testing::unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let test_store = TestStore::new().expect("a test store");
    let config = test_store.config().clone();
    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join("checkpoint.key");
    // The application signs its checkpoints; the operator's commands use the same key.
    test_store
        .sign_checkpoints_with(
            ledgerflow_sled::load_or_make_key(&key_file, test_store.origin()).expect("key"),
        )
        .expect("sign");
    let unsigned_db = format!("{}?schema={}", config.url, config.schema);
    let db = format!("{unsigned_db}&checkpoint_key={}", key_file.display());
    let engine = Engine::new(
        test_store.shared() as Arc<dyn Store>,
        Arc::new(ManualClock::new(1_700_000_000_000)),
    );
    engine.register(common::approval());
    let run = engine.run(("approve", 1), json!({})).expect("run").run_id;

    // Reads need no key; a write without it would leave an unsigned checkpoint: refused.
    let listed = ok_json(&unsigned_db, &["runs", "list", "--status", "waiting"]);
    let out = ledgerflow(
        &unsigned_db,
        &["respond", &run.to_string(), "--payload", "1"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signs its checkpoints"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(listed["runs"][0]["run_id"], json!(run), "{listed}");
    let answered = ok_json(&db, &["respond", &run.to_string(), "--payload", "\"yes\""]);
    assert_eq!(answered["run_id"], json!(run));
    // The application carries the run on with its code.
    let done = engine.tick(run).expect("tick");
    assert_eq!(done.output, Some(json!("yes")));
    let verified = ok_json(&db, &["ledger", "verify", &run.to_string()]);
    assert_eq!(verified["ok"], true, "{verified}");
    let checked = ok_json(&db, &["check"]);
    assert_eq!(checked["ok"], true, "{checked}");
    assert_eq!(checked["runs"], 1);
    // An export of every run verifies offline against its signed checkpoint.
    let key = ok_json(&unsigned_db, &["log", "key"]);
    let key = key["public_key"].as_str().expect("a public key").to_owned();
    let export = dir.path().join("all.jsonl");
    let export_arg = export.to_str().expect("utf-8");
    let exported = ok_json(
        &unsigned_db,
        &["ledger", "export", "--all", "--out", export_arg],
    );
    assert_eq!(exported["records"], exported["tree_size"], "{exported}");
    let verified = ok_json(
        &unsigned_db,
        &[
            "ledger",
            "verify",
            "--file",
            export_arg,
            "--public-key",
            &key,
        ],
    );
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["log"]["key_pinned"], true, "{verified}");
    let stats = ok_json(&db, &["stats"]);
    assert_eq!(stats["runs_by_status"]["completed"], 1, "{stats}");

    // A schema with no store in it: refused, and not created.
    let missing = format!(
        "{}?schema=lf_nothing_{}",
        config.url,
        RunId::new_v4().to_string().replace('-', "")
    );
    let out = ledgerflow(&missing, &["pause", &run.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    assert_eq!(error["error"]["code"], "missing", "{error}");
}
