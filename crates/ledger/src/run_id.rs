//! `RunId`: the identity of one workflow run, a random (v4) UUID.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The identity of one run. Hashed as its 16 raw bytes; written as a lowercase hyphenated
/// UUID (`8-4-4-4-12` hex digits) everywhere text is used.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(Uuid);

impl RunId {
    /// A fresh random run id.
    pub fn new_v4() -> Self {
        RunId(Uuid::new_v4())
    }

    /// Wraps 16 raw bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        RunId(Uuid::from_bytes(bytes))
    }

    /// The 16 raw bytes, as they enter the hash input.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

/// A string that is not a hyphenated UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid run id {input:?}: expected a UUID such as 6f1c2a9e-0b7d-4c1e-9f3a-2d4b5c6e7f80")]
pub struct ParseRunIdError {
    input: String,
}

impl FromStr for RunId {
    type Err = ParseRunIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the canonical hyphenated form: one spelling per id keeps exports comparable.
        if s.len() != 36 {
            return Err(ParseRunIdError {
                input: s.chars().take(80).collect(),
            });
        }
        Uuid::parse_str(s).map(RunId).map_err(|_| ParseRunIdError {
            input: s.to_owned(),
        })
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({})", self.0.hyphenated())
    }
}

impl Serialize for RunId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
