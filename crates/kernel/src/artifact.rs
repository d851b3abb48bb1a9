//! `ArtifactRef`: how a large JSON value is kept out of run state and ledger records. The
//! value is stored once by its blake3 digest; state and records hold the reference, so the
//! chain covers the digest and the bytes can later be purged without breaking it.

use ledgerflow_ledger::Hash;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The member name that marks an artifact reference inside a JSON value:
/// `{"$artifact": {"digest": "<hex>", "size": 123, "media_type": "application/json"}}`.
pub const ARTIFACT_MARKER: &str = "$artifact";

/// Largest artifact a store keeps (64 MiB): a value this large belongs in a blob store,
/// with its digest in the ledger.
pub const ARTIFACT_BYTES_MAX: usize = 64 << 20;

/// Longest media type of an artifact.
pub const MEDIA_TYPE_BYTES_MAX: usize = 255;

/// Refuses an artifact over [`ARTIFACT_BYTES_MAX`] or a media type over
/// [`MEDIA_TYPE_BYTES_MAX`]: what every store checks before it stores one.
pub fn check_artifact(bytes: &[u8], media_type: &str) -> Result<(), crate::store::Error> {
    if bytes.len() > ARTIFACT_BYTES_MAX {
        return Err(crate::store::Error::ValueTooLarge {
            what: "artifact".into(),
            bytes: bytes.len(),
            max: ARTIFACT_BYTES_MAX,
        });
    }
    if media_type.len() > MEDIA_TYPE_BYTES_MAX {
        return Err(crate::store::Error::ValueTooLarge {
            what: "artifact media type".into(),
            bytes: media_type.len(),
            max: MEDIA_TYPE_BYTES_MAX,
        });
    }
    Ok(())
}

/// A reference to stored bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// blake3 of the bytes.
    pub digest: Hash,
    /// Their length.
    pub size: u64,
    /// e.g. `application/json`, `text/plain`.
    pub media_type: String,
}

impl ArtifactRef {
    /// The reference as the JSON value that stands in for the stored value.
    pub fn to_value(&self) -> Value {
        json!({ ARTIFACT_MARKER: { "digest": self.digest, "size": self.size, "media_type": self.media_type } })
    }

    /// The reference `value` stands for, if it is one.
    pub fn from_value(value: &Value) -> Option<ArtifactRef> {
        let members = value.as_object()?;
        if members.len() != 1 {
            return None;
        }
        serde_json::from_value(members.get(ARTIFACT_MARKER)?.clone()).ok()
    }
}
