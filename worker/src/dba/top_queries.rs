//! `TopQueries`: the statements pg_stat_statements ranks highest for the
//! current database, or a clear account of why the extension cannot be read
//! and how to enable it.

use pgmcp_proto::v1::{QueryStat, TopQueriesOrder, TopQueriesResponse};
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::error::WorkerError;
use crate::session::{Access, Session};
use crate::targets::Target;

/// Statements returned when the caller asks for no number.
const DEFAULT_LIMIT: u32 = 10;
/// Most statements returned.
pub const MAX_LIMIT: u32 = 100;

/// How to enable the extension, for the messages below.
const ENABLE: &str = "add pg_stat_statements to shared_preload_libraries in postgresql.conf \
(or ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements', keeping any libraries already listed), \
restart PostgreSQL, then run CREATE EXTENSION pg_stat_statements; in this database";

/// Reads pg_stat_statements on `target`.
pub async fn run(
    target: &Target,
    order: TopQueriesOrder,
    limit: u32,
    timeout_ms: u32,
) -> Result<TopQueriesResponse, WorkerError> {
    let limit = match limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    let mut session = Session::begin(target, Access::ReadOnly, timeout_ms).await?;
    let result = read(target, session.conn(), order, limit).await;
    session.end_after(target, result.as_ref().err()).await;
    result
}

async fn read(
    target: &Target,
    conn: &mut PgConnection,
    order: TopQueriesOrder,
    limit: u32,
) -> Result<TopQueriesResponse, WorkerError> {
    let mut out = TopQueriesResponse {
        database: target.name.clone(),
        ..TopQueriesResponse::default()
    };
    let ext = sqlx::query(
        "SELECT quote_ident(n.nspname), e.extversion FROM pg_extension e \
         JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(ext) = ext else {
        let available: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements')",
        )
        .fetch_one(&mut *conn)
        .await?;
        out.unavailable_reason = if available {
            format!(
                "the pg_stat_statements extension is not installed in database `{}`. To enable it, {ENABLE} \
                 (CREATE EXTENSION needs a superuser or the database owner; afterwards grant pg_read_all_stats \
                 to the role pgmcp uses so it sees every statement)",
                target.database
            )
        } else {
            "the pg_stat_statements extension is not available on this PostgreSQL server: install the server's \
             contrib modules (Debian and Ubuntu ship them in the postgresql-NN package, other systems in \
             postgresql-contrib), then "
                .to_string()
                + ENABLE
        };
        return Ok(out);
    };
    let schema: String = ext.try_get(0)?;
    out.extension_version = ext.try_get(1)?;
    out.restricted = !sqlx::query_scalar::<_, bool>(
        "SELECT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')",
    )
    .fetch_one(&mut *conn)
    .await?;

    // Column names changed in PostgreSQL 13 (extension 1.8).
    let (total, mean, max) = if target.server_version_num >= 130_000 {
        ("total_exec_time", "mean_exec_time", "max_exec_time")
    } else {
        ("total_time", "mean_time", "max_time")
    };
    let order_col = match order {
        TopQueriesOrder::MeanTime => mean,
        TopQueriesOrder::Calls => "calls",
        TopQueriesOrder::TotalTime | TopQueriesOrder::Unspecified => total,
    };
    // Only fixed words and the catalog's own quoted schema name are spliced.
    let sql = format!(
        "SELECT s.query, s.calls, s.{total}, s.{mean}, s.{max}, s.rows, s.shared_blks_hit, s.shared_blks_read, \
                s.queryid::text, r.rolname::text \
         FROM {schema}.pg_stat_statements s LEFT JOIN pg_roles r ON r.oid = s.userid \
         WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         ORDER BY s.{order_col} DESC NULLS LAST LIMIT $1"
    );
    sqlx::raw_sql("SAVEPOINT pgmcp_top")
        .execute(&mut *conn)
        .await?;
    let rows = match sqlx::query(AssertSqlSafe(sql))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            let err = WorkerError::from(e);
            // 55000: "pg_stat_statements must be loaded via shared_preload_libraries".
            if err.0.sqlstate == "55000" {
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT pgmcp_top")
                    .execute(&mut *conn)
                    .await?;
                out.unavailable_reason = format!(
                    "the pg_stat_statements extension is installed but its library is not loaded, so it \
                     records nothing. To enable it, {ENABLE} (the extension exists already; only the \
                     restart is missing)"
                );
                return Ok(out);
            }
            return Err(err);
        }
    };
    out.available = true;
    for row in rows {
        let hit: i64 = row.try_get(6)?;
        let read: i64 = row.try_get(7)?;
        let blocks = hit.saturating_add(read);
        out.queries.push(QueryStat {
            query: row
                .try_get::<Option<String>, _>(0)?
                .unwrap_or_else(|| "<insufficient privilege>".into()),
            calls: u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
            total_exec_time_ms: row.try_get(2)?,
            mean_exec_time_ms: row.try_get(3)?,
            max_exec_time_ms: row.try_get(4)?,
            rows: u64::try_from(row.try_get::<i64, _>(5)?).unwrap_or(0),
            cache_hit_ratio: if blocks > 0 {
                hit as f64 / blocks as f64
            } else {
                -1.0
            },
            query_id: row.try_get::<Option<String>, _>(8)?.unwrap_or_default(),
            role: row.try_get::<Option<String>, _>(9)?.unwrap_or_default(),
        });
    }
    Ok(out)
}
