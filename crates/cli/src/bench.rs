//! `ledgerflow bench`: workloads that measure what users size machines with, each on a
//! fresh store, each printing a table or one JSON object. Every count is bounded by an
//! option; nothing here is a pass/fail test.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use ledgerflow_kernel::{
    Clock, Effect, Engine, EngineConfig, Hash, MemoryStore, RunId, RunStatus, StepContext,
    StepPlan, Store, WorkflowSpec,
};
use ledgerflow_ledger::{verify_chain, RecordDraft};
use ledgerflow_scheduler::{Scheduler, SchedulerConfig, SystemClock};
use ledgerflow_sled::{Durability, SledConfig, SledStore};
use serde_json::{json, Value};

/// Options of `ledgerflow bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand, Debug)]
enum Workload {
    /// Steps committed per second: R runs of K steps each, C threads.
    Steps(StepsArgs),
    /// Human-in-the-loop: start runs that ask a person, then deliver every answer.
    Hitl(HitlArgs),
    /// R runs wait until one due time; the scheduler fires them; lag after due.
    Timers(TimersArgs),
    /// Chain verification speed against raw blake3 over the same bytes.
    Verify(VerifyArgs),
    /// Time to reopen a store holding R runs and N records.
    Recover(RecoverArgs),
    /// The physical floor: fsync rate and latency, raw sled batch + flush + fsync.
    Floor(FloorArgs),
    /// Many worker processes on one PostgreSQL database (`--pg-url`): R runs of K steps
    /// (one commit a step), started here and done by P worker processes of T scheduler
    /// threads each, sharing the runs by lease.
    Workers(WorkersArgs),
    /// One worker process of `workers` (started by it): a scheduler over the store until
    /// its stdin closes, then its stats as one JSON line.
    #[command(hide = true)]
    Worker(WorkerArgs),
    /// Opens an existing store and reports the time and memory it took (used by
    /// `recover` in a fresh process).
    #[command(hide = true)]
    Open {
        /// The store.
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Sled,
    Memory,
    /// A fresh schema in the PostgreSQL database `--pg-url` names (dropped after).
    Postgres,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DurabilityArg {
    /// The default: the store's own commit log, one fdatasync per group of commits.
    Log,
    /// sled flushed and fsynced per group of commits (two device flushes).
    Sync,
    Batched,
    None,
}

#[derive(Args, Debug)]
struct Common {
    /// Where to make the store (default: a fresh temporary directory, removed after).
    #[arg(long = "bench-db")]
    bench_db: Option<PathBuf>,
    /// With `--store postgres`: the database (a postgres:// URL; the bench makes a fresh
    /// schema in it and drops it after).
    #[arg(long = "pg-url", env = "LEDGERFLOW_BENCH_PG_URL")]
    pg_url: Option<String>,
}

#[derive(Args, Debug)]
struct StepsArgs {
    #[arg(long, default_value_t = 256)]
    runs: usize,
    #[arg(long, default_value_t = 20)]
    steps: u64,
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    #[arg(long, value_enum, default_value_t = DurabilityArg::Log)]
    durability: DurabilityArg,
    #[arg(long, value_enum, default_value_t = StoreKind::Sled)]
    store: StoreKind,
    /// After each durably acknowledged commit, append `run_id seq` here.
    #[arg(long)]
    ack_file: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct HitlArgs {
    #[arg(long, default_value_t = 2_000)]
    runs: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, value_enum, default_value_t = DurabilityArg::Log)]
    durability: DurabilityArg,
    #[arg(long, value_enum, default_value_t = StoreKind::Sled)]
    store: StoreKind,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct TimersArgs {
    #[arg(long, default_value_t = 10_000)]
    runs: usize,
    /// The due time, this many ms after the runs are created.
    #[arg(long = "due-in-ms", default_value_t = 10_000)]
    due_in_ms: i64,
    /// Spread the due times evenly over this many ms from the due time (0: all at once).
    #[arg(long = "spread-ms", default_value_t = 0)]
    spread_ms: i64,
    #[arg(long, value_enum, default_value_t = StoreKind::Sled)]
    store: StoreKind,
    /// Scheduler workers (default: the scheduler's default).
    #[arg(long, default_value_t = SchedulerConfig::default().workers)]
    workers: usize,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct WorkersArgs {
    #[arg(long, default_value_t = 1_000)]
    runs: usize,
    #[arg(long, default_value_t = 20)]
    steps: u64,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    processes: usize,
    /// Scheduler threads in each worker process.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct WorkerArgs {
    #[arg(long = "pg-url")]
    pg_url: String,
    #[arg(long)]
    schema: String,
    /// This worker's name in leases.
    #[arg(long)]
    name: String,
    #[arg(long)]
    steps: u64,
    #[arg(long)]
    threads: usize,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    #[arg(long = "payload-bytes", default_value_t = 128)]
    payload_bytes: usize,
}

#[derive(Args, Debug)]
struct RecoverArgs {
    #[arg(long, default_value_t = 1_000)]
    runs: usize,
    #[arg(long, default_value_t = 10_000)]
    records: u64,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct FloorArgs {
    /// Records per sled batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// How long each part measures.
    #[arg(long = "seconds", default_value_t = 2)]
    seconds: u64,
    #[command(flatten)]
    common: Common,
}

/// A store directory that is removed afterwards unless the user named it.
struct BenchDir {
    path: PathBuf,
    remove: bool,
    /// With `--store postgres`: the database and the fresh schema, dropped after.
    pg: Option<(String, String)>,
}

impl BenchDir {
    fn new(common: &Common, name: &str) -> Result<Self> {
        match &common.bench_db {
            Some(path) => {
                if path.exists() {
                    bail!(
                        "{} exists: bench makes a fresh store; give a new path",
                        path.display()
                    );
                }
                Ok(BenchDir {
                    path: path.clone(),
                    remove: false,
                    pg: pg_schema(common, name),
                })
            }
            None => Ok(BenchDir {
                path: std::env::temp_dir().join(format!(
                    "ledgerflow-bench-{name}-{}-{}",
                    std::process::id(),
                    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
                )),
                remove: true,
                pg: pg_schema(common, name),
            }),
        }
    }
}

/// The database and a fresh schema name for a PostgreSQL bench store.
fn pg_schema(common: &Common, name: &str) -> Option<(String, String)> {
    common.pg_url.clone().map(|url| {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        (
            url,
            format!(
                "lf_bench_{}_{}_{nanos}",
                name.replace('-', "_"),
                std::process::id()
            ),
        )
    })
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
        if let Some((url, schema)) = &self.pg {
            let _ = ledgerflow::postgres::drop_schema(url, schema);
        }
    }
}

fn durability(arg: DurabilityArg) -> Durability {
    match arg {
        DurabilityArg::Sync => Durability::Sync,
        DurabilityArg::Batched => Durability::Batched { max_delay_ms: 10 },
        DurabilityArg::None => Durability::None,
        DurabilityArg::Log => Durability::default(),
    }
}

/// A store under test, and the sled store itself when it is one (for its fsync count).
type BenchStore = (Arc<dyn Store>, Option<Arc<SledStore>>);

/// A store of the chosen kind.
fn make_store(kind: StoreKind, dir: &BenchDir, durability: Durability) -> Result<BenchStore> {
    Ok(match kind {
        StoreKind::Memory => (Arc::new(MemoryStore::new()), None),
        StoreKind::Postgres => {
            let Some((url, schema)) = &dir.pg else {
                bail!("--store postgres needs --pg-url (or LEDGERFLOW_BENCH_PG_URL)");
            };
            if durability != Durability::default() {
                bail!("--durability is the sled store's; PostgreSQL's is its synchronous_commit");
            }
            let config = ledgerflow::postgres::PostgresConfig {
                schema: schema.clone(),
                connections_max: 64,
                ..ledgerflow::postgres::PostgresConfig::new(url.clone())
            };
            (
                Arc::new(ledgerflow::postgres::PostgresStore::open(config)?),
                None,
            )
        }
        StoreKind::Sled => {
            let sled = Arc::new(SledStore::open_with(
                &dir.path,
                SledConfig {
                    durability,
                    ..SledConfig::default()
                },
            )?);
            (Arc::clone(&sled) as Arc<dyn Store>, Some(sled))
        }
    })
}

/// p-th percentile (0..=100) of sorted microsecond samples.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Peak resident memory of this process, in MB (Linux; 0 elsewhere).
fn rss_max_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn per_s(count: f64, elapsed: Duration) -> f64 {
    count / elapsed.as_secs_f64().max(1e-9)
}

/// Runs `work` on one scoped thread per input and returns the results in input order.
fn on_threads<I: Send, T: Send>(
    inputs: Vec<I>,
    work: impl Fn(I) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = inputs
            .into_iter()
            .map(|input| scope.spawn(move || work(input)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a bench thread panicked")))
            })
            .collect()
    })
}

/// `total` items split as evenly as possible over `threads` (at least one thread).
fn split(total: usize, threads: usize) -> Vec<usize> {
    let threads = threads.clamp(1, total.max(1));
    (0..threads)
        .map(|t| total / threads + usize::from(t < total % threads))
        .collect()
}

/// Runs the chosen workload and returns its result object.
pub fn run(args: &BenchArgs) -> Result<Value> {
    match &args.workload {
        Workload::Steps(a) => steps(a),
        Workload::Hitl(a) => hitl(a),
        Workload::Timers(a) => timers(a),
        Workload::Verify(a) => verify(a),
        Workload::Recover(a) => recover(a),
        Workload::Floor(a) => floor(a),
        Workload::Workers(a) => workers(a),
        Workload::Worker(a) => worker(a),
        Workload::Open { dir } => open_only(dir),
    }
}

fn counter_spec(steps: u64) -> Result<WorkflowSpec> {
    Ok(WorkflowSpec::builder("bench-steps", 1)
        .node("step", move |ctx: &mut StepContext<'_>| {
            let n = ctx.var("n").and_then(Value::as_u64).unwrap_or(0) + 1;
            ctx.set("n", json!(n));
            if n >= steps {
                StepPlan::complete(json!(n))
            } else {
                StepPlan::next("step")
            }
        })
        .entry("step")
        .build()?)
}

