//! pgmcp gateway: the MCP front end. Speaks MCP to clients (Streamable HTTP
//! or stdio), validates arguments, and turns every tool call into a gRPC
//! call to a worker. It holds no SQL of its own and no database credentials.
//!
//! Map: [`config`] (flags), [`server`] (the MCP handler), [`tools`] (one file
//! per tool), [`toolsets`] (which tools are served), [`cursor`] (signed
//! pagination cursors), [`fleet`] (workers and routing), [`worker_link`]
//! (the gRPC client: TLS, worker token, principal metadata), [`errors`] (one
//! error type and its explanations), [`render`] (text for the model),
//! [`http`] (HTTP routes and layers), [`auth`] (who is calling and what they
//! may do), [`call`] (the call being served), [`limits`] (per-principal
//! concurrency, early size checks), [`secret`] (secrets from env or files; in `pgmcp-proto`),
//! [`catalog`] (shapes of schemas, tables and table descriptions),
//! [`resources`] (one file per resource), [`completions`] (argument
//! completion), [`prompts`], [`listing_cursor`] (cursors of catalog
//! listings), [`telemetry`] (traces, metrics, logs).

pub mod admission;
pub mod auth;
pub mod call;
pub mod catalog;
pub mod completions;
pub mod config;
pub mod cursor;
pub mod errors;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod limits;
pub mod listing_cursor;
pub mod prompts;
pub mod render;
pub mod resources;
pub use pgmcp_proto::secret;
pub mod server;
pub mod telemetry;
pub mod tools;
pub mod toolsets;
pub mod worker_link;

use anyhow::{Context, Result};
use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

pub use config::{Args, Config};
pub use server::PgMcp;

/// Builds the MCP service for `config`.
pub fn service(config: &Config) -> Result<PgMcp> {
    let metrics = telemetry::Metrics::new()?;
    let fleet = fleet::Fleet::new(config.workers.clone(), &config.link, &metrics)?;
    let cursors = match &config.cursor_secret {
        Some(key) => cursor::CursorKey::new(key.expose().as_bytes().to_vec(), config.cursor_ttl),
        None => {
            if !config.stdio {
                tracing::warn!(
                    "no --cursor-secret given: pagination cursors will only work on this gateway; \
                     give all gateways of a fleet the same key"
                );
            }
            cursor::CursorKey::random(config.cursor_ttl)
        }
    };
    Ok(PgMcp::new(
        fleet,
        config.limits.clone(),
        cursors,
        config.toolsets,
        metrics,
    ))
}

/// Runs a gateway with `args` until SIGINT or SIGTERM (or, with `--stdio`,
/// until stdin closes): sets up logging and trace export, serves, then
/// flushes the spans still buffered.
pub async fn run(args: Args) -> Result<()> {
    let config = Config::from_args(&args)?;
    let telemetry = telemetry::init(&args.logs)?;
    let served = serve_config(config).await;
    telemetry.shutdown().await;
    served
}

async fn serve_config(config: Config) -> Result<()> {
    let mcp = service(&config)?;
    if config.stdio {
        let running = mcp
            .serve(rmcp::transport::stdio())
            .await
            .context("starting MCP over stdio")?;
        let stop = running.cancellation_token();
        let waiting = running.waiting();
        tokio::pin!(waiting);
        tokio::select! {
            done = &mut waiting => { done.context("MCP over stdio")?; }
            _ = shutdown_signal() => {
                stop.cancel();
                waiting.await.context("MCP over stdio")?;
            }
        }
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    serve_http(config, mcp, listener, shutdown_signal()).await
}

/// Serves HTTP on `listener` until `shutdown` completes.
pub async fn serve_http(
    config: Config,
    mcp: PgMcp,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let token = CancellationToken::new();
    let app = http::router(&config, mcp, token.clone()).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        workers = ?config.workers.entries,
        auth = if config.auth.enabled() { "on" } else { "off" },
        "gateway listening; MCP at /mcp"
    );
    // On shutdown: stop accepting, let requests in flight finish, and exit
    // anyway once the grace period has passed.
    let grace = config.shutdown_grace;
    let (stopping_tx, stopping) = tokio::sync::oneshot::channel::<()>();
    // Answers go out as soon as they are written, not held back by Nagle's
    // algorithm until the client acknowledges the previous segment.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!(
            grace_ms = grace.as_millis() as u64,
            "shutting down: finishing requests in flight"
        );
        let _ = stopping_tx.send(());
    });
    let server = server.into_future();
    tokio::pin!(server);
    let result = tokio::select! {
        served = &mut server => served.context("HTTP server failed"),
        _ = async {
            if stopping.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!("requests still in flight after the grace period; exiting");
            Ok(())
        }
    };
    token.cancel();
    result
}

/// Completes on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
