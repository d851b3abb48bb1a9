//! Assembling the server: the router with its layers (auth, rate limit, body limit,
//! CORS, metrics), the unauthenticated routes (health, readiness, the OpenAPI document,
//! the inspector's assets), and [`Server`], which runs it on a tokio runtime of its own.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::{api, inspector, metrics, openapi, AppState, Backend, ServerConfig};

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A non-loopback address without tokens: anyone on the network could operate runs.
    #[error(
        "refusing to listen on {addr} without tokens: a non-loopback address needs --tokens FILE \
         (bearer tokens with read or operate roles); use 127.0.0.1 to serve this machine only"
    )]
    Insecure {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// A setting is out of range.
    #[error("invalid server setting: {0}")]
    Config(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server's runtime could not start.
    #[error("cannot start the server's runtime: {0}")]
    Runtime(std::io::Error),
}

impl ServerConfig {
    /// Refuses settings the server must not run with.
    pub fn check(&self) -> Result<(), ServerError> {
        if !self.listen.ip().is_loopback() && self.tokens.is_none() {
            return Err(ServerError::Insecure { addr: self.listen });
        }
        if self.body_bytes_max == 0 || self.requests_per_s_max == 0 || self.page_items_max == 0 {
            return Err(ServerError::Config(
                "body_bytes_max, requests_per_s_max and page_items_max must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// A token bucket for all callers together: `rate` tokens a second, holding at most one
/// second's worth.
pub(crate) struct RateLimiter {
    rate: f64,
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    fn new(per_s: u32) -> RateLimiter {
        let rate = f64::from(per_s);
        RateLimiter {
            rate,
            bucket: Mutex::new((rate, Instant::now())),
        }
    }

    /// Takes one token; false when there is none.
    fn take(&self) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, last) = *bucket;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.rate);
        if tokens < 1.0 {
            *bucket = (tokens, now);
            return false;
        }
        *bucket = (tokens - 1.0, now);
        true
    }
}

/// The whole application: mount it in an axum app of your own, or let [`Server`] run it.
/// Refuses the settings [`ServerConfig::check`] refuses.
pub fn router(backend: Backend, config: ServerConfig) -> Result<Router, ServerError> {
    config.check()?;
    let state = AppState {
        backend,
        limiter: Arc::new(RateLimiter::new(config.requests_per_s_max)),
        config: Arc::new(config),
        changes: Arc::new(tokio::sync::watch::channel(0).0),
        metrics: Arc::new(metrics::Metrics::default()),
    };
    let protected = api::routes()
        .route("/metrics", get(metrics::page))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let mut app = Router::new()
        .merge(protected)
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/openapi.json", get(openapi_json))
        .merge(inspector::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.body_bytes_max))
        .layer(middleware::from_fn_with_state(state.clone(), admit));
    if !state.config.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = state
            .config
            .cors_origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o).map_err(|_| {
                    ServerError::Config(format!("CORS origin {o:?} is not a header value"))
                })
            })
            .collect::<Result<_, _>>()?;
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    "last-event-id"
                        .parse()
                        .map_err(|_| ServerError::Config("header".into()))?,
                ]),
        );
    }
    Ok(app.with_state(state))
}

/// Every request: the rate limit, then counts for the metrics page.
async fn admit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !state.limiter.take() {
        state.metrics.count(StatusCode::TOO_MANY_REQUESTS);
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "more than {} requests a second; try again shortly",
                state.config.requests_per_s_max
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    let response = next.run(request).await;
    state.metrics.count(response.status());
    response
}

/// `/api` and `/metrics`: the caller from `Authorization: Bearer SECRET` (401 when it is
/// missing or unknown), or everyone on a server without tokens.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let caller = match &state.config.tokens {
        None => Caller::unnamed(),
        Some(tokens) => {
            let secret = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            match secret.and_then(|s| tokens.caller(s)) {
                Some(caller) => caller,
                None => {
                    let message = if secret.is_some() {
                        "unknown bearer token"
                    } else {
                        "this server needs Authorization: Bearer TOKEN"
                    };
                    let mut response =
                        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
                            .into_response();
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"ledgerflow\""),
                    );
                    return response;
                }
            }
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(state): State<AppState>) -> Response {
    let backend = state.backend.clone();
    let ready = tokio::task::spawn_blocking(move || api::ready(&backend))
        .await
        .unwrap_or(false);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "ready": ready, "mode": state.backend.mode() });
    (status, Json(body)).into_response()
}

async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi::document())
}

async fn no_route(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!(
            "no endpoint {} {}; the API is described at /openapi.json",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// How long requests in flight may take to finish once the server is asked to stop.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// A running server: its own tokio runtime on background threads, serving until
/// [`Server::stop`] (or drop).
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds `config.listen` (port 0: any free port, see [`Server::addr`]) and serves
    /// `backend` on a runtime of two worker threads. Returns once the socket listens.
    pub fn start(backend: Backend, config: ServerConfig) -> Result<Server, ServerError> {
        let addr = config.listen;
        let app = router(backend, config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ledgerflow-http")
            .enable_all()
            .build()
            .map_err(ServerError::Runtime)?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|source| ServerError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ledgerflow-http-main".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let (stopping, mut stop) = tokio::sync::watch::channel(false);
                    let mut graceful = stop.clone();
                    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                        let _ = graceful.wait_for(|s| *s).await;
                    });
                    let signal = async move {
                        let _ = stopped.await;
                        let _ = stopping.send(true);
                        // Requests in flight get this long; feed streams never end
                        // on their own, so the wait is bounded.
                        let _ = stop.wait_for(|s| *s).await;
                        tokio::time::sleep(STOP_GRACE).await;
                    };
                    tokio::select! {
                        _ = serve => {}
                        () = signal => {}
                    }
                });
                // Feed streams wait on the blocking pool: do not wait for them.
                runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            })
            .map_err(ServerError::Runtime)?;
        Ok(Server {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until the server stops (it stops only through [`Server::stop`] from
    /// elsewhere, or when the process ends): for a process that only serves.
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Stops accepting connections, lets requests in flight finish, and returns.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_inner();
    }
}
