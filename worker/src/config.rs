//! Command-line flags and environment of the worker, and the validated
//! configuration built from them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use pgmcp_proto::secret;
use pgmcp_telemetry::LogArgs;

/// Flags of `pgmcp-worker` (each also readable from the env var shown in `--help`).
// Deliberately not `Debug`: it holds secrets (tokens, database URLs).
#[derive(Clone, ClapArgs)]
pub struct Args {
    /// Address the gRPC server listens on.
    #[arg(long, env = "PGMCP_WORKER_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Database to serve, as a PostgreSQL URL. Its target name is the
    /// database name. libpq's PG* variables fill in what the URL leaves out.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// File holding the database URL (e.g. a mounted Kubernetes Secret), read
    /// at start-up instead of --database-url; surrounding whitespace is ignored.
    #[arg(
        long,
        env = "DATABASE_URL_FILE",
        value_name = "PATH",
        conflicts_with = "database_url"
    )]
    pub database_url_file: Option<std::path::PathBuf>,

    /// Another database target, as NAME=URL. Repeat for several targets.
    #[arg(
        long = "database",
        value_name = "NAME=URL",
        env = "PGMCP_DATABASES",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub databases: Vec<String>,

    /// File of more targets, one NAME=URL per line (`#` starts a comment).
    #[arg(long, env = "PGMCP_DATABASES_FILE")]
    pub databases_file: Option<PathBuf>,

    /// Access mode: MODE for every target, or NAME=MODE for one target.
    /// Repeatable. MODE is `read-only` (the default) or `read-write`.
    #[arg(
        long = "mode",
        value_name = "[NAME=]MODE",
        env = "PGMCP_MODE",
        value_delimiter = ','
    )]
    pub modes: Vec<String>,

    /// Name of this worker instance; also the `application_name` of its
    /// PostgreSQL sessions and its traces' `service.instance.id`. Defaults
    /// to `pgmcp-worker-<hostname>-<pid>`, or the pod name on Kubernetes.
    #[arg(long, env = "PGMCP_WORKER_NAME")]
    pub name: Option<String>,

    /// Largest number of connections in each target's pool.
    #[arg(long, env = "PGMCP_POOL_MAX_CONNECTIONS", default_value_t = 10)]
    pub pool_max_connections: u32,

    /// Connections each pool keeps open even when idle.
    #[arg(long, env = "PGMCP_POOL_MIN_CONNECTIONS", default_value_t = 1)]
    pub pool_min_connections: u32,

    /// How long a call waits for a free pooled connection, in milliseconds.
    #[arg(long, env = "PGMCP_POOL_ACQUIRE_TIMEOUT_MS", default_value_t = 5_000)]
    pub pool_acquire_timeout_ms: u64,

    /// Idle connections above the minimum are closed after this many seconds.
    #[arg(long, env = "PGMCP_POOL_IDLE_TIMEOUT_S", default_value_t = 300)]
    pub pool_idle_timeout_s: u64,

    /// Connections are replaced after this many seconds.
    #[arg(long, env = "PGMCP_POOL_MAX_LIFETIME_S", default_value_t = 1_800)]
    pub pool_max_lifetime_s: u64,

    /// Statements each pooled connection keeps prepared (sqlx's statement
    /// cache, least recently used out first), unless a target's URL sets
    /// `statement-cache-capacity`. Every call checks its connection for
    /// leftover SQL-level prepared statements, which reads all prepared
    /// statements of the session: each one kept costs every call 1–1.5 µs
    /// of PostgreSQL's CPU (docs/scaling.md).
    #[arg(long, env = "PGMCP_STATEMENT_CACHE_CAPACITY", default_value_t = STATEMENT_CACHE_CAPACITY)]
    pub statement_cache_capacity: usize,

    /// How long start-up waits for each database before giving up, in milliseconds.
    #[arg(long, env = "PGMCP_CONNECT_TIMEOUT_MS", default_value_t = 10_000)]
    pub connect_timeout_ms: u64,

    /// Statement timeout of a call that asks for none, in milliseconds.
    #[arg(long, env = "PGMCP_STATEMENT_TIMEOUT_MS", default_value_t = 30_000)]
    pub statement_timeout_ms: u32,

    /// Largest statement timeout a call may ask for, in milliseconds.
    #[arg(
        long,
        env = "PGMCP_MAX_STATEMENT_TIMEOUT_MS",
        default_value_t = 300_000
    )]
    pub max_statement_timeout_ms: u32,

    /// `idle_in_transaction_session_timeout` of every session, in milliseconds.
    #[arg(
        long,
        env = "PGMCP_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub idle_in_transaction_timeout_ms: u32,

    /// Rows returned by a query that asks for no row limit.
    #[arg(long, env = "PGMCP_DEFAULT_MAX_ROWS", default_value_t = 1_000)]
    pub default_max_rows: u64,

    /// Largest row limit a query may ask for.
    #[arg(long, env = "PGMCP_MAX_ROWS", default_value_t = 100_000)]
    pub max_rows: u64,

    /// Bytes of JSON rows returned by a query that asks for no byte limit.
    #[arg(long, env = "PGMCP_DEFAULT_MAX_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub default_max_bytes: u64,

    /// Largest byte limit a query may ask for.
    #[arg(long, env = "PGMCP_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_bytes: u64,

    /// Largest SQL text accepted, in bytes.
    #[arg(long, env = "PGMCP_MAX_SQL_BYTES", default_value_t = 1024 * 1024)]
    pub max_sql_bytes: usize,

    /// Most parameters accepted per statement.
    #[arg(long, env = "PGMCP_MAX_PARAMS", default_value_t = 1_000)]
    pub max_params: usize,

    /// Most statements in one `transaction` call.
    #[arg(long, env = "PGMCP_MAX_TRANSACTION_STATEMENTS", default_value_t = 100)]
    pub max_transaction_statements: usize,

    /// Most rows in one `bulk_insert` call.
    #[arg(long, env = "PGMCP_MAX_BULK_ROWS", default_value_t = 1_000_000)]
    pub max_bulk_rows: usize,
    /// How long the cached catalog (schemas, tables, table descriptions)
    /// stays fresh, in seconds; 0 reads the catalog on every call.
    #[arg(long, env = "PGMCP_SCHEMA_CACHE_TTL_S", default_value_t = 60)]
    pub schema_cache_ttl_s: u64,
    /// Recent calls kept in memory for the `History` RPC (the gateway's
    /// `query-history://recent` resource); 0 keeps none.
    #[arg(long, env = "PGMCP_HISTORY_SIZE", default_value_t = 500)]
    pub history_size: usize,

    /// On SIGTERM/SIGINT: how long calls in flight may take to finish, in
    /// milliseconds, before the worker exits anyway. Keep it below the
    /// orchestrator's kill timeout (Kubernetes: terminationGracePeriodSeconds).
    #[arg(long, env = "PGMCP_SHUTDOWN_GRACE_MS", default_value_t = 25_000)]
    pub shutdown_grace_ms: u64,

    /// On SIGTERM/SIGINT: how long the worker keeps accepting calls after
    /// its health turns NOT_SERVING, in milliseconds, so gateways take it out
    /// of rotation before it stops accepting connections.
    #[arg(long, env = "PGMCP_DRAIN_DELAY_MS", default_value_t = 1_000)]
    pub drain_delay_ms: u64,

    /// Close each gateway connection after this many seconds (gracefully),
    /// so gateways spread over workers added later; 0 keeps connections.
    #[arg(long, env = "PGMCP_MAX_CONNECTION_AGE_S", default_value_t = 300)]
    pub max_connection_age_s: u64,

    /// Serve read-only targets even when the role is a superuser, has
    /// BYPASSRLS, or can SET ROLE to such a role (a warning is logged).
    /// Without it the worker refuses to start: such a role can turn
    /// read-only off from SQL.
    #[arg(long, env = "PGMCP_ALLOW_PRIVILEGED_ROLE")]
    pub allow_privileged_role: bool,

    /// Calls (other than Info and health checks) run at once; more are refused
    /// with RESOURCE_EXHAUSTED so gateways can retry elsewhere. 0 means the
    /// total pool size (--pool-max-connections × targets).
    #[arg(long, env = "PGMCP_MAX_CONCURRENT_CALLS", default_value_t = 0)]
    pub max_concurrent_calls: usize,

    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "PGMCP_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Token gateways must send (`authorization: Bearer …`); calls without it
    /// are refused with UNAUTHENTICATED (health checks stay open). Prefer the
    /// environment or the file.
    #[arg(long, env = "PGMCP_WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<String>,

    /// File holding the worker token.
    #[arg(long, env = "PGMCP_WORKER_TOKEN_FILE")]
    pub worker_token_file: Option<PathBuf>,

    /// Server certificate (PEM): serve gRPC over TLS. Needs --tls-key.
    #[arg(long, env = "PGMCP_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "PGMCP_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// CA certificate (PEM): require gateways to present a client certificate
    /// it signed (mutual TLS). Needs --tls-cert and --tls-key.
    #[arg(long, env = "PGMCP_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// Also serve grpc.health.v1 alone, in plain text and without a token, on
    /// this address (for probes that cannot do TLS or send tokens).
    #[arg(long, env = "PGMCP_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,

    /// Threads that serve calls [default: one per CPU the process may use].
    #[arg(long, env = "PGMCP_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,

    #[command(flatten)]
    pub logs: LogArgs,

    /// Address of a small HTTP server for Prometheus (`GET /metrics`).
    /// Off unless set.
    #[arg(long, env = "PGMCP_WORKER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Append a SQLCommenter comment (`/*traceparent='…'*/`) to the SQL of
    /// traced calls, so PostgreSQL's views and logs lead to the trace.
    #[arg(
        long,
        env = "PGMCP_SQL_COMMENT",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub sql_comment: bool,
}

