//! The latest committed state of recently committed runs, kept in memory so that loading
//! a run the store just committed — the next step of a tick, a scheduler job right after
//! a commit — neither decodes its snapshot nor replays the records after it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use ledgerflow_kernel::{RunId, RunState};

/// How many runs' states are kept; the oldest inserted goes first.
pub(crate) const RECENT_STATES_MAX: usize = 4_096;

/// Bounded map of run → latest committed state. Entries are put and removed by the
/// commit path under the store's commit lock, so an entry is never older than what sled
/// holds for the run.
#[derive(Debug, Default)]
pub(crate) struct RecentStates {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    states: HashMap<RunId, RunState>,
    /// Insertion order of the keys in `states`, for eviction.
    order: VecDeque<RunId>,
}

impl RecentStates {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run's latest committed state, if it is kept.
    pub fn get(&self, run_id: RunId) -> Option<RunState> {
        self.lock().states.get(&run_id).cloned()
    }

    /// Keeps `state` as its run's latest.
    pub fn put(&self, state: RunState) {
        let mut inner = self.lock();
        let run_id = state.run_id;
        if inner.states.insert(run_id, state).is_none() {
            inner.order.push_back(run_id);
            while inner.states.len() > RECENT_STATES_MAX {
                match inner.order.pop_front() {
                    Some(old) => {
                        inner.states.remove(&old);
                    }
                    None => break,
                }
            }
        }
    }

    /// Forgets the run (its commit failed after sled may have applied it).
    pub fn forget(&self, run_id: RunId) {
        let mut inner = self.lock();
        if inner.states.remove(&run_id).is_some() {
            inner.order.retain(|id| *id != run_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(run_id: RunId, seq: u64) -> RunState {
        let mut state = crate::codec::golden::state();
        state.run_id = run_id;
        state.head.seq = seq;
        state
    }

    #[test]
    fn keeps_the_latest_and_evicts_the_oldest_run() {
        let recent = RecentStates::default();
        let first = RunId::new_v4();
        recent.put(state(first, 1));
        recent.put(state(first, 2));
        assert_eq!(recent.get(first).map(|s| s.head.seq), Some(2));
        for _ in 0..RECENT_STATES_MAX {
            recent.put(state(RunId::new_v4(), 1));
        }
        assert_eq!(recent.get(first), None, "the oldest run went first");
        assert_eq!(recent.lock().states.len(), RECENT_STATES_MAX);
        let last = *recent.lock().order.back().expect("some");
        recent.forget(last);
        assert_eq!(recent.get(last), None);
        assert_eq!(recent.lock().order.len(), RECENT_STATES_MAX - 1);
    }
}
