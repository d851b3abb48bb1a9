//! The scheduler: worker threads, the timer thread, delivery, operator control, await and
//! subscriptions, over one shared kernel `Engine`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ledgerflow_kernel::store::{self, Store};
use ledgerflow_kernel::{
    CancelOutcome, Delivered, Engine, FeedCursor, FeedPage, RunId, RunState, RunStatus, WorkflowKey,
};
use serde_json::Value;

/// Scheduler errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine refused (unknown run, wrong key, unregistered version, store error…).
    #[error(transparent)]
    Engine(#[from] ledgerflow_kernel::Error),
    /// The run was cancelled: awaiting it fails at once, every time.
    #[error("run {run_id} was cancelled")]
    Cancelled {
        /// The run.
        run_id: RunId,
    },
    /// The run did not reach a wait or an end in time.
    #[error("run {run_id} neither waited nor ended within {waited_ms} ms")]
    Timeout {
        /// The run.
        run_id: RunId,
        /// How long the caller waited.
        waited_ms: u64,
    },
    /// `respond` on a run that does not wait on a key.
    #[error("run {run_id} does not wait on a key (status {status})")]
    NotWaitingOnKey {
        /// The run.
        run_id: RunId,
        /// Its status.
        status: RunStatus,
    },
    /// A cascade would touch more runs than configured.
    #[error("cancelling run {run_id} would cascade to more than {max} runs")]
    CascadeTooLarge {
        /// The root run.
        run_id: RunId,
        /// The bound.
        max: usize,
    },
    /// The scheduler was stopped; it accepts no more work.
    #[error("the scheduler is stopped")]
    Stopped,
}

fn is_conflict(e: &ledgerflow_kernel::Error) -> bool {
    matches!(
        e,
        ledgerflow_kernel::Error::Store(store::Error::Conflict { .. })
    )
}

/// Scheduler settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Worker threads ticking runs. Default 2, the cores of a small machine; ticks are
    /// mostly commit latency, so more workers help with a slow disk.
    pub workers: usize,
    /// Runs queued for a worker at most; the timer thread waits for room (backpressure).
    /// Default 10,000.
    pub ready_queue_max: usize,
    /// Due timers read from the store per scan. Default 1,000.
    pub timer_batch_max: usize,
    /// Times a job is retried after losing a version race. Default 16.
    pub conflict_retries_max: u32,
    /// Most runs one cascading cancel touches. Default 10,000.
    pub cascade_runs_max: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            workers: 2,
            ready_queue_max: 10_000,
            timer_batch_max: 1_000,
            conflict_retries_max: 16,
            cascade_runs_max: 10_000,
        }
    }
}

/// Counters since the scheduler started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Jobs (ticks and timer firings) the workers ran to completion.
    pub runs_ticked: u64,
    /// Timers that fired.
    pub timers_fired: u64,
    /// Events delivered to a waiting run.
    pub events_delivered: u64,
    /// Events queued in an inbox because no run waited yet.
    pub events_queued: u64,
    /// Version races lost and retried.
    pub conflicts_retried: u64,
    /// Jobs that ended in an error other than a lost race.
    pub job_errors: u64,
    /// Runs waiting in the ready queue now.
    pub queue_depth: u64,
    /// Events waiting in inboxes now (counted over at most one page of keys).
    pub inbox_depth: u64,
    /// Lag of the last timer fired: when it fired minus when it was due.
    pub timer_lag_last_ms: i64,
    /// Largest lag seen.
    pub timer_lag_max_ms: i64,
}

#[derive(Default)]
struct Counters {
    runs_ticked: AtomicU64,
    timers_fired: AtomicU64,
    events_delivered: AtomicU64,
    events_queued: AtomicU64,
    conflicts_retried: AtomicU64,
    job_errors: AtomicU64,
    timer_lag_last_ms: AtomicI64,
    timer_lag_max_ms: AtomicI64,
}

/// Runs waiting for a worker. A run is in at most one of `pending` (queued) and
/// `running`; work for a running run is parked in `again` and queued when it finishes, so
/// one run is ticked by one worker at a time.
#[derive(Default)]
struct Queue {
    order: VecDeque<RunId>,
    pending: HashMap<RunId, Option<i64>>,
    running: HashSet<RunId>,
    again: HashMap<RunId, Option<i64>>,
}

/// What a queued run needs: `Some(due)` fires its timer due then, `None` ticks it.
fn merge(old: Option<i64>, new: Option<i64>) -> Option<i64> {
    new.or(old)
}

