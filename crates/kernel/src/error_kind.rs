//! `ErrorKind`: the one question every ledgerflow error answers — what kind of failure is
//! this — so callers branch on a flat enum instead of matching nested error types.

/// What kind of failure an error is. Every error type of ledgerflow (`store::Error`, the
/// engine's `Error`, the scheduler's `Error`) has a `kind()` returning one of these.
///
/// ```
/// use std::sync::Arc;
/// use ledgerflow_kernel::{Engine, ErrorKind, ManualClock, MemoryStore, RunId};
///
/// let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(ManualClock::new(0)));
/// let err = engine.load(RunId::new_v4()).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Another writer changed the run first. Nothing was written; load and try again.
    Conflict,
    /// What was named (a run, a snapshot, an artifact) does not exist.
    NotFound,
    /// The request itself was wrong: malformed input, a cursor that is not one or belongs
    /// to another store, an effect kind that is built in. Do not retry as is.
    InvalidInput,
    /// The run is not in a state that allows this: it has ended, is not waiting, or waits
    /// on something else.
    InvalidState,
    /// A configured bound was exceeded (a value, a limit on a read, a depth, an inbox).
    LimitExceeded,
    /// The run's workflow (id, version) is not registered in this process.
    NotRegistered,
    /// The operation's own change was committed, but running the steps after it failed.
    /// Do not repeat the change: it is in the ledger.
    AfterCommit,
    /// Stored data is damaged.
    Corrupt,
    /// The store's files are missing.
    Missing,
    /// Reading or writing the disk failed; nothing was acknowledged.
    Io,
    /// The store is closed or the runtime stopped: writes are refused, reads still work.
    Closed,
    /// Waiting for a run ran out of time.
    Timeout,
    /// The run was cancelled (awaiting it fails at once).
    Cancelled,
    /// A bug in ledgerflow; nothing was written.
    Internal,
}

impl ErrorKind {
    /// Whether trying the same call again can succeed without changing anything first:
    /// true for a lost race only.
    pub fn is_retryable(self) -> bool {
        self == ErrorKind::Conflict
    }
}

impl ErrorKind {
    /// The kind's stable snake_case name (`conflict`, `not_found`, …): what the command
    /// line prints as an error's `code` under `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Conflict => "conflict",
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::InvalidState => "invalid_state",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::NotRegistered => "not_registered",
            ErrorKind::AfterCommit => "after_commit",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Missing => "missing",
            ErrorKind::Io => "io",
            ErrorKind::Closed => "closed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
