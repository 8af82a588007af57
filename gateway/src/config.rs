//! Command-line flags and environment of the gateway.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args as ClapArgs, ValueEnum};

use crate::toolsets::Toolsets;

/// Flags of `pgmcp-gateway` (each also readable from the env var shown in `--help`).
#[derive(Debug, Clone, ClapArgs)]
pub struct Args {
    /// Address the HTTP server (MCP at /mcp, /healthz, /readyz) listens on.
    #[arg(long, env = "PGMCP_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Workers to send calls to: comma-separated gRPC URLs (http://host:port).
    #[arg(
        long,
        env = "PGMCP_WORKERS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50051"
    )]
    pub workers: Vec<String>,

    /// Serve MCP over stdin/stdout instead of HTTP.
    #[arg(long)]
    pub stdio: bool,

    /// Host header values accepted on /mcp (DNS-rebinding protection), comma-separated.
    /// Defaults to loopback names; `*` accepts any host (only behind a proxy that checks Host).
    #[arg(
        long,
        env = "PGMCP_ALLOWED_HOSTS",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1,::1"
    )]
    pub allowed_hosts: Vec<String>,

    /// Rows a `query` returns when the caller sets no `max_rows`.
    #[arg(long, env = "PGMCP_DEFAULT_MAX_ROWS", default_value_t = 100)]
    pub default_max_rows: u64,

    /// Largest `max_rows` a caller may ask for.
    #[arg(long, env = "PGMCP_MAX_ROWS", default_value_t = 10_000)]
    pub max_rows: u64,

    /// Bytes of JSON rows a `query` returns at most; more rows are cut off
    /// with an explicit truncation note.
    #[arg(long, env = "PGMCP_MAX_RESULT_BYTES", default_value_t = 1024 * 1024)]
    pub max_result_bytes: u64,

    /// Timeout of a call that sets no `timeout_ms`, in milliseconds.
    #[arg(long, env = "PGMCP_DEFAULT_TIMEOUT_MS", default_value_t = 30_000)]
    pub default_timeout_ms: u32,

    /// Largest `timeout_ms` a caller may ask for, in milliseconds.
    #[arg(long, env = "PGMCP_MAX_TIMEOUT_MS", default_value_t = 300_000)]
    pub max_timeout_ms: u32,

    /// How long to wait for a connection to a worker, in milliseconds.
    #[arg(long, env = "PGMCP_WORKER_CONNECT_TIMEOUT_MS", default_value_t = 2_000)]
    pub worker_connect_timeout_ms: u64,

    /// Key that signs pagination cursors. Give every gateway of a fleet the
    /// same key so any of them can continue a cursor; without one, a random
    /// key is used and cursors only work on the gateway that issued them.
    #[arg(long, env = "PGMCP_CURSOR_SECRET", hide_env_values = true)]
    pub cursor_secret: Option<String>,

    /// File holding the cursor key (alternative to --cursor-secret).
    #[arg(long, env = "PGMCP_CURSOR_SECRET_FILE")]
    pub cursor_secret_file: Option<std::path::PathBuf>,

    /// How long a pagination cursor stays valid, in seconds.
    #[arg(long, env = "PGMCP_CURSOR_TTL_S", default_value_t = 3_600)]
    pub cursor_ttl_s: u64,

    /// Most queries in one `batch_query` call.
    #[arg(long, env = "PGMCP_MAX_BATCH_QUERIES", default_value_t = 20)]
    pub max_batch_queries: usize,

    /// Queries of one `batch_query` call run at the same time at most.
    #[arg(long, env = "PGMCP_BATCH_CONCURRENCY", default_value_t = 4)]
    pub batch_concurrency: usize,

    /// Most statements in one `transaction` call.
    #[arg(long, env = "PGMCP_MAX_TRANSACTION_STATEMENTS", default_value_t = 100)]
    pub max_transaction_statements: usize,

    /// Most rows in one `bulk_insert` call.
    #[arg(long, env = "PGMCP_MAX_BULK_ROWS", default_value_t = 100_000)]
    pub max_bulk_rows: usize,
    /// Toolsets to serve, comma-separated: `core` (the everyday tools),
    /// `dba` (database_health, top_queries, analyze_table, vacuum_table),
    /// `all`.
    #[arg(long, env = "PGMCP_TOOLSETS", default_value = "core")]
    pub toolsets: Vec<String>,

    /// Log format: `text` (human-readable) or `json`.
    #[arg(long, env = "PGMCP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Limits the gateway applies to every call before it reaches a worker.
