//! The store conformance suite: one set of checks every `Store` implementation must pass
//! unchanged. Use [`store_conformance_tests!`](crate::store_conformance_tests) in a test
//! file to get one `#[test]` per check.

use std::sync::{Arc, Barrier};

use ledgerflow_ledger::verify_chain;
use serde_json::{json, Map, Value};

use crate::event::{append, Event};
use crate::state::{WaitReason, WaitState};
use crate::store::{Commit, Delivery, Error, IndexChange, Store, TimeField, TimerEntry};
use crate::{Continuation, RunId, RunState, RunStatus};

/// Expands to one `#[test]` per conformance check, each on a fresh store from `$make`:
/// an expression returning a pointer to the store (a `Box`, an `Arc`, or a guard that
/// derefs to it and cleans up when dropped).
///
/// `store_conformance_tests!(skip_if: $skip, $make)` first evaluates `$skip`, an
/// `Option<String>`: `Some(reason)` prints the reason and passes the check without a store
/// (for a store that needs a server the machine may not have; CI makes it required).
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(skip_if: ::std::option::Option::<::std::string::String>::None, $make);
    };
    (skip_if: $skip:expr, $make:expr) => {
        $crate::store_conformance_tests!(@tests $skip, $make;
            commit_then_load,
            stale_version_conflicts_and_writes_nothing,
            concurrent_commits_one_wins,
            commit_must_continue_the_chain,
            read_records_in_order_with_limit,
            wait_key_index,
            timer_index_by_due_time,
            inbox_per_wait_key,
            inbox_is_bounded,
            list_runs_by_status_with_paging,
            artifacts_round_trip,
            children_index,
            next_timer_after_and_inbox_keys,
            feed_orders_records_across_runs,
            workflow_time_and_count_indexes,
            closed_store_refuses_writes_and_keeps_reads,
            global_log_covers_every_record_in_feed_order,
            snapshots_by_name_tag_and_run,
            check_verifies_runs_indexes_and_log,
        );
    };
    (@tests $skip:expr, $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                if let ::std::option::Option::Some(reason) = $skip {
                    eprintln!("skipped: {reason}");
                    return;
                }
                let store = $make;
                $crate::conformance::$check(&*store);
            }
        )*
    };
}

const T0: i64 = 1_700_000_000_000;

fn started(run_id: RunId) -> Commit {
    let event = Event::Started {
        workflow_id: "conformance".into(),
        workflow_version: 1,
        node: "a".into(),
        vars: Map::new(),
        parent: None,
    };
    step(None, run_id, vec![event])
}

fn step(old: Option<&RunState>, run_id: RunId, events: Vec<Event>) -> Commit {
    let (new, records) = match append(old, run_id, &events, T0) {
        Ok(done) => done,
        Err(reason) => panic!("conformance fixture does not apply: {reason}"),
    };
    Commit::between(old, new, records, T0)
}

fn advance(old: &RunState, to: &str) -> Commit {
    let node = old.node.clone().unwrap_or_default();
    step(
        Some(old),
        old.run_id,
        vec![Event::Advanced {
            node,
            vars: None,
            next: to.into(),
        }],
    )
}

fn wait(old: &RunState, wait_key: Option<&str>, until_ms: Option<i64>) -> Commit {
    let node = old.node.clone().unwrap_or_default();
    let wait = WaitState {
        wait_key: wait_key.map(str::to_owned),
        reason: if until_ms.is_some() {
            WaitReason::Until
        } else {
            WaitReason::Event
        },
        until_ms,
        prompt: None,
        choices: Vec::new(),
        result_key: Some("r".into()),
        then: Continuation::Next("b".into()),
    };
    step(
        Some(old),
        old.run_id,
        vec![Event::Waiting {
            node,
            vars: None,
            wait,
        }],
    )
}

fn commit_ok(store: &dyn Store, commit: Commit) -> RunState {
    let state = commit.state.clone();
    if let Err(e) = store.commit(commit) {
        panic!("commit should succeed: {e}");
    }
    state
}

fn load(store: &dyn Store, run_id: RunId) -> RunState {
    match store.load(run_id) {
        Ok(Some(state)) => state,
        other => panic!("run {run_id} should load, got {other:?}"),
    }
}

fn records(store: &dyn Store, run_id: RunId) -> Vec<ledgerflow_ledger::Record> {
    match store.read_records(run_id, 1, store.limits().read_items_max) {
        Ok(records) => records,
        Err(e) => panic!("read_records failed: {e}"),
    }
}

/// A committed state loads back equal; its records read back and verify.
pub fn commit_then_load(store: &dyn Store) {
    let run_id = RunId::new_v4();
    assert!(
        matches!(store.load(run_id), Ok(None)),
        "unknown run loads as None"
    );
    let s1 = commit_ok(store, started(run_id));
    let s2 = commit_ok(store, advance(&s1, "b"));
    assert_eq!(load(store, run_id), s2);
    let recs = records(store, run_id);
    assert_eq!(recs.len(), 2);
    let head = verify_chain(&recs).expect("stored chain verifies");
    assert_eq!(
        head.map(|h| (h.seq, h.hash)),
        Some((s2.head.seq, s2.head.hash))
    );
}

