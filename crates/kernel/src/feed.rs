//! The event feed: every committed record of every run, in commit order, read in bounded
//! pages from an opaque cursor that names the store it belongs to.

use std::fmt;
use std::str::FromStr;

use crate::store::FeedEntry;

/// A position in a store's feed. Its text form is opaque to callers
/// (`lf1.<store id hex>.<feed seq>`): store it, pass it back, do not build it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FeedCursor {
    pub(crate) store_id: [u8; 16],
    pub(crate) feed_seq: u64,
}

/// Text that is not a feed cursor.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid feed cursor {input:?}")]
pub struct ParseCursorError {
    input: String,
}

/// A store id as 32 lowercase hex digits, as cursors carry it.
pub(crate) fn store_id_hex(store_id: &[u8; 16]) -> String {
    store_id.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A store id back from [`store_id_hex`]'s text; `None` if it is not 32 hex digits.
pub(crate) fn parse_store_id(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut store_id = [0u8; 16];
    for (i, byte) in store_id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(store_id)
}

impl fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lf1.{}.{}", store_id_hex(&self.store_id), self.feed_seq)
    }
}

impl FromStr for FeedCursor {
    type Err = ParseCursorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCursorError {
            input: s.chars().take(80).collect(),
        };
        let mut parts = s.split('.');
        let (Some("lf1"), Some(id), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err());
        };
        let store_id = parse_store_id(id).ok_or_else(err)?;
        Ok(FeedCursor {
            store_id,
            feed_seq: seq.parse().map_err(|_| err())?,
        })
    }
}

/// One page of the feed.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedPage {
    /// The entries, in feed order.
    pub events: Vec<FeedEntry>,
    /// Where the next read starts.
    pub next_cursor: FeedCursor,
    /// Whether more entries follow already.
    pub has_more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_text_round_trips_and_rejects_garbage() {
        let cursor = FeedCursor {
            store_id: [0xab; 16],
            feed_seq: 42,
        };
        let text = cursor.to_string();
        assert_eq!(text, format!("lf1.{}.42", "ab".repeat(16)));
        assert_eq!(text.parse::<FeedCursor>(), Ok(cursor));
        for bad in [
            "",
            "lf1",
            "lf2.00.1",
            &format!("lf1.{}.x", "00".repeat(16)),
            &format!("lf1.{}.1.2", "00".repeat(16)),
            "lf1.zz.1",
        ] {
            assert!(bad.parse::<FeedCursor>().is_err(), "{bad:?}");
        }
    }
}
