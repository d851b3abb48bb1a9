//! The routes of `/api` and their handlers: reads, operator actions, verification, the
//! feed, stats. Every store call runs on tokio's blocking pool (store IO and fsyncs must
//! not stall the async workers).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use ledgerflow_kernel::{
    Delivered, FeedCursor, RunId, RunQuery, RunStatus, SnapshotFilter, WorkflowKey,
};
use ledgerflow_ledger::merkle::tree_hash_hex;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::backend::Backend;
use crate::error::{ApiError, ApiResult};
use crate::extract::{run_id, JsonBody, Operator, Params};
use crate::json;
use crate::AppState;

/// Items a page holds when the request names no `limit`.
const PAGE_ITEMS_DEFAULT: usize = 100;

/// Every route the server answers, as (method, path in OpenAPI form): the OpenAPI
/// document describes exactly these (a test checks both ways).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/runs"),
    ("post", "/api/runs"),
    ("get", "/api/runs/counts"),
    ("get", "/api/runs/{id}"),
    ("get", "/api/runs/{id}/records"),
    ("get", "/api/runs/{id}/snapshots"),
    ("post", "/api/runs/{id}/snapshots"),
    ("get", "/api/runs/{id}/children"),
    ("get", "/api/runs/{id}/verify"),
    ("post", "/api/runs/{id}/respond"),
    ("post", "/api/runs/{id}/pause"),
    ("post", "/api/runs/{id}/unpause"),
    ("post", "/api/runs/{id}/cancel"),
    ("post", "/api/runs/{id}/fork"),
    ("get", "/api/snapshots"),
    ("post", "/api/events"),
    ("get", "/api/feed"),
    ("get", "/api/feed/stream"),
    ("get", "/api/check"),
    ("get", "/api/artifacts/{digest}"),
    ("get", "/api/log/checkpoint"),
    ("get", "/api/log/prove/{id}"),
    ("get", "/api/log/consistency"),
    ("get", "/api/log/bundle"),
    ("get", "/api/stats"),
    ("get", "/metrics"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/openapi.json"),
];

/// The `/api` routes (auth is a layer the caller adds).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/runs", get(list_runs).post(start_run))
        .route("/api/runs/counts", get(counts))
        .route("/api/runs/{id}", get(show_run))
        .route("/api/runs/{id}/records", get(records))
        .route(
            "/api/runs/{id}/snapshots",
            get(snapshots).post(create_snapshot),
        )
        .route("/api/runs/{id}/children", get(children))
        .route("/api/runs/{id}/verify", get(verify_run))
        .route("/api/runs/{id}/respond", post(respond))
        .route("/api/runs/{id}/pause", post(pause))
        .route("/api/runs/{id}/unpause", post(unpause))
        .route("/api/runs/{id}/cancel", post(cancel))
        .route("/api/runs/{id}/fork", post(fork))
        .route("/api/snapshots", get(all_snapshots))
        .route("/api/events", post(deliver))
        .route("/api/feed", get(feed))
        .route("/api/feed/stream", get(crate::feed::stream))
        .route("/api/check", get(check))
        .route("/api/artifacts/{digest}", get(artifact))
        .route("/api/log/checkpoint", get(checkpoint))
        .route("/api/log/prove/{id}", get(prove))
        .route("/api/log/consistency", get(consistency))
        .route("/api/log/bundle", get(bundle))
        .route("/api/stats", get(stats))
}

/// Runs `f` on the blocking pool with the backend.
pub async fn blocking<T, F>(state: &AppState, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Backend) -> ApiResult<T> + Send + 'static,
{
    let backend = state.backend.clone();
    tokio::task::spawn_blocking(move || f(&backend))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the request's task failed: {e}"),
            )
        })?
}

/// After a change: wakes the feed streams of a store-mode server (a live scheduler wakes
/// them itself).
fn changed(state: &AppState) {
    state.changes.send_modify(|n| *n += 1);
}

/// The `limit` parameter: the default when absent, refused over the server's maximum.
pub fn limit(params: &Params, state: &AppState) -> ApiResult<usize> {
    let max = state.config.page_items_max;
    match params.parse::<usize>("limit", "a whole number")? {
        None => Ok(PAGE_ITEMS_DEFAULT.min(max)),
        Some(0) => Err(ApiError::invalid("limit must be at least 1")),
        Some(n) if n > max => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "limit_exceeded",
            format!("limit {n} is over this server's maximum of {max} items a page"),
        )),
        Some(n) => Ok(n),
    }
}