struct Shared {
    engine: Arc<Engine>,
    config: SchedulerConfig,
    queue: Mutex<Queue>,
    work_ready: Condvar,
    space_free: Condvar,
    job_done: Condvar,
    timer_generation: Mutex<u64>,
    timer_wake: Condvar,
    changes: Mutex<u64>,
    changed: Condvar,
    subscribers: Mutex<Vec<SyncSender<RunState>>>,
    failed_timers: Mutex<HashSet<(RunId, i64)>>,
    stopping: AtomicBool,
    counters: Counters,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Queues a job for `run_id`. With `block`, waits for room in the queue.
    fn submit(&self, run_id: RunId, due: Option<i64>, block: bool) -> bool {
        let mut queue = lock(&self.queue);
        if queue.running.contains(&run_id) {
            let parked = queue.again.remove(&run_id).flatten();
            queue.again.insert(run_id, merge(parked, due));
            return true;
        }
        if let Some(queued) = queue.pending.get_mut(&run_id) {
            *queued = merge(*queued, due);
            return true;
        }
        while queue.order.len() >= self.config.ready_queue_max {
            if !block || self.stopped() {
                return false;
            }
            queue = self
                .space_free
                .wait(queue)
                .unwrap_or_else(|p| p.into_inner());
        }
        queue.order.push_back(run_id);
        queue.pending.insert(run_id, due);
        self.work_ready.notify_one();
        true
    }

    fn wake_timers(&self) {
        *lock(&self.timer_generation) += 1;
        self.timer_wake.notify_all();
    }

    /// Told of every acknowledged commit of the engine.
    fn on_commit(&self, state: &RunState) {
        *lock(&self.changes) += 1;
        self.changed.notify_all();
        if state.waiting.as_ref().is_some_and(|w| w.until_ms.is_some()) {
            self.wake_timers();
        }
        let mut subscribers = lock(&self.subscribers);
        subscribers.retain(|tx| {
            !matches!(
                tx.try_send(state.clone()),
                Err(TrySendError::Disconnected(_))
            )
        });
    }

    fn worker(&self) {
        loop {
            let (run_id, due) = {
                let mut queue = lock(&self.queue);
                loop {
                    if let Some(run_id) = queue.order.pop_front() {
                        let due = queue.pending.remove(&run_id).flatten();
                        queue.running.insert(run_id);
                        self.space_free.notify_one();
                        break (run_id, due);
                    }
                    if self.stopped() {
                        return;
                    }
                    queue = self
                        .work_ready
                        .wait(queue)
                        .unwrap_or_else(|p| p.into_inner());
                }
            };
            self.execute(run_id, due);
            let mut queue = lock(&self.queue);
            queue.running.remove(&run_id);
            if let Some(again) = queue.again.remove(&run_id) {
                queue.order.push_back(run_id);
                queue.pending.insert(run_id, again);
                self.work_ready.notify_one();
            }
            self.job_done.notify_all();
        }
    }

