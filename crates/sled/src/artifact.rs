//! Artifacts: large payloads stored once by their blake3 digest and referred to by
//! `ArtifactRef`, so records can hash the digest and the bytes can be purged later.

use ledgerflow_kernel::store::{Error, Store};
use ledgerflow_kernel::{ArtifactRef, Hash, RunId};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::codec::{self, keys, ArtifactEnvelopeV1};
use crate::store::{sled_err, SledStore};

/// Artifacts are stored in chunks of this size (64 KiB), each well under sled's blob
/// threshold, so their bytes live in the log file the store fsyncs.
const CHUNK_BYTES: usize = 64 << 10;

impl SledStore {
    /// Stores `bytes` under their digest (once, however often they are put) and, if
    /// `run_id` is given, lists the artifact under that run.
    pub fn put_artifact(
        &self,
        bytes: &[u8],
        media_type: &str,
        run_id: Option<RunId>,
    ) -> Result<ArtifactRef, Error> {
        self.check_writable()?;
        ledgerflow_kernel::check_artifact(bytes, media_type)?;
        let digest = Hash::of(bytes);
        let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
        let envelope = ArtifactEnvelopeV1 {
            size: bytes.len() as u64,
            media_type: media_type.to_owned(),
            chunks: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
        };
        let value = codec::encode_artifact(&envelope)?;
        let t = &self.trees;
        let result = (&t.artifacts, &t.artifact_chunks, &t.artifact_runs).transaction(
            |(meta, data, runs)| {
                if meta.get(digest.as_bytes())?.is_none() {
                    for (i, chunk) in chunks.iter().enumerate() {
                        let index = u32::try_from(i).unwrap_or(u32::MAX);
                        data.insert(&keys::chunk(&digest, index)[..], *chunk)?;
                    }
                    meta.insert(&digest.as_bytes()[..], value.as_slice())?;
                }
                if let Some(run_id) = run_id {
                    runs.insert(&keys::artifact_run(run_id, &digest)[..], &[][..])?;
                }
                Ok::<(), ConflictableTransactionError<Error>>(())
            },
        );
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(sled_err(e)),
        }
        self.after_write()?;
        Ok(ArtifactRef {
            digest,
            size: envelope.size,
            media_type: envelope.media_type,
        })
    }

    /// Whether the artifact is stored.
    pub fn has_artifact(&self, digest: &Hash) -> Result<bool, Error> {
        self.trees
            .artifacts
            .contains_key(digest.as_bytes())
            .map_err(sled_err)
    }

    /// The stored description of an artifact, if stored.
    fn artifact_meta(&self, digest: &Hash) -> Result<Option<ArtifactEnvelopeV1>, Error> {
        self.trees
            .artifacts
            .get(digest.as_bytes())
            .map_err(sled_err)?
            .map(|value| codec::decode_artifact(&value))
            .transpose()
    }

    /// The artifact's reference, if stored.
    pub fn artifact_ref(&self, digest: &Hash) -> Result<Option<ArtifactRef>, Error> {
        Ok(self.artifact_meta(digest)?.map(|env| ArtifactRef {
            digest: *digest,
            size: env.size,
            media_type: env.media_type,
        }))
    }

    /// The artifact's bytes, checked against the digest, if stored.
    pub fn get_artifact(&self, digest: &Hash) -> Result<Option<Vec<u8>>, Error> {
        let Some(env) = self.artifact_meta(digest)? else {
            return Ok(None);
        };
        if env.size > ledgerflow_kernel::ARTIFACT_BYTES_MAX as u64 {
            return Err(Error::Corrupt(format!(
                "artifact {digest}: recorded size {} over the limit",
                env.size
            )));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(env.size).unwrap_or(0));
        for index in 0..env.chunks {
            let chunk = self
                .trees
                .artifact_chunks
                .get(keys::chunk(digest, index))
                .map_err(sled_err)?
                .ok_or_else(|| {
                    Error::Corrupt(format!("artifact {digest}: chunk {index} missing"))
                })?;
            bytes.extend_from_slice(&chunk);
        }
        if bytes.len() as u64 != env.size || Hash::of(&bytes) != *digest {
            return Err(Error::Corrupt(format!(
                "artifact {digest}: bytes do not match the digest"
            )));
        }
        Ok(Some(bytes))
    }

    /// Up to `limit` artifacts listed under the run, by digest.
    pub fn artifacts_of_run(&self, run_id: RunId, limit: usize) -> Result<Vec<ArtifactRef>, Error> {
        self.check_limit(limit)?;
        let mut out = Vec::new();
        for item in self
            .trees
            .artifact_runs
            .scan_prefix(run_id.as_bytes())
            .take(limit)
        {
            let (key, _) = item.map_err(sled_err)?;
            let digest: [u8; 32] =
                key.get(16..48)
                    .and_then(|d| d.try_into().ok())
                    .ok_or_else(|| {
                        Error::Corrupt("artifact_runs key is not run id ++ digest".into())
                    })?;
            let digest = Hash::from_bytes(digest);
            let artifact = self.artifact_ref(&digest)?.ok_or_else(|| {
                Error::Corrupt(format!("run {run_id} lists missing artifact {digest}"))
            })?;
            out.push(artifact);
        }
        Ok(out)
    }
}
