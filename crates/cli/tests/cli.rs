//! Runs the real `ledgerflow` binary against a store made by the libraries: listings,
//! operator commands, verification (including a tampered export), and bad input.

mod common;

use common::{ledgerflow, ok_json};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ledgerflow_kernel::{
    Effect, Engine, ManualClock, RunId, RunStatus, StepContext, StepPlan, Store, WorkflowSpec,
};
use ledgerflow_sled::SledStore;
use serde_json::{json, Value};

struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
    asking: RunId,
    done: RunId,
    waiting_event: RunId,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let store = Arc::new(SledStore::open(&db).expect("create"));
    let engine = Engine::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::new(ManualClock::new(1_700_000_000_000)),
    );
    engine.register(common::approval());
    engine.register(
        WorkflowSpec::builder("listen", 1)
            .node("wait", |_: &mut StepContext<'_>| {
                StepPlan::effect(Effect::wait_event("evt-c").result_key("event"))
                    .then_complete(json!("heard"))
            })
            .entry("wait")
            .build()
            .expect("spec"),
    );
    let asking = engine
        .start(("approve", 1), json!({ "amount": 5 }))
        .expect("start");
    engine.tick(asking).expect("tick");
    let done = engine.start(("approve", 1), json!({})).expect("start");
    engine.tick(done).expect("tick");
    let key = engine
        .load(done)
        .expect("load")
        .waiting
        .and_then(|w| w.wait_key)
        .expect("key");
    engine.resume(done, &key, json!("no")).expect("resume");
    let waiting_event = engine.start(("listen", 1), json!({})).expect("start");
    engine.tick(waiting_event).expect("tick");
    drop(engine);
    store.close().expect("close");
    drop(store);
    Fixture {
        _dir: dir,
        db,
        asking,
        done,
        waiting_event,
    }
}

