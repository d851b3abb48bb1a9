//! The store conformance suite on PostgreSQL: a real server (a throw-away cluster, or
//! `LEDGERFLOW_TEST_PG_URL`), each check on a store in a fresh schema. Skipped, saying
//! why, on a machine without PostgreSQL unless `LEDGERFLOW_REQUIRE_POSTGRES=1` (CI).

use ledgerflow_postgres::testing::{self, TestStore};

fn store() -> TestStore {
    match TestStore::new() {
        Ok(store) => store,
        Err(e) => panic!("{e}"),
    }
}

ledgerflow_kernel::store_conformance_tests!(skip_if: testing::unavailable(), store());
