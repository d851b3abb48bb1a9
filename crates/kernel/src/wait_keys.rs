//! The wait_keys the engine makes for its own waits (a synchronous child's result, an
//! `ask_user` without a key, a fork's copy of a key), and what a queued event on one of
//! them means: only one run can ever wait on such a key, so an event queued for it while
//! that run does not wait on it can never be consumed (an orphan, which `check` reports).

use crate::store::{self, Store};
use crate::RunId;

/// The key a synchronous parent waits on for `child`'s result.
pub(crate) fn child(child: RunId) -> String {
    format!("child:{child}")
}

/// The key of an `ask_user` wait that names none: unique to the run and seq.
pub(crate) fn ask(run_id: RunId, seq: u64) -> String {
    format!("ask:{run_id}:{seq}")
}

/// A fork's own copy of a key its parent waited on.
pub(crate) fn fork(fork_id: RunId, key: &str) -> String {
    format!("fork:{fork_id}:{key}")
}

/// Whether `key` has the exact form of a key the engine makes for one run's wait
/// (`child:<run id>`, `ask:<run id>:<seq>`, `fork:<run id>:<key>`).
pub fn is_engine_made(key: &str) -> bool {
    let run_id_then = |rest: &str| -> Option<usize> {
        let id = rest.get(..36)?;
        id.parse::<RunId>().ok()?;
        Some(36)
    };
    if let Some(rest) = key.strip_prefix("child:") {
        return rest.len() == 36 && run_id_then(rest).is_some();
    }
    if let Some(rest) = key.strip_prefix("ask:") {
        return run_id_then(rest).is_some()
            && rest[36..]
                .strip_prefix(':')
                .is_some_and(|seq| seq.parse::<u64>().is_ok());
    }
    if let Some(rest) = key.strip_prefix("fork:") {
        return run_id_then(rest).is_some() && rest[36..].starts_with(':');
    }
    false
}

/// Inbox keys holding events that no run can ever consume: engine-made keys (see
/// [`is_engine_made`]) that no run waits on, with how many events each holds. Reads at
/// most `keys_max` inbox keys and counts at most the store's `read_items_max` events a key.
pub fn orphaned_inboxes(
    store: &dyn Store,
    keys_max: usize,
) -> Result<Vec<(String, u64)>, store::Error> {
    let page = store.limits().read_items_max.max(1);
    let mut orphans = Vec::new();
    let mut after: Option<String> = None;
    let mut read = 0;
    while read < keys_max {
        let keys = store.inbox_keys(after.as_deref(), page.min(keys_max - read))?;
        read += keys.len();
        for key in &keys {
            if is_engine_made(key) && store.waiting_on(key)?.is_none() {
                let events = store.inbox(key, page)?.len() as u64;
                orphans.push((key.clone(), events));
            }
        }
        match keys.last() {
            Some(last) if keys.len() == page => after = Some(last.clone()),
            _ => break,
        }
    }
    Ok(orphans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_made_keys_are_recognised_exactly() {
        let id = RunId::new_v4();
        assert!(is_engine_made(&child(id)));
        assert!(is_engine_made(&ask(id, 7)));
        assert!(is_engine_made(&fork(id, "invoice-7")));
        for user in [
            "child:",
            "child:not-a-uuid",
            &format!("child:{id}x"),
            &format!("ask:{id}"),
            &format!("ask:{id}:x"),
            &format!("fork:{id}"),
            "invoice-7",
            "ask:me",
        ] {
            assert!(!is_engine_made(user), "{user}");
        }
    }
}