fn steps(a: &StepsArgs) -> Result<Value> {
    if a.runs == 0 || a.steps == 0 || a.concurrency == 0 {
        bail!("--runs, --steps and --concurrency must be at least 1");
    }
    let dir = BenchDir::new(&a.common, "steps")?;
    let (store, sled) = make_store(a.store, &dir, durability(a.durability))?;
    let config = EngineConfig {
        steps_per_tick_max: 1,
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::with_config(store, Arc::new(SystemClock), config));
    engine.register(counter_spec(a.steps)?);
    let runs: Vec<RunId> = (0..a.runs)
        .map(|_| engine.start(("bench-steps", 1), json!({})))
        .collect::<Result<_, _>>()?;
    let ack = match &a.ack_file {
        Some(path) => Some(Arc::new(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ))),
        None => None,
    };
    let fsyncs_before = sled.as_ref().map_or(0, |s| s.fsyncs());
    let disk_before = sled.as_ref().map(|_| dir_allocated(&dir.path));
    let threads = a.concurrency.min(a.runs);
    let chunks: Vec<Vec<RunId>> = (0..threads)
        .map(|t| runs.iter().skip(t).step_by(threads).copied().collect())
        .collect();
    let started = Instant::now();
    let results = on_threads(chunks, |mine| -> Result<Vec<u64>> {
        let mut latencies = Vec::new();
        let mut live = mine;
        while !live.is_empty() {
            let mut still = Vec::with_capacity(live.len());
            for run in live {
                let t = Instant::now();
                let state = engine.tick(run)?;
                latencies.push(t.elapsed().as_micros() as u64);
                if let Some(ack) = &ack {
                    let line = format!("{run} {}\n", state.head.seq);
                    ack.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .write_all(line.as_bytes())?;
                }
                if state.status == RunStatus::Running {
                    still.push(run);
                }
            }
            live = still;
        }
        Ok(latencies)
    })?;
    let elapsed = started.elapsed();
    let mut latencies: Vec<u64> = results.into_iter().flatten().collect();
    latencies.sort_unstable();
    let steps = latencies.len() as f64;
    let fsyncs = sled.as_ref().map_or(0, |s| s.fsyncs()) - fsyncs_before;
    // Untimed: what the commit log holds reaches sled's files, so the space is counted.
    if let Some(sled) = &sled {
        sled.sync()?;
    }
    Ok(json!({
        "workload": "steps",
        "store": format!("{:?}", a.store).to_lowercase(),
        "durability": format!("{:?}", a.durability).to_lowercase(),
        "runs": a.runs,
        "steps": latencies.len(),
        "concurrency": threads,
        "elapsed_s": elapsed.as_secs_f64(),
        "steps_per_s": per_s(steps, elapsed),
        "commits_per_s": per_s(steps, elapsed),
        "commit_p50_us": percentile(&latencies, 50.0),
        "commit_p99_us": percentile(&latencies, 99.0),
        "fsyncs": fsyncs,
        // Space the steps took on disk (blocks allocated to the store's files), per step.
        "disk_bytes_per_step": disk_before.map(|before| {
            (dir_allocated(&dir.path).saturating_sub(before) as f64 / steps.max(1.0)).round()
        }),
        "rss_max_mb": rss_max_mb(),
    }))
}

