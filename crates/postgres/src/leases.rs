//! Run leases for many worker processes on one database: a lease is three columns of the
//! run's row (holder, fencing epoch, expiry in database time); claims skip rows other
//! workers are locking (`FOR UPDATE SKIP LOCKED`); every commit checks the epoch in its
//! own transaction (`store.rs`); `LISTEN`/`NOTIFY` wakes workers asleep until a timer.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ledgerflow_kernel::store::{Error, Leases};
use ledgerflow_kernel::{RunId, Store};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

use crate::codec::{db_error, run_id, uuid};
use crate::store::{query, PostgresStore};

/// A lease this worker holds: its epoch, and when it was last taken or renewed (by this
/// host's monotonic clock, only to skip a round trip while it is surely live; the
/// database's clock decides expiry).
#[derive(Clone, Copy)]
struct Lease {
    epoch: i64,
    renewed: Instant,
}

/// This worker's leases, and the connection it listens for notices on.
pub struct Held {
    worker: String,
    lease_ms: u64,
    channel: String,
    config: postgres::Config,
    leases: Mutex<HashMap<RunId, Lease>>,
    listener: Mutex<Option<Client>>,
}

impl Held {
    /// No leases yet, for worker `worker` of the store in `schema`.
    pub fn new(config: postgres::Config, schema: &str, worker: String, lease_ms: u64) -> Held {
        Held {
            worker,
            lease_ms: lease_ms.max(1),
            // Schema names are at most 63 bytes; a channel name too.
            channel: format!("lf_{}", &schema[..schema.len().min(60)]),
            config,
            leases: Mutex::default(),
            listener: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RunId, Lease>> {
        // A map of plain values: consistent at every point a panic could occur.
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This worker's name.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The lease time.
    pub fn lease_ms(&self) -> u64 {
        self.lease_ms
    }

    /// The notice channel of the store.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The epoch of the lease this worker holds on `run`, if it holds one.
    pub fn epoch(&self, run: RunId) -> Option<i64> {
        self.lock().get(&run).map(|l| l.epoch)
    }

    /// This worker holds `run` at `epoch` from now.
    pub fn hold(&self, run: RunId, epoch: i64) {
        self.lock().insert(
            run,
            Lease {
                epoch,
                renewed: Instant::now(),
            },
        );
    }

    /// A commit under the lease on `run` renewed it.
    pub fn renewed(&self, run: RunId) {
        if let Some(lease) = self.lock().get_mut(&run) {
            lease.renewed = Instant::now();
        }
    }

    /// The lease on `run` is gone (taken over, or let go).
    pub fn lost(&self, run: RunId) {
        self.lock().remove(&run);
    }

    /// Whether this worker holds `run` and renewed it within a third of the lease time.
    fn surely_live(&self, run: RunId) -> bool {
        let third = Duration::from_millis(self.lease_ms / 3);
        self.lock()
            .get(&run)
            .is_some_and(|l| l.renewed.elapsed() < third)
    }

    fn listener(&self) -> MutexGuard<'_, Option<Client>> {
        self.listener.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lease_ms_param(held: &Held) -> i64 {
    i64::try_from(held.lease_ms).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// The live leases on the store's runs, counted by the worker holding them, by name:
    /// which workers are busy with runs right now (by the database's clock).
    pub fn live_leases(&self) -> Result<Vec<(String, u64)>, Error> {
        let rows = self.rows(
            "SELECT lease_holder, count(*) FROM lf_runs
             WHERE lease_holder IS NOT NULL AND lease_expires_at > now()
             GROUP BY lease_holder ORDER BY lease_holder",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get::<_, i64>(1).unsigned_abs()))
            .collect())
    }
}

impl Leases for PostgresStore {
    fn holder(&self) -> &str {
        self.leases.worker()
    }

    fn lease_ms(&self) -> u64 {
        self.leases.lease_ms()
    }

    fn acquire(&self, run: RunId) -> Result<bool, Error> {
        let held = &self.leases;
        if held.surely_live(run) {
            return Ok(true);
        }
        let outcome = self.with_conn(|conn| {
            // Keeps the epoch of a live lease this worker holds; raises it for a new holder.
            let rows = query(
                conn,
                "UPDATE lf_runs SET
                     lease_epoch = CASE WHEN lease_holder = $2 AND lease_expires_at > now()
                         THEN lease_epoch ELSE lease_epoch + 1 END,
                     lease_holder = $2,
                     lease_expires_at = now() + $3::bigint * interval '1 millisecond'
                 WHERE run_id = $1
                   AND (lease_holder IS NULL OR lease_holder = $2 OR lease_expires_at <= now())
                 RETURNING lease_epoch",
                &[&uuid(run), &held.worker(), &lease_ms_param(held)],
            )?;
            if let Some(row) = rows.first() {
                return Ok(Ok(row.get::<_, i64>(0)));
            }
            let exists = query(
                conn,
                "SELECT 1 FROM lf_runs WHERE run_id = $1",
                &[&uuid(run)],
            )?;
            Ok(Err(exists.is_empty()))
        })?;
        match outcome {
            Ok(epoch) => {
                held.hold(run, epoch);
                Ok(true)
            }
            Err(absent) => {
                held.lost(run);
                Ok(absent)
            }
        }
    }

    fn release(&self, run: RunId) -> Result<(), Error> {
        let held = &self.leases;
        let Some(epoch) = held.epoch(run) else {
            return Ok(());
        };
        held.lost(run);
        self.with_conn(|conn| {
            // A run let go with work left wakes the workers listening: one claims it.
            query(
                conn,
                "WITH let_go AS (
                     UPDATE lf_runs SET lease_holder = NULL, lease_expires_at = NULL
                     WHERE run_id = $1 AND lease_holder = $2 AND lease_epoch = $3
                     RETURNING status)
                 SELECT pg_notify($4, '') FROM let_go WHERE status = 'running'",
                &[&uuid(run), &held.worker(), &epoch, &held.channel()],
            )
        })?;
        Ok(())
    }

    fn abandon(&self, run: RunId) {
        self.leases.lost(run);
    }

    fn claim_work(&self, now_ms: i64, limit: usize) -> Result<Vec<RunId>, Error> {
        self.check_limit(limit)?;
        let held = &self.leases;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.with_conn(|conn| {
            let params: [&(dyn postgres::types::ToSql + Sync); 4] =
                [&now_ms, &held.worker(), &limit, &lease_ms_param(held)];
            // Due timers first (by due time), then runs whose holder stopped renewing or let
            // them go with work left. A run under a live lease is not work to claim, this
            // worker's own included: its job is under way here, and a claim loop that took its
            // own runs again would never end.
            let mut rows = query(
                conn,
                "WITH picked AS (
                     SELECT run_id FROM lf_runs
                     WHERE timer_ms <= $1
                       AND (lease_holder IS NULL OR lease_expires_at <= now())
                     ORDER BY timer_ms, run_id LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 UPDATE lf_runs r SET lease_holder = $2, lease_epoch = r.lease_epoch + 1,
                     lease_expires_at = now() + $4::bigint * interval '1 millisecond'
                 FROM picked WHERE r.run_id = picked.run_id
                 RETURNING r.run_id, r.lease_epoch",
                &params,
            )?;
            let left = limit - rows.len() as i64;
            if left > 0 {
                rows.extend(query(
                    conn,
                    "WITH picked AS (
                         SELECT run_id FROM lf_runs
                         WHERE status = 'running'
                           AND (lease_expires_at IS NULL OR lease_expires_at <= now())
                         ORDER BY lease_expires_at NULLS FIRST, run_id LIMIT $3
                         FOR UPDATE SKIP LOCKED)
                     UPDATE lf_runs r SET lease_holder = $1, lease_epoch = r.lease_epoch + 1,
                         lease_expires_at = now() + $2::bigint * interval '1 millisecond'
                     FROM picked WHERE r.run_id = picked.run_id
                     RETURNING r.run_id, r.lease_epoch",
                    &[&held.worker(), &lease_ms_param(held), &left],
                )?);
            }
            Ok(rows)
        })?;
        Ok(rows
            .iter()
            .map(|row| {
                let run = run_id(row.get(0));
                held.hold(run, row.get(1));
                run
            })
            .collect())
    }

    fn renew(&self) -> Result<(), Error> {
        let held = &self.leases;
        let runs: Vec<RunId> = held.lock().keys().copied().collect();
        if runs.is_empty() {
            return Ok(());
        }
        let ids: Vec<uuid::Uuid> = runs.iter().map(|r| uuid(*r)).collect();
        let rows = self.with_conn(|conn| {
            query(
                conn,
                // Rows locked in run id order, as commits lock them: never a deadlock
                // with a batch of this worker's commits holding some of them.
                "WITH mine AS (
                     SELECT run_id FROM lf_runs WHERE run_id = ANY($1) AND lease_holder = $2
                     ORDER BY run_id FOR UPDATE)
                 UPDATE lf_runs r
                 SET lease_expires_at = now() + $3::bigint * interval '1 millisecond'
                 FROM mine WHERE r.run_id = mine.run_id RETURNING r.run_id",
                &[&ids, &held.worker(), &lease_ms_param(held)],
            )
        })?;
        let renewed: HashSet<RunId> = rows.iter().map(|r| run_id(r.get(0))).collect();
        let now = Instant::now();
        let mut leases = held.lock();
        for run in runs {
            if renewed.contains(&run) {
                if let Some(lease) = leases.get_mut(&run) {
                    lease.renewed = now;
                }
            } else {
                // Taken over while this worker was not looking.
                leases.remove(&run);
            }
        }
        Ok(())
    }

    fn wait_notice(&self, timeout: Duration) -> Result<bool, Error> {
        let held = &self.leases;
        let mut listener = held.listener();
        if listener.is_none() {
            let mut client = held
                .config
                .connect(NoTls)
                .map_err(|e| db_error("connecting to listen for notices", e))?;
            // The channel is `lf_` and a checked schema name: a plain identifier.
            client
                .batch_execute(&format!("LISTEN {}", held.channel()))
                .map_err(|e| db_error("listening for notices", e))?;
            *listener = Some(client);
        }
        let outcome = {
            let client = listener.as_mut().expect("connected above");
            let heard = {
                let mut notifications = client.notifications();
                let heard = notifications
                    .timeout_iter(timeout)
                    .next()
                    .map(|n| n.is_some());
                // Notices that came together count as one.
                while let Ok(Some(_)) = notifications.iter().next() {}
                heard
            };
            (heard, client.is_closed())
        };
        let heard = match outcome {
            (Ok(heard), false) => heard,
            (Ok(_), true) => {
                *listener = None;
                return Err(Error::io_failed("the notice connection closed"));
            }
            (Err(e), _) => {
                *listener = None;
                return Err(db_error("waiting for notices", e));
            }
        };
        Ok(heard)
    }
}