/// Largest `--history-size` (each entry keeps up to 2048 characters of SQL).
const MAX_HISTORY_SIZE: usize = 100_000;

/// Whether a target accepts writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ReadOnly,
    ReadWrite,
}

impl Mode {
    fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "read-only" | "ro" => Ok(Mode::ReadOnly),
            "read-write" | "rw" => Ok(Mode::ReadWrite),
            other => bail!("unknown access mode `{other}`: use `read-only` or `read-write`"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadOnly => "read-only",
            Mode::ReadWrite => "read-write",
        }
    }
}

/// One configured database target.
#[derive(Clone)]
pub struct TargetConfig {
    pub name: String,
    pub url: String,
    pub mode: Mode,
}

impl TargetConfig {
    /// The driver's statement cache as the URL sets it
    /// (`?statement-cache-capacity=N`), which then wins over
    /// `--statement-cache-capacity`.
    pub fn statement_cache(&self) -> Option<String> {
        url::Url::parse(&self.url)
            .ok()?
            .query_pairs()
            .find_map(|(k, v)| (k == "statement-cache-capacity").then(|| v.into_owned()))
    }
}

impl std::fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetConfig")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("mode", &self.mode)
            .finish()
    }
}

/// Prepared statements a pooled connection keeps by default
/// (`--statement-cache-capacity`); sqlx's own default is 100.
pub const STATEMENT_CACHE_CAPACITY: usize = 16;

