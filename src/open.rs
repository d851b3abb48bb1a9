//! Choosing and opening a store by its location (`sled:PATH`, a plain path, `memory:`), so
//! hosts, the CLI and the server name a location, never a backend type.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use ledgerflow_kernel::store::Error;
use ledgerflow_kernel::{MemoryStore, Store, StoreLimits};
use ledgerflow_sled::{SledConfig, SledStore};

/// Where a store lives. Written as a location: `sled:PATH` or a plain path (the embedded
/// sled store in that directory), or `memory:` (nothing survives the process).
///
/// ```
/// use ledgerflow::StoreChoice;
///
/// let sled: StoreChoice = "sled:/var/lib/app/ledger".parse()?;
/// assert_eq!(sled, StoreChoice::Sled("/var/lib/app/ledger".into()));
/// assert_eq!("./data".parse::<StoreChoice>()?, StoreChoice::Sled("./data".into()));
/// assert_eq!("memory:".parse::<StoreChoice>()?, StoreChoice::Memory);
/// assert!("ftp://host/x".parse::<StoreChoice>().is_err());
/// # Ok::<(), ledgerflow::store::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreChoice {
    /// The embedded sled store in this directory.
    Sled(PathBuf),
    /// The in-memory store: nothing survives the process.
    Memory,
}

impl FromStr for StoreChoice {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        if text.is_empty() {
            return Err(Error::InvalidInput(
                "an empty store location; give a directory, sled:PATH or memory:".into(),
            ));
        }
        if text == "memory:" {
            return Ok(StoreChoice::Memory);
        }
        if let Some(path) = text.strip_prefix("sled:") {
            if path.is_empty() {
                return Err(Error::InvalidInput(
                    "sled: needs a directory after the colon (sled:PATH)".into(),
                ));
            }
            return Ok(StoreChoice::Sled(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            if !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+')
            {
                return Err(Error::InvalidInput(format!(
                    "store location {text:?}: no store for the scheme {scheme:?} is built in; \
                     use a directory, sled:PATH or memory:"
                )));
            }
        }
        Ok(StoreChoice::Sled(PathBuf::from(text)))
    }
}

impl fmt::Display for StoreChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreChoice::Sled(dir) => write!(f, "sled:{}", dir.display()),
            StoreChoice::Memory => f.write_str("memory:"),
        }
    }
}

/// How [`open_store`] opens a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Create it if missing, else open it: what an application does.
    CreateOrOpen,
    /// Open it only if it exists ([`Error::Missing`] otherwise): what an operator's
    /// command that changes a store does, so a typo never creates an empty one.
    Existing,
    /// Open it for reading only, without changing a byte of it (sled: a copy of the
    /// directory taken under its file lock); writes are refused ([`Error::Closed`]).
    Inspect,
}

/// Opens the store `choice` names, with `limits` as its read and inbox bounds and, for
/// sled, `sled` as its settings. A memory store can only be created.
///
/// ```
/// use ledgerflow::{open_store, OpenMode, SledConfig, StoreChoice, StoreLimits};
///
/// let store = open_store(&StoreChoice::Memory, OpenMode::CreateOrOpen, StoreLimits::default(), SledConfig::default())?;
/// assert_eq!(store.check()?.runs, 0);
/// # Ok::<(), ledgerflow::store::Error>(())
/// ```
pub fn open_store(
    choice: &StoreChoice,
    mode: OpenMode,
    limits: StoreLimits,
    sled: SledConfig,
) -> Result<Arc<dyn Store>, Error> {
    match (choice, mode) {
        (StoreChoice::Memory, OpenMode::CreateOrOpen) => {
            Ok(Arc::new(MemoryStore::with_limits(limits)))
        }
        (StoreChoice::Memory, _) => Err(Error::InvalidInput(
            "a memory store exists only in the process that made it: it cannot be opened \
             again or inspected"
                .into(),
        )),
        (StoreChoice::Sled(dir), mode) => {
            let config = SledConfig { limits, ..sled };
            let store = match mode {
                OpenMode::CreateOrOpen => SledStore::open_with(dir, config)?,
                OpenMode::Existing => SledStore::open_existing(dir, config)?,
                OpenMode::Inspect => SledStore::open_for_inspection(dir)?,
            };
            Ok(Arc::new(store))
        }
    }
}
