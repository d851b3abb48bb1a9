//! Snapshots (bookmarks): named, tagged, searchable checkpoints of a run at a ledger seq,
//! and the rules every store applies to them.

use crate::store::Error;
use crate::{Hash, RunId};

/// Longest snapshot name, in bytes.
pub const SNAPSHOT_NAME_BYTES_MAX: usize = 128;
/// Most tags on one snapshot.
pub const SNAPSHOT_TAGS_MAX: usize = 32;
/// Longest description or tag, in bytes.
pub const SNAPSHOT_TEXT_BYTES_MAX: usize = 4_096;

/// A named checkpoint of a run at a ledger seq. Made with `Engine::create_snapshot`,
/// stored by [`Store::create_snapshot`](crate::Store::create_snapshot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The run.
    pub run_id: RunId,
    /// Its name, unique within the run.
    pub name: String,
    /// The ledger seq it marks.
    pub seq: u64,
    /// The hash of the record at that seq, so the checkpoint can be checked later.
    pub record_hash: Hash,
    /// Free text.
    pub description: String,
    /// Tags to search by.
    pub tags: Vec<String>,
    /// When it was made (ms since the Unix epoch).
    pub created_at_ms: i64,
}

impl Snapshot {
    /// Refuses an empty or overlong name, too many tags, or overlong text: what every
    /// store checks before it stores a snapshot (nothing is stored when it fails).
    pub fn check_fields(&self) -> Result<(), Error> {
        if self.name.is_empty() {
            return Err(Error::InvalidInput(format!(
                "a snapshot needs a name of 1 to {SNAPSHOT_NAME_BYTES_MAX} bytes; the name given is empty"
            )));
        }
        if self.name.len() > SNAPSHOT_NAME_BYTES_MAX {
            return Err(Error::ValueTooLarge {
                what: format!("snapshot name {:?}", self.name),
                bytes: self.name.len(),
                max: SNAPSHOT_NAME_BYTES_MAX,
            });
        }
        if self.tags.len() > SNAPSHOT_TAGS_MAX {
            return Err(Error::ValueTooLarge {
                what: "snapshot tag list".into(),
                bytes: self.tags.len(),
                max: SNAPSHOT_TAGS_MAX,
            });
        }
        let texts = std::iter::once(("description", &self.description))
            .chain(self.tags.iter().map(|tag| ("tag", tag)));
        for (what, text) in texts {
            if text.len() > SNAPSHOT_TEXT_BYTES_MAX {
                return Err(Error::ValueTooLarge {
                    what: format!("snapshot {what}"),
                    bytes: text.len(),
                    max: SNAPSHOT_TEXT_BYTES_MAX,
                });
            }
        }
        Ok(())
    }

    /// Whether the snapshot is one `filter` asks for.
    pub fn matches(&self, filter: &SnapshotFilter) -> bool {
        filter.run_id.is_none_or(|run_id| run_id == self.run_id)
            && filter.tag.as_ref().is_none_or(|t| self.tags.contains(t))
            && filter
                .name_contains
                .as_ref()
                .is_none_or(|n| self.name.contains(n.as_str()))
    }
}

/// Which snapshots [`Store::list_snapshots`](crate::Store::list_snapshots) returns. Empty
/// matches all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Only this run's.
    pub run_id: Option<RunId>,
    /// Only those carrying this tag.
    pub tag: Option<String>,
    /// Only those whose name contains this text.
    pub name_contains: Option<String>,
}