/// Why a statement cache of 0 is refused, from the flag or a URL.
const NO_STATEMENT_CACHE: &str = "the driver closes the statements it prepares as they leave this cache, \
     and without one would leave them open on the server";

/// Pool settings shared by all targets.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    /// Prepared statements kept per connection (see `Args`).
    pub statement_cache_capacity: usize,
    pub connect_timeout: Duration,
    pub statement_timeout_ms: u32,
    pub idle_in_transaction_timeout_ms: u32,
}

/// Per-call limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub default_timeout_ms: u32,
    pub max_timeout_ms: u32,
    pub default_max_rows: u64,
    pub max_rows: u64,
    pub default_max_bytes: u64,
    pub max_bytes: u64,
    pub max_sql_bytes: usize,
    pub max_params: usize,
    pub max_transaction_statements: usize,
    pub max_bulk_rows: usize,
}

/// TLS for the gRPC server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA of the client certificates; `Some` requires them (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// Who may call the worker, and how much at once.
#[derive(Clone, Default)]
pub struct Security {
    /// SHA-256 of the token gateways must send, if one is required.
    pub token_digest: Option<[u8; 32]>,
    pub tls: Option<TlsFiles>,
    pub allow_privileged_role: bool,
    /// Calls admitted at once.
    pub max_concurrent_calls: usize,
    pub max_message_bytes: usize,
    pub health_listen: Option<SocketAddr>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("token", &self.token_digest.map(|_| "***"))
            .field("tls", &self.tls)
            .field("allow_privileged_role", &self.allow_privileged_role)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("health_listen", &self.health_listen)
            .finish()
    }
}

