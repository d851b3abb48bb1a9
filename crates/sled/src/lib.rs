//! ledgerflow's embedded store on sled: every step's state, ledger records and index
//! changes in one sled transaction, made durable with a real fsync (shared by concurrent
//! committers), plus snapshots and content-addressed artifacts.
//!
//! The layout on disk is specified in `docs/storage.md`.

mod artifact;
mod checkpoint;
mod codec;
mod recent;
mod rounds;
mod snapshot;
mod store;
mod sync;
mod wal;

pub use checkpoint::{
    latest_checkpoint, load_or_make_key, public_key, read_checkpoints, CheckpointConfig, Signing,
    CHECKPOINT_LOG_FILE, KEY_FILE, PUBLIC_KEY_FILE, RETIRED_KEYS_FILE,
};
#[doc(hidden)]
pub use codec::decode_any;
pub use codec::VALUE_BYTES_MAX;
pub use ledgerflow_kernel::ARTIFACT_BYTES_MAX;
pub use store::{
    remove_inspection_copies, segment_size_of, SledConfig, SledStore, SEGMENT_BYTES,
    STATE_SNAPSHOT_RECORDS,
};
pub use sync::Durability;
