//! `ledgerflow log …` and the proof file of `ledger export`: signed checkpoints of the
//! global Merkle log, inclusion and consistency proofs, and checking an export against
//! its proof file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ledgerflow_kernel::{Record, RunId, Store};
use ledgerflow_ledger::bundle::{ProofBundle, PROOF_FILE_BYTES_MAX};
use ledgerflow_ledger::checkpoint::{CheckpointKey, SignedCheckpoint};
use ledgerflow_ledger::merkle::tree_hash_hex;
use ledgerflow_ledger::{artifact_cites, artifact_matches, ArtifactCite};
use ledgerflow_sled::PUBLIC_KEY_FILE;
use serde_json::{json, Value};

use crate::errors::InputError;
use crate::output::print_json;
use crate::{Cli, LogCommand, VerifyArgs};

/// Where `ledger export --out OUT` writes its proof file: `OUT.proof.json`.
pub fn proof_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".proof.json");
    PathBuf::from(name)
}

/// The store's latest signed checkpoint.
fn checkpoint(cli: &Cli, store: &dyn Store) -> Result<SignedCheckpoint> {
    store.latest_checkpoint()?.with_context(|| {
        format!(
            "{} has no checkpoint yet; a store writes one after every durable commit and on \
             close, so open it once with this version of ledgerflow",
            location(cli)
        )
    })
}

/// The store's location as messages show it.
fn location(cli: &Cli) -> String {
    cli.db()
        .map_or_else(|e| e.to_string(), |l| crate::commands::shown(&l))
}

/// The store's public key (`checkpoint.pub`), if it signs its checkpoints.
fn store_key(cli: &Cli, store: &dyn Store) -> Result<Option<CheckpointKey>> {
    store
        .checkpoint_public_key()
        .with_context(|| format!("reading the key of {}", location(cli)))
}

/// The strings of a JSON array (a proof's hashes).
fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

