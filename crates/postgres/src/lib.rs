//! `ledgerflow-postgres`: the [`Store`](ledgerflow_kernel::Store) on PostgreSQL (14 or
//! newer). A step's state, records, global-log hashes and index changes commit in one
//! transaction, the version check in SQL, so many worker processes on many hosts can share
//! one database. The schema is `docs/postgres-schema.md`.
//!
//! The client is the `postgres` crate: synchronous, like every [`Store`] call. It drives
//! its connection on a small tokio runtime of its own, so a store call must not be made
//! from inside an async task (it would block that task's thread; the `postgres` crate
//! refuses to run inside a runtime's worker): from async code, call it from
//! `spawn_blocking`, as `ledgerflow-server` does with every store.
//!
//! ```no_run
//! use ledgerflow_kernel::Store;
//! use ledgerflow_postgres::{PostgresConfig, PostgresStore};
//!
//! let store = PostgresStore::open(PostgresConfig::new("postgres://app@db.internal/app"))?;
//! assert_eq!(store.feed_head()?, 0);
//! # Ok::<(), ledgerflow_kernel::store::Error>(())
//! ```

mod check;
mod codec;
mod group;
mod leases;
mod pool;
mod schema;
mod store;
pub mod testing;

pub use store::{drop_schema, PostgresConfig, PostgresStore};