/// The validated worker configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub name: String,
    pub targets: Vec<TargetConfig>,
    pub pool: PoolSettings,
    pub limits: Limits,
    /// Lifetime of the schema cache's entries.
    pub schema_cache_ttl: Duration,
    /// Entries of the call history ring.
    pub history_size: usize,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Whether traced SQL carries a SQLCommenter comment.
    pub sql_comment: bool,
    pub security: Security,
    pub drain: Drain,
}

/// How the worker stops, and how long connections live.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    /// Time calls in flight get to finish after a stop signal.
    pub grace: Duration,
    /// Time between NOT_SERVING and no longer accepting connections.
    pub delay: Duration,
    /// Maximum age of a connection; `None` keeps them.
    pub max_connection_age: Option<Duration>,
}

impl Config {
    pub fn from_args(args: &Args) -> Result<Self> {
        let mut targets = Vec::new();
        let file_url = args
            .database_url_file
            .as_deref()
            .map(read_url_file)
            .transpose()?;
        let url = match (&args.database_url, file_url) {
            (Some(_), Some(_)) => {
                bail!(
                    "give either --database-url (DATABASE_URL) or --database-url-file (DATABASE_URL_FILE), not both"
                )
            }
            (Some(u), None) => Some(u.clone()),
            (None, f) => f,
        };
        if let Some(url) = url {
            targets.push(TargetConfig {
                name: default_target_name(&url)?,
                url,
                mode: Mode::ReadOnly,
            });
        }
        let mut specs = args.databases.clone();
        if let Some(path) = &args.databases_file {
            let text = secret::read_file(path, "NAME=URL lines")?;
            specs.extend(
                text.expose()
                    .lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                    .filter(|l| !l.is_empty()),
            );
        }
        for spec in &specs {
            let (name, url) = spec
                .split_once('=')
                .filter(|(n, u)| !n.trim().is_empty() && !u.trim().is_empty())
                .with_context(|| {
                    format!("--database expects NAME=URL, got `{}`", redact_url(spec))
                })?;
            targets.push(TargetConfig {
                name: name.trim().to_string(),
                url: url.trim().to_string(),
                mode: Mode::ReadOnly,
            });
        }
        if targets.is_empty() {
            bail!(
                "no database configured: pass --database-url URL (or set DATABASE_URL), \
                 --database-url-file PATH (or set DATABASE_URL_FILE), or --database NAME=URL"
            );
        }
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].iter().any(|o| o.name == t.name) {
                bail!(
                    "two database targets are named `{}`; give them distinct names with --database NAME=URL",
                    t.name
                );
            }
        }
        for spec in &args.modes {
            match spec.split_once('=') {
                None => {
                    let mode = Mode::parse(spec)?;
                    targets.iter_mut().for_each(|t| t.mode = mode);
                }
                Some((name, mode)) => {
                    let mode = Mode::parse(mode)?;
                    let target = targets
                        .iter_mut()
                        .find(|t| t.name == name.trim())
                        .with_context(|| {
                            format!("--mode names `{name}`, which is not a configured database")
                        })?;
                    target.mode = mode;
                }
            }
        }
        if args.pool_max_connections == 0 {
            bail!("--pool-max-connections must be at least 1");
        }
        if args.statement_cache_capacity == 0 {
            bail!("--statement-cache-capacity must be at least 1: {NO_STATEMENT_CACHE}");
        }
        for t in &targets {
            if t.statement_cache().as_deref().map(str::trim) == Some("0") {
                bail!(
                    "database `{}`: statement-cache-capacity=0 in its URL {}: {NO_STATEMENT_CACHE}; use at least 1",
                    t.name,
                    redact_url(&t.url)
                );
            }
        }
        if args.pool_min_connections > args.pool_max_connections {
            bail!(
                "--pool-min-connections ({}) exceeds --pool-max-connections ({})",
                args.pool_min_connections,
                args.pool_max_connections
            );
        }
        if args.statement_timeout_ms > args.max_statement_timeout_ms {
            bail!(
                "--statement-timeout-ms ({}) exceeds --max-statement-timeout-ms ({})",
                args.statement_timeout_ms,
                args.max_statement_timeout_ms
            );
        }
        if args.history_size > MAX_HISTORY_SIZE {
            bail!(
                "--history-size {} is over the limit of {MAX_HISTORY_SIZE} entries",
                args.history_size
            );
        }
        let name = args.name.clone().unwrap_or_else(default_instance_name);
        let token = secret::value_or_file(
            args.worker_token.as_deref(),
            args.worker_token_file.as_deref(),
            "worker-token",
            "the worker token",
        )?;
        let tls = match (&args.tls_cert, &args.tls_key, &args.tls_ca) {
            (None, None, None) => None,
            (Some(cert), Some(key), ca) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: ca.clone(),
            }),
            (None, None, Some(_)) => bail!(
                "--tls-ca (require client certificates) needs the worker's own --tls-cert and --tls-key"
            ),
            _ => bail!("--tls-cert and --tls-key go together"),
        };
        if args.max_message_bytes == 0 {
            bail!("--max-message-bytes must be at least 1");
        }
        let max_concurrent_calls = match args.max_concurrent_calls {
            0 => (args.pool_max_connections as usize).saturating_mul(targets.len()),
            n => n,
        };
        Ok(Config {
            listen: args.listen,
            name,
            targets,
            pool: PoolSettings {
                max_connections: args.pool_max_connections,
                min_connections: args.pool_min_connections,
                acquire_timeout: Duration::from_millis(args.pool_acquire_timeout_ms),
                idle_timeout: Duration::from_secs(args.pool_idle_timeout_s),
                max_lifetime: Duration::from_secs(args.pool_max_lifetime_s),
                statement_cache_capacity: args.statement_cache_capacity,
                connect_timeout: Duration::from_millis(args.connect_timeout_ms),
                statement_timeout_ms: args.statement_timeout_ms,
                idle_in_transaction_timeout_ms: args.idle_in_transaction_timeout_ms,
            },
            limits: Limits {
                default_timeout_ms: args.statement_timeout_ms,
                max_timeout_ms: args.max_statement_timeout_ms,
                default_max_rows: args.default_max_rows.min(args.max_rows),
                max_rows: args.max_rows,
                default_max_bytes: args.default_max_bytes.min(args.max_bytes),
                max_bytes: args.max_bytes,
                max_sql_bytes: args.max_sql_bytes,
                max_params: args.max_params,
                max_transaction_statements: args.max_transaction_statements,
                max_bulk_rows: args.max_bulk_rows,
            },
            schema_cache_ttl: Duration::from_secs(args.schema_cache_ttl_s),
            history_size: args.history_size,
            drain: Drain {
                grace: Duration::from_millis(args.shutdown_grace_ms),
                delay: Duration::from_millis(args.drain_delay_ms.min(args.shutdown_grace_ms)),
                max_connection_age: (args.max_connection_age_s > 0)
                    .then(|| Duration::from_secs(args.max_connection_age_s)),
            },
            metrics_listen: args.metrics_listen,
            sql_comment: args.sql_comment,
            security: Security {
                token_digest: token.map(|t| crate::auth::digest(t.expose().as_bytes())),
                tls,
                allow_privileged_role: args.allow_privileged_role,
                max_concurrent_calls,
                max_message_bytes: args.max_message_bytes,
                health_listen: args.health_listen,
            },
        })
    }
}

