//! The `ledgerflow` command: parses arguments and calls the libraries. Operators inspect,
//! resume, pause and cancel runs; auditors verify and export ledgers; everyone can bench.

mod bench;
mod commands;
mod errors;
mod export;
mod log;
mod output;
mod remote;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Inspect, operate, verify and benchmark ledgerflow stores.
#[derive(Parser, Debug)]
#[command(name = "ledgerflow", version, about)]
struct Cli {
    /// The store: a directory or sled:PATH [default: ledgerflow-data].
    #[arg(long, global = true)]
    db: Option<String>,
    /// Go through the HTTP API of a server (`ledgerflow serve`, or one an application
    /// mounts) instead of opening the store: reaches the store of a live application. The
    /// bearer token, if the server needs one, comes from LEDGERFLOW_TOKEN.
    #[arg(long, global = true, env = "LEDGERFLOW_URL")]
    url: Option<String>,
    /// Print one JSON document on stdout instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List and show runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Show, verify and export ledgers.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Read the store's event feed.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Deliver an event to a wait_key (queued in its inbox if no run waits on it yet).
    Emit {
        /// The wait_key.
        wait_key: String,
        #[command(flatten)]
        payload: PayloadArgs,
    },
    /// Answer a run that waits for a person (ask_user) or an event (wait_event).
    Respond {
        /// The run id (or an unambiguous prefix of it).
        run: String,
        #[command(flatten)]
        payload: PayloadArgs,
    },
    /// Pause a run: no step runs until it is unpaused.
    Pause {
        /// The run id.
        run: String,
    },
    /// Unpause a run.
    Unpause {
        /// The run id.
        run: String,
    },
    /// Cancel a run and its child runs.
    Cancel {
        /// The run id.
        run: String,
        /// Why, for the ledger.
        #[arg(long, default_value = "cancelled from the command line")]
        reason: String,
    },
    /// Create and list snapshots (bookmarks) of runs.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Start a new run from a run's state at a seq or a snapshot (time travel).
    Fork(ForkArgs),
    /// Verify every run: chains, replay equals stored state, indexes, and the global log
    /// against the last signed checkpoint.
    Check,
    /// The global Merkle log: signed checkpoints and proofs for auditors.
    #[command(subcommand)]
    Log(LogCommand),
    /// Large values stored apart from the ledger by their BLAKE3 digest.
    #[command(subcommand)]
    Artifact(ArtifactCommand),
    /// Counts by status and the feed's length.
    Stats,
    /// Measure throughput and latency on this machine, on a fresh store each time.
    Bench(bench::BenchArgs),
    /// Serve the store over HTTP: the JSON API, the event feed and the run inspector at /.
    /// For a store no application holds (an application mounts the same server itself).
    Serve(ServeArgs),
}

/// `ledgerflow serve`.
#[derive(Args, Debug)]
struct ServeArgs {
    /// The address to listen on; a non-loopback address needs --tokens.
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: std::net::SocketAddr,
    /// Bearer tokens, one a line: NAME ROLE SECRET (ROLE: read or operate).
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// The largest request body accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    body_bytes_max: usize,
    /// Requests a second accepted, all callers together.
    #[arg(long, default_value_t = 2_000)]
    requests_per_s_max: u32,
    /// An origin allowed to call the API from its pages (CORS); repeat for more.
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
}

/// A JSON payload: on the command line, or from a file (`-` for standard input).
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct PayloadArgs {
    /// The JSON, on the command line.
    #[arg(long)]
    payload: Option<String>,
    /// Read the JSON from this file; `-` reads standard input.
    #[arg(long)]
    payload_file: Option<PathBuf>,
}

/// Which runs a listing shows first, by creation time.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    /// The most recently created first.
    Newest,
    /// The first created first.
    Oldest,
}

