//! What a call does on its database target, as spans and metrics.
//!
//! - [`TargetTelemetry::acquire`]: the `pool.acquire` span and the
//!   acquire-wait histogram; callers waiting for a connection are counted.
//! - [`TargetTelemetry::db_call`]: the DB span around a statement
//!   (`db.system.name = postgresql`, `db.namespace`, `db.query.summary`,
//!   `db.operation.name`, and on the way out rows, bytes, or
//!   `db.response.status_code` = SQLSTATE and an error status).
//! - [`TargetTelemetry::statement_text`]: SQLCommenter. The model's SQL is
//!   sent with `/*traceparent='00-…'*/` appended, so `pg_stat_activity`,
//!   the server log and `pg_stat_statements` (whose query id ignores
//!   comments) lead back to the trace.
//!
//! About the comment and the statement cache: the traceparent differs on
//! every call, so a commented statement can never be reused. The worker
//! therefore prepares the plain SQL as before (cached per connection: its
//! parameter and column types are looked up once) and sends the commented
//! text as an unnamed, unprepared-in-advance statement (`persistent(false)`):
//! it leaves the cache alone instead of evicting a useful entry on every
//! call. The cost is one extra Parse round trip per call while tracing;
//! `--sql-comment false` removes it (and the comment).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use pgmcp_proto::v1::Summary;
use pgmcp_telemetry::OpenTelemetrySpanExt;
use pgmcp_telemetry::metrics::DURATION_BUCKETS;
use pgmcp_telemetry::metrics::prometheus::core::Collector;
use pgmcp_telemetry::metrics::prometheus::{
    self, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts,
};
use pgmcp_telemetry::opentelemetry::trace::Status;
use pgmcp_telemetry::propagation;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tracing::Span;

use crate::error::WorkerError;
use crate::telemetry::summary;

/// Per-target metrics and settings, labelled `target="<name>"`.
pub struct TargetTelemetry {
    name: String,
    /// Database name, for `db.namespace`.
    namespace: String,
    server_address: String,
    server_port: u16,
    sql_comment: bool,
    waiting_now: Arc<AtomicI64>,
    pub(crate) pool_size: IntGauge,
    pub(crate) pool_idle: IntGauge,
    pub(crate) pool_in_use: IntGauge,
    pub(crate) pool_max: IntGauge,
    pub(crate) pool_waiting: IntGauge,
    acquire_seconds: Histogram,
    errors: IntCounterVec,
    rows: IntCounter,
    bytes: IntCounter,
}

