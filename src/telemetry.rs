//! Exporting the engine's `tracing` spans to an OpenTelemetry collector over OTLP/HTTP
//! (feature `otel`): one call installs the subscriber; spans leave in batches from a
//! background thread, sent by a small blocking HTTP client (no async runtime needed).

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;

use crate::store::Error;

/// The OTLP/HTTP client: a blocking `ureq` call made on the batch exporter's own thread.
#[derive(Debug)]
struct BlockingClient {
    agent: ureq::Agent,
}

#[async_trait::async_trait]
impl HttpClient for BlockingClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut call = self.agent.post(parts.uri.to_string());
        for (name, value) in &parts.headers {
            call = call.header(name.as_str(), value.to_str().unwrap_or_default());
        }
        let mut response = call.send(&body[..])?;
        let status = response.status();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()?;
        Ok(Response::builder()
            .status(status)
            .body(Bytes::from(bytes))?)
    }
}

/// Exports spans while it lives; dropping it flushes what is buffered and stops the
/// exporter.
#[must_use = "spans are exported only while the guard lives"]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Sends every buffered span now.
    pub fn flush(&self) -> Result<(), Error> {
        self.provider
            .force_flush()
            .map_err(|e| Error::io_failed(format!("exporting spans: {e}")))
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs, as the process's global `tracing` subscriber, an exporter of every span at
/// `INFO` and above (ticks, commits, effects, the agent effects) to the OTLP/HTTP
/// collector at `endpoint` (its traces URL, e.g. `http://127.0.0.1:4318/v1/traces`), as
/// service `service_name`. Fails if a global subscriber is already installed.
///
/// ```no_run
/// let _telemetry = ledgerflow::telemetry::export_otlp("http://127.0.0.1:4318/v1/traces", "billing")?;
/// // ... run workflows: their spans reach the collector ...
/// # Ok::<(), ledgerflow::store::Error>(())
/// ```
pub fn export_otlp(endpoint: &str, service_name: &str) -> Result<Telemetry, Error> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(BlockingClient { agent })
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| Error::InvalidInput(format!("the OTLP exporter for {endpoint}: {e}")))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("ledgerflow"));
    let subscriber = tracing_subscriber::registry()
        .with(layer)
        .with(tracing_subscriber::filter::LevelFilter::INFO);
    tracing::subscriber::set_global_default(subscriber).map_err(|e| {
        Error::InvalidInput(format!("a tracing subscriber is already installed: {e}"))
    })?;
    Ok(Telemetry { provider })
}
