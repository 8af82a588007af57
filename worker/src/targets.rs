//! The database targets a worker serves: one sqlx pool each.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Row};

use crate::catalog::TypeNames;
use crate::config::{Config, Mode, PoolSettings, TargetConfig, redact_url};
use crate::error::WorkerError;
use crate::pool_stats::{self, Waiters};
use crate::schema_cache::SchemaCache;
use crate::telemetry::TargetTelemetry;

/// One database target and its pool.
pub struct Target {
    pub name: String,
    pub mode: Mode,
    /// Database name on the server.
    pub database: String,
    pub server_version: String,
    /// `server_version_num`, e.g. 150018.
    pub server_version_num: i32,
    /// PostgreSQL's `max_connections` and `superuser_reserved_connections`.
    pub server_max_connections: u32,
    pub server_reserved_connections: u32,
    /// `<system identifier>:<port>` of the server (see `Target.server_id`
    /// in the proto).
    pub server_id: String,
    pub pool: PgPool,
    /// Calls waiting for a connection of `pool`.
    pub waiters: Waiters,
    /// One extra connection, opened on first use, for work that must not
    /// wait on the main pool: cancelling a backend, asking PostgreSQL for a
    /// value's text form while a call holds its pooled connection.
    pub side: PgPool,
    /// Catalog names of the types seen in results.
    pub type_names: TypeNames,
    /// Schemas, tables and table descriptions; see [`SchemaCache::invalidate`].
    pub schema_cache: SchemaCache,
    /// Address to check when a connection takes long to open: is
    /// PostgreSQL there at all? `None` for Unix sockets.
    pub probe: Option<(String, u16)>,
    /// Spans and metrics of work on this target.
    pub telemetry: TargetTelemetry,
}

impl Target {
    pub fn to_proto(&self) -> v1::Target {
        v1::Target {
            name: self.name.clone(),
            mode: match self.mode {
                Mode::ReadOnly => v1::AccessMode::ReadOnly,
                Mode::ReadWrite => v1::AccessMode::ReadWrite,
            } as i32,
            database: self.database.clone(),
            server_version: self.server_version.clone(),
            pool: Some(pool_stats::stats(&self.pool, self.waiters.count())),
            side: Some(pool_stats::stats(&self.side, 0)),
            server_max_connections: self.server_max_connections,
            server_reserved_connections: self.server_reserved_connections,
            server_id: self.server_id.clone(),
        }
    }
}

/// All targets of a worker, in configuration order.
pub struct Targets {
    targets: Vec<Arc<Target>>,
}

impl Targets {
    /// Opens a pool per target and checks each database is reachable.
    /// Fails with a message naming the target (never its password).
    pub async fn connect(config: &Config) -> Result<Self> {
        let mut targets = Vec::with_capacity(config.targets.len());
        for t in &config.targets {
            let target = connect_target(
                t,
                &config.pool,
                &config.name,
                config.schema_cache_ttl,
                config.sql_comment,
            )
            .await?;
            if let Err(e) = check_role(&target, config.security.allow_privileged_role).await {
                target.pool.close().await;
                return Err(e);
            }
            targets.push(Arc::new(target));
        }
        Ok(Targets { targets })
    }

