//! Command-line flags and environment of the gateway.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use pgmcp_telemetry::LogArgs;

use crate::auth::jwt::JwtSettings;
use crate::auth::prm::ResourceMetadata;
use crate::auth::tokens::TokenStore;
use crate::fleet::discovery::{self, Entry, Sources};
use crate::secret::{self, Secret};
use crate::toolsets::Toolsets;
use crate::worker_link::{LinkConfig, TlsFiles};

/// Flags of `pgmcp-gateway` (each also readable from the env var shown in `--help`).
// Deliberately not `Debug`: it holds secrets (tokens, the HS256 secret).
// Its doc comments are `--help` text, where URLs stay bare.
#[allow(rustdoc::bare_urls)]
#[derive(Clone, ClapArgs)]
pub struct Args {
    /// Address the HTTP server (MCP at /mcp, /healthz, /readyz) listens on.
    /// Without authentication only a loopback address is accepted (see
    /// --insecure-no-auth).
    #[arg(long, env = "PGMCP_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Workers to send calls to, comma-separated: gRPC URLs (http://host:port,
    /// or https://host:port with --tls-ca) and `dns://name:port` entries, whose
    /// every address is a worker (a Kubernetes headless Service), resolved
    /// again every --discovery-interval-ms.
    #[arg(
        long,
        env = "PGMCP_WORKERS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50051"
    )]
    pub workers: Vec<String>,

    /// Serve MCP over stdin/stdout instead of HTTP. The local user who starts
    /// the gateway is trusted: no token is asked for.
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

    /// Browser origins accepted on /mcp, comma-separated (`https://app.example.com`,
    /// `http://localhost:*`); a request with any other Origin header gets 403.
    /// Requests without Origin (non-browser clients) always pass. Defaults to
    /// loopback origins; `*` accepts any origin.
    #[arg(long, env = "PGMCP_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Origins allowed to call /mcp from a browser via CORS, comma-separated.
    /// No CORS headers are sent unless this is set. These origins are also
    /// accepted by the Origin check.
    #[arg(long, env = "PGMCP_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Largest HTTP request body accepted on /mcp, in bytes; larger ones get 413.
    #[arg(long, env = "PGMCP_MAX_REQUEST_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_request_body_bytes: usize,

    // ----- authentication -----
    /// File of static bearer tokens: one `PRINCIPAL PERMISSIONS TOKEN` per line
    /// (TOKEN plain or `sha256:<hex>`). See docs/security.md.
    #[arg(long, env = "PGMCP_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<PathBuf>,

    /// Static bearer tokens in the file's format, entries separated by `;`.
    /// Prefer the environment variable or the file: a flag shows in `ps`.
    #[arg(long, env = "PGMCP_AUTH_TOKENS", hide_env_values = true)]
    pub auth_tokens: Option<String>,

    /// Accept JWTs issued by this issuer (`iss`), e.g. https://idp.example.com/realms/main.
    #[arg(long, env = "PGMCP_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Audiences (`aud`) a JWT must carry one of, comma-separated. Defaults to
    /// the MCP resource URL (`<--public-url>/mcp`).
    #[arg(long, env = "PGMCP_JWT_AUDIENCE", value_delimiter = ',')]
    pub jwt_audience: Vec<String>,

    /// JWKS file with the keys that sign JWTs (RS256, ES256, or HS256 `oct` keys).
    #[arg(long, env = "PGMCP_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,

    /// JWKS URL of the issuer (fetched at start-up, cached, refreshed).
    #[arg(long, env = "PGMCP_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,

    /// How often the JWKS URL is fetched again, in seconds (also on an unknown `kid`).
    #[arg(long, env = "PGMCP_JWT_JWKS_REFRESH_S", default_value_t = 300)]
    pub jwt_jwks_refresh_s: u64,

    /// Shared secret for HS256 JWTs (at least 32 bytes). Prefer the file.
    #[arg(long, env = "PGMCP_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<String>,

    /// File holding the shared secret for HS256 JWTs.
    #[arg(long, env = "PGMCP_JWT_HS256_SECRET_FILE")]
    pub jwt_hs256_secret_file: Option<PathBuf>,

    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[arg(long, env = "PGMCP_JWT_LEEWAY_S", default_value_t = 30)]
    pub jwt_leeway_s: u64,

    /// Claim holding the scopes (space-separated string or array); `scp` is
    /// read when it is absent.
    #[arg(long, env = "PGMCP_JWT_SCOPE_CLAIM", default_value = "scope")]
    pub jwt_scope_claim: String,

    /// Claim naming the principal.
    #[arg(long, env = "PGMCP_JWT_PRINCIPAL_CLAIM", default_value = "sub")]
    pub jwt_principal_claim: String,

    /// Public base URL of this gateway (https://mcp.example.com), as clients
    /// reach it: the OAuth protected resource is `<url>/mcp`. Derived from
    /// each request's Host header when unset.
    #[arg(long, env = "PGMCP_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Authorization servers announced in the protected resource metadata,
    /// comma-separated issuer URLs. Defaults to --jwt-issuer.
    #[arg(long, env = "PGMCP_OAUTH_AUTHORIZATION_SERVERS", value_delimiter = ',')]
    pub oauth_authorization_servers: Vec<String>,

    /// Serve HTTP without authentication on a non-loopback address. Anyone
    /// who can reach the port gets every tool on every database.
    #[arg(long, env = "PGMCP_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,

    // ----- limits -----
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

    /// Largest SQL text accepted, in bytes (checked before the call leaves the gateway).
    #[arg(long, env = "PGMCP_MAX_SQL_BYTES", default_value_t = 1024 * 1024)]
    pub max_sql_bytes: usize,

    /// Most parameters accepted per statement.
    #[arg(long, env = "PGMCP_MAX_PARAMS", default_value_t = 1_000)]
    pub max_params: usize,

    /// Tool calls one principal may have running at once; 0 for no limit.
    #[arg(
        long,
        env = "PGMCP_MAX_CONCURRENT_CALLS_PER_PRINCIPAL",
        default_value_t = 16
    )]
    pub max_concurrent_calls_per_principal: usize,

    // ----- workers -----
    /// File listing more workers, one entry (as in --workers) per line; read
    /// again every --discovery-interval-ms, so workers can be added and
    /// removed without a restart.
    #[arg(long, env = "PGMCP_WORKERS_FILE")]
    pub workers_file: Option<PathBuf>,

    /// How often `dns://` entries are resolved and --workers-file is read, in
    /// milliseconds.
    #[arg(long, env = "PGMCP_DISCOVERY_INTERVAL_MS", default_value_t = 5_000)]
    pub discovery_interval_ms: u64,

    /// Requests served at once over HTTP; beyond it, requests are answered
    /// at once with 503 and `Retry-After` (load shedding) instead of queuing.
    #[arg(long, env = "PGMCP_MAX_CONCURRENT_REQUESTS", default_value_t = 512)]
    pub max_concurrent_requests: usize,

    /// MCP requests per second each principal may make (a token bucket with
    /// a burst of the same size); beyond it, 429 with `Retry-After`. 0 turns
    /// the limit off.
    #[arg(long, env = "PGMCP_RATE_LIMIT_PER_PRINCIPAL", default_value_t = 0)]
    pub rate_limit_per_principal: u32,

    /// How long a stopping gateway waits for requests in flight, in
    /// milliseconds, before it exits anyway.
    #[arg(long, env = "PGMCP_SHUTDOWN_GRACE_MS", default_value_t = 25_000)]
    pub shutdown_grace_ms: u64,

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
    /// `dba` (database_health, top_queries, analyze_table, vacuum_table,
    /// invalidate_schema_cache),
    /// `all`.
    #[arg(long, env = "PGMCP_TOOLSETS", default_value = "core")]
    pub toolsets: Vec<String>,
    /// Largest gRPC message sent to or accepted from a worker, in bytes.
    #[arg(long, env = "PGMCP_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Token sent to the workers (`authorization: Bearer …`); must match the
    /// workers' --worker-token. Prefer the environment or the file.
    #[arg(long, env = "PGMCP_WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<String>,

    /// File holding the worker token.
    #[arg(long, env = "PGMCP_WORKER_TOKEN_FILE")]
    pub worker_token_file: Option<PathBuf>,

    /// CA certificate (PEM) that signed the workers' certificates; worker URLs
    /// are then https://.
    #[arg(long, env = "PGMCP_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// Client certificate (PEM) presented to the workers (mTLS); needs --tls-key.
    #[arg(long, env = "PGMCP_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "PGMCP_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Name expected in the workers' certificates, when it differs from the
    /// host in the worker URLs (e.g. URLs with IP addresses).
    #[arg(long, env = "PGMCP_TLS_DOMAIN")]
    pub tls_domain: Option<String>,

    /// Threads that serve calls [default: one per CPU the process may use].
    /// Where the gateway shares a few cores with workers or PostgreSQL, one
    /// thread answers sooner and holds less memory (docs/performance.md);
    /// scale out with more gateways instead.
    #[arg(long, env = "PGMCP_GATEWAY_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,

    #[command(flatten)]
    pub logs: LogArgs,
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
    pub max_sql_bytes: usize,
    pub max_params: usize,
    pub max_concurrent_calls_per_principal: usize,
}

