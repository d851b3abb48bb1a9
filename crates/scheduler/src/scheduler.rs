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
    CancelOutcome, Delivered, Engine, ErrorKind, FeedCursor, FeedPage, RunId, RunState, RunStatus,
    WorkflowKey,
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
    /// `respond` on a run that is not waiting for an answer (see [`Engine::respond`]).
    #[error("run {run_id} is not waiting for an answer: it waits for {waits_for}; respond answers ask_user and wait_event waits only")]
    NotWaitingOnKey {
        /// The run.
        run_id: RunId,
        /// Its status.
        status: RunStatus,
        /// What it waits for, in words.
        waits_for: String,
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

impl Error {
    /// What kind of failure this is, whatever layer it came from.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Engine(e) => e.kind(),
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::NotWaitingOnKey { .. } => ErrorKind::InvalidState,
            Error::CascadeTooLarge { .. } => ErrorKind::LimitExceeded,
            Error::Stopped => ErrorKind::Closed,
        }
    }

    /// Whether this is a lost race: nothing of the call was written; it can be retried.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Engine(e) if e.is_conflict())
    }
}

/// Scheduler settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Worker threads ticking runs. Default 16: a job mostly waits for its commits to be
    /// flushed, and commits in flight together share one device flush (group commit), so
    /// workers beyond the cores raise throughput (10,000 timers due at once on 2 cores:
    /// fired in 2.5 s with 2 workers, 1.1 s with 16; docs/benchmarks.md).
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
            workers: 16,
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
    /// Jobs (advancing a run: its steps, a due timer, a queued event) the workers ran.
    pub runs_ticked: u64,
    /// Timers that fired.
    pub timers_fired: u64,
    /// Events delivered to a waiting run.
    pub events_delivered: u64,
    /// Events queued in an inbox because no run waited yet.
    pub events_queued: u64,
    /// Version races lost and retried.
    pub conflicts_retried: u64,
    /// Jobs that ended in an error other than a lost race or an unregistered workflow.
    pub job_errors: u64,
    /// Runs set aside now because their workflow (id, version) is not registered; each is
    /// retried as soon as it is.
    pub runs_parked: u64,
    /// Runs waiting in the ready queue now.
    pub queue_depth: u64,
    /// Events waiting in inboxes now (counted over at most one page of keys).
    pub inbox_depth: u64,
    /// Lag of the last timer fired: when it fired minus when it was due.
    pub timer_lag_last_ms: i64,
    /// Largest lag seen.
    pub timer_lag_max_ms: i64,
    /// Whether start-up recovery has finished (see [`Scheduler::wait_recovered`]).
    pub recovered: bool,
    /// Jobs passed over because another worker process holds the run's lease (a store
    /// shared by many workers, see [`store::Leases`]): that worker does the work.
    pub runs_leased_elsewhere: u64,
    /// Commits refused because this worker's lease on the run had been taken over (it
    /// stalled past its lease): the worker that took the run on carries it.
    pub commits_fenced: u64,
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
    runs_leased_elsewhere: AtomicU64,
    commits_fenced: AtomicU64,
}

/// Runs waiting for their owner. A run is owned by at most one thread at a time: a worker
/// running its job, or a caller (`run`, `respond`, `deliver`, `pause`, `cancel`, …) that
/// claimed it. Work for an owned run is parked in `again` and queued when the owner lets
/// go, so one run is ticked by one thread at a time and no work for it is lost.
#[derive(Default)]
struct Queue {
    order: VecDeque<RunId>,
    /// Queued runs (each job does whatever is due for its run).
    pending: HashSet<RunId>,
    owned: HashSet<RunId>,
    again: HashSet<RunId>,
    /// Callers waiting to claim a run, by run: a worker does not pick such a run up again
    /// before them, so a caller is never starved by a run that keeps being requeued.
    wanted: HashMap<RunId, usize>,
}

/// Runs the workers leave alone until something changes: `parked` until their workflow is
/// registered, `failed` (an error other than a lost race) until the next start.
#[derive(Default)]
struct SetAside {
    parked: HashMap<WorkflowKey, HashSet<RunId>>,
    parked_runs: HashSet<RunId>,
    failed: HashSet<RunId>,
}

