//! How a gateway observes itself: traces, metrics and logs.
//!
//! - [`init`] installs logging and, when `OTEL_*` asks for it, OTLP trace
//!   export (service `pgmcp-gateway`).
//! - [`McpRequest`]: one SERVER span per MCP request, named
//!   `"{mcp.method.name} {tool}"`. Its parent is the caller's trace context
//!   from `params._meta.traceparent` (SEP-414), else from the HTTP
//!   `traceparent` header, else it starts a new trace. When both are given
//!   and differ, the header's context becomes a link.
//! - The gRPC CLIENT span and context injection per worker call come from
//!   [`pgmcp_telemetry::grpc::ClientLayer`] on each worker channel (see
//!   `fleet.rs`).
//! - [`Metrics`]: the Prometheus registry behind `/metrics`.
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `pgmcp_gateway_mcp_requests_total` | `method`, `tool`, `outcome` (`ok`, `tool_error`, `error`) | MCP requests served |
//! | `pgmcp_gateway_mcp_request_duration_seconds` | `method`, `tool` | their duration |
//! | `pgmcp_gateway_grpc_client_duration_seconds` | `method`, `code` | calls to workers, until their last message |
//! | `pgmcp_gateway_worker_up` | `worker` | 1 when the worker answered the last call or probe, else 0 |

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use pgmcp_telemetry::grpc::Observer;
use pgmcp_telemetry::metrics::prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};
use pgmcp_telemetry::metrics::{self, DURATION_BUCKETS};
use pgmcp_telemetry::opentelemetry::trace::{Status, TraceContextExt};
use pgmcp_telemetry::{CALLS, LogArgs, OpenTelemetrySpanExt, Options, Telemetry, propagation};
use rmcp::RoleServer;
use rmcp::service::RequestContext;
use tracing::Span;

