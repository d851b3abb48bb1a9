//! ledgerflow: a durable workflow engine with a hash-chained, event-sourced ledger.
//!
//! This facade re-exports the public API of the workspace crates so an application
//! depends on one crate:
//! - [`ledger`]: the record format, chain verification and JSONL export
//!   (`ledgerflow-ledger`, usable alone by auditors);
//! - the kernel (`ledgerflow-kernel`): specs, the engine, the `Store` and `Clock` ports and
//!   the in-memory store, re-exported at the top level;
//! - the embedded sled store (`ledgerflow-sled`): [`SledStore`], [`SledConfig`],
//!   [`Durability`], its checkpoint files; [`open_store`] opens any store by its
//!   location ([`StoreChoice`]: `sled:PATH`, a directory, `memory:`);
//! - the scheduler (`ledgerflow-scheduler`): [`Scheduler`] with workers, timers, delivery
//!   and operator control, and [`ScheduledRuntime`], the zero-config facade;
//! - [`SystemClock`], the wall clock the kernel itself never reads.
//!
//! ```
//! use std::sync::Arc;
//! use ledgerflow::{Effect, Engine, MemoryStore, RunStatus, StepContext, StepPlan, SystemClock, WorkflowSpec};
//! use serde_json::json;
//!
//! let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock));
//! engine.register(
//!     WorkflowSpec::builder("hello", 1)
//!         .node("ask", |_: &mut StepContext<'_>| {
//!             StepPlan::effect(Effect::ask_user("Name?", &[]).result_key("name")).then_next("greet")
//!         })
//!         .node("greet", |ctx: &mut StepContext<'_>| {
//!             let name = ctx.var("name").and_then(|v| v.as_str()).unwrap_or("stranger");
//!             StepPlan::complete(json!(format!("hello, {name}")))
//!         })
//!         .entry("ask")
//!         .build()?,
//! );
//! let run = engine.start(("hello", 1), json!({}))?;
//! let waiting = engine.tick(run)?;
//! let key = waiting.waiting.and_then(|w| w.wait_key).expect("ask_user waits on a key");
//! let done = engine.resume(run, &key, json!("Ada"))?;
//! assert_eq!(done.status, RunStatus::Completed);
//! assert_eq!(done.output, Some(json!("hello, Ada")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod open;
mod runtime;

/// Agent effects (feature `agent`): `llm_call` and `tool_calls`, local, remote or hybrid;
/// register them with [`RuntimeBuilder::agent`].
#[cfg(feature = "agent")]
pub use ledgerflow_agent as agent;
/// The engine's spans exported to an OpenTelemetry collector (feature `otel`).
#[cfg(feature = "otel")]
pub mod telemetry;
/// The PostgreSQL store (feature `postgres`): `postgres://` locations open it.
#[cfg(feature = "postgres")]
pub use ledgerflow_postgres as postgres;
/// The HTTP API, event feed and run inspector (feature `server`): serve a live
/// [`ScheduledRuntime`] with `server::Server::start(server::Backend::live(Arc::new(runtime)),
/// server::ServerConfig::default())`, or merge `server::router(…)` into an axum app.
#[cfg(feature = "server")]
pub use ledgerflow_server as server;

// Workflows: specs, node handlers and what they plan.
pub use ledgerflow_kernel::{
    Continuation, EffectPlan, NodeHandler, SpecError, StepContext, StepPlan, WorkflowKey,
    WorkflowRegistry, WorkflowSpec, WorkflowSpecBuilder,
};
// Effects and their handlers.
pub use ledgerflow_kernel::{
    effect_kind, Effect, EffectCall, EffectHandler, EffectOutcome, RetryPolicy,
};
// The engine and what its calls answer.
pub use ledgerflow_kernel::{
    Advanced, CancelOutcome, CascadeOutcome, Delivered, Engine, EngineConfig, Error, ErrorKind,
    LedgerReader,
};
// Runs: their state, waits, failures.
pub use ledgerflow_kernel::{
    FailureCode, LedgerHead, ParentLink, PendingEffect, RunFailure, RunId, RunState, RunStatus,
    SubworkflowMode, WaitReason, WaitState,
};
// Ledgers: records, replay, artifacts.
pub use ledgerflow_kernel::{
    replay, replay_stored, ArtifactRef, Event, Hash, Record, ReplayError, Replayer, VarsChange,
    ARTIFACT_MARKER,
};
// Stores: the port, its limits, what `check` reports, the in-memory store (the sled store
// is below), and opening a store by its location.
pub use ledgerflow_kernel::{
    store, CheckReport, InboxEntry, MemoryStore, Store, StoreLimits, TimerEntry,
};
pub use open::{open_store, OpenMode, StoreChoice};
// Snapshots (bookmarks) of runs.
pub use ledgerflow_kernel::{
    Snapshot, SnapshotFilter, SNAPSHOT_NAME_BYTES_MAX, SNAPSHOT_TAGS_MAX, SNAPSHOT_TEXT_BYTES_MAX,
};
// Queries and the event feed.
pub use ledgerflow_kernel::{
    is_engine_made_wait_key, orphaned_inboxes, FeedCursor, FeedPage, ParseCursorError, RunPage,
    RunQuery,
};
// The global log: heads, roots and proofs over any store.
pub use ledgerflow_kernel::{
    log_head, log_leaves, log_root, prove_consistency, prove_record, LogHead, RecordProof,
};
// Time.
pub use ledgerflow_kernel::{Clock, ClockListener, ManualClock};
// The scheduler.
pub use ledgerflow_scheduler::{
    Error as SchedulerError, Scheduler, SchedulerConfig, Stats as SchedulerStats, SystemClock,
};
// The embedded sled store and its checkpoint files.
pub use ledgerflow_sled::{
    latest_checkpoint, public_key, read_checkpoints, CheckpointConfig, Durability, Signing,
    SledConfig, SledStore, CHECKPOINT_LOG_FILE, PUBLIC_KEY_FILE,
};
pub use runtime::{RuntimeBuilder, RuntimeConfig, ScheduledRuntime, DEFAULT_DATA_DIR};

/// README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The ledger format crate: records, hashing, chain verification, JSONL export.
pub use ledgerflow_ledger as ledger;
