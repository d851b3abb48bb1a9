//! Artifact references inside record bodies: `{"$artifact": {"digest", "size",
//! "media_type"}}` stands for a large value stored apart, by the BLAKE3 digest of its
//! bytes. An export can carry the bytes (`OUT.artifacts/<digest>`), and a verifier checks
//! each against the digest and size the chain covers.

use serde_json::Value;

use crate::Hash;

/// The member name that marks an artifact reference.
pub const ARTIFACT_MEMBER: &str = "$artifact";

/// An artifact a record cites.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactCite {
    /// BLAKE3-256 of the artifact's bytes.
    pub digest: Hash,
    /// The bytes' length.
    pub size: u64,
}

/// Every artifact reference in `value`, in document order.
pub fn artifact_cites(value: &Value) -> Vec<ArtifactCite> {
    let mut out = Vec::new();
    collect(value, &mut out);
    out
}

fn collect(value: &Value, out: &mut Vec<ArtifactCite>) {
    match value {
        Value::Object(map) => {
            if map.len() == 1 {
                if let Some(cite) = map.get(ARTIFACT_MEMBER).and_then(cite_of) {
                    out.push(cite);
                    return;
                }
            }
            map.values().for_each(|v| collect(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

fn cite_of(value: &Value) -> Option<ArtifactCite> {
    Some(ArtifactCite {
        digest: value.get("digest")?.as_str()?.parse().ok()?,
        size: value.get("size")?.as_u64()?,
    })
}

/// Whether `bytes` are the artifact `cite` names: their BLAKE3 digest and length match.
pub fn artifact_matches(cite: &ArtifactCite, bytes: &[u8]) -> bool {
    bytes.len() as u64 == cite.size && Hash::of(bytes) == cite.digest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_references_at_any_depth_and_checks_bytes() {
        let bytes = b"{\"big\":true}";
        let digest = Hash::of(bytes);
        let body = json!({
            "vars": {"set": {"doc": {"$artifact": {"digest": digest, "size": 12, "media_type": "application/json"}}}},
            "list": [1, {"$artifact": {"digest": digest, "size": 12, "media_type": "application/json"}}],
            "not": {"$artifact": {"digest": digest, "size": 12}, "other": 1},
        });
        let cites = artifact_cites(&body);
        assert_eq!(
            cites.len(),
            2,
            "an object with other members is no reference: {cites:?}"
        );
        assert!(artifact_matches(&cites[0], bytes));
        assert!(!artifact_matches(&cites[0], b"{\"big\":false}"));
    }
}
