//! Assembling and running the worker's gRPC server (and, with
//! `--metrics-listen`, its `/metrics` HTTP server).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use pgmcp_proto::v1::worker_server::WorkerServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

use crate::auth::AuthLayer;
use crate::calls::CallsLayer;
use crate::config::{Config, TlsFiles};
use crate::history::History;
use crate::service::WorkerService;
use crate::targets::Targets;
use crate::telemetry::{self, Metrics};

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
    let sec = &config.security;
    let draining = Arc::new(AtomicBool::new(false));
    let service = WorkerService::new(
        config.name.clone(),
        targets,
        config.limits.clone(),
        History::new(config.history_size),
        draining.clone(),
    );
    let worker = WorkerServer::new(service)
        .max_decoding_message_size(sec.max_message_bytes)
        .max_encoding_message_size(sec.max_message_bytes);

    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &sec.tls {
        builder = builder
            .tls_config(tls_config(tls)?)
            .context("configuring TLS")?;
    }

    let (stop_health, health_stopped) = tokio::sync::oneshot::channel::<()>();
    let health_task = match sec.health_listen {
        Some(addr) => {
            let health_listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on --health-listen {addr}"))?;
            tracing::info!(addr = %addr, "health checks also served in plain text");
            let health = health.clone();
            Some(tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(health)
                    .serve_with_incoming_shutdown(
                        TcpListenerStream::new(health_listener),
                        async move {
                            let _ = health_stopped.await;
                        },
                    ),
            ))
        }
        None => None,
    };

    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        name = %config.name,
        tls = match &sec.tls { None => "off", Some(t) if t.client_ca.is_some() => "mutual", Some(_) => "on" },
        token = if sec.token_digest.is_some() { "required" } else { "off" },
        max_concurrent_calls = sec.max_concurrent_calls,
        "worker listening"
    );
    // Drain: NOT_SERVING first (gateways watching health move away), keep
    // serving for the drain delay, then stop accepting and let calls in
    // flight finish — for at most the grace period.
    let drain = config.drain;
    let reporter = health_reporter.clone();
    let (stopping_tx, stopping) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        tracing::info!(
            grace_ms = drain.grace.as_millis() as u64,
            "shutting down: health is NOT_SERVING, finishing calls in flight"
        );
        let _ = stopping_tx.send(());
        draining.store(true, Ordering::Relaxed);
        reporter
            .set_not_serving::<WorkerServer<WorkerService>>()
            .await;
        tokio::time::sleep(drain.delay).await;
    };
    let calls = CallsLayer::new(sec.max_concurrent_calls);
    let mut builder = builder
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)));
    if let Some(age) = drain.max_connection_age {
        builder = builder.max_connection_age(age);
    }
    let served = builder
        .tcp_nodelay(true)
        .layer(telemetry::server_layer(metrics))
        .layer(AuthLayer::new(sec.token_digest))
        .layer(calls.clone())
        .add_service(health)
        .add_service(reflection)
        .add_service(worker)
        // `tcp_nodelay` above applies only to listeners tonic binds itself;
        // without it, Nagle's algorithm holds back the end of each response.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        );
    tokio::pin!(served);
    let served = tokio::select! {
        served = &mut served => served.context("gRPC server failed"),
        // Long-lived streams (health watches) would hold the server open:
        // once the calls in flight are done, or the grace period is over,
        // it stops.
        done = async {
            if stopping.await.is_err() {
                std::future::pending::<()>().await;
            }
            let started = tokio::time::Instant::now();
            tokio::time::sleep(drain.delay).await;
            while calls.in_flight() > 0 {
                if started.elapsed() >= drain.grace {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            true
        } => {
            if done {
                tracing::info!("calls in flight finished; stopping");
            } else {
                tracing::warn!("calls still in flight after the grace period; stopping anyway");
            }
            Ok(())
        }
    };
    let _ = stop_health.send(());
    if let Some(task) = health_task {
        let _ = task.await;
    }
    served
}

/// The server's TLS settings: its identity and, for mTLS, the CA client
/// certificates must be signed by.
fn tls_config(files: &TlsFiles) -> Result<tonic::transport::ServerTlsConfig> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let cert = std::fs::read(&files.cert)
        .with_context(|| format!("cannot read --tls-cert {}", files.cert.display()))?;
    let key = std::fs::read(&files.key)
        .with_context(|| format!("cannot read --tls-key {}", files.key.display()))?;
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    if let Some(ca) = &files.client_ca {
        let ca =
            std::fs::read(ca).with_context(|| format!("cannot read --tls-ca {}", ca.display()))?;
        tls = tls.client_ca_root(Certificate::from_pem(ca));
    }
    Ok(tls)
}
