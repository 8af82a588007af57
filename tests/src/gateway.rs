//! Gateways on real sockets: in-process for speed.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Parser;
use tokio::sync::oneshot;

/// A gateway served from this process on a loopback port.
pub struct InProcessGateway {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<()>>>,
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: pgmcp_gateway::Args,
}

impl InProcessGateway {
    /// Starts a gateway for `workers` (URLs) with extra command-line flags.
    pub async fn start(workers: &[String], flags: &[&str]) -> Result<Self> {
        let workers = workers.join(",");
        let mut argv = vec![
            "pgmcp-gateway",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            &workers,
        ];
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv).context("gateway flags")?;
        let config = pgmcp_gateway::Config::from_args(&cli.args)?;
        let mcp = pgmcp_gateway::service(&config)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(pgmcp_gateway::serve_http(
            config,
            mcp,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        let mut gateway = InProcessGateway {
            addr,
            stop: Some(stop),
            task: Some(task),
        };
        // Ready once /healthz answers; a start-up failure (bad JWKS, …) is
        // returned here rather than at stop().
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if gateway.task.as_ref().is_some_and(|t| t.is_finished()) {
                return Err(gateway
                    .stop()
                    .await
                    .err()
                    .unwrap_or_else(|| anyhow::anyhow!("the gateway stopped during start-up")));
            }
            if let Ok((200, _)) = http_get(addr, "/healthz", "127.0.0.1").await {
                return Ok(gateway);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("the gateway did not become ready");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The MCP endpoint, `http://127.0.0.1:port/mcp`.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// `http://127.0.0.1:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the gateway.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.context("gateway task panicked")?,
            None => Ok(()),
        }
    }
}

impl Drop for InProcessGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A minimal HTTP/1.1 GET returning (status, body); enough for probes.
pub async fn http_get(addr: SocketAddr, path: &str, host: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
