//! The engine's errors (`engine::Error`) and their kinds.

use super::*;

/// Engine errors: what the caller asked for could not be done, and nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No run with this id in the store.
    #[error("run {run_id} not found")]
    RunNotFound {
        /// The id asked for.
        run_id: RunId,
    },
    /// The run's (workflow id, version) has no registered spec.
    #[error("workflow {workflow_id:?} version {version} is not registered")]
    WorkflowNotRegistered {
        /// The workflow.
        workflow_id: String,
        /// The version.
        version: u32,
    },
    /// The input is not a JSON object (or null).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What was wrong.
        reason: String,
    },
    /// The run is not waiting.
    #[error("run {run_id} is not waiting (status {status})")]
    NotWaiting {
        /// The run.
        run_id: RunId,
        /// Its status.
        status: RunStatus,
    },
    /// The run waits on another key (or on a timer only).
    #[error("run {run_id} does not wait on {got:?} (it waits on {expected:?})")]
    WaitKeyMismatch {
        /// The run.
        run_id: RunId,
        /// The key it waits on, if any.
        expected: Option<String>,
        /// The key given.
        got: String,
    },
    /// A JSON value is larger than [`EngineConfig::value_bytes_max`].
    #[error("{what} is {bytes} bytes, over the limit of {max}")]
    ValueTooLarge {
        /// What was too large.
        what: String,
        /// Its serialized size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A JSON value nests deeper than [`EngineConfig::value_depth_max`].
    #[error("{what} nests at least {depth} levels deep, over the limit of {max}")]
    ValueTooDeep {
        /// What was too deep.
        what: String,
        /// How deep it was found to nest before looking further stopped (arrays and
        /// objects inside each other): at least this deep.
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// A configured bound was exceeded (wait_key length, subworkflow depth, …).
    #[error("{what} is over the limit of {max}")]
    LimitExceeded {
        /// What was too large or too deep.
        what: String,
        /// The limit.
        max: u64,
    },
    /// `respond` on a run that is not waiting for an answer: it waits for something else
    /// (a timer, a child workflow, an external job, a retry) or does not wait.
    #[error("run {run_id} is not waiting for an answer: it waits for {waits_for}; respond answers ask_user and wait_event waits only")]
    NotAnswerable {
        /// The run.
        run_id: RunId,
        /// Its status.
        status: RunStatus,
        /// What it waits for, in words.
        waits_for: String,
    },
    /// The run has ended; it can no longer be changed.
    #[error("run {run_id} has ended ({status})")]
    RunTerminal {
        /// The run.
        run_id: RunId,
        /// Its final status.
        status: RunStatus,
    },
    /// A handler was registered for a kind the kernel handles itself.
    #[error("effect kind {kind:?} is built in and cannot be given a handler")]
    BuiltinEffectKind {
        /// The kind.
        kind: String,
    },
    /// Delivery kept racing with other resumers of the same key.
    #[error("delivery to {wait_key:?} kept conflicting with concurrent resumers")]
    DeliveryContended {
        /// The key.
        wait_key: String,
    },
    /// Replaying the run's ledger failed.
    #[error(transparent)]
    Replay(#[from] crate::ReplayError),
    /// A feed cursor that is not one.
    #[error(transparent)]
    InvalidCursor(#[from] crate::ParseCursorError),
    /// A feed or query cursor minted by another store.
    #[error("cursor {cursor} belongs to another store")]
    CursorFromAnotherStore {
        /// The cursor given.
        cursor: String,
    },
    /// A fork's first record cites a parent record that does not match.
    #[error("run {run_id}: lineage does not verify: {reason}")]
    LineageMismatch {
        /// The fork.
        run_id: RunId,
        /// What did not match.
        reason: String,
    },
    /// Replaying the ledger gives a state different from the stored one.
    #[error("run {run_id}: replayed ledger differs from the stored state")]
    ReplayMismatch {
        /// The run.
        run_id: RunId,
    },
    /// The store failed (including version conflicts).
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The call's own change (a resume, a timer, an unpause) was committed at `seq`, but
    /// running the steps after it failed. The change stands: do not repeat it. The run is
    /// left as its last committed step left it, for the next tick (or a scheduler's
    /// recovery) to continue.
    #[error("run {run_id}: the change was committed at seq {seq}, but the steps after it failed: {source}")]
    AfterCommit {
        /// The run.
        run_id: RunId,
        /// The seq of the run's last committed record when the failure happened.
        seq: u64,
        /// What failed.
        source: Box<Error>,
    },
    /// An engine bug: an event it produced does not apply. Nothing was written.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// What kind of failure this is: one flat answer whatever the nesting.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            Error::RunNotFound { .. } => K::NotFound,
            Error::WorkflowNotRegistered { .. } => K::NotRegistered,
            Error::InvalidInput { .. }
            | Error::BuiltinEffectKind { .. }
            | Error::InvalidCursor(_)
            | Error::CursorFromAnotherStore { .. } => K::InvalidInput,
            Error::NotWaiting { .. }
            | Error::WaitKeyMismatch { .. }
            | Error::RunTerminal { .. }
            | Error::NotAnswerable { .. } => K::InvalidState,
            Error::ValueTooLarge { .. }
            | Error::ValueTooDeep { .. }
            | Error::LimitExceeded { .. } => K::LimitExceeded,
            Error::DeliveryContended { .. } => K::Conflict,
            Error::Replay(_) | Error::LineageMismatch { .. } | Error::ReplayMismatch { .. } => {
                K::Corrupt
            }
            Error::Store(e) => e.kind(),
            Error::AfterCommit { .. } => K::AfterCommit,
            Error::Internal(_) => K::Internal,
        }
    }

    /// Whether this is a lost race: another writer changed the run first and nothing of
    /// this call was written, so it can be tried again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_conflict())
    }
}
