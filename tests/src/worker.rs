//! Workers on real sockets: in-process ([`InProcessWorker`]) for speed, and a
//! gRPC client for talking to any worker directly.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Parser;
use futures::StreamExt;
use pgmcp_proto::v1::worker_client::WorkerClient;
use pgmcp_proto::v1::{QueryRequest, Summary, query_response::Part};
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// A worker served from this process on a loopback port.
pub struct InProcessWorker {
    pub addr: SocketAddr,
    /// Where its `/metrics` is served.
    pub metrics_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<()>>>,
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: pgmcp_worker::Args,
}

/// The worker's configuration from the given command-line flags (as
/// `pgmcp-worker` would take them), for tests that work below the RPCs.
pub fn config(flags: &[&str]) -> Result<pgmcp_worker::Config> {
    let mut argv = vec!["pgmcp-worker"];
    argv.extend_from_slice(flags);
    let cli = Cli::try_parse_from(argv).context("worker flags")?;
    pgmcp_worker::Config::from_args(&cli.args)
}

impl InProcessWorker {
    /// Starts a worker with the given command-line flags (as `pgmcp-worker`
    /// would take them); `--listen` is chosen here. Returns once the worker
    /// serves: its health check (which needs no token) answers SERVING —
    /// on `--health-listen` when given, which a worker with TLS needs here.
    pub async fn start(flags: &[&str]) -> Result<Self> {
        let mut argv = vec!["pgmcp-worker", "--listen", "127.0.0.1:0"];
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv).context("worker flags")?;
        let config = pgmcp_worker::Config::from_args(&cli.args)?;
        let probe_addr = match (config.security.health_listen, &config.security.tls) {
            (Some(addr), _) => Some(addr),
            (None, None) => None,
            (None, Some(_)) => anyhow::bail!(
                "a worker with TLS needs --health-listen in tests, to tell when it is ready"
            ),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let metrics_addr = metrics_listener.local_addr()?;
        let probe = format!("http://{}", probe_addr.unwrap_or(addr));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(pgmcp_worker::server::serve_with_metrics(
            config,
            listener,
            Some(metrics_listener),
            async move {
                let _ = stopped.await;
            },
        ));
        let worker = InProcessWorker {
            addr,
            metrics_addr,
            stop: Some(stop),
            task: Some(task),
        };
        // Ready once health answers (targets are connected before serving).
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if serving(&probe).await {
                return Ok(worker);
            }
            if worker.task.as_ref().is_some_and(|t| t.is_finished())
                || tokio::time::Instant::now() > deadline
            {
                let mut w = worker;
                return Err(w
                    .stop()
                    .await
                    .err()
                    .unwrap_or_else(|| anyhow::anyhow!("worker did not become ready")));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// `http://addr`, as gateways take it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A gRPC client connected to this worker.
    pub async fn client(&self) -> Result<WorkerClient<Channel>> {
        Ok(WorkerClient::connect(self.url()).await?)
    }

    /// Stops the worker and returns how its server ended.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.context("worker task panicked")?,
            None => Ok(()),
        }
    }
}

impl Drop for InProcessWorker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// True when the plain-text health check at `url` answers SERVING.
async fn serving(url: &str) -> bool {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let Ok(channel) = tonic::transport::Endpoint::from_shared(url.to_string()) else {
        return false;
    };
    let Ok(channel) = channel.connect().await else {
        return false;
    };
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "pgmcp.v1.Worker".into(),
        })
        .await
        .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
}

/// A whole `Query` result collected from the stream.
#[derive(Debug)]
pub struct QueryResult {
    pub columns: Vec<(String, String)>,
    pub rows: Vec<serde_json::Value>,
    pub summary: Summary,
    /// How many `RowBatch` messages carried the rows.
    pub batches: usize,
}

/// Runs `sql` through `client` and collects the stream; a failed call
/// returns the contract error.
pub async fn query(
    client: &mut WorkerClient<Channel>,
    req: QueryRequest,
) -> std::result::Result<QueryResult, pgmcp_proto::error::Error> {
    let mut stream = client
        .query(req)
        .await
        .map_err(|s| pgmcp_proto::error::Error::from_status(&s))?
        .into_inner();
    let mut out = QueryResult {
        columns: Vec::new(),
        rows: Vec::new(),
        summary: Summary::default(),
        batches: 0,
    };
    while let Some(msg) = stream.next().await {
        let msg = msg.map_err(|s| pgmcp_proto::error::Error::from_status(&s))?;
        match msg.part {
            Some(Part::Columns(c)) => {
                out.columns = c
                    .columns
                    .into_iter()
                    .map(|c| (c.name, c.type_name))
                    .collect();
            }
            Some(Part::Rows(batch)) => {
                out.batches += 1;
                for row in batch.rows {
                    out.rows
                        .push(serde_json::from_slice(&row).unwrap_or_else(|e| {
                            panic!("row is not JSON ({e}): {}", String::from_utf8_lossy(&row))
                        }));
                }
            }
            Some(Part::Summary(s)) => out.summary = s,
            None => {}
        }
    }
    Ok(out)
}

/// A `QueryRequest` for `sql` with no params and default limits.
pub fn sql(sql: &str) -> QueryRequest {
    QueryRequest {
        sql: sql.to_string(),
        ..QueryRequest::default()
    }
}