/// Where JWT verification keys come from, and what a token must say.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub settings: JwtSettings,
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    pub hs256_secret: Option<Secret>,
    pub jwks_refresh: Duration,
}

/// How HTTP callers authenticate.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub tokens: Option<Arc<TokenStore>>,
    pub jwt: Option<JwtConfig>,
    pub metadata: ResourceMetadata,
}

impl AuthConfig {
    pub fn enabled(&self) -> bool {
        self.tokens.is_some() || self.jwt.is_some()
    }
}

/// The validated gateway configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub workers: Sources,
    pub max_concurrent_requests: usize,
    pub rate_limit_per_principal: u32,
    pub shutdown_grace: Duration,
    pub stdio: bool,
    /// `None` when any Host is accepted.
    pub allowed_hosts: Option<Vec<String>>,
    /// `None` when any Origin is accepted.
    pub allowed_origins: Option<Vec<String>>,
    pub cors_origins: Vec<String>,
    pub max_request_body_bytes: usize,
    pub auth: AuthConfig,
    pub limits: Limits,
    /// Cursor signing key; `None` = random per process.
    pub cursor_secret: Option<Secret>,
    pub cursor_ttl: Duration,
    pub toolsets: Toolsets,
    pub link: LinkConfig,
}

/// Browser origins accepted by default: pages served from this machine.
const LOOPBACK_ORIGINS: [&str; 6] = [
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
];