/// A commit expecting an old version fails with `Conflict` and changes nothing.
pub fn stale_version_conflicts_and_writes_nothing(store: &dyn Store) {
    let run_id = RunId::new_v4();
    let s1 = commit_ok(store, started(run_id));
    let winner = advance(&s1, "b");
    let loser = advance(&s1, "c");
    commit_ok(store, winner);
    let before = load(store, run_id);
    match store.commit(loser) {
        Err(Error::Conflict {
            expected_seq: 1,
            actual_seq: 2,
            ..
        }) => {}
        other => panic!("expected a conflict at seq 1 vs 2, got {other:?}"),
    }
    assert_eq!(load(store, run_id), before);
    assert_eq!(records(store, run_id).len(), 2);
    match store.commit(started(run_id)) {
        Err(Error::Conflict {
            expected_seq: 0, ..
        }) => {}
        other => panic!("re-creating a run must conflict, got {other:?}"),
    }
}

/// Two threads commit to one run expecting the same version: exactly one wins.
pub fn concurrent_commits_one_wins(store: &dyn Store) {
    let run_id = RunId::new_v4();
    let s1 = commit_ok(store, started(run_id));
    for round in 0..20 {
        let base = load(store, run_id);
        let commits = [
            advance(&base, &format!("x{round}")),
            advance(&base, &format!("y{round}")),
        ];
        let barrier = Arc::new(Barrier::new(2));
        let results: Vec<Result<(), Error>> = std::thread::scope(|scope| {
            let handles: Vec<_> = commits
                .into_iter()
                .map(|commit| {
                    let barrier = Arc::clone(&barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        store.commit(commit)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(Error::Closed)))
                .collect()
        });
        let wins = results.iter().filter(|r| r.is_ok()).count();
        let conflicts = results
            .iter()
            .filter(|r| matches!(r, Err(Error::Conflict { .. })))
            .count();
        assert_eq!((wins, conflicts), (1, 1), "round {round}: {results:?}");
    }
    let recs = records(store, run_id);
    assert_eq!(recs.len() as u64, s1.head.seq + 20);
    verify_chain(&recs).expect("chain stays linear");
}

/// Records that do not continue the chain, or a state that does not match them, are refused.
pub fn commit_must_continue_the_chain(store: &dyn Store) {
    let run_id = RunId::new_v4();
    let s1 = commit_ok(store, started(run_id));
    let mut forged = advance(&s1, "b");
    forged.state.vars.insert("sneaky".into(), json!(true));
    assert!(matches!(
        store.commit(forged),
        Err(Error::InvalidCommit { .. })
    ));
    let mut no_records = advance(&s1, "b");
    no_records.records.clear();
    assert!(matches!(
        store.commit(no_records),
        Err(Error::InvalidCommit { .. })
    ));
    let other = RunId::new_v4();
    let foreign = started(other);
    let mut mixed = advance(&s1, "b");
    mixed.records = foreign.records;
    assert!(matches!(
        store.commit(mixed),
        Err(Error::InvalidCommit { .. })
    ));
    assert_eq!(load(store, run_id), s1);
}

/// Records read back in seq order from any seq, bounded by the limit.
pub fn read_records_in_order_with_limit(store: &dyn Store) {
    let run_id = RunId::new_v4();
    let mut state = commit_ok(store, started(run_id));
    for i in 0..9 {
        state = commit_ok(store, advance(&state, &format!("n{i}")));
    }
    let page = store.read_records(run_id, 4, 3).expect("read");
    assert_eq!(
        page.iter().map(|r| r.seq()).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    let tail = store.read_records(run_id, 9, 100).expect("read");
    assert_eq!(
        tail.iter().map(|r| r.seq()).collect::<Vec<_>>(),
        vec![9, 10]
    );
    assert!(store.read_records(run_id, 11, 5).expect("read").is_empty());
    assert!(store
        .read_records(RunId::new_v4(), 1, 5)
        .expect("read")
        .is_empty());
    let max = store.limits().read_items_max;
    match store.read_records(run_id, 1, max + 1) {
        Err(Error::LimitTooLarge { requested, max: m }) => {
            assert_eq!((requested, m), (max + 1, max))
        }
        other => panic!("expected LimitTooLarge, got {other:?}"),
    }
}

/// The wait_key index follows the run's wait, and one key has one waiter.
pub fn wait_key_index(store: &dyn Store) {
    let (a, b) = (RunId::new_v4(), RunId::new_v4());
    let a1 = commit_ok(store, started(a));
    let b1 = commit_ok(store, started(b));
    let a2 = commit_ok(store, wait(&a1, Some("k1"), None));
    assert_eq!(store.waiting_on("k1").expect("read"), Some(a));
    assert_eq!(load(store, a).status, RunStatus::Waiting);
    match store.commit(wait(&b1, Some("k1"), None)) {
        Err(Error::WaitKeyTaken { holder, .. }) => assert_eq!(holder, a),
        other => panic!("expected WaitKeyTaken, got {other:?}"),
    }
    assert_eq!(load(store, b), b1, "refused commit wrote nothing");
    let resumed = Event::Resumed {
        wait_key: "k1".into(),
        payload: json!(1),
        inbox_seq: None,
        by: None,
    };
    commit_ok(store, step(Some(&a2), a, vec![resumed]));
    assert_eq!(store.waiting_on("k1").expect("read"), None);
    commit_ok(store, wait(&b1, Some("k1"), None));
    assert_eq!(store.waiting_on("k1").expect("read"), Some(b));
}

/// Timers read back by due time, only when due, and disappear when they fire.
pub fn timer_index_by_due_time(store: &dyn Store) {
    assert_eq!(store.next_timer().expect("read"), None);
    let mut waiting = Vec::new();
    for due in [T0 + 300, T0 + 100, T0 + 200] {
        let run_id = RunId::new_v4();
        let s1 = commit_ok(store, started(run_id));
        waiting.push(commit_ok(store, wait(&s1, None, Some(due))));
    }
    let next = store.next_timer().expect("read").expect("a timer");
    assert_eq!(next.due_at_ms, T0 + 100);
    assert!(store
        .due_timers(T0 + 99, None, 10)
        .expect("read")
        .is_empty());
    let due = store.due_timers(T0 + 250, None, 10).expect("read");
    assert_eq!(
        due.iter().map(|t| t.due_at_ms).collect::<Vec<_>>(),
        vec![T0 + 100, T0 + 200]
    );
    assert_eq!(
        store.due_timers(T0 + 1_000, None, 1).expect("read").len(),
        1
    );
    // Paged with a cursor: each page starts just after the last timer of the one before,
    // two runs due at the same time included, and the pages end at `now_ms`.
    let twin = {
        let run_id = RunId::new_v4();
        let s1 = commit_ok(store, started(run_id));
        waiting.push(commit_ok(store, wait(&s1, None, Some(T0 + 200))));
        run_id
    };
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.due_timers(T0 + 250, after, 1).expect("read");
        let Some(last) = page.last().copied() else {
            break;
        };
        assert_eq!(page.len(), 1);
        paged.push(last);
        after = Some(last);
    }
    let mut expected = store.due_timers(T0 + 250, None, 10).expect("read");
    assert_eq!(paged, expected, "the pages are the one read, in order");
    assert_eq!(expected.len(), 3);
    assert!(expected.iter().any(|t| t.run_id == twin));
    expected.sort();
    assert_eq!(paged, expected, "earliest first, then by run id");
    let last = *paged.last().expect("timers");
    assert!(store
        .due_timers(T0 + 250, Some(last), 10)
        .expect("read")
        .is_empty());
    // A cursor that names no stored timer still pages from where it would sort.
    let gone = TimerEntry {
        due_at_ms: T0 + 150,
        run_id: RunId::from_bytes([0; 16]),
    };
    assert_eq!(
        store
            .due_timers(T0 + 1_000, Some(gone), 10)
            .expect("read")
            .iter()
            .map(|t| t.due_at_ms)
            .collect::<Vec<_>>(),
        vec![T0 + 200, T0 + 200, T0 + 300]
    );
    let first = waiting
        .iter()
        .find(|s| s.run_id == next.run_id)
        .expect("known run");
    commit_ok(
        store,
        step(
            Some(first),
            first.run_id,
            vec![Event::TimerFired {
                due_at_ms: T0 + 100,
            }],
        ),
    );
    assert_eq!(
        store.next_timer().expect("read").map(|t| t.due_at_ms),
        Some(T0 + 200)
    );
    assert!(matches!(
        store.due_timers(0, None, store.limits().read_items_max + 1),
        Err(Error::LimitTooLarge { .. })
    ));
}

/// Events for a key nobody waits on queue in order; a waiter is returned instead of
/// queueing; a wait on a key with queued events is refused until they are consumed in order.
pub fn inbox_per_wait_key(store: &dyn Store) {
    assert_eq!(
        store.deliver("k", json!(1), T0).expect("deliver"),
        Delivery::Queued(1)
    );
    assert_eq!(
        store.deliver("k", json!(2), T0).expect("deliver"),
        Delivery::Queued(2)
    );
    assert_eq!(
        store.deliver("other", json!("x"), T0).expect("deliver"),
        Delivery::Queued(1)
    );
    let queued = store.inbox("k", 10).expect("read");
    assert_eq!(
        queued
            .iter()
            .map(|e| e.payload.clone())
            .collect::<Vec<Value>>(),
        vec![json!(1), json!(2)]
    );

    let run_id = RunId::new_v4();
    let s1 = commit_ok(store, started(run_id));
    assert!(matches!(
        store.commit(wait(&s1, Some("k"), None)),
        Err(Error::InboxNotEmpty { .. })
    ));

    let consume = |state: &RunState, seq: u64, wrong: bool| {
        let node = state.node.clone().unwrap_or_default();
        let mut commit = step(
            Some(state),
            run_id,
            vec![Event::Advanced {
                node: node.clone(),
                vars: None,
                next: format!("{node}'"),
            }],
        );
        commit.index.push(IndexChange::InboxConsume {
            wait_key: "k".into(),
            seq: if wrong { seq + 1 } else { seq },
        });
        commit
    };
    assert!(matches!(
        store.commit(consume(&s1, 1, true)),
        Err(Error::InboxEntryGone { .. })
    ));
    let s2 = commit_ok(store, consume(&s1, 1, false));
    assert_eq!(
        store
            .inbox("k", 10)
            .expect("read")
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        vec![2]
    );
    let s3 = commit_ok(store, consume(&s2, 2, false));
    assert!(store.inbox("k", 10).expect("read").is_empty());
    commit_ok(store, wait(&s3, Some("k"), None));
    assert_eq!(
        store.deliver("k", json!(3), T0).expect("deliver"),
        Delivery::Waiter(run_id)
    );
    assert!(
        store.inbox("k", 10).expect("read").is_empty(),
        "a waiter's event is not queued"
    );
    assert_eq!(store.inbox("other", 10).expect("read").len(), 1);

    // One commit may consume several entries of a key, oldest first (a resume and the
    // steps after it, up to a wait on the same key, are one commit); out of order, or the
    // same entry twice, is refused and nothing is consumed.
    for seq in [1, 2, 3] {
        assert_eq!(
            store.deliver("many", json!(seq), T0).expect("deliver"),
            Delivery::Queued(seq)
        );
    }
    let other = RunId::new_v4();
    let o1 = commit_ok(store, started(other));
    let consuming = |seqs: &[u64]| {
        let mut commit = advance(&o1, "next");
        commit
            .index
            .extend(seqs.iter().map(|seq| IndexChange::InboxConsume {
                wait_key: "many".into(),
                seq: *seq,
            }));
        commit
    };
    for wrong in [&[2, 1][..], &[1, 1][..], &[1, 3][..]] {
        assert!(
            matches!(
                store.commit(consuming(wrong)),
                Err(Error::InboxEntryGone { .. })
            ),
            "consuming {wrong:?} is refused"
        );
        assert_eq!(store.inbox("many", 10).expect("read").len(), 3);
    }
    commit_ok(store, consuming(&[1, 2]));
    let left: Vec<u64> = store
        .inbox("many", 10)
        .expect("read")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, vec![3]);
}

