//! How the command prints: JSON documents for `--json`, aligned tables for people, and
//! every line through [`line`], which ends the process quietly when stdout is closed.

use ledgerflow_kernel::{Record, RunState};
use serde_json::Value;

/// The exit status when stdout is closed under us (`ledgerflow runs list | head -1`):
/// 128 + SIGPIPE, what a Unix tool killed by SIGPIPE reports.
pub const EXIT_STDOUT_CLOSED: i32 = 141;

/// Writes one line to stdout. When the reader has gone away (a closed pipe), the process
/// ends at once, quietly, with [`EXIT_STDOUT_CLOSED`], as other Unix tools do; any other
/// write error ends it with a one-line message and status 1.
pub fn line(text: std::fmt::Arguments<'_>) {
    bytes(format!("{text}\n").as_bytes());
}

/// Writes raw bytes to stdout, ending the process as [`line`] does when that fails.
pub fn bytes(data: &[u8]) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(data).and_then(|()| stdout.flush()) {
        // `exit` runs no destructors: remove the store copies a read command made first.
        ledgerflow_sled::remove_inspection_copies();
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(EXIT_STDOUT_CLOSED);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` through [`line`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC text.
pub fn time(at_ms: i64) -> String {
    ledgerflow_server::json::time(at_ms)
}

/// The JSON object of a run in listings and `runs show`: the API's, so `--db` and
/// `--url` print the same.
pub fn run_json(state: &RunState) -> Value {
    ledgerflow_server::json::run(state)
}

/// A record as one JSONL export object.
pub fn record_json(record: &Record) -> Value {
    ledgerflow_ledger::record_json(record)
}

/// Prints rows under headers with columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        crate::out!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Prints one JSON document.
pub fn print_json(value: &Value) {
    crate::out!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// The text of a JSON string member, or "".
fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// Prints a page of runs in the API's form (`{runs, next_cursor}`): the JSON, or a table
/// and the cursor of the next page. One printer for `--db` and `--url`.
pub fn runs_page(json: bool, page: &Value) {
    if json {
        print_json(page);
        return;
    }
    let rows: Vec<Vec<String>> = page["runs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            vec![
                text(&r["run_id"]).to_owned(),
                format!("{}@{}", text(&r["workflow_id"]), r["version"]),
                format!(
                    "{}{}",
                    text(&r["status"]),
                    if r["paused"] == true { " (paused)" } else { "" }
                ),
                r["seq"].to_string(),
                time(r["created_at_ms"].as_i64().unwrap_or_default()),
                time(r["updated_at_ms"].as_i64().unwrap_or_default()),
            ]
        })
        .collect();
    table(
        &["RUN", "WORKFLOW", "STATUS", "SEQ", "CREATED", "UPDATED"],
        &rows,
    );
    if let Some(next) = page["next_cursor"].as_str() {
        crate::out!("more: --cursor {next}");
    }
}

/// Prints snapshots in the API's form: a JSON array, or a table.
pub fn snapshots(json: bool, list: &[Value]) {
    if json {
        print_json(&Value::Array(list.to_vec()));
        return;
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            let tags: Vec<&str> = s["tags"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            vec![
                text(&s["run_id"]).to_owned(),
                text(&s["name"]).to_owned(),
                s["seq"].to_string(),
                tags.join(","),
                text(&s["description"]).to_owned(),
            ]
        })
        .collect();
    table(&["RUN", "NAME", "SEQ", "TAGS", "DESCRIPTION"], &rows);
}

/// `text` cut to `max` characters, with `…` where it was cut.
pub fn truncated(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The most characters of a record's body `ledger show` prints in its table.
const BODY_CHARS_MAX: usize = 80;

/// The most characters of a prompt or an answer `ledger show` prints.
const TEXT_CHARS_MAX: usize = 240;

/// A record's body as `ledger show` prints it in its table: an agent effect's request
/// and response as a person reads them (the model, the last message, the answer, the
/// tool calls and their results); any other body as JSON, cut to a line.
pub fn body_summary(kind: &str, body: &Value) -> String {
    agent_summary(kind, body)
        .map(|text| truncated(&text, TEXT_CHARS_MAX))
        .unwrap_or_else(|| truncated(&body.to_string(), BODY_CHARS_MAX))
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn calls_of(calls: &Value) -> String {
    let calls: Vec<String> = calls
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| format!("{}({})", text_of(&c["name"]), c["arguments"]))
                .collect()
        })
        .unwrap_or_default();
    calls.join(", ")
}

fn agent_summary(kind: &str, body: &Value) -> Option<String> {
    match kind {
        "effect_requested" => {
            let payload = &body["effect"]["payload"];
            match body["effect"]["kind"].as_str()? {
                "llm_call" => {
                    let last = payload["messages"].as_array()?.last()?;
                    let said = match &last["content"] {
                        Value::Null => format!("calls {}", calls_of(&last["tool_calls"])),
                        content => text_of(content),
                    };
                    Some(format!(
                        "llm_call {} ({} messages), last {}: {said}",
                        text_of(&payload["model"]),
                        payload["messages"].as_array()?.len(),
                        text_of(&last["role"]),
                    ))
                }
                "tool_calls" => Some(format!("tool_calls {}", calls_of(&payload["calls"]))),
                _ => None,
            }
        }
        "effect_completed" => {
            let result = &body["result"];
            if result.get("finish_reason").is_some() && result.get("provider").is_some() {
                let said = match (&result["content"], result["tool_calls"].as_array()) {
                    (Value::String(text), _) => text.clone(),
                    (_, Some(calls)) if !calls.is_empty() => {
                        format!("calls {}", calls_of(&result["tool_calls"]))
                    }
                    _ => String::new(),
                };
                Some(format!(
                    "answer from {} ({} tokens, {} ms, {}): {said}",
                    text_of(&result["model"]),
                    result["usage"]["total_tokens"],
                    result["latency_ms"],
                    text_of(&result["finish_reason"]),
                ))
            } else if let Some(results) = result.get("results").and_then(Value::as_array) {
                let shown: Vec<String> = results
                    .iter()
                    .map(|r| match r.get("error") {
                        Some(error) => {
                            format!("{} failed {}", text_of(&r["name"]), text_of(&error["code"]))
                        }
                        None => format!("{} → {}", text_of(&r["name"]), r["output"]),
                    })
                    .collect();
                Some(format!("tool results: {}", shown.join("; ")))
            } else {
                None
            }
        }
        _ => None,
    }
}
