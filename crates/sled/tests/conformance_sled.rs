//! Runs the store conformance suite, unchanged, against `SledStore` (durable `Sync` mode).

use ledgerflow_kernel::store::StoreLimits;
use ledgerflow_sled::{SledConfig, SledStore};

/// A store in a fresh temporary directory that is removed when the store is dropped.
struct TempStore {
    store: SledStore,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TempStore {
    type Target = SledStore;
    fn deref(&self) -> &SledStore {
        &self.store
    }
}

fn make() -> TempStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SledConfig {
        limits: StoreLimits {
            read_items_max: 100,
            inbox_entries_max: 16,
        },
        ..SledConfig::default()
    };
    let store = SledStore::open_with(dir.path().join("store"), config).expect("open");
    TempStore { store, _dir: dir }
}

ledgerflow_kernel::store_conformance_tests!(make());