/// A key's inbox holds at most `inbox_entries_max` events; more is a typed error.
pub fn inbox_is_bounded(store: &dyn Store) {
    let max = store.limits().inbox_entries_max;
    for i in 0..max {
        store
            .deliver("full", json!(i), T0)
            .expect("under the bound");
    }
    match store.deliver("full", json!("one too many"), T0) {
        Err(Error::InboxFull { entries_max, .. }) => assert_eq!(entries_max, max),
        other => panic!("expected InboxFull, got {other:?}"),
    }
    assert_eq!(
        store
            .inbox("full", store.limits().read_items_max.min(max))
            .expect("read")
            .len(),
        max.min(store.limits().read_items_max)
    );
    // A commit that pushes onto the full inbox is refused whole; one that consumes an
    // entry first makes room for its push.
    let run_id = RunId::new_v4();
    let s1 = commit_ok(store, started(run_id));
    let with = |changes: Vec<IndexChange>| {
        let mut commit = advance(&s1, "next");
        commit.index.extend(changes);
        commit
    };
    let push = || IndexChange::InboxPush {
        wait_key: "full".into(),
        payload: json!("pushed"),
    };
    assert!(matches!(
        store.commit(with(vec![push()])),
        Err(Error::InboxFull { .. })
    ));
    assert_eq!(
        store.load(run_id).expect("load"),
        Some(s1.clone()),
        "nothing written"
    );
    let oldest = store.inbox("full", 1).expect("read")[0].seq;
    commit_ok(
        store,
        with(vec![
            IndexChange::InboxConsume {
                wait_key: "full".into(),
                seq: oldest,
            },
            push(),
        ]),
    );
}