/// Runs a `log` subcommand on a store opened for reading.
pub fn run(cli: &Cli, store: &dyn Store, command: &LogCommand) -> Result<ExitCode> {
    match command {
        LogCommand::Checkpoint => {
            let latest = checkpoint(cli, store)?;
            let key = store_key(cli, store)?;
            let verified = key.as_ref().map(|k| latest.verify(k).is_ok());
            if cli.json {
                print_json(&json!({
                    "origin": latest.head.origin,
                    "tree_size": latest.head.size,
                    "root": tree_hash_hex(&latest.head.root),
                    "signed": latest.signed,
                    "verified_with_store_key": verified,
                    "note": latest.note,
                }));
            } else {
                crate::out!("{}", latest.note.trim_end_matches('\n'));
            }
        }
        LogCommand::Key => match store_key(cli, store)? {
            Some(key) => {
                if cli.json {
                    print_json(&json!({ "public_key": key.as_str() }));
                } else {
                    crate::out!("{}", key.as_str());
                }
            }
            None => bail!(
                "{} has no {PUBLIC_KEY_FILE}: its checkpoints are unsigned",
                location(cli)
            ),
        },
        LogCommand::Prove { run, seq } => {
            // The checkpoint first: its absence is said in the CLI's words.
            checkpoint(cli, store)?;
            let run = crate::commands::run_id(store, run)?;
            let proofs = ledgerflow_server::proofs::inclusion(store, run, *seq)?;
            if cli.json {
                print_json(&proofs);
            } else {
                crate::out!(
                    "tree size {}, root {}",
                    proofs["tree_size"],
                    proofs["root"].as_str().unwrap_or_default()
                );
                for p in proofs["proofs"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    let path = strings(&p["path"]);
                    crate::out!(
                        "seq {} (record {}) is leaf {}: path {}",
                        p["seq"],
                        p["record_hash"].as_str().unwrap_or_default(),
                        p["leaf_index"],
                        path.join(",")
                    );
                }
                let uncovered = &proofs["not_yet_covered"];
                if uncovered.as_array().is_some_and(|u| !u.is_empty()) {
                    crate::out!("not yet covered by a checkpoint: seq {uncovered}");
                }
            }
        }
        LogCommand::Consistency { old_size } => {
            checkpoint(cli, store)?;
            let proof =
                ledgerflow_server::proofs::consistency(store, *old_size).map_err(|e| match e {
                    ledgerflow_kernel::store::Error::InvalidInput(m) => {
                        anyhow::Error::new(InputError(m))
                    }
                    other => other.into(),
                })?;
            if cli.json {
                print_json(&proof);
            } else {
                let path = strings(&proof["proof"]);
                crate::out!(
                    "old size {old_size}, root {}",
                    proof["old_root"].as_str().unwrap_or_default()
                );
                crate::out!(
                    "new size {}, root {}",
                    proof["tree_size"],
                    proof["root"].as_str().unwrap_or_default()
                );
                crate::out!("proof {}", path.join(","));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The proof file of an export: of the whole log (`exported` `None`, an export of all
/// runs), else inclusion proofs of the `exported` records.
pub fn export_proof(
    cli: &Cli,
    store: &dyn Store,
    exported: Option<&[(RunId, u64)]>,
) -> Result<ProofBundle> {
    // The checkpoint first: its absence is said in the CLI's words.
    checkpoint(cli, store)?;
    Ok(ledgerflow_server::proofs::bundle(store, exported)?)
}

/// What checking an export against its proof file found.
pub struct ExportCheck {
    /// The export does not match its proof file.
    pub failed: bool,
    /// For `--json`.
    pub json: Value,
    /// For people.
    pub lines: Vec<String>,
}

/// A public key argument: the key's text, or `@PATH`.
fn key_arg(text: &str) -> Result<CheckpointKey> {
    let text = match text.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading the key {path}"))?
        }
        None => text.to_owned(),
    };
    CheckpointKey::parse(&text).map_err(|e| InputError(format!("--public-key: {e}")).into())
}

/// Checks an export's records against its proof file (`--proof`, or FILE.proof.json).
pub fn verify_export_proof(
    file: &Path,
    args: &VerifyArgs,
    records: &[Record],
) -> Result<ExportCheck> {
    let key = args.public_key.as_deref().map(key_arg).transpose()?;
    let path = match &args.proof {
        Some(path) => path.clone(),
        None => proof_path(file),
    };
    if args.proof.is_none() && !path.exists() {
        if key.is_some() {
            return Err(InputError(format!(
                "--public-key needs the export's proof file, and {} does not exist",
                path.display()
            ))
            .into());
        }
        return Ok(ExportCheck {
            failed: false,
            json: json!({ "proof": null }),
            lines: vec![format!(
                "note: no proof file ({}): each chain verifies on its own, but a cut tail, a \
                 deleted run or a re-hashed history cannot be detected",
                path.display()
            )],
        });
    }
    let size = std::fs::metadata(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > PROOF_FILE_BYTES_MAX {
        bail!(
            "{} is {size} bytes, over {PROOF_FILE_BYTES_MAX}",
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let bundle = ProofBundle::from_json(&text).with_context(|| format!("{}", path.display()))?;
    Ok(match bundle.verify(records, key.as_ref()) {
        Ok(coverage) => {
            let signer = match (&coverage.key, coverage.key_pinned) {
                (Some(key), true) => format!("signature verified with the given key {key}"),
                (Some(key), false) => format!(
                    "signature verified with the key in the proof file {key} (give --public-key to check who signed)"
                ),
                (None, _) => "unsigned checkpoint".to_owned(),
            };
            let mut lines = vec![format!(
                "ok: checkpoint of tree size {}: {signer}; {} records proven in the signed log{}",
                coverage.tree_size,
                coverage.covered,
                if bundle.complete {
                    " (every leaf is in the export: nothing cut or deleted)"
                } else {
                    ""
                }
            )];
            if coverage.uncovered > 0 {
                lines.push(format!(
                    "warning: {} exported records are not covered by the checkpoint",
                    coverage.uncovered
                ));
            }
            ExportCheck {
                failed: false,
                json: json!({
                    "proof": path,
                    "ok": true,
                    "tree_size": coverage.tree_size,
                    "complete": bundle.complete,
                    "covered": coverage.covered,
                    "uncovered": coverage.uncovered,
                    "key": coverage.key,
                    "key_pinned": coverage.key_pinned,
                }),
                lines,
            }
        }
        Err(e) => ExportCheck {
            failed: true,
            json: json!({ "proof": path, "ok": false, "reason": e.to_string() }),
            lines: vec![format!("FAIL  against {}: {e}", path.display())],
        },
    })
}

/// Where an export's artifacts go: `OUT.artifacts/`.
pub fn artifacts_dir(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".artifacts");
    PathBuf::from(name)
}

/// Checks the artifacts an export carries (`FILE.artifacts/`, if present) against the
/// digests and sizes its records cite.
pub fn verify_export_artifacts(
    file: &Path,
    records: &[Record],
    check: &mut ExportCheck,
) -> Result<()> {
    let dir = artifacts_dir(file);
    if !dir.is_dir() {
        return Ok(());
    }
    let cites: std::collections::BTreeSet<ArtifactCite> = records
        .iter()
        .flat_map(|r| artifact_cites(r.body()))
        .collect();
    let (mut ok, mut absent, mut bad) = (0u64, 0u64, Vec::new());
    for cite in &cites {
        let path = dir.join(cite.digest.to_hex());
        match std::fs::read(&path) {
            Ok(bytes) if artifact_matches(cite, &bytes) => ok += 1,
            Ok(_) => bad.push(cite.digest.to_hex()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => absent += 1,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    if bad.is_empty() {
        check.lines.push(format!(
            "ok: {ok} artifacts match their digests{}",
            if absent > 0 {
                format!(" ({absent} cited artifacts are not in {})", dir.display())
            } else {
                String::new()
            }
        ));
    } else {
        check.failed = true;
        for digest in &bad {
            check
                .lines
                .push(format!("FAIL  artifact {digest}: its bytes do not match the digest or size the ledger cites"));
        }
    }
    check.json["artifacts"] = json!({ "ok": ok, "absent": absent, "mismatched": bad });
    Ok(())
}
