//! `--url`: the commands that go through a server's HTTP API instead of opening the store,
//! so an operator reaches the store of a live application. Errors keep the server's code.

use std::io::{BufRead, BufReader};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::errors::InputError;
use crate::output::{print_json, time};
use crate::{
    Cli, Command, EventsCommand, ExportArgs, LedgerCommand, LogCommand, Order, RunsCommand,
    SnapshotCommand,
};
use ledgerflow_kernel::Record;
use ledgerflow_ledger::bundle::ProofBundle;
use ledgerflow_ledger::parse_jsonl_line;

/// An error answer from the server, with its stable code.
#[derive(Debug, thiserror::Error)]
#[error("{message} (HTTP {status} from the server)")]
pub struct RemoteError {
    /// The server's `code`.
    pub code: String,
    /// The server's `message`.
    pub message: String,
    /// The HTTP status.
    pub status: u16,
}

/// The error a server's answer of `status` with body `text` stands for.
fn remote_error(status: u16, text: &str) -> anyhow::Error {
    let body: Value = serde_json::from_str(text).unwrap_or_default();
    RemoteError {
        code: body["code"].as_str().unwrap_or("error").to_owned(),
        message: body["message"]
            .as_str()
            .map_or_else(|| text.trim().to_owned(), str::to_owned),
        status,
    }
    .into()
}

struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    fn new(url: &str, token: Option<String>) -> Result<Client> {
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(InputError(format!("--url {url:?}: expected http://HOST:PORT")).into());
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .build()
            .into();
        Ok(Client { base, token, agent })
    }

    fn answer(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        what: &str,
    ) -> Result<Value> {
        let mut response =
            response.with_context(|| format!("{what}: cannot reach {}", self.base))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("{what}: reading the answer"))?;
        if status >= 400 {
            return Err(remote_error(status, &text));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn get(&self, path: &str) -> Result<Value> {
        let mut request = self.agent.get(&format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        self.answer(request.call(), &format!("GET {path}"))
    }

    fn bytes(&self, path: &str) -> Result<Vec<u8>> {
        let mut request = self.agent.get(&format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request
            .call()
            .with_context(|| format!("GET {path}: cannot reach {}", self.base))?;
        let status = response.status().as_u16();
        if status >= 400 {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            return Err(remote_error(status, &text));
        }
        response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .with_context(|| format!("GET {path}: reading the bytes"))
    }

    /// Every record of the run at `run` (`/api/runs/ID`), as the export's JSON lines.
    fn records(&self, run: &str) -> Result<Vec<Value>> {
        let mut records = Vec::new();
        let mut from = Some(1u64);
        while let Some(seq) = from {
            let page = self.get(&format!("{run}/records?from={seq}&limit=1000"))?;
            records.extend(page["records"].as_array().cloned().unwrap_or_default());
            from = page["next_from"].as_u64();
        }
        Ok(records)
    }

    fn post(&self, path: &str, body: Value) -> Result<Value> {
        let mut request = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        self.answer(request.send(body.to_string()), &format!("POST {path}"))
    }
}

/// Percent-encodes a query value.
fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn run_path(run: &str) -> Result<String> {
    let id: ledgerflow_kernel::RunId = run.parse().map_err(|_| {
        InputError(format!(
            "{run:?}: with --url, give the whole run id (a UUID); prefixes need the store"
        ))
    })?;
    Ok(format!("/api/runs/{id}"))
}

/// Prints a server answer: the JSON with `--json`, else `text`.
fn show(cli: &Cli, value: &Value, text: impl FnOnce(&Value) -> String) {
    if cli.json {
        print_json(value);
    } else {
        crate::out!("{}", text(value));
    }
}

fn run_line(run: &Value) -> String {
    format!(
        "{} {}@{} {}{} seq {}",
        run["run_id"].as_str().unwrap_or_default(),
        run["workflow_id"].as_str().unwrap_or_default(),
        run["version"],
        run["status"].as_str().unwrap_or_default(),
        if run["paused"] == true {
            " (paused)"
        } else {
            ""
        },
        run["seq"],
    )
}

/// Runs the command through the server at `url`.
pub fn run(cli: &Cli, url: &str) -> Result<ExitCode> {
    let token = std::env::var("LEDGERFLOW_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let client = Client::new(url, token)?;
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    match &cli.command {
        Command::Runs(RunsCommand::List { status, workflow, order, since, until, limit, cursor }) => {
            let mut query = format!("?limit={limit}&newest_first={}", *order == Order::Newest);
            for (name, value) in [("status", status), ("workflow_id", workflow), ("cursor", cursor)] {
                if let Some(value) = value {
                    query.push_str(&format!("&{name}={}", enc(value)));
                }
            }
            for (name, flag, value) in [("since_ms", "--since", since), ("until_ms", "--until", until)] {
                if let Some(value) = value {
                    query.push_str(&format!("&{name}={}", crate::commands::time_arg(flag, value)?));
                }
            }
            crate::output::runs_page(cli.json, &client.get(&format!("/api/runs{query}"))?);
        }
        Command::Runs(RunsCommand::Show { run }) => {
            let state = client.get(&run_path(run)?)?;
            show(cli, &state, pretty);
        }
        Command::Ledger(LedgerCommand::Show { run }) => {
            let records = client.records(&run_path(run)?)?;
            if cli.json {
                print_json(&json!({ "records": records }));
            } else {
                for r in &records {
                    let kind = r["kind"].as_str().unwrap_or_default();
                    crate::out!("{:>4} {} {} {}", r["seq"], time(r["at_ms"].as_i64().unwrap_or_default()), kind, crate::output::body_summary(kind, &r["body"]));
                }
            }
        }
        Command::Ledger(LedgerCommand::Verify(args)) if args.run.is_some() => {
            let run = args.run.as_deref().unwrap_or_default();
            let verified = client.get(&format!("{}/verify", run_path(run)?))?;
            let ok = verified["ok"] == true;
            show(cli, &verified, |v| {
                if ok {
                    format!("ok: {} records verified, head {}", v["records"], v["head_hash"].as_str().unwrap_or_default())
                } else {
                    format!("FAIL: {}", v["error"].as_str().unwrap_or_default())
                }
            });
            return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        Command::Ledger(LedgerCommand::Verify(args)) if args.all => return check(cli, &client),
        Command::Check => return check(cli, &client),
        Command::Emit { wait_key, payload } => {
            let payload = crate::commands::payload(payload)?;
            let delivered = client.post("/api/events", json!({ "wait_key": wait_key, "payload": payload }))?;
            show(cli, &delivered, |d| match d["delivered"].as_str() {
                Some("resumed") => format!("resumed {}", run_line(&d["run"])),
                _ => format!("queued in the inbox of {wait_key:?} (entry {})", d["inbox_seq"]),
            });
        }
        Command::Respond { run, payload } => {
            let payload = crate::commands::payload(payload)?;
            let state = client.post(&format!("{}/respond", run_path(run)?), json!({ "payload": payload }))?;
            show(cli, &state, run_line);
        }
        Command::Pause { run } => {
            let state = client.post(&format!("{}/pause", run_path(run)?), json!({}))?;
            show(cli, &state, run_line);
        }
        Command::Unpause { run } => {
            let state = client.post(&format!("{}/unpause", run_path(run)?), json!({}))?;
            show(cli, &state, run_line);
        }
        Command::Cancel { run, reason } => {
            let outcome = client.post(&format!("{}/cancel", run_path(run)?), json!({ "reason": reason }))?;
            show(cli, &outcome, |o| {
                let note = if o["changed"] == true { "" } else { " (it had ended already)" };
                format!("{}{note}", run_line(&o["run"]))
            });
        }
        Command::Snapshot(SnapshotCommand::Create { run, name, tags, description }) => {
            let snapshot = client.post(
                &format!("{}/snapshots", run_path(run)?),
                json!({ "name": name, "tags": tags, "description": description }),
            )?;
            show(cli, &snapshot, |s| format!("snapshot {:?} of {} at seq {}", name, s["run_id"].as_str().unwrap_or_default(), s["seq"]));
        }
        Command::Ledger(LedgerCommand::Export(args)) => return export(cli, &client, args),
        Command::Snapshot(SnapshotCommand::List { run, tag, limit }) => {
            let base = match run {
                Some(run) => run_path(run)?,
                None => "/api".to_owned(),
            };
            let mut path = format!("{base}/snapshots?limit={limit}");
            if let Some(tag) = tag {
                path.push_str(&format!("&tag={}", enc(tag)));
            }
            let list = client.get(&path)?;
            crate::output::snapshots(cli.json, list["snapshots"].as_array().map(Vec::as_slice).unwrap_or_default());
        }
        Command::Fork(args) => {
            let body = match (&args.at, &args.snapshot) {
                (Some(seq), _) => json!({ "seq": seq }),
                (None, Some(name)) => json!({ "snapshot": name }),
                (None, None) => json!({}),
            };
            let fork = client.post(&format!("{}/fork", run_path(&args.run)?), body)?;
            show(cli, &fork, |f| format!("forked: {}", run_line(f)));
        }
        Command::Stats => {
            let stats = client.get("/api/stats")?;
            show(cli, &stats, pretty);
        }
        Command::Log(LogCommand::Checkpoint) => {
            let checkpoint = client.get("/api/log/checkpoint")?;
            show(cli, &checkpoint, |c| c["note"].as_str().unwrap_or_default().trim_end().to_owned());
        }
        Command::Log(LogCommand::Prove { run, seq }) => {
            let id = run_path(run)?.replace("/api/runs/", "");
            let query = seq.map(|s| format!("?seq={s}")).unwrap_or_default();
            let proofs = client.get(&format!("/api/log/prove/{id}{query}"))?;
            show(cli, &proofs, pretty);
        }
        Command::Log(LogCommand::Consistency { old_size }) => {
            let proof = client.get(&format!("/api/log/consistency?old_size={old_size}"))?;
            show(cli, &proof, pretty);
        }
        Command::Log(LogCommand::Key) => {
            let checkpoint = client.get("/api/log/checkpoint")?;
            let key = checkpoint["public_key"].as_str().ok_or_else(|| {
                anyhow::anyhow!("the server's store has no public key: its checkpoints are unsigned")
            })?;
            show(cli, &json!({ "public_key": key }), |_| key.to_owned());
        }
        Command::Artifact(crate::ArtifactCommand::Get { digest, out }) => {
            let hash: ledgerflow_kernel::Hash = digest
                .parse()
                .map_err(|_| InputError(format!("{digest:?} is not a digest (64 hex digits)")))?;
            let bytes = checked_artifact(&hash, client.bytes(&format!("/api/artifacts/{hash}"))?)?;
            match out {
                Some(path) => {
                    std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
                    show(cli, &json!({ "digest": digest, "size": bytes.len(), "out": path }), |_| {
                        format!("wrote {} bytes of artifact {digest} to {}", bytes.len(), path.display())
                    });
                }
                None => crate::output::bytes(&bytes),
            }
        }
        Command::Events(EventsCommand::Tail { from_start, follow, limit }) => {
            let cursor = if *from_start { "start" } else { "now" };
            if *follow {
                return follow_feed(cli, &client, cursor);
            }
            let page = client.get(&format!("/api/feed?cursor={cursor}&limit={limit}"))?;
            show(cli, &page, pretty);
        }
        _ => {
            return Err(InputError(
                "this command is not available with --url: it needs the store itself (run it where the store is, or stop the application and use --db)".into(),
            )
            .into())
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ledger export` through the API: the same files as from the store. For an export of
/// every run, the proof file is fetched first, so every leaf it lists is a record the
/// export then holds even while the application commits more (those are exported too, not
/// covered by the checkpoint); for one run, after its records.
fn export(cli: &Cli, client: &Client, args: &ExportArgs) -> Result<ExitCode> {
    let bundle = |query: &str| -> Result<ProofBundle> {
        let value = client.get(&format!("/api/log/bundle{query}"))?;
        ProofBundle::from_json(&value.to_string())
            .map_err(|e| anyhow::anyhow!("the server's proof file: {e}"))
    };
    let complete = if args.all { Some(bundle("")?) } else { None };
    let runs = match &args.run {
        Some(run) => vec![run_path(run)?],
        None => {
            let mut runs = Vec::new();
            let mut cursor = String::new();
            loop {
                let page = client.get(&format!(
                    "/api/runs?limit=1000&newest_first=false&cursor={}",
                    enc(&cursor)
                ))?;
                for run in page["runs"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    runs.push(run_path(run["run_id"].as_str().unwrap_or_default())?);
                }
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = next.to_owned(),
                    None => break,
                }
            }
            runs
        }
    };
    let mut export = crate::export::Export::create(args)?;
    let mut last = None;
    for run in &runs {
        let records = client
            .records(run)?
            .iter()
            .map(|line| parse_jsonl_line(&line.to_string()))
            .collect::<Result<Vec<Record>, String>>()
            .map_err(|e| anyhow::anyhow!("GET {run}/records: a record the server sent: {e}"))?;
        last = records.last().map(|r| (r.run_id(), r.seq()));
        export.run(&records)?;
    }
    let proof = match (complete, last) {
        (Some(complete), _) => complete,
        (None, Some((run, seq))) => bundle(&format!("?run={run}&to_seq={seq}"))?,
        (None, None) => bundle("")?,
    };
    export.finish(cli, &proof, |digest| {
        match client.bytes(&format!("/api/artifacts/{digest}")) {
            Ok(bytes) => Ok(Some(checked_artifact(digest, bytes)?)),
            Err(e)
                if e.downcast_ref::<RemoteError>()
                    .is_some_and(|r| r.status == 404) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The bytes the server sent for artifact `digest`, if they are the ones the digest
/// names (checked here too, not only by the server).
fn checked_artifact(digest: &ledgerflow_kernel::Hash, bytes: Vec<u8>) -> Result<Vec<u8>> {
    if blake3::hash(&bytes).as_bytes() != digest.as_bytes() {
        anyhow::bail!("the server sent bytes that do not match artifact {digest}");
    }
    Ok(bytes)
}

fn check(cli: &Cli, client: &Client) -> Result<ExitCode> {
    let report = client.get("/api/check")?;
    let ok = report["ok"] == true;
    show(cli, &report, |r| {
        if ok {
            format!(
                "ok: {} runs, {} records verified; the global log's {} leaves match",
                r["runs"], r["records"], r["log_leaves"]
            )
        } else {
            format!(
                "FAIL: {}",
                r["error"]
                    .as_str()
                    .map_or_else(|| r.to_string(), str::to_owned)
            )
        }
    });
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `events tail --follow` over the server's SSE stream: one line per record.
fn follow_feed(cli: &Cli, client: &Client, cursor: &str) -> Result<ExitCode> {
    let mut request = client
        .agent
        .get(&format!("{}/api/feed/stream?cursor={cursor}", client.base));
    if let Some(token) = &client.token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let response = client.answer_stream(request.call())?;
    for line in BufReader::new(response.into_body().into_reader()).lines() {
        let line = line.context("reading the feed")?;
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let Ok(entry) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        if !entry.is_object() {
            continue;
        }
        if cli.json {
            crate::out!("{entry}");
        } else {
            crate::out!(
                "{:>8} {} {} seq {} {}",
                entry["feed_seq"],
                time(entry["at_ms"].as_i64().unwrap_or_default()),
                entry["run_id"].as_str().unwrap_or_default(),
                entry["seq"],
                entry["kind"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl Client {
    fn answer_stream(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let mut response = response.with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status().as_u16();
        if status >= 400 {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            return Err(remote_error(status, &text));
        }
        Ok(response)
    }
}