/// Runs list by status, in id order, paged by the last id seen.
pub fn list_runs_by_status_with_paging(store: &dyn Store) {
    let mut running = Vec::new();
    let mut waiting = Vec::new();
    for i in 0..7 {
        let run_id = RunId::new_v4();
        let s1 = commit_ok(store, started(run_id));
        if i % 2 == 0 {
            commit_ok(store, wait(&s1, Some(&format!("list-{i}")), None));
            waiting.push(run_id);
        } else {
            running.push(run_id);
        }
    }
    running.sort();
    waiting.sort();
    assert_eq!(
        store
            .list_runs(Some(RunStatus::Waiting), None, 100)
            .expect("list"),
        waiting
    );
    assert_eq!(
        store
            .list_runs(Some(RunStatus::Running), None, 100)
            .expect("list"),
        running
    );
    assert!(store
        .list_runs(Some(RunStatus::Completed), None, 100)
        .expect("list")
        .is_empty());
    let page1 = store
        .list_runs(Some(RunStatus::Waiting), None, 2)
        .expect("list");
    let page2 = store
        .list_runs(Some(RunStatus::Waiting), page1.last().copied(), 2)
        .expect("list");
    assert_eq!([page1, page2].concat(), waiting[..4].to_vec());
    assert_eq!(store.list_runs(None, None, 100).expect("list").len(), 7);
    assert!(matches!(
        store.list_runs(None, None, store.limits().read_items_max + 1),
        Err(Error::LimitTooLarge { .. })
    ));
}

