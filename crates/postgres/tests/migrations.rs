//! Opening a schema: a store is created once, an operator's open of a schema without one
//! is `missing`, a read-only open changes nothing (and refuses an older schema), and a
//! schema a newer build wrote is refused. Skipped, saying why, on a machine without
//! PostgreSQL unless `LEDGERFLOW_REQUIRE_POSTGRES=1` (CI).

use ledgerflow_kernel::store::Error;
use ledgerflow_kernel::Store;
use ledgerflow_postgres::testing::{self, TestStore};
use ledgerflow_postgres::PostgresStore;

fn sql(url: &str, statement: &str) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    client.batch_execute(statement).expect("sql");
}

#[test]
fn schemas_are_created_once_and_versions_are_checked() {
    if let Some(reason) = testing::unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let test_store = TestStore::new().expect("a test store");
    let config = test_store.config().clone();
    let store_id = test_store.store_id();

    // Opening again (as another worker would) keeps the store.
    let again = PostgresStore::open(config.clone()).expect("reopen");
    assert_eq!(again.store_id(), store_id);
    let read_only = PostgresStore::open_read_only(config.clone()).expect("read-only");
    assert_eq!(read_only.feed_head().expect("reads"), 0);

    let mut elsewhere = config.clone();
    elsewhere.schema = format!("{}_none", config.schema);
    assert!(matches!(
        PostgresStore::open_existing(elsewhere.clone()),
        Err(Error::Missing(_))
    ));
    assert!(matches!(
        PostgresStore::open_read_only(elsewhere),
        Err(Error::Missing(_))
    ));

    let table = format!("{}.lf_schema_migrations", config.schema);
    // An older schema: a read-only open refuses it rather than migrate it.
    sql(
        &config.url,
        &format!("DELETE FROM {table} WHERE version = (SELECT max(version) FROM {table})"),
    );
    let refused = PostgresStore::open_read_only(config.clone());
    assert!(
        matches!(&refused, Err(Error::InvalidInput(m)) if m.contains("older")),
        "{refused:?}"
    );
    sql(
        &config.url,
        &format!("INSERT INTO {table} (version) SELECT max(version) + 1 FROM {table}"),
    );
    // A newer build's schema is refused by every open.
    sql(
        &config.url,
        &format!("INSERT INTO {table} (version) VALUES (99)"),
    );
    let refused = PostgresStore::open(config.clone());
    assert!(
        matches!(&refused, Err(Error::InvalidInput(m)) if m.contains("newer")),
        "{refused:?}"
    );
}
