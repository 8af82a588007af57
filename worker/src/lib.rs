//! pgmcp worker: owns the database connections and runs SQL for gateways.
//!
//! Map: [`config`] (flags → [`config::Config`]), [`targets`] (one pool per
//! database), [`service`] (the gRPC service), [`session`] (a call's
//! transaction on its connection), [`statement`] (prepare, bind, encode,
//! collect one statement), [`params`] (binding), [`decode`] (values → JSON),
//! [`catalog`] (type names), [`error`] (failures → the contract's error),
//! [`server`] (assembly: TLS, layers), [`auth`] (worker token, the caller's
//! principal), [`calls`] (admission limit and per-call log line),
//! [`schema_cache`] (the cached catalog), [`introspect`] (schemas, tables,
//! table descriptions), [`names`] (SQL names as text), [`suggest`]
//! (did-you-mean hints), [`history`] (the ring of recent calls),
//! [`pool_stats`] (pool state for `Info`), [`dba`] (health checks,
//! pg_stat_statements, ANALYZE/VACUUM). One module per RPC: [`query`]
//! (streaming reads), [`execute`], [`transaction`], [`explain`],
//! [`bulk_insert`].
//! [`telemetry`] (traces, metrics, logs).

pub mod auth;
pub mod bulk_insert;
pub mod calls;
pub mod cancel;
pub mod catalog;
pub mod config;
pub mod dba;
pub mod decode;
pub mod error;
pub mod execute;
pub mod explain;
pub mod history;
pub mod introspect;
pub mod names;
pub mod params;
pub mod pool_stats;
pub mod query;
pub mod schema_cache;
pub mod server;
pub mod service;
pub mod session;
pub mod statement;
pub mod suggest;
pub mod targets;
pub mod telemetry;
pub mod transaction;

use anyhow::{Context, Result};

pub use config::{Args, Config};

/// Runs a worker with `args` until SIGINT or SIGTERM: sets up logging and
/// trace export, serves, then flushes the spans still buffered.
pub async fn run(args: Args) -> Result<()> {
    let config = Config::from_args(&args)?;
    let telemetry = telemetry::init(&config, &args.logs)?;
    let served = serve_until_signal(config).await;
    telemetry.shutdown().await;
    served
}

async fn serve_until_signal(config: Config) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    server::serve(config, listener, shutdown_signal()).await
}

/// Completes on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