/// Artifacts are stored once by digest and read back byte for byte.
pub fn artifacts_round_trip(store: &dyn Store) {
    let bytes = vec![42u8; 200_000];
    let run_id = RunId::new_v4();
    let first = store
        .put_artifact(&bytes, "application/octet-stream", Some(run_id))
        .expect("put");
    let again = store
        .put_artifact(&bytes, "application/octet-stream", None)
        .expect("put again");
    assert_eq!(first, again);
    assert_eq!(first.digest, ledgerflow_ledger::Hash::of(&bytes));
    assert_eq!(first.size, 200_000);
    assert_eq!(store.get_artifact(&first.digest).expect("get"), Some(bytes));
    assert_eq!(
        store
            .get_artifact(&ledgerflow_ledger::Hash::of(b"absent"))
            .expect("get"),
        None
    );
    let empty = store
        .put_artifact(b"", "text/plain", None)
        .expect("empty artifact");
    assert_eq!(
        store.get_artifact(&empty.digest).expect("get"),
        Some(Vec::new())
    );
}

/// A run created with a parent is listed among the parent's children, in id order.
pub fn children_index(store: &dyn Store) {
    let parent = RunId::new_v4();
    commit_ok(store, started(parent));
    let mut kids: Vec<RunId> = (0..5)
        .map(|_| {
            let child = RunId::new_v4();
            let event = Event::Started {
                workflow_id: "conformance".into(),
                workflow_version: 1,
                node: "a".into(),
                vars: Map::new(),
                parent: Some(crate::ParentLink {
                    run_id: parent,
                    seq: 1,
                    wait_key: None,
                    depth: 1,
                    after: None,
                }),
            };
            commit_ok(store, step(None, child, vec![event]));
            child
        })
        .collect();
    kids.sort();
    assert_eq!(store.children(parent, None, 100).expect("children"), kids);
    let page = store.children(parent, Some(kids[1]), 2).expect("children");
    assert_eq!(page, kids[2..4].to_vec());
    assert!(store
        .children(kids[0], None, 100)
        .expect("children")
        .is_empty());
    assert!(matches!(
        store.children(parent, None, store.limits().read_items_max + 1),
        Err(Error::LimitTooLarge { .. })
    ));
}

/// `next_timer_after` skips timers due at or before the given time; `inbox_keys` lists
/// exactly the keys with queued events.
pub fn next_timer_after_and_inbox_keys(store: &dyn Store) {
    for due in [T0 + 10, T0 + 20, T0 + 20, T0 + 30] {
        let run_id = RunId::new_v4();
        let s1 = commit_ok(store, started(run_id));
        commit_ok(store, wait(&s1, None, Some(due)));
    }
    let after = |ms| {
        store
            .next_timer_after(ms)
            .expect("read")
            .map(|t| t.due_at_ms)
    };
    assert_eq!(after(T0), Some(T0 + 10));
    assert_eq!(after(T0 + 10), Some(T0 + 20));
    assert_eq!(after(T0 + 20), Some(T0 + 30));
    assert_eq!(after(T0 + 30), None);
    assert_eq!(after(i64::MAX), None);

    assert!(store.inbox_keys(None, 10).expect("keys").is_empty());
    for key in ["b", "a", "c"] {
        store.deliver(key, json!(key), T0).expect("deliver");
    }
    assert_eq!(store.inbox_keys(None, 10).expect("keys"), ["a", "b", "c"]);
    assert_eq!(store.inbox_keys(Some("a"), 1).expect("keys"), ["b"]);
    // Consuming the only event of "b" removes it from the list.
    let run_id = RunId::new_v4();
    let s1 = commit_ok(store, started(run_id));
    let mut consume = advance(&s1, "b2");
    consume.index.push(IndexChange::InboxConsume {
        wait_key: "b".into(),
        seq: 1,
    });
    commit_ok(store, consume);
    assert_eq!(store.inbox_keys(None, 10).expect("keys"), ["a", "c"]);
}

/// Every committed record gets one feed entry, in commit order across runs, numbered from
/// 1 without gaps; reads page through it; refused commits add nothing.
pub fn feed_orders_records_across_runs(store: &dyn Store) {
    assert_eq!(store.feed_head().expect("head"), 0);
    assert_eq!(store.store_id(), store.store_id(), "the id is stable");
    let (a, b) = (RunId::new_v4(), RunId::new_v4());
    let a1 = commit_ok(store, started(a));
    let b1 = commit_ok(store, started(b));
    let a2 = commit_ok(store, wait(&a1, Some("feed-k"), None));
    assert!(
        store.commit(advance(&a1, "stale")).is_err(),
        "a refused commit"
    );
    commit_ok(store, advance(&b1, "b2"));
    let resumed = Event::Resumed {
        wait_key: "feed-k".into(),
        payload: json!(1),
        inbox_seq: None,
        by: None,
    };
    commit_ok(
        store,
        step(
            Some(&a2),
            a,
            vec![
                resumed,
                Event::Completed {
                    node: "b".into(),
                    vars: None,
                    output: json!(2),
                },
            ],
        ),
    );
    let all = store.read_feed(0, 100).expect("feed");
    let seen: Vec<(u64, RunId, u64, &str)> = all
        .iter()
        .map(|e| (e.feed_seq, e.run_id, e.seq, e.kind.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, a, 1, "started"),
            (2, b, 1, "started"),
            (3, a, 2, "waiting"),
            (4, b, 2, "advanced"),
            (5, a, 3, "resumed"),
            (6, a, 4, "completed"),
        ]
    );
    assert_eq!(store.feed_head().expect("head"), 6);
    let page = store.read_feed(2, 2).expect("page");
    assert_eq!(
        page.iter().map(|e| e.feed_seq).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert!(store.read_feed(6, 10).expect("tail").is_empty());
    assert!(matches!(
        store.read_feed(0, store.limits().read_items_max + 1),
        Err(Error::LimitTooLarge { .. })
    ));
}

