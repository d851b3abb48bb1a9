//! Choosing and opening a store by its location (`sled:PATH`, a plain path, `memory:`,
//! `postgres://…` with feature `postgres`), so hosts, the CLI and the server name a
//! location, never a backend type.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use ledgerflow_kernel::store::Error;
use ledgerflow_kernel::{MemoryStore, Store, StoreLimits};
use ledgerflow_sled::{SledConfig, SledStore};

/// Where a store lives. Written as a location: `sled:PATH` or a plain path (the embedded
/// sled store in that directory), `memory:` (nothing survives the process), or, with
/// feature `postgres`, a PostgreSQL connection URL `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`
/// (or `postgresql://`), with `?schema=NAME` to choose the schema (default `ledgerflow`),
/// `checkpoint_key=PATH` to sign its checkpoints with the key in that file (made there if
/// missing; a store that signs refuses writes from a process without its key), and, for
/// a worker among many, `worker=NAME` (its name in run leases; default host, process id
/// and a random suffix) and `lease_ms=MS` (how long its leases last unrenewed; default
/// 30000).
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
    /// The PostgreSQL store at this connection URL, in this schema.
    #[cfg(feature = "postgres")]
    Postgres {
        /// The connection URL, without ledgerflow's own parameters.
        url: String,
        /// The schema (`ledgerflow` unless the location named one).
        schema: String,
        /// The file of the key that signs its checkpoints, if the location named one.
        checkpoint_key: Option<PathBuf>,
        /// This worker's name in run leases, if the location named one.
        worker: Option<String>,
        /// How long this worker's run leases last unrenewed, if the location said.
        lease_ms: Option<u64>,
    },
}

/// The PostgreSQL location `text` (`postgres://` or `postgresql://`), ledgerflow's own
/// parameters (`schema`, `checkpoint_key`, `worker`, `lease_ms`) split off: the client
/// does not know them.
#[cfg(feature = "postgres")]
fn postgres_location(text: &str) -> Result<StoreChoice, Error> {
    let (base, query) = text.split_once('?').unwrap_or((text, ""));
    let mut schema = "ledgerflow".to_owned();
    let mut checkpoint_key = None;
    let mut worker = None;
    let mut lease_ms = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        if let Some(name) = pair.strip_prefix("schema=") {
            schema = name.to_owned();
        } else if let Some(path) = pair.strip_prefix("checkpoint_key=") {
            checkpoint_key = Some(PathBuf::from(path));
        } else if let Some(name) = pair.strip_prefix("worker=") {
            if name.is_empty() {
                return Err(Error::InvalidInput(
                    "store location: worker= needs a name".into(),
                ));
            }
            worker = Some(name.to_owned());
        } else if let Some(ms) = pair.strip_prefix("lease_ms=") {
            lease_ms = Some(ms.parse::<u64>().ok().filter(|&ms| ms > 0).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "store location: lease_ms={ms:?} is not a whole number of milliseconds \
                     above 0"
                ))
            })?);
        } else {
            rest.push(pair);
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok(StoreChoice::Postgres {
        url,
        schema,
        checkpoint_key,
        worker,
        lease_ms,
    })
}

/// A connection URL with its password, if any, replaced by `***` (for messages).
#[cfg(feature = "postgres")]
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
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
        #[cfg(feature = "postgres")]
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return postgres_location(text);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            if !cfg!(feature = "postgres") && matches!(scheme, "postgres" | "postgresql") {
                return Err(Error::InvalidInput(format!(
                    "store location {text:?}: this build has no PostgreSQL store (the \
                     ledgerflow crate's feature `postgres`)"
                )));
            }
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
            #[cfg(feature = "postgres")]
            StoreChoice::Postgres {
                url,
                schema,
                checkpoint_key,
                worker,
                lease_ms,
            } => {
                let sep = if url.contains('?') { '&' } else { '?' };
                write!(f, "{}{sep}schema={schema}", without_password(url))?;
                if let Some(path) = checkpoint_key {
                    write!(f, "&checkpoint_key={}", path.display())?;
                }
                if let Some(name) = worker {
                    write!(f, "&worker={name}")?;
                }
                match lease_ms {
                    Some(ms) => write!(f, "&lease_ms={ms}"),
                    None => Ok(()),
                }
            }
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
        #[cfg(feature = "postgres")]
        (
            StoreChoice::Postgres {
                url,
                schema,
                checkpoint_key,
                worker,
                lease_ms,
            },
            mode,
        ) => {
            use ledgerflow_postgres::{PostgresConfig, PostgresStore};
            let defaults = PostgresConfig::new(url.clone());
            let config = PostgresConfig {
                schema: schema.clone(),
                limits,
                worker: worker.clone().unwrap_or_else(|| defaults.worker.clone()),
                lease_ms: lease_ms.unwrap_or(defaults.lease_ms),
                ..defaults
            };
            let store = match mode {
                OpenMode::CreateOrOpen => PostgresStore::open(config)?,
                OpenMode::Existing => PostgresStore::open_existing(config)?,
                // Reads see committed data as it is; nothing is migrated or written.
                OpenMode::Inspect => return Ok(Arc::new(PostgresStore::open_read_only(config)?)),
            };
            if let Some(path) = checkpoint_key {
                store.sign_checkpoints_with(ledgerflow_sled::load_or_make_key(
                    path,
                    store.origin(),
                )?)?;
            }
            Ok(Arc::new(store))
        }
    }
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;

    #[test]
    fn postgres_locations_keep_their_parameters_apart_and_hide_the_password() {
        let choice: StoreChoice =
            "postgres://app:s3cret@db:5433/prod?sslmode=disable&schema=ops&checkpoint_key=/k&lease_ms=5000&worker=w1"
                .parse()
                .expect("a location");
        assert_eq!(
            choice,
            StoreChoice::Postgres {
                url: "postgres://app:s3cret@db:5433/prod?sslmode=disable".into(),
                schema: "ops".into(),
                checkpoint_key: Some(PathBuf::from("/k")),
                worker: Some("w1".into()),
                lease_ms: Some(5000),
            }
        );
        let shown = choice.to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(
            shown,
            "postgres://app:***@db:5433/prod?sslmode=disable&schema=ops&checkpoint_key=/k&worker=w1&lease_ms=5000"
        );
        let plain: StoreChoice = "postgresql://db/app".parse().expect("a location");
        assert_eq!(plain.to_string(), "postgresql://db/app?schema=ledgerflow");
        for bad in ["lease_ms=0", "lease_ms=soon", "worker="] {
            let text = format!("postgres://db/app?{bad}");
            match text.parse::<StoreChoice>() {
                Err(Error::InvalidInput(message)) => assert!(
                    message.contains(bad.split('=').next().unwrap_or(bad)),
                    "{message}"
                ),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
