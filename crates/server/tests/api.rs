//! The API over a real socket on loopback: every route, tokens and roles, bad input,
//! operator actions recorded with who did them, the SSE feed, the store-only mode.

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Duration;

use ledgerflow::{
    Effect, Engine, EngineConfig, MemoryStore, RunId, RunStatus, ScheduledRuntime, StepContext,
    StepPlan, SystemClock, WorkflowSpec,
};
use ledgerflow_server::{Backend, Server, ServerConfig, ServerError, Tokens};
use serde_json::{json, Value};

const ALICE: &str = "alice-secret-0123456789";
const VIEWER: &str = "viewer-secret-0123456789";
const WAIT: Duration = Duration::from_secs(10);

/// Asks a person to approve, then completes with the answer.
fn approval() -> WorkflowSpec {
    WorkflowSpec::builder("approval", 1)
        .node("ask", |_: &mut StepContext<'_>| {
            StepPlan::effect(Effect::ask_user("Approve?", &["yes", "no"]).result_key("answer"))
                .then_next("done")
        })
        .node("done", |ctx: &mut StepContext<'_>| {
            StepPlan::complete(ctx.var("answer").cloned().unwrap_or(Value::Null))
        })
        .entry("ask")
        .build()
        .expect("valid spec")
}

struct Fixture {
    runtime: Arc<ScheduledRuntime>,
    server: Server,
    agent: ureq::Agent,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn config(tokens: bool) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        tokens: tokens.then(|| {
            Tokens::parse(&format!("alice operate {ALICE}\nviewer read {VIEWER}\n"))
                .expect("tokens")
        }),
        ..ServerConfig::default()
    }
}

fn live(tokens: bool) -> Fixture {
    live_with(config(tokens))
}

fn live_with(config: ServerConfig) -> Fixture {
    let runtime = Arc::new(ScheduledRuntime::in_memory().expect("runtime"));
    runtime.register(approval());
    let server = Server::start(Backend::live(Arc::clone(&runtime)), config).expect("server");
    Fixture {
        runtime,
        server,
        agent: agent(),
    }
}

/// A response's status and JSON body (`null` when the body is not JSON).
struct Answer {
    status: u16,
    body: Value,
    www_authenticate: Option<String>,
    retry_after: Option<String>,
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr())
    }

    fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = self.agent.get(&self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        answer(request.call().expect("request"))
    }

    fn post(&self, path: &str, token: Option<&str>, body: &str) -> Answer {
        self.post_as(path, token, body, "application/json")
    }

    fn post_as(&self, path: &str, token: Option<&str>, body: &str, content_type: &str) -> Answer {
        let mut request = self
            .agent
            .post(&self.url(path))
            .header("Content-Type", content_type);
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        answer(request.send(body).expect("request"))
    }

    fn feed_head(&self) -> u64 {
        self.runtime.store().feed_head().expect("feed head")
    }

    /// Starts an approval run through the API and waits until it asks.
    fn start_waiting(&self, token: Option<&str>) -> RunId {
        let started = self.post(
            "/api/runs",
            token,
            r#"{"workflow_id": "approval", "version": 1, "input": {"amount": 5}}"#,
        );
        assert_eq!(started.status, 201, "{}", started.body);
        let run: RunId = started.body["run_id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid");
        let waiting = self.runtime.await_waiting(run, WAIT).expect("waits");
        assert_eq!(waiting.status, RunStatus::Waiting);
        run
    }
}

fn answer(mut response: ureq::http::Response<ureq::Body>) -> Answer {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let www_authenticate = header("www-authenticate");
    let retry_after = header("retry-after");
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        www_authenticate,
        retry_after,
    }
}

/// The record kinds and bodies of a run, read through the API.
fn records(f: &Fixture, run: RunId, token: Option<&str>) -> Vec<Value> {
    let answer = f.get(&format!("/api/runs/{run}/records?limit=1000"), token);
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["records"].as_array().expect("records").clone()
}