/// Runs are found by workflow (and version), by created and updated time, and counted by
/// status; an updated run moves in the updated index.
pub fn workflow_time_and_count_indexes(store: &dyn Store) {
    let start = |workflow: &str, version: u32, at_ms: i64| {
        let run_id = RunId::new_v4();
        let event = Event::Started {
            workflow_id: workflow.into(),
            workflow_version: version,
            node: "a".into(),
            vars: Map::new(),
            parent: None,
        };
        let (new, records) = append(None, run_id, &[event], at_ms).expect("applies");
        commit_ok(store, Commit::between(None, new, records, at_ms))
    };
    let a1 = start("alpha", 1, 100);
    let a2 = start("alpha", 2, 200);
    let a1b = start("alpha", 1, 300);
    let b1 = start("beta", 1, 400);
    let ids = |v: Vec<(u32, RunId)>| v.into_iter().map(|(_, id)| id).collect::<Vec<_>>();
    let mut alpha1 = vec![a1.run_id, a1b.run_id];
    alpha1.sort();
    assert_eq!(
        ids(store
            .runs_by_workflow("alpha", Some(1), None, 10)
            .expect("scan")),
        alpha1
    );
    let all_alpha = store
        .runs_by_workflow("alpha", None, None, 10)
        .expect("scan");
    assert_eq!(all_alpha.len(), 3);
    assert_eq!(all_alpha[2], (2, a2.run_id), "ordered by version");
    let paged = store
        .runs_by_workflow("alpha", None, Some(all_alpha[0]), 1)
        .expect("scan");
    assert_eq!(paged, vec![all_alpha[1]]);
    assert_eq!(
        ids(store
            .runs_by_workflow("beta", None, None, 10)
            .expect("scan")),
        vec![b1.run_id]
    );
    assert!(
        store
            .runs_by_workflow("alph", None, None, 10)
            .expect("scan")
            .is_empty(),
        "no prefix matches"
    );

    let created = store
        .runs_by_time(TimeField::Created, 150, 350, None, 10)
        .expect("scan");
    assert_eq!(created, vec![(200, a2.run_id), (300, a1b.run_id)]);
    let next = store
        .runs_by_time(TimeField::Created, 150, 350, Some(created[0]), 10)
        .expect("scan");
    assert_eq!(next, vec![created[1]]);
    let newest = store
        .runs_by_time_desc(TimeField::Created, 150, 350, None, 10)
        .expect("scan");
    assert_eq!(newest, vec![(300, a1b.run_id), (200, a2.run_id)]);
    let older = store
        .runs_by_time_desc(TimeField::Created, 150, 350, Some(newest[0]), 10)
        .expect("scan");
    assert_eq!(older, vec![newest[1]]);
    let all_newest = store
        .runs_by_time_desc(TimeField::Created, i64::MIN, i64::MAX, None, 10)
        .expect("scan");
    let mut all_oldest = store
        .runs_by_time(TimeField::Created, i64::MIN, i64::MAX, None, 10)
        .expect("scan");
    all_oldest.reverse();
    assert_eq!(
        all_newest, all_oldest,
        "the same entries, the other way round"
    );
    assert_eq!(
        store
            .runs_by_time_desc(TimeField::Created, 150, 350, None, 1)
            .expect("scan"),
        vec![(300, a1b.run_id)],
        "the limit holds"
    );

    // Move a1 forward: it leaves its old place in the updated index.
    let (moved, records) = append(
        Some(&a1),
        a1.run_id,
        &[Event::Advanced {
            node: "a".into(),
            vars: None,
            next: "b".into(),
        }],
        900,
    )
    .expect("applies");
    commit_ok(store, Commit::between(Some(&a1), moved, records, 900));
    let updated = store
        .runs_by_time(TimeField::Updated, 0, i64::MAX, None, 10)
        .expect("scan");
    assert_eq!(updated.len(), 4);
    assert_eq!(updated.last(), Some(&(900, a1.run_id)));
    assert!(!updated.contains(&(100, a1.run_id)));

    assert_eq!(
        store.count_by_status().expect("counts"),
        vec![(RunStatus::Running, 4)]
    );
    commit_ok(store, wait(&b1, Some("count-k"), None));
    assert_eq!(
        store.count_by_status().expect("counts"),
        vec![(RunStatus::Running, 3), (RunStatus::Waiting, 1)]
    );
}

