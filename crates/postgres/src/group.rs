//! Group commit: commits that arrive while a batch is being committed queue up, and the
//! next caller to find no batch in flight commits everything queued (up to a bound) in
//! one transaction. One WAL flush then acknowledges many steps, and the global log's head
//! row is locked once a batch, not once a step.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use ledgerflow_kernel::store::Error;

/// The queue and the results of one store's commits.
pub struct Group<T> {
    state: Mutex<State<T>>,
    done: Condvar,
    batch_max: usize,
}

/// What the group holds behind its lock.
pub struct State<T> {
    /// Commits waiting for a batch, by ticket.
    pub queue: Vec<(u64, T)>,
    /// The ticket the next commit gets.
    pub next_ticket: u64,
    results: HashMap<u64, Result<(), Error>>,
    leading: bool,
}

/// Marks the batch in flight; when dropped (also by a panic in the batch), the group can
/// lead again and any ticket of the batch left without a result gets an error.
struct Leading<'a, T> {
    group: &'a Group<T>,
    tickets: Vec<u64>,
}

impl<T> Drop for Leading<'_, T> {
    fn drop(&mut self) {
        let mut state = self.group.lock();
        state.leading = false;
        for ticket in &self.tickets {
            state.results.entry(*ticket).or_insert_with(|| {
                Err(Error::io_failed(
                    "the batch this commit was in stopped before it finished",
                ))
            });
        }
        drop(state);
        self.group.done.notify_all();
    }
}

impl<T> Group<T> {
    /// A group that commits at most `batch_max` commits a transaction.
    pub fn new(batch_max: usize) -> Group<T> {
        Group {
            state: Mutex::new(State {
                queue: Vec::new(),
                next_ticket: 0,
                results: HashMap::new(),
                leading: false,
            }),
            done: Condvar::new(),
            batch_max: batch_max.max(1),
        }
    }

    /// The lock (the state is consistent at every point a panic could occur).
    pub fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until the commit with `ticket` (already queued) has its result, leading a
    /// batch with `run` whenever none is in flight.
    pub fn wait_for(
        &self,
        ticket: u64,
        run: impl Fn(Vec<(u64, T)>) -> Vec<(u64, Result<(), Error>)>,
    ) -> Result<(), Error> {
        let mut state = self.lock();
        loop {
            if let Some(result) = state.results.remove(&ticket) {
                return result;
            }
            if !state.leading && !state.queue.is_empty() {
                state.leading = true;
                let n = state.queue.len().min(self.batch_max);
                let batch: Vec<(u64, T)> = state.queue.drain(..n).collect();
                drop(state);
                let mut leading = Leading {
                    group: self,
                    tickets: batch.iter().map(|(t, _)| *t).collect(),
                };
                let results = run(batch);
                {
                    let mut state = self.lock();
                    for (done, result) in results {
                        state.results.insert(done, result);
                    }
                }
                leading.tickets.clear();
                drop(leading);
                state = self.lock();
                continue;
            }
            state = self
                .done
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}
