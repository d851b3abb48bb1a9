//! `ledgerflow serve` and `--url`: the real binary serves a store over HTTP on loopback,
//! and the same binary's commands go through it, with a token; what they do is in the
//! ledger, named after the token.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;

use ledgerflow_kernel::{Engine, ManualClock, RunId, Store};
use ledgerflow_sled::SledStore;
use serde_json::{json, Value};

const SECRET: &str = "ops-secret-0123456789abcdef";

/// A store with one run waiting for a person's answer.
fn store(db: &Path) -> RunId {
    let store = Arc::new(SledStore::open(db).expect("create"));
    let engine = Engine::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::new(ManualClock::new(1_700_000_000_000)),
    );
    engine.register(common::approval());
    // A value over the artifact threshold (8 KiB) is stored apart, by digest.
    let run = engine
        .run(("approve", 1), json!({ "doc": "x".repeat(10_000) }))
        .expect("run")
        .run_id;
    drop(engine);
    store.close().expect("close");
    run
}

struct Serving {
    child: Child,
    url: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: &Path, tokens: &Path) -> Serving {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledgerflow"))
        .arg("--db")
        .arg(db)
        .args(["--json", "serve", "--listen", "127.0.0.1:0", "--tokens"])
        .arg(tokens)
        .stdout(Stdio::piped())
        .spawn()
        .expect("serve");
    let stdout = child.stdout.take().expect("stdout");
    // Killed on drop from here on, even if reading the address fails.
    let mut serving = Serving {
        child,
        url: String::new(),
    };
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the address line");
    let started: Value = serde_json::from_str(&line).expect("one JSON line");
    serving.url = format!("http://{}", started["listening"].as_str().expect("address"));
    serving
}

