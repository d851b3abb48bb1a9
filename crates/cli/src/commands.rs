//! What each subcommand does, over the libraries. Errors carry one line of context for
//! the user; verification failures return exit code 1 after printing the bad record.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use ledgerflow::{open_store, OpenMode, SledConfig, SnapshotFilter, StoreChoice};
use ledgerflow_kernel::{
    Delivered, Engine, EngineConfig, Record, RunId, RunQuery, RunStatus, Store,
};
use ledgerflow_ledger::{import_jsonl, verify_chain, verify_lineage};
use ledgerflow_scheduler::SystemClock;
use serde_json::{json, Value};

use crate::errors::InputError;
use crate::output::{print_json, record_json, run_json, table, time};
use crate::{
    Cli, Command, EventsCommand, LedgerCommand, Order, PayloadArgs, RunsCommand, SnapshotCommand,
    VerifyArgs,
};

/// The store and an engine that runs no steps: this command records resumptions and
/// operator actions; the application that has the workflow code carries the runs on.
struct Opened {
    store: Arc<dyn Store>,
    engine: Engine,
}

/// Opens the store: for commands that only read, a copy of it (the store's files are
/// never changed, even by sled's recovery of a damaged file); for the others, the store.
fn open(cli: &Cli) -> Result<Opened> {
    let location = cli.db().map_err(|e| InputError(e.to_string()))?;
    let mode = if cli.command.only_reads() {
        OpenMode::Inspect
    } else {
        OpenMode::Existing
    };
    let config = SledConfig::default();
    let store = open_store(&location, mode, config.limits, config)
        .with_context(|| format!("cannot open the store at {}", shown(&location)))?;
    let config = EngineConfig {
        steps_per_tick_max: 0,
        ..EngineConfig::default()
    };
    let engine = Engine::with_config(Arc::clone(&store), Arc::new(SystemClock), config);
    Ok(Opened { store, engine })
}

/// A store's location as messages show it: a sled directory as its path.
pub fn shown(location: &StoreChoice) -> String {
    match location {
        StoreChoice::Sled(dir) => dir.display().to_string(),
        other => other.to_string(),
    }
}

/// A run id, or an unambiguous prefix of one (at least 4 hex digits; dashes as in the
/// full id are optional).
pub fn run_id(store: &dyn Store, text: &str) -> Result<RunId> {
    if let Ok(id) = text.parse::<RunId>() {
        return Ok(id);
    }
    let invalid = |message: String| anyhow::Error::new(InputError(message));
    let digits: String = text
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    if digits.len() < 4 || digits.len() >= 32 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(format!(
            "invalid run id {text:?}: expected a UUID, or at least its first 4 hex digits"
        )));
    }
    let low =
        u128::from_str_radix(&format!("{digits:0<32}"), 16).map_err(|e| invalid(e.to_string()))?;
    let after = low
        .checked_sub(1)
        .map(|id| RunId::from_bytes(id.to_be_bytes()));
    let candidates = store.list_runs(None, after, 2)?;
    let matching: Vec<RunId> = candidates
        .into_iter()
        .filter(|id| id.to_string().replace('-', "").starts_with(&digits))
        .collect();
    match matching.as_slice() {
        [one] => Ok(*one),
        [] => Err(invalid(format!("no run id starts with {text:?}"))),
        [first, second, ..] => Err(invalid(format!(
            "run id prefix {text:?} is ambiguous: {first}, {second}, …; give more digits"
        ))),
    }
}

/// The JSON of `--payload` or `--payload-file` (`-`: standard input).
pub(crate) fn payload(args: &PayloadArgs) -> Result<Value> {
    let (text, from) = match (&args.payload, &args.payload_file) {
        (Some(text), _) => (text.clone(), "--payload".to_owned()),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("reading the payload from standard input")?;
            (text, "standard input".to_owned())
        }
        (None, Some(path)) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the payload from {}", path.display()))?,
            path.display().to_string(),
        ),
        (None, None) => {
            return Err(InputError("give --payload JSON or --payload-file PATH".into()).into())
        }
    };
    serde_json::from_str(&text)
        .map_err(|e| InputError(format!("invalid JSON payload in {from}: {e}")).into())
}

