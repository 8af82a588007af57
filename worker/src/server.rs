//! Assembling and running the worker's gRPC server (and, with
//! `--metrics-listen`, its `/metrics` HTTP server).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use pgmcp_proto::v1::worker_server::WorkerServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

use crate::config::Config;
use crate::history::History;
use crate::service::WorkerService;
use crate::targets::Targets;
use crate::telemetry::{self, Metrics};

/// Largest gRPC message accepted or sent (a row batch is far smaller).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Connects to every target, then serves on `listener` (and `/metrics` on
/// `config.metrics_listen`, if set) until `shutdown` completes; in-flight
/// calls finish, then the pools close.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?,
        ),
        None => None,
    };
    serve_with_metrics(config, listener, metrics_listener, shutdown).await
}

/// As [`serve`], with the `/metrics` listener given (or none).
pub async fn serve_with_metrics(
    config: Config,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let targets = Arc::new(Targets::connect(&config).await?);
    let metrics = Metrics::new(targets.clone())?;
    let stop = CancellationToken::new();
    let mut metrics_server = None;
    if let Some(l) = metrics_listener {
        tracing::info!(addr = %l.local_addr()?, "metrics at /metrics");
        metrics_server = Some(tokio::spawn(telemetry::metrics::serve(
            l,
            metrics.clone(),
            stop.clone(),
        )));
    }
    let stopping = stop.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.cancel();
    };
    let served = serve_targets(config, targets.clone(), metrics, listener, shutdown).await;
    stop.cancel();
    if let Some(task) = metrics_server {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "metrics server failed"),
            Err(e) => tracing::warn!(error = %e, "metrics server task failed"),
        }
    }
    served?;
    targets.close().await;
    Ok(())
}

async fn serve_targets(
    config: Config,
    targets: Arc<Targets>,
    metrics: Arc<Metrics>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<WorkerServer<WorkerService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pgmcp_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building the reflection service")?;
    let draining = Arc::new(AtomicBool::new(false));
    let service = WorkerService::new(
        config.name.clone(),
        targets,
        config.limits.clone(),
        History::new(config.history_size),
        draining.clone(),
    );
    let worker = WorkerServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);

    let addr = listener.local_addr()?;
    tracing::info!(%addr, name = %config.name, "worker listening");
    let reporter = health_reporter.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: no longer serving");
        draining.store(true, Ordering::Relaxed);
        reporter
            .set_not_serving::<WorkerServer<WorkerService>>()
            .await;
    };
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .tcp_nodelay(true)
        .layer(telemetry::server_layer(metrics))
        .add_service(health)
        .add_service(reflection)
        .add_service(worker)
        // `tcp_nodelay` above applies only to listeners tonic binds itself;
        // without it, Nagle's algorithm holds back the end of each response.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .context("gRPC server failed")?;
    Ok(())
}
