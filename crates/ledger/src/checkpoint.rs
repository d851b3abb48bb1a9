//! Signed checkpoints of the global Merkle log: the C2SP `tlog-checkpoint` text (origin,
//! tree size, base64 root) signed as a C2SP signed note with Ed25519, and the checkpoint
//! log that keeps them one after another.
//!
//! A checkpoint signs the whole tree of its size, so it covers every record before it:
//! a record cut, changed or reordered after a checkpoint was seen cannot match it.

use base64::prelude::*;
use signed_note::{Note, Signer, StandardSigner, StandardVerifier, Verifier, VerifierList};
use tlog_tiles::Checkpoint as Body;

use crate::merkle::TreeHash;

/// The signed-note signature line prefix (U+2014 and a space).
const SIGNATURE_PREFIX: &str = "— ";

/// Longest checkpoint note accepted, in bytes (a checkpoint is about 200).
pub const CHECKPOINT_BYTES_MAX: usize = 16 * 1024;

/// Why a checkpoint or a key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The text is not a checkpoint note.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// The key text is not a signed-note key of the expected kind.
    #[error("malformed key: {0}")]
    Key(String),
    /// No signature by the given key, or a signature by it that does not verify.
    #[error("checkpoint signature does not verify with key {key}: {reason}")]
    Signature {
        /// The key name and id checked against.
        key: String,
        /// What was wrong.
        reason: String,
    },
}

/// A tree head: the log's origin, its size and its root.
#[derive(Clone, Debug, PartialEq)]
pub struct TreeHead {
    /// The log's name (`ledgerflow/<store id>`).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root of those leaves.
    pub root: TreeHash,
}

impl TreeHead {
    /// The checkpoint body: `origin\nsize\nbase64 root\n` (C2SP tlog-checkpoint).
    pub fn body(&self) -> Result<String, Error> {
        let body = Body::new(&self.origin, self.size, self.root, "")
            .map_err(|_| Error::Malformed(format!("origin {:?} is not valid", self.origin)))?;
        String::from_utf8(body.to_bytes()).map_err(|_| Error::Malformed("not UTF-8".into()))
    }
}

/// The origin of the log of a store: `ledgerflow/<store id as 32 hex digits>`.
pub fn origin_of_store(store_id: &[u8; 16]) -> String {
    let hex: String = store_id.iter().map(|b| format!("{b:02x}")).collect();
    format!("ledgerflow/{hex}")
}

/// A checkpoint as read back: its tree head and the exact note text.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedCheckpoint {
    /// What it says.
    pub head: TreeHead,
    /// The whole note: body, blank line, signature lines (none when unsigned).
    pub note: String,
    /// Whether it carries any signature line.
    pub signed: bool,
}

impl SignedCheckpoint {
    /// Parses a note, checking its body, without checking signatures.
    pub fn parse(note: &str) -> Result<Self, Error> {
        if note.len() > CHECKPOINT_BYTES_MAX {
            return Err(Error::Malformed(format!(
                "{} bytes, more than {CHECKPOINT_BYTES_MAX}",
                note.len()
            )));
        }
        let (body, signatures) = match note.split_once("\n\n") {
            Some((body, rest)) => (format!("{body}\n"), rest),
            None => return Err(Error::Malformed("no blank line after the body".into())),
        };
        let parsed = Body::from_bytes(body.as_bytes())
            .map_err(|_| Error::Malformed("the body is not origin, size, root".into()))?;
        if !parsed.extension().is_empty() {
            return Err(Error::Malformed("unexpected extension lines".into()));
        }
        let signed = !signatures.is_empty();
        if signed {
            Note::from_bytes(note.as_bytes())
                .map_err(|e| Error::Malformed(format!("signature lines: {e}")))?;
        }
        Ok(SignedCheckpoint {
            head: TreeHead {
                origin: parsed.origin().to_owned(),
                size: parsed.size(),
                root: *parsed.hash(),
            },
            note: note.to_owned(),
            signed,
        })
    }