/// A failing command: exit code 1, one line on stderr saying what was wrong, no panic.
fn fails(db: &Path, args: &[&str], expect: &str) {
    let out = ledgerflow(db, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.contains(expect),
        "{args:?}: stderr {stderr:?} lacks {expect:?}"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{args:?}: one line, got {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{args:?}");
}

#[test]
fn lists_and_shows_runs_with_the_documented_fields() {
    let f = fixture();
    let list = ok_json(&f.db, &["runs", "list"]);
    let runs = list["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3);
    for run in runs {
        for key in [
            "run_id",
            "workflow_id",
            "version",
            "status",
            "paused",
            "seq",
            "created_at",
            "updated_at",
        ] {
            assert!(run.get(key).is_some(), "missing {key} in {run}");
        }
    }
    let waiting = ok_json(&f.db, &["runs", "list", "--status", "waiting"]);
    assert_eq!(waiting["runs"].as_array().map(Vec::len), Some(2));
    let by_workflow = ok_json(
        &f.db,
        &["runs", "list", "--workflow", "approve", "--limit", "1"],
    );
    assert_eq!(by_workflow["runs"].as_array().map(Vec::len), Some(1));
    let cursor = by_workflow["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let next = ok_json(
        &f.db,
        &[
            "runs",
            "list",
            "--workflow",
            "approve",
            "--limit",
            "1",
            "--cursor",
            &cursor,
        ],
    );
    assert_eq!(next["runs"].as_array().map(Vec::len), Some(1));
    let show = ok_json(&f.db, &["runs", "show", &f.asking.to_string()]);
    assert_eq!(show["status"], json!("waiting"));
    assert_eq!(show["waiting"]["prompt"], json!("Ship it?"));
    assert_eq!(show["seq"], json!(2));
    let human = ledgerflow(&f.db, &["runs", "list"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("approve@1"));
}

#[test]
fn respond_emit_and_operator_commands_record_in_the_ledger() {
    let f = fixture();
    let responded = ok_json(
        &f.db,
        &["respond", &f.asking.to_string(), "--payload", "\"yes\""],
    );
    assert_eq!(
        responded["status"],
        json!("running"),
        "resumed; the application runs the next step"
    );
    let resumed = ok_json(&f.db, &["emit", "evt-c", "--payload", "{\"x\": 1}"]);
    assert_eq!(resumed["delivered"], json!("resumed"));
    assert_eq!(
        resumed["status"],
        json!("completed"),
        "the continuation completes without a node"
    );
    let queued = ledgerflow(&f.db, &["emit", "nobody-waits", "--payload", "1"]);
    assert!(String::from_utf8_lossy(&queued.stdout).contains("queued in its inbox"));
    ok_json(&f.db, &["pause", &f.asking.to_string()]);
    let shown = ok_json(&f.db, &["runs", "show", &f.asking.to_string()]);
    assert_eq!(shown["paused"], json!(true));
    ok_json(&f.db, &["unpause", &f.asking.to_string()]);
    let cancelled = ok_json(
        &f.db,
        &["cancel", &f.asking.to_string(), "--reason", "test"],
    );
    assert_eq!(
        (cancelled["status"].clone(), cancelled["changed"].clone()),
        (json!("cancelled"), json!(true))
    );
    let again = ok_json(&f.db, &["cancel", &f.done.to_string()]);
    assert_eq!(
        (again["status"].clone(), again["changed"].clone()),
        (json!("completed"), json!(false))
    );
    let ledger = ok_json(&f.db, &["ledger", "show", &f.asking.to_string()]);
    let kinds: Vec<&str> = ledger
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "started",
            "waiting",
            "resumed",
            "paused",
            "unpaused",
            "cancelled"
        ]
    );
    let check = ok_json(&f.db, &["check"]);
    assert_eq!(check["ok"], json!(true));
    let events = ok_json(&f.db, &["events", "tail", "--from-start"]);
    assert!(events["events"].as_array().map_or(0, Vec::len) >= 12);
    let stats = ok_json(&f.db, &["stats"]);
    assert_eq!(stats["runs_by_status"]["completed"], json!(2));
    // The store's own view agrees.
    let store = SledStore::open(&f.db).expect("reopen");
    assert_eq!(
        store.load(f.waiting_event).expect("load").map(|s| s.status),
        Some(RunStatus::Completed)
    );
}

#[test]
fn snapshots_and_fork() {
    let f = fixture();
    let run = f.asking.to_string();
    let created = ok_json(
        &f.db,
        &[
            "snapshot",
            "create",
            &run,
            "before-answer",
            "--tag",
            "audit",
        ],
    );
    assert_eq!(created["seq"], json!(2));
    let listed = ok_json(&f.db, &["snapshot", "list", "--tag", "audit"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let fork = ok_json(&f.db, &["fork", &run, "--snapshot", "before-answer"]);
    assert_eq!(fork["status"], json!("waiting"));
    let at = ok_json(&f.db, &["fork", &run, "--at", "1"]);
    assert_eq!(at["status"], json!("running"));
    fails(&f.db, &["fork", &run, "--at", "99"], "not 99");
}

#[test]
fn verification_of_store_and_export_names_the_bad_record() {
    let f = fixture();
    assert_eq!(
        ok_json(&f.db, &["ledger", "verify", &f.done.to_string()])["ok"],
        json!(true)
    );
    assert_eq!(
        ok_json(&f.db, &["ledger", "verify", "--all", "--verbose"])["runs"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let export = f.db.with_extension("jsonl");
    let export_arg = export.to_str().expect("utf-8");
    ok_json(&f.db, &["ledger", "export", "--all", "--out", export_arg]);
    let verified = ok_json(&f.db, &["ledger", "verify", "--file", export_arg]);
    assert_eq!(verified["ok"], json!(true));

    // Change one byte of a hashed field (the kind of the third record of some run).
    let text = std::fs::read_to_string(&export).expect("export");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let victim = lines
        .iter()
        .position(|l| l.contains("\"kind\":\"resumed\""))
        .expect("a resumed record");
    lines[victim] = lines[victim].replacen("\"kind\":\"resumed\"", "\"kind\":\"resumeD\"", 1);
    let bad = f.db.with_extension("bad.jsonl");
    std::fs::write(&bad, lines.join("\n") + "\n").expect("write");
    let victim_record: Value = serde_json::from_str(&lines[victim]).expect("json");
    let out = ledgerflow(
        &f.db,
        &["ledger", "verify", "--file", bad.to_str().expect("utf-8")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = format!(
        "FAIL  run {} seq {}",
        victim_record["run_id"].as_str().expect("id"),
        victim_record["seq"]
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(stdout.contains("hash mismatch"), "{stdout}");
    // No store needed for an export.
    let out = ledgerflow(
        Path::new("/nonexistent"),
        &["ledger", "verify", "--file", export_arg],
    );
    assert!(out.status.success());
}

#[test]
fn bad_input_gets_one_clear_line_and_exit_code_1() {
    let f = fixture();
    fails(
        &f.db,
        &["emit", "k", "--payload", "{nope"],
        "invalid JSON payload",
    );
    fails(&f.db, &["runs", "show", "not-a-uuid"], "invalid run id");
    fails(
        &f.db,
        &["runs", "show", &RunId::new_v4().to_string()],
        "not found",
    );
    fails(
        &f.db,
        &["runs", "list", "--limit", "100000"],
        "--limit must be between 1 and 10000",
    );
    fails(
        &f.db,
        &["runs", "list", "--status", "sleeping"],
        "unknown status",
    );
    fails(
        &f.db,
        &["runs", "list", "--cursor", "garbage"],
        "is not a query cursor",
    );
    fails(
        &f.db,
        &["respond", &f.done.to_string(), "--payload", "1"],
        "is not waiting for an answer: it waits for nothing: it has ended (completed)",
    );
    fails(&f.db.join("missing"), &["runs", "list"], "store missing");
    fails(
        Path::new("mysql://db/ledger"),
        &["runs", "list"],
        "no store for the scheme \"mysql\" is built in",
    );
    fails(
        Path::new("memory:"),
        &["runs", "list"],
        "cannot be opened again",
    );
    // A location with the scheme names the same store as its directory.
    let located = format!("sled:{}", f.db.display());
    let listed = ok_json(Path::new(&located), &["runs", "list"]);
    assert_eq!(listed, ok_json(&f.db, &["runs", "list"]));
    assert_eq!(listed["runs"].as_array().map(Vec::len), Some(3), "{listed}");
    let usage = ledgerflow(&f.db, &["ledger", "verify"]);
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
}

/// A store with `runs` runs of `approve`, created one second apart (durability off while
/// filling it; closed durably), waiting for an answer.
fn store_of(runs: usize) -> (tempfile::TempDir, PathBuf, Vec<RunId>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let config = ledgerflow_sled::SledConfig {
        durability: ledgerflow_sled::Durability::None,
        ..Default::default()
    };
    let store = Arc::new(SledStore::open_with(&db, config).expect("create"));
    let clock = ManualClock::new(1_700_000_000_000);
    let engine = Engine::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::new(clock.clone()),
    );
    engine.register(common::approval());
    let ids = (0..runs)
        .map(|i| {
            clock.set_ms(1_700_000_000_000 + 1_000 * i as i64);
            let run = engine
                .start(("approve", 1), json!({ "n": i, "note": "x".repeat(200) }))
                .expect("start");
            engine.tick(run).expect("tick");
            run
        })
        .collect();
    drop(engine);
    store.close().expect("close");
    (dir, db, ids)
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let (_dir, db, _) = store_of(400);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledgerflow"))
        .arg("--db")
        .arg(&db)
        .args(["--json", "runs", "list", "--limit", "400"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    drop(child.stdout.take()); // the reader goes away, as `| head -1` does
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "quiet: {stderr}");
    assert_eq!(out.status.code(), Some(141), "as if killed by SIGPIPE");
    // The copy of the store the read command made is gone, though it exited early.
    let prefix = format!("ledgerflow-inspect-{pid}-");
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .expect("temp dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "inspection copies left behind: {left:?}");
}

#[test]
fn runs_list_is_newest_first_with_order_time_filters_and_prefixes() {
    let (_dir, db, ids) = store_of(5);
    let listed = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["runs", "list"];
        full.extend_from_slice(args);
        ok_json(&db, &full)["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .map(|r| r["run_id"].as_str().expect("id").to_owned())
            .collect()
    };
    let as_text = |ids: &[RunId]| ids.iter().map(RunId::to_string).collect::<Vec<_>>();
    let mut newest = ids.clone();
    newest.reverse();
    assert_eq!(listed(&[]), as_text(&newest), "newest first by default");
    assert_eq!(listed(&["--order", "oldest"]), as_text(&ids));
    // Paging keeps the order.
    let page = ok_json(&db, &["runs", "list", "--limit", "2"]);
    let cursor = page["next_cursor"].as_str().expect("more").to_owned();
    assert_eq!(
        listed(&["--limit", "2", "--cursor", &cursor]),
        as_text(&newest[2..4])
    );
    // Created at 1_700_000_001_000 ..= 1_700_000_003_000: runs 1, 2, 3.
    assert_eq!(
        listed(&[
            "--since",
            "1700000001000",
            "--until",
            "2023-11-14T22:13:23Z"
        ]),
        as_text(&[ids[3], ids[2], ids[1]])
    );
    fails(
        &db,
        &["runs", "list", "--since", "yesterday"],
        "not an RFC 3339 time",
    );
    // A run id prefix that names one run.
    let full = ids[0].to_string();
    let shown = ok_json(&db, &["runs", "show", &full[..8]]);
    assert_eq!(shown["run_id"], json!(full));
    fails(&db, &["runs", "show", "ab"], "invalid run id");
    let unknown = if full.starts_with('0') {
        "ffffffff"
    } else {
        "00000000"
    };
    fails(&db, &["runs", "show", unknown], "no run id starts with");
}

#[test]
fn payloads_come_from_files_or_stdin() {
    let f = fixture();
    let file = f.db.with_extension("answer.json");
    std::fs::write(&file, "\"yes\"").expect("write");
    let answered = ok_json(
        &f.db,
        &[
            "respond",
            &f.asking.to_string(),
            "--payload-file",
            file.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(answered["status"], json!("running"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledgerflow"))
        .arg("--db")
        .arg(&f.db)
        .args(["--json", "emit", "evt-c", "--payload-file", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(br#"{"from": "stdin"}"#).expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let delivered: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(delivered["delivered"], json!("resumed"));
    assert_eq!(delivered["run_id"], json!(f.waiting_event.to_string()));
    fails(
        &f.db,
        &["emit", "k", "--payload-file", "/nonexistent/p.json"],
        "reading the payload",
    );
    fails(
        &f.db,
        &["emit", "k", "--payload", "{not json"],
        "invalid JSON payload in --payload",
    );
    let usage = ledgerflow(
        &f.db,
        &["emit", "k", "--payload", "1", "--payload-file", "-"],
    );
    assert_eq!(usage.status.code(), Some(2), "one or the other");
}

#[test]
fn json_errors_are_one_object_with_a_stable_code() {
    let f = fixture();
    let json_error = |args: &[&str], code: &str, exit: i32| {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = ledgerflow(&f.db, &full);
        assert_eq!(out.status.code(), Some(exit), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        let error: Value = serde_json::from_str(stderr.trim_end()).expect("one JSON object");
        assert_eq!(error["error"]["code"], json!(code), "{stderr}");
        assert!(error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    };
    json_error(
        &["runs", "show", &RunId::new_v4().to_string()],
        "not_found",
        1,
    );
    json_error(
        &["respond", &f.done.to_string(), "--payload", "1"],
        "invalid_state",
        1,
    );
    json_error(
        &["runs", "list", "--status", "sleeping"],
        "invalid_input",
        1,
    );
    json_error(&["emit", "k", "--payload", "{"], "invalid_input", 1);
    json_error(&["ledger", "verify"], "usage", 2);
    json_error(&["bench", "steps", "--db", "x"], "invalid_input", 1);
    let out = ledgerflow(&f.db.join("missing"), &["--json", "runs", "list"]);
    let error: Value = serde_json::from_slice(&out.stderr).expect("json");
    assert_eq!(error["error"]["code"], json!("missing"));
}

#[test]
fn tables_messages_and_summaries_read_well() {
    let f = fixture();
    let shown = ledgerflow(&f.db, &["ledger", "show", &f.asking.to_string()]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.lines().next().is_some_and(|h| h.contains("BODY")),
        "{text}"
    );
    assert!(text.contains("\"amount\":5"), "record bodies shown: {text}");
    let verified = ledgerflow(&f.db, &["ledger", "verify", "--all"]);
    assert!(verified.status.success());
    let text = String::from_utf8_lossy(&verified.stdout);
    assert_eq!(text.lines().count(), 1, "a summary only: {text}");
    assert!(text.starts_with("ok: 3 runs verified"), "{text}");
    let verbose = ledgerflow(&f.db, &["ledger", "verify", "--all", "--verbose"]);
    assert_eq!(String::from_utf8_lossy(&verbose.stdout).lines().count(), 4);
    fails(
        &f.db,
        &["snapshot", "create", &f.asking.to_string(), ""],
        "the name given is empty",
    );
    fails(
        &f.db,
        &["bench", "steps", "--db", "elsewhere"],
        "give --bench-db DIR",
    );
    std::fs::write(f.db.join("conf"), [0xff, 0xfe, 0x00, 0x80]).expect("damage conf");
    let damaged = std::fs::read(f.db.join("conf")).expect("conf");
    fails(&f.db, &["runs", "list"], "store corrupt");
    fails(&f.db, &["runs", "list"], "settings file is damaged");
    assert_eq!(
        std::fs::read(f.db.join("conf")).expect("conf"),
        damaged,
        "the damaged file is left as it was, for the operator"
    );
    std::fs::write(f.db.join("conf"), vec![0xffu8; 64]).expect("damage conf");
    fails(&f.db, &["runs", "list"], "checksum does not match");
}
