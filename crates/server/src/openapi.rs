//! The OpenAPI 3.1 document of the API, served at `/openapi.json`, built from one table
//! of operations so that it cannot drift from [`crate::ROUTES`] (a test checks both).

use serde_json::{json, Map, Value};

/// One operation of the document.
struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    /// Query parameters: (name, schema).
    query: &'static [(&'static str, &'static str)],
    body: Option<Value>,
    ok: u16,
    response: Value,
    /// Needs the `operate` role.
    operate: bool,
    /// Needs a token (when the server has tokens).
    authenticated: bool,
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn string_or_null() -> Value {
    json!({ "type": ["string", "null"] })
}

fn ops() -> Vec<Op> {
    let run = || schema_ref("Run");
    let page_of = |member: &str, item: Value, next: Value| {
        json!({
            "type": "object",
            "required": [member],
            "properties": { member: { "type": "array", "items": item }, "next": next },
        })
    };
    let checked = || json!({ "type": "object", "required": ["ok"], "properties": { "ok": { "type": "boolean" } } });
    let payload_body = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": { "payload": {} },
    });
    let op = |method, path, summary, query, body, ok, response, operate| Op {
        method,
        path,
        summary,
        query,
        body,
        ok,
        response,
        operate,
        authenticated: true,
    };
    let mut runs_page = page_of("runs", run(), string_or_null());
    runs_page["properties"]["next_cursor"] = string_or_null();
    vec![
        op("get", "/api/runs", "List runs, filtered, newest or oldest first, in pages.",
            &[("status", "status"), ("workflow_id", "string"), ("version", "integer"), ("parent", "uuid"), ("newest_first", "boolean"), ("since_ms", "timestamp"), ("until_ms", "timestamp"), ("cursor", "string"), ("limit", "limit")],
            None, 200, runs_page, false),
        op("post", "/api/runs", "Start a run of a workflow the application registered (live servers only).",
            &[], Some(json!({
                "type": "object", "additionalProperties": false, "required": ["workflow_id", "version"],
                "properties": { "workflow_id": { "type": "string" }, "version": { "type": "integer", "minimum": 0, "maximum": 4294967295u64 }, "input": {} },
            })), 201, run(), true),
        op("get", "/api/runs/counts", "How many runs have each status.", &[], None, 200, json!({
            "type": "object", "required": ["counts", "total"],
            "properties": { "counts": { "type": "object", "additionalProperties": { "type": "integer" } }, "total": { "type": "integer" } },
        }), false),
        op("get", "/api/runs/{id}", "A run's state.", &[], None, 200, run(), false),
        op("get", "/api/runs/{id}/records", "A run's ledger records (the JSONL export format), in pages.",
            &[("from", "integer"), ("limit", "limit")], None, 200, json!({
                "type": "object", "required": ["records", "next_from"],
                "properties": { "records": { "type": "array", "items": schema_ref("Record") }, "next_from": { "type": ["integer", "null"] } },
            }), false),
        op("get", "/api/runs/{id}/snapshots", "A run's snapshots (bookmarks).", &[("tag", "string"), ("limit", "limit")], None, 200,
            page_of("snapshots", schema_ref("Snapshot"), json!({})), false),
        op("post", "/api/runs/{id}/snapshots", "Bookmark the run at its current seq.", &[], Some(json!({
            "type": "object", "additionalProperties": false, "required": ["name"],
            "properties": { "name": { "type": "string", "minLength": 1 }, "description": { "type": "string" }, "tags": { "type": "array", "items": { "type": "string" } } },
        })), 201, schema_ref("Snapshot"), true),
        op("get", "/api/runs/{id}/children", "A run's child runs, in pages.", &[("after", "uuid"), ("limit", "limit")], None, 200, json!({
            "type": "object", "required": ["children", "next_after"],
            "properties": { "children": { "type": "array", "items": { "type": "string", "format": "uuid" } }, "next_after": { "type": ["string", "null"] } },
        }), false),
        op("get", "/api/runs/{id}/verify", "Verify a run's hash chain, its replay and a fork's lineage.", &[], None, 200, checked(), false),
        op("post", "/api/runs/{id}/respond", "Answer what the run waits for (a person or an event), recording who answered.",
            &[], Some(payload_body.clone()), 200, run(), true),
        op("post", "/api/runs/{id}/pause", "Pause the run (recorded with who paused it).", &[], None, 200, run(), true),
        op("post", "/api/runs/{id}/unpause", "Unpause the run.", &[], None, 200, run(), true),
        op("post", "/api/runs/{id}/cancel", "Cancel the run and its descendants (idempotent).", &[], Some(json!({
            "type": "object", "additionalProperties": false, "properties": { "reason": { "type": "string" } },
        })), 200, json!({
            "type": "object", "required": ["changed", "record_seq", "run"],
            "properties": { "changed": { "type": "boolean" }, "record_seq": { "type": "integer" }, "run": run() },
        }), true),
        op("post", "/api/runs/{id}/fork", "Fork the run at a seq or a snapshot.", &[], Some(json!({
            "type": "object", "additionalProperties": false,
            "properties": { "seq": { "type": "integer", "minimum": 0 }, "snapshot": { "type": "string" } },
            "oneOf": [
                { "required": ["seq"], "not": { "required": ["snapshot"] } },
                { "required": ["snapshot"], "not": { "required": ["seq"] } },
            ],
        })), 201, run(), true),
        op("get", "/api/snapshots", "Every run's snapshots (bookmarks), or those with a tag.", &[("tag", "string"), ("limit", "limit")], None, 200,
            page_of("snapshots", schema_ref("Snapshot"), json!({})), false),
        op("post", "/api/events", "Deliver an event to a wait key: resumes the run waiting on it, or queues it in the key's inbox.",
            &[], Some(json!({
                "type": "object", "additionalProperties": false, "required": ["wait_key"],
                "properties": { "wait_key": { "type": "string" }, "payload": {} },
            })), 200, json!({
                "type": "object", "required": ["delivered"],
                "properties": { "delivered": { "enum": ["resumed", "queued"] }, "run": run(), "inbox_seq": { "type": "integer" } },
            }), true),
        op("get", "/api/feed", "Feed entries (every committed record, in commit order) from a cursor.",
            &[("cursor", "string"), ("limit", "limit")], None, 200, json!({
                "type": "object", "required": ["events", "next_cursor", "has_more"],
                "properties": { "events": { "type": "array", "items": schema_ref("FeedEntry") }, "next_cursor": { "type": "string" }, "has_more": { "type": "boolean" } },
            }), false),
        op("get", "/api/feed/stream", "The feed as Server-Sent Events: `record` events, then a `cursor` event (its id resumes the stream with Last-Event-ID).",
            &[("cursor", "string")], None, 200, json!({
                "type": "object",
                "required": ["event", "data"],
                "properties": { "event": { "enum": ["record", "cursor"] }, "data": { "type": "string" }, "id": { "type": "string" } },
            }), false),
        op("get", "/api/check", "Verify the whole store: chains, replays, indexes, the global log. Reads everything.", &[], None, 200, checked(), false),
        op("get", "/api/log/checkpoint", "The latest signed checkpoint of the store's global Merkle log.", &[], None, 200, json!({
            "type": "object", "required": ["tree_size", "root", "note", "signed"],
            "properties": { "origin": { "type": "string" }, "tree_size": { "type": "integer" }, "root": { "type": "string" }, "signed": { "type": "boolean" }, "note": { "type": "string" } },
        }), false),
        op("get", "/api/artifacts/{digest}", "An artifact's bytes (a large value stored apart from the ledger by its BLAKE3 digest).",
            &[], None, 200, json!({ "type": "string", "format": "binary" }), false),
        op("get", "/api/log/prove/{id}", "Inclusion proofs of a run's records (one with seq) in the latest signed checkpoint.",
            &[("seq", "integer")], None, 200, json!({
                "type": "object", "required": ["checkpoint", "tree_size", "root", "proofs", "not_yet_covered"],
                "properties": { "proofs": { "type": "array", "items": { "type": "object", "required": ["run_id", "seq", "record_hash", "leaf_index", "path"] } } },
            }), false),
        op("get", "/api/log/consistency", "The consistency proof from an older tree size to the latest signed checkpoint.",
            &[("old_size", "integer")], None, 200, json!({
                "type": "object", "required": ["old_size", "old_root", "tree_size", "root", "proof", "checkpoint"],
            }), false),
        op("get", "/api/log/bundle", "The proof file of an export (docs/ledger-format.md): of the whole log, or of a run's records 1 to to_seq.",
            &[("run", "uuid"), ("to_seq", "integer")], None, 200, json!({
                "type": "object", "required": ["format", "checkpoint", "public_key", "tree_size", "root", "complete"],
                "properties": {
                    "format": { "const": "ledgerflow.proof.v1" }, "checkpoint": { "type": "string" }, "public_key": { "type": ["string", "null"] },
                    "tree_size": { "type": "integer" }, "root": { "type": "string" }, "complete": { "type": "boolean" },
                    "leaves": { "type": "array", "items": { "type": "array", "items": {}, "minItems": 2, "maxItems": 2 } },
                    "proofs": { "type": "array", "items": { "type": "object", "required": ["run_id", "seq", "leaf_index", "path"] } },
                },
            }), false),
        op("get", "/api/stats", "Runs by status, the feed head, the scheduler's counters.", &[], None, 200, json!({
            "type": "object", "required": ["counts", "total", "mode", "feed_head"],
            "properties": { "mode": { "enum": ["live", "store"] }, "feed_head": { "type": "integer" } },
        }), false),
        op("get", "/metrics", "Prometheus metrics.", &[], None, 200, json!({ "type": "string" }), false),
        Op { authenticated: false, ..op("get", "/health", "Liveness.", &[], None, 200, json!({ "type": "object", "required": ["status"] }), false) },
        Op { authenticated: false, ..op("get", "/ready", "Readiness: a live scheduler has recovered its runs.", &[], None, 200, json!({ "type": "object", "required": ["ready", "mode"] }), false) },
        Op { authenticated: false, ..op("get", "/openapi.json", "This document.", &[], None, 200, json!({ "type": "object" }), false) },
    ]
}