/// A time for `--since` / `--until`: RFC 3339, or milliseconds since the Unix epoch.
pub(crate) fn time_arg(flag: &str, text: &str) -> Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            InputError(format!(
                "{flag} {text:?}: not an RFC 3339 time (2026-11-22T10:00:00Z) or milliseconds: {e}"
            ))
            .into()
        })
}

fn status(text: &str) -> Result<RunStatus> {
    RunStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| InputError(format!("unknown status {text:?}: expected running, waiting, completed, failed or cancelled")).into())
}

fn check_limit(limit: usize, store: &dyn Store) -> Result<()> {
    let max = store.limits().read_items_max;
    if limit == 0 || limit > max {
        return Err(InputError(format!("--limit must be between 1 and {max}, got {limit}")).into());
    }
    Ok(())
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Ledger(LedgerCommand::Verify(args)) = &cli.command {
        if let Some(path) = &args.file {
            // Offline: an export verifies without a store (or a server).
            return verify_file(&cli, path, args);
        }
    }
    if let Some(url) = cli.url.as_deref() {
        if cli.db.is_some() {
            return Err(InputError("give --db or --url, not both".into()).into());
        }
        if matches!(cli.command, Command::Bench(_) | Command::Serve(_)) {
            return Err(
                InputError("bench and serve work on a store, not through --url".into()).into(),
            );
        }
        return crate::remote::run(&cli, url);
    }
    if let Command::Bench(args) = &cli.command {
        if cli.db.is_some() {
            return Err(InputError(
                "bench makes fresh stores of its own and does not use --db; give --bench-db DIR to choose where they go".into(),
            )
            .into());
        }
        let result = crate::bench::run(args)?;
        if cli.json {
            crate::out!("{result}");
        } else {
            crate::bench::print_table(&result);
        }
        return Ok(ExitCode::SUCCESS);
    }
    run_on_store(&cli, open(&cli)?)
}

/// `ledgerflow serve`: the store over HTTP until the process is stopped. The engine runs
/// no steps (as every command's): the application carries the runs on.
fn serve(cli: &Cli, engine: Engine, args: &crate::ServeArgs) -> Result<ExitCode> {
    let tokens = args
        .tokens
        .as_deref()
        .map(ledgerflow_server::Tokens::from_file)
        .transpose()
        .map_err(|e| InputError(e.to_string()))?;
    let config = ledgerflow_server::ServerConfig {
        listen: args.listen,
        tokens,
        body_bytes_max: args.body_bytes_max,
        requests_per_s_max: args.requests_per_s_max,
        cors_origins: args.cors_origins.clone(),
        ..ledgerflow_server::ServerConfig::default()
    };
    let backend = ledgerflow_server::Backend::store(Arc::new(engine));
    let server = ledgerflow_server::Server::start(backend, config).map_err(|e| match e {
        ledgerflow_server::ServerError::Bind { .. } => anyhow!(e),
        other => InputError(other.to_string()).into(),
    })?;
    let location = shown(&cli.db()?);
    if cli.json {
        // One line, so a process that started the server can read its address.
        crate::out!(
            "{}",
            json!({ "listening": server.addr().to_string(), "db": location })
        );
    } else {
        crate::out!(
            "serving {location} on http://{}/ (API at /api, OpenAPI at /openapi.json)",
            server.addr()
        );
    }
    server.wait();
    Ok(ExitCode::SUCCESS)
}