#[derive(Subcommand, Debug)]
enum RunsCommand {
    /// List runs by creation time (newest first by default), a page at a time.
    List {
        /// Only runs with this status (running, waiting, completed, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this workflow id.
        #[arg(long)]
        workflow: Option<String>,
        /// Which runs come first.
        #[arg(long, value_enum, default_value = "newest")]
        order: Order,
        /// Only runs created at or after this time (RFC 3339, e.g. 2026-11-22T10:00:00Z,
        /// or milliseconds since the Unix epoch).
        #[arg(long)]
        since: Option<String>,
        /// Only runs created at or before this time (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue from a previous page's cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one run's state.
    Show {
        /// The run id (or an unambiguous prefix of it).
        run: String,
    },
}

#[derive(Subcommand, Debug)]
enum LedgerCommand {
    /// Show a run's records.
    Show {
        /// The run id.
        run: String,
    },
    /// Verify chains: a summary and the failures (exit 1 if any run fails).
    Verify(VerifyArgs),
    /// Export records as JSONL (docs/ledger-format.md).
    Export(ExportArgs),
}

#[derive(Subcommand, Debug)]
enum ArtifactCommand {
    /// Write an artifact's bytes (checked against their digest) to stdout or a file.
    Get {
        /// The digest, 64 hex digits.
        digest: String,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum LogCommand {
    /// Print the latest signed checkpoint (C2SP tlog-checkpoint note).
    Checkpoint,
    /// Print the public key checkpoints are signed with (a signed-note verifier key).
    Key,
    /// Inclusion proofs that a run's records are in the signed log.
    Prove {
        /// The run id (or an unambiguous prefix of it).
        run: String,
        /// Only this record.
        #[arg(long)]
        seq: Option<u64>,
    },
    /// The consistency proof that the log at OLD_SIZE is a prefix of the latest
    /// checkpoint's (the log was only appended to since).
    Consistency {
        /// The older tree size (from a checkpoint seen before).
        old_size: u64,
    },
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The run to verify.
    #[arg(conflicts_with_all = ["all", "file"], required_unless_present_any = ["all", "file"])]
    run: Option<String>,
    /// Verify every run in the store.
    #[arg(long)]
    all: bool,
    /// Verify a JSONL export, without a store.
    #[arg(long, conflicts_with = "all")]
    file: Option<PathBuf>,
    /// Print a line for every run verified, not only the failures.
    #[arg(long)]
    verbose: bool,
    /// With --file: the export's proof file [default: FILE.proof.json when it exists].
    #[arg(long, requires = "file")]
    proof: Option<PathBuf>,
    /// With --file: the public key to check the checkpoint's signature with (the key's
    /// text, or @PATH to read it from a file). Without it, the key in the proof file is
    /// used, which shows the export is intact but not who signed it.
    #[arg(long, requires = "file")]
    public_key: Option<String>,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// The run to export.
    #[arg(conflicts_with = "all", required_unless_present = "all")]
    run: Option<String>,
    /// Export every run.
    #[arg(long)]
    all: bool,
    /// Where to write the JSONL. The signed checkpoint and the proofs go beside it, in
    /// OUT.proof.json.
    #[arg(long)]
    out: PathBuf,
    /// Also write every artifact the exported records cite to OUT.artifacts/<digest>,
    /// so an auditor can check them against the digests the chains cover.
    #[arg(long)]
    with_artifacts: bool,
}

#[derive(Subcommand, Debug)]
enum EventsCommand {
    /// Print the last events (or all with --from-start); --follow keeps printing new ones.
    Tail {
        /// Start from the first event.
        #[arg(long)]
        from_start: bool,
        /// Keep waiting for new events.
        #[arg(long)]
        follow: bool,
        /// Events per read.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// Bookmark a run at its current seq.
    Create {
        /// The run id.
        run: String,
        /// The snapshot's name (unique within the run).
        name: String,
        /// Tags to search by.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List snapshots.
    List {
        /// Only this run's.
        #[arg(long)]
        run: Option<String>,
        /// Only those with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Most to list.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Args, Debug)]
struct ForkArgs {
    /// The run to fork.
    run: String,
    /// Fork at this seq.
    #[arg(
        long,
        conflicts_with = "snapshot",
        required_unless_present = "snapshot"
    )]
    at: Option<u64>,
    /// Fork at this snapshot of the run.
    #[arg(long)]
    snapshot: Option<String>,
}

impl Command {
    /// Whether the command only reads the store (it then reads a copy, so the store's
    /// files are never changed).
    fn only_reads(&self) -> bool {
        match self {
            Command::Runs(_)
            | Command::Ledger(_)
            | Command::Events(_)
            | Command::Check
            | Command::Stats
            | Command::Log(_)
            | Command::Artifact(_)
            | Command::Snapshot(SnapshotCommand::List { .. })
            | Command::Bench(_) => true,
            Command::Emit { .. }
            | Command::Respond { .. }
            | Command::Pause { .. }
            | Command::Unpause { .. }
            | Command::Cancel { .. }
            | Command::Snapshot(SnapshotCommand::Create { .. })
            | Command::Fork(_)
            | Command::Serve(_) => false,
        }
    }
}

impl Cli {
    /// The store `--db` names (a directory or `sled:PATH`), or `ledgerflow-data`.
    fn db(&self) -> Result<ledgerflow::StoreChoice, ledgerflow_kernel::store::Error> {
        self.db.as_deref().unwrap_or("ledgerflow-data").parse()
    }
}

/// Exit statuses (docs/operations.md): 0 done; 1 failed (an error, a verification or check
/// that failed); 2 the command line was wrong; 141 stdout was closed (a pipe whose reader
/// stopped). With `--json`, an error is one JSON object on stderr:
/// `{"error": {"code": "...", "message": "..."}}`, `code` one of the stable names of
/// [`errors::code`].
fn main() -> ExitCode {
    let json = std::env::args().any(|arg| arg == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version: not errors.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if json => {
            errors::print_json("usage", &e.to_string());
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) if json => {
            errors::print_json(&errors::code(&e), &format!("{e:#}"));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
