//! Running the real `ledgerflow` binary from the CLI's tests.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

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