fn status_param(params: &Params) -> ApiResult<Option<RunStatus>> {
    match params.text("status") {
        None => Ok(None),
        Some(text) => serde_json::from_value(Value::String(text.to_owned()))
            .map(Some)
            .map_err(|_| {
                ApiError::invalid(format!(
                    "status {text:?}: expected running, waiting, completed, failed or cancelled"
                ))
            }),
    }
}

async fn list_runs(State(state): State<AppState>, params: Params) -> ApiResult<Json<Value>> {
    params.only(&[
        "status",
        "workflow_id",
        "version",
        "parent",
        "newest_first",
        "since_ms",
        "until_ms",
        "cursor",
        "limit",
    ])?;
    let since: Option<i64> = params.parse("since_ms", "milliseconds since the Unix epoch")?;
    let until: Option<i64> = params.parse("until_ms", "milliseconds since the Unix epoch")?;
    let newest_first = params.flag("newest_first")?;
    // By creation time either way: oldest first walks the created-time index up.
    let created_ms = (since.is_some() || until.is_some() || !newest_first)
        .then(|| (since.unwrap_or(i64::MIN), until.unwrap_or(i64::MAX)));
    let query = RunQuery {
        status: status_param(&params)?,
        workflow_id: params.text("workflow_id").map(str::to_owned),
        version: params.parse("version", "a whole number")?,
        parent: params.parse("parent", "a run id")?,
        created_ms,
        newest_first,
        ..RunQuery::default()
    };
    // An empty cursor is the first page.
    let cursor = params
        .text("cursor")
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let limit = limit(&params, &state)?;
    blocking(&state, move |b| {
        let page = b.engine().query_runs(&query, cursor.as_deref(), limit)?;
        Ok(Json(json!({
            "runs": page.runs.iter().map(json::run).collect::<Vec<_>>(),
            "next_cursor": page.next_cursor,
        })))
    })
    .await
}

async fn counts(State(state): State<AppState>, params: Params) -> ApiResult<Json<Value>> {
    params.only(&[])?;
    blocking(&state, |b| Ok(Json(counts_json(b)?))).await
}

fn counts_json(b: &Backend) -> ApiResult<Value> {
    let counts = b.engine().count_by_status()?;
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let by_status: BTreeMap<String, u64> = counts
        .iter()
        .map(|(status, n)| (status.as_str().to_owned(), *n))
        .collect();
    Ok(json!({ "counts": by_status, "total": total }))
}

async fn show_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    params.only(&[])?;
    let id = run_id(&id)?;
    blocking(&state, move |b| Ok(Json(json::run(&b.engine().load(id)?)))).await
}

async fn records(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    params.only(&["from", "limit"])?;
    let id = run_id(&id)?;
    let from = params
        .parse::<u64>("from", "a seq (a whole number from 1)")?
        .unwrap_or(1)
        .max(1);
    let limit = limit(&params, &state)?;
    blocking(&state, move |b| {
        let records = b.engine().records(id, from, limit)?;
        let next_from = match records.last() {
            Some(last) if records.len() == limit => Some(last.seq() + 1),
            _ => None,
        };
        Ok(Json(json!({
            "records": records.iter().map(ledgerflow_ledger::record_json).collect::<Vec<_>>(),
            "next_from": next_from,
        })))
    })
    .await
}

async fn snapshots(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    list_snapshots(state, params, Some(run_id(&id)?)).await
}

/// Every run's snapshots (or those with a tag).
async fn all_snapshots(State(state): State<AppState>, params: Params) -> ApiResult<Json<Value>> {
    list_snapshots(state, params, None).await
}