/// The PostgreSQL store of a worker (or of the process starting the runs) named `name`.
fn pg_store(
    url: &str,
    schema: &str,
    name: &str,
) -> Result<Arc<ledgerflow::postgres::PostgresStore>> {
    let config = ledgerflow::postgres::PostgresConfig {
        schema: schema.to_owned(),
        worker: name.to_owned(),
        connections_max: 64,
        ..ledgerflow::postgres::PostgresConfig::new(url.to_owned())
    };
    Ok(Arc::new(ledgerflow::postgres::PostgresStore::open(config)?))
}

/// An engine that commits every step on its own, as the peers checkpoint each step.
fn step_engine(store: Arc<dyn Store>, steps: u64) -> Result<Arc<Engine>> {
    let config = EngineConfig {
        steps_per_tick_max: 1,
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::with_config(store, Arc::new(SystemClock), config));
    engine.register(counter_spec(steps)?);
    Ok(engine)
}

/// A worker process of [`workers`], as the child of this one.
struct WorkerProcess {
    child: std::process::Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl WorkerProcess {
    fn spawn(a: &WorkersArgs, url: &str, schema: &str, name: &str) -> Result<WorkerProcess> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args([
                "bench", "worker", "--pg-url", url, "--schema", schema, "--name", name,
            ])
            .args([
                "--steps",
                &a.steps.to_string(),
                "--threads",
                &a.threads.to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting a worker process")?;
        let mut stdout = std::io::BufReader::new(child.stdout.take().context("its stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        if line.trim() != "READY" {
            bail!("worker {name} did not start: {line:?}");
        }
        Ok(WorkerProcess { child, stdout })
    }

    /// Closes its stdin; the stats it prints as it stops.
    fn stop(mut self) -> Result<Value> {
        use std::io::BufRead;
        drop(self.child.stdin.take());
        let mut stats = Value::Null;
        for line in (&mut self.stdout).lines() {
            if let Some(json) = line?.strip_prefix("STATS ") {
                stats = serde_json::from_str(json)?;
            }
        }
        let status = self.child.wait()?;
        if !status.success() {
            bail!("a worker process exited with {status}");
        }
        Ok(stats)
    }
}

fn workers(a: &WorkersArgs) -> Result<Value> {
    if a.runs == 0 || a.steps == 0 || a.processes == 0 || a.threads == 0 {
        bail!("--runs, --steps, --processes and --threads must be at least 1");
    }
    let dir = BenchDir::new(&a.common, "workers")?;
    let Some((url, schema)) = dir.pg.clone() else {
        bail!("bench workers needs --pg-url (or LEDGERFLOW_BENCH_PG_URL)");
    };
    let store = pg_store(&url, &schema, "bench-starter")?;
    let engine = step_engine(Arc::clone(&store) as Arc<dyn Store>, a.steps)?;
    let processes: Vec<WorkerProcess> = (0..a.processes)
        .map(|i| WorkerProcess::spawn(a, &url, &schema, &format!("bench-w{i}")))
        .collect::<Result<_>>()?;
    let leases = ledgerflow_kernel::Store::leases(&*store).context("leases")?;
    let started = Instant::now();
    // Started here, then let go: a worker claims each at once (the release tells them).
    on_threads(split(a.runs, 4), |count| -> Result<()> {
        for _ in 0..count {
            let run = engine.start(("bench-steps", 1), json!({}))?;
            leases.release(run)?;
        }
        Ok(())
    })?;
    let runs = a.runs as u64;
    loop {
        let completed = store
            .count_by_status()?
            .into_iter()
            .find(|(status, _)| *status == RunStatus::Completed)
            .map_or(0, |(_, n)| n);
        if completed >= runs {
            break;
        }
        if started.elapsed() > Duration::from_secs(3_600) {
            bail!("{completed} of {runs} runs completed in an hour");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    let stats: Vec<Value> = processes
        .into_iter()
        .map(WorkerProcess::stop)
        .collect::<Result<_>>()?;
    let steps = (a.runs as u64 * a.steps) as f64;
    Ok(json!({
        "workload": "workers",
        "store": "postgres",
        "processes": a.processes,
        "threads": a.threads,
        "runs": a.runs,
        "steps": steps,
        "elapsed_s": elapsed.as_secs_f64(),
        "steps_per_s": per_s(steps, elapsed),
        "workers": stats,
    }))
}

fn worker(a: &WorkerArgs) -> Result<Value> {
    let store = pg_store(&a.pg_url, &a.schema, &a.name)?;
    let engine = step_engine(store as Arc<dyn Store>, a.steps)?;
    let scheduler = Scheduler::start(
        engine,
        SchedulerConfig {
            workers: a.threads.max(1),
            ..SchedulerConfig::default()
        },
    )?;
    println!("READY");
    std::io::stdout().flush()?;
    let _ = std::io::stdin().lines().count();
    let stats = scheduler.stats();
    scheduler.stop();
    println!(
        "STATS {}",
        json!({
            "runs_ticked": stats.runs_ticked,
            "runs_leased_elsewhere": stats.runs_leased_elsewhere,
            "commits_fenced": stats.commits_fenced,
            "conflicts_retried": stats.conflicts_retried,
            "job_errors": stats.job_errors,
        })
    );
    std::io::stdout().flush()?;
    // The parent reads the line above; what the command prints after it is not read.
    Ok(Value::Null)
}

/// Bytes allocated on disk to the files under `path` (blocks, not lengths: sled's log
/// and the checkpoint log are preallocated or sparse).
fn dir_allocated(path: &Path) -> u64 {
    dir_total(path, allocated)
}

#[cfg(unix)]
fn allocated(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks() * 512
}

#[cfg(not(unix))]
fn allocated(meta: &std::fs::Metadata) -> u64 {
    meta.len()
}

fn hitl(a: &HitlArgs) -> Result<Value> {
    if a.runs == 0 || a.concurrency == 0 {
        bail!("--runs and --concurrency must be at least 1");
    }
    let dir = BenchDir::new(&a.common, "hitl")?;
    let (store, _) = make_store(a.store, &dir, durability(a.durability))?;
    let engine = Arc::new(Engine::new(store, Arc::new(SystemClock)));
    engine.register(
        WorkflowSpec::builder("bench-hitl", 1)
            .node("ask", |_: &mut StepContext<'_>| {
                StepPlan::effect(Effect::ask_user("approve?", &["yes", "no"]).result_key("answer"))
                    .then_next("done")
            })
            .node("done", |ctx: &mut StepContext<'_>| {
                StepPlan::complete(ctx.var("answer").cloned().unwrap_or_default())
            })
            .entry("ask")
            .build()?,
    );
    let counts = split(a.runs, a.concurrency);
    let threads = counts.len();
    let started = Instant::now();
    let batches = on_threads(counts, |count| -> Result<Vec<(RunId, String)>> {
        (0..count)
            .map(|_| {
                let state = engine.run(("bench-hitl", 1), json!({}))?;
                let run = state.run_id;
                let key = state
                    .waiting
                    .and_then(|w| w.wait_key)
                    .context("the run should wait")?;
                Ok((run, key))
            })
            .collect()
    })?;
    let start_elapsed = started.elapsed();
    let total: usize = batches.iter().map(Vec::len).sum();
    let started = Instant::now();
    let latencies = on_threads(batches, |batch| -> Result<Vec<u64>> {
        batch
            .into_iter()
            .map(|(_, key)| {
                let t = Instant::now();
                engine.deliver(&key, json!("yes"))?;
                Ok(t.elapsed().as_micros() as u64)
            })
            .collect()
    })?;
    let resume_elapsed = started.elapsed();
    let mut all: Vec<u64> = latencies.into_iter().flatten().collect();
    all.sort_unstable();
    Ok(json!({
        "workload": "hitl",
        "store": format!("{:?}", a.store).to_lowercase(),
        "durability": format!("{:?}", a.durability).to_lowercase(),
        "runs": total,
        "concurrency": threads,
        "start_wait_per_s": per_s(total as f64, start_elapsed),
        "resume_per_s": per_s(total as f64, resume_elapsed),
        "resume_p50_us": percentile(&all, 50.0),
        "resume_p99_us": percentile(&all, 99.0),
        "rss_max_mb": rss_max_mb(),
    }))
}

fn timers(a: &TimersArgs) -> Result<Value> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let dir = BenchDir::new(&a.common, "timers")?;
    let (store, _) = make_store(a.store, &dir, Durability::default())?;
    let engine = Arc::new(Engine::new(store, Arc::new(SystemClock)));
    let due_at_ms = SystemClock.now_ms() + a.due_in_ms.max(0);
    let spread_ms = a.spread_ms.max(0);
    engine.register(
        WorkflowSpec::builder("bench-timers", 1)
            .node("sleep", move |ctx: &mut StepContext<'_>| {
                let due = ctx.var("due").and_then(Value::as_i64).unwrap_or(due_at_ms);
                StepPlan::effect(Effect::wait_until(due)).then_complete(Value::Null)
            })
            .entry("sleep")
            .build()?,
    );
    // Run i is due at due_at_ms + i * spread / runs.
    let runs_total = i64::try_from(a.runs).unwrap_or(i64::MAX);
    let due_of = move |i: usize| due_at_ms + i64::try_from(i).unwrap_or(0) * spread_ms / runs_total;
    // Create the waiting runs from many threads, so group commit batches their fsyncs.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let created = on_threads(split(a.runs, 64), |count| -> Result<Vec<RunId>> {
        (0..count)
            .map(|_| {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let state = engine.run(("bench-timers", 1), json!({ "due": due_of(i) }))?;
                Ok(state.run_id)
            })
            .collect()
    })?;
    let runs: Vec<RunId> = created.into_iter().flatten().collect();
    let created_by_ms = SystemClock.now_ms();
    let create_s = (created_by_ms - (due_at_ms - a.due_in_ms.max(0))) as f64 / 1e3;
    if created_by_ms > due_at_ms {
        bail!(
            "creating {} runs took past the due time; raise --due-in-ms above {}",
            a.runs,
            created_by_ms - due_at_ms + a.due_in_ms
        );
    }
    let scheduler = Scheduler::start(
        Arc::clone(&engine),
        SchedulerConfig {
            workers: a.workers.max(1),
            ..SchedulerConfig::default()
        },
    )?;
    let deadline = Instant::now()
        + Duration::from_millis(u64::try_from(a.due_in_ms).unwrap_or(0))
        + Duration::from_secs(600);
    for run in &runs {
        let left = deadline.saturating_duration_since(Instant::now());
        scheduler.await_end(*run, left)?;
    }
    scheduler.stop();
    let mut lags = Vec::with_capacity(runs.len());
    for run in &runs {
        let records = engine.records(*run, 1, 10)?;
        let fired = records
            .iter()
            .find(|r| r.kind() == "timer_fired")
            .context("every run's timer fires")?;
        let due = fired.body()["due_at_ms"].as_i64().unwrap_or(due_at_ms);
        lags.push(u64::try_from(fired.at_ms() - due).unwrap_or(0));
    }
    lags.sort_unstable();
    Ok(json!({
        "workload": "timers",
        "store": format!("{:?}", a.store).to_lowercase(),
        "fired": lags.len(),
        "spread_ms": spread_ms,
        "create_s": create_s,
        "workers": a.workers.max(1),
        "lag_p50_ms": percentile(&lags, 50.0),
        "lag_p99_ms": percentile(&lags, 99.0),
        "lag_max_ms": lags.last().copied().unwrap_or(0),
        "rss_max_mb": rss_max_mb(),
    }))
}

