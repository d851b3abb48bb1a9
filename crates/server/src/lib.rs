//! ledgerflow-server: the HTTP/JSON API over a live scheduler or a store, the event feed
//! as Server-Sent Events, Prometheus metrics, an OpenAPI document and the run-inspector
//! page — with bearer tokens in two roles, body and rate limits, loopback by default.
//!
//! Two ways to run it, same code: an application mounts it in-process
//! ([`Server::start`] with [`Backend::live`], or [`router`] to merge into its own axum
//! app), so operators reach the live store; or `ledgerflow serve --db PATH` serves a store
//! no application holds ([`Backend::store`]).
//!
//! ```
//! use std::sync::Arc;
//! use ledgerflow::ScheduledRuntime;
//! use ledgerflow_server::{Backend, Server, ServerConfig};
//!
//! let runtime = Arc::new(ScheduledRuntime::in_memory()?);
//! let config = ServerConfig {
//!     listen: "127.0.0.1:0".parse()?, // any free port; the default is 127.0.0.1:7070
//!     ..ServerConfig::default()
//! };
//! let server = Server::start(Backend::live(Arc::clone(&runtime)), config)?;
//! println!("inspector at http://{}/", server.addr());
//! server.stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod api;
mod auth;
mod backend;
mod error;
mod extract;
mod feed;
mod http;
mod inspector;
pub mod json;
mod metrics;
mod openapi;
pub mod proofs;

use std::net::SocketAddr;
use std::sync::Arc;

pub use api::ROUTES;
pub use auth::{Caller, Role, Tokens, TokensError, SECRET_CHARS_MIN};
pub use backend::{Backend, LiveScheduler};
pub use error::ApiError;
pub use http::{router, Server, ServerError};
pub use openapi::document as openapi_document;

/// Where and how the server listens, and its bounds. Every field has a default.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The address to listen on. Default `127.0.0.1:7070`: loopback, so nothing off the
    /// machine reaches it unless asked. A non-loopback address needs `tokens`.
    pub listen: SocketAddr,
    /// The accepted bearer tokens. `None`: no authentication, allowed on loopback only
    /// (every local caller may operate, and actions record no name).
    pub tokens: Option<Tokens>,
    /// The largest request body accepted. Default 1 MiB: above the engine's default value
    /// limit for a payload, below anything that could exhaust memory.
    pub body_bytes_max: usize,
    /// Requests a second the server accepts, all callers together (a token bucket holding
    /// one second's worth); more get 429. Default 2,000: well above what an inspector or
    /// a service delivering events needs, low enough that a runaway client cannot starve
    /// the application's workers of the store.
    pub requests_per_s_max: u32,
    /// Origins allowed to call the API from a browser page they serve. Default none: CORS
    /// closed, only the inspector served by this server (same origin) can.
    pub cors_origins: Vec<String>,
    /// The most items one page may hold (`limit`). Default 1,000.
    pub page_items_max: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            tokens: None,
            body_bytes_max: 1 << 20,
            requests_per_s_max: 2_000,
            cors_origins: Vec::new(),
            page_items_max: 1_000,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    backend: Backend,
    config: Arc<ServerConfig>,
    /// Bumped after every change the server makes, to wake store-mode feed streams.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    metrics: Arc<metrics::Metrics>,
    limiter: Arc<http::RateLimiter>,
}
