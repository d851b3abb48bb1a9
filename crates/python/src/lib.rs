//! The `ledgerflow._native` extension module: the Rust half of the `ledgerflow` Python
//! package. The Python half (`python/ledgerflow/`) gives it its Pythonic surface.
//!
//! - `convert.rs`: Python values to JSON and back (a value that is not JSON is a
//!   `TypeError` naming where it is);
//! - `errors.rs`: the exception hierarchy (`LedgerflowError` and one subclass per
//!   `ErrorKind`);
//! - `handlers.rs`: node handlers and effect handlers that call Python callables;
//! - `logs.rs`: named append-only logs, each a run of the built-in `ledgerflow.log`
//!   workflow (the LangGraph checkpointer's storage);
//! - `runtime.rs`: `Runtime`, over a `ScheduledRuntime`, releasing the GIL whenever it
//!   waits or touches the store.

use pyo3::prelude::*;

mod convert;
mod errors;
mod handlers;
mod logs;
mod runtime;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::add_exceptions(m)?;
    m.add_class::<runtime::Runtime>()?;
    m.add_class::<handlers::Context>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
