//! `MaintainTable`: ANALYZE or VACUUM of one table.
//!
//! The table name is resolved by PostgreSQL (`to_regclass($1)`, a bound
//! parameter) and the statement names the table as PostgreSQL prints it
//! (`oid::regclass::text`, quoted and qualified as needed), so caller input
//! is never spliced into SQL. Before running, the role's right to maintain
//! the table is checked: PostgreSQL would otherwise skip the table with
//! only a warning.
//!
//! ANALYZE changes no data and PostgreSQL accepts it in a read-only
//! transaction, so it runs in `BEGIN READ ONLY … COMMIT` on every target
//! (the commit keeps the new statistics). VACUUM cannot run in a
//! transaction block: it runs on a pooled connection in autocommit, with a
//! session `statement_timeout` that is reset afterwards, and only on
//! read-write targets.

use std::time::Instant;

use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::{MaintainTableResponse, MaintenanceOperation, TableStats};
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::cancel;
use crate::config::Mode;
use crate::error::WorkerError;
use crate::session::{Access, Session};
use crate::targets::Target;

/// Longest table name accepted, in bytes.
const MAX_NAME_BYTES: usize = 512;

/// Runs `op` on `table`.
pub async fn run(
    target: &Target,
    table: &str,
    op: MaintenanceOperation,
    timeout_ms: u32,
) -> Result<MaintainTableResponse, WorkerError> {
    let table = table.trim();
    if table.is_empty() {
        return Err(WorkerError::invalid(
            "name the table to maintain, e.g. `orders` or `sales.orders`",
        ));
    }
    if table.len() > MAX_NAME_BYTES {
        return Err(WorkerError::invalid(format!(
            "the table name is {} bytes, over the limit of {MAX_NAME_BYTES}",
            table.len()
        )));
    }
    match op {
        MaintenanceOperation::Analyze => analyze(target, table, timeout_ms).await,
        MaintenanceOperation::Vacuum | MaintenanceOperation::VacuumAnalyze => {
            if target.mode == Mode::ReadOnly {
                let mut err = WorkerError::new(
                    ErrorKind::ReadOnly,
                    format!(
                        "VACUUM needs a read-write target, and `{}` is read-only; nothing was done. \
                         An operator enables writes with the worker flag --mode {}=read-write",
                        target.name, target.name
                    ),
                );
                err.0.database = target.name.clone();
                return Err(err);
            }
            vacuum(
                target,
                table,
                op == MaintenanceOperation::VacuumAnalyze,
                timeout_ms,
            )
            .await
        }
        MaintenanceOperation::Unspecified => Err(WorkerError::invalid(
            "say which maintenance to run: ANALYZE or VACUUM",
        )),
    }
}

async fn analyze(
    target: &Target,
    table: &str,
    timeout_ms: u32,
) -> Result<MaintainTableResponse, WorkerError> {
    let mut session = Session::begin(target, Access::ReadOnly, timeout_ms).await?;
    let result = async {
        let (name, before) = resolve(target, session.conn(), table, "ANALYZE").await?;
        let statement = format!("ANALYZE {name}");
        let started = Instant::now();
        sqlx::query(AssertSqlSafe(statement.clone()))
            .persistent(false)
            .execute(session.conn())
            .await?;
        let duration_ms = elapsed_ms(started);
        let after = stats(session.conn(), &name).await?;
        Ok(MaintainTableResponse {
            database: target.name.clone(),
            table: name,
            statement,
            duration_ms,
            before: Some(before),
            after: Some(after),
        })
    }
    .await;
    match result {
        Ok(resp) => {
            session.commit(target).await?;
            Ok(resp)
        }
        Err(err) => {
            session.end_after(target, Some(&err)).await;
            Err(err)
        }
    }
}

async fn vacuum(
    target: &Target,
    table: &str,
    with_analyze: bool,
    timeout_ms: u32,
) -> Result<MaintainTableResponse, WorkerError> {
    let mut conn = target.acquire().await?;
    // True while the session's statement_timeout differs from its default.
    let mut timeout_set = false;
    // The backend, registered so that it is stopped if the caller goes away.
    let mut watched = None;
    let result: Result<MaintainTableResponse, WorkerError> = async {
        let (name, before) = resolve(target, &mut conn, table, "VACUUM").await?;
        timeout_set = true;
        // A number only.
        let row = sqlx::raw_sql(AssertSqlSafe(format!(
            "SET statement_timeout = {timeout_ms}; SELECT pg_catalog.pg_backend_pid()"
        )))
        .fetch_one(&mut *conn)
        .await?;
        watched = cancel::enter(row.try_get(0)?, &target.side).map_err(|cancel::Gone| {
            WorkerError::new(
                ErrorKind::Cancelled,
                "the caller went away before VACUUM began; nothing was run",
            )
        })?;
        let statement = if with_analyze {
            format!("VACUUM (ANALYZE) {name}")
        } else {
            format!("VACUUM {name}")
        };
        let started = Instant::now();
        let ran = sqlx::raw_sql(AssertSqlSafe(statement.clone()))
            .execute(&mut *conn)
            .await;
        let duration_ms = elapsed_ms(started);
        // Back to the session's default timeout before anything else.
        sqlx::raw_sql("RESET statement_timeout")
            .execute(&mut *conn)
            .await?;
        timeout_set = false;
        ran?;
        let after = stats(&mut conn, &name).await?;
        Ok(MaintainTableResponse {
            database: target.name.clone(),
            table: name,
            statement,
            duration_ms,
            before: Some(before),
            after: Some(after),
        })
    }
    .await;
    let stopped = watched.is_some_and(cancel::Entered::leave);
    if let Err(err) = &result
        && (timeout_set || err.kind() == ErrorKind::Connection)
    {
        // The session's state is in doubt: do not lend it out again.
        drop(conn.detach());
    } else if stopped {
        conn.close_on_drop();
    }
    result
}

