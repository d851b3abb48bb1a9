//! A crash between an `llm_call`'s request and its answer: a child process on a sled store
//! asks a model (a server on 127.0.0.1 in this test) that never answers, and is
//! SIGKILLed while it waits; the store reopened here makes the call again with the same
//! idempotency key, and the ledger keeps one request and one answer.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::*;
use ledgerflow_agent::stub::{chat_answer, StubReply, StubServer};
use ledgerflow_agent::{AgentConfig, OpenAiCompatible, ToolRegistry, IDEMPOTENCY_HEADER};
use ledgerflow_kernel::{RunId, RunStatus};
use ledgerflow_sled::SledStore;

/// The child's environment variable: `STORE_DIR|MODEL_URL`.
const CHILD_ENV: &str = "LEDGERFLOW_AGENT_CRASH_CHILD";

fn config(url: &str) -> AgentConfig {
    AgentConfig::hybrid(
        OpenAiCompatible::new(format!("{url}/v1")),
        ToolRegistry::new(),
    )
}

/// The child process: starts one agent run on the store and waits on its model call
/// until it is killed. Run by `a_call_cut_off_by_a_crash_is_made_again_with_the_same_key`.
#[test]
#[ignore = "the child process of a_call_cut_off_by_a_crash_is_made_again_with_the_same_key"]
fn crash_child() {
    let spec = std::env::var(CHILD_ENV).expect("run by the crash test, which sets the env");
    let (dir, url) = spec.split_once('|').expect("DIR|URL");
    let store = Arc::new(SledStore::open(dir).expect("open the store"));
    let (_engine, scheduler) = start(store, &config(url), agent_loop("stub-model", Vec::new()));
    // Blocks in the model call, which never returns: the parent kills us there.
    let _ = scheduler.run(("agent", 1), input("Where is my order?"));
    std::thread::sleep(Duration::from_secs(120));
    panic!("the crash test should have killed this process");
}

#[test]
fn a_call_cut_off_by_a_crash_is_made_again_with_the_same_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (first_call, called) = mpsc::channel::<String>();
    let first_call = Mutex::new(first_call);
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&answered);
    let model = StubServer::start(move |request| {
        let key = request.header(IDEMPOTENCY_HEADER).unwrap_or("").to_owned();
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            // The child's call: it is killed while waiting for this answer.
            let _ = first_call.lock().map(|s| s.send(key));
            return StubReply::Silence(Duration::from_secs(30));
        }
        StubReply::Json(200, chat_answer("stub-model", Some("It shipped."), &[]))
    })
    .expect("stub model");

    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["crash_child", "--exact", "--ignored", "--nocapture"])
        .env(
            CHILD_ENV,
            format!("{}|{}", dir.path().display(), model.url()),
        )
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let key = called
        .recv_timeout(Duration::from_secs(60))
        .expect("the child calls the model");
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");

    // The key is `<run id>:<seq>`: the run the child started.
    let run_id: RunId = key
        .split_once(':')
        .and_then(|(run, _)| run.parse().ok())
        .expect("an idempotency key naming the run");
    let store = Arc::new(SledStore::open(dir.path()).expect("reopen after the crash"));
    let (engine, scheduler) = start(
        store,
        &config(&model.url()),
        agent_loop("stub-model", Vec::new()),
    );
    let done = ended(&scheduler, run_id);
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");

    let requests = model.requests();
    assert_eq!(
        requests.len(),
        2,
        "the cut-off call, then the one made again"
    );
    assert_eq!(requests[1].header(IDEMPOTENCY_HEADER), Some(key.as_str()));
    let records = records(&engine, run_id);
    assert_eq!(
        effect_records(&records, "effect_requested", "llm_call").len(),
        1
    );
    let completed = effect_records(&records, "effect_completed", "llm_call");
    assert_eq!(completed.len(), 1, "exactly one answer is kept");
    assert_eq!(completed[0].body()["idempotency_key"], key.as_str());
    scheduler.stop();
}