/// Reads a database URL from `path` (`--database-url-file`). The file's
/// content never appears in an error: it holds a password.
fn read_url_file(path: &std::path::Path) -> Result<String> {
    let content = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the database URL from --database-url-file {}",
            path.display()
        )
    })?;
    let url = content.trim();
    if url.is_empty() {
        bail!(
            "--database-url-file {} is empty: it must hold one URL such as postgres://user:password@host:5432/dbname",
            path.display()
        );
    }
    let valid = url::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "postgres" | "postgresql") && u.has_host());
    if !valid {
        bail!(
            "--database-url-file {} does not hold a URL such as postgres://user:password@host:5432/dbname",
            path.display()
        );
    }
    Ok(url.to_string())
}

/// `pgmcp-worker-<hostname>-<pid>`; on Kubernetes the pod name, which is
/// unique already (and what traces show as `service.instance.id`).
fn default_instance_name() -> String {
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return pgmcp_telemetry::otlp::default_instance_id();
    }
    format!(
        "pgmcp-worker-{}-{}",
        pgmcp_telemetry::otlp::hostname(),
        std::process::id()
    )
}

/// A target's default name: the database named in its URL, else `PGDATABASE`,
/// else the user name (libpq's rule), else `postgres`.
fn default_target_name(url: &str) -> Result<String> {
    let parsed = url::Url::parse(url).with_context(|| {
        format!(
            "the database URL `{}` is not a valid URL (expected postgres://user@host:port/dbname)",
            redact_url(url)
        )
    })?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        bail!(
            "the database URL must start with postgres:// or postgresql://, got `{}`",
            redact_url(url)
        );
    }
    let db = parsed.path().trim_start_matches('/');
    if !db.is_empty() {
        return Ok(db.to_string());
    }
    if let Ok(db) = std::env::var("PGDATABASE")
        && !db.is_empty()
    {
        return Ok(db);
    }
    if !parsed.username().is_empty() {
        return Ok(parsed.username().to_string());
    }
    Ok(std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into()))
}