async fn list_snapshots(
    state: AppState,
    params: Params,
    run: Option<RunId>,
) -> ApiResult<Json<Value>> {
    params.only(&["tag", "limit"])?;
    let filter = SnapshotFilter {
        run_id: run,
        tag: params.text("tag").map(str::to_owned),
        name_contains: None,
    };
    let limit = limit(&params, &state)?;
    blocking(&state, move |b| {
        if let Some(id) = run {
            b.engine().load(id)?;
        }
        let list = b.engine().list_snapshots(&filter, limit)?;
        Ok(Json(
            json!({ "snapshots": list.iter().map(json::snapshot).collect::<Vec<_>>() }),
        ))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotBody {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<String>,
}

async fn create_snapshot(
    State(state): State<AppState>,
    Operator(_): Operator,
    Path(id): Path<String>,
    params: Params,
    JsonBody(body): JsonBody<SnapshotBody>,
) -> ApiResult<impl IntoResponse> {
    params.only(&[])?;
    let id = run_id(&id)?;
    let snapshot = blocking(&state, move |b| {
        let tags: Vec<&str> = body.tags.iter().map(String::as_str).collect();
        Ok(b.engine()
            .create_snapshot(id, &body.name, &body.description, &tags)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json::snapshot(&snapshot))))
}

async fn children(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    params.only(&["after", "limit"])?;
    let id = run_id(&id)?;
    let after: Option<RunId> = params.parse("after", "a run id")?;
    let limit = limit(&params, &state)?;
    blocking(&state, move |b| {
        b.engine().load(id)?;
        let ids = b.engine().store().children(id, after, limit)?;
        let next_after = match ids.last() {
            Some(last) if ids.len() == limit => Some(*last),
            _ => None,
        };
        Ok(Json(json!({ "children": ids, "next_after": next_after })))
    })
    .await
}

async fn verify_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    params.only(&[])?;
    let id = run_id(&id)?;
    blocking(&state, move |b| {
        b.engine().load(id)?;
        // A chain that does not verify is the answer, not a failed request.
        Ok(Json(match b.engine().verify_run(id) {
            Ok(verified) => json!({
                "ok": true,
                "run_id": id,
                "records": verified.head.seq,
                "head_hash": verified.head.hash,
                "lineage": lineage(b, id)?,
            }),
            Err(e) => json!({ "ok": false, "run_id": id, "code": e.kind().as_str(), "error": e.to_string() }),
        }))
    })
    .await
}

/// A fork's lineage: its parent run and seq when it verifies, the error when it does not,
/// null for a run that is not a fork.
fn lineage(b: &Backend, id: RunId) -> ApiResult<Value> {
    let first = b.engine().records(id, 1, 1)?;
    if first.first().is_none_or(|r| r.kind() != "forked") {
        return Ok(Value::Null);
    }
    Ok(match b.engine().verify_lineage(id) {
        Ok((parent, seq)) => json!({ "ok": true, "from_run_id": parent, "from_seq": seq }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    })
}

/// A whole number in a JSON body, written `3` or `3.0` (JSON does not tell them apart).
#[derive(Clone, Copy)]
struct Whole(u64);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Whole, D::Error> {
        let number = serde_json::Number::deserialize(d)?;
        number
            .as_u64()
            .or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 9_007_199_254_740_992.0)
                    .map(|f| f as u64)
            })
            .map(Whole)
            .ok_or_else(|| serde::de::Error::custom(format!("{number} is not a whole number")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    workflow_id: String,
    version: Whole,
    #[serde(default = "empty_object")]
    input: Value,
}

fn empty_object() -> Value {
    json!({})
}

async fn start_run(
    State(state): State<AppState>,
    Operator(_): Operator,
    params: Params,
    JsonBody(body): JsonBody<StartBody>,
) -> ApiResult<impl IntoResponse> {
    params.only(&[])?;
    let run = blocking(&state, move |b| {
        let version = u32::try_from(body.version.0).map_err(|_| {
            ApiError::invalid(format!("version {} is over 4294967295", body.version.0))
        })?;
        b.start(
            WorkflowKey {
                workflow_id: body.workflow_id,
                version,
            },
            body.input,
        )
    })
    .await?;
    changed(&state);
    Ok((StatusCode::CREATED, Json(json::run(&run))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadBody {
    #[serde(default)]
    payload: Value,
}

async fn respond(
    State(state): State<AppState>,
    Operator(caller): Operator,
    Path(id): Path<String>,
    params: Params,
    JsonBody(body): JsonBody<PayloadBody>,
) -> ApiResult<Json<Value>> {
    params.only(&[])?;
    let id = run_id(&id)?;
    let run = blocking(&state, move |b| {
        b.respond(id, body.payload, caller.name.as_deref())
    })
    .await?;
    changed(&state);
    Ok(Json(json::run(&run)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliverBody {
    wait_key: String,
    #[serde(default)]
    payload: Value,
}

async fn deliver(
    State(state): State<AppState>,
    Operator(caller): Operator,
    params: Params,
    JsonBody(body): JsonBody<DeliverBody>,
) -> ApiResult<Json<Value>> {
    params.only(&[])?;
    let delivered = blocking(&state, move |b| {
        b.deliver(&body.wait_key, body.payload, caller.name.as_deref())
    })
    .await?;
    changed(&state);
    Ok(Json(match delivered {
        Delivered::Resumed(run) => json!({ "delivered": "resumed", "run": json::run(&run) }),
        Delivered::Queued(seq) => json!({ "delivered": "queued", "inbox_seq": seq }),
    }))
}

/// One operator action on a run: pause or unpause.
async fn control(
    state: AppState,
    caller: Caller,
    id: String,
    params: Params,
    action: fn(&Backend, RunId, Option<&str>) -> ApiResult<ledgerflow_kernel::RunState>,
) -> ApiResult<Json<Value>> {
    params.only(&[])?;
    let id = run_id(&id)?;
    let run = blocking(&state, move |b| action(b, id, caller.name.as_deref())).await?;
    changed(&state);
    Ok(Json(json::run(&run)))
}

async fn pause(
    State(state): State<AppState>,
    Operator(caller): Operator,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    control(state, caller, id, params, Backend::pause).await
}

async fn unpause(
    State(state): State<AppState>,
    Operator(caller): Operator,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    control(state, caller, id, params, Backend::unpause).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    #[serde(default = "operator_reason")]
    reason: String,
}

fn operator_reason() -> String {
    "cancelled by an operator".to_owned()
}

async fn cancel(
    State(state): State<AppState>,
    Operator(caller): Operator,
    Path(id): Path<String>,
    params: Params,
    JsonBody(body): JsonBody<CancelBody>,
) -> ApiResult<Json<Value>> {
    params.only(&[])?;
    let id = run_id(&id)?;
    let outcome = blocking(&state, move |b| {
        b.cancel(id, &body.reason, caller.name.as_deref())
    })
    .await?;
    changed(&state);
    Ok(Json(json!({
        "changed": outcome.changed,
        "record_seq": outcome.record.seq(),
        "run": json::run(&outcome.state),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForkBody {
    seq: Option<Whole>,
    snapshot: Option<String>,
}

async fn fork(
    State(state): State<AppState>,
    Operator(_): Operator,
    Path(id): Path<String>,
    params: Params,
    JsonBody(body): JsonBody<ForkBody>,
) -> ApiResult<impl IntoResponse> {
    params.only(&[])?;
    let id = run_id(&id)?;
    let fork = blocking(&state, move |b| {
        let seq = match (body.seq, body.snapshot) {
            (Some(Whole(seq)), None) => seq,
            (None, Some(name)) => b.engine().snapshot(id, &name)?.seq,
            _ => return Err(ApiError::invalid("give exactly one of seq and snapshot")),
        };
        let fork = b.fork(id, seq)?;
        Ok(b.engine().load(fork)?)
    })
    .await?;
    changed(&state);
    Ok((StatusCode::CREATED, Json(json::run(&fork))))
}

/// The `cursor` parameter: `start`, `now`, or a cursor a feed read returned.
pub fn cursor(params: &Params, b: &Backend) -> ApiResult<FeedCursor> {
    match params.text("cursor").filter(|c| !c.is_empty()).unwrap_or("start") {
        "start" => Ok(b.engine().cursor_from_start()),
        "now" => Ok(b.engine().cursor_now()?),
        text => text.parse().map_err(|_| {
            ApiError::invalid(format!(
                "cursor {:?} is not a feed cursor: give start, now, or a next_cursor this server returned",
                text.chars().take(80).collect::<String>()
            ))
        }),
    }
}

async fn feed(State(state): State<AppState>, params: Params) -> ApiResult<Json<Value>> {
    params.only(&["cursor", "limit"])?;
    let limit = limit(&params, &state)?;
    blocking(&state, move |b| {
        let from = cursor(&params, b)?;
        let page = b.engine().read_events(&from, limit)?;
        Ok(Json(json!({
            "events": page.events.iter().map(json::feed_entry).collect::<Vec<_>>(),
            "next_cursor": page.next_cursor.to_string(),
            "has_more": page.has_more,
        })))
    })
    .await
}

async fn check(State(state): State<AppState>, params: Params) -> ApiResult<Json<Value>> {
    params.only(&[])?;
    blocking(&state, |b| {
        Ok(Json(match b.engine().store().check() {
            Ok(report) => json::check_report(&report),
            // Damage found is the answer.
            Err(e) if e.kind() == ledgerflow_kernel::ErrorKind::Corrupt => {
                json!({ "ok": false, "code": "corrupt", "error": e.to_string() })
            }
            Err(e) => return Err(e.into()),
        }))
    })
    .await
}

async fn checkpoint(State(state): State<AppState>, params: Params) -> ApiResult<Json<Value>> {
    params.only(&[])?;
    blocking(&state, |b| {
        let store = b.engine().store();
        let latest = crate::proofs::latest(store.as_ref())?;
        let key = store.checkpoint_public_key()?;
        Ok(Json(json!({
            "origin": latest.head.origin,
            "tree_size": latest.head.size,
            "root": tree_hash_hex(&latest.head.root),
            "signed": latest.signed,
            "verified_with_store_key": key.as_ref().map(|k| latest.verify(k).is_ok()),
            "public_key": key.as_ref().map(|k| k.as_str().to_owned()),
            "note": latest.note,
        })))
    })
    .await
}

/// An artifact's bytes, checked against their digest by the store before they are sent.
async fn artifact(
    State(state): State<AppState>,
    Path(digest): Path<String>,
    params: Params,
) -> ApiResult<axum::response::Response> {
    params.only(&[])?;
    let hash: ledgerflow_kernel::Hash = digest
        .parse()
        .map_err(|_| ApiError::invalid(format!("{digest:?} is not a digest (64 hex digits)")))?;
    let bytes = blocking(&state, move |b| {
        b.engine().store().get_artifact(&hash)?.ok_or_else(|| {
            ApiError::not_found(format!(
                "no artifact {hash} in the store (never stored, or purged)"
            ))
        })
    })
    .await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response())
}

async fn prove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    params.only(&["seq"])?;
    let id = run_id(&id)?;
    let seq: Option<u64> = params.parse("seq", "a seq (a whole number from 1)")?;
    blocking(&state, move |b| {
        Ok(Json(crate::proofs::inclusion(
            b.engine().store().as_ref(),
            id,
            seq,
        )?))
    })
    .await
}

async fn consistency(State(state): State<AppState>, params: Params) -> ApiResult<Json<Value>> {
    params.only(&["old_size"])?;
    let old_size: u64 = params
        .parse("old_size", "a tree size (a whole number)")?
        .ok_or_else(|| {
            ApiError::invalid("give old_size, the tree size of a checkpoint seen before")
        })?;
    blocking(&state, move |b| {
        Ok(Json(crate::proofs::consistency(
            b.engine().store().as_ref(),
            old_size,
        )?))
    })
    .await
}

/// The proof file of an export: of the whole log, or of a run's records 1 to `to_seq`
/// (default: all it has).
async fn bundle(
    State(state): State<AppState>,
    params: Params,
) -> ApiResult<Json<ledgerflow_ledger::bundle::ProofBundle>> {
    params.only(&["run", "to_seq"])?;
    let run = params.text("run").map(run_id).transpose()?;
    let to_seq: Option<u64> = params.parse("to_seq", "a seq (a whole number from 1)")?;
    if run.is_none() && to_seq.is_some() {
        return Err(ApiError::invalid("to_seq needs run"));
    }
    blocking(&state, move |b| {
        let store = b.engine().store();
        let bundle = match run {
            None => crate::proofs::bundle(store.as_ref(), None)?,
            Some(id) => {
                let head = b.engine().load(id)?.head.seq;
                let to = match to_seq {
                    Some(seq) if seq == 0 || seq > head => {
                        return Err(ApiError::invalid(format!(
                            "run {id} has records 1 to {head}, not {seq}"
                        )))
                    }
                    Some(seq) => seq,
                    None => head,
                };
                let exported: Vec<(RunId, u64)> = (1..=to).map(|seq| (id, seq)).collect();
                crate::proofs::bundle(store.as_ref(), Some(&exported))?
            }
        };
        // The file's own form: the CLI writes it as it comes.
        Ok(Json(bundle))
    })
    .await
}

async fn stats(State(state): State<AppState>, params: Params) -> ApiResult<Json<Value>> {
    params.only(&[])?;
    blocking(&state, |b| Ok(Json(stats_json(b)?))).await
}

/// The stats document: runs by status, the feed's head, the scheduler's counters (live).
pub fn stats_json(b: &Backend) -> ApiResult<Value> {
    let mut out = counts_json(b)?;
    out["mode"] = json!(b.mode());
    out["feed_head"] = json!(b.engine().store().feed_head()?);
    out["scheduler"] = match b.scheduler() {
        Some(s) => {
            let st = s.stats();
            json!({
                "runs_ticked": st.runs_ticked,
                "timers_fired": st.timers_fired,
                "events_delivered": st.events_delivered,
                "events_queued": st.events_queued,
                "conflicts_retried": st.conflicts_retried,
                "job_errors": st.job_errors,
                "runs_parked": st.runs_parked,
                "queue_depth": st.queue_depth,
                "inbox_depth": st.inbox_depth,
                "timer_lag_last_ms": st.timer_lag_last_ms,
                "timer_lag_max_ms": st.timer_lag_max_ms,
                "recovered": st.recovered,
            })
        }
        None => Value::Null,
    };
    Ok(out)
}

/// Whether the server is ready: a live scheduler has recovered its runs.
pub fn ready(b: &Backend) -> bool {
    b.scheduler().is_none_or(|s| s.stats().recovered)
}