/// Installs logging and trace export for this gateway process.
pub fn init(logs: &LogArgs) -> Result<Telemetry> {
    Telemetry::init(Options {
        service_name: "pgmcp-gateway",
        service_version: env!("CARGO_PKG_VERSION"),
        instance_id: pgmcp_telemetry::otlp::default_instance_id(),
        attributes: Vec::new(),
        logs: logs.clone(),
    })
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    mcp_requests: IntCounterVec,
    mcp_seconds: HistogramVec,
    grpc_seconds: HistogramVec,
    worker_up: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Arc<Self>> {
        let registry = Registry::new();
        let mcp_requests = IntCounterVec::new(
            Opts::new(
                "pgmcp_gateway_mcp_requests_total",
                "MCP requests by method, tool and outcome (ok, tool_error, error).",
            ),
            &["method", "tool", "outcome"],
        )?;
        let mcp_seconds = HistogramVec::new(
            HistogramOpts::new(
                "pgmcp_gateway_mcp_request_duration_seconds",
                "Duration of MCP requests by method and tool.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["method", "tool"],
        )?;
        let grpc_seconds = HistogramVec::new(
            HistogramOpts::new(
                "pgmcp_gateway_grpc_client_duration_seconds",
                "gRPC calls to workers by method and status code, until their last message.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["method", "code"],
        )?;
        let worker_up = IntGaugeVec::new(
            Opts::new(
                "pgmcp_gateway_worker_up",
                "1 when the worker answered this gateway's last call or probe, 0 when it could not be reached.",
            ),
            &["worker"],
        )?;
        registry.register(Box::new(mcp_requests.clone()))?;
        registry.register(Box::new(mcp_seconds.clone()))?;
        registry.register(Box::new(grpc_seconds.clone()))?;
        registry.register(Box::new(worker_up.clone()))?;
        Ok(Arc::new(Metrics {
            registry,
            mcp_requests,
            mcp_seconds,
            grpc_seconds,
            worker_up,
        }))
    }

    /// Records whether `worker` answered.
    pub fn worker_up(&self, worker: &str, up: bool) {
        self.worker_up
            .with_label_values(&[worker])
            .set(i64::from(up));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> Result<String> {
        Ok(metrics::encode(&self.registry)?)
    }
}

impl Observer for Metrics {
    fn observe(&self, method: &str, code: &'static str, elapsed: Duration) {
        self.grpc_seconds
            .with_label_values(&[method, code])
            .observe(elapsed.as_secs_f64());
    }
}

/// How an MCP request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A tool result with `isError: true`.
    ToolError,
    /// A JSON-RPC error with this code.
    Error(i32),
}

/// One MCP request in flight: its SERVER span and its measurements.
pub struct McpRequest {
    span: Span,
    method: &'static str,
    tool: String,
    principal: String,
    request_id: String,
    start: Instant,
    metrics: Arc<Metrics>,
}

impl McpRequest {
    /// Starts the span of a `method` request (for `tools/call`, `target` is
    /// the tool's name).
    pub fn start(
        metrics: &Arc<Metrics>,
        method: &'static str,
        target: Option<&str>,
        ctx: &RequestContext<RoleServer>,
    ) -> Self {
        let name = match target {
            Some(t) => format!("{method} {t}"),
            None => method.to_string(),
        };
        let parts = ctx.extensions.get::<http::request::Parts>();
        let transport = if parts.is_some() { "tcp" } else { "pipe" };
        let version = ctx
            .protocol_version()
            .map(|v| v.to_string())
            .unwrap_or_default();
        let is_tool_call = method == "tools/call";
        let span = tracing::info_span!(
            "mcp.request",
            otel.name = %name,
            otel.kind = "server",
            mcp.method.name = method,
            gen_ai.tool.name = target.filter(|_| is_tool_call),
            gen_ai.operation.name = is_tool_call.then_some("execute_tool"),
            jsonrpc.request.id = %ctx.id,
            mcp.protocol.version = %version,
            network.transport = transport,
            error.type = tracing::field::Empty,
            rpc.response.status_code = tracing::field::Empty,
            enduser.id = tracing::field::Empty,
        );
        let from_meta = ctx
            .meta
            .get_traceparent()
            .map(|tp| propagation::from_traceparent(tp, ctx.meta.get_tracestate()))
            .filter(propagation::is_valid);
        let from_header = parts
            .map(|p| propagation::extract(&p.headers))
            .filter(propagation::is_valid);
        match (from_meta, from_header) {
            (Some(meta), header) => {
                let meta_sc = meta.span().span_context().clone();
                let _ = span.set_parent(meta);
                if let Some(h) = header {
                    let header_sc = h.span().span_context().clone();
                    if header_sc != meta_sc {
                        span.add_link(header_sc);
                    }
                }
            }
            (None, Some(header)) => {
                let _ = span.set_parent(header);
            }
            (None, None) => {}
        }
        McpRequest {
            span,
            method,
            tool: target.filter(|_| is_tool_call).unwrap_or("").to_string(),
            principal: String::new(),
            request_id: String::new(),
            start: Instant::now(),
            metrics: metrics.clone(),
        }
    }

    /// The request's span; run the request inside it.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Records who is calling (`enduser.id`).
    pub fn set_principal(&mut self, name: &str) {
        self.span.record("enduser.id", name);
        self.principal = name.to_string();
    }

    /// Records the id the call carries to the worker (`x-request-id`), for
    /// the call's log line.
    pub fn set_request_id(&mut self, id: &str) {
        self.request_id = id.to_string();
    }

    /// Records how the request ended and closes its span.
    pub fn finish(self, outcome: Outcome) {
        let elapsed = self.start.elapsed();
        let label = match outcome {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::Error(_) => "error",
        };
        self.metrics
            .mcp_requests
            .with_label_values(&[self.method, &self.tool, label])
            .inc();
        self.metrics
            .mcp_seconds
            .with_label_values(&[self.method, &self.tool])
            .observe(elapsed.as_secs_f64());
        match outcome {
            Outcome::Ok => {}
            Outcome::ToolError => {
                self.span.record("error.type", "tool_error");
                self.span.set_status(Status::error("tool_error"));
            }
            Outcome::Error(code) => {
                self.span.record("error.type", code.to_string());
                self.span
                    .record("rpc.response.status_code", code.to_string());
                self.span.set_status(Status::error(code.to_string()));
            }
        }
        tracing::info!(
            target: CALLS,
            parent: &self.span,
            method = self.method,
            tool = %self.tool,
            principal = %self.principal,
            request_id = %self.request_id,
            outcome = label,
            duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "MCP request done"
        );
    }
}