    /// Checks that a signature by `key` (a signed-note verifier key,
    /// `name+id+base64`) signs this checkpoint.
    pub fn verify(&self, key: &CheckpointKey) -> Result<(), Error> {
        let failed = |reason: String| Error::Signature {
            key: key.id(),
            reason,
        };
        if !self.signed {
            return Err(failed("the checkpoint is unsigned".into()));
        }
        let note = Note::from_bytes(self.note.as_bytes()).map_err(|e| failed(e.to_string()))?;
        let verifiers = VerifierList::new(vec![Box::new(key.verifier.clone())]);
        note.verify(&verifiers)
            .map(|_| ())
            .map_err(|e| failed(e.to_string()))
    }
}

/// A public key that checkpoints are checked against.
#[derive(Clone)]
pub struct CheckpointKey {
    text: String,
    verifier: StandardVerifier,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl CheckpointKey {
    /// Parses a signed-note verifier key: `name+<8 hex key id>+<base64 of 0x01 || 32-byte
    /// Ed25519 public key>`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let verifier = StandardVerifier::new(text).map_err(|e| Error::Key(e.to_string()))?;
        Ok(CheckpointKey {
            text: text.to_owned(),
            verifier,
        })
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `name+id`, how error messages name the key.
    pub fn id(&self) -> String {
        format!("{}+{:08x}", self.verifier.name(), self.verifier.key_id())
    }
}

/// A private key that signs checkpoints.
pub struct CheckpointSigner {
    signer: StandardSigner,
    public: CheckpointKey,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointSigner({})", self.public.as_str())
    }
}

impl CheckpointSigner {
    /// A signer from its private key text (`PRIVATE+KEY+name+id+base64`) and the public
    /// key text that goes with it.
    pub fn new(private: &str, public: &str) -> Result<Self, Error> {
        let signer =
            StandardSigner::new(private.trim()).map_err(|e| Error::Key(format!("private: {e}")))?;
        let public = CheckpointKey::parse(public)?;
        if public.verifier.name() != signer.name() || public.verifier.key_id() != signer.key_id() {
            return Err(Error::Key(
                "the public key does not belong to the private key".into(),
            ));
        }
        let probe = signer
            .sign(b"probe\n")
            .map_err(|e| Error::Key(format!("signing failed: {e}")))?;
        if !public.verifier.verify(b"probe\n", &probe) {
            return Err(Error::Key(
                "the public key does not belong to the private key".into(),
            ));
        }
        Ok(CheckpointSigner { signer, public })
    }

    /// Makes a new key pair named `name` from 32 random bytes (an Ed25519 seed):
    /// `(private key text, public key text)`.
    pub fn generate(name: &str, seed: [u8; 32]) -> Result<(String, String), Error> {
        if !signed_note::is_key_name_valid(name) {
            return Err(Error::Key(format!("{name:?} is not a valid key name")));
        }
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = signed_note::new_ed25519_verifier_key(name, &signing.verifying_key());
        let mut encoded = vec![1u8];
        encoded.extend_from_slice(&signing.to_bytes());
        let id = &public
            .split('+')
            .nth(1)
            .ok_or_else(|| Error::Key("verifier key without id".into()))?
            .to_owned();
        let private = format!(
            "PRIVATE+KEY+{name}+{id}+{}",
            BASE64_STANDARD.encode(&encoded)
        );
        Ok((private, public))
    }

    /// The public key that checks this signer's checkpoints.
    pub fn public_key(&self) -> &CheckpointKey {
        &self.public
    }

    /// Signs a tree head: the C2SP checkpoint note.
    pub fn sign(&self, head: &TreeHead) -> Result<SignedCheckpoint, Error> {
        let body = head.body()?;
        let mut note =
            Note::new(body.as_bytes(), &[]).map_err(|e| Error::Malformed(format!("note: {e}")))?;
        note.add_sigs(&[&self.signer as &dyn Signer])
            .map_err(|e| Error::Key(format!("signing failed: {e}")))?;
        let note = String::from_utf8(note.to_bytes())
            .map_err(|_| Error::Malformed("note is not UTF-8".into()))?;
        Ok(SignedCheckpoint {
            head: head.clone(),
            note,
            signed: true,
        })
    }
}

