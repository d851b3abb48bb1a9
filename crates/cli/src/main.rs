//! The `ledgerflow` command: parses arguments and calls the libraries. Operators inspect,
//! resume, pause and cancel runs; auditors verify and export ledgers; everyone can bench.

mod bench;
mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Inspect, operate, verify and benchmark ledgerflow stores.
#[derive(Parser, Debug)]
#[command(name = "ledgerflow", version, about)]
struct Cli {
    /// The store directory.
    #[arg(long, global = true, default_value = "ledgerflow-data")]
    db: PathBuf,
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
        /// The event, as JSON.
        #[arg(long)]
        payload: String,
    },
    /// Answer the wait of a run, whatever its key.
    Respond {
        /// The run id.
        run: String,
        /// The answer, as JSON.
        #[arg(long)]
        payload: String,
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
    /// Verify every run: chains, replay equals stored state, indexes.
    Check,
    /// Counts by status and the feed's length.
    Stats,
    /// Measure throughput and latency on this machine, on a fresh store each time.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand, Debug)]
enum RunsCommand {
    /// List runs, newest index order, a page at a time.
    List {
        /// Only runs with this status (running, waiting, completed, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this workflow id.
        #[arg(long)]
        workflow: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue from a previous page's cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one run's state.
    Show {
        /// The run id.
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
    /// Verify chains (exit 1 on the first bad record of any run).
    Verify(VerifyArgs),
    /// Export records as JSONL (docs/ledger-format.md).
    Export(ExportArgs),
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
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// The run to export.
    #[arg(conflicts_with = "all", required_unless_present = "all")]
    run: Option<String>,
    /// Export every run.
    #[arg(long)]
    all: bool,
    /// Where to write the JSONL.
    #[arg(long)]
    out: PathBuf,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