fn through(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ledgerflow"));
    command
        .args(["--url", url, "--json"])
        .args(args)
        .env_remove("LEDGERFLOW_TOKEN");
    if let Some(token) = token {
        command.env("LEDGERFLOW_TOKEN", token);
    }
    command.output().expect("run")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn error_code(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let error: Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    error["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn commands_go_through_a_server_with_a_token_and_the_ledger_names_it() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("db");
    let run = store(&db);
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("ops operate {SECRET}\n")).expect("tokens");
    let server = serve(&db, &tokens);

    let listed = json_of(&through(
        &server.url,
        Some(SECRET),
        &["runs", "list", "--status", "waiting"],
    ));
    assert_eq!(listed["runs"][0]["run_id"], json!(run));
    let shown = json_of(&through(
        &server.url,
        Some(SECRET),
        &["runs", "show", &run.to_string()],
    ));
    assert_eq!(shown["waiting"]["prompt"], "Ship it?");

    assert_eq!(
        error_code(&through(&server.url, None, &["runs", "list"])),
        "unauthorized"
    );
    assert_eq!(
        error_code(&through(
            &server.url,
            Some(SECRET),
            &["runs", "show", "1234"]
        )),
        "invalid_input"
    );
    assert_eq!(
        error_code(&through(
            &server.url,
            Some(SECRET),
            &["respond", &RunId::new_v4().to_string(), "--payload", "1"]
        )),
        "not_found"
    );

    let answered = json_of(&through(
        &server.url,
        Some(SECRET),
        &["respond", &run.to_string(), "--payload", "\"yes\""],
    ));
    assert_eq!(answered["run_id"], json!(run));
    let records = json_of(&through(
        &server.url,
        Some(SECRET),
        &["ledger", "show", &run.to_string()],
    ));
    let resumed: Vec<&Value> = records["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["kind"] == "resumed")
        .collect();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0]["body"]["by"], "ops");
    let verified = json_of(&through(
        &server.url,
        Some(SECRET),
        &["ledger", "verify", &run.to_string()],
    ));
    assert_eq!(verified["ok"], true);
    let checked = json_of(&through(&server.url, Some(SECRET), &["check"]));
    assert_eq!(checked["ok"], true, "{checked}");
    // Proofs for auditors through the API: every record is proven in the signed
    // checkpoint (or not covered yet), against the checkpoint's root.
    let checkpoint = json_of(&through(&server.url, Some(SECRET), &["log", "checkpoint"]));
    let proofs = json_of(&through(
        &server.url,
        Some(SECRET),
        &["log", "prove", &run.to_string()],
    ));
    let proven = proofs["proofs"].as_array().expect("proofs").len();
    let uncovered = proofs["not_yet_covered"]
        .as_array()
        .expect("uncovered")
        .len();
    assert_eq!(proven + uncovered, record_count(&records));
    assert!(proven > 0, "{proofs}");
    assert_eq!(proofs["root"], checkpoint["root"]);
    let consistency = json_of(&through(
        &server.url,
        Some(SECRET),
        &["log", "consistency", "1"],
    ));
    assert_eq!(consistency["tree_size"], checkpoint["tree_size"]);
    assert_eq!(
        error_code(&through(
            &server.url,
            Some(SECRET),
            &["log", "consistency", "999999"]
        )),
        "invalid_input"
    );
    let key = json_of(&through(&server.url, Some(SECRET), &["log", "key"]));
    assert_eq!(key["public_key"], checkpoint["public_key"]);
    assert!(key["public_key"].as_str().is_some_and(|k| !k.is_empty()));
    let digest = shown["vars"]["doc"]["$artifact"]["digest"]
        .as_str()
        .expect("an artifact")
        .to_owned();
    let fetched = dir.path().join("doc.json");
    json_of(&through(
        &server.url,
        Some(SECRET),
        &[
            "artifact",
            "get",
            &digest,
            "--out",
            fetched.to_str().expect("utf-8"),
        ],
    ));
    let bytes = std::fs::read(&fetched).expect("written");
    assert_eq!(blake3::hash(&bytes).to_hex().as_str(), digest);
    assert_eq!(
        error_code(&through(
            &server.url,
            Some(SECRET),
            &["artifact", "get", "zz"]
        )),
        "invalid_input"
    );
    assert_eq!(
        error_code(&through(
            &server.url,
            Some(SECRET),
            &["artifact", "get", &"ab".repeat(32)]
        )),
        "not_found"
    );
    export_through_the_server(&server.url, dir.path(), run, &digest, &key);
    let snapshot = json_of(&through(
        &server.url,
        Some(SECRET),
        &[
            "snapshot",
            "create",
            &run.to_string(),
            "answered",
            "--tag",
            "audit",
        ],
    ));
    assert_eq!(snapshot["name"], "answered");
    let snapshots = json_of(&through(
        &server.url,
        Some(SECRET),
        &["snapshot", "list", "--tag", "audit"],
    ));
    assert_eq!(snapshots[0]["run_id"], json!(run), "{snapshots}");
    assert_eq!(snapshots[0]["seq"], snapshot["seq"]);
    let stats = json_of(&through(&server.url, Some(SECRET), &["stats"]));
    assert_eq!(stats["mode"], "store");
    drop(server);

    // With the server gone, the store itself shows the same answer.
    let out = Command::new(env!("CARGO_BIN_EXE_ledgerflow"))
        .arg("--db")
        .arg(&db)
        .args(["--json", "ledger", "verify", &run.to_string()])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ledger export` through the server: of every run and of one, with the artifacts; each
/// export verifies offline against its proof file and the store's key, and a cut tail in
/// it is caught.
fn export_through_the_server(url: &str, dir: &Path, run: RunId, digest: &str, key: &Value) {
    let all = dir.join("all.jsonl");
    let all_arg = all.to_str().expect("utf-8");
    let exported = json_of(&through(
        url,
        Some(SECRET),
        &[
            "ledger",
            "export",
            "--all",
            "--with-artifacts",
            "--out",
            all_arg,
        ],
    ));
    assert_eq!(exported["runs"], 1, "{exported}");
    assert_eq!(exported["artifacts"]["written"], 1, "{exported}");
    let artifact = std::fs::read(dir.join("all.jsonl.artifacts").join(digest)).expect("artifact");
    assert_eq!(blake3::hash(&artifact).to_hex().as_str(), digest);
    let key_arg = key["public_key"].as_str().expect("key");
    let verify = |file: &str| {
        through(
            url,
            None,
            &["ledger", "verify", "--file", file, "--public-key", key_arg],
        )
    };
    // Offline: no token needed, the server is not asked.
    let verified = json_of(&verify(all_arg));
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["log"]["complete"], true, "{verified}");
    assert_eq!(verified["log"]["key_pinned"], true, "{verified}");
    assert_eq!(verified["log"]["covered"], exported["tree_size"]);
    assert_eq!(verified["log"]["artifacts"]["ok"], 1, "{verified}");

    let one = dir.join("one.jsonl");
    let one_arg = one.to_str().expect("utf-8");
    let exported = json_of(&through(
        url,
        Some(SECRET),
        &["ledger", "export", &run.to_string(), "--out", one_arg],
    ));
    assert_eq!(exported["runs"], 1);
    let verified = json_of(&verify(one_arg));
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["log"]["complete"], false, "{verified}");
    assert_eq!(
        verified["log"]["covered"], exported["records"],
        "{verified}"
    );

    // The last record cut from the complete export: its chain still verifies, the proof
    // file does not.
    let text = std::fs::read_to_string(&all).expect("export");
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&all, format!("{}\n", lines[..lines.len() - 1].join("\n"))).expect("cut");
    let out = verify(all_arg);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is missing from the export"));
}

/// How many records a `ledger show --json` listed.
fn record_count(records: &Value) -> usize {
    records["records"].as_array().map_or(0, Vec::len)
}

#[test]
fn serve_refuses_a_public_address_without_tokens_and_a_bad_tokens_file() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("db");
    store(&db);
    let refuse = |args: &[&str], expect: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_ledgerflow"))
            .arg("--db")
            .arg(&db)
            .arg("serve")
            .args(args)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expect), "{stderr:?} lacks {expect:?}");
    };
    refuse(&["--listen", "0.0.0.0:0"], "without tokens");
    let bad = dir.path().join("bad-tokens");
    std::fs::write(&bad, "ops admin 0123456789abcdef0123\n").expect("write");
    refuse(&["--tokens", bad.to_str().expect("utf-8")], "line 1");
}