/// After `close`, commits, deliveries and artifacts are refused with `Closed` and change
/// nothing; everything committed before reads back as it was. Closing twice is fine.
pub fn closed_store_refuses_writes_and_keeps_reads(store: &dyn Store) {
    let run_id = RunId::new_v4();
    let state = commit_ok(store, started(run_id));
    let before = records(store, run_id);
    if let Err(e) = store.close() {
        panic!("close failed: {e}");
    }
    if let Err(e) = store.close() {
        panic!("closing twice failed: {e}");
    }
    let refused = store.commit(advance(&state, "b"));
    assert!(matches!(refused, Err(Error::Closed)), "{refused:?}");
    let refused = store.commit(started(RunId::new_v4()));
    assert!(matches!(refused, Err(Error::Closed)), "{refused:?}");
    let refused = store.deliver("closed-key", json!(1), T0);
    assert!(matches!(refused, Err(Error::Closed)), "{refused:?}");
    let refused = store.create_snapshot(&snapshot_of(&state, "closed", &[]));
    assert!(matches!(refused, Err(Error::Closed)), "{refused:?}");
    let refused = store.put_artifact(b"bytes", "text/plain", None);
    assert!(matches!(refused, Err(Error::Closed)), "{refused:?}");
    assert_eq!(load(store, run_id), state);
    assert_eq!(records(store, run_id), before);
    assert!(matches!(store.inbox("closed-key", 10), Ok(v) if v.is_empty()));
    assert_eq!(
        refused.err().map(|e| e.kind()),
        Some(crate::ErrorKind::Closed)
    );
}

/// The global Merkle log has one leaf per committed record, in feed order, written with
/// the commit: its root is the RFC 6962 root of those leaves, every record has an
/// inclusion proof, and every earlier size a consistency proof; a refused commit adds
/// nothing.
pub fn global_log_covers_every_record_in_feed_order(store: &dyn Store) {
    use ledgerflow_ledger::merkle;

    let empty = crate::log_head(store).expect("head of the empty log");
    assert_eq!((empty.size, empty.root), (0, merkle::EMPTY_HASH));
    let mut runs = Vec::new();
    let mut heads = vec![empty];
    for i in 0..5 {
        let run_id = RunId::new_v4();
        let mut state = commit_ok(store, started(run_id));
        heads.push(crate::log_head(store).expect("head"));
        for step in 0..i {
            state = commit_ok(store, advance(&state, &format!("n{step}")));
            heads.push(crate::log_head(store).expect("head"));
        }
        assert!(store.commit(advance(&load(store, run_id), "x")).is_ok());
        assert!(
            store.commit(advance(&state, "stale")).is_err(),
            "a stale commit is refused"
        );
        heads.push(crate::log_head(store).expect("head"));
        runs.push(run_id);
    }
    // Recompute the root from the feed and the records alone.
    let size = store.feed_head().expect("head");
    let feed = store.read_feed(0, size as usize).expect("feed");
    let mut frontier = merkle::Frontier::new();
    for entry in &feed {
        let record = store
            .read_records(entry.run_id, entry.seq, 1)
            .expect("record")
            .into_iter()
            .next()
            .expect("the feed names a stored record");
        assert_eq!(
            store.leaf_index(entry.run_id, entry.seq).expect("leaf"),
            Some(entry.feed_seq - 1),
            "leaf index is feed seq - 1"
        );
        frontier.append(merkle::leaf_hash(entry.run_id, entry.seq, &record.hash()));
    }
    let head = crate::log_head(store).expect("head");
    assert_eq!(head.size, feed.len() as u64);
    assert_eq!(
        head.root,
        frontier.root(),
        "root recomputed from the records"
    );
    for run_id in &runs {
        for record in records(store, *run_id) {
            let proof =
                crate::prove_record(store, *run_id, record.seq(), None).expect("inclusion proof");
            assert_eq!(proof.verify(head.root), Ok(()));
            let mut wrong = head.root;
            wrong.0[0] ^= 1;
            assert!(proof.verify(wrong).is_err());
        }
    }
    for old in &heads {
        let proof = crate::prove_consistency(store, old.size, head.size).expect("consistency");
        assert_eq!(
            merkle::verify_consistency(&proof, old.size, old.root, head.size, head.root),
            Ok(())
        );
        assert_eq!(
            crate::log_root(store, old.size).expect("old root"),
            old.root
        );
    }
    assert!(matches!(
        crate::log_root(store, head.size + 1),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        crate::prove_record(store, RunId::new_v4(), 1, None),
        Err(Error::InvalidInput(_))
    ));
}

fn snapshot_of(state: &RunState, name: &str, tags: &[&str]) -> crate::Snapshot {
    crate::Snapshot {
        run_id: state.run_id,
        name: name.to_owned(),
        seq: state.head.seq,
        record_hash: state.head.hash,
        description: format!("{name} of the conformance suite"),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        created_at_ms: T0,
    }
}