fn parameter_schema(kind: &str) -> Value {
    match kind {
        "status" => json!({ "enum": ["running", "waiting", "completed", "failed", "cancelled"] }),
        "uuid" => json!({ "type": "string", "format": "uuid" }),
        "limit" => json!({ "type": "integer", "minimum": 1, "maximum": 1000 }),
        "integer" => json!({ "type": "integer", "minimum": 0 }),
        "timestamp" => json!({ "type": "integer" }),
        other => json!({ "type": other }),
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": schema_ref("Error") } },
    })
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in ops() {
        let mut parameters: Vec<Value> = op
            .query
            .iter()
            .map(|(name, kind)| json!({ "name": name, "in": "query", "required": false, "schema": parameter_schema(kind) }))
            .collect();
        if op.path.contains("{id}") {
            parameters.insert(0, json!({ "name": "id", "in": "path", "required": true, "schema": parameter_schema("uuid") }));
        }
        if op.path.contains("{digest}") {
            parameters.insert(0, json!({ "name": "digest", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[0-9a-f]{64}$" } }));
        }
        let media = match op.path {
            "/metrics" => "text/plain",
            "/api/feed/stream" => "text/event-stream",
            "/api/artifacts/{digest}" => "application/octet-stream",
            _ => "application/json",
        };
        let mut responses = Map::new();
        responses.insert(
            op.ok.to_string(),
            json!({ "description": "done", "content": { media: { "schema": op.response } } }),
        );
        responses.insert(
            "400".into(),
            error_response("bad input: a parameter, the body, a limit"),
        );
        if op.path.contains("{id}")
            || op.path.contains("{digest}")
            || op.path.starts_with("/api/log/")
        {
            responses.insert(
                "404".into(),
                error_response("no such run or artifact, or no checkpoint yet"),
            );
        }
        if op.authenticated {
            responses.insert("401".into(), error_response("no token, or an unknown one"));
        }
        if op.operate {
            responses.insert("403".into(), error_response("the token has the read role"));
            responses.insert(
                "409".into(),
                error_response("the run's state does not allow it"),
            );
        }
        if op.body.is_some() {
            responses.insert("413".into(), error_response("the body is over the limit"));
            responses.insert(
                "415".into(),
                error_response("the body is not application/json"),
            );
        }
        if op.path == "/ready" {
            responses.insert("503".into(), json!({ "description": "not ready yet", "content": { "application/json": { "schema": op_schema_ready() } } }));
        }
        responses.insert("429".into(), error_response("over the rate limit"));
        let mut operation = json!({
            "summary": op.summary,
            "operationId": format!("{} {}", op.method, op.path),
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(body) = op.body {
            // A body with required members must be sent; the others may be left out.
            let required = body.get("required").is_some() || body.get("oneOf").is_some();
            operation["requestBody"] = json!({
                "required": required,
                "content": { "application/json": { "schema": body } },
            });
        }
        if !op.authenticated {
            operation["security"] = json!([]);
        }
        let entry = paths
            .entry(op.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[op.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ledgerflow",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Runs, ledgers, operator actions, verification and the event feed of a ledgerflow store. Errors are {code, message}.",
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" } },
                },
                "Run": {
                    "type": "object",
                    "required": ["run_id", "workflow_id", "version", "status", "paused", "seq", "head_hash", "vars"],
                    "properties": {
                        "run_id": { "type": "string", "format": "uuid" },
                        "workflow_id": { "type": "string" },
                        "version": { "type": "integer" },
                        "status": parameter_schema("status"),
                        "paused": { "type": "boolean" },
                        "seq": { "type": "integer" },
                        "head_hash": { "type": "string" },
                        "node": string_or_null(),
                        "waiting": { "type": ["object", "null"] },
                        "vars": { "type": "object" },
                    },
                },
                "Record": {
                    "type": "object",
                    "required": ["run_id", "seq", "at_ms", "kind", "body", "prev_hash", "state_hash", "hash"],
                    "properties": {
                        "run_id": { "type": "string" }, "seq": { "type": "integer" }, "at_ms": { "type": "integer" },
                        "kind": { "type": "string" }, "body": {}, "prev_hash": { "type": "string" },
                        "state_hash": { "type": "string" }, "hash": { "type": "string" },
                    },
                },
                "Snapshot": {
                    "type": "object", "required": ["run_id", "name", "seq", "record_hash", "tags"],
                    "properties": { "run_id": { "type": "string" }, "name": { "type": "string" }, "seq": { "type": "integer" }, "record_hash": { "type": "string" }, "tags": { "type": "array", "items": { "type": "string" } } },
                },
                "FeedEntry": {
                    "type": "object", "required": ["feed_seq", "run_id", "seq", "kind", "at_ms"],
                    "properties": { "feed_seq": { "type": "integer" }, "run_id": { "type": "string" }, "seq": { "type": "integer" }, "kind": { "type": "string" }, "at_ms": { "type": "integer" } },
                },
            },
        },
    })
}

fn op_schema_ready() -> Value {
    json!({ "type": "object", "required": ["ready", "mode"] })
}
