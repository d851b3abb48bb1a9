//! Run queries on both stores: filters by status, workflow and version, parent, created and
//! updated time; paging by opaque cursor; bounded limits; counts by status.

use std::sync::Arc;

use ledgerflow::{
    Effect, Engine, Error, ManualClock, MemoryStore, RunId, RunQuery, RunStatus, SledStore,
    StepContext, StepPlan, Store, SubworkflowMode, WorkflowSpec,
};
use serde_json::json;

const T0: i64 = 1_700_000_000_000;

fn each_store(test: impl Fn(Engine, ManualClock)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sled: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("sled"));
    for store in [Arc::new(MemoryStore::new()) as Arc<dyn Store>, sled] {
        let clock = ManualClock::new(T0);
        let engine = Engine::new(store, Arc::new(clock.clone()));
        for version in [1, 2] {
            engine.register(
                WorkflowSpec::builder("order", version)
                    .node("wait", |_: &mut StepContext<'_>| {
                        StepPlan::effect(unique_wait()).then_complete(json!("done"))
                    })
                    .entry("wait")
                    .build()
                    .expect("valid spec"),
            );
        }
        engine.register(
            WorkflowSpec::builder("batch", 1)
                .node("spawn", |_: &mut StepContext<'_>| {
                    StepPlan::effect(Effect::start_subworkflow(
                        "order",
                        1,
                        json!({}),
                        SubworkflowMode::Async,
                    ))
                    .then_next("spawn2")
                })
                .node("spawn2", |_: &mut StepContext<'_>| {
                    StepPlan::effect(Effect::start_subworkflow(
                        "order",
                        2,
                        json!({}),
                        SubworkflowMode::Async,
                    ))
                    .then_complete(json!("spawned"))
                })
                .entry("spawn")
                .build()
                .expect("valid spec"),
        );
        test(engine, clock);
    }
}

/// An `ask_user` wait: its key is unique per run.
fn unique_wait() -> Effect {
    Effect::ask_user("ok?", &[])
}

fn all_pages(engine: &Engine, query: &RunQuery, limit: usize) -> Vec<RunId> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let page = engine
            .query_runs(query, cursor.as_deref(), limit)
            .expect("query");
        out.extend(page.runs.iter().map(|r| r.run_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
    panic!("paging did not end");
}

#[test]
fn queries_filter_page_and_count() {
    each_store(|engine, clock| {
        let mut v1 = Vec::new();
        let mut v2 = Vec::new();
        for i in 0..6 {
            clock.set_ms(T0 + i * 1_000);
            let version = if i % 2 == 0 { 1 } else { 2 };
            let run = engine.start(("order", version), json!({})).expect("start");
            engine.tick(run).expect("tick");
            if version == 1 {
                v1.push(run)
            } else {
                v2.push(run)
            }
        }
        clock.set_ms(T0 + 10_000);
        let batch = engine.start(("batch", 1), json!({})).expect("start");
        engine.tick(batch).expect("tick");
        let children = engine.store().children(batch, None, 10).expect("children");
        assert_eq!(children.len(), 2);

        let sorted = |mut v: Vec<RunId>| {
            v.sort();
            v
        };
        let q = |query: RunQuery| sorted(all_pages(&engine, &query, 2));
        assert_eq!(
            q(RunQuery {
                workflow_id: Some("order".into()),
                version: Some(1),
                parent: None,
                ..RunQuery::default()
            })
            .len(),
            4,
            "3 + 1 child"
        );
        assert_eq!(
            q(RunQuery {
                parent: Some(batch),
                ..RunQuery::default()
            }),
            sorted(children.clone())
        );
        assert_eq!(
            q(RunQuery {
                status: Some(RunStatus::Completed),
                ..RunQuery::default()
            }),
            vec![batch]
        );
        assert_eq!(
            q(RunQuery {
                status: Some(RunStatus::Waiting),
                ..RunQuery::default()
            })
            .len(),
            8
        );
        let early = q(RunQuery {
            created_ms: Some((T0, T0 + 2_500)),
            ..RunQuery::default()
        });
        assert_eq!(early, sorted(vec![v1[0], v2[0], v1[1]]));
        let combined = q(RunQuery {
            workflow_id: Some("order".into()),
            version: Some(2),
            created_ms: Some((T0, T0 + 9_999)),
            ..RunQuery::default()
        });
        assert_eq!(
            combined,
            sorted(v2.clone()),
            "workflow index filtered by time"
        );

        // Move one run: it shows up in a later updated range.
        clock.set_ms(T0 + 50_000);
        let key = engine
            .load(v1[0])
            .expect("load")
            .waiting
            .and_then(|w| w.wait_key)
            .expect("key");
        engine.resume(v1[0], &key, json!("yes")).expect("resume");
        assert_eq!(
            q(RunQuery {
                updated_ms: Some((T0 + 40_000, T0 + 60_000)),
                ..RunQuery::default()
            }),
            vec![v1[0]]
        );

        let counts = engine.count_by_status().expect("counts");
        assert_eq!(
            counts,
            vec![(RunStatus::Waiting, 7), (RunStatus::Completed, 2)]
        );

        let max = engine.store().limits().read_items_max;
        assert!(matches!(
            engine.query_runs(&RunQuery::default(), None, max + 1),
            Err(Error::Store(_))
        ));
        let wrong = engine.query_runs(&RunQuery::default(), Some("lq1.s.nonsense"), 2);
        assert!(matches!(wrong, Err(Error::InvalidInput { .. })));
    });
}
