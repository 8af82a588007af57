//! The HTTP face of the gateway: MCP (Streamable HTTP, stateless, JSON
//! responses) at `/mcp`, plus `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::server::PgMcp;

/// Builds the router. `allowed_hosts` of `None` accepts any Host header.
pub fn router(
    mcp: PgMcp,
    allowed_hosts: Option<Vec<String>>,
    shutdown: CancellationToken,
) -> Router {
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_cancellation_token(shutdown);
    config = match allowed_hosts {
        Some(hosts) => config.with_allowed_hosts(hosts),
        None => config.disable_allowed_hosts(),
    };
    let factory = mcp.clone();
    let service = StreamableHttpService::new(
        move || Ok(factory.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    Router::new()
        .nest_service("/mcp", service)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(mcp)
}

/// Ready when at least one worker answers.
async fn readyz(State(mcp): State<PgMcp>) -> (StatusCode, &'static str) {
    if mcp.shared.fleet.any_ready(Duration::from_secs(1)).await {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no worker reachable\n")
    }
}

/// Prometheus metrics. Each scrape first asks every worker for `Info`, so
/// `pgmcp_gateway_worker_up` is current even when no calls flow.
async fn metrics(State(mcp): State<PgMcp>) -> axum::response::Response {
    mcp.shared.fleet.any_ready(Duration::from_secs(1)).await;
    match mcp.shared.metrics.render() {
        Ok(text) => (
            [(header::CONTENT_TYPE, pgmcp_telemetry::metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot render metrics\n").into_response()
        }
    }
}