    /// The target called `name`; the only target when `name` is empty.
    pub fn get(&self, name: &str) -> Result<&Arc<Target>, WorkerError> {
        if name.is_empty() {
            return match self.targets.as_slice() {
                [only] => Ok(only),
                _ => Err(WorkerError::new(
                    ErrorKind::UnknownDatabase,
                    format!(
                        "this worker serves several databases; name one with `database` ({})",
                        self.names().join(", ")
                    ),
                )),
            };
        }
        self.targets.iter().find(|t| t.name == name).ok_or_else(|| {
            WorkerError::new(
                ErrorKind::UnknownDatabase,
                format!(
                    "no database named `{name}` here; available: {}",
                    self.names().join(", ")
                ),
            )
            .for_database(name)
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Target>> {
        self.targets.iter()
    }

    pub fn names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.name.clone()).collect()
    }

    /// Closes every pool (waits for connections in use to be returned).
    pub async fn close(&self) {
        for t in &self.targets {
            t.pool.close().await;
            t.side.close().await;
        }
    }
}

/// How long an acquire that must open a connection may take before the
/// server is checked for being there at all.
const PROBE_AFTER: std::time::Duration = std::time::Duration::from_millis(250);
/// How long that check may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

impl Target {
    /// A pooled connection. When PostgreSQL cannot be reached, fails within
    /// about a second with a retryable error instead of retrying until the
    /// acquire timeout (sqlx keeps retrying refused connections): if the
    /// pool still has room and no connection came within [`PROBE_AFTER`],
    /// the server's address is tried directly.
    pub async fn acquire(&self) -> Result<PoolConnection<Postgres>, WorkerError> {
        let acquire = self.waiters.wait(self.telemetry.acquire(&self.pool));
        tokio::pin!(acquire);
        tokio::select! {
            r = &mut acquire => return r.map_err(WorkerError::from),
            _ = tokio::time::sleep(PROBE_AFTER) => {}
        }
        let opening = self.pool.size() < self.pool.options().get_max_connections();
        if let (true, Some((host, port))) = (opening, &self.probe) {
            let probe = tokio::net::TcpStream::connect((host.as_str(), *port));
            let why = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("no answer".to_string()),
            };
            if let Some(why) = why {
                let mut e = pgmcp_proto::error::Error::new(
                    ErrorKind::Connection,
                    format!(
                        "the PostgreSQL server of database `{}` cannot be reached ({why}); \
                         retry in a few seconds",
                        self.name
                    ),
                );
                e.retry_safe = true;
                return Err(WorkerError(Box::new(e)));
            }
        }
        acquire.await.map_err(WorkerError::from)
    }
}

async fn connect_target(
    t: &TargetConfig,
    pool: &PoolSettings,
    app_name: &str,
    schema_cache_ttl: std::time::Duration,
    sql_comment: bool,
) -> Result<Target> {
    let shown = redact_url(&t.url);
    let mut options = PgConnectOptions::from_str(&t.url)
        .with_context(|| format!("database `{}`: invalid URL {shown}", t.name))?
        .application_name(app_name)
        .log_statements(tracing::log::LevelFilter::Debug);
    let statement_timeout = pool.statement_timeout_ms.to_string();
    let idle_timeout = pool.idle_in_transaction_timeout_ms.to_string();
    let mut startup = vec![
        ("timezone", "UTC"),
        ("statement_timeout", statement_timeout.as_str()),
        ("idle_in_transaction_session_timeout", idle_timeout.as_str()),
    ];
    if t.mode == Mode::ReadOnly {
        startup.push(("default_transaction_read_only", "on"));
    }
    options = options.options(startup);
    // A URL's own setting wins (config.rs has refused 0).
    if t.statement_cache().is_none() {
        options = options.statement_cache_capacity(pool.statement_cache_capacity);
    }
    let side = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(pool.acquire_timeout)
        .idle_timeout(pool.idle_timeout)
        .max_lifetime(pool.max_lifetime)
        .connect_lazy_with(options.clone());
    let host = options.get_host().to_string();
    let probe = (!host.starts_with('/')).then(|| (host.clone(), options.get_port()));
    let where_ = format!(
        "{}:{} as user `{}`",
        options.get_host(),
        options.get_port(),
        options.get_username()
    );

    let connect = PgPoolOptions::new()
        .max_connections(pool.max_connections)
        .min_connections(pool.min_connections)
        .acquire_timeout(pool.acquire_timeout)
        .idle_timeout(pool.idle_timeout)
        .max_lifetime(pool.max_lifetime)
        .test_before_acquire(false)
        .connect_with(options);
    let pg_pool = match tokio::time::timeout(pool.connect_timeout, connect).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => bail!(
            "cannot connect to database `{}` at {where_}: {}",
            t.name,
            scrub(&e.to_string(), &t.url)
        ),
        Err(_) => bail!(
            "cannot connect to database `{}` at {where_}: no answer within {} ms",
            t.name,
            pool.connect_timeout.as_millis()
        ),
    };
    let row = sqlx::query(
        "SELECT current_database(), current_setting('server_version'), \
                current_setting('server_version_num')::int, \
                current_setting('max_connections')::int, \
                current_setting('superuser_reserved_connections')::int, \
                current_setting('port')",
    )
    .fetch_one(&pg_pool)
    .await
    .with_context(|| format!("database `{}`: first query failed", t.name))?;
    let database: String = row.try_get(0)?;
    let server_version: String = row.try_get(1)?;
    let server_version_num: i32 = row.try_get(2)?;
    let server_max_connections: i32 = row.try_get(3)?;
    let server_reserved_connections: i32 = row.try_get(4)?;
    let port: String = row.try_get(5)?;
    // pg_control_system() may be revoked; then the address we connect to
    // stands in for the system identifier.
    let system_id =
        sqlx::query_scalar::<_, String>("SELECT system_identifier::text FROM pg_control_system()")
            .fetch_one(&pg_pool)
            .await
            .unwrap_or_else(|_| host.clone());
    tracing::info!(
        target = %t.name,
        database = %database,
        server_version = %server_version,
        mode = t.mode.as_str(),
        at = %where_,
        "connected"
    );
    let telemetry = TargetTelemetry::new(&t.name, &database, &pg_pool, sql_comment)?;
    Ok(Target {
        name: t.name.clone(),
        mode: t.mode,
        database,
        server_version,
        server_version_num,
        server_max_connections: u32::try_from(server_max_connections).unwrap_or(0),
        server_reserved_connections: u32::try_from(server_reserved_connections).unwrap_or(0),
        server_id: format!("{system_id}:{port}"),
        pool: pg_pool,
        waiters: Waiters::default(),
        side,
        type_names: TypeNames::default(),
        schema_cache: SchemaCache::new(schema_cache_ttl),
        probe,
        telemetry,
    })
}

