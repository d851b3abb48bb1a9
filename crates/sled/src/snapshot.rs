//! Snapshots (bookmarks): named, tagged, searchable checkpoints of a run at a ledger seq.

use ledgerflow_kernel::store::{Error, Store};
use ledgerflow_kernel::{Hash, RunId, RunState};

use crate::codec::{self, keys, SnapshotEnvelopeV1};
use crate::store::{sled_err, SledStore};

/// Longest snapshot name, in bytes.
const NAME_BYTES_MAX: usize = 128;
/// Most tags on one snapshot.
const TAGS_MAX: usize = 32;

/// A named checkpoint of a run at a ledger seq.
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

/// Which snapshots [`SledStore::list_snapshots`] returns. Empty matches all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Only this run's.
    pub run_id: Option<RunId>,
    /// Only those carrying this tag.
    pub tag: Option<String>,
    /// Only those whose name contains this text.
    pub name_contains: Option<String>,
}

impl SledStore {
    /// Bookmarks the run at its current ledger head under `name`.
    pub fn create_snapshot(
        &self,
        run_id: RunId,
        name: &str,
        description: &str,
        tags: &[&str],
        created_at_ms: i64,
    ) -> Result<Snapshot, Error> {
        self.check_writable()?;
        if name.is_empty() {
            return Err(Error::InvalidInput(format!(
                "a snapshot needs a name of 1 to {NAME_BYTES_MAX} bytes; the name given is empty"
            )));
        }
        if name.len() > NAME_BYTES_MAX {
            return Err(Error::ValueTooLarge {
                what: format!("snapshot name {name:?}"),
                bytes: name.len(),
                max: NAME_BYTES_MAX,
            });
        }
        if tags.len() > TAGS_MAX {
            return Err(Error::ValueTooLarge {
                what: "snapshot tag list".into(),
                bytes: tags.len(),
                max: TAGS_MAX,
            });
        }
        let state = self
            .load(run_id)?
            .ok_or_else(|| Error::NotFound(format!("run {run_id}")))?;
        let envelope = SnapshotEnvelopeV1 {
            seq: state.head.seq,
            record_hash: *state.head.hash.as_bytes(),
            description: description.to_owned(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            created_at_ms,
        };
        let value = codec::encode_snapshot(&envelope)?;
        let key = keys::snapshot(run_id, name);
        let swapped = self
            .trees
            .snapshots
            .compare_and_swap(key, None as Option<&[u8]>, Some(value))
            .map_err(sled_err)?;
        if swapped.is_err() {
            return Err(Error::AlreadyExists(format!(
                "snapshot {name:?} of run {run_id}"
            )));
        }
        self.after_write()?;
        Ok(to_snapshot(run_id, name.to_owned(), envelope))
    }

    /// The snapshot `name` of the run.
    pub fn snapshot(&self, run_id: RunId, name: &str) -> Result<Snapshot, Error> {
        let value = self
            .trees
            .snapshots
            .get(keys::snapshot(run_id, name))
            .map_err(sled_err)?
            .ok_or_else(|| Error::NotFound(format!("snapshot {name:?} of run {run_id}")))?;
        Ok(to_snapshot(
            run_id,
            name.to_owned(),
            codec::decode_snapshot(&value)?,
        ))
    }

    /// Up to `limit` snapshots matching `filter`, by run then name. With a run id only
    /// that run's snapshots are read; otherwise all are scanned (they are few: one per
    /// bookmark a person or agent chose to make).
    pub fn list_snapshots(
        &self,
        filter: &SnapshotFilter,
        limit: usize,
    ) -> Result<Vec<Snapshot>, Error> {
        self.check_limit(limit)?;
        let iter = match filter.run_id {
            Some(run_id) => self.trees.snapshots.scan_prefix(run_id.as_bytes()),
            None => self.trees.snapshots.scan_prefix([]),
        };
        let mut out = Vec::new();
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item.map_err(sled_err)?;
            if key.len() < 16 {
                return Err(Error::Corrupt("snapshot key shorter than a run id".into()));
            }
            let run_id = keys::decode_run_id(&key[..16])?;
            let name = String::from_utf8(key[16..].to_vec())
                .map_err(|_| Error::Corrupt("snapshot name is not UTF-8".into()))?;
            let snapshot = to_snapshot(run_id, name, codec::decode_snapshot(&value)?);
            let tag_ok = filter
                .tag
                .as_ref()
                .is_none_or(|t| snapshot.tags.contains(t));
            let name_ok = filter
                .name_contains
                .as_ref()
                .is_none_or(|n| snapshot.name.contains(n.as_str()));
            if tag_ok && name_ok {
                out.push(snapshot);
            }
        }
        Ok(out)
    }

    /// The run's state as it was at the snapshot, by replaying its ledger up to the
    /// snapshot's seq; checks the record hash the snapshot recorded.
    pub fn load_snapshot_state(&self, run_id: RunId, name: &str) -> Result<RunState, Error> {
        let snapshot = self.snapshot(run_id, name)?;
        let state = self.replay_run(run_id, Some(snapshot.seq))?;
        if state.head.hash != snapshot.record_hash {
            return Err(Error::Corrupt(format!(
                "snapshot {name:?} of run {run_id}: record {} hash differs from the snapshot's",
                snapshot.seq
            )));
        }
        Ok(state)
    }
}

fn to_snapshot(run_id: RunId, name: String, env: SnapshotEnvelopeV1) -> Snapshot {
    Snapshot {
        run_id,
        name,
        seq: env.seq,
        record_hash: Hash::from_bytes(env.record_hash),
        description: env.description,
        tags: env.tags,
        created_at_ms: env.created_at_ms,
    }
}