impl SetAside {
    fn contains(&self, run_id: &RunId) -> bool {
        self.parked_runs.contains(run_id) || self.failed.contains(run_id)
    }
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
    set_aside: Mutex<SetAside>,
    recovered: Mutex<bool>,
    recovered_changed: Condvar,
    stopping: AtomicBool,
    counters: Counters,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A caller's ownership of a run (see [`Queue`]), and of its lease when the store is
/// shared by many workers; let go when dropped.
struct Owner<'a> {
    shared: &'a Shared,
    run_id: RunId,
}

impl Drop for Owner<'_> {
    fn drop(&mut self) {
        self.shared.release_lease(self.run_id);
        self.shared.release(self.run_id);
    }
}

/// Whether a commit of the call was refused by the fence (see [`store::Leases`]), the
/// call's first commit or one after others went in: another worker holds the run now.
fn is_fenced(e: &ledgerflow_kernel::Error) -> bool {
    match e {
        ledgerflow_kernel::Error::Store(store::Error::Fenced { .. }) => true,
        ledgerflow_kernel::Error::AfterCommit { source, .. } => is_fenced(source),
        _ => false,
    }
}

/// How long a caller waits at most for another worker process to let go of a run it
/// holds (a job takes a few commits; a lease is renewed while its holder lives): then the
/// call goes on and its commit is refused with the holder's name.
const LEASE_WAIT_MAX: Duration = Duration::from_secs(10);