/// Resolves `table`, checks the role may maintain it, and reads its
/// statistics. Returns PostgreSQL's name for it.
async fn resolve(
    target: &Target,
    conn: &mut PgConnection,
    table: &str,
    verb: &str,
) -> Result<(String, TableStats), WorkerError> {
    // PostgreSQL 17 added the MAINTAIN privilege; before, only owners may.
    let maintain = if target.server_version_num >= 170_000 {
        "has_table_privilege(c.oid, 'MAINTAIN')"
    } else {
        "false"
    };
    let sql = format!(
        "SELECT c.oid::regclass::text, c.relkind::text, \
                pg_has_role(c.relowner, 'USAGE') \
                OR (NOT c.relisshared AND pg_has_role( \
                    (SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE')) \
                OR {maintain}, \
                current_user::text \
         FROM pg_class c WHERE c.oid = to_regclass($1)"
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(table)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| {
            let mut err = WorkerError::from(e);
            if matches!(err.kind(), ErrorKind::Syntax | ErrorKind::Statement) {
                err.0.message = format!(
                    "`{table}` is not a valid table name ({}); write it as in SQL: orders, sales.orders or \"Mixed Case\"",
                    err.0.message
                );
            }
            err
        })?;
    let Some(row) = row else {
        let mut err = WorkerError::new(
            ErrorKind::UndefinedObject,
            format!(
                "no table `{table}` in database `{}`; names resolve on the search path and fold to lower case \
                 unless double-quoted (\"Orders\"); qualify with the schema if needed (sales.orders)",
                target.name
            ),
        );
        err.0.table_name = table.to_string();
        return Err(err);
    };
    let name: String = row.try_get(0)?;
    let kind: String = row.try_get(1)?;
    let allowed: bool = row.try_get(2)?;
    let role: String = row.try_get(3)?;
    if !matches!(kind.as_str(), "r" | "m" | "p") {
        return Err(WorkerError::invalid(format!(
            "`{name}` is {}, not a table; {verb} applies to tables and materialized views",
            relkind_name(&kind)
        )));
    }
    if !allowed {
        let mut err = WorkerError::new(
            ErrorKind::PermissionDenied,
            format!(
                "role `{role}` may not {verb} `{name}`: only the table's owner, the database's owner or a superuser may \
                 (PostgreSQL 17 and later: also roles granted MAINTAIN on the table). Nothing was done"
            ),
        );
        err.0.table_name = name.clone();
        return Err(err);
    }
    let before = stats(conn, &name).await?;
    Ok((name, before))
}

/// The table's statistics row, read fresh (not from the transaction's
/// statistics snapshot).
async fn stats(conn: &mut PgConnection, name: &str) -> Result<TableStats, WorkerError> {
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await?;
    let row = sqlx::query(
        "SELECT coalesce(s.n_live_tup, 0), coalesce(s.n_dead_tup, 0), \
                coalesce(to_json(s.last_vacuum) #>> '{}', ''), coalesce(to_json(s.last_autovacuum) #>> '{}', ''), \
                coalesce(to_json(s.last_analyze) #>> '{}', ''), coalesce(to_json(s.last_autoanalyze) #>> '{}', ''), \
                pg_total_relation_size(c.oid) \
         FROM pg_class c LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid \
         WHERE c.oid = $1::regclass",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await?;
    Ok(TableStats {
        live_tuples: row.try_get(0)?,
        dead_tuples: row.try_get(1)?,
        last_vacuum: row.try_get(2)?,
        last_autovacuum: row.try_get(3)?,
        last_analyze: row.try_get(4)?,
        last_autoanalyze: row.try_get(5)?,
        total_bytes: row.try_get(6)?,
    })
}

fn relkind_name(kind: &str) -> &'static str {
    match kind {
        "v" => "a view",
        "i" | "I" => "an index",
        "S" => "a sequence",
        "f" => "a foreign table",
        "c" => "a composite type",
        "t" => "a TOAST table",
        _ => "not a table",
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
