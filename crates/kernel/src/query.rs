//! Run queries: filters by status, workflow, parent and time ranges, answered from the
//! store's indexes and paged by an opaque cursor.

use crate::store::TimeField;
use crate::{RunId, RunState, RunStatus};

/// Which runs to list. Unset fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs of this workflow.
    pub workflow_id: Option<String>,
    /// Only this version of it (with `workflow_id`).
    pub version: Option<u32>,
    /// Only children of this run.
    pub parent: Option<RunId>,
    /// Only runs created in this range of ms since the Unix epoch (inclusive).
    pub created_ms: Option<(i64, i64)>,
    /// Only runs last changed in this range (inclusive).
    pub updated_ms: Option<(i64, i64)>,
    /// List by creation time, newest first: answered from the created-time index (in
    /// `created_ms`, or all of it), the other filters applied to each run read. Without
    /// it, the most selective index answers, in its own order.
    pub newest_first: bool,
}

/// One page of a query.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPage {
    /// The matching runs, in the order of the index the query was answered from.
    pub runs: Vec<RunState>,
    /// Pass it back for the next page; `None` when the index is exhausted. A page may hold
    /// fewer runs than asked (even none) and still have a next cursor: each call reads a
    /// bounded number of index entries.
    pub next_cursor: Option<String>,
}

impl RunQuery {
    /// Whether `state` matches every filter.
    pub fn matches(&self, state: &RunState) -> bool {
        let in_range = |range: Option<(i64, i64)>, at: i64| {
            range.is_none_or(|(from, to)| from <= at && at <= to)
        };
        self.status.is_none_or(|s| s == state.status)
            && self
                .workflow_id
                .as_ref()
                .is_none_or(|w| *w == state.workflow_id)
            && self.version.is_none_or(|v| v == state.workflow_version)
            && self
                .parent
                .is_none_or(|p| state.parent.as_ref().is_some_and(|link| link.run_id == p))
            && in_range(self.created_ms, state.created_at_ms)
            && in_range(self.updated_ms, state.updated_at_ms)
    }

    /// The index that answers the query, most selective first.
    pub(crate) fn plan(&self) -> Plan {
        if self.newest_first {
            let (from, to) = self.created_ms.unwrap_or((i64::MIN, i64::MAX));
            Plan::TimeDesc(TimeField::Created, from, to)
        } else if let Some(parent) = self.parent {
            Plan::Children(parent)
        } else if let Some(workflow_id) = &self.workflow_id {
            Plan::Workflow(workflow_id.clone(), self.version)
        } else if let Some(status) = self.status {
            Plan::Status(status)
        } else if let Some((from, to)) = self.created_ms {
            Plan::Time(TimeField::Created, from, to)
        } else if let Some((from, to)) = self.updated_ms {
            Plan::Time(TimeField::Updated, from, to)
        } else {
            Plan::All
        }
    }
}

/// An index scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    Children(RunId),
    Workflow(String, Option<u32>),
    Status(RunStatus),
    Time(TimeField, i64, i64),
    /// A time index, newest first.
    TimeDesc(TimeField, i64, i64),
    All,
}

/// Where a scan stopped: the last index entry read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Position {
    Run(RunId),
    Versioned(u32, RunId),
    Timed(i64, RunId),
}

impl Plan {
    fn tag(&self) -> &'static str {
        match self {
            Plan::Children(_) => "c",
            Plan::Workflow(..) => "w",
            Plan::Status(_) => "s",
            Plan::Time(TimeField::Created, ..) => "tc",
            Plan::Time(TimeField::Updated, ..) => "tu",
            Plan::TimeDesc(TimeField::Created, ..) => "dc",
            Plan::TimeDesc(TimeField::Updated, ..) => "du",
            Plan::All => "a",
        }
    }

    /// The cursor text for a position of this plan in store `store_id`:
    /// `lq2.<store id hex>.<index>.<position>`.
    pub(crate) fn cursor(&self, store_id: &[u8; 16], position: Position) -> String {
        let position = match position {
            Position::Run(id) => id.to_string(),
            Position::Versioned(v, id) => format!("{v}.{id}"),
            Position::Timed(at, id) => format!("{at}.{id}"),
        };
        format!(
            "lq2.{}.{}.{position}",
            crate::feed::store_id_hex(store_id),
            self.tag()
        )
    }

    /// Reads a cursor of this plan in store `store_id` back.
    pub(crate) fn position(
        &self,
        store_id: &[u8; 16],
        cursor: &str,
    ) -> Result<Position, CursorProblem> {
        let rest = cursor
            .strip_prefix("lq2.")
            .ok_or(CursorProblem::Malformed)?;
        let (store, rest) = rest.split_once('.').ok_or(CursorProblem::Malformed)?;
        let store = crate::feed::parse_store_id(store).ok_or(CursorProblem::Malformed)?;
        if store != *store_id {
            return Err(CursorProblem::OtherStore);
        }
        let rest = rest
            .strip_prefix(self.tag())
            .and_then(|r| r.strip_prefix('.'))
            .ok_or(CursorProblem::OtherQuery)?;
        let position = match self {
            Plan::Children(_) | Plan::Status(_) | Plan::All => rest.parse().ok().map(Position::Run),
            Plan::Workflow(..) => rest
                .split_once('.')
                .and_then(|(v, id)| Some(Position::Versioned(v.parse().ok()?, id.parse().ok()?))),
            Plan::Time(..) | Plan::TimeDesc(..) => rest
                .split_once('.')
                .and_then(|(at, id)| Some(Position::Timed(at.parse().ok()?, id.parse().ok()?))),
        };
        position.ok_or(CursorProblem::Malformed)
    }
}

/// Why a query cursor was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CursorProblem {
    /// Not a query cursor.
    Malformed,
    /// A cursor of another query (another index).
    OtherQuery,
    /// A cursor minted by another store.
    OtherStore,
}