fn clean(list: &[String]) -> Vec<String> {
    list.iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Config {
    pub fn from_args(args: &Args) -> Result<Self> {
        let entries = clean(&args.workers)
            .iter()
            .map(|w| Entry::parse(w))
            .collect::<Result<Vec<_>>>()?;
        if let Some(path) = &args.workers_file {
            // Read now, so a bad file fails at start-up.
            discovery::read_file(path)?;
        }
        if entries.is_empty() && args.workers_file.is_none() {
            bail!(
                "no workers configured: pass --workers http://host:port[,…] or dns://name:port \
                 (or set PGMCP_WORKERS), or --workers-file"
            );
        }
        if args.max_concurrent_requests == 0 {
            bail!("--max-concurrent-requests must be at least 1");
        }
        let workers = Sources {
            entries,
            file: args.workers_file.clone(),
            interval: Duration::from_millis(args.discovery_interval_ms.max(100)),
        };
        if args.default_max_rows == 0 || args.max_rows == 0 {
            bail!("--default-max-rows and --max-rows must be at least 1");
        }
        let cursor_secret = secret::value_or_file(
            args.cursor_secret.as_deref(),
            args.cursor_secret_file.as_deref(),
            "cursor-secret",
            "the cursor key",
        )?
        .map(|s| Secret::new(s.expose().trim()));
        if cursor_secret
            .as_ref()
            .is_some_and(|k| k.expose().len() < 16)
        {
            bail!("the cursor key must be at least 16 bytes long");
        }
        if args.max_request_body_bytes == 0 || args.max_message_bytes == 0 {
            bail!("--max-request-body-bytes and --max-message-bytes must be at least 1");
        }
        let allowed_hosts = if args.allowed_hosts.iter().any(|h| h.trim() == "*") {
            None
        } else {
            Some(clean(&args.allowed_hosts))
        };
        let cors_origins = clean(&args.cors_origins);
        for o in &cors_origins {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                bail!(
                    "--cors-origins entry `{o}` must be an origin such as https://app.example.com"
                );
            }
        }
        let origins = clean(&args.allowed_origins);
        let allowed_origins =
            if origins.iter().any(|o| o == "*") || cors_origins.iter().any(|o| o == "*") {
                None
            } else {
                let mut list = if origins.is_empty() {
                    LOOPBACK_ORIGINS.iter().map(|s| s.to_string()).collect()
                } else {
                    origins
                };
                list.extend(cors_origins.iter().cloned());
                Some(list)
            };

        let auth = auth_config(args)?;
        if !args.stdio && !auth.enabled() && !args.listen.ip().is_loopback() {
            if !args.insecure_no_auth {
                bail!(
                    "refusing to serve {} without authentication: anyone who can reach it would get every \
                     database. Configure --auth-tokens-file or JWT (--jwt-issuer with --jwt-jwks-url or \
                     --jwt-jwks-file), listen on a loopback address, or pass --insecure-no-auth to accept the risk",
                    args.listen
                );
            }
            tracing::warn!(listen = %args.listen, "serving without authentication on a non-loopback address (--insecure-no-auth)");
        }

        let link = LinkConfig {
            connect_timeout: Duration::from_millis(args.worker_connect_timeout_ms),
            tls: match (&args.tls_ca, &args.tls_cert, &args.tls_key) {
                (None, None, None) => None,
                (None, _, _) => bail!(
                    "--tls-cert and --tls-key need --tls-ca (the CA of the workers' certificates)"
                ),
                (Some(ca), cert, key) => Some(TlsFiles {
                    ca: ca.clone(),
                    identity: match (cert, key) {
                        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
                        (None, None) => None,
                        _ => bail!("--tls-cert and --tls-key go together"),
                    },
                    domain: args.tls_domain.clone(),
                }),
            },
            token: secret::value_or_file(
                args.worker_token.as_deref(),
                args.worker_token_file.as_deref(),
                "worker-token",
                "the worker token",
            )?,
            max_message_bytes: args.max_message_bytes,
        };

        Ok(Config {
            listen: args.listen,
            workers,
            max_concurrent_requests: args.max_concurrent_requests,
            rate_limit_per_principal: args.rate_limit_per_principal,
            shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
            stdio: args.stdio,
            allowed_hosts,
            allowed_origins,
            cors_origins,
            max_request_body_bytes: args.max_request_body_bytes,
            auth,
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
                max_sql_bytes: args.max_sql_bytes,
                max_params: args.max_params,
                max_concurrent_calls_per_principal: args.max_concurrent_calls_per_principal,
            },
            link,
            cursor_secret,
            cursor_ttl: Duration::from_secs(args.cursor_ttl_s.max(1)),
            toolsets: Toolsets::parse(&args.toolsets)?,
        })
    }
}

