//! Crash loop: a child process commits steps of many runs with `Durability::Sync` and
//! appends `run_id seq` to an ack file after each acknowledged commit; the test SIGKILLs it
//! at random moments, reopens the store, and checks that every acknowledged step is there,
//! every chain verifies and replay equals the stored state. Each ack also records how far
//! the signed checkpoints had reached; those checkpoints survive too, and the reopened
//! store is never behind its last checkpoint.
//!
//! 30 iterations by default; set `LEDGERFLOW_CRASH_ITERATIONS` to run more.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ledgerflow_kernel::store::Store;
use ledgerflow_kernel::RunId;
use ledgerflow_sled::{SledConfig, SledStore};

/// xorshift64*: enough randomness for kill times, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

/// The highest acknowledged seq of each run, and the largest checkpoint size the writer
/// saw durable when it acknowledged a step.
fn read_acks(path: &std::path::Path) -> (HashMap<RunId, u64>, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut acked: HashMap<RunId, u64> = HashMap::new();
    let mut checkpointed = 0;
    for line in text.lines() {
        // A line cut by the kill is not an acknowledgement.
        let mut fields = line.split(' ');
        let (Some(run), Some(seq), Some(size), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (Ok(run), Ok(seq), Ok(size)) = (
            run.parse::<RunId>(),
            seq.parse::<u64>(),
            size.parse::<u64>(),
        ) else {
            continue;
        };
        let entry = acked.entry(run).or_insert(0);
        *entry = (*entry).max(seq);
        checkpointed = checkpointed.max(size);
    }
    (acked, checkpointed)
}

#[test]
fn crash_loop_keeps_every_acknowledged_step() {
    crash_loop("sync");
}

/// The same with `Durability::Log`: sled is never flushed on the commit path, so every
/// acknowledged step after the last background checkpoint survives only through the
/// commit log's replay.
#[test]
fn crash_loop_keeps_every_acknowledged_step_with_the_commit_log() {
    crash_loop("log");
}

fn crash_loop(durability: &str) {
    let iterations: u64 = std::env::var("LEDGERFLOW_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let seed = std::env::var("LEDGERFLOW_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) * 0x9E37_79B9 + 1);
    println!("crash loop ({durability}): {iterations} iterations, seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let store_dir = dir.path().join("store");
    let ack_path = dir.path().join("acks");
    let writer = env!("CARGO_BIN_EXE_ledgerflow-sled-crash-writer");
    let mut total_acked = 0;
    for iteration in 0..iterations {
        let mut child = Command::new(writer)
            .args([
                store_dir.to_str().expect("utf-8 path"),
                ack_path.to_str().expect("utf-8 path"),
                "8",
                "4",
                durability,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the crash writer");
        // Let it get going (the first iteration also creates the store), then kill it.
        let started = Instant::now();
        let before = read_acks(&ack_path).0.values().sum::<u64>();
        while read_acks(&ack_path).0.values().sum::<u64>() == before
            && started.elapsed() < Duration::from_secs(20)
        {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    std::io::Read::read_to_string(&mut stderr, &mut err).ok();
                }
                panic!("writer exited early with {status}: {err}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.between(1, 150)));
        child.kill().expect("SIGKILL the writer");
        child.wait().expect("reap the writer");

        let (acked, checkpointed) = read_acks(&ack_path);
        // Reopening checks the data against the last checkpoint: it is never behind.
        let on_disk = ledgerflow_sled::latest_checkpoint(&store_dir)
            .unwrap_or_else(|e| panic!("iteration {iteration}: checkpoint log: {e}"))
            .map_or(0, |c| c.head.size);
        assert!(
            on_disk >= checkpointed,
            "iteration {iteration}: the writer saw checkpoint {checkpointed} durable, the log has {on_disk}"
        );
        let store = SledStore::open_existing(&store_dir, SledConfig::default())
            .unwrap_or_else(|e| panic!("iteration {iteration}: reopen failed: {e}"));
        for (run, seq) in &acked {
            let state = store
                .load(*run)
                .unwrap_or_else(|e| panic!("iteration {iteration}: load {run}: {e}"))
                .unwrap_or_else(|| {
                    panic!("iteration {iteration}: acknowledged run {run} is missing")
                });
            assert!(
                state.head.seq >= *seq,
                "iteration {iteration}: run {run} acknowledged seq {seq} but has {}",
                state.head.seq
            );
        }
        let report = store
            .check()
            .unwrap_or_else(|e| panic!("iteration {iteration}: check failed: {e}"));
        assert_eq!(
            report.runs as usize,
            store.list_runs(None, None, 10_000).expect("list").len()
        );
        total_acked = acked.values().sum::<u64>();
    }
    assert!(
        total_acked > iterations,
        "the writer acknowledged only {total_acked} steps"
    );
    println!("crash loop: {total_acked} acknowledged steps all survived");
}
