//! Snapshots (bookmarks) in the `snapshots` tree: what `Store::create_snapshot`,
//! `snapshot` and `list_snapshots` do on sled. The rules are the kernel's
//! (`Snapshot::check_fields`).

use ledgerflow_kernel::store::{Error, Store};
use ledgerflow_kernel::{Hash, RunId, Snapshot, SnapshotFilter};

use crate::codec::{self, keys, SnapshotEnvelopeV1};
use crate::store::{sled_err, SledStore};

impl SledStore {
    /// Stores `snapshot` if the run holds its record and its name is free.
    pub(crate) fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), Error> {
        self.check_writable()?;
        snapshot.check_fields()?;
        let run_id = snapshot.run_id;
        let marked = self
            .read_records(run_id, snapshot.seq.max(1), 1)?
            .into_iter()
            .next()
            .filter(|record| record.seq() == snapshot.seq);
        match marked {
            None if self.load(run_id)?.is_none() => {
                return Err(Error::NotFound(format!("run {run_id}")))
            }
            Some(record) if record.hash() == snapshot.record_hash => {}
            _ => {
                return Err(Error::InvalidInput(format!(
                    "run {run_id} has no record {} with hash {}",
                    snapshot.seq, snapshot.record_hash
                )))
            }
        }
        let envelope = SnapshotEnvelopeV1 {
            seq: snapshot.seq,
            record_hash: *snapshot.record_hash.as_bytes(),
            description: snapshot.description.clone(),
            tags: snapshot.tags.clone(),
            created_at_ms: snapshot.created_at_ms,
        };
        let value = codec::encode_snapshot(&envelope)?;
        let name = &snapshot.name;
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
        self.after_write()
    }

    /// The snapshot `name` of the run, if there is one.
    pub(crate) fn get_snapshot(
        &self,
        run_id: RunId,
        name: &str,
    ) -> Result<Option<Snapshot>, Error> {
        let Some(value) = self
            .trees
            .snapshots
            .get(keys::snapshot(run_id, name))
            .map_err(sled_err)?
        else {
            return Ok(None);
        };
        Ok(Some(to_snapshot(
            run_id,
            name.to_owned(),
            codec::decode_snapshot(&value)?,
        )))
    }

    /// Up to `limit` snapshots matching `filter`, by run then name. With a run id only
    /// that run's snapshots are read; otherwise all are scanned (they are few: one per
    /// bookmark a person or agent chose to make).
    pub(crate) fn find_snapshots(
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
            if snapshot.matches(filter) {
                out.push(snapshot);
            }
        }
        Ok(out)
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
