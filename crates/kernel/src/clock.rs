//! The `Clock` port: the only way the kernel learns the time, so tests can drive it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// A source of the current time in milliseconds since the Unix epoch (UTC).
///
/// The kernel never reads the wall clock itself; the host passes a clock in. The facade
/// crate provides a system clock; tests use [`ManualClock`].
pub trait Clock: Send + Sync {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Asks to be told when the clock is moved by hand, so that whoever sleeps until a
    /// time (a scheduler's timer thread) looks again. `listener` is called after each
    /// move; it returns false to be forgotten. A clock that only moves by itself (the
    /// system clock) never calls it, which is the default.
    fn on_moved(&self, listener: ClockListener) {
        let _ = listener;
    }
}

/// A callback told that a clock was moved by hand; it returns false to be forgotten.
pub type ClockListener = Box<dyn Fn() -> bool + Send + Sync>;

/// A clock that only moves when told to. Clones share one time. Moving it tells every
/// listener (a scheduler sleeping until its next timer wakes up to look again).
///
/// ```
/// use ledgerflow_kernel::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance_ms(500);
/// assert_eq!(clock.now_ms(), 1_500);
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    now_ms: Arc<AtomicI64>,
    listeners: Arc<Mutex<Vec<ClockListener>>>,
}

impl std::fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManualClock")
            .field("now_ms", &self.now_ms())
            .finish_non_exhaustive()
    }
}

impl ManualClock {
    /// A clock that reads `now_ms` until moved.
    pub fn new(now_ms: i64) -> Self {
        ManualClock {
            now_ms: Arc::new(AtomicI64::new(now_ms)),
            listeners: Arc::default(),
        }
    }

    /// Sets the time, and tells the listeners.
    pub fn set_ms(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
        self.moved();
    }

    /// Moves the time forward by `delta_ms`, and tells the listeners.
    pub fn advance_ms(&self, delta_ms: i64) {
        self.now_ms.fetch_add(delta_ms, Ordering::SeqCst);
        self.moved();
    }

    fn moved(&self) {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|listener| listener());
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn on_moved(&self, listener: ClockListener) {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener);
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }

    fn on_moved(&self, listener: ClockListener) {
        (**self).on_moved(listener)
    }
}
