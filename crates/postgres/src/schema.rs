//! The schema and its migrations, applied in order when a store opens, each once, in one
//! transaction under an advisory lock (so workers starting together apply them once). The
//! tables are described in docs/postgres-schema.md.

use ledgerflow_kernel::store::Error;
use postgres::Client;

use crate::codec::db_error;

/// The migrations, in order: migration `i` brings the schema to version `i + 1`. Never
/// edit one that has shipped; add another. None uses `CREATE INDEX CONCURRENTLY`, which
/// cannot run in a transaction.
const MIGRATIONS: &[&str] = &[
    // 1: runs with their index columns (text keys compare as bytes, `COLLATE "C"`, the
    // order the other stores list them in), records (the feed is their feed_seq order), the
    // global Merkle log, inboxes, artifacts, snapshots.
    r#"
    CREATE TABLE lf_meta (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        store_id bytea NOT NULL CHECK (length(store_id) = 16),
        created_at timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO lf_meta (store_id) VALUES (substr(decode(md5(random()::text || clock_timestamp()::text), 'hex'), 1, 16));
    CREATE TABLE lf_log_head (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        size bigint NOT NULL CHECK (size >= 0)
    );
    INSERT INTO lf_log_head (size) VALUES (0);
    CREATE TABLE lf_runs (
        run_id uuid PRIMARY KEY,
        seq bigint NOT NULL CHECK (seq >= 1),
        head_hash bytea NOT NULL,
        state bytea NOT NULL,
        status text NOT NULL,
        workflow_id text COLLATE "C" NOT NULL,
        workflow_version bigint NOT NULL,
        created_ms bigint NOT NULL,
        updated_ms bigint NOT NULL,
        parent uuid,
        wait_key text COLLATE "C" UNIQUE,
        timer_ms bigint
    );
    CREATE INDEX lf_runs_by_status ON lf_runs (status, run_id);
    CREATE INDEX lf_runs_by_workflow ON lf_runs (workflow_id, workflow_version, run_id);
    CREATE INDEX lf_runs_by_created ON lf_runs (created_ms, run_id);
    CREATE INDEX lf_runs_by_updated ON lf_runs (updated_ms, run_id);
    CREATE INDEX lf_runs_by_parent ON lf_runs (parent, run_id) WHERE parent IS NOT NULL;
    CREATE INDEX lf_runs_by_timer ON lf_runs (timer_ms, run_id) WHERE timer_ms IS NOT NULL;
    CREATE TABLE lf_records (
        run_id uuid NOT NULL,
        seq bigint NOT NULL CHECK (seq >= 1),
        feed_seq bigint NOT NULL UNIQUE CHECK (feed_seq >= 1),
        kind text NOT NULL,
        at_ms bigint NOT NULL,
        line text NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE lf_log_nodes (
        idx bigint PRIMARY KEY,
        hash bytea NOT NULL CHECK (length(hash) = 32)
    );
    CREATE TABLE lf_inbox_keys (
        wait_key text COLLATE "C" PRIMARY KEY,
        last_seq bigint NOT NULL
    );
    CREATE TABLE lf_inbox (
        wait_key text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        payload text NOT NULL,
        at_ms bigint NOT NULL,
        PRIMARY KEY (wait_key, seq)
    );
    CREATE TABLE lf_artifacts (
        digest bytea PRIMARY KEY CHECK (length(digest) = 32),
        size bigint NOT NULL,
        media_type text NOT NULL,
        bytes bytea NOT NULL
    );
    CREATE TABLE lf_run_artifacts (
        run_id uuid NOT NULL,
        digest bytea NOT NULL REFERENCES lf_artifacts (digest),
        PRIMARY KEY (run_id, digest)
    );
    CREATE TABLE lf_snapshots (
        run_id uuid NOT NULL,
        name text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        record_hash bytea NOT NULL,
        description text NOT NULL,
        tags text[] NOT NULL,
        created_ms bigint NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    "#,
    // 2: the latest checkpoint of the global log (a C2SP signed note, signed when the
    // store has a key; unsigned otherwise) and the public key it was signed with, written
    // in each commit's transaction with the head they describe.
    r"
    ALTER TABLE lf_log_head ADD COLUMN checkpoint text, ADD COLUMN public_key text;
    ",
    // 3: run leases for many workers: who holds the run, its fencing epoch (raised by each
    // new holder, checked by every commit) and when the lease expires (database time).
    // Runs left running are found by the partial index when their holder stops renewing.
    r"
    ALTER TABLE lf_runs ADD COLUMN lease_holder text,
        ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0,
        ADD COLUMN lease_expires_at timestamptz;
    CREATE INDEX lf_runs_running ON lf_runs (lease_expires_at) WHERE status = 'running';
    ",
    // 4: receipts of queued deliveries, so one whose COMMIT went unanswered can be read
    // back by its id (its inbox row may be consumed by then); kept an hour.
    r#"
    CREATE TABLE lf_deliveries (
        delivery uuid PRIMARY KEY,
        wait_key text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX lf_deliveries_at ON lf_deliveries (at);
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Whether `name` is a plain lowercase SQL identifier (it is spliced into statements).
pub fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63
        && !name.starts_with("pg_")
}

/// What opening does to the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// Create it if missing, apply the migrations it lacks.
    Create,
    /// It must hold a store ([`Error::Missing`] otherwise); apply the migrations it lacks.
    Existing,
    /// It must hold a store of this build's version; change nothing.
    ReadOnly,
}

/// Creates the schema `schema` if missing (unless `open` says it must exist: then a
/// schema without a store is [`Error::Missing`]) and applies the migrations it lacks
/// (none for [`Open::ReadOnly`], which refuses an older schema). A schema written by a
/// newer build is refused.
pub fn migrate(client: &mut Client, schema: &str, open: Open) -> Result<(), Error> {
    let create = open == Open::Create;
    let fail = |e| db_error("applying the schema migrations", e);
    let mut tx = client.transaction().map_err(fail)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('ledgerflow schema ' || $1))",
        &[&schema],
    )
    .map_err(fail)?;
    if !create {
        let exists = tx
            .query_one(
                "SELECT to_regclass(quote_ident($1) || '.lf_schema_migrations') IS NOT NULL",
                &[&schema],
            )
            .map_err(fail)?
            .get::<_, bool>(0);
        if !exists {
            return Err(Error::Missing(format!(
                "no ledgerflow store in schema {schema} of this database"
            )));
        }
    }
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         SET LOCAL search_path TO {schema};
         CREATE TABLE IF NOT EXISTS lf_schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .map_err(fail)?;
    let applied: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM lf_schema_migrations",
            &[],
        )
        .map_err(fail)?
        .get(0);
    if applied > SCHEMA_VERSION {
        return Err(Error::InvalidInput(format!(
            "schema {schema} is at version {applied}, newer than this build's {SCHEMA_VERSION}: \
             upgrade ledgerflow"
        )));
    }
    if open == Open::ReadOnly {
        if applied < SCHEMA_VERSION {
            return Err(Error::InvalidInput(format!(
                "schema {schema} is at version {applied}, older than this build's \
                 {SCHEMA_VERSION}: a read-only open changes nothing; open it once to write \
                 (that applies the migrations)"
            )));
        }
        return Ok(());
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(sql).map_err(fail)?;
        tx.execute(
            "INSERT INTO lf_schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .map_err(fail)?;
    }
    tx.commit().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::valid_schema_name;

    #[test]
    fn only_plain_identifiers_are_schema_names() {
        for good in ["ledgerflow", "lf_test_0a", "_x"] {
            assert!(valid_schema_name(good), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "Ledgerflow",
            "1x",
            "a-b",
            "a;drop",
            "pg_catalog",
            long.as_str(),
        ] {
            assert!(!valid_schema_name(bad), "{bad}");
        }
    }
}