/// An unsigned checkpoint (for tests and stores opened without a key): the body and the
/// blank line, no signature lines.
pub fn unsigned(head: &TreeHead) -> Result<SignedCheckpoint, Error> {
    Ok(SignedCheckpoint {
        head: head.clone(),
        note: format!("{}\n", head.body()?),
        signed: false,
    })
}

/// One entry of a checkpoint log: the note and an empty line that ends the entry (so a
/// signed note cut after its body cannot pass for a complete unsigned one).
pub fn log_entry(checkpoint: &SignedCheckpoint) -> String {
    format!("{}\n", checkpoint.note)
}

/// Splits a checkpoint log — entries made by [`log_entry`], one after another — into its
/// checkpoints. A last entry cut short by a crash is returned as `torn`, not as an error:
/// it was never acknowledged. Any other damage is an error.
pub fn split_log(text: &str) -> Result<(Vec<SignedCheckpoint>, Option<String>), Error> {
    let mut notes = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // Three body lines and a blank line, signature lines, then the empty line that
        // ends the entry.
        let mut end = 0;
        let mut complete = true;
        for _ in 0..4 {
            match rest[end..].find('\n') {
                Some(i) => end += i + 1,
                None => {
                    complete = false;
                    break;
                }
            }
        }
        while complete && rest[end..].starts_with(SIGNATURE_PREFIX) {
            match rest[end..].find('\n') {
                Some(i) => end += i + 1,
                None => complete = false,
            }
        }
        if !complete || !rest[end..].starts_with('\n') {
            let torn = !complete || SIGNATURE_PREFIX.starts_with(&rest[end..]);
            if !torn || rest.len() > CHECKPOINT_BYTES_MAX + 1 {
                return Err(Error::Malformed(format!(
                    "entry {} of the checkpoint log does not end with an empty line",
                    notes.len() + 1
                )));
            }
            return Ok((notes, Some(rest.to_owned())));
        }
        notes.push(SignedCheckpoint::parse(&rest[..end])?);
        rest = &rest[end + 1..];
    }
    Ok((notes, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(size: u64) -> TreeHead {
        TreeHead {
            origin: origin_of_store(&[0x5a; 16]),
            size,
            root: tlog_tiles::record_hash(&size.to_be_bytes()),
        }
    }

    fn signer() -> CheckpointSigner {
        let (private, public) =
            CheckpointSigner::generate(&origin_of_store(&[0x5a; 16]), [9; 32]).expect("keys");
        CheckpointSigner::new(&private, &public).expect("signer")
    }

    #[test]
    fn a_signed_checkpoint_parses_and_verifies() {
        let signer = signer();
        let checkpoint = signer.sign(&head(42)).expect("sign");
        assert!(checkpoint
            .note
            .starts_with(&format!("ledgerflow/{}\n42\n", "5a".repeat(16))));
        let parsed = SignedCheckpoint::parse(&checkpoint.note).expect("parse");
        assert_eq!(parsed, checkpoint);
        parsed.verify(signer.public_key()).expect("verifies");
    }

    #[test]
    fn a_changed_size_root_or_signature_fails() {
        let signer = signer();
        let good = signer.sign(&head(42)).expect("sign").note;
        let changed_size = good.replacen("\n42\n", "\n41\n", 1);
        let parsed = SignedCheckpoint::parse(&changed_size).expect("parses");
        assert!(parsed.verify(signer.public_key()).is_err());
        let root = head(42).root.to_string();
        let other_root = head(7).root.to_string();
        let changed_root = good.replacen(&root, &other_root, 1);
        assert!(SignedCheckpoint::parse(&changed_root)
            .expect("parses")
            .verify(signer.public_key())
            .is_err());
        // Flip one character of the signature's base64.
        let at = good.rfind(' ').expect("signature") + 10;
        let mut bytes = good.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let changed_sig = String::from_utf8(bytes).expect("utf8");
        let result =
            SignedCheckpoint::parse(&changed_sig).and_then(|c| c.verify(signer.public_key()));
        assert!(result.is_err());
        // Another key.
        let (private, public) =
            CheckpointSigner::generate(&origin_of_store(&[0x5a; 16]), [3; 32]).expect("keys");
        let other = CheckpointSigner::new(&private, &public).expect("signer");
        assert!(SignedCheckpoint::parse(&good)
            .expect("parses")
            .verify(other.public_key())
            .is_err());
        // Unsigned.
        let bare = unsigned(&head(42)).expect("unsigned");
        assert!(SignedCheckpoint::parse(&bare.note)
            .expect("parses")
            .verify(signer.public_key())
            .is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Any tree head signs and verifies; a changed size, root or signature byte fails.
        #[test]
        fn any_altered_size_root_or_signature_fails(
            size in 0u64..u64::MAX,
            root in proptest::prelude::any::<[u8; 32]>(),
            flip in 0usize..64,
        ) {
            let signer = signer();
            let head = TreeHead { origin: origin_of_store(&[1; 16]), size, root: TreeHash(root) };
            let good = signer.sign(&head).expect("sign");
            proptest::prop_assert!(SignedCheckpoint::parse(&good.note).expect("parse").verify(signer.public_key()).is_ok());
            let other_size = if size == 0 { 1 } else { size - 1 };
            let resized = signer.sign(&TreeHead { size: other_size, ..head.clone() }).expect("sign");
            // The other size's body with this signature.
            let (_, sig) = good.note.split_once("\n\n").expect("note");
            let (body, _) = resized.note.split_once("\n\n").expect("note");
            let forged = format!("{body}\n\n{sig}");
            proptest::prop_assert!(SignedCheckpoint::parse(&forged).and_then(|c| c.verify(signer.public_key())).is_err());
            let mut other_root = root;
            other_root[flip % 32] ^= 1;
            let rerooted = signer.sign(&TreeHead { root: TreeHash(other_root), ..head.clone() }).expect("sign");
            let (body, _) = rerooted.note.split_once("\n\n").expect("note");
            let forged = format!("{body}\n\n{sig}");
            proptest::prop_assert!(SignedCheckpoint::parse(&forged).and_then(|c| c.verify(signer.public_key())).is_err());
            // One byte of the signature itself.
            let line = sig.trim_end();
            let (prefix, b64) = line.rsplit_once(' ').expect("signature line");
            let mut raw = BASE64_STANDARD.decode(b64).expect("base64");
            let at = 4 + flip % (raw.len() - 4);
            raw[at] ^= 0x01;
            let forged = format!("{}\n\n{prefix} {}\n", good.note.split_once("\n\n").expect("note").0, BASE64_STANDARD.encode(raw));
            proptest::prop_assert!(SignedCheckpoint::parse(&forged).and_then(|c| c.verify(signer.public_key())).is_err());
        }
    }

    #[test]
    fn mismatched_key_texts_are_refused() {
        let (private, _) = CheckpointSigner::generate("a", [1; 32]).expect("keys");
        let (_, public) = CheckpointSigner::generate("a", [2; 32]).expect("keys");
        assert!(CheckpointSigner::new(&private, &public).is_err());
        assert!(CheckpointKey::parse("not a key").is_err());
        assert!(CheckpointSigner::generate("has space", [1; 32]).is_err());
    }

    #[test]
    fn a_log_splits_into_notes_and_a_torn_tail() {
        let signer = signer();
        let mut log = String::new();
        for size in [1, 5, 9] {
            log.push_str(&log_entry(&signer.sign(&head(size)).expect("sign")));
        }
        log.push_str(&log_entry(&unsigned(&head(10)).expect("unsigned")));
        let (notes, torn) = split_log(&log).expect("split");
        assert_eq!(
            notes.iter().map(|n| n.head.size).collect::<Vec<_>>(),
            vec![1, 5, 9, 10]
        );
        assert_eq!(torn, None);
        let next = log_entry(&signer.sign(&head(11)).expect("sign"));
        for cut in 1..next.len() {
            if !next.is_char_boundary(cut) {
                continue;
            }
            let torn_log = format!("{log}{}", &next[..cut]);
            let (notes, torn) = split_log(&torn_log).expect("a torn tail is not an error");
            assert_eq!(notes.len(), 4, "cut at {cut}");
            assert!(torn.is_some(), "cut at {cut}");
        }
        // Damage before the last note is an error.
        let damaged = log.replacen("\n5\n", "\nfive\n", 1);
        assert!(split_log(&damaged).is_err());
    }
}
