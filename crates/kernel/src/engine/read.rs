//! Reading: runs, records and whole ledgers, run queries over the store's indexes, and
//! the event feed.

use super::*;

/// The records of one run, read in bounded pages: see [`Engine::ledger`].
pub struct LedgerReader<'a> {
    engine: &'a Engine,
    run_id: RunId,
    next_seq: u64,
    page: std::vec::IntoIter<Record>,
    done: bool,
}

impl std::fmt::Debug for LedgerReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerReader")
            .field("run_id", &self.run_id)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl Iterator for LedgerReader<'_> {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.page.next() {
                self.next_seq = record.seq() + 1;
                return Some(Ok(record));
            }
            if self.done {
                return None;
            }
            let page_len = self.engine.store.limits().read_items_max.max(1);
            match self.engine.records(self.run_id, self.next_seq, page_len) {
                Ok(records) => {
                    self.done = records.len() < page_len;
                    self.page = records.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Engine {
    /// The run's current state.
    pub fn load(&self, run_id: RunId) -> Result<RunState, Error> {
        self.store
            .load(run_id)?
            .ok_or(Error::RunNotFound { run_id })
    }

    /// Up to `limit` of the run's records from `from_seq` on.
    pub fn records(
        &self,
        run_id: RunId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        let records = self.store.read_records(run_id, from_seq, limit)?;
        if records.is_empty() && self.store.load(run_id)?.is_none() {
            return Err(Error::RunNotFound { run_id });
        }
        Ok(records)
    }

    /// Every record of the run from `from_seq` on, read in pages of the store's
    /// `read_items_max`: for exporting a whole ledger without paging by hand. Each item is
    /// one record or the error that stopped the reading.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use ledgerflow_kernel::{Engine, ManualClock, MemoryStore, StepContext, StepPlan, WorkflowSpec};
    /// # use serde_json::json;
    /// # let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(ManualClock::new(0)));
    /// # engine.register(WorkflowSpec::builder("w", 1)
    /// #     .node("a", |_: &mut StepContext<'_>| StepPlan::complete(json!(1))).entry("a").build()?);
    /// let run = engine.start(("w", 1), json!({}))?;
    /// engine.tick(run)?;
    /// let ledger = engine.ledger(run, 1).collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!(ledger.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ledger(&self, run_id: RunId, from_seq: u64) -> LedgerReader<'_> {
        LedgerReader {
            engine: self,
            run_id,
            next_seq: from_seq.max(1),
            page: Vec::new().into_iter(),
            done: false,
        }
    }

    /// Up to `limit` runs matching `query`, from the index that answers it best (parent,
    /// then workflow, status, created or updated time, then all runs), continuing after
    /// `cursor` if given. Each call reads at most the store's `read_items_max` index
    /// entries, so a page can be short and still have a next cursor.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use ledgerflow_kernel::{Effect, Engine, ManualClock, MemoryStore, RunStatus, StepContext, StepPlan, WorkflowSpec};
    /// # use serde_json::json;
    /// # let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(ManualClock::new(0)));
    /// engine.register(
    ///     WorkflowSpec::builder("pay", 1)
    ///         .node("ask", |_: &mut StepContext<'_>| {
    ///             StepPlan::effect(Effect::ask_user("Pay?", &["yes", "no"])).then_complete(json!(null))
    ///         })
    ///         .entry("ask")
    ///         .build()
    ///         .expect("the entry node exists"),
    /// );
    /// use ledgerflow_kernel::RunQuery;
    /// for _ in 0..3 {
    ///     engine.run(("pay", 1), json!({}))?;
    /// }
    /// let query = RunQuery { status: Some(RunStatus::Waiting), ..RunQuery::default() };
    /// let first = engine.query_runs(&query, None, 2)?;
    /// assert_eq!(first.runs.len(), 2);
    /// let cursor = first.next_cursor.expect("one more");
    /// assert_eq!(engine.query_runs(&query, Some(&cursor), 2)?.runs.len(), 1);
    /// # Ok::<(), ledgerflow_kernel::Error>(())
    /// ```
    pub fn query_runs(
        &self,
        query: &RunQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<RunPage, Error> {
        self.store.check_limit(limit)?;
        let plan = query.plan();
        let store_id = self.store.store_id();
        let mut position = match cursor {
            Some(text) => Some(plan.position(&store_id, text).map_err(
                |problem| match problem {
                    CursorProblem::OtherStore => Error::CursorFromAnotherStore {
                        cursor: text.chars().take(120).collect(),
                    },
                    CursorProblem::OtherQuery => Error::InvalidInput {
                        reason: format!("cursor {text:?} belongs to another query"),
                    },
                    CursorProblem::Malformed => Error::InvalidInput {
                        reason: format!("{text:?} is not a query cursor"),
                    },
                },
            )?),
            None => None,
        };
        let budget = self.store.limits().read_items_max.max(1);
        let page_len = limit.clamp(1, budget);
        let mut runs = Vec::new();
        let mut scanned = 0;
        loop {
            let batch = self.scan_index(&plan, position, page_len)?;
            let exhausted = batch.len() < page_len;
            for entry in batch {
                scanned += 1;
                position = Some(entry);
                let run_id = match entry {
                    Position::Run(id) | Position::Versioned(_, id) | Position::Timed(_, id) => id,
                };
                if let Some(state) = self.store.load(run_id)? {
                    if query.matches(&state) {
                        runs.push(state);
                    }
                }
                if runs.len() == limit {
                    break;
                }
            }
            if exhausted && runs.len() < limit {
                return Ok(RunPage {
                    runs,
                    next_cursor: None,
                });
            }
            if runs.len() == limit || scanned >= budget {
                let next_cursor = position.map(|p| plan.cursor(&store_id, p));
                return Ok(RunPage { runs, next_cursor });
            }
        }
    }

    pub(super) fn scan_index(
        &self,
        plan: &Plan,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<Position>, Error> {
        let after_run = |p: Option<Position>| match p {
            Some(Position::Run(id)) => Some(id),
            _ => None,
        };
        Ok(match plan {
            Plan::Children(parent) => self
                .store
                .children(*parent, after_run(after), limit)?
                .into_iter()
                .map(Position::Run)
                .collect(),
            Plan::Status(status) => self
                .store
                .list_runs(Some(*status), after_run(after), limit)?
                .into_iter()
                .map(Position::Run)
                .collect(),
            Plan::All => self
                .store
                .list_runs(None, after_run(after), limit)?
                .into_iter()
                .map(Position::Run)
                .collect(),
            Plan::Workflow(workflow_id, version) => {
                let after = match after {
                    Some(Position::Versioned(v, id)) => Some((v, id)),
                    _ => None,
                };
                self.store
                    .runs_by_workflow(workflow_id, *version, after, limit)?
                    .into_iter()
                    .map(|(v, id)| Position::Versioned(v, id))
                    .collect()
            }
            Plan::Time(field, from, to) => {
                let after = match after {
                    Some(Position::Timed(at, id)) => Some((at, id)),
                    _ => None,
                };
                self.store
                    .runs_by_time(*field, *from, *to, after, limit)?
                    .into_iter()
                    .map(|(at, id)| Position::Timed(at, id))
                    .collect()
            }
            Plan::TimeDesc(field, from, to) => {
                let before = match after {
                    Some(Position::Timed(at, id)) => Some((at, id)),
                    _ => None,
                };
                self.store
                    .runs_by_time_desc(*field, *from, *to, before, limit)?
                    .into_iter()
                    .map(|(at, id)| Position::Timed(at, id))
                    .collect()
            }
        })
    }

    /// How many runs have each status.
    pub fn count_by_status(&self) -> Result<Vec<(RunStatus, u64)>, Error> {
        Ok(self.store.count_by_status()?)
    }

    /// A cursor at the start of the store's event feed.
    pub fn cursor_from_start(&self) -> FeedCursor {
        FeedCursor {
            store_id: self.store.store_id(),
            feed_seq: 0,
        }
    }

    /// A cursor after the last event committed so far: reading from it returns only what
    /// happens next.
    pub fn cursor_now(&self) -> Result<FeedCursor, Error> {
        Ok(FeedCursor {
            store_id: self.store.store_id(),
            feed_seq: self.store.feed_head()?,
        })
    }

    /// A cursor `count` events before the end of the feed: reading from it returns the
    /// last `count` events (or all, if there are fewer).
    pub fn cursor_tail(&self, count: u64) -> Result<FeedCursor, Error> {
        let head = self.store.feed_head()?;
        Ok(FeedCursor {
            store_id: self.store.store_id(),
            feed_seq: head.saturating_sub(count),
        })
    }

    /// Up to `limit` events after `cursor`, in commit order, and the cursor to read on
    /// from. Only acknowledged (durable, in the default mode) commits are returned. A limit
    /// over the store's maximum is `LimitTooLarge`; a cursor from another store is refused.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use ledgerflow_kernel::{Effect, Engine, ManualClock, MemoryStore, RunStatus, StepContext, StepPlan, WorkflowSpec};
    /// # use serde_json::json;
    /// # let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(ManualClock::new(0)));
    /// # engine.register(
    /// #     WorkflowSpec::builder("pay", 1)
    /// #         .node("wait", |_: &mut StepContext<'_>| {
    /// #             StepPlan::effect(Effect::wait_event("invoice-7").result_key("paid")).then_next("done")
    /// #         })
    /// #         .node("done", |ctx: &mut StepContext<'_>| StepPlan::complete(ctx.var("paid").cloned().unwrap_or_default()))
    /// #         .entry("wait")
    /// #         .build()
    /// #         .expect("the entry node exists"),
    /// # );
    /// let cursor = engine.cursor_now()?;
    /// let run = engine.run(("pay", 1), json!({}))?.run_id;
    /// let page = engine.read_events(&cursor, 10)?;
    /// let kinds: Vec<&str> = page.events.iter().map(|e| e.kind.as_str()).collect();
    /// assert_eq!(kinds, ["started", "waiting"]);
    /// assert!(page.events.iter().all(|e| e.run_id == run));
    /// assert!(!page.has_more);
    /// # Ok::<(), ledgerflow_kernel::Error>(())
    /// ```
    pub fn read_events(&self, cursor: &FeedCursor, limit: usize) -> Result<FeedPage, Error> {
        if cursor.store_id != self.store.store_id() {
            return Err(Error::CursorFromAnotherStore {
                cursor: cursor.to_string(),
            });
        }
        let events = self.store.read_feed(cursor.feed_seq, limit)?;
        let last = events.last().map_or(cursor.feed_seq, |e| e.feed_seq);
        let has_more = last < self.store.feed_head()?;
        Ok(FeedPage {
            events,
            next_cursor: FeedCursor {
                store_id: cursor.store_id,
                feed_seq: last,
            },
            has_more,
        })
    }
}
