//! `Store::check` on PostgreSQL: every run's chain and replay against its stored state and
//! index columns, then the feed and the global Merkle log recomputed from the records, a
//! page at a time (an operator's command: it reads everything once).

use ledgerflow_kernel::store::{CheckReport, Error};
use ledgerflow_kernel::Store;
use ledgerflow_ledger::merkle::{self, Frontier};

use crate::codec::{self, int, run_id, uint};
use crate::PostgresStore;

/// Rows a page of the check reads.
const PAGE_ROWS: i64 = 1_000;

pub fn check(store: &PostgresStore) -> Result<CheckReport, Error> {
    let mut report = CheckReport::default();
    let mut after: Option<uuid::Uuid> = None;
    loop {
        let rows = store.rows(
            "SELECT run_id, state, seq, status, wait_key, timer_ms FROM lf_runs
             WHERE ($1::uuid IS NULL OR run_id > $1) ORDER BY run_id LIMIT $2",
            &[&after, &PAGE_ROWS],
        )?;
        for row in &rows {
            let run = run_id(row.get(0));
            let corrupt = |what: String| Error::Corrupt(format!("run {run}: {what}"));
            let state = codec::state(row.get(1), run)?;
            let records = ledgerflow_kernel::store::read_all_records(store, run)?;
            ledgerflow_ledger::verify_chain(&records).map_err(|e| corrupt(e.to_string()))?;
            let replayed =
                ledgerflow_kernel::replay(&records).map_err(|e| corrupt(e.to_string()))?;
            if replayed != state {
                return Err(corrupt(
                    "replayed ledger differs from the stored state".into(),
                ));
            }
            let seq: i64 = row.get(2);
            if uint(seq, "a seq")? != state.head.seq {
                return Err(corrupt(format!("the seq column {seq} is not the state's")));
            }
            if codec::status(row.get(3))? != state.status {
                return Err(corrupt("the status column is not the state's".into()));
            }
            let wait_key: Option<String> = row.get(4);
            let timer_ms: Option<i64> = row.get(5);
            let waiting = state.waiting.as_ref();
            if wait_key != waiting.and_then(|w| w.wait_key.clone()) {
                return Err(corrupt(
                    "the wait_key column is not what the run waits on".into(),
                ));
            }
            if timer_ms != waiting.and_then(|w| w.until_ms) {
                return Err(corrupt("the timer column is not the run's timer".into()));
            }
            report.runs += 1;
            report.records += records.len() as u64;
        }
        match rows.last() {
            Some(last) if rows.len() as i64 == PAGE_ROWS => after = Some(last.get(0)),
            _ => break,
        }
    }
    report.log_leaves = check_log(store, report.records)?;
    Ok(report)
}

/// Recomputes the global log from the records in feed order and compares every stored
/// hash and the head's size; the number of leaves.
fn check_log(store: &PostgresStore, records: u64) -> Result<u64, Error> {
    let mut frontier = Frontier::new();
    loop {
        let after = int(frontier.size(), "a feed seq")?;
        let rows = store.rows(
            "SELECT feed_seq, run_id, seq, line FROM lf_records WHERE feed_seq > $1
             ORDER BY feed_seq LIMIT $2",
            &[&after, &PAGE_ROWS],
        )?;
        let mut expected = Vec::new();
        for row in &rows {
            let feed_seq: i64 = row.get(0);
            if uint(feed_seq, "a feed seq")? != frontier.size() + 1 {
                return Err(Error::Corrupt(format!(
                    "the feed has a gap: entry {feed_seq} follows {}",
                    frontier.size()
                )));
            }
            let run = run_id(row.get(1));
            let record = codec::record(row.get(3), run, row.get(2))?;
            let leaf = merkle::leaf_hash(run, record.seq(), &record.hash());
            expected.extend(frontier.append(leaf));
        }
        let indexes: Vec<u64> = expected.iter().map(|(i, _)| *i).collect();
        let stored = store
            .log_nodes(&indexes)
            .map_err(|e| Error::Corrupt(format!("the global log: {e}")))?;
        for ((index, hash), stored) in expected.iter().zip(stored) {
            if *hash != stored {
                return Err(Error::Corrupt(format!(
                    "the global log's hash {index} is wrong"
                )));
            }
        }
        if (rows.len() as i64) < PAGE_ROWS {
            break;
        }
    }
    let head = store.feed_head()?;
    if frontier.size() != records || head != records {
        return Err(Error::Corrupt(format!(
            "the global log has {} leaves and a head of {head} for {records} records",
            frontier.size()
        )));
    }
    // The checkpoint is written with the head it describes: it must be this tree's, and
    // signed by the store's key when there is one.
    if let Some(latest) = store.latest_checkpoint()? {
        if latest.head.size != frontier.size() || latest.head.root != frontier.root() {
            return Err(Error::Corrupt(format!(
                "the checkpoint (tree size {}) does not match the global log ({} leaves)",
                latest.head.size,
                frontier.size()
            )));
        }
        if let Some(key) = store.checkpoint_public_key()? {
            latest
                .verify(&key)
                .map_err(|e| Error::Corrupt(format!("the checkpoint: {e}")))?;
        }
    } else if records > 0 {
        return Err(Error::Corrupt(
            "the global log has leaves but no checkpoint".into(),
        ));
    }
    Ok(frontier.size())
}