/// Refuses a read-only target whose role is a superuser, has BYPASSRLS, or
/// can become such a role with SET ROLE: SQL run as that role could turn
/// read-only off (`SET default_transaction_read_only`, `ALTER SYSTEM`,
/// `COPY … TO PROGRAM`) or read rows row-level security hides. With
/// `allow` (`--allow-privileged-role`) it only warns.
async fn check_role(target: &Target, allow: bool) -> Result<()> {
    let rows = sqlx::query(
        "SELECT current_user::text, r.rolname::text, r.rolsuper, r.rolbypassrls \
         FROM pg_roles r \
         WHERE (r.rolsuper OR r.rolbypassrls) AND pg_has_role(current_user, r.oid, 'MEMBER') \
         ORDER BY r.rolname <> current_user, r.rolname",
    )
    .fetch_all(&target.pool)
    .await
    .with_context(|| {
        format!(
            "database `{}`: cannot check the role's privileges",
            target.name
        )
    })?;
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let user: String = first.try_get(0)?;
    let mut why = Vec::new();
    for row in &rows {
        let role: String = row.try_get(1)?;
        let mut what = Vec::new();
        if row.try_get::<bool, _>(2)? {
            what.push("a superuser");
        }
        if row.try_get::<bool, _>(3)? {
            what.push("allowed to bypass row-level security (BYPASSRLS)");
        }
        let what = what.join(" and ");
        why.push(if role == user {
            format!("role `{user}` is {what}")
        } else {
            format!("role `{user}` can SET ROLE to `{role}`, which is {what}")
        });
    }
    let why = why.join("; ");
    match (target.mode, allow) {
        (Mode::ReadOnly, false) => bail!(
            "database `{}`: refusing to serve a read-only target with a privileged role: {why}. \
             Such a role can turn read-only off from SQL or read past row-level security. \
             Connect as a least-privilege role (see docs/security.md), or pass --allow-privileged-role \
             to accept the risk",
            target.name
        ),
        (Mode::ReadOnly, true) => tracing::warn!(
            target = %target.name,
            "serving a read-only target with a privileged role (--allow-privileged-role): {why}"
        ),
        (Mode::ReadWrite, _) => tracing::warn!(
            target = %target.name,
            "the read-write target's role is privileged: {why}; consider a least-privilege role"
        ),
    }
    Ok(())
}

/// Removes the URL's password from a driver message, should it appear.
fn scrub(message: &str, url: &str) -> String {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
    {
        Some(pw) if !pw.is_empty() => message.replace(&pw, "***"),
        _ => message.to_string(),
    }
}
