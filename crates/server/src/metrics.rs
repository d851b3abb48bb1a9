//! `GET /metrics`: Prometheus text exposition of runs by status, the feed's head, the
//! scheduler's counters and the server's own request counts.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::{blocking, stats_json};
use crate::error::ApiResult;
use crate::extract::Params;
use crate::AppState;

/// Requests answered, by status class.
#[derive(Default)]
pub(crate) struct Metrics {
    by_class: [AtomicU64; 6],
}

impl Metrics {
    /// Counts one answer.
    pub(crate) fn count(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).min(5);
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) async fn page(State(state): State<AppState>, params: Params) -> ApiResult<Response> {
    params.only(&[])?;
    let stats = blocking(&state, stats_json).await?;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, samples: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let statuses = ["running", "waiting", "completed", "failed", "cancelled"];
    gauge(
        "ledgerflow_runs",
        "Runs in the store, by status.",
        "gauge",
        statuses
            .iter()
            .map(|s| {
                let n = stats["counts"][s].as_u64().unwrap_or(0);
                (format!("{{status=\"{s}\"}}"), n)
            })
            .collect(),
    );
    gauge(
        "ledgerflow_feed_head",
        "Records committed to the store (the feed's last seq).",
        "gauge",
        vec![(String::new(), stats["feed_head"].as_u64().unwrap_or(0))],
    );
    if let Some(scheduler) = stats["scheduler"].as_object() {
        for (name, help, kind) in [
            (
                "runs_ticked",
                "Runs ticked by the scheduler's workers.",
                "counter",
            ),
            ("timers_fired", "Timers fired.", "counter"),
            (
                "events_delivered",
                "Events delivered to waiting runs.",
                "counter",
            ),
            ("events_queued", "Events queued in inboxes.", "counter"),
            (
                "conflicts_retried",
                "Commits retried after losing a race.",
                "counter",
            ),
            ("job_errors", "Worker jobs that failed.", "counter"),
            ("queue_depth", "Runs waiting for a worker.", "gauge"),
            ("inbox_depth", "Events waiting in inboxes.", "gauge"),
            (
                "timer_lag_max_ms",
                "The largest timer lag seen, in ms.",
                "gauge",
            ),
        ] {
            let value = scheduler.get(name).and_then(|v| v.as_u64()).unwrap_or(0);
            let suffix = if kind == "counter" { "_total" } else { "" };
            gauge(
                &format!("ledgerflow_scheduler_{name}{suffix}"),
                help,
                kind,
                vec![(String::new(), value)],
            );
        }
    }
    let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    gauge(
        "ledgerflow_http_responses_total",
        "HTTP responses sent, by status class.",
        "counter",
        classes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let n = state.metrics.by_class[i + 1].load(Ordering::Relaxed);
                (format!("{{class=\"{c}\"}}"), n)
            })
            .collect(),
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}
