//! Errors as machines read them: a stable `code` for every failure, printed as one JSON
//! object on stderr under `--json`.

use serde_json::json;

/// A mistake in what the user asked for that the libraries did not see (a bad flag
/// value, a prefix that matches no run): code `invalid_input`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// The stable code of an error: the library's `ErrorKind` (`not_found`, `conflict`,
/// `invalid_input`, `invalid_state`, `limit_exceeded`, `not_registered`, `after_commit`,
/// `corrupt`, `missing`, `io`, `closed`, `timeout`, `cancelled`, `internal`), `io` for a
/// file the command could not read or write, `invalid_input` for a bad argument value,
/// `usage` for a command line that does not parse, the server's own code through `--url`,
/// and `error` for anything else.
pub fn code(error: &anyhow::Error) -> String {
    for cause in error.chain() {
        if let Some(remote) = cause.downcast_ref::<crate::remote::RemoteError>() {
            return remote.code.clone();
        }
        let kind = match cause.downcast_ref::<ledgerflow_kernel::Error>() {
            Some(e) => Some(e.kind()),
            None => cause
                .downcast_ref::<ledgerflow_kernel::store::Error>()
                .map(|e| e.kind()),
        };
        if let Some(kind) = kind {
            return kind.as_str().to_owned();
        }
        if cause.downcast_ref::<InputError>().is_some()
            || cause.downcast_ref::<serde_json::Error>().is_some()
        {
            return "invalid_input".to_owned();
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return "io".to_owned();
        }
    }
    "error".to_owned()
}

/// Prints `{"error": {"code": …, "message": …}}` as one line on stderr.
pub fn print_json(code: &str, message: &str) {
    eprintln!(
        "{}",
        json!({ "error": { "code": code, "message": message.trim_end() } })
    );
}
