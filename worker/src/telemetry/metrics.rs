//! The worker's Prometheus metrics and its small `/metrics` HTTP server
//! (`--metrics-listen`).
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `pgmcp_worker_grpc_server_duration_seconds` | `method`, `code` | RPCs served, until their last message |
//! | `pgmcp_worker_pool_connections` / `_idle_connections` / `_in_use_connections` / `_max_connections` | `target` | pool state, sampled at scrape time |
//! | `pgmcp_worker_pool_waiting` | `target` | calls waiting for a connection |
//! | `pgmcp_worker_pool_acquire_seconds` | `target` | wait for a pooled connection |
//! | `pgmcp_worker_query_errors_total` | `target`, `sqlstate_class`, `kind` | failed calls |
//! | `pgmcp_worker_rows_returned_total`, `pgmcp_worker_bytes_returned_total` | `target` | what results carried |

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use pgmcp_telemetry::grpc::Observer;
use pgmcp_telemetry::metrics::prometheus::{HistogramOpts, HistogramVec, Registry};
use pgmcp_telemetry::metrics::{self, DURATION_BUCKETS};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::targets::Targets;

/// The worker's registry and the metrics not tied to a target.
pub struct Metrics {
    registry: Registry,
    grpc_seconds: HistogramVec,
    targets: Arc<Targets>,
}

impl Metrics {
    /// Registers the worker's metrics, including each target's.
    pub fn new(targets: Arc<Targets>) -> Result<Arc<Self>> {
        let registry = Registry::new();
        let grpc_seconds = HistogramVec::new(
            HistogramOpts::new(
                "pgmcp_worker_grpc_server_duration_seconds",
                "gRPC calls served, by method and status code, until their last message.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["method", "code"],
        )?;
        registry.register(Box::new(grpc_seconds.clone()))?;
        for t in targets.iter() {
            for c in t.telemetry.collectors() {
                registry
                    .register(c)
                    .with_context(|| format!("registering metrics of target `{}`", t.name))?;
            }
        }
        Ok(Arc::new(Metrics {
            registry,
            grpc_seconds,
            targets,
        }))
    }

    /// The text exposition, with the pool gauges sampled now.
    pub fn render(&self) -> Result<String> {
        for t in self.targets.iter() {
            t.telemetry.sample_pool(&t.pool);
        }
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

/// Serves `GET /metrics` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<()> {
    let app = axum::Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("metrics HTTP server failed")
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> axum::response::Response {
    match metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot render metrics\n").into_response()
        }
    }
}
