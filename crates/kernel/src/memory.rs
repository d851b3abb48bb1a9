//! `MemoryStore`: a complete in-memory `Store`, for tests and for hosts that need no
//! durability. One mutex makes every commit atomic.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use ledgerflow_ledger::merkle::{self, Frontier, TreeHash};
use ledgerflow_ledger::{Hash, Record};
use serde_json::Value;

use crate::store::{
    CheckReport, Commit, Delivery, Error, FeedEntry, InboxEntry, IndexChange, IndexReader, Store,
    StoreLimits, TimeField, TimerEntry,
};
use crate::{ArtifactRef, RunId, RunState, RunStatus, Snapshot, SnapshotFilter};

impl Inner {
    /// [`Store::check`] of everything behind the lock: chains and replays, indexes, and
    /// the global log recomputed from the feed.
    fn check(&self) -> Result<CheckReport, Error> {
        let mut report = CheckReport::default();
        for (run_id, state) in &self.runs {
            let corrupt = |what: &str| Error::Corrupt(format!("run {run_id}: {what}"));
            let records = self.ledgers.get(run_id).map_or(&[][..], Vec::as_slice);
            ledgerflow_ledger::verify_chain(records)
                .map_err(|e| Error::Corrupt(format!("run {run_id}: {e}")))?;
            let replayed =
                crate::replay(records).map_err(|e| Error::Corrupt(format!("run {run_id}: {e}")))?;
            if &replayed != state {
                return Err(corrupt("replayed ledger differs from the stored state"));
            }
            if !self
                .by_status
                .get(&state.status)
                .is_some_and(|runs| runs.contains(run_id))
            {
                return Err(corrupt("missing from the status index"));
            }
            if let Some(wait) = &state.waiting {
                if let Some(key) = &wait.wait_key {
                    if self.wait_keys.get(key) != Some(run_id) {
                        return Err(corrupt("wait_key index does not point at the run"));
                    }
                }
                if let Some(due_at_ms) = wait.until_ms {
                    let timer = TimerEntry {
                        due_at_ms,
                        run_id: *run_id,
                    };
                    if !self.timers.contains(&timer) {
                        return Err(corrupt("timer missing from the timer index"));
                    }
                }
            }
            report.runs += 1;
            report.records += records.len() as u64;
        }
        let indexed: usize = self.by_status.values().map(BTreeSet::len).sum();
        if indexed as u64 != report.runs {
            return Err(Error::Corrupt(format!(
                "status index has {indexed} entries for {} runs",
                report.runs
            )));
        }
        for (key, holder) in &self.wait_keys {
            if !self.runs.get(holder).is_some_and(|s| s.waits_on(key)) {
                return Err(Error::Corrupt(format!(
                    "wait_key index entry for run {holder} that does not wait on it"
                )));
            }
        }
        let mut frontier = Frontier::new();
        for entry in &self.feed {
            let leaf_index = frontier.size();
            let record = usize::try_from(entry.seq)
                .ok()
                .and_then(|seq| seq.checked_sub(1))
                .and_then(|i| self.ledgers.get(&entry.run_id)?.get(i))
                .ok_or_else(|| {
                    Error::Corrupt(format!(
                        "feed entry {} names record {} of run {}, which is missing",
                        entry.feed_seq, entry.seq, entry.run_id
                    ))
                })?;
            if self.leaves.get(&(entry.run_id, entry.seq)) != Some(&leaf_index) {
                return Err(Error::Corrupt(format!(
                    "record {} of run {} is not leaf {leaf_index} of the global log",
                    entry.seq, entry.run_id
                )));
            }
            let leaf = merkle::leaf_hash(entry.run_id, entry.seq, &record.hash());
            for (index, hash) in frontier.append(leaf) {
                let stored = usize::try_from(index)
                    .ok()
                    .and_then(|i| self.log_nodes.get(i));
                if stored != Some(&hash) {
                    return Err(Error::Corrupt(format!(
                        "the global log's hash {index} is missing or wrong"
                    )));
                }
            }
        }
        if frontier.size() != report.records || frontier.root() != self.log_frontier.root() {
            return Err(Error::Corrupt(format!(
                "the global log has {} leaves for {} records, or another root",
                frontier.size(),
                report.records
            )));
        }
        report.log_leaves = frontier.size();
        Ok(report)
    }
}