#[test]
fn every_route_in_the_openapi_document_answers_and_no_other() {
    let f = live(false);
    let doc = f.get("/openapi.json", None);
    assert_eq!(doc.status, 200);
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc.body["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    let mut routes: Vec<(String, String)> = ledgerflow_server::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    documented.sort();
    routes.sort();
    assert_eq!(documented, routes, "the document and the routes differ");
    // Each route is served: a real run for {id}, and nothing answers "no such route".
    let run = f.start_waiting(None);
    for (method, path) in &routes {
        let path = path.replace("{id}", &run.to_string());
        let answer = match method.as_str() {
            "get" if path.ends_with("/stream") => continue, // endless; tested below
            "get" => f.get(&path, None),
            _ => f.post(&path, None, "{}"),
        };
        assert!(
            !matches!(
                answer.body["code"].as_str(),
                Some("no_route" | "method_not_allowed")
            ),
            "{method} {path}: {}",
            answer.body
        );
        assert!(
            answer.status < 500,
            "{method} {path}: {} {}",
            answer.status,
            answer.body
        );
    }
}

#[test]
fn a_person_answers_through_the_api_and_the_ledger_names_them() {
    let f = live(true);
    let run = f.start_waiting(Some(ALICE));
    let shown = f.get(&format!("/api/runs/{run}"), Some(VIEWER));
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["status"], "waiting");
    assert_eq!(shown.body["waiting"]["prompt"], "Approve?");
    let listed = f.get("/api/runs?status=waiting", Some(VIEWER));
    assert_eq!(listed.body["runs"][0]["run_id"], json!(run));
    let answered = f.post(
        &format!("/api/runs/{run}/respond"),
        Some(ALICE),
        r#"{"payload": "yes"}"#,
    );
    assert_eq!(answered.status, 200, "{}", answered.body);
    let done = f.runtime.await_end(run, WAIT).expect("ends");
    assert_eq!(done.output, Some(json!("yes")));
    let resumed: Vec<Value> = records(&f, run, Some(VIEWER))
        .into_iter()
        .filter(|r| r["kind"] == "resumed")
        .collect();
    assert_eq!(resumed.len(), 1);
    assert_eq!(
        resumed[0]["body"]["by"], "alice",
        "who answered is in the record"
    );
    assert_eq!(resumed[0]["body"]["payload"], "yes");
    let verified = f.get(&format!("/api/runs/{run}/verify"), Some(VIEWER));
    assert_eq!(verified.body["ok"], true, "{}", verified.body);
    assert_eq!(verified.body["records"], json!(done.head.seq));
    let counts = f.get("/api/runs/counts", Some(VIEWER));
    assert_eq!(
        counts.body,
        json!({ "counts": { "completed": 1 }, "total": 1 })
    );
}