#[derive(Debug, Clone)]
pub struct Limits {
    pub default_max_rows: u64,
    pub max_rows: u64,
    pub max_result_bytes: u64,
    pub default_timeout_ms: u32,
    pub max_timeout_ms: u32,
    pub max_batch_queries: usize,
    pub batch_concurrency: usize,
    pub max_transaction_statements: usize,
    pub max_bulk_rows: usize,
}

/// The validated gateway configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub workers: Vec<String>,
    pub stdio: bool,
    /// `None` when any Host is accepted.
    pub allowed_hosts: Option<Vec<String>>,
    pub limits: Limits,
    pub connect_timeout: Duration,
    /// Cursor signing key; `None` = random per process.
    pub cursor_secret: Option<Vec<u8>>,
    pub cursor_ttl: Duration,
    pub toolsets: Toolsets,
}

impl Config {
    pub fn from_args(args: &Args) -> Result<Self> {
        let workers: Vec<String> = args
            .workers
            .iter()
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty())
            .collect();
        if workers.is_empty() {
            bail!(
                "no workers configured: pass --workers http://host:port[,…] (or set PGMCP_WORKERS)"
            );
        }
        for w in &workers {
            if !(w.starts_with("http://") || w.starts_with("https://")) {
                bail!("worker address `{w}` must be a URL such as http://127.0.0.1:50051");
            }
        }
        if args.default_max_rows == 0 || args.max_rows == 0 {
            bail!("--default-max-rows and --max-rows must be at least 1");
        }
        let cursor_secret = match (&args.cursor_secret, &args.cursor_secret_file) {
            (Some(_), Some(_)) => {
                bail!("give either --cursor-secret or --cursor-secret-file, not both")
            }
            (Some(s), None) => Some(s.clone().into_bytes()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the cursor key from {}", path.display()))?;
                Some(text.trim().as_bytes().to_vec())
            }
            (None, None) => None,
        };
        if cursor_secret.as_ref().is_some_and(|k| k.len() < 16) {
            bail!("the cursor key must be at least 16 bytes long");
        }
        let allowed_hosts = if args.allowed_hosts.iter().any(|h| h.trim() == "*") {
            None
        } else {
            Some(
                args.allowed_hosts
                    .iter()
                    .map(|h| h.trim().to_string())
                    .collect(),
            )
        };
        Ok(Config {
            listen: args.listen,
            workers,
            stdio: args.stdio,
            allowed_hosts,
            limits: Limits {
                default_max_rows: args.default_max_rows.min(args.max_rows),
                max_rows: args.max_rows,
                max_result_bytes: args.max_result_bytes,
                default_timeout_ms: args.default_timeout_ms.min(args.max_timeout_ms),
                max_timeout_ms: args.max_timeout_ms,
                max_batch_queries: args.max_batch_queries.max(1),
                batch_concurrency: args.batch_concurrency.max(1),
                max_transaction_statements: args.max_transaction_statements.max(1),
                max_bulk_rows: args.max_bulk_rows.max(1),
            },
            connect_timeout: Duration::from_millis(args.worker_connect_timeout_ms),
            cursor_secret,
            cursor_ttl: Duration::from_secs(args.cursor_ttl_s.max(1)),
            toolsets: Toolsets::parse(&args.toolsets)?,
        })
    }
}