impl IndexReader for Inner {
    type Error = Error;

    fn wait_key_holder(&self, wait_key: &str) -> Result<Option<RunId>, Error> {
        Ok(self.wait_keys.get(wait_key).copied())
    }

    fn inbox_span(&self, wait_key: &str) -> Result<(u64, u64), Error> {
        Ok(self.inboxes.get(wait_key).map_or((0, 0), |inbox| {
            (
                inbox.entries.front().map_or(0, |e| e.seq),
                inbox.entries.len() as u64,
            )
        }))
    }
}

/// An in-memory [`Store`]. Nothing survives the process. It keeps every rule a durable
/// store keeps (it runs the same conformance suite), so it is the store for tests and for
/// runs that need no restart.
///
/// ```
/// use std::sync::Arc;
/// use ledgerflow_kernel::{Engine, ManualClock, MemoryStore, Store, StepContext, StepPlan, WorkflowSpec};
/// use serde_json::json;
///
/// let store = Arc::new(MemoryStore::new());
/// let engine = Engine::new(store.clone(), Arc::new(ManualClock::new(0)));
/// engine.register(
///     WorkflowSpec::builder("hello", 1)
///         .node("greet", |_: &mut StepContext<'_>| StepPlan::complete(json!("hi")))
///         .entry("greet")
///         .build()
///         .expect("the entry node exists"),
/// );
/// let run = engine.run(("hello", 1), json!({}))?.run_id;
/// assert_eq!(store.read_records(run, 1, 10)?.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    limits: StoreLimits,
    store_id: [u8; 16],
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_limits(StoreLimits::default())
    }
}

#[derive(Debug, Default)]
struct Inner {
    runs: BTreeMap<RunId, RunState>,
    ledgers: HashMap<RunId, Vec<Record>>,
    wait_keys: HashMap<String, RunId>,
    timers: BTreeSet<TimerEntry>,
    by_status: BTreeMap<RunStatus, BTreeSet<RunId>>,
    inboxes: HashMap<String, Inbox>,
    artifacts: HashMap<Hash, (ArtifactRef, Vec<u8>)>,
    children: HashMap<RunId, BTreeSet<RunId>>,
    feed: Vec<FeedEntry>,
    /// The global Merkle log: stored hashes by their stored index (dense), its right
    /// edge, and each record's leaf.
    log_nodes: Vec<TreeHash>,
    log_frontier: Frontier,
    leaves: HashMap<(RunId, u64), u64>,
    by_workflow: BTreeSet<(String, u32, RunId)>,
    by_created: BTreeSet<(i64, RunId)>,
    by_updated: BTreeSet<(i64, RunId)>,
    snapshots: BTreeMap<(RunId, String), Snapshot>,
    /// Set by [`Store::close`]: writes are refused from then on.
    closed: bool,
}

#[derive(Debug, Default)]
struct Inbox {
    entries: VecDeque<InboxEntry>,
    last_seq: u64,
}

impl MemoryStore {
    /// An empty store with default limits.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// An empty store with the given limits.
    pub fn with_limits(limits: StoreLimits) -> Self {
        MemoryStore {
            inner: Mutex::default(),
            limits,
            store_id: *RunId::new_v4().as_bytes(),
        }
    }

    /// The lock, for a write: refused once the store is closed.
    fn lock_for_write(&self) -> Result<MutexGuard<'_, Inner>, Error> {
        let inner = self.lock();
        if inner.closed {
            return Err(Error::Closed);
        }
        Ok(inner)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied commit: commits are
        // validated before anything is changed. So a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// The index of runs by `field` time.
    fn time_index(&self, field: TimeField) -> &BTreeSet<(i64, RunId)> {
        match field {
            TimeField::Created => &self.by_created,
            TimeField::Updated => &self.by_updated,
        }
    }

