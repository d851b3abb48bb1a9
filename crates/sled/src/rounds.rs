//! Waking only the callers a group flush covered: two condition variables by round
//! parity, so a round that ends wakes its own waiters and one leader for the next round,
//! not every thread waiting (with hundreds in flight, waking all of them each round cost
//! more CPU than the commits).

use std::sync::{Condvar, MutexGuard};

/// Where a caller waiting on a group flush sleeps. Round numbers are the caller's: the
/// round running now is `running`; a caller it covers waits for `running`, any other for
/// `running + 1`.
#[derive(Debug, Default)]
pub(crate) struct RoundWaiters {
    by_parity: [Condvar; 2],
}

impl RoundWaiters {
    /// Sleeps until round `round` ends (or a spurious wake-up: callers re-check).
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>, round: u64) -> MutexGuard<'a, T> {
        self.by_parity[(round % 2) as usize]
            .wait(guard)
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Round `round` has ended: wakes every caller it covered and, when callers are left
    /// waiting for the next round, one of them to run it.
    pub fn finished(&self, round: u64, more_waiting: bool) {
        self.by_parity[(round % 2) as usize].notify_all();
        if more_waiting {
            self.by_parity[((round + 1) % 2) as usize].notify_one();
        }
    }
}
