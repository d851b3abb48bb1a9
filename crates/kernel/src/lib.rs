//! ledgerflow's kernel: workflow specs, the run state machine, the engine, and the ports
//! (`Store`, `Clock`) it drives. It does no IO and never reads the wall clock: storage and
//! time come in through the ports, effects through registered handlers.
//!
//! Every step the engine takes becomes one atomic [`store::Commit`]: the run's new
//! [`RunState`], the hash-chained ledger records that produced it, and the index changes
//! (wait_key, timer, inbox, status). [`replay`] folds a ledger back into the state with
//! the same function the engine uses, so replay always equals what was stored.

mod artifact;
mod clock;
mod effect;
mod engine;
mod error_kind;
mod event;
mod feed;
mod memory;
mod query;
mod registry;
mod snapshot;
mod spec;
mod state;
pub mod store;
mod tlog;
mod wait_keys;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use artifact::{
    check_artifact, ArtifactRef, ARTIFACT_BYTES_MAX, ARTIFACT_MARKER, MEDIA_TYPE_BYTES_MAX,
};
pub use clock::{Clock, ClockListener, ManualClock};
pub use effect::{
    kind as effect_kind, Effect, EffectCall, EffectHandler, EffectOutcome, RetryPolicy,
};
pub use engine::{
    Advanced, CancelOutcome, CascadeOutcome, Delivered, Engine, EngineConfig, Error, LedgerReader,
};
pub use error_kind::ErrorKind;
pub use event::{replay, replay_stored, Event, ReplayError, Replayer, VarsChange};
pub use feed::{FeedCursor, FeedPage, ParseCursorError};
pub use ledgerflow_ledger::{Hash, Record, RunId};
pub use memory::MemoryStore;
pub use query::{RunPage, RunQuery};
pub use registry::{WorkflowKey, WorkflowRegistry};
pub use snapshot::{
    Snapshot, SnapshotFilter, SNAPSHOT_NAME_BYTES_MAX, SNAPSHOT_TAGS_MAX, SNAPSHOT_TEXT_BYTES_MAX,
};
pub use spec::{
    Continuation, EffectPlan, NodeHandler, SpecError, StepContext, StepPlan, WorkflowSpec,
    WorkflowSpecBuilder,
};
pub use state::{
    FailureCode, LedgerHead, ParentLink, PendingEffect, RunFailure, RunState, RunStatus,
    SubworkflowMode, WaitReason, WaitState,
};
pub use store::{CheckReport, InboxEntry, IndexReader, Leases, Store, StoreLimits, TimerEntry};
pub use tlog::{
    log_head, log_leaves, log_root, prove_consistency, prove_record, LogHead, RecordProof,
};
pub use wait_keys::{is_engine_made as is_engine_made_wait_key, orphaned_inboxes};