#[test]
fn tokens_and_roles_are_enforced_and_a_refused_action_changes_nothing() {
    let f = live(true);
    let run = f.start_waiting(Some(ALICE));
    let before = f.feed_head();
    let none = f.get("/api/runs", None);
    assert_eq!(
        (none.status, none.body["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert!(none
        .www_authenticate
        .is_some_and(|h| h.starts_with("Bearer")));
    let wrong = f.get("/api/runs", Some("not-a-token-at-all-000"));
    assert_eq!(wrong.status, 401);
    assert_eq!(f.get("/metrics", None).status, 401);
    let read = f.get("/api/runs", Some(VIEWER));
    assert_eq!(read.status, 200);
    for path in ["respond", "pause", "cancel", "unpause", "fork", "snapshots"] {
        let refused = f.post(&format!("/api/runs/{run}/{path}"), Some(VIEWER), r#"{}"#);
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        assert_eq!(refused.body["code"], "forbidden");
        assert!(refused.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("viewer")));
    }
    let refused = f.post("/api/events", Some(VIEWER), r#"{"wait_key": "k"}"#);
    assert_eq!(refused.status, 403);
    assert_eq!(f.feed_head(), before, "nothing was written");
    // Health, readiness, the document and the page need no token.
    assert_eq!(f.get("/health", None).status, 200);
    assert_eq!(f.get("/ready", None).status, 200);
    assert_eq!(f.get("/openapi.json", None).status, 200);
}

#[test]
fn bad_input_gets_a_json_error_naming_it_and_changes_nothing() {
    let f = live_with(ServerConfig {
        body_bytes_max: 4096,
        ..config(false)
    });
    let run = f.start_waiting(None);
    let before = f.feed_head();
    let respond = format!("/api/runs/{run}/respond");
    let cases: Vec<(Answer, u16, &str, &str)> = vec![
        (
            f.post(&respond, None, "{not json"),
            400,
            "invalid_json",
            "invalid request body",
        ),
        (
            f.post(&respond, None, r#"{"payload": 1, "extra": 2}"#),
            400,
            "invalid_json",
            "extra",
        ),
        (
            f.post_as(&respond, None, r#"{"payload": 1}"#, "text/plain"),
            415,
            "unsupported_media_type",
            "text/plain",
        ),
        (
            f.post(
                &respond,
                None,
                &format!(r#"{{"payload": "{}"}}"#, "x".repeat(5000)),
            ),
            413,
            "body_too_large",
            "limit",
        ),
        (
            f.post(
                &format!("/api/runs/{}/respond", RunId::new_v4()),
                None,
                r#"{"payload": 1}"#,
            ),
            404,
            "not_found",
            "not found",
        ),
        (
            f.get("/api/runs/not-a-uuid", None),
            400,
            "invalid_input",
            "not-a-uuid",
        ),
        (
            f.get("/api/feed?cursor=lf1.zz.1", None),
            400,
            "invalid_input",
            "cursor",
        ),
        (
            f.get(
                "/api/feed?cursor=lf1.00000000000000000000000000000000.1",
                None,
            ),
            400,
            "invalid_input",
            "store",
        ),
        (
            f.get("/api/runs?limit=100000", None),
            400,
            "limit_exceeded",
            "1000",
        ),
        (
            f.get("/api/runs?limit=0", None),
            400,
            "invalid_input",
            "limit",
        ),
        (
            f.get("/api/runs?colour=red", None),
            400,
            "invalid_input",
            "colour",
        ),
        (
            f.get("/api/runs?status=sleeping", None),
            400,
            "invalid_input",
            "sleeping",
        ),
        (
            f.get("/api/runs?cursor=garbage", None),
            400,
            "invalid_input",
            "cursor",
        ),
        (
            f.get("/api/runs?limit=1&limit=2", None),
            400,
            "invalid_input",
            "twice",
        ),
        (
            f.post(&format!("/api/runs/{run}/fork"), None, r#"{}"#),
            400,
            "invalid_input",
            "seq",
        ),
        (
            f.post(
                "/api/runs",
                None,
                r#"{"workflow_id": "nope", "version": 1}"#,
            ),
            422,
            "not_registered",
            "nope",
        ),
        (
            f.post(
                &format!("/api/runs/{run}/snapshots"),
                None,
                r#"{"name": ""}"#,
            ),
            400,
            "invalid_input",
            "name",
        ),
        (
            f.get("/api/log/bundle?to_seq=1", None),
            400,
            "invalid_input",
            "to_seq needs run",
        ),
        (
            f.get(&format!("/api/log/bundle?run={run}&to_seq=99"), None),
            400,
            "invalid_input",
            "not 99",
        ),
        (
            f.get(&format!("/api/log/bundle?run={}", RunId::new_v4()), None),
            404,
            "not_found",
            "run",
        ),
        (
            f.get("/api/snapshots?limit=0", None),
            400,
            "invalid_input",
            "limit",
        ),
        (
            f.get("/api/nothing-here", None),
            404,
            "no_route",
            "/api/nothing-here",
        ),
    ];
    for (i, (got, status, code, mentions)) in cases.iter().enumerate() {
        assert_eq!(got.status, *status, "case {i}: {}", got.body);
        assert_eq!(got.body["code"], *code, "case {i}: {}", got.body);
        let message = got.body["message"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        assert!(
            message.contains(&mentions.to_lowercase()),
            "case {i}: {message:?} should mention {mentions:?}"
        );
    }
    // A memory store keeps no signed checkpoints: proofs are not found, not a failure.
    let proof = f.get(&format!("/api/log/prove/{run}"), None);
    assert_eq!(
        (proof.status, proof.body["code"].as_str()),
        (404, Some("not_found"))
    );
    let bundle = f.get(&format!("/api/log/bundle?run={run}"), None);
    assert_eq!(
        (bundle.status, bundle.body["code"].as_str()),
        (404, Some("not_found"))
    );
    let missing = f.get("/api/log/consistency", None);
    assert_eq!(
        (missing.status, missing.body["code"].as_str()),
        (400, Some("invalid_input"))
    );
    assert_eq!(f.feed_head(), before, "no bad request wrote anything");
    assert_eq!(
        f.runtime.engine().load(run).expect("run").status,
        RunStatus::Waiting
    );
}

#[test]
fn operator_actions_are_recorded_with_who_did_them() {
    let f = live(true);
    let run = f.start_waiting(Some(ALICE));
    let paused = f.post(&format!("/api/runs/{run}/pause"), Some(ALICE), "");
    assert_eq!((paused.status, &paused.body["paused"]), (200, &json!(true)));
    let unpaused = f.post(&format!("/api/runs/{run}/unpause"), Some(ALICE), "");
    assert_eq!(unpaused.body["paused"], false);
    let snap = f.post(
        &format!("/api/runs/{run}/snapshots"),
        Some(ALICE),
        r#"{"name": "asked", "tags": ["review"]}"#,
    );
    assert_eq!(snap.status, 201, "{}", snap.body);
    let listed = f.get(
        &format!("/api/runs/{run}/snapshots?tag=review"),
        Some(VIEWER),
    );
    assert_eq!(listed.body["snapshots"][0]["name"], "asked");
    let everyone = f.get("/api/snapshots?tag=review", Some(VIEWER));
    assert_eq!(everyone.body["snapshots"], listed.body["snapshots"]);
    let untagged = f.get("/api/snapshots?tag=other", Some(VIEWER));
    assert_eq!(untagged.body["snapshots"], json!([]));
    let forked = f.post(
        &format!("/api/runs/{run}/fork"),
        Some(ALICE),
        r#"{"snapshot": "asked"}"#,
    );
    assert_eq!(forked.status, 201, "{}", forked.body);
    let fork: RunId = forked.body["run_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let lineage = f.get(&format!("/api/runs/{fork}/verify"), Some(VIEWER));
    assert_eq!(
        lineage.body["lineage"]["from_run_id"],
        json!(run),
        "{}",
        lineage.body
    );
    let cancelled = f.post(
        &format!("/api/runs/{run}/cancel"),
        Some(ALICE),
        r#"{"reason": "duplicate"}"#,
    );
    assert_eq!(cancelled.body["changed"], true);
    assert_eq!(cancelled.body["run"]["status"], "cancelled");
    let again = f.post(&format!("/api/runs/{run}/cancel"), Some(ALICE), "");
    assert_eq!(again.body["changed"], false, "cancel is idempotent");
    assert_eq!(again.body["record_seq"], cancelled.body["record_seq"]);
    let kinds: Vec<(String, Value)> = records(&f, run, Some(ALICE))
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or_default().to_owned(),
                r["body"]["by"].clone(),
            )
        })
        .filter(|(kind, _)| ["paused", "unpaused", "cancelled"].contains(&kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("paused".to_owned(), json!("alice")),
            ("unpaused".to_owned(), json!("alice")),
            ("cancelled".to_owned(), json!("alice")),
        ]
    );
    // An event delivered to a key nobody waits on yet is queued, then consumed.
    let queued = f.post(
        "/api/events",
        Some(ALICE),
        r#"{"wait_key": "later", "payload": 7}"#,
    );
    assert_eq!(queued.body["delivered"], "queued", "{}", queued.body);
}

#[test]
fn the_feed_streams_as_server_sent_events_and_resumes_from_the_last_id() {
    let f = live(false);
    let run = f.start_waiting(None);
    let response = f
        .agent
        .get(&f.url("/api/feed/stream?cursor=start"))
        .call()
        .expect("stream");
    assert_eq!(response.status().as_u16(), 200);
    let mut lines = BufReader::new(response.into_body().into_reader()).lines();
    let mut records = Vec::new();
    let mut last_id = None;
    while last_id.is_none() {
        let line = lines.next().expect("more").expect("line");
        if let Some(data) = line.strip_prefix("data: ") {
            if let Ok(entry) = serde_json::from_str::<Value>(data) {
                if entry.is_object() {
                    records.push(entry);
                }
            }
        }
        if let Some(id) = line.strip_prefix("id: ") {
            last_id = Some(id.to_owned());
        }
    }
    assert!(records
        .iter()
        .any(|r| r["run_id"] == json!(run) && r["kind"] == "started"));
    let seen = records.len() as u64;
    assert_eq!(seen, f.feed_head(), "every committed record so far, once");
    // A new record arrives on a stream resumed from the last id, and nothing before it.
    let resumed = f
        .agent
        .get(&f.url("/api/feed/stream"))
        .header("Last-Event-ID", last_id.as_deref().expect("id"))
        .call()
        .expect("stream");
    let mut lines = BufReader::new(resumed.into_body().into_reader()).lines();
    f.runtime.respond(run, json!("no")).expect("respond");
    let first = loop {
        let line = lines.next().expect("more").expect("line");
        if let Some(data) = line.strip_prefix("data: ") {
            break serde_json::from_str::<Value>(data).expect("json");
        }
    };
    assert_eq!(first["feed_seq"], json!(seen + 1));
    assert_eq!(first["kind"], "resumed");
}

#[test]
fn a_store_only_server_records_actions_but_runs_no_code() {
    let store = Arc::new(MemoryStore::new());
    let app = Engine::new(store.clone(), Arc::new(SystemClock));
    app.register(approval());
    let run = app.run(("approval", 1), json!({})).expect("run").run_id;
    // The server's engine has no workflow code and runs no steps.
    let engine = Engine::with_config(
        store,
        Arc::new(SystemClock),
        EngineConfig {
            steps_per_tick_max: 0,
            ..EngineConfig::default()
        },
    );
    let server = Server::start(Backend::store(Arc::new(engine)), config(false)).expect("server");
    let f = Fixture {
        runtime: Arc::new(ScheduledRuntime::in_memory().expect("unused")),
        server,
        agent: agent(),
    };
    let started = f.post(
        "/api/runs",
        None,
        r#"{"workflow_id": "approval", "version": 1}"#,
    );
    assert_eq!(
        (started.status, started.body["code"].as_str()),
        (409, Some("not_supported"))
    );
    let stats = f.get("/api/stats", None);
    assert_eq!(stats.body["mode"], "store");
    let answered = f.post(
        &format!("/api/runs/{run}/respond"),
        None,
        r#"{"payload": "yes"}"#,
    );
    assert_eq!(answered.status, 200, "{}", answered.body);
    // Recorded, not carried on: the application does that with its code.
    let state = app.load(run).expect("run");
    assert_eq!(state.status, RunStatus::Running);
    let done = app.tick(run).expect("the application carries on");
    assert_eq!(done.output, Some(json!("yes")));
}

#[test]
fn it_refuses_to_listen_off_loopback_without_tokens_and_limits_the_rate() {
    let runtime = Arc::new(ScheduledRuntime::in_memory().expect("runtime"));
    let open = ServerConfig {
        listen: "0.0.0.0:0".parse().expect("addr"),
        ..ServerConfig::default()
    };
    match Server::start(Backend::live(Arc::clone(&runtime)), open) {
        Err(ServerError::Insecure { .. }) => {}
        Err(other) => panic!("expected Insecure, got {other}"),
        Ok(_) => panic!("a server without tokens listened off loopback"),
    }
    let f = live_with(ServerConfig {
        requests_per_s_max: 5,
        ..config(false)
    });
    let answers: Vec<Answer> = (0..30).map(|_| f.get("/api/stats", None)).collect();
    let limited: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(
        !limited.is_empty(),
        "30 requests at once over 5/s were all served"
    );
    assert_eq!(limited[0].body["code"], "rate_limited");
    assert_eq!(limited[0].retry_after.as_deref(), Some("1"));
    assert!(
        answers.iter().take(5).all(|a| a.status == 200),
        "the first second's worth is served"
    );
}