impl TargetTelemetry {
    /// Metrics for target `name` on `pool` (database `namespace`).
    /// `sql_comment` turns the SQLCommenter comment on.
    pub fn new(
        name: &str,
        namespace: &str,
        pool: &PgPool,
        sql_comment: bool,
    ) -> Result<Self, prometheus::Error> {
        let opts = |metric: &str, help: &str| Opts::new(metric, help).const_label("target", name);
        let gauge = |metric: &str, help: &str| IntGauge::with_opts(opts(metric, help));
        let counter = |metric: &str, help: &str| IntCounter::with_opts(opts(metric, help));
        let connect = pool.connect_options();
        Ok(TargetTelemetry {
            name: name.to_string(),
            namespace: namespace.to_string(),
            server_address: connect.get_host().to_string(),
            server_port: connect.get_port(),
            sql_comment,
            waiting_now: Arc::new(AtomicI64::new(0)),
            pool_size: gauge(
                "pgmcp_worker_pool_connections",
                "Open connections of the target's pool (idle + in use).",
            )?,
            pool_idle: gauge(
                "pgmcp_worker_pool_idle_connections",
                "Idle connections of the target's pool.",
            )?,
            pool_in_use: gauge(
                "pgmcp_worker_pool_in_use_connections",
                "Connections of the target's pool held by calls.",
            )?,
            pool_max: gauge(
                "pgmcp_worker_pool_max_connections",
                "Configured size limit of the target's pool.",
            )?,
            pool_waiting: gauge(
                "pgmcp_worker_pool_waiting",
                "Calls waiting for a connection of the target's pool.",
            )?,
            acquire_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "pgmcp_worker_pool_acquire_seconds",
                    "Time calls waited for a pooled connection.",
                )
                .const_label("target", name)
                .buckets(DURATION_BUCKETS.to_vec()),
            )?,
            errors: IntCounterVec::new(
                opts(
                    "pgmcp_worker_query_errors_total",
                    "Failed calls by SQLSTATE class (`none` when PostgreSQL reported none) and error kind.",
                ),
                &["sqlstate_class", "kind"],
            )?,
            rows: counter(
                "pgmcp_worker_rows_returned_total",
                "Rows returned to callers.",
            )?,
            bytes: counter(
                "pgmcp_worker_bytes_returned_total",
                "Bytes of JSON rows returned to callers.",
            )?,
        })
    }

    /// Every metric of this target, for registration.
    pub(crate) fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.pool_size.clone()),
            Box::new(self.pool_idle.clone()),
            Box::new(self.pool_in_use.clone()),
            Box::new(self.pool_max.clone()),
            Box::new(self.pool_waiting.clone()),
            Box::new(self.acquire_seconds.clone()),
            Box::new(self.errors.clone()),
            Box::new(self.rows.clone()),
            Box::new(self.bytes.clone()),
        ]
    }

    /// Refreshes the pool gauges from `pool` (at scrape time).
    pub(crate) fn sample_pool(&self, pool: &PgPool) {
        let size = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        self.pool_size.set(size);
        self.pool_idle.set(idle);
        self.pool_in_use.set((size - idle).max(0));
        self.pool_max
            .set(i64::from(pool.options().get_max_connections()));
        self.pool_waiting
            .set(self.waiting_now.load(Ordering::Relaxed).max(0));
    }

    /// Takes a connection from `pool`, inside a `pool.acquire` span whose
    /// duration is the wait.
    pub async fn acquire(&self, pool: &PgPool) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        let span = tracing::info_span!(
            "pool.acquire",
            otel.name = "pool.acquire",
            db.client.connection.pool.name = %self.name,
        );
        let _waiting = Waiting::enter(&self.waiting_now);
        let start = Instant::now();
        let result = {
            use tracing::Instrument;
            pool.acquire().instrument(span.clone()).await
        };
        self.acquire_seconds.observe(start.elapsed().as_secs_f64());
        if let Err(e) = &result {
            span.set_status(Status::error(match e {
                sqlx::Error::PoolTimedOut => "pool timed out",
                sqlx::Error::PoolClosed => "pool closed",
                _ => "acquire failed",
            }));
        }
        result
    }

    /// The DB span for running `sql`.
    pub fn db_call(&self, sql: &str) -> Span {
        let (operation, collection) = summary::summarize(sql);
        let summary = match &collection {
            Some(c) => format!("{operation} {c}"),
            None => operation.clone(),
        };
        let name = if summary.is_empty() {
            "postgresql".to_string()
        } else {
            summary.clone()
        };
        let span = tracing::info_span!(
            "db.query",
            otel.name = %name,
            otel.kind = "client",
            db.system.name = "postgresql",
            db.namespace = %self.namespace,
            db.query.summary = %summary,
            db.operation.name = %operation,
            server.address = %self.server_address,
            server.port = self.server_port,
            db.response.returned_rows = tracing::field::Empty,
            pgmcp.db.response.returned_bytes = tracing::field::Empty,
            db.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        if let Some(c) = collection {
            span.set_attribute("db.collection.name", c);
        }
        span
    }

    /// The text to send for `sql` and whether to keep it as a cached
    /// prepared statement: with a SQLCommenter comment when the current
    /// span is traced and comments are on (then not cached), else `sql`.
    pub fn statement_text(&self, sql: &str) -> (String, bool) {
        if self.sql_comment
            && let Some(tp) = propagation::traceparent(&Span::current().context())
        {
            (sqlcomment(sql, &tp), false)
        } else {
            (sql.to_string(), true)
        }
    }

    /// Records a complete result on the current (DB) span and the counters.
    pub fn returned(&self, summary: &Summary) {
        self.rows.inc_by(summary.row_count);
        self.bytes.inc_by(summary.bytes);
        let span = Span::current();
        span.record("db.response.returned_rows", summary.row_count);
        span.record("pgmcp.db.response.returned_bytes", summary.bytes);
    }

    /// Counts a failed call by SQLSTATE class and error kind.
    pub fn failed(&self, err: &WorkerError) {
        let class = err.0.sqlstate.get(..2).unwrap_or("none");
        self.errors
            .with_label_values(&[class, err.kind().snake_name()])
            .inc();
    }

    /// Marks the DB span `span` failed: SQLSTATE as
    /// `db.response.status_code` and `error.type` (the error kind when
    /// PostgreSQL gave none), and an error status.
    pub fn statement_failed(span: &Span, err: &WorkerError) {
        let sqlstate = err.0.sqlstate.as_str();
        let kind = err.kind().snake_name();
        if sqlstate.is_empty() {
            span.record("error.type", kind);
        } else {
            span.record("db.response.status_code", sqlstate);
            span.record("error.type", sqlstate);
        }
        span.set_status(Status::error(kind));
    }
}

/// Counts a caller as waiting for as long as it lives.
struct Waiting<'a>(&'a AtomicI64);

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicI64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Waiting(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `sql` with a SQLCommenter comment carrying `traceparent`. The comment
/// goes at the end, on its own line, so that error positions in the SQL
/// stay right and a trailing `--` comment cannot swallow it.
pub fn sqlcomment(sql: &str, traceparent: &str) -> String {
    // A traceparent is hex digits and dashes; keep anything else out of the
    // comment so it can never close it early.
    let safe: String = traceparent
        .chars()
        .filter(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    format!("{sql}\n/*traceparent='{safe}'*/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn several_targets_share_one_registry() -> anyhow::Result<()> {
        let registry = prometheus::Registry::new();
        for name in ["sales", "hr"] {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .min_connections(0)
                .connect_lazy(&format!("postgres://u@127.0.0.1:1/{name}"))?;
            let t = TargetTelemetry::new(name, name, &pool, true)?;
            for c in t.collectors() {
                registry.register(c)?;
            }
            t.sample_pool(&pool);
        }
        let text = pgmcp_telemetry::metrics::encode(&registry)?;
        assert!(
            text.contains("pgmcp_worker_pool_max_connections{target=\"sales\"} 10"),
            "{text}"
        );
        assert!(
            text.contains("pgmcp_worker_pool_max_connections{target=\"hr\"} 10"),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn comment_is_appended_safely() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            sqlcomment("SELECT 1 -- x", tp),
            format!("SELECT 1 -- x\n/*traceparent='{tp}'*/")
        );
        assert_eq!(
            sqlcomment("SELECT 1", "00-*/; DROP"),
            "SELECT 1\n/*traceparent='00-D'*/"
        );
    }
}