    fn validate(&self, commit: &Commit, limits: StoreLimits) -> Result<(), Error> {
        let current = self.runs.get(&commit.run_id);
        let actual_seq = current.map_or(0, |s| s.head.seq);
        if actual_seq != commit.expected_seq {
            return Err(Error::Conflict {
                run_id: commit.run_id,
                expected_seq: commit.expected_seq,
                actual_seq,
            });
        }
        commit.check_shape(current.map_or(Hash::GENESIS, |s| s.head.hash))?;
        commit.check_index_rules(self, limits.inbox_entries_max, |e| e)
    }

    fn apply(&mut self, commit: Commit) {
        let run_id = commit.run_id;
        for change in commit.index {
            match change {
                IndexChange::WaitKeySet(key) => {
                    self.wait_keys.insert(key, run_id);
                }
                IndexChange::WaitKeyClear(key) => {
                    if self.wait_keys.get(&key) == Some(&run_id) {
                        self.wait_keys.remove(&key);
                    }
                }
                IndexChange::TimerSet(due_at_ms) => {
                    self.timers.insert(TimerEntry { due_at_ms, run_id });
                }
                IndexChange::TimerClear(due_at_ms) => {
                    self.timers.remove(&TimerEntry { due_at_ms, run_id });
                }
                IndexChange::Status { from, to } => {
                    if let Some(from) = from {
                        self.by_status.entry(from).or_default().remove(&run_id);
                    }
                    self.by_status.entry(to).or_default().insert(run_id);
                }
                IndexChange::InboxConsume { wait_key, .. } => {
                    if let Some(inbox) = self.inboxes.get_mut(&wait_key) {
                        inbox.entries.pop_front();
                    }
                }
                IndexChange::InboxPush { wait_key, payload } => {
                    self.push_inbox(wait_key, payload, commit.at_ms);
                }
                IndexChange::Child { parent } => {
                    self.children.entry(parent).or_default().insert(run_id);
                }
                IndexChange::Workflow {
                    workflow_id,
                    version,
                } => {
                    self.by_workflow.insert((workflow_id, version, run_id));
                }
                IndexChange::Created(at_ms) => {
                    self.by_created.insert((at_ms, run_id));
                }
                IndexChange::Updated { from, to } => {
                    if let Some(from) = from {
                        self.by_updated.remove(&(from, run_id));
                    }
                    self.by_updated.insert((to, run_id));
                }
            }
        }
        for record in &commit.records {
            let feed_seq = self.feed.len() as u64 + 1;
            self.feed.push(FeedEntry {
                feed_seq,
                run_id,
                seq: record.seq(),
                kind: record.kind().to_owned(),
                at_ms: record.at_ms(),
            });
            let leaf = merkle::leaf_hash(run_id, record.seq(), &record.hash());
            self.leaves
                .insert((run_id, record.seq()), self.log_frontier.size());
            for (index, hash) in self.log_frontier.append(leaf) {
                debug_assert_eq!(index, self.log_nodes.len() as u64);
                self.log_nodes.push(hash);
            }
        }
        self.ledgers
            .entry(run_id)
            .or_default()
            .extend(commit.records);
        self.runs.insert(run_id, commit.state);
    }

    fn push_inbox(&mut self, wait_key: String, payload: Value, at_ms: i64) -> u64 {
        let inbox = self.inboxes.entry(wait_key).or_default();
        inbox.last_seq += 1;
        inbox.entries.push_back(InboxEntry {
            seq: inbox.last_seq,
            payload,
            at_ms,
        });
        inbox.last_seq
    }
}

impl Store for MemoryStore {
    fn commit(&self, commit: Commit) -> Result<(), Error> {
        let mut inner = self.lock_for_write()?;
        inner.validate(&commit, self.limits)?;
        inner.apply(commit);
        Ok(())
    }

    fn load(&self, run_id: RunId) -> Result<Option<RunState>, Error> {
        Ok(self.lock().runs.get(&run_id).cloned())
    }

