//! The run inspector in a real headless browser (Debian's chromium, driven through
//! chromedriver's WebDriver protocol): the page asks for a token, finds the waiting run,
//! responds to it after confirming, and shows it completed from the live feed; a
//! screenshot goes to `target/inspector.png`.
//!
//! Runs when `chromedriver` is on the machine (`apt-get install chromium chromium-driver`);
//! `LEDGERFLOW_REQUIRE_BROWSER=1` (set by `.ci/run`) makes its absence a failure.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ledgerflow::{Effect, RunStatus, ScheduledRuntime, StepContext, StepPlan, WorkflowSpec};
use ledgerflow_server::{Backend, Server, ServerConfig, Tokens};
use serde_json::{json, Value};

const TOKEN: &str = "inspector-secret-0123456789";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn chromedriver() -> Option<String> {
    let path =
        std::env::var("LEDGERFLOW_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    if std::path::Path::new(&path).exists() {
        return Some(path);
    }
    assert!(
        std::env::var("LEDGERFLOW_REQUIRE_BROWSER").is_err(),
        "LEDGERFLOW_REQUIRE_BROWSER is set but there is no chromedriver at {path}"
    );
    eprintln!("skipping the browser test: no chromedriver at {path} (apt-get install chromium chromium-driver)");
    None
}

struct Driver {
    process: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self
            .agent
            .delete(&format!("{}/session/{}", self.base, self.session))
            .call();
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Driver {
    fn start(binary: &str, profile: &std::path::Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let process = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while agent.get(&format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let chromium =
            std::env::var("LEDGERFLOW_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--window-size=1400,900",
                         format!("--user-data-dir={}", profile.display())],
            },
        }}});
        let mut response = agent
            .post(&format!("{base}/session"))
            .send_json(&capabilities)
            .expect("new session");
        let body: Value = response.body_mut().read_json().expect("json");
        let session = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {body}"))
            .to_owned();
        Driver {
            process,
            base,
            session,
            agent,
        }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut response = match method {
            "GET" => self.agent.get(&url).call(),
            _ => self.agent.post(&url).send_json(&body),
        }
        .expect("webdriver");
        let value: Value = response.body_mut().read_json().expect("json");
        value["value"].clone()
    }

    fn find(&self, css: &str) -> Option<String> {
        let found = self.call(
            "POST",
            "/element",
            json!({ "using": "css selector", "value": css }),
        );
        found[ELEMENT].as_str().map(str::to_owned)
    }

    /// Waits until `css` matches a displayed element.
    fn wait_for(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let visible = self.call(
                "POST",
                "/execute/sync",
                json!({
                    "script": "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0;",
                    "args": [css],
                }),
            );
            if visible == json!(true) {
                if let Some(id) = self.find(css) {
                    return id;
                }
            }
            if Instant::now() >= deadline {
                let page = self.call(
                    "POST",
                    "/execute/sync",
                    json!({ "script": "return document.getElementById('error').textContent + ' | ' + document.body.innerHTML.slice(0, 2000)", "args": [] }),
                );
                let found = self.call(
                    "POST",
                    "/element",
                    json!({ "using": "css selector", "value": css }),
                );
                panic!("no visible {css} on the page ({visible}, {found}): {page}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, css: &str) {
        let id = self.wait_for(css);
        self.call("POST", &format!("/element/{id}/click"), json!({}));
    }

    fn text(&self, css: &str) -> String {
        let id = self.wait_for(css);
        self.call("GET", &format!("/element/{id}/text"), Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn wait_text(&self, css: &str, wanted: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text(css);
            if text.contains(wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} shows {text:?}, not {wanted:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn an_operator_answers_a_waiting_run_from_the_inspector() {
    let Some(binary) = chromedriver() else { return };
    let runtime = Arc::new(ScheduledRuntime::in_memory().expect("runtime"));
    runtime.register(
        WorkflowSpec::builder("expense", 1)
            .node("ask", |_: &mut StepContext<'_>| {
                StepPlan::effect(
                    Effect::ask_user("Approve the expense?", &["yes", "no"]).result_key("answer"),
                )
                .then_next("done")
            })
            .node("done", |ctx: &mut StepContext<'_>| {
                StepPlan::complete(ctx.var("answer").cloned().unwrap_or(Value::Null))
            })
            .entry("ask")
            .build()
            .expect("spec"),
    );
    let done = runtime.run(("expense", 1), json!({})).expect("run").run_id;
    runtime
        .respond(done, json!("no"))
        .expect("an ended run in the table too");
    let run = runtime
        .run(("expense", 1), json!({ "amount": 42 }))
        .expect("run")
        .run_id;
    runtime
        .await_waiting(run, Duration::from_secs(10))
        .expect("waits");
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        tokens: Some(Tokens::parse(&format!("ops operate {TOKEN}")).expect("tokens")),
        ..ServerConfig::default()
    };
    let server = Server::start(Backend::live(Arc::clone(&runtime)), config).expect("server");
    let profile = tempfile::tempdir().expect("profile");
    let driver = Driver::start(&binary, profile.path());
    driver.call(
        "POST",
        "/url",
        json!({ "url": format!("http://{}/", server.addr()) }),
    );

    // The server has tokens: the page asks for one.
    let input = driver.wait_for("#token");
    driver.call(
        "POST",
        &format!("/element/{input}/value"),
        json!({ "text": TOKEN }),
    );
    driver.click("#token-form button");

    driver.click(&format!("tr[data-run=\"{run}\"][data-status=\"waiting\"]"));
    driver.wait_text("#waiting-reason", "Approve the expense?");
    driver.wait_text("#verify", "chain verified");
    assert!(
        !driver.text("#verify").contains("lineage"),
        "a run that is no fork shows no lineage"
    );
    let answer = driver.wait_for("#respond-payload");
    driver.call("POST", &format!("/element/{answer}/clear"), json!({}));
    driver.call(
        "POST",
        &format!("/element/{answer}/value"),
        json!({ "text": "\"yes\"" }),
    );
    driver.click("#respond");
    driver.click("#confirm-ok");

    let ended = runtime
        .await_end(run, Duration::from_secs(20))
        .expect("completes");
    assert_eq!(
        (ended.status, ended.output.clone()),
        (RunStatus::Completed, Some(json!("yes")))
    );
    // The page sees it complete (from the feed or the action's reload).
    driver.wait_text("#run-title", "completed");
    driver.wait_text("#timeline", "by ops");
    let resumed = runtime
        .engine()
        .records(run, 1, 100)
        .expect("records")
        .into_iter()
        .find(|r| r.kind() == "resumed")
        .expect("a resumed record");
    assert_eq!(
        resumed.body()["by"],
        "ops",
        "the token's name is in the ledger"
    );

    // A change made elsewhere reaches the page through the live feed.
    let other = runtime
        .run(("expense", 1), json!({ "amount": 7 }))
        .expect("run")
        .run_id;
    driver.wait_for(&format!("tr[data-run=\"{other}\"]"));

    let png = driver.call("GET", "/screenshot", Value::Null);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().expect("base64"))
        .expect("png");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/inspector.png");
    std::fs::write(&out, bytes).expect("write the screenshot");
    eprintln!("screenshot: {}", out.display());
}