fn run_on_store(cli: &Cli, opened: Opened) -> Result<ExitCode> {
    let Opened { store, engine } = opened;
    match &cli.command {
        Command::Runs(RunsCommand::List { status: wanted, workflow, order, since, until, limit, cursor }) => {
            check_limit(*limit, store.as_ref())?;
            let since = since.as_deref().map(|t| time_arg("--since", t)).transpose()?;
            let until = until.as_deref().map(|t| time_arg("--until", t)).transpose()?;
            let created_ms = (since.is_some() || until.is_some()).then(|| (since.unwrap_or(i64::MIN), until.unwrap_or(i64::MAX)));
            let query = RunQuery {
                status: wanted.as_deref().map(status).transpose()?,
                workflow_id: workflow.clone(),
                created_ms,
                newest_first: *order == Order::Newest,
                ..RunQuery::default()
            };
            let query = match order {
                // Oldest first: the created-time index, ascending.
                Order::Oldest => RunQuery { created_ms: Some(created_ms.unwrap_or((i64::MIN, i64::MAX))), ..query },
                Order::Newest => query,
            };
            let page = engine.query_runs(&query, cursor.as_deref(), *limit)?;
            crate::output::runs_page(
                cli.json,
                &json!({ "runs": page.runs.iter().map(run_json).collect::<Vec<_>>(), "next_cursor": page.next_cursor }),
            );
        }
        Command::Runs(RunsCommand::Show { run }) => {
            let state = engine.load(run_id(store.as_ref(), run)?)?;
            if cli.json {
                print_json(&run_json(&state));
            } else {
                let value = run_json(&state);
                if let Value::Object(fields) = value {
                    for (key, value) in fields {
                        if !value.is_null() {
                            crate::out!("{key:>14}: {}", if let Value::String(s) = &value { s.clone() } else { value.to_string() });
                        }
                    }
                }
            }
        }
        Command::Ledger(LedgerCommand::Show { run }) => {
            let records = all_records(&engine, run_id(store.as_ref(), run)?)?;
            if cli.json {
                print_json(&Value::Array(records.iter().map(record_json).collect()));
            } else {
                let rows: Vec<Vec<String>> = records
                    .iter()
                    .map(|r| vec![r.seq().to_string(), time(r.at_ms()), r.kind().to_owned(), r.hash().to_hex()[..16].to_owned(), crate::output::body_summary(r.kind(), r.body())])
                    .collect();
                table(&["SEQ", "AT", "KIND", "HASH", "BODY"], &rows);
            }
        }
        Command::Ledger(LedgerCommand::Verify(args)) => {
            let runs = match &args.run {
                Some(run) => vec![run_id(store.as_ref(), run)?],
                None => all_run_ids(store.as_ref())?,
            };
            return verify_runs(cli, &engine, &runs, args.verbose || args.run.is_some());
        }
        Command::Ledger(LedgerCommand::Export(args)) => {
            let runs = match &args.run {
                Some(run) => vec![run_id(store.as_ref(), run)?],
                None => all_run_ids(store.as_ref())?,
            };
            let mut export = crate::export::Export::create(args)?;
            for run in &runs {
                export.run(&all_records(&engine, *run)?)?;
            }
            let proof = crate::log::export_proof(cli, store.as_ref(), (!args.all).then(|| export.exported()))?;
            export.finish(cli, &proof, |digest| Ok(store.get_artifact(digest)?))?;
        }
        Command::Log(command) => return crate::log::run(cli, store.as_ref(), command),
        Command::Artifact(crate::ArtifactCommand::Get { digest, out }) => {
            let hash: ledgerflow_kernel::Hash = digest.parse().map_err(|_| InputError(format!("{digest:?} is not a digest (64 hex digits)")))?;
            let bytes = store.get_artifact(&hash)?.ok_or_else(|| InputError(format!("no artifact {digest} in the store (never stored, or purged)")))?;
            match out {
                Some(path) => {
                    std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
                    report(cli, json!({ "digest": digest, "size": bytes.len(), "out": path }), &format!("wrote {} bytes of artifact {digest} to {}", bytes.len(), path.display()));
                }
                None => crate::output::bytes(&bytes),
            }
        }
        Command::Events(EventsCommand::Tail { from_start, follow, limit }) => {
            check_limit(*limit, store.as_ref())?;
            let mut cursor = if *from_start { engine.cursor_from_start() } else { engine.cursor_tail(*limit as u64)? };
            let mut printed = Vec::new();
            loop {
                let page = engine.read_events(&cursor, *limit)?;
                for event in &page.events {
                    if cli.json {
                        printed.push(json!({ "feed_seq": event.feed_seq, "run_id": event.run_id, "seq": event.seq, "kind": event.kind, "at": time(event.at_ms) }));
                    } else {
                        crate::out!("{:>8}  {}  {}  {:>5}  {}", event.feed_seq, time(event.at_ms), event.run_id, event.seq, event.kind);
                    }
                }
                cursor = page.next_cursor;
                if page.has_more {
                    continue;
                }
                if !*follow {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            if cli.json {
                print_json(&json!({ "events": printed, "next_cursor": cursor.to_string() }));
            }
        }
        Command::Emit { wait_key, payload: text } => match engine.deliver(wait_key, payload(text)?)? {
            Delivered::Resumed(state) => report(
                cli,
                json!({ "delivered": "resumed", "run_id": state.run_id, "status": state.status }),
                &format!("resumed run {} (now {}); it carries on when your application ticks it", state.run_id, state.status),
            ),
            Delivered::Queued(seq) => report(
                cli,
                json!({ "delivered": "queued", "wait_key": wait_key, "inbox_seq": seq }),
                &format!("no run waits on {wait_key:?}: the event is queued in its inbox (entry {seq}) for the next run that waits on it"),
            ),
        },
        Command::Respond { run, payload: text } => {
            let run = run_id(store.as_ref(), run)?;
            let value = payload(text)?;
            let key = engine.load(run)?.respond_key().map(str::to_owned);
            let state = engine.respond(run, value)?;
            let key = key.unwrap_or_default();
            report(cli, run_json(&state), &format!("run {run} resumed on {key} (now {}); it carries on when your application ticks it", state.status));
        }
        Command::Pause { run } => {
            let state = engine.pause(run_id(store.as_ref(), run)?)?;
            report(cli, run_json(&state), &format!("run {} paused", state.run_id));
        }
        Command::Unpause { run } => {
            let state = engine.unpause(run_id(store.as_ref(), run)?)?;
            report(cli, run_json(&state), &format!("run {} unpaused ({})", state.run_id, state.status));
        }
        Command::Cancel { run, reason } => {
            let root = run_id(store.as_ref(), run)?;
            let cascade = engine.cancel_cascade(root, reason, store.limits().read_items_max)?;
            let (outcome, cancelled) = (cascade.root, cascade.children_cancelled);
            let message = if outcome.changed {
                format!("run {root} cancelled ({} child runs too)", cancelled.len())
            } else {
                format!("run {root} had already ended ({}); nothing changed", outcome.state.status)
            };
            report(cli, json!({ "run_id": root, "status": outcome.state.status, "changed": outcome.changed, "record_seq": outcome.record.seq(), "children_cancelled": cancelled }), &message);
        }
        Command::Snapshot(SnapshotCommand::Create { run, name, tags, description }) => {
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            let snapshot = engine.create_snapshot(run_id(store.as_ref(), run)?, name, description, &tags)?;
            report(cli, json!({ "run_id": snapshot.run_id, "name": snapshot.name, "seq": snapshot.seq, "record_hash": snapshot.record_hash, "tags": snapshot.tags }), &format!("snapshot {:?} of run {} at seq {}", snapshot.name, snapshot.run_id, snapshot.seq));
        }
        Command::Snapshot(SnapshotCommand::List { run, tag, limit }) => {
            check_limit(*limit, store.as_ref())?;
            let filter = SnapshotFilter { run_id: run.as_deref().map(|r| run_id(store.as_ref(), r)).transpose()?, tag: tag.clone(), name_contains: None };
            let snapshots = engine.list_snapshots(&filter, *limit)?;
            crate::output::snapshots(cli.json, &snapshots.iter().map(ledgerflow_server::json::snapshot).collect::<Vec<_>>());
        }
        Command::Fork(args) => {
            let run = run_id(store.as_ref(), &args.run)?;
            let seq = match (&args.at, &args.snapshot) {
                (Some(seq), _) => *seq,
                (None, Some(name)) => engine.snapshot(run, name)?.seq,
                (None, None) => bail!("give --at SEQ or --snapshot NAME"),
            };
            let fork = engine.fork(run, seq)?;
            let state = engine.load(fork)?;
            report(cli, json!({ "run_id": fork, "forked_from": run, "at_seq": seq, "status": state.status }), &format!("forked run {run} at seq {seq} as run {fork} ({})", state.status));
        }
        Command::Check => {
            let report_value = store.check();
            match report_value {
                Ok(checked) if !checked.orphaned_inboxes.is_empty() => {
                    if cli.json {
                        print_json(&ledgerflow_server::json::check_report(&checked));
                    } else {
                        crate::out!("FAIL: {} inboxes hold events no run can ever consume (the run that could wait on the key no longer does):", checked.orphaned_inboxes.len());
                        for (key, events) in &checked.orphaned_inboxes {
                            crate::out!("  {key}: {events} events");
                        }
                    }
                    return Ok(ExitCode::FAILURE);
                }
                Ok(checked) => report(cli, ledgerflow_server::json::check_report(&checked), &format!("ok: {} runs, {} records verified; replay equals stored state; indexes agree; the global log's {} leaves match the records; no orphaned inbox", checked.runs, checked.records, checked.log_leaves)),
                Err(e) => {
                    if cli.json {
                        print_json(&json!({ "ok": false, "error": e.to_string() }));
                    } else {
                        crate::out!("FAIL: {e}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Command::Bench(_) => {}
        Command::Serve(args) => return serve(cli, engine, args),
        Command::Stats => {
            let counts: BTreeMap<String, u64> = engine.count_by_status()?.into_iter().map(|(s, n)| (s.to_string(), n)).collect();
            let events = store.feed_head()?;
            let inbox_keys = store.inbox_keys(None, store.limits().read_items_max)?.len();
            if cli.json {
                print_json(&json!({ "runs_by_status": counts, "events": events, "inbox_keys": inbox_keys, "db": cli.db()?.to_string() }));
            } else {
                let rows: Vec<Vec<String>> = counts.iter().map(|(s, n)| vec![s.clone(), n.to_string()]).collect();
                table(&["STATUS", "RUNS"], &rows);
                crate::out!("events in feed: {events}; wait_keys with queued events: {inbox_keys}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `value` with `--json`, else `text`.
pub(crate) fn report(cli: &Cli, value: Value, text: &str) {
    if cli.json {
        print_json(&value);
    } else {
        crate::out!("{text}");
    }
}

fn all_run_ids(store: &dyn Store) -> Result<Vec<RunId>> {
    let page = store.limits().read_items_max;
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let ids = store.list_runs(None, after, page)?;
        out.extend(&ids);
        if ids.len() < page {
            return Ok(out);
        }
        after = ids.last().copied();
    }
}

fn all_records(engine: &Engine, run: RunId) -> Result<Vec<Record>> {
    engine.load(run)?;
    Ok(ledgerflow_kernel::store::read_all_records(
        engine.store().as_ref(),
        run,
    )?)
}

fn verify_runs(cli: &Cli, engine: &Engine, runs: &[RunId], verbose: bool) -> Result<ExitCode> {
    let mut results = Vec::new();
    let mut failed = false;
    for run in runs {
        match engine.verify_run(*run) {
            Ok(state) => results.push(json!({ "run_id": run, "ok": true, "records": state.head.seq, "head": state.head.hash })),
            Err(e) => {
                failed = true;
                let seq = failing_seq(&e);
                results.push(json!({ "run_id": run, "ok": false, "seq": seq, "reason": e.to_string() }));
            }
        }
    }
    print_verification(cli, &results, verbose, None);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The seq a verification error names, if it names one.
fn failing_seq(error: &ledgerflow_kernel::Error) -> Option<u64> {
    match error {
        ledgerflow_kernel::Error::Replay(ledgerflow_kernel::ReplayError::Chain(e)) => Some(e.seq),
        ledgerflow_kernel::Error::Replay(
            ledgerflow_kernel::ReplayError::Undecodable { seq, .. }
            | ledgerflow_kernel::ReplayError::Invalid { seq, .. }
            | ledgerflow_kernel::ReplayError::StateMismatch { seq, .. },
        ) => Some(*seq),
        _ => None,
    }
}

/// Prints what a verification found: a summary and every failure, and with `verbose` a
/// line (or, with `--json`, an entry under `runs`) for every run.
fn print_verification(
    cli: &Cli,
    results: &[Value],
    verbose: bool,
    log: Option<&crate::log::ExportCheck>,
) {
    let failures: Vec<&Value> = results.iter().filter(|r| r["ok"] != json!(true)).collect();
    let records: u64 = results.iter().filter_map(|r| r["records"].as_u64()).sum();
    let log_failed = log.is_some_and(|l| l.failed);
    if cli.json {
        let mut summary = json!({
            "ok": failures.is_empty() && !log_failed,
            "runs_verified": results.len(),
            "runs_failed": failures.len(),
            "records": records,
            "failures": failures,
        });
        if verbose {
            summary["runs"] = Value::Array(results.to_vec());
        }
        if let Some(log) = log {
            summary["log"] = log.json.clone();
        }
        print_json(&summary);
        return;
    }
    for r in results {
        if r["ok"] == json!(true) {
            if verbose {
                crate::out!(
                    "ok    run {}: {} records, head {}",
                    str_of(&r["run_id"]),
                    r["records"],
                    str_of(&r["head"])
                );
            }
        } else {
            let seq = if r["seq"].is_null() {
                "?".to_owned()
            } else {
                r["seq"].to_string()
            };
            crate::out!(
                "FAIL  run {} seq {}: {}",
                str_of(&r["run_id"]),
                seq,
                str_of(&r["reason"])
            );
        }
    }
    for line in log.map(|l| l.lines.as_slice()).unwrap_or_default() {
        crate::out!("{line}");
    }
    let verdict = if failures.is_empty() && !log_failed {
        "ok"
    } else {
        "FAIL"
    };
    crate::out!(
        "{verdict}: {} runs verified ({records} records), {} failed",
        results.len(),
        failures.len()
    );
}

fn str_of(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

fn verify_file(cli: &Cli, path: &std::path::Path, args: &VerifyArgs) -> Result<ExitCode> {
    let verbose = args.verbose;
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let records = import_jsonl(BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    // Runs in the order they first appear, each with its records.
    let mut runs: Vec<(RunId, Vec<Record>)> = Vec::new();
    let mut index: std::collections::HashMap<RunId, usize> = std::collections::HashMap::new();
    for record in records {
        let slot = *index.entry(record.run_id()).or_insert_with(|| {
            runs.push((record.run_id(), Vec::new()));
            runs.len() - 1
        });
        runs[slot].1.push(record);
    }
    let mut failed = false;
    let mut results: Vec<Value> = runs
        .iter()
        .map(|(run, records)| match verify_chain(records) {
            // The chain holds: replay it, which recomputes every record's state_hash.
            Ok(head) => match ledgerflow_kernel::replay(records) {
                Ok(_) => json!({ "run_id": run, "ok": true, "records": records.len(), "head": head.map(|h| h.hash) }),
                Err(e) => {
                    failed = true;
                    json!({ "run_id": run, "ok": false, "seq": e.seq(), "reason": format!("replay: {e}") })
                }
            },
            Err(e) => {
                failed = true;
                json!({ "run_id": run, "ok": false, "seq": e.seq, "reason": e.fault.to_string() })
            }
        })
        .collect();
    if results.is_empty() {
        bail!("{} holds no records", path.display());
    }
    let all: Vec<Record> = runs.into_iter().flat_map(|(_, records)| records).collect();
    // Forks and subworkflows cite a record of their parent: check it when the parent is here.
    let lineage = verify_lineage(&all);
    for fault in &lineage.faults {
        failed = true;
        if let Some(result) = results
            .iter_mut()
            .find(|r| r["run_id"] == json!(fault.run_id))
        {
            *result = json!({ "run_id": fault.run_id, "ok": false, "seq": 1, "reason": format!("lineage: {}", fault.reason) });
        }
    }
    let mut coverage = crate::log::verify_export_proof(path, args, &all)?;
    crate::log::verify_export_artifacts(path, &all, &mut coverage)?;
    failed |= coverage.failed;
    print_verification(cli, &results, verbose, Some(&coverage));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
