//! Test helper for the crash-loop test: commits steps of many runs to a sled store with
//! `Durability::Sync` and appends `run_id seq checkpointed_size` to an ack file after each acknowledged
//! commit, until it is killed. Half the threads tick one step at a time (a commit a
//! step); the other half up to four, which the engine commits as one multi-record commit.
//!
//! Usage: `ledgerflow-sled-crash-writer STORE_DIR ACK_FILE RUNS THREADS`

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::{Arc, Mutex};

use ledgerflow_kernel::{
    Clock, Effect, Engine, EngineConfig, RunId, StepContext, StepPlan, WorkflowSpec,
};
use ledgerflow_sled::{Durability, SledConfig, SledStore};
use serde_json::{json, Value};

struct WallClock;

impl Clock for WallClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

fn spec() -> Result<WorkflowSpec, ledgerflow_kernel::SpecError> {
    WorkflowSpec::builder("crash", 1)
        .node("loop", |ctx: &mut StepContext<'_>| {
            let n = ctx.var("n").and_then(Value::as_u64).unwrap_or(0) + 1;
            ctx.set("n", json!(n));
            ctx.set("blob", json!("x".repeat((n % 7) as usize * 100)));
            if n.is_multiple_of(10) {
                // A timer already due: a two-record commit (waiting + timer_fired).
                StepPlan::effect(Effect::wait_until(ctx.now_ms - 1)).then_next("loop")
            } else {
                StepPlan::next("loop")
            }
        })
        .entry("loop")
        .build()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (dir, ack, runs, threads, durability) = match args.as_slice() {
        [_, dir, ack, runs, threads] => (dir, ack, runs, threads, "sync"),
        [_, dir, ack, runs, threads, durability] => (dir, ack, runs, threads, durability.as_str()),
        _ => {
            return Err(
                "usage: ledgerflow-sled-crash-writer STORE_DIR ACK_FILE RUNS THREADS [sync|log]"
                    .into(),
            )
        }
    };
    let durability = match durability {
        "sync" => Durability::Sync,
        "log" => Durability::Log {
            checkpoint_ms: 1_000,
        },
        other => return Err(format!("unknown durability {other:?}").into()),
    };
    let runs: usize = runs.parse()?;
    let threads: usize = threads.parse()?;
    let store = Arc::new(SledStore::open_with(
        dir,
        SledConfig {
            durability,
            ..SledConfig::default()
        },
    )?);
    let engine_with = |steps_per_tick_max| -> Result<Arc<Engine>, Box<dyn std::error::Error>> {
        let engine = Engine::with_config(
            Arc::clone(&store) as Arc<dyn ledgerflow_kernel::Store>,
            Arc::new(WallClock),
            EngineConfig {
                steps_per_tick_max,
                ..EngineConfig::default()
            },
        );
        engine.register(spec()?);
        Ok(Arc::new(engine))
    };
    let engines = [engine_with(1)?, engine_with(4)?];
    let ack = Arc::new(Mutex::new(
        OpenOptions::new().create(true).append(true).open(ack)?,
    ));
    // Each line also says how far the durable signed checkpoints reached when the step
    // was acknowledged; the test checks that those checkpoints survive the kill.
    let checkpoints = Arc::clone(&store);
    let acknowledge =
        move |ack: &Mutex<std::fs::File>, run: RunId, seq: u64| -> std::io::Result<()> {
            let line = format!("{run} {seq} {}\n", checkpoints.checkpointed_size());
            ack.lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(line.as_bytes())
        };
    let mut handles = Vec::new();
    for thread in 0..threads {
        let engine = Arc::clone(&engines[thread % engines.len()]);
        let ack = Arc::clone(&ack);
        let acknowledge = acknowledge.clone();
        handles.push(std::thread::spawn(move || -> Result<(), String> {
            let mut mine = Vec::new();
            for _ in 0..runs.div_ceil(threads.max(1)) {
                let run = engine
                    .start(("crash", 1), json!({}))
                    .map_err(|e| e.to_string())?;
                acknowledge(&ack, run, 1).map_err(|e| e.to_string())?;
                mine.push(run);
            }
            loop {
                for run in &mine {
                    let state = engine.tick(*run).map_err(|e| e.to_string())?;
                    acknowledge(&ack, *run, state.head.seq).map_err(|e| e.to_string())?;
                }
            }
        }));
    }
    for handle in handles {
        handle.join().map_err(|_| "writer thread panicked")??;
    }
    Ok(())
}
