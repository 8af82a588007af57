//! Traces, metrics and logs shared by the pgmcp gateway and worker.
//!
//! Both binaries observe themselves the same way, so the machinery lives
//! here once:
//!
//! - [`Telemetry::init`] installs the process's `tracing` subscriber: logs to
//!   stderr (text, or JSON carrying `trace_id`/`span_id`), filtered by
//!   `RUST_LOG`, and — only when the standard `OTEL_*` variables ask for it —
//!   an OpenTelemetry layer exporting our spans over OTLP ([`otlp`]).
//!   [`Telemetry::shutdown`] flushes what is still buffered.
//! - [`propagation`]: W3C trace context in HTTP headers and gRPC metadata
//!   (the gateway → worker contract), and as a SQLCommenter comment.
//! - [`grpc`]: tower layers giving every gRPC call a CLIENT or SERVER span
//!   and a duration measurement.
//! - [`metrics`]: Prometheus text exposition of a registry.
//!
//! Spans are created with `tracing`; only spans of pgmcp's own crates are
//! exported, so library internals (h2, hyper, tower) never clutter a trace.

pub mod grpc;
mod logs;
pub mod metrics;
pub mod otlp;
pub mod propagation;

use anyhow::Result;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use logs::CALLS;
pub use opentelemetry;
pub use tracing_opentelemetry::OpenTelemetrySpanExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with `trace_id` and `span_id` inside a span.
    Json,
}

/// The logging flags both binaries take (flatten into their arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log format: `text` (human-readable) or `json` (with `trace_id` and
    /// `span_id` when tracing). Logs go to stderr; `RUST_LOG` filters them.
    #[arg(long, env = "PGMCP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log one line per call (target `pgmcp::calls`). Off by default:
    /// traces and metrics record every call, and a line per call costs a
    /// formatted write on every call.
    #[arg(long, env = "PGMCP_LOG_CALLS")]
    pub log_calls: bool,
}

/// What a process tells about itself.
#[derive(Debug, Clone)]
pub struct Options {
    /// `service.name` unless `OTEL_SERVICE_NAME` says otherwise.
    pub service_name: &'static str,
    /// `service.version`.
    pub service_version: &'static str,
    /// `service.instance.id`; see [`otlp::default_instance_id`].
    pub instance_id: String,
    /// Extra resource attributes (e.g. the worker's name).
    pub attributes: Vec<opentelemetry::KeyValue>,
    /// How and what to log.
    pub logs: LogArgs,
}

/// The installed telemetry of this process. Keep it until the end and call
/// [`Telemetry::shutdown`] so buffered spans are exported.
#[must_use = "call shutdown() before exiting so buffered spans are exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the global `tracing` subscriber. Traces are exported only
    /// when configured through `OTEL_*` variables (see [`otlp::Settings`]);
    /// otherwise no exporter, no background thread, no span bookkeeping
    /// beyond what logging needs. Must be called inside a Tokio runtime
    /// (the gRPC exporter binds to it). Fails on invalid `OTEL_*` settings.
    pub fn init(options: Options) -> Result<Self> {
        let settings = otlp::Settings::from_env()?;
        let provider = match &settings {
            Some(s) => Some(otlp::provider(s, &options)?),
            None => None,
        };
        let otel_layer = provider.as_ref().map(|p| {
            use opentelemetry::trace::TracerProvider as _;
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer("pgmcp"))
                // Spans carry the conventions' attributes, not the
                // bookkeeping of `tracing` (source file, thread, idle time).
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_tracked_inactivity(false)
                .with_filter(otlp::own_spans())
        });
        let _ = tracing_subscriber::registry()
            .with(otel_layer)
            .with(logs::layer(&options.logs))
            .try_init();
        if let Some(s) = &settings {
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            tracing::info!(
                protocol = s.protocol(),
                endpoint = s.endpoint().unwrap_or("(default)"),
                "exporting traces over OTLP"
            );
        }
        Ok(Telemetry { provider })
    }

    /// True when spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports buffered spans and stops the exporter. Blocks a thread of its
    /// own, not the runtime.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let done = tokio_blocking(move || provider.shutdown()).await;
        match done {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::warn!(error = %e, "exporting the last spans failed"),
            None => tracing::warn!("exporting the last spans did not finish"),
        }
    }
}

/// Runs `f` on a plain thread and awaits its result without blocking the
/// runtime (the batch exporter's shutdown blocks until the export is done,
/// while the export itself needs the runtime to make progress).
async fn tokio_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("otel-shutdown".into())
        .spawn(move || {
            let _ = tx.send(f());
        });
    if spawned.is_err() {
        return None;
    }
    rx.await.ok()
}