/// Snapshots are stored only for a record the run holds, under a name unique within the
/// run, within the kernel's bounds; they are found by run and name, and listed by run then
/// name with filters and a limit. A refused one stores nothing.
pub fn snapshots_by_name_tag_and_run(store: &dyn Store) {
    use crate::{Snapshot, SnapshotFilter};

    let first = commit_ok(store, started(RunId::new_v4()));
    let later = commit_ok(store, advance(&first, "b"));
    let other = commit_ok(store, started(RunId::new_v4()));
    let at_start = snapshot_of(&first, "at-start", &["review"]);
    store
        .create_snapshot(&at_start)
        .expect("a snapshot at seq 1");
    store
        .create_snapshot(&snapshot_of(&later, "later", &[]))
        .expect("a snapshot at the head");
    store
        .create_snapshot(&snapshot_of(&other, "at-start", &["review"]))
        .expect("the same name on another run");

    /// A snapshot to refuse, and whether an error is the right refusal.
    type Refusal = (Snapshot, fn(&Error) -> bool);
    let refusals: Vec<Refusal> = vec![
        (snapshot_of(&later, "at-start", &[]), |e| {
            matches!(e, Error::AlreadyExists(_))
        }),
        (snapshot_of(&later, "", &[]), |e| {
            matches!(e, Error::InvalidInput(_))
        }),
        (
            snapshot_of(&later, &"n".repeat(crate::SNAPSHOT_NAME_BYTES_MAX + 1), &[]),
            |e| matches!(e, Error::ValueTooLarge { .. }),
        ),
        (
            snapshot_of(&later, "tags", &vec!["t"; crate::SNAPSHOT_TAGS_MAX + 1]),
            |e| matches!(e, Error::ValueTooLarge { .. }),
        ),
        (
            Snapshot {
                record_hash: other.head.hash,
                ..snapshot_of(&later, "wrong-hash", &[])
            },
            |e| matches!(e, Error::InvalidInput(_)),
        ),
        (
            Snapshot {
                seq: 9,
                ..snapshot_of(&later, "past-the-head", &[])
            },
            |e| matches!(e, Error::InvalidInput(_)),
        ),
        (
            Snapshot {
                run_id: RunId::new_v4(),
                ..snapshot_of(&later, "no-run", &[])
            },
            |e| matches!(e, Error::NotFound(_)),
        ),
    ];
    for (snapshot, expected) in refusals {
        let refused = store.create_snapshot(&snapshot);
        assert!(
            refused.as_ref().is_err_and(expected),
            "snapshot {:?}: {refused:?}",
            snapshot.name
        );
    }

    let found = store.snapshot(first.run_id, "at-start").expect("read");
    assert_eq!(found, Some(at_start.clone()));
    assert_eq!(
        store.snapshot(first.run_id, "wrong-hash").expect("read"),
        None
    );
    let list = |filter: SnapshotFilter, limit| match store.list_snapshots(&filter, limit) {
        Ok(found) => found
            .into_iter()
            .map(|s| (s.run_id, s.name))
            .collect::<Vec<_>>(),
        Err(e) => panic!("listing snapshots failed: {e}"),
    };
    let of_first = SnapshotFilter {
        run_id: Some(first.run_id),
        ..SnapshotFilter::default()
    };
    assert_eq!(
        list(of_first.clone(), 10),
        vec![
            (first.run_id, "at-start".to_owned()),
            (first.run_id, "later".to_owned())
        ]
    );
    assert_eq!(list(of_first, 1).len(), 1, "the limit holds");
    let tagged = SnapshotFilter {
        tag: Some("review".into()),
        ..SnapshotFilter::default()
    };
    let mut both = vec![first.run_id, other.run_id];
    both.sort();
    assert_eq!(
        list(tagged, 10)
            .into_iter()
            .map(|(r, _)| r)
            .collect::<Vec<_>>(),
        both
    );
    let named = SnapshotFilter {
        name_contains: Some("ate".into()),
        ..SnapshotFilter::default()
    };
    assert_eq!(list(named, 10), vec![(first.run_id, "later".to_owned())]);
    let too_many = store.list_snapshots(&SnapshotFilter::default(), usize::MAX);
    assert!(
        matches!(too_many, Err(Error::LimitTooLarge { .. })),
        "{too_many:?}"
    );
}

/// `check` passes on a store holding runs that wait on keys and timers, an inbox and an
/// ended run, and counts every run, record and leaf of the global log.
pub fn check_verifies_runs_indexes_and_log(store: &dyn Store) {
    let empty = store.check().expect("an empty store checks");
    assert_eq!((empty.runs, empty.records, empty.log_leaves), (0, 0, 0));

    let keyed = commit_ok(store, started(RunId::new_v4()));
    let keyed = commit_ok(store, wait(&keyed, Some("check-key"), None));
    let timed = commit_ok(store, started(RunId::new_v4()));
    let timed = commit_ok(store, wait(&timed, None, Some(T0 + 5)));
    let moved = commit_ok(store, started(RunId::new_v4()));
    commit_ok(store, advance(&moved, "b"));
    if let Err(e) = store.deliver("nobody-waits", json!(1), T0) {
        panic!("deliver failed: {e}");
    }
    let report = store.check().expect("check");
    assert_eq!(report.runs, 3);
    let records = keyed.head.seq + timed.head.seq + 2;
    assert_eq!((report.records, report.log_leaves), (records, records));
    assert!(report.orphaned_inboxes.is_empty(), "{report:?}");
}
