//! The event feed as Server-Sent Events: every committed record's feed entry from a
//! cursor on, then each new one as it is acknowledged. A client that reconnects sends
//! `Last-Event-ID` (the cursor of the last batch it saw) and misses nothing.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use ledgerflow_kernel::FeedCursor;

use crate::api::{blocking, cursor};
use crate::error::{ApiError, ApiResult};
use crate::extract::Params;
use crate::{json, AppState};

/// Entries sent per batch.
const BATCH_ITEMS_MAX: usize = 256;

/// How long one wait for new entries lasts before the stream looks again (and the
/// keep-alive comment goes out): the bound on how long a closed client holds a thread.
const WAIT: Duration = Duration::from_secs(10);

/// `GET /api/feed/stream?cursor=…`: `event: record` for each entry (data: the entry's
/// JSON), then after each batch `event: cursor` (data and id: the cursor to resume from).
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    params.only(&["cursor"])?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let start: FeedCursor = blocking(&state, move |b| match resume {
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::invalid(format!("Last-Event-ID {text:?} is not a feed cursor"))),
        None => cursor(&params, b),
    })
    .await?;
    // Refuse another store's cursor now, not inside the stream.
    {
        let probe = start.clone();
        blocking(&state, move |b| Ok(b.engine().read_events(&probe, 1)?)).await?;
    }
    let changes = state.changes.subscribe();
    let events = stream::unfold(
        (state, start, changes, Vec::<Event>::new()),
        |(state, mut at, mut changes, mut pending)| async move {
            loop {
                if let Some(event) = pending.pop() {
                    return Some((Ok(event), (state, at, changes, pending)));
                }
                let from = at.clone();
                let page = blocking(&state, move |b| match b.scheduler() {
                    Some(s) => Ok(s.wait_events(&from, BATCH_ITEMS_MAX, WAIT)?),
                    None => Ok(b.engine().read_events(&from, BATCH_ITEMS_MAX)?),
                })
                .await;
                let page = match page {
                    Ok(page) => page,
                    // The store closed or failed: end the stream; the client reconnects.
                    Err(_) => return None,
                };
                if page.events.is_empty() {
                    if state.backend.scheduler().is_none() {
                        let _ = tokio::time::timeout(WAIT, changes.changed()).await;
                    }
                    // Nothing new: a keep-alive goes out from the Sse layer meanwhile.
                    continue;
                }
                at = page.next_cursor.clone();
                let mut batch: Vec<Event> = page
                    .events
                    .iter()
                    .map(|entry| {
                        Event::default()
                            .event("record")
                            .data(json::feed_entry(entry).to_string())
                    })
                    .collect();
                let cursor = page.next_cursor.to_string();
                batch.push(
                    Event::default()
                        .event("cursor")
                        .id(cursor.clone())
                        .data(cursor),
                );
                batch.reverse();
                pending = batch;
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
