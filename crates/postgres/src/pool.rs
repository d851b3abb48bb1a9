//! A bounded pool of connections, each with its prepared statements: a store call takes
//! one connection for its transaction and gives it back; a broken connection is dropped
//! and a new one opened for the next call.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use ledgerflow_kernel::store::Error;
use postgres::{Client, NoTls, Statement};

use crate::codec::db_error;

/// The statements prepared on one connection, by their text; and whether the last error
/// on it was transient.
#[derive(Default)]
pub struct Statements {
    prepared: HashMap<&'static str, Statement>,
    transient_error: bool,
}

impl Statements {
    /// The statement prepared for `sql`, if it was.
    pub fn get(&self, sql: &str) -> Option<&Statement> {
        self.prepared.get(sql)
    }

    /// Keeps the statement prepared for `sql`.
    pub fn insert(&mut self, sql: &'static str, statement: Statement) {
        self.prepared.insert(sql, statement);
    }

    /// Notes an error a statement on this connection failed with.
    pub fn failed(&mut self, e: &postgres::Error) {
        use postgres::error::SqlState;
        // The server chose this transaction as a deadlock's victim, or could not
        // serialize it: it rolled back whole, and may well go through if run again.
        let transient = [
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::T_R_SERIALIZATION_FAILURE,
        ];
        self.transient_error |= e.code().is_some_and(|code| transient.contains(code));
    }

    /// Whether an error since the last call was transient; forgets it.
    pub fn take_transient_error(&mut self) -> bool {
        std::mem::take(&mut self.transient_error)
    }
}

/// One connection and the statements prepared on it.
pub struct Conn {
    pub client: Client,
    pub statements: Statements,
    /// Found broken after an error: dropped, not pooled, when given back.
    broken: bool,
}

/// How long a connection that just failed may take to answer an empty query before it is
/// taken for broken.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Conn {
    /// After an error on this connection: whether the connection itself is broken (cut
    /// by the network or the server), so that what failed can be run again on a new one.
    /// The client library does not always notice by itself, so an empty query asks.
    pub fn broke(&mut self) -> bool {
        if !self.broken {
            self.broken = self.client.is_closed() || self.client.is_valid(CHECK_TIMEOUT).is_err();
        }
        self.broken
    }

    /// Marks the connection broken (a `COMMIT` it sent went unanswered).
    pub fn set_broken(&mut self) {
        self.broken = true;
    }

    fn usable(&self) -> bool {
        !self.broken && !self.client.is_closed()
    }
}

/// The pool.
pub struct Pool {
    config: postgres::Config,
    schema: String,
    connections_max: usize,
    wait_ms_max: u64,
    idle_in_transaction_ms: u64,
    state: Mutex<PoolState>,
    returned: Condvar,
}

struct PoolState {
    idle: Vec<Conn>,
    open: usize,
}

impl Pool {
    /// A pool of up to `connections_max` connections to `config`, each using `schema`.
    /// Waiting for a free connection is bounded by `wait_ms_max`; the server closes a
    /// connection left idle inside a transaction for `idle_in_transaction_ms` (a stalled
    /// or cut-off caller), so no row lock outlives its caller's leases.
    pub fn new(
        config: postgres::Config,
        schema: String,
        connections_max: usize,
        wait_ms_max: u64,
        idle_in_transaction_ms: u64,
    ) -> Pool {
        Pool {
            config,
            schema,
            connections_max: connections_max.max(1),
            wait_ms_max,
            idle_in_transaction_ms: idle_in_transaction_ms.max(1),
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // The state is a list and a count, consistent at every point a panic could occur.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A connection: an idle one, a new one while under the bound, else the first one
    /// returned within the wait bound.
    pub fn get(&self) -> Result<Pooled<'_>, Error> {
        let deadline = std::time::Instant::now() + Duration::from_millis(self.wait_ms_max);
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                if conn.usable() {
                    return Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    });
                }
                state.open -= 1;
                continue;
            }
            if state.open < self.connections_max {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(Error::io_failed(format!(
                    "no free database connection within {} ms (all {} in use)",
                    self.wait_ms_max, self.connections_max
                )));
            }
            state = self
                .returned
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    fn connect(&self) -> Result<Conn, Error> {
        let mut client = self
            .config
            .connect(NoTls)
            .map_err(|e| db_error("connecting to the database", e))?;
        // The schema name was checked to be a plain identifier when the store was opened.
        client
            .batch_execute(&format!(
                "SET search_path TO {}; SET idle_in_transaction_session_timeout = {}",
                self.schema, self.idle_in_transaction_ms
            ))
            .map_err(|e| db_error("setting up the connection", e))?;
        Ok(Conn {
            client,
            statements: Statements::default(),
            broken: false,
        })
    }

    /// Closes every idle connection (those in use close when they are returned).
    pub fn close_idle(&self) {
        let mut state = self.lock();
        let idle = std::mem::take(&mut state.idle);
        state.open -= idle.len();
    }
}

/// A connection taken from the pool; given back when dropped (dropped instead when it
/// broke).
pub struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let mut state = self.pool.lock();
        if !conn.usable() {
            state.open -= 1;
        } else {
            state.idle.push(conn);
        }
        drop(state);
        self.pool.returned.notify_one();
    }
}
