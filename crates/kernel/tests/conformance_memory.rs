//! Runs the store conformance suite against `MemoryStore`.

use ledgerflow_kernel::store::StoreLimits;
use ledgerflow_kernel::MemoryStore;

ledgerflow_kernel::store_conformance_tests!(Box::new(MemoryStore::with_limits(StoreLimits {
    read_items_max: 100,
    inbox_entries_max: 16,
})));
