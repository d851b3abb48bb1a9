//! ledgerflow's ledger format: the record envelope, its canonical hash input, chain
//! verification and the JSONL export, small enough for an auditor to use on its own.
//!
//! Every run of a workflow owns an append-only chain of [`Record`]s numbered from 1. Each
//! record carries the hash of the record before it (the first carries [`Hash::GENESIS`]),
//! so changing, removing or reordering any record breaks the chain at that point. The
//! exact bytes that are hashed are specified in `docs/ledger-format.md` and produced by
//! [`hash_input`]; a verifier written in another language needs only that page.
//!
//! ```
//! use ledgerflow_ledger::{verify_chain, Hash, RecordDraft, RunId};
//! use serde_json::json;
//!
//! let run_id = RunId::new_v4();
//! let first = RecordDraft {
//!     run_id,
//!     seq: 1,
//!     at_ms: 1_700_000_000_000,
//!     kind: "started".into(),
//!     body: json!({"workflow_id": "demo"}),
//!     state_hash: Hash::GENESIS,
//! }
//! .seal(Hash::GENESIS);
//! let head = verify_chain([&first]).expect("a freshly sealed record verifies");
//! assert_eq!(head.map(|h| h.seq), Some(1));
//! ```

mod artifacts;
pub mod bundle;
mod canonical;
mod chain;
pub mod checkpoint;
mod hash;
mod jsonl;
mod lineage;
pub mod merkle;
mod record;
mod run_id;
mod strict;

pub use artifacts::{artifact_cites, artifact_matches, ArtifactCite, ARTIFACT_MEMBER};
pub use canonical::{canonical_json, write_canonical_json};
pub use chain::{verify_chain, ChainError, ChainFault, ChainHead, ChainVerifier};
pub use hash::{Hash, ParseHashError};
pub use jsonl::{
    export_jsonl, import_jsonl, parse_jsonl_line, record_json, ImportError, JSONL_LINE_BYTES_MAX,
};
pub use lineage::{verify_lineage, LineageFault, LineageReport};
pub use record::{hash_input, Record, RecordDraft, RecordFields, FORMAT_VERSION, RECORD_DOMAIN};
pub use run_id::{ParseRunIdError, RunId};
pub use strict::{depth as json_depth, BODY_DEPTH_MAX};