/// `url` with any password replaced by `***`, safe to print.
pub fn redact_url(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url) {
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some("***"));
        }
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        if !pairs.is_empty() {
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return parsed.to_string();
    }
    // Not a URL: hide everything after a `:` up to an `@`, like user:secret@host.
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_url("postgres://u@h/db?password=secret&sslmode=require"),
            "postgres://u@h/db?password=***&sslmode=require"
        );
        assert!(!redact_url("sales=postgres://u:secret@h/db").contains("secret"));
    }

    #[test]
    fn target_name_defaults_to_database() {
        assert_eq!(
            default_target_name("postgres://u@h:1/shop").ok().as_deref(),
            Some("shop")
        );
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// Flags parsed as the binary would, with the database chosen explicitly
    /// (whatever DATABASE_URL the environment running the tests may hold).
    fn args_with_url_file(path: &std::path::Path) -> anyhow::Result<Args> {
        use clap::Parser;
        let mut args = Cli::try_parse_from(["pgmcp-worker"])?.args;
        args.database_url = None;
        args.databases.clear();
        args.modes.clear();
        args.database_url_file = Some(path.to_path_buf());
        Ok(args)
    }

    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(tag: &str, content: &str) -> anyhow::Result<Self> {
            let path = std::env::temp_dir()
                .join(format!("pgmcp-worker-config-{tag}-{}", std::process::id()));
            std::fs::write(&path, content)?;
            Ok(TempFile(path))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn reads_the_database_url_from_a_file() -> anyhow::Result<()> {
        let file = TempFile::new("ok", "postgres://u:secret@db.internal:5432/shop\n")?;
        let config = Config::from_args(&args_with_url_file(&file.0)?)?;
        assert_eq!(config.targets.len(), 1);
        assert_eq!(config.targets[0].name, "shop");
        assert_eq!(
            config.targets[0].url,
            "postgres://u:secret@db.internal:5432/shop"
        );
        assert!(!format!("{config:?}").contains("secret"));
        Ok(())
    }

    #[test]
    fn the_statement_cache_is_small_by_default_and_never_off() -> anyhow::Result<()> {
        let file = TempFile::new("cache", "postgres://u@db.internal/shop\n")?;
        let mut args = args_with_url_file(&file.0)?;
        assert_eq!(
            Config::from_args(&args)?.pool.statement_cache_capacity,
            STATEMENT_CACHE_CAPACITY
        );
        args.statement_cache_capacity = 0;
        let err = Config::from_args(&args)
            .err()
            .context("a statement cache of 0 was accepted")?;
        assert!(
            format!("{err:#}").contains("--statement-cache-capacity must be at least 1"),
            "{err:#}"
        );
        Ok(())
    }

    #[test]
    fn a_url_may_set_the_statement_cache_itself() {
        let target = |url: &str| TargetConfig {
            name: "t".into(),
            url: url.into(),
            mode: Mode::ReadOnly,
        };
        assert_eq!(
            target("postgres://u:p@db/app?sslmode=require&statement-cache-capacity=64")
                .statement_cache()
                .as_deref(),
            Some("64")
        );
        assert_eq!(
            target("postgres://u:p@db/app?sslmode=require").statement_cache(),
            None
        );
        assert_eq!(target("not a url").statement_cache(), None);
    }

    #[test]
    fn a_bad_database_url_file_is_explained_without_its_content() -> anyhow::Result<()> {
        let missing = std::env::temp_dir().join("pgmcp-worker-config-no-such-file");
        let err = Config::from_args(&args_with_url_file(&missing)?)
            .err()
            .context("a missing file was accepted")?;
        let msg = format!("{err:#}");
        assert!(msg.contains("cannot read the database URL"), "{msg}");
        assert!(msg.contains("pgmcp-worker-config-no-such-file"), "{msg}");

        let empty = TempFile::new("empty", " \n")?;
        let err = Config::from_args(&args_with_url_file(&empty.0)?)
            .err()
            .context("an empty file was accepted")?;
        assert!(format!("{err:#}").contains("is empty"), "{err:#}");

        // Only a password in the file, by mistake: the error must not print it.
        let garbage = TempFile::new("garbage", "hunter2-secret\n")?;
        let err = Config::from_args(&args_with_url_file(&garbage.0)?)
            .err()
            .context("a file without a URL was accepted")?;
        let msg = format!("{err:#}");
        assert!(msg.contains("does not hold a URL"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        Ok(())
    }

    #[test]
    fn database_url_and_database_url_file_exclude_each_other() {
        use clap::Parser;
        let parsed = Cli::try_parse_from([
            "pgmcp-worker",
            "--database-url",
            "postgres://u@h/db",
            "--database-url-file",
            "/run/secrets/url",
        ]);
        assert!(parsed.is_err());
    }
}