    fn read_records(
        &self,
        run_id: RunId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        self.check_limit(limit)?;
        let inner = self.lock();
        let Some(ledger) = inner.ledgers.get(&run_id) else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(from_seq.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(ledger.iter().skip(start).take(limit).cloned().collect())
    }

    fn waiting_on(&self, wait_key: &str) -> Result<Option<RunId>, Error> {
        Ok(self.lock().wait_keys.get(wait_key).copied())
    }

    fn due_timers(
        &self,
        now_ms: i64,
        after: Option<TimerEntry>,
        limit: usize,
    ) -> Result<Vec<TimerEntry>, Error> {
        self.check_limit(limit)?;
        let inner = self.lock();
        let from = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        Ok(inner
            .timers
            .range((from, Bound::Unbounded))
            .take_while(|t| t.due_at_ms <= now_ms)
            .take(limit)
            .copied()
            .collect())
    }

    fn next_timer(&self) -> Result<Option<TimerEntry>, Error> {
        Ok(self.lock().timers.first().copied())
    }

    fn next_timer_after(&self, after_ms: i64) -> Result<Option<TimerEntry>, Error> {
        let inner = self.lock();
        let from = TimerEntry {
            due_at_ms: after_ms.saturating_add(1),
            run_id: RunId::from_bytes([0; 16]),
        };
        Ok(inner.timers.range(from..).next().copied())
    }

    fn inbox_keys(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, Error> {
        self.check_limit(limit)?;
        let inner = self.lock();
        let mut keys: Vec<&String> = inner
            .inboxes
            .iter()
            .filter(|(key, inbox)| {
                !inbox.entries.is_empty() && after.is_none_or(|a| key.as_str() > a)
            })
            .map(|(key, _)| key)
            .collect();
        keys.sort();
        Ok(keys.into_iter().take(limit).cloned().collect())
    }

    fn deliver(&self, wait_key: &str, payload: Value, at_ms: i64) -> Result<Delivery, Error> {
        let mut inner = self.lock_for_write()?;
        if let Some(run_id) = inner.wait_keys.get(wait_key) {
            return Ok(Delivery::Waiter(*run_id));
        }
        let queued = inner.inboxes.get(wait_key).map_or(0, |i| i.entries.len());
        if queued >= self.limits.inbox_entries_max {
            return Err(Error::InboxFull {
                wait_key: wait_key.to_owned(),
                entries_max: self.limits.inbox_entries_max,
            });
        }
        Ok(Delivery::Queued(inner.push_inbox(
            wait_key.to_owned(),
            payload,
            at_ms,
        )))
    }

    fn inbox(&self, wait_key: &str, limit: usize) -> Result<Vec<InboxEntry>, Error> {
        self.check_limit(limit)?;
        let inner = self.lock();
        Ok(inner
            .inboxes
            .get(wait_key)
            .map(|i| i.entries.iter().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    fn list_runs(
        &self,
        status: Option<RunStatus>,
        after: Option<RunId>,
        limit: usize,
    ) -> Result<Vec<RunId>, Error> {
        self.check_limit(limit)?;
        let inner = self.lock();
        let after = |id: &&RunId| after.is_none_or(|a| **id > a);
        let ids: Vec<RunId> = match status {
            Some(status) => inner
                .by_status
                .get(&status)
                .map(|set| set.iter().filter(after).take(limit).copied().collect())
                .unwrap_or_default(),
            None => inner
                .runs
                .keys()
                .filter(after)
                .take(limit)
                .copied()
                .collect(),
        };
        Ok(ids)
    }

    fn children(
        &self,
        parent: RunId,
        after: Option<RunId>,
        limit: usize,
    ) -> Result<Vec<RunId>, Error> {
        self.check_limit(limit)?;
        let inner = self.lock();
        let Some(children) = inner.children.get(&parent) else {
            return Ok(Vec::new());
        };
        let ids = match after {
            Some(after) => children
                .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .take(limit)
                .copied()
                .collect(),
            None => children.iter().take(limit).copied().collect(),
        };
        Ok(ids)
    }

    fn put_artifact(
        &self,
        bytes: &[u8],
        media_type: &str,
        _run_id: Option<RunId>,
    ) -> Result<ArtifactRef, Error> {
        crate::check_artifact(bytes, media_type)?;
        let digest = Hash::of(bytes);
        let artifact = ArtifactRef {
            digest,
            size: bytes.len() as u64,
            media_type: media_type.to_owned(),
        };
        let mut inner = self.lock_for_write()?;
        let entry = inner
            .artifacts
            .entry(digest)
            .or_insert_with(|| (artifact, bytes.to_vec()));
        Ok(entry.0.clone())
    }

    fn get_artifact(&self, digest: &Hash) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .lock()
            .artifacts
            .get(digest)
            .map(|(_, bytes)| bytes.clone()))
    }

    fn runs_by_workflow(
        &self,
        workflow_id: &str,
        version: Option<u32>,
        after: Option<(u32, RunId)>,
        limit: usize,
    ) -> Result<Vec<(u32, RunId)>, Error> {
        self.check_limit(limit)?;
        let inner = self.lock();
        let low = match after {
            Some((v, id)) => Bound::Excluded((workflow_id.to_owned(), v, id)),
            None => Bound::Included((
                workflow_id.to_owned(),
                version.unwrap_or(0),
                RunId::from_bytes([0; 16]),
            )),
        };
        Ok(inner
            .by_workflow
            .range((low, Bound::Unbounded))
            .take_while(|(w, v, _)| w == workflow_id && version.is_none_or(|want| *v == want))
            .take(limit)
            .map(|(_, v, id)| (*v, *id))
            .collect())
    }

    fn runs_by_time(
        &self,
        field: TimeField,
        from_ms: i64,
        to_ms: i64,
        after: Option<(i64, RunId)>,
        limit: usize,
    ) -> Result<Vec<(i64, RunId)>, Error> {
        self.check_limit(limit)?;
        let inner = self.lock();
        let index = inner.time_index(field);
        let low = match after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Included((from_ms, RunId::from_bytes([0; 16]))),
        };
        Ok(index
            .range((low, Bound::Unbounded))
            .take_while(|(at, _)| *at <= to_ms)
            .take(limit)
            .copied()
            .collect())
    }

    fn runs_by_time_desc(
        &self,
        field: TimeField,
        from_ms: i64,
        to_ms: i64,
        before: Option<(i64, RunId)>,
        limit: usize,
    ) -> Result<Vec<(i64, RunId)>, Error> {
        self.check_limit(limit)?;
        let inner = self.lock();
        let index = inner.time_index(field);
        let high = match before {
            Some(key) => Bound::Excluded(key),
            None => Bound::Included((to_ms, RunId::from_bytes([0xff; 16]))),
        };
        Ok(index
            .range((Bound::Unbounded, high))
            .rev()
            .take_while(|(at, _)| *at >= from_ms)
            .take(limit)
            .copied()
            .collect())
    }

    fn count_by_status(&self) -> Result<Vec<(RunStatus, u64)>, Error> {
        let inner = self.lock();
        Ok(inner
            .by_status
            .iter()
            .filter(|(_, runs)| !runs.is_empty())
            .map(|(status, runs)| (*status, runs.len() as u64))
            .collect())
    }

    fn store_id(&self) -> [u8; 16] {
        self.store_id
    }

    fn read_feed(&self, after_feed_seq: u64, limit: usize) -> Result<Vec<FeedEntry>, Error> {
        self.check_limit(limit)?;
        let inner = self.lock();
        let start = usize::try_from(after_feed_seq).unwrap_or(usize::MAX);
        Ok(inner.feed.iter().skip(start).take(limit).cloned().collect())
    }

    fn feed_head(&self) -> Result<u64, Error> {
        Ok(self.lock().feed.len() as u64)
    }

    fn log_nodes(&self, indexes: &[u64]) -> Result<Vec<TreeHash>, Error> {
        let inner = self.lock();
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| inner.log_nodes.get(i).copied())
                    .ok_or_else(|| Error::Corrupt(format!("global log hash {i} is missing")))
            })
            .collect()
    }

    fn leaf_index(&self, run_id: RunId, seq: u64) -> Result<Option<u64>, Error> {
        Ok(self.lock().leaves.get(&(run_id, seq)).copied())
    }

    fn close(&self) -> Result<(), Error> {
        self.lock().closed = true;
        Ok(())
    }

    fn create_snapshot(&self, snapshot: &Snapshot) -> Result<(), Error> {
        snapshot.check_fields()?;
        let mut inner = self.lock_for_write()?;
        let run_id = snapshot.run_id;
        let records = inner
            .ledgers
            .get(&run_id)
            .ok_or_else(|| Error::NotFound(format!("run {run_id}")))?;
        let marked = usize::try_from(snapshot.seq)
            .ok()
            .and_then(|seq| seq.checked_sub(1))
            .and_then(|i| records.get(i));
        if marked.map(Record::hash) != Some(snapshot.record_hash) {
            return Err(Error::InvalidInput(format!(
                "run {run_id} has no record {} with hash {}",
                snapshot.seq, snapshot.record_hash
            )));
        }
        let key = (run_id, snapshot.name.clone());
        if inner.snapshots.contains_key(&key) {
            return Err(Error::AlreadyExists(format!(
                "snapshot {:?} of run {run_id}",
                snapshot.name
            )));
        }
        inner.snapshots.insert(key, snapshot.clone());
        Ok(())
    }

    fn snapshot(&self, run_id: RunId, name: &str) -> Result<Option<Snapshot>, Error> {
        Ok(self
            .lock()
            .snapshots
            .get(&(run_id, name.to_owned()))
            .cloned())
    }

    fn list_snapshots(
        &self,
        filter: &SnapshotFilter,
        limit: usize,
    ) -> Result<Vec<Snapshot>, Error> {
        self.check_limit(limit)?;
        Ok(self
            .lock()
            .snapshots
            .values()
            .filter(|snapshot| snapshot.matches(filter))
            .take(limit)
            .cloned()
            .collect())
    }

    fn check(&self) -> Result<CheckReport, Error> {
        let mut report = self.lock().check()?;
        report.orphaned_inboxes = crate::orphaned_inboxes(self, usize::MAX)?;
        Ok(report)
    }

    fn limits(&self) -> StoreLimits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{append, Event};

    /// A store holding one run waiting on `key`.
    fn waiting_run(key: &str) -> MemoryStore {
        let store = MemoryStore::new();
        let run_id = RunId::new_v4();
        let events = vec![
            crate::event::fixtures::started(),
            Event::Waiting {
                node: "a".into(),
                vars: None,
                wait: crate::WaitState {
                    wait_key: Some(key.into()),
                    reason: crate::WaitReason::Event,
                    until_ms: None,
                    prompt: None,
                    choices: Vec::new(),
                    result_key: None,
                    then: crate::Continuation::Next("a".into()),
                },
            },
        ];
        let (state, records) = append(None, run_id, &events, 0).expect("events apply");
        store
            .commit(Commit::between(None, state, records, 0))
            .expect("commit");
        store
    }

    #[test]
    fn check_finds_each_kind_of_damage() {
        type Damage = fn(&mut Inner);
        let damages: [(&str, Damage); 5] = [
            ("wait_key index", |inner| inner.wait_keys.clear()),
            ("status index", |inner| inner.by_status.clear()),
            ("replayed ledger", |inner| {
                for state in inner.runs.values_mut() {
                    state.vars.insert("x".into(), serde_json::json!(1));
                }
            }),
            ("global log", |inner| inner.log_nodes.clear()),
            ("missing", |inner| {
                for records in inner.ledgers.values_mut() {
                    records.pop();
                }
            }),
        ];
        for (what, damage) in damages {
            let store = waiting_run("k");
            store.check().expect("intact");
            damage(&mut store.lock());
            let found = store.check();
            assert!(
                matches!(&found, Err(Error::Corrupt(message)) if message.contains(what)
                    || what == "missing"),
                "{what}: {found:?}"
            );
        }
    }
}
