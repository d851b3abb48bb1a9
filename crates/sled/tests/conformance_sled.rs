//! Runs the store conformance suite, unchanged, against `SledStore`: in `Sync` mode, and
//! in `Log` mode (the store's own commit log).

use ledgerflow_kernel::store::StoreLimits;
use ledgerflow_sled::{Durability, SledConfig, SledStore};

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
    make_with(Durability::Sync)
}

fn make_with(durability: Durability) -> TempStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SledConfig {
        durability,
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

/// The same suite with `Durability::Log`.
mod commit_log {
    use super::*;

    fn make() -> TempStore {
        make_with(Durability::Log { checkpoint_ms: 50 })
    }

    ledgerflow_kernel::store_conformance_tests!(make());
}
