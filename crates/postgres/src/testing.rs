//! PostgreSQL for tests: a throw-away cluster (`initdb` + `pg_ctl` on a temporary
//! directory, listening on a free loopback port), or the server `LEDGERFLOW_TEST_PG_URL`
//! names; and stores in fresh schemas of it, dropped when the test is done. For this
//! crate's tests and for applications testing against a real PostgreSQL.
//!
//! The cluster is one per test process, started by the first test that asks and stopped
//! when the process ends (a watchdog process stops it, since a test process runs no
//! destructors of statics). As root (CI), the server runs as the `postgres` user, which
//! Debian's package creates: PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::{PostgresConfig, PostgresStore};

/// The environment variable naming a server to use instead of a throw-away cluster (a
/// libpq connection string of a role that may create schemas).
pub const URL_VAR: &str = "LEDGERFLOW_TEST_PG_URL";

/// Why no PostgreSQL could be had.
#[derive(Debug, thiserror::Error)]
#[error("test PostgreSQL: {0}")]
pub struct ClusterError(String);

/// A running throw-away cluster.
#[derive(Debug)]
pub struct TestCluster {
    dir: PathBuf,
    port: u16,
}

impl TestCluster {
    /// The connection URL of database `postgres` on it, over TCP on loopback.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its directory (data, log, socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts a cluster: initdb in a new temporary directory, then the server on a free
    /// port of 127.0.0.1 (and a unix socket in the directory), with default durability
    /// (fsync and synchronous_commit on).
    pub fn start() -> Result<TestCluster, ClusterError> {
        let bin = bin_dir()?;
        let dir =
            std::env::temp_dir().join(format!("ledgerflow-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| ClusterError(format!("{}: {e}", dir.display())))?;
        let as_root = running_as_root();
        if as_root {
            run(
                Command::new("chown").arg("postgres:postgres").arg(&dir),
                "chown",
            )?;
        }
        let data = dir.join("data");
        run(
            as_server_user(&bin.join("initdb"), as_root)
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]),
            "initdb",
        )?;
        let port = free_port()?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c max_connections=200 -c fsync=on -c synchronous_commit=on",
            dir.display()
        );
        run(
            as_server_user(&bin.join("pg_ctl"), as_root)
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-o", &options, "-w", "-t", "60", "start"]),
            "pg_ctl start",
        )?;
        watch(&bin, &dir, &data, as_root)?;
        Ok(TestCluster { dir, port })
    }
}

/// Set to `1` to make a machine without PostgreSQL fail the tests that need it instead of
/// skipping them (`.ci/run` sets it).
pub const REQUIRE_VAR: &str = "LEDGERFLOW_REQUIRE_POSTGRES";

/// Why tests that need PostgreSQL cannot run here (`None`: they can, or they must: with
/// [`REQUIRE_VAR`] set, a missing server is their failure, not a skip).
pub fn unavailable() -> Option<String> {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
    if set(URL_VAR) || std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
        return None;
    }
    bin_dir()
        .err()
        .map(|e| format!("{e} (set {REQUIRE_VAR}=1 to make this a failure)"))
}

/// The server tests use: `LEDGERFLOW_TEST_PG_URL` if set, else this process's throw-away
/// cluster, started on first use.
pub fn server_url() -> Result<String, ClusterError> {
    if let Ok(url) = std::env::var(URL_VAR) {
        if !url.is_empty() {
            return Ok(url);
        }
    }
    static CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| TestCluster::start().map_err(|e| e.0))
        .as_ref()
        .map(TestCluster::url)
        .map_err(|e| ClusterError(e.clone()))
}

/// A store in a schema of its own on the test server, whose schema is dropped when it is.
#[derive(Debug)]
pub struct TestStore {
    store: Option<std::sync::Arc<PostgresStore>>,
    config: PostgresConfig,
}

impl TestStore {
    /// A fresh store (a new schema `lf_test_<random>`).
    pub fn new() -> Result<TestStore, ClusterError> {
        let config = fresh_config()?;
        let store = PostgresStore::open(config.clone())
            .map_err(|e| ClusterError(format!("opening a store: {e}")))?;
        Ok(TestStore {
            store: Some(std::sync::Arc::new(store)),
            config,
        })
    }

    /// The store, to share (its schema is still dropped when this is).
    pub fn shared(&self) -> std::sync::Arc<PostgresStore> {
        std::sync::Arc::clone(self.store.as_ref().expect("present until dropped"))
    }

    /// Its configuration: open it again, from this or another process, with this.
    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }
}

/// The configuration of a store in a new schema on the test server (created on open).
pub fn fresh_config() -> Result<PostgresConfig, ClusterError> {
    let mut config = PostgresConfig::new(server_url()?);
    config.schema = format!("lf_test_{}", uuid::Uuid::new_v4().simple());
    Ok(config)
}

impl std::ops::Deref for TestStore {
    type Target = PostgresStore;
    fn deref(&self) -> &PostgresStore {
        self.store.as_ref().expect("present until dropped")
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        drop(self.store.take());
        let _ = crate::drop_schema(&self.config.url, &self.config.schema);
    }
}

/// Where `initdb` and `pg_ctl` are: on `PATH`, or the newest `/usr/lib/postgresql/N/bin`.
fn bin_dir() -> Result<PathBuf, ClusterError> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        ClusterError(format!(
            "no initdb on PATH or in /usr/lib/postgresql/*/bin: install PostgreSQL (Debian: \
             apt-get install postgresql) or set {URL_VAR}"
        ))
    })
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// `program`, run as the `postgres` user when this process is root.
fn as_server_user(program: &Path, as_root: bool) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command, what: &str) -> Result<(), ClusterError> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ClusterError(format!("{what}: {e}")))?;
    if !out.status.success() {
        return Err(ClusterError(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

fn free_port() -> Result<u16, ClusterError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| ClusterError(format!("finding a free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| ClusterError(format!("finding a free port: {e}")))
}

/// A process that waits for this one to end, then stops the cluster and removes its
/// directory.
fn watch(bin: &Path, dir: &Path, data: &Path, as_root: bool) -> Result<(), ClusterError> {
    let stop = format!(
        "{}{} -D '{}' -m immediate stop",
        if as_root {
            "runuser -u postgres -- "
        } else {
            ""
        },
        bin.join("pg_ctl").display(),
        data.display()
    );
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    // Not waited for: it outlives this process by design.
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| ClusterError(format!("starting the cluster's watchdog: {e}")))?;
    Ok(())
}