fn verify(a: &VerifyArgs) -> Result<Value> {
    if a.records == 0 {
        bail!("--records must be at least 1");
    }
    let run_id = RunId::new_v4();
    let text = "x".repeat(a.payload_bytes);
    let mut prev = Hash::GENESIS;
    let mut records = Vec::with_capacity(usize::try_from(a.records).unwrap_or(0));
    for seq in 1..=a.records {
        let record = RecordDraft {
            run_id,
            seq,
            at_ms: 1_700_000_000_000 + seq as i64,
            kind: "advanced".into(),
            body: json!({ "node": "step", "next": "step", "payload": text }),
            state_hash: Hash::of(&seq.to_be_bytes()),
        }
        .seal(prev);
        prev = record.hash();
        records.push(record);
    }
    let inputs: Vec<Vec<u8>> = records
        .iter()
        .map(|r| {
            ledgerflow_ledger::hash_input(
                r.run_id(),
                r.seq(),
                r.at_ms(),
                r.kind(),
                r.body(),
                r.prev_hash(),
                r.state_hash(),
            )
        })
        .collect();
    let bytes: usize = inputs.iter().map(Vec::len).sum();
    let started = Instant::now();
    let head = verify_chain(&records)?;
    let verify_elapsed = started.elapsed();
    let started = Instant::now();
    let mut sink = 0u8;
    for input in &inputs {
        sink ^= blake3::hash(input).as_bytes()[0];
    }
    let blake3_elapsed = started.elapsed();
    let mb = bytes as f64 / 1e6;
    Ok(json!({
        "workload": "verify",
        "records": head.map_or(0, |h| h.seq),
        "payload_bytes": a.payload_bytes,
        "hashed_bytes": bytes,
        "records_per_s": per_s(a.records as f64, verify_elapsed),
        "mb_per_s": mb / verify_elapsed.as_secs_f64().max(1e-9),
        "blake3_mb_per_s": mb / blake3_elapsed.as_secs_f64().max(1e-9),
        "checksum": sink,
    }))
}