    fn execute(&self, run_id: RunId, due: Option<i64>) {
        let counters = &self.counters;
        for _ in 0..=self.config.conflict_retries_max {
            let result = match due {
                Some(due_at_ms) => self.engine.fire_timer(run_id, due_at_ms),
                None => self.engine.tick(run_id),
            };
            match result {
                Ok(state) => {
                    counters.runs_ticked.fetch_add(1, Ordering::Relaxed);
                    if let Some(due_at_ms) = due {
                        if !state.waits_until(due_at_ms) {
                            let lag_ms = self.engine.clock().now_ms() - due_at_ms;
                            counters.timers_fired.fetch_add(1, Ordering::Relaxed);
                            counters.timer_lag_last_ms.store(lag_ms, Ordering::Relaxed);
                            counters
                                .timer_lag_max_ms
                                .fetch_max(lag_ms, Ordering::Relaxed);
                        }
                    }
                    return;
                }
                Err(e) if is_conflict(&e) => {
                    counters.conflicts_retried.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
        counters.job_errors.fetch_add(1, Ordering::Relaxed);
        if let Some(due_at_ms) = due {
            // Not retried until restart: the timer stays in the index, nothing is lost.
            lock(&self.failed_timers).insert((run_id, due_at_ms));
        }
    }

    /// Queues the work a restart leaves behind: runs that were running, and events a
    /// crash left in the inbox of a key a run waits on.
    fn recover(&self) -> Result<(), Error> {
        let store = self.engine.store();
        let page = store.limits().read_items_max.max(1);
        let mut after = None;
        loop {
            let runs = store
                .list_runs(Some(RunStatus::Running), after, page)
                .map_err(ledgerflow_kernel::Error::from)?;
            for run_id in &runs {
                if self.stopped() {
                    return Ok(());
                }
                self.submit(*run_id, None, true);
            }
            if runs.len() < page {
                break;
            }
            after = runs.last().copied();
        }
        let mut after: Option<String> = None;
        loop {
            let keys = store
                .inbox_keys(after.as_deref(), page)
                .map_err(ledgerflow_kernel::Error::from)?;
            for key in &keys {
                // A key whose waiter cannot be resumed here (its workflow is not
                // registered) keeps its events; the others are still drained.
                if self.engine.drain_inbox(key).is_err() {
                    self.counters.job_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            if keys.len() < page {
                break;
            }
            after = keys.last().cloned();
        }
        Ok(())
    }

    /// Dispatches every due timer, then sleeps until the next one is due or something
    /// changes. Time comes from the engine's clock.
    fn timer_loop(&self) {
        if self.recover().is_err() {
            self.counters.job_errors.fetch_add(1, Ordering::Relaxed);
        }
        let store = Arc::clone(self.engine.store());
        let mut seen = *lock(&self.timer_generation);
        while !self.stopped() {
            let now_ms = self.engine.clock().now_ms();
            let next = match self.dispatch_due(store.as_ref(), now_ms) {
                Ok(Some(batch)) => {
                    // A full batch: more may be due behind it. The index returns due timers
                    // from the earliest, so let the workers fire this batch first.
                    self.wait_until_fired(&batch);
                    continue;
                }
                Ok(None) => store.next_timer_after(now_ms).ok().flatten(),
                Err(_) => None,
            };
            let generation = lock(&self.timer_generation);
            if *generation != seen || self.stopped() {
                seen = *generation;
                continue;
            }
            let wait = next.map_or(Duration::from_secs(3_600), |t| {
                Duration::from_millis(u64::try_from(t.due_at_ms - now_ms).unwrap_or(0).max(1))
            });
            let (generation, _) = self
                .timer_wake
                .wait_timeout(generation, wait)
                .unwrap_or_else(|p| p.into_inner());
            seen = *generation;
        }
    }

    /// Queues the timers due at `now_ms`. Returns the batch when it was full.
    fn dispatch_due(
        &self,
        store: &dyn Store,
        now_ms: i64,
    ) -> Result<Option<Vec<store::TimerEntry>>, store::Error> {
        let batch = self
            .config
            .timer_batch_max
            .min(store.limits().read_items_max)
            .max(1);
        let due = store.due_timers(now_ms, batch)?;
        let failed = lock(&self.failed_timers).clone();
        let mut dispatched = Vec::with_capacity(due.len());
        for timer in &due {
            if !failed.contains(&(timer.run_id, timer.due_at_ms))
                && self.submit(timer.run_id, Some(timer.due_at_ms), true)
            {
                dispatched.push(*timer);
            }
        }
        Ok((due.len() == batch && !dispatched.is_empty()).then_some(dispatched))
    }

    /// Waits until no run of `batch` is queued or running any more.
    fn wait_until_fired(&self, batch: &[store::TimerEntry]) {
        let mut queue = lock(&self.queue);
        while !self.stopped()
            && batch
                .iter()
                .any(|t| queue.pending.contains_key(&t.run_id) || queue.running.contains(&t.run_id))
        {
            queue = self.job_done.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Runs the scheduler's threads over an engine. Dropping it stops it.
pub struct Scheduler {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Starts `config.workers` worker threads and the timer thread. At start-up the timer
    /// thread queues runs left running by a restart, drains inboxes a crash left behind,
    /// and fires overdue timers at once.
    pub fn start(engine: Arc<Engine>, config: SchedulerConfig) -> Result<Scheduler, Error> {
        let shared = Arc::new(Shared {
            engine: Arc::clone(&engine),
            config,
            queue: Mutex::default(),
            work_ready: Condvar::new(),
            space_free: Condvar::new(),
            job_done: Condvar::new(),
            timer_generation: Mutex::new(0),
            timer_wake: Condvar::new(),
            changes: Mutex::new(0),
            changed: Condvar::new(),
            subscribers: Mutex::default(),
            failed_timers: Mutex::default(),
            stopping: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        engine.observe(move |state| {
            if let Some(shared) = weak.upgrade() {
                shared.on_commit(state);
            }
        });
        let mut threads = Vec::new();
        for i in 0..config.workers.max(1) {
            let worker = Arc::clone(&shared);
            threads.push(spawn(&format!("ledgerflow-worker-{i}"), move || {
                worker.worker()
            })?);
        }
        let timers = Arc::clone(&shared);
        threads.push(spawn("ledgerflow-timers", move || timers.timer_loop())?);
        Ok(Scheduler {
            shared,
            threads: Mutex::new(threads),
        })
    }

    /// The engine the scheduler drives.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.shared.engine
    }

    fn check_running(&self) -> Result<(), Error> {
        if self.shared.stopped() {
            return Err(Error::Stopped);
        }
        Ok(())
    }

    /// Starts a run and ticks it on the calling thread until it waits or ends: the run's
    /// state then.
    pub fn run(&self, workflow: impl Into<WorkflowKey>, input: Value) -> Result<RunState, Error> {
        self.check_running()?;
        let run_id = self.shared.engine.start(workflow, input)?;
        Ok(self.with_retries(|| self.shared.engine.tick(run_id))?)
    }

    /// Starts a run and hands it to the workers; returns at once.
    pub fn start_run(
        &self,
        workflow: impl Into<WorkflowKey>,
        input: Value,
    ) -> Result<RunId, Error> {
        self.check_running()?;
        let run_id = self.shared.engine.start(workflow, input)?;
        self.shared.submit(run_id, None, true);
        Ok(run_id)
    }

    /// Queues a tick of the run for the workers (e.g. after changing it elsewhere).
    pub fn enqueue(&self, run_id: RunId) -> Result<(), Error> {
        self.check_running()?;
        self.shared.submit(run_id, None, true);
        Ok(())
    }

    /// Delivers an event to `wait_key`: resumes the run waiting on it (durably, before
    /// returning), or keeps the event in the key's durable inbox for the run that will
    /// wait on it. Never applies an event twice.
    pub fn deliver(&self, wait_key: &str, payload: Value) -> Result<Delivered, Error> {
        self.check_running()?;
        let delivered = self.shared.engine.deliver(wait_key, payload)?;
        let counter = match delivered {
            Delivered::Resumed(_) => &self.shared.counters.events_delivered,
            Delivered::Queued(_) => &self.shared.counters.events_queued,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(delivered)
    }

    /// Answers the wait of a run whatever its key: the run's state after resuming.
    pub fn respond(&self, run_id: RunId, payload: Value) -> Result<RunState, Error> {
        self.check_running()?;
        let state = self.shared.engine.load(run_id)?;
        let key = state.waiting.as_ref().and_then(|w| w.wait_key.clone());
        let Some(key) = key.filter(|_| state.status == RunStatus::Waiting) else {
            return Err(Error::NotWaitingOnKey {
                run_id,
                status: state.status,
            });
        };
        let state =
            self.with_retries(|| self.shared.engine.resume(run_id, &key, payload.clone()))?;
        self.shared
            .counters
            .events_delivered
            .fetch_add(1, Ordering::Relaxed);
        Ok(state)
    }

    /// Pauses the run (recorded in its ledger): no step runs until unpaused.
    pub fn pause(&self, run_id: RunId) -> Result<RunState, Error> {
        self.check_running()?;
        Ok(self.with_retries(|| self.shared.engine.pause(run_id))?)
    }

    /// Unpauses the run and lets it carry on, firing a timer that came due meanwhile.
    pub fn unpause(&self, run_id: RunId) -> Result<RunState, Error> {
        self.check_running()?;
        let state = self.with_retries(|| self.shared.engine.unpause(run_id))?;
        self.shared.wake_timers();
        Ok(state)
    }

    /// Cancels the run and then every descendant run (child runs, theirs, …), each
    /// recorded in its own ledger. Idempotent. Returns the root run's outcome. A tree larger
    /// than `cascade_runs_max` is refused before anything is cancelled.
    pub fn cancel(&self, run_id: RunId, reason: &str) -> Result<CancelOutcome, Error> {
        self.check_running()?;
        let engine = &self.shared.engine;
        let max = self.shared.config.cascade_runs_max;
        let descendants = match engine.descendants(run_id, max) {
            Err(ledgerflow_kernel::Error::LimitExceeded { .. }) => {
                return Err(Error::CascadeTooLarge { run_id, max })
            }
            other => other?,
        };
        let outcome = self.with_retries(|| engine.cancel(run_id, reason))?;
        let child_reason = format!("parent run {run_id} cancelled: {reason}");
        for child in descendants {
            self.with_retries(|| engine.cancel(child, &child_reason))?;
        }
        Ok(outcome)
    }

    /// Blocks until the run waits (and is not paused) or ends, or `timeout` passes. A
    /// cancelled run fails at once with [`Error::Cancelled`], on every call.
    pub fn await_run(&self, run_id: RunId, timeout: Duration) -> Result<RunState, Error> {
        self.await_until(run_id, timeout, |state| {
            state.status == RunStatus::Waiting && !state.paused
        })
    }

    /// Blocks until the run ends (completed or failed), or `timeout` passes. A cancelled
    /// run fails at once with [`Error::Cancelled`].
    pub fn await_end(&self, run_id: RunId, timeout: Duration) -> Result<RunState, Error> {
        self.await_until(run_id, timeout, |_| false)
    }

    fn await_until(
        &self,
        run_id: RunId,
        timeout: Duration,
        ready: impl Fn(&RunState) -> bool,
    ) -> Result<RunState, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = *lock(&self.shared.changes);
            let state = self.shared.engine.load(run_id)?;
            if state.status == RunStatus::Cancelled {
                return Err(Error::Cancelled { run_id });
            }
            if state.status.is_terminal() || ready(&state) {
                return Ok(state);
            }
            let changes = lock(&self.shared.changes);
            if *changes != seen {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                let waited_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                return Err(Error::Timeout { run_id, waited_ms });
            }
            let _ = self
                .shared
                .changed
                .wait_timeout(changes, deadline - now)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Blocks until the store's event feed has entries after `cursor` (acknowledged, so
    /// durable in the default mode), or `timeout` passes; returns them (possibly none, on
    /// timeout) with the cursor to wait from next.
    pub fn wait_events(
        &self,
        cursor: &FeedCursor,
        limit: usize,
        timeout: Duration,
    ) -> Result<FeedPage, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = *lock(&self.shared.changes);
            let page = self.shared.engine.read_events(cursor, limit)?;
            if !page.events.is_empty() {
                return Ok(page);
            }
            let changes = lock(&self.shared.changes);
            if *changes != seen {
                continue;
            }
            let now = Instant::now();
            if now >= deadline || self.shared.stopped() {
                return Ok(page);
            }
            let _ = self
                .shared
                .changed
                .wait_timeout(changes, deadline - now)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A feed of run states after each commit the engine makes, sent only once the store
    /// has acknowledged it. Holds `capacity` states; a subscriber that falls further behind
    /// misses states (it can always `load` the latest).
    pub fn subscribe(&self, capacity: usize) -> Receiver<RunState> {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        lock(&self.shared.subscribers).push(tx);
        rx
    }

    /// Looks at the timers again now: call after moving a manual clock.
    pub fn wake(&self) {
        self.shared.wake_timers();
    }

    /// Counters and depths.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let store = self.shared.engine.store();
        let page = store.limits().read_items_max.max(1);
        let inbox_depth = store
            .inbox_keys(None, page)
            .unwrap_or_default()
            .iter()
            .map(|key| {
                store
                    .inbox(key, page)
                    .map_or(0, |entries| entries.len() as u64)
            })
            .sum();
        Stats {
            runs_ticked: c.runs_ticked.load(Ordering::Relaxed),
            timers_fired: c.timers_fired.load(Ordering::Relaxed),
            events_delivered: c.events_delivered.load(Ordering::Relaxed),
            events_queued: c.events_queued.load(Ordering::Relaxed),
            conflicts_retried: c.conflicts_retried.load(Ordering::Relaxed),
            job_errors: c.job_errors.load(Ordering::Relaxed),
            queue_depth: lock(&self.shared.queue).order.len() as u64,
            inbox_depth,
            timer_lag_last_ms: c.timer_lag_last_ms.load(Ordering::Relaxed),
            timer_lag_max_ms: c.timer_lag_max_ms.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting work, lets the workers finish the queued runs, and joins every
    /// thread. Idempotent.
    pub fn stop(&self) {
        {
            // Under the queue lock, so no worker can check the flag and then miss the wake-up.
            let _queue = lock(&self.shared.queue);
            self.shared.stopping.store(true, Ordering::SeqCst);
            self.shared.work_ready.notify_all();
            self.shared.space_free.notify_all();
            self.shared.job_done.notify_all();
        }
        self.shared.wake_timers();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            let _ = thread.join();
        }
    }

    fn with_retries<T>(
        &self,
        f: impl Fn() -> Result<T, ledgerflow_kernel::Error>,
    ) -> Result<T, ledgerflow_kernel::Error> {
        let mut attempt = 0;
        loop {
            match f() {
                Err(e) if is_conflict(&e) && attempt < self.shared.config.conflict_retries_max => {
                    attempt += 1;
                    self.shared
                        .counters
                        .conflicts_retried
                        .fetch_add(1, Ordering::Relaxed);
                }
                other => return other,
            }
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|e| {
            Error::Engine(ledgerflow_kernel::Error::Store(store::Error::Io(format!(
                "spawning {name}: {e}"
            ))))
        })
}