fn auth_config(args: &Args) -> Result<AuthConfig> {
    let mut tokens: Option<TokenStore> = None;
    if let Some(path) = &args.auth_tokens_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --auth-tokens-file {}", path.display()))?;
        tokens = Some(
            TokenStore::parse(&text, &path.display().to_string()).map_err(anyhow::Error::msg)?,
        );
    }
    if let Some(text) = &args.auth_tokens {
        let more = TokenStore::parse(text, "--auth-tokens").map_err(anyhow::Error::msg)?;
        match &mut tokens {
            Some(t) => t.extend(more).map_err(anyhow::Error::msg)?,
            None => tokens = Some(more),
        }
    }

    let public_url = match &args.public_url {
        Some(u) => {
            let parsed = url::Url::parse(u)
                .with_context(|| format!("--public-url `{u}` is not a valid URL"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                bail!("--public-url must be an http(s) URL, got `{u}`");
            }
            Some(u.trim_end_matches('/').to_string())
        }
        None => None,
    };

    let hs256 = secret::value_or_file(
        args.jwt_hs256_secret.as_deref(),
        args.jwt_hs256_secret_file.as_deref(),
        "jwt-hs256-secret",
        "the HS256 secret",
    )?;
    let has_keys = args.jwt_jwks_file.is_some() || args.jwt_jwks_url.is_some() || hs256.is_some();
    let jwt = match (&args.jwt_issuer, has_keys) {
        (None, false) => None,
        (None, true) => bail!(
            "JWT keys are configured but --jwt-issuer is not: set the issuer tokens must come from"
        ),
        (Some(_), false) => bail!(
            "--jwt-issuer needs keys to verify tokens: --jwt-jwks-url, --jwt-jwks-file or --jwt-hs256-secret-file"
        ),
        (Some(issuer), true) => {
            let mut audiences = clean(&args.jwt_audience);
            if audiences.is_empty() {
                match &public_url {
                    Some(u) => audiences.push(format!("{u}/mcp")),
                    None => bail!(
                        "JWT authentication needs the audience tokens are issued for: set --jwt-audience, \
                         or --public-url (the audience is then <public-url>/mcp)"
                    ),
                }
            }
            Some(JwtConfig {
                settings: JwtSettings {
                    issuer: issuer.trim().to_string(),
                    audiences,
                    leeway: Duration::from_secs(args.jwt_leeway_s),
                    scope_claim: args.jwt_scope_claim.clone(),
                    principal_claim: args.jwt_principal_claim.clone(),
                },
                jwks_file: args.jwt_jwks_file.clone(),
                jwks_url: args.jwt_jwks_url.clone(),
                hs256_secret: hs256,
                jwks_refresh: Duration::from_secs(args.jwt_jwks_refresh_s.max(1)),
            })
        }
    };

    let mut authorization_servers = clean(&args.oauth_authorization_servers);
    if authorization_servers.is_empty()
        && let Some(j) = &jwt
    {
        authorization_servers.push(j.settings.issuer.clone());
    }
    Ok(AuthConfig {
        tokens: tokens.map(Arc::new),
        jwt,
        metadata: ResourceMetadata {
            public_url,
            authorization_servers,
        },
    })
}
