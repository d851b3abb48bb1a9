//! Micro-benchmarks of the hot paths: seal (encode + hash) a record, commit steps to the
//! memory store, replay a run, verify a chain. `cargo bench -p ledgerflow-kernel`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ledgerflow_kernel::{
    replay, Engine, EngineConfig, ManualClock, MemoryStore, Record, StepContext, StepPlan,
    WorkflowSpec,
};
use ledgerflow_ledger::{verify_chain, Hash, RecordDraft, RunId};
use serde_json::{json, Value};

fn counter(steps: u64) -> WorkflowSpec {
    WorkflowSpec::builder("bench", 1)
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
        .build()
        .expect("valid spec")
}

/// A finished run of `steps` steps and its ledger.
fn ledger(steps: u64) -> Vec<Record> {
    let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(ManualClock::new(0)));
    engine.register(counter(steps));
    let run = engine
        .start(
            ("bench", 1),
            json!({ "customer": "c-17", "items": [1, 2, 3] }),
        )
        .expect("start");
    engine.tick(run).expect("tick");
    engine.records(run, 1, 10_000).expect("records")
}

fn seal_record(c: &mut Criterion) {
    let run_id = RunId::new_v4();
    let body = json!({ "node": "step", "next": "step", "vars": { "patch": { "n": 42, "note": "x".repeat(100) } } });
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode_and_hash", |b| {
        b.iter(|| {
            black_box(
                RecordDraft {
                    run_id,
                    seq: 7,
                    at_ms: 1_700_000_000_000,
                    kind: "advanced".into(),
                    body: body.clone(),
                    state_hash: Hash::GENESIS,
                }
                .seal(Hash::GENESIS),
            )
        })
    });
    group.finish();
}

fn commit_steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("memory_store");
    group.throughput(Throughput::Elements(100));
    group.bench_function("100_steps_one_commit_each", |b| {
        b.iter_batched(
            || {
                let config = EngineConfig {
                    steps_per_tick_max: 1_000,
                    ..EngineConfig::default()
                };
                let engine = Engine::with_config(
                    Arc::new(MemoryStore::new()),
                    Arc::new(ManualClock::new(0)),
                    config,
                );
                engine.register(counter(100));
                let run = engine.start(("bench", 1), json!({})).expect("start");
                (engine, run)
            },
            |(engine, run)| black_box(engine.tick(run).expect("tick")),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn replay_and_verify(c: &mut Criterion) {
    let records = ledger(1_000);
    let mut group = c.benchmark_group("ledger_1000_records");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("replay", |b| {
        b.iter(|| black_box(replay(&records).expect("replays")))
    });
    group.bench_function("verify_chain", |b| {
        b.iter(|| black_box(verify_chain(&records).expect("verifies")))
    });
    group.finish();
}

criterion_group!(benches, seal_record, commit_steps, replay_and_verify);
criterion_main!(benches);
