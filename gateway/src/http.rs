//! The HTTP face of the gateway: MCP (Streamable HTTP, stateless, JSON
//! responses) at `/mcp`, plus `/healthz`, `/readyz`, `/metrics` and, with
//! authentication,
//! the OAuth protected resource metadata.
//!
//! Layers around `/mcp`, outermost first: CORS (only when `--cors-origins`
//! is set), load shedding ([`crate::admission`]), the request body limit,
//! authentication ([`crate::auth::layer`]), the per-principal rate limit,
//! then rmcp's own Host and Origin checks (DNS-rebinding protection).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::admission;
use crate::auth::jwks::KeySet;
use crate::auth::jwt::JwtVerifier;
use crate::auth::{self, Authenticator, HttpAuth, prm};
use crate::config::Config;
use crate::server::PgMcp;

/// Builds the router. Loads JWT keys first (a JWKS URL is fetched now).
pub async fn router(config: &Config, mcp: PgMcp, shutdown: CancellationToken) -> Result<Router> {
    let mut rmcp_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(config.max_request_body_bytes)
        .with_cancellation_token(shutdown);
    rmcp_config = match &config.allowed_hosts {
        Some(hosts) => rmcp_config.with_allowed_hosts(hosts.clone()),
        None => rmcp_config.disable_allowed_hosts(),
    };
    rmcp_config = match &config.allowed_origins {
        Some(origins) => rmcp_config
            .with_allowed_origins(origins.clone())
            .enforce_origin_validation(),
        None => rmcp_config.disable_allowed_origins(),
    };
    let factory = mcp.clone();
    let service = Arc::new(StreamableHttpService::new(
        move || Ok(factory.clone()),
        Arc::new(NeverSessionManager::default()),
        rmcp_config,
    ));
    // Shared, not cloned per request: the service's own `call` clones its
    // configuration (host and origin lists, cancellation token) every time.
    let service = tower::service_fn(move |req: Request| {
        let service = service.clone();
        async move { Ok::<_, Infallible>(service.handle(req).await) }
    });

    let jwt = match &config.auth.jwt {
        None => None,
        Some(j) => {
            let keys = KeySet::load(
                j.jwks_file.as_deref(),
                j.jwks_url.as_deref(),
                j.hs256_secret.as_ref(),
                j.jwks_refresh,
            )
            .await?;
            Some(JwtVerifier::new(j.settings.clone(), keys))
        }
    };
    let http_auth = Arc::new(HttpAuth {
        authenticator: Authenticator::new(config.auth.tokens.clone(), jwt),
        metadata: config.auth.metadata.clone(),
    });
    let enabled = http_auth.authenticator.enabled();

    let mut mcp_routes = Router::new().nest_service("/mcp", service);
    if let Some(rate) = admission::PrincipalRate::new(config.rate_limit_per_principal) {
        mcp_routes = mcp_routes.layer(middleware::from_fn_with_state(rate, admission::rate));
    }
    let mcp_routes = mcp_routes
        .layer(middleware::from_fn_with_state(
            http_auth.clone(),
            auth::layer,
        ))
        .layer(middleware::from_fn_with_state(
            config.max_request_body_bytes,
            limit_body,
        ))
        .layer(middleware::from_fn_with_state(
            admission::Shedder::new(config.max_concurrent_requests),
            admission::shed,
        ));
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(mcp)
        .merge(mcp_routes);
    if enabled {
        app = app.merge(
            Router::new()
                .route(prm::PATH, get(prm::serve))
                .route(prm::ROOT_PATH, get(prm::serve))
                .with_state(http_auth),
        );
    }
    if !config.cors_origins.is_empty() {
        app = app.layer(cors(&config.cors_origins));
    }
    Ok(app)
}

/// CORS for the configured origins: the methods and headers MCP clients use.
fn cors(origins: &[String]) -> CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method};
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let headers = [
        "authorization",
        "content-type",
        "accept",
        "mcp-protocol-version",
        "mcp-session-id",
        "mcp-method",
        "mcp-name",
        "last-event-id",
    ]
    .map(HeaderName::from_static);
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers(headers)
        .expose_headers(
            ["mcp-session-id", "www-authenticate", "mcp-protocol-version"]
                .map(HeaderName::from_static),
        )
        .max_age(Duration::from_secs(600))
}

/// Refuses a body whose declared length is over the limit, before reading
/// it, with a JSON-RPC error naming the limit. (rmcp enforces the same limit
/// on bodies of undeclared length while reading them.)
async fn limit_body(State(max): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared
        && len > max as u64
    {
        let body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {
                "code": -32600,
                "message": format!(
                    "the request body is {len} bytes, over this gateway's limit of {max} bytes (max_request_body_bytes)"
                ),
            }
        });
        return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response();
    }
    next.run(req).await
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