/// A workflow of `steps` steps that then waits for a person: what most stored runs look
/// like in a human-in-the-loop system.
fn steps_then_wait_spec(steps: u64) -> Result<WorkflowSpec> {
    Ok(WorkflowSpec::builder("bench-recover", 1)
        .node("step", move |ctx: &mut StepContext<'_>| {
            let n = ctx.var("n").and_then(Value::as_u64).unwrap_or(0) + 1;
            ctx.set("n", json!(n));
            if n >= steps {
                StepPlan::effect(Effect::ask_user("done?", &[]).result_key("answer"))
                    .then_complete(json!(n))
            } else {
                StepPlan::next("step")
            }
        })
        .entry("step")
        .build()?)
}

fn recover(a: &RecoverArgs) -> Result<Value> {
    if a.runs == 0 || a.records < 2 * a.runs as u64 {
        bail!("--runs must be at least 1 and --records at least twice --runs");
    }
    let dir = BenchDir::new(&a.common, "recover")?;
    let per_run = a.records / a.runs as u64;
    let build_started = Instant::now();
    {
        let config = SledConfig {
            durability: Durability::None,
            ..SledConfig::default()
        };
        let store = Arc::new(SledStore::open_with(&dir.path, config)?);
        let engine_config = EngineConfig {
            steps_per_tick_max: 1_000_000,
            ..EngineConfig::default()
        };
        let engine = Arc::new(Engine::with_config(
            Arc::clone(&store) as Arc<dyn Store>,
            Arc::new(SystemClock),
            engine_config,
        ));
        engine.register(steps_then_wait_spec(per_run - 1)?);
        on_threads(split(a.runs, 2), |count| -> Result<()> {
            for _ in 0..count {
                let run = engine.start(("bench-recover", 1), json!({}))?;
                engine.tick(run)?;
            }
            Ok(())
        })?;
        store.close()?;
    }
    let build_s = build_started.elapsed().as_secs_f64();
    // Open in a fresh process, so its time and memory are the open's alone.
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args(["--json", "bench", "open", "--dir"])
        .arg(&dir.path)
        .output()?;
    if !out.status.success() {
        bail!(
            "opening the store in a fresh process failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut opened: Value = serde_json::from_slice(&out.stdout)?;
    if let Value::Object(fields) = &mut opened {
        fields.insert("workload".into(), json!("recover"));
        fields.insert("build_s".into(), json!(build_s));
        fields.insert("disk_mb".into(), json!(dir_size(&dir.path) as f64 / 1e6));
    }
    Ok(opened)
}

fn open_only(dir: &Path) -> Result<Value> {
    let started = Instant::now();
    let store = SledStore::open_existing(dir, SledConfig::default())?;
    let open_ms = started.elapsed().as_secs_f64() * 1e3;
    let rss_after_open_mb = rss_now_mb();
    let records = store.feed_head()?;
    let by_status = store.count_by_status()?;
    let runs: u64 = by_status.iter().map(|(_, n)| n).sum();
    let waiting = by_status
        .iter()
        .find(|(s, _)| *s == RunStatus::Waiting)
        .map_or(0, |(_, n)| *n);
    Ok(json!({
        "open_ms": open_ms,
        "runs": runs,
        "waiting_runs": waiting,
        "records": records,
        "rss_after_open_mb": rss_after_open_mb,
        "rss_max_mb": rss_max_mb(),
    }))
}

/// Resident memory of this process now, in MB (Linux; 0 elsewhere).
fn rss_now_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn dir_size(path: &Path) -> u64 {
    dir_total(path, std::fs::Metadata::len)
}

/// `measure` summed over the files under `path`.
fn dir_total(path: &Path, measure: fn(&std::fs::Metadata) -> u64) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_total(&e.path(), measure),
                    Ok(m) => measure(&m),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn floor(a: &FloorArgs) -> Result<Value> {
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let dir = BenchDir::new(&a.common, "floor")?;
    std::fs::create_dir_all(&dir.path)?;
    let window = Duration::from_secs(a.seconds.max(1));
    // 1. 200-byte append + fsync.
    let mut file = File::create(dir.path.join("append"))?;
    let record = [0x5au8; 200];
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < window {
        let t = Instant::now();
        file.write_all(&record)?;
        file.sync_all()?;
        latencies.push(t.elapsed().as_micros() as u64);
    }
    let fsync_elapsed = started.elapsed();
    latencies.sort_unstable();
    // 2. sled: a batch of `batch` 200-byte records, flush, fsync of the log file.
    let db = sled::Config::new()
        .path(dir.path.join("sled"))
        .segment_size(ledgerflow_sled::SEGMENT_BYTES)
        .flush_every_ms(None)
        .open()?;
    let log = File::open(dir.path.join("sled").join("db"))?;
    let mut written = 0u64;
    let started = Instant::now();
    while started.elapsed() < window {
        let mut batch = sled::Batch::default();
        for _ in 0..a.batch {
            written += 1;
            batch.insert(&written.to_be_bytes(), &record[..]);
        }
        db.apply_batch(batch)?;
        db.flush()?;
        log.sync_all()?;
    }
    let sled_elapsed = started.elapsed();
    Ok(json!({
        "workload": "floor",
        "fsync_per_s": per_s(latencies.len() as f64, fsync_elapsed),
        "fsync_p50_us": percentile(&latencies, 50.0),
        "fsync_p99_us": percentile(&latencies, 99.0),
        "batch": a.batch,
        "sled_durable_records_per_s": per_s(written as f64, sled_elapsed),
    }))
}

/// Prints a result as `key  value` lines.
pub fn print_table(value: &Value) {
    if let Value::Object(fields) = value {
        let width = fields.keys().map(String::len).max().unwrap_or(0);
        for (key, v) in fields {
            let text = match v {
                Value::Number(n) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap_or(0.0)),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            crate::out!("{key:<width$}  {text}");
        }
    }
}
