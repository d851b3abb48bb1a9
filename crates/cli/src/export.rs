//! `ledger export`'s files, one writer whether the records come from the store or through
//! `--url`: the records as JSONL, the proof file beside them (`OUT.proof.json`) and, with
//! `--with-artifacts`, the artifacts they cite (`OUT.artifacts/<digest>`).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufWriter;

use anyhow::{anyhow, Context, Result};
use ledgerflow_kernel::{Hash, Record, RunId};
use ledgerflow_ledger::bundle::ProofBundle;
use ledgerflow_ledger::{artifact_cites, export_jsonl, ArtifactCite};
use serde_json::json;

use crate::log::{artifacts_dir, proof_path};
use crate::{Cli, ExportArgs};

/// An export being written.
pub struct Export<'a> {
    args: &'a ExportArgs,
    out: BufWriter<File>,
    runs: usize,
    exported: Vec<(RunId, u64)>,
    cites: BTreeSet<ArtifactCite>,
}

impl<'a> Export<'a> {
    /// Creates `--out` (truncating it).
    pub fn create(args: &'a ExportArgs) -> Result<Export<'a>> {
        let file = File::create(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        Ok(Export {
            args,
            out: BufWriter::new(file),
            runs: 0,
            exported: Vec::new(),
            cites: BTreeSet::new(),
        })
    }

    /// Appends one run's records.
    pub fn run(&mut self, records: &[Record]) -> Result<()> {
        export_jsonl(records, &mut self.out)
            .with_context(|| format!("writing {}", self.args.out.display()))?;
        self.runs += 1;
        self.exported
            .extend(records.iter().map(|r| (r.run_id(), r.seq())));
        if self.args.with_artifacts {
            self.cites
                .extend(records.iter().flat_map(|r| artifact_cites(r.body())));
        }
        Ok(())
    }

    /// `(run, seq)` of every record written so far, in order.
    pub fn exported(&self) -> &[(RunId, u64)] {
        &self.exported
    }

    /// Syncs the JSONL, writes the cited artifacts (`artifact` reads one: `None` when the
    /// store no longer holds it) and the proof file, and reports what was written.
    pub fn finish(
        self,
        cli: &Cli,
        proof: &ProofBundle,
        mut artifact: impl FnMut(&Hash) -> Result<Option<Vec<u8>>>,
    ) -> Result<()> {
        let out_path = &self.args.out;
        self.out
            .into_inner()
            .map_err(|e| anyhow!("writing {}: {e}", out_path.display()))?
            .sync_all()
            .with_context(|| format!("syncing {}", out_path.display()))?;
        let artifacts = if self.args.with_artifacts {
            let dir = artifacts_dir(out_path);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let (mut written, mut purged) = (0u64, 0u64);
            for cite in &self.cites {
                match artifact(&cite.digest)? {
                    Some(bytes) => {
                        let path = dir.join(cite.digest.to_hex());
                        std::fs::write(&path, bytes)
                            .with_context(|| format!("writing {}", path.display()))?;
                        written += 1;
                    }
                    None => purged += 1,
                }
            }
            Some((dir, written, purged))
        } else {
            None
        };
        let proof_path = proof_path(out_path);
        std::fs::write(&proof_path, proof.to_json())
            .with_context(|| format!("writing {}", proof_path.display()))?;
        let records = self.exported.len();
        let note = match &artifacts {
            Some((dir, written, purged)) => format!(
                "; {written} artifacts in {}{}",
                dir.display(),
                if *purged > 0 {
                    format!(" ({purged} cited artifacts are no longer stored)")
                } else {
                    String::new()
                }
            ),
            None => String::new(),
        };
        let value = json!({
            "runs": self.runs,
            "records": records,
            "out": out_path,
            "proof": proof_path,
            "tree_size": proof.tree_size,
            "artifacts": artifacts.as_ref().map(|(dir, written, purged)| {
                json!({ "dir": dir, "written": written, "not_stored": purged })
            }),
        });
        let text = format!(
            "exported {records} records of {} runs to {}; checkpoint (tree size {}) and proofs in {}{note}",
            self.runs,
            out_path.display(),
            proof.tree_size,
            proof_path.display()
        );
        crate::commands::report(cli, value, &text);
        Ok(())
    }
}
