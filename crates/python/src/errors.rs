//! Python exceptions for ledgerflow's errors: `LedgerflowError`, and one subclass per
//! `ErrorKind`, each carrying the kind's stable name as `code` (`"not_found"`, …).

use ledgerflow::ErrorKind;
use pyo3::create_exception;
use pyo3::prelude::*;

create_exception!(
    ledgerflow,
    LedgerflowError,
    pyo3::exceptions::PyException,
    "Every ledgerflow error; `code` is its kind's stable name."
);
create_exception!(
    ledgerflow,
    ConflictError,
    LedgerflowError,
    "Another writer changed the run first; nothing was written."
);
create_exception!(
    ledgerflow,
    NotFoundError,
    LedgerflowError,
    "What was named (a run, a snapshot, an artifact) does not exist."
);
create_exception!(
    ledgerflow,
    InvalidInputError,
    LedgerflowError,
    "The request itself was wrong; do not retry it as is."
);
create_exception!(
    ledgerflow,
    InvalidStateError,
    LedgerflowError,
    "The run is not in a state that allows this (ended, not waiting, waiting on something else)."
);
create_exception!(
    ledgerflow,
    LimitExceededError,
    LedgerflowError,
    "A configured bound was exceeded."
);
create_exception!(
    ledgerflow,
    NotRegisteredError,
    LedgerflowError,
    "The run's workflow (id, version) is not registered in this process."
);
create_exception!(
    ledgerflow,
    AfterCommitError,
    LedgerflowError,
    "The call's own change was committed, and a step after it failed: do not repeat the change."
);
create_exception!(
    ledgerflow,
    CorruptError,
    LedgerflowError,
    "Stored data is damaged."
);
create_exception!(
    ledgerflow,
    MissingError,
    LedgerflowError,
    "The store's files are missing."
);
create_exception!(
    ledgerflow,
    StoreIoError,
    LedgerflowError,
    "Reading or writing the disk failed; nothing was acknowledged."
);
create_exception!(
    ledgerflow,
    ClosedError,
    LedgerflowError,
    "The store is closed or the runtime stopped: writes are refused."
);
create_exception!(
    ledgerflow,
    WaitTimeoutError,
    LedgerflowError,
    "Waiting for a run ran out of time."
);
create_exception!(
    ledgerflow,
    CancelledError,
    LedgerflowError,
    "The run was cancelled."
);
create_exception!(
    ledgerflow,
    InternalError,
    LedgerflowError,
    "A bug in ledgerflow; nothing was written."
);

/// Adds the exception classes to the module.
pub fn add_exceptions(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("LedgerflowError", py.get_type::<LedgerflowError>())?;
    m.add("ConflictError", py.get_type::<ConflictError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add("InvalidStateError", py.get_type::<InvalidStateError>())?;
    m.add("LimitExceededError", py.get_type::<LimitExceededError>())?;
    m.add("NotRegisteredError", py.get_type::<NotRegisteredError>())?;
    m.add("AfterCommitError", py.get_type::<AfterCommitError>())?;
    m.add("CorruptError", py.get_type::<CorruptError>())?;
    m.add("MissingError", py.get_type::<MissingError>())?;
    m.add("StoreIoError", py.get_type::<StoreIoError>())?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    m.add("WaitTimeoutError", py.get_type::<WaitTimeoutError>())?;
    m.add("CancelledError", py.get_type::<CancelledError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    Ok(())
}

/// The Python exception for an error of `kind` saying `message`, with `code` set.
pub fn exception(kind: ErrorKind, message: String) -> PyErr {
    let err = match kind {
        ErrorKind::Conflict => ConflictError::new_err(message),
        ErrorKind::NotFound => NotFoundError::new_err(message),
        ErrorKind::InvalidInput => InvalidInputError::new_err(message),
        ErrorKind::InvalidState => InvalidStateError::new_err(message),
        ErrorKind::LimitExceeded => LimitExceededError::new_err(message),
        ErrorKind::NotRegistered => NotRegisteredError::new_err(message),
        ErrorKind::AfterCommit => AfterCommitError::new_err(message),
        ErrorKind::Corrupt => CorruptError::new_err(message),
        ErrorKind::Missing => MissingError::new_err(message),
        ErrorKind::Io => StoreIoError::new_err(message),
        ErrorKind::Closed => ClosedError::new_err(message),
        ErrorKind::Timeout => WaitTimeoutError::new_err(message),
        ErrorKind::Cancelled => CancelledError::new_err(message),
        _ => InternalError::new_err(message),
    };
    Python::attach(|py| {
        // Setting an attribute on a fresh exception object cannot fail in practice; if it
        // did, the exception is still the right class with the right message.
        let _ = err.value(py).setattr("code", kind.as_str());
    });
    err
}

/// Anything with a kind and a message: every ledgerflow error type.
pub trait Kinded: std::fmt::Display {
    /// The error's kind.
    fn error_kind(&self) -> ErrorKind;
}

impl Kinded for ledgerflow::Error {
    fn error_kind(&self) -> ErrorKind {
        self.kind()
    }
}

impl Kinded for ledgerflow::SchedulerError {
    fn error_kind(&self) -> ErrorKind {
        self.kind()
    }
}

impl Kinded for ledgerflow::store::Error {
    fn error_kind(&self) -> ErrorKind {
        self.kind()
    }
}

/// A ledgerflow error as its Python exception.
pub fn to_py_err(e: impl Kinded) -> PyErr {
    exception(e.error_kind(), e.to_string())
}