impl Shared {
    fn stopped(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Queues a job for `run_id`. With `block`, waits for room in the queue (the timer
    /// thread and `start_run`: backpressure); without, always accepts, so a thread that
    /// owns a run and hands work off (a worker) never waits on the queue it drains.
    fn submit(&self, run_id: RunId, block: bool) -> bool {
        let mut queue = lock(&self.queue);
        if queue.owned.contains(&run_id) {
            queue.again.insert(run_id);
            return true;
        }
        if queue.pending.contains(&run_id) {
            return true;
        }
        while block && queue.order.len() >= self.config.ready_queue_max {
            if self.stopped() {
                return false;
            }
            queue = self
                .space_free
                .wait(queue)
                .unwrap_or_else(|p| p.into_inner());
        }
        queue.order.push_back(run_id);
        queue.pending.insert(run_id);
        self.work_ready.notify_one();
        true
    }

    fn leases(&self) -> Option<&dyn store::Leases> {
        self.engine.store().leases()
    }

    /// Lets go of the run's lease, if the store has leases. A failure is left to the
    /// lease's expiry.
    fn release_lease(&self, run_id: RunId) {
        if let Some(leases) = self.leases() {
            let _ = leases.release(run_id);
        }
    }

    /// Makes the calling thread the run's one owner (see [`Shared::claim_local`]) and,
    /// when many workers share the store, this worker the holder of its lease, waiting up
    /// to [`LEASE_WAIT_MAX`] for another worker to let go of it.
    fn claim(&self, run_id: RunId) -> Owner<'_> {
        let owner = self.claim_local(run_id);
        if let Some(leases) = self.leases() {
            let deadline = Instant::now() + LEASE_WAIT_MAX;
            let mut pause = Duration::from_millis(2);
            while !matches!(leases.acquire(run_id), Ok(true) | Err(_))
                && Instant::now() < deadline
                && !self.stopped()
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
        }
        owner
    }

    /// Makes the calling thread the run's one owner, waiting while another thread owns
    /// it. A job queued for it meanwhile runs after the caller lets go.
    fn claim_local(&self, run_id: RunId) -> Owner<'_> {
        let mut queue = lock(&self.queue);
        *queue.wanted.entry(run_id).or_default() += 1;
        while queue.owned.contains(&run_id) {
            queue = self.job_done.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
        match queue.wanted.get_mut(&run_id) {
            Some(count) if *count > 1 => *count -= 1,
            _ => {
                queue.wanted.remove(&run_id);
            }
        }
        queue.owned.insert(run_id);
        if queue.pending.remove(&run_id) {
            // Its queued job runs once the caller is done (the entry in `order` is skipped).
            queue.again.insert(run_id);
        }
        Owner {
            shared: self,
            run_id,
        }
    }

    /// Lets go of a run; queues the work that arrived for it meanwhile.
    fn release(&self, run_id: RunId) {
        let mut queue = lock(&self.queue);
        queue.owned.remove(&run_id);
        // A caller waiting to claim the run goes first; the work stays parked for after.
        if queue.wanted.contains_key(&run_id) {
            self.job_done.notify_all();
            return;
        }
        if queue.again.remove(&run_id) {
            queue.order.push_back(run_id);
            queue.pending.insert(run_id);
            self.work_ready.notify_one();
        }
        self.job_done.notify_all();
    }

    /// Waits (at most until `deadline`) until no worker is executing a job of the run.
    fn await_job_done(&self, run_id: RunId, deadline: Instant) {
        let mut queue = lock(&self.queue);
        while queue.owned.contains(&run_id) {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            queue = self
                .job_done
                .wait_timeout(queue, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
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

    /// Told that `key` was registered: queues the runs parked for it.
    fn on_register(&self, key: &WorkflowKey) {
        let runs = {
            let mut set_aside = lock(&self.set_aside);
            let runs = set_aside.parked.remove(key).unwrap_or_default();
            for run_id in &runs {
                set_aside.parked_runs.remove(run_id);
            }
            runs
        };
        for run_id in runs {
            self.submit(run_id, false);
        }
        self.wake_timers();
    }

    fn worker(&self) {
        loop {
            let run_id = {
                let mut queue = lock(&self.queue);
                loop {
                    if let Some(run_id) = queue.order.pop_front() {
                        // Skipped: a caller claimed it while it was queued.
                        if !queue.pending.remove(&run_id) {
                            continue;
                        }
                        // A caller is about to claim it: its job runs after the caller.
                        if queue.wanted.contains_key(&run_id) {
                            queue.again.insert(run_id);
                            continue;
                        }
                        queue.owned.insert(run_id);
                        self.space_free.notify_one();
                        break run_id;
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
            self.execute(run_id);
            self.release(run_id);
        }
    }

    /// Advances the run (its steps, a due timer, a queued event), retrying lost races. A
    /// run whose workflow is not registered is parked until it is; one that fails
    /// otherwise is set aside until the next start (its timer and events stay stored).
    fn execute(&self, run_id: RunId) {
        let counters = &self.counters;
        if let Some(leases) = self.leases() {
            match leases.acquire(run_id) {
                Ok(true) => {}
                Ok(false) => {
                    counters
                        .runs_leased_elsewhere
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                }
                // The database is out of reach: the run's lease expires, and a worker
                // (this one too) claims it again.
                Err(_) => {
                    counters.job_errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        self.advance(run_id);
        // With work left for the run here (over its step budget, an event queued for it),
        // the next job finds the lease still this worker's, without a round trip.
        if !lock(&self.queue).again.contains(&run_id) {
            self.release_lease(run_id);
        }
    }

    fn advance(&self, run_id: RunId) {
        let counters = &self.counters;
        for _ in 0..=self.config.conflict_retries_max {
            match self.engine.advance(run_id) {
                Ok(advanced) => {
                    counters.runs_ticked.fetch_add(1, Ordering::Relaxed);
                    if let (Some(due_at_ms), Some(fired_at_ms)) =
                        (advanced.timer_fired_due_at_ms, advanced.timer_fired_at_ms)
                    {
                        let lag_ms = fired_at_ms - due_at_ms;
                        counters.timers_fired.fetch_add(1, Ordering::Relaxed);
                        counters.timer_lag_last_ms.store(lag_ms, Ordering::Relaxed);
                        counters
                            .timer_lag_max_ms
                            .fetch_max(lag_ms, Ordering::Relaxed);
                    }
                    return;
                }
                Err(e) if e.is_conflict() => {
                    counters.conflicts_retried.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if is_fenced(&e) => {
                    counters.commits_fenced.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(ledgerflow_kernel::Error::WorkflowNotRegistered {
                    workflow_id,
                    version,
                }) => {
                    self.park(
                        run_id,
                        WorkflowKey {
                            workflow_id,
                            version,
                        },
                    );
                    return;
                }
                Err(_) => break,
            }
        }
        counters.job_errors.fetch_add(1, Ordering::Relaxed);
        lock(&self.set_aside).failed.insert(run_id);
    }

    fn park(&self, run_id: RunId, key: WorkflowKey) {
        // Another worker process may have the workflow: its lease lapses for that one.
        if let Some(leases) = self.leases() {
            leases.abandon(run_id);
        }
        {
            let mut set_aside = lock(&self.set_aside);
            set_aside.parked_runs.insert(run_id);
            set_aside
                .parked
                .entry(key.clone())
                .or_default()
                .insert(run_id);
        }
        // Registered between the failed attempt and the parking: go on now.
        if self.engine.registry().get(&key).is_some() {
            self.on_register(&key);
        }
    }

    /// Queues the work a restart leaves behind and waits until the workers have done it:
    /// runs that were running, runs waiting on a key whose inbox holds events (a crash
    /// between queueing and consuming), and timers already due. Then marks recovery done.
    fn recover(&self) -> Result<(), Error> {
        let store = self.engine.store();
        let page = store.limits().read_items_max.max(1);
        let mut after = None;
        // With leases, the runs left running (by this worker before a restart, or by one
        // that died) are claimed with the due timers, below.
        while self.leases().is_none() {
            let runs = store
                .list_runs(Some(RunStatus::Running), after, page)
                .map_err(ledgerflow_kernel::Error::from)?;
            for run_id in &runs {
                self.submit(*run_id, true);
            }
            self.wait_until_done(&runs);
            if runs.len() < page || self.stopped() {
                break;
            }
            after = runs.last().copied();
        }
        let mut after: Option<String> = None;
        loop {
            let keys = store
                .inbox_keys(after.as_deref(), page)
                .map_err(ledgerflow_kernel::Error::from)?;
            let mut waiters = Vec::new();
            for key in &keys {
                if let Some(run_id) = store
                    .waiting_on(key)
                    .map_err(ledgerflow_kernel::Error::from)?
                {
                    self.submit(run_id, true);
                    waiters.push(run_id);
                }
            }
            self.wait_until_done(&waiters);
            if keys.len() < page || self.stopped() {
                break;
            }
            after = keys.last().cloned();
        }
        let now_ms = self.engine.clock().now_ms();
        let dispatched = self
            .dispatch_due(store.as_ref(), now_ms)
            .map_err(ledgerflow_kernel::Error::from)?;
        self.wait_until_done(&dispatched);
        Ok(())
    }

    fn mark_recovered(&self) {
        *lock(&self.recovered) = true;
        self.recovered_changed.notify_all();
    }

    /// Renews this worker's leases and listens for other workers' notices (a timer set),
    /// waking the timer thread on each: with a store shared by many workers.
    fn lease_loop(&self, leases: &dyn store::Leases) {
        let renew_every =
            Duration::from_millis(leases.lease_ms() / 3).max(Duration::from_millis(1));
        let listen_max = renew_every.min(Duration::from_millis(500));
        let mut renewed = Instant::now();
        while !self.stopped() {
            match leases.wait_notice(listen_max) {
                Ok(true) => self.wake_timers(),
                Ok(false) => {}
                // Out of reach: listen again after a pause (the timer thread still looks
                // at least every half lease).
                Err(_) => std::thread::sleep(listen_max),
            }
            if renewed.elapsed() >= renew_every {
                renewed = Instant::now();
                if leases.renew().is_err() {
                    self.counters.job_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Dispatches every due timer, then sleeps until the next one is due or something
    /// changes. Time comes from the engine's clock.
    fn timer_loop(&self) {
        if self.recover().is_err() {
            self.counters.job_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.mark_recovered();
        let store = Arc::clone(self.engine.store());
        let mut seen = *lock(&self.timer_generation);
        while !self.stopped() {
            let now_ms = self.engine.clock().now_ms();
            let next = match self.dispatch_due(store.as_ref(), now_ms) {
                Ok(_) => store.next_timer_after(now_ms).ok().flatten(),
                Err(_) => None,
            };
            let generation = lock(&self.timer_generation);
            if *generation != seen || self.stopped() {
                seen = *generation;
                continue;
            }
            // From the time now, not the pass's start: a long pass may have let the next
            // timer come due already.
            let now_ms = self.engine.clock().now_ms();
            let mut wait = next.map_or(Duration::from_secs(3_600), |t| {
                Duration::from_millis(u64::try_from(t.due_at_ms - now_ms).unwrap_or(0).max(1))
            });
            if let Some(leases) = self.leases() {
                // Runs whose holder died are claimed once their leases expire.
                wait = wait.min(
                    Duration::from_millis(leases.lease_ms() / 2).max(Duration::from_millis(1)),
                );
            }
            let (generation, _) = self
                .timer_wake
                .wait_timeout(generation, wait)
                .unwrap_or_else(|p| p.into_inner());
            seen = *generation;
        }
    }

    /// Queues every timer due at `now_ms`, reading the timer index in pages of
    /// [`SchedulerConfig::timer_batch_max`] with a cursor; the ready queue's bound holds
    /// the thread back while the workers catch up. Runs parked (their workflow is not
    /// registered) or set aside are passed over, so they never hide the timers behind
    /// them. A run still queued from an earlier pass is not queued twice. Returns the
    /// runs queued.
    fn dispatch_due(&self, store: &dyn Store, now_ms: i64) -> Result<Vec<RunId>, store::Error> {
        let batch = self
            .config
            .timer_batch_max
            .min(store.limits().read_items_max)
            .max(1);
        if let Some(leases) = store.leases() {
            return self.claim_due(leases, now_ms, batch);
        }
        let mut after = None;
        let mut dispatched = Vec::new();
        while !self.stopped() {
            let due = store.due_timers(now_ms, after, batch)?;
            let Some(last) = due.last().copied() else {
                break;
            };
            let skipped: Vec<bool> = {
                let set_aside = lock(&self.set_aside);
                due.iter().map(|t| set_aside.contains(&t.run_id)).collect()
            };
            for (timer, skip) in due.iter().zip(skipped) {
                if !skip && self.submit(timer.run_id, true) {
                    dispatched.push(timer.run_id);
                }
            }
            if due.len() < batch {
                break;
            }
            after = Some(last);
        }
        Ok(dispatched)
    }

    /// [`Shared::dispatch_due`] with leases: claims, a batch at a time, the due timers and
    /// the runs left running by a worker that stopped renewing, and queues them. Each is
    /// claimed by one worker of all that share the store.
    fn claim_due(
        &self,
        leases: &dyn store::Leases,
        now_ms: i64,
        batch: usize,
    ) -> Result<Vec<RunId>, store::Error> {
        let mut dispatched = Vec::new();
        while !self.stopped() {
            let claimed = leases.claim_work(now_ms, batch)?;
            for run_id in &claimed {
                if self.submit(*run_id, true) {
                    dispatched.push(*run_id);
                }
            }
            if claimed.len() < batch {
                break;
            }
        }
        Ok(dispatched)
    }

    /// Waits until no run of `runs` is queued or owned any more.
    fn wait_until_done(&self, runs: &[RunId]) {
        let mut queue = lock(&self.queue);
        while !self.stopped()
            && runs
                .iter()
                .any(|run_id| queue.pending.contains(run_id) || queue.owned.contains(run_id))
        {
            queue = self.job_done.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Runs the scheduler's threads over an engine. Dropping it stops it.
///
/// One run is advanced by one thread at a time: a worker, or a caller of `run`,
/// `respond`, `deliver`, `pause`, `unpause` or `cancel`, which owns the run for the call.
/// A run with work left (over its step budget, a child started, an event queued for it)
/// is queued again, behind the runs already waiting, so one long run cannot starve others.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use ledgerflow_kernel::{Effect, Engine, ManualClock, MemoryStore, RunStatus, StepContext, StepPlan, WorkflowSpec};
/// use ledgerflow_scheduler::{Scheduler, SchedulerConfig};
/// use serde_json::json;
///
/// let clock = ManualClock::new(1_000);
/// let engine = Arc::new(Engine::new(Arc::new(MemoryStore::new()), Arc::new(clock.clone())));
/// engine.register(
///     WorkflowSpec::builder("nap", 1)
///         .node("sleep", |ctx: &mut StepContext<'_>| {
///             StepPlan::effect(Effect::wait_until(ctx.now_ms + 60_000)).then_complete(json!("rested"))
///         })
///         .entry("sleep")
///         .build()
///         .expect("the entry node exists"),
/// );
/// let scheduler = Scheduler::start(Arc::clone(&engine), SchedulerConfig::default())?;
/// let run = scheduler.run(("nap", 1), json!({}))?;
/// assert_eq!(run.status, RunStatus::Waiting);
/// clock.advance_ms(60_000); // the timer thread wakes and a worker fires the timer
/// let done = scheduler.await_end(run.run_id, Duration::from_secs(10))?;
/// assert_eq!(done.output, Some(json!("rested")));
/// scheduler.stop();
/// # Ok::<(), ledgerflow_scheduler::Error>(())
/// ```
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
    /// thread recovers what a restart left behind (runs left running, inboxes a crash left
    /// behind, overdue timers; see [`Scheduler::wait_recovered`]). Register workflows on
    /// the engine before starting when you can; work for a workflow registered later is
    /// set aside and done as soon as it is registered.
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
            set_aside: Mutex::default(),
            recovered: Mutex::new(false),
            recovered_changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        engine.observe({
            let weak = weak.clone();
            move |state| {
                if let Some(shared) = weak.upgrade() {
                    shared.on_commit(state);
                }
            }
        });
        engine.hand_off_follow_ups({
            let weak = weak.clone();
            move |run_id| {
                if let Some(shared) = weak.upgrade() {
                    shared.submit(run_id, false);
                }
            }
        });
        engine.registry().on_register({
            let weak = weak.clone();
            move |key| {
                if let Some(shared) = weak.upgrade() {
                    shared.on_register(key);
                }
            }
        });
        engine
            .clock()
            .on_moved(Box::new(move || match weak.upgrade() {
                Some(shared) => {
                    shared.wake_timers();
                    true
                }
                None => false,
            }));
        let mut threads = Vec::new();
        for i in 0..config.workers.max(1) {
            let worker = Arc::clone(&shared);
            threads.push(spawn(&format!("ledgerflow-worker-{i}"), move || {
                worker.worker()
            })?);
        }
        let timers = Arc::clone(&shared);
        threads.push(spawn("ledgerflow-timers", move || timers.timer_loop())?);
        if engine.store().leases().is_some() {
            let keeper = Arc::clone(&shared);
            threads.push(spawn("ledgerflow-leases", move || {
                if let Some(leases) = keeper.engine.store().leases() {
                    keeper.lease_loop(leases);
                }
            })?);
        }
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

    /// Blocks until start-up recovery has finished — the runs a restart left running have
    /// been ticked, events a crash left in inboxes consumed, timers due at start fired (or
    /// set aside, for workflows not registered yet) — or `timeout` passes. Returns whether
    /// it has finished.
    pub fn wait_recovered(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut recovered = lock(&self.shared.recovered);
        while !*recovered {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            recovered = self
                .shared
                .recovered_changed
                .wait_timeout(recovered, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Starts a run and runs it on the calling thread until it waits, ends or is paused,
    /// however many step budgets that takes (a run that loops forever never returns): the
    /// run's state then. Use [`Scheduler::start_run`] to hand a run to the workers instead.
    pub fn run(&self, workflow: impl Into<WorkflowKey>, input: Value) -> Result<RunState, Error> {
        self.check_running()?;
        let engine = &self.shared.engine;
        let run_id = RunId::new_v4();
        // A new run: its creating commit gives this worker its lease.
        let _owner = self.shared.claim_local(run_id);
        // The start is committed with the first steps; a run left over its step budget
        // keeps being ticked here.
        let mut state = engine.run_as(run_id, workflow, input)?;
        while state.is_runnable() && !self.shared.stopped() {
            state = self.with_retries(|| engine.tick(run_id))?;
        }
        Ok(state)
    }

    /// Starts a run and hands it to the workers; returns at once.
    pub fn start_run(
        &self,
        workflow: impl Into<WorkflowKey>,
        input: Value,
    ) -> Result<RunId, Error> {
        self.check_running()?;
        let run_id = self.shared.engine.start(workflow, input)?;
        self.shared.submit(run_id, true);
        Ok(run_id)
    }

    /// Queues the run for the workers, which do whatever is due for it (e.g. after
    /// changing it elsewhere).
    pub fn enqueue(&self, run_id: RunId) -> Result<(), Error> {
        self.check_running()?;
        self.shared.submit(run_id, true);
        Ok(())
    }

    /// Delivers an event to `wait_key`: resumes the run waiting on it (durably, before
    /// returning), or keeps the event in the key's durable inbox for the run that will
    /// wait on it. Never applies an event twice.
    pub fn deliver(&self, wait_key: &str, payload: Value) -> Result<Delivered, Error> {
        self.deliver_by(wait_key, payload, None)
    }

    /// [`Scheduler::deliver`], recording `by` (who delivered) in the `resumed` record when
    /// a waiting run is resumed.
    pub fn deliver_by(
        &self,
        wait_key: &str,
        payload: Value,
        by: Option<&str>,
    ) -> Result<Delivered, Error> {
        self.check_running()?;
        let delivered = self
            .shared
            .engine
            .deliver_with(wait_key, payload, by, |run_id| self.shared.claim(run_id))?;
        let counter = match delivered {
            Delivered::Resumed(_) => &self.shared.counters.events_delivered,
            Delivered::Queued(_) => &self.shared.counters.events_queued,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(delivered)
    }

    /// Answers what the run waits for — a person (`ask_user`) or an event (`wait_event`) —
    /// finding the wait_key itself: the run's state after resuming. Other waits (a timer, a
    /// child workflow, an external job, a retry) are refused with
    /// [`Error::NotWaitingOnKey`], naming what the run waits for. Once the answer is
    /// committed this returns the run's state, even if a later step lost a race to another
    /// writer (that writer carries the run on).
    pub fn respond(&self, run_id: RunId, payload: Value) -> Result<RunState, Error> {
        self.respond_by(run_id, payload, None)
    }

    /// [`Scheduler::respond`], recording `by` (who answered) in the `resumed` record.
    pub fn respond_by(
        &self,
        run_id: RunId,
        payload: Value,
        by: Option<&str>,
    ) -> Result<RunState, Error> {
        self.check_running()?;
        let engine = &self.shared.engine;
        let _owner = self.shared.claim(run_id);
        let state = self
            .with_retries(|| engine.respond_by(run_id, payload.clone(), by))
            .map_err(|e| match e {
                ledgerflow_kernel::Error::NotAnswerable {
                    run_id,
                    status,
                    waits_for,
                } => Error::NotWaitingOnKey {
                    run_id,
                    status,
                    waits_for,
                },
                other => Error::Engine(other),
            })?;
        self.shared
            .counters
            .events_delivered
            .fetch_add(1, Ordering::Relaxed);
        Ok(state)
    }

    /// Pauses the run (recorded in its ledger): no step runs until unpaused.
    pub fn pause(&self, run_id: RunId) -> Result<RunState, Error> {
        self.pause_by(run_id, None)
    }

    /// [`Scheduler::pause`], recording `by` (who paused) in the `paused` record.
    pub fn pause_by(&self, run_id: RunId, by: Option<&str>) -> Result<RunState, Error> {
        self.check_running()?;
        let _owner = self.shared.claim(run_id);
        Ok(self.with_retries(|| self.shared.engine.pause_by(run_id, by))?)
    }

    /// Unpauses the run and lets it carry on, firing a timer that came due meanwhile.
    pub fn unpause(&self, run_id: RunId) -> Result<RunState, Error> {
        self.unpause_by(run_id, None)
    }

    /// [`Scheduler::unpause`], recording `by` (who unpaused) in the `unpaused` record.
    pub fn unpause_by(&self, run_id: RunId, by: Option<&str>) -> Result<RunState, Error> {
        self.check_running()?;
        let state = {
            let _owner = self.shared.claim(run_id);
            self.with_retries(|| self.shared.engine.unpause_by(run_id, by))?
        };
        self.shared.wake_timers();
        Ok(state)
    }

    /// Cancels the run and then every descendant run (child runs, theirs, …), each
    /// recorded in its own ledger. Idempotent. Returns the root run's outcome. A tree larger
    /// than `cascade_runs_max` is refused before anything is cancelled.
    pub fn cancel(&self, run_id: RunId, reason: &str) -> Result<CancelOutcome, Error> {
        self.cancel_by(run_id, reason, None)
    }

    /// [`Scheduler::cancel`], recording `by` (who cancelled) in every `cancelled` record.
    pub fn cancel_by(
        &self,
        run_id: RunId,
        reason: &str,
        by: Option<&str>,
    ) -> Result<CancelOutcome, Error> {
        self.check_running()?;
        let max = self.shared.config.cascade_runs_max;
        let claim = |run| self.shared.claim(run);
        match self
            .shared
            .engine
            .cancel_cascade_with(run_id, reason, by, max, claim)
        {
            Ok(cascade) => Ok(cascade.root),
            Err(ledgerflow_kernel::Error::LimitExceeded { .. }) => {
                Err(Error::CascadeTooLarge { run_id, max })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Blocks until the run stops to wait — for anything: a person, an event, a timer, a
    /// child workflow — and is not paused, or ends, or `timeout` passes. Use it to hand a
    /// run back to whoever must act next; use [`Scheduler::await_end`] to wait for the
    /// result. A paused run keeps the caller waiting; a cancelled run fails at once with
    /// [`Error::Cancelled`], on every call.
    pub fn await_waiting(&self, run_id: RunId, timeout: Duration) -> Result<RunState, Error> {
        self.await_until(run_id, timeout, |state| {
            state.status == RunStatus::Waiting && !state.paused
        })
    }

    /// The former name of [`Scheduler::await_waiting`], which says what it waits for: the
    /// run returns at any wait, a timer's too, not only at its end.
    #[deprecated(
        note = "returns at any wait, not only the end: use await_waiting, or await_end for the result"
    )]
    pub fn await_run(&self, run_id: RunId, timeout: Duration) -> Result<RunState, Error> {
        self.await_waiting(run_id, timeout)
    }

    /// Blocks until the run ends (completed or failed) — through every wait on the way —
    /// or `timeout` passes: the result. A cancelled run fails at once with
    /// [`Error::Cancelled`]. It returns after the scheduler's job that ended the run has
    /// finished, so [`Scheduler::stats`] already counts that job (a timer it fired, say).
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
                // The commit is visible before the worker that made it has counted it:
                // let that job finish, so the scheduler's stats include it.
                self.shared.await_job_done(run_id, deadline);
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
            runs_parked: lock(&self.shared.set_aside).parked_runs.len() as u64,
            recovered: *lock(&self.shared.recovered),
            runs_leased_elsewhere: c.runs_leased_elsewhere.load(Ordering::Relaxed),
            commits_fenced: c.commits_fenced.load(Ordering::Relaxed),
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
        self.shared.recovered_changed.notify_all();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            let _ = thread.join();
        }
        // From now on the engine continues follow-ups on the calling thread again.
        self.shared.engine.stop_handing_off();
    }

    fn with_retries<T>(
        &self,
        f: impl Fn() -> Result<T, ledgerflow_kernel::Error>,
    ) -> Result<T, ledgerflow_kernel::Error> {
        let mut attempt = 0;
        loop {
            match f() {
                Err(e) if e.is_conflict() && attempt < self.shared.config.conflict_retries_max => {
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
            Error::Engine(ledgerflow_kernel::Error::Store(store::Error::io(
                format!("spawning {name}"),
                e,
            )))
        })
}
