//! One statement on a call's connection: prepare (extended protocol, so
//! exactly one statement), bind parameters for the types PostgreSQL
//! inferred, encode result rows as JSON, and collect a bounded result for
//! statements that must run to completion (writes).

use futures::StreamExt;
use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::{Column, Param, StatementResult, TruncationReason};
use sqlx::postgres::{PgArguments, PgColumn, PgTypeInfo};
use sqlx::{
    AssertSqlSafe, Column as _, Either, Executor, PgConnection, Row, SqlSafeStr, Statement,
    ValueRef,
};

use crate::config::{Limits, Mode};
use crate::decode::{self, Outcome};
use crate::error::WorkerError;
use crate::params::{self, Bound};
use crate::targets::Target;

/// Checks a statement against the worker's limits before it reaches the
/// database.
pub fn check(sql: &str, params: &[Param], limits: &Limits) -> Result<(), WorkerError> {
    if sql.trim().is_empty() {
        return Err(WorkerError::invalid("the SQL statement is empty"));
    }
    if sql.len() > limits.max_sql_bytes {
        return Err(WorkerError::invalid(format!(
            "the SQL statement is {} bytes, over this worker's limit of {} bytes (max_sql_bytes)",
            sql.len(),
            limits.max_sql_bytes
        )));
    }
    if let Some(word) = transaction_control(sql) {
        return Err(WorkerError::invalid(format!(
            "{word} is not allowed: each call runs in a transaction of its own, which pgmcp begins and ends; \
             to run several statements atomically, use the `transaction` tool"
        )));
    }
    if params.len() > limits.max_params {
        return Err(WorkerError::invalid(format!(
            "{} params given, over this worker's limit of {} (max_params)",
            params.len(),
            limits.max_params
        )));
    }
    Ok(())
}

/// The transaction-control command `sql` starts with, if any. This only
/// gives an early, clear message; the database enforces the transaction
/// boundaries (see `Session::still_ours`).
pub fn transaction_control(sql: &str) -> Option<String> {
    let mut words = top_level_words(sql, 2);
    let first = words.first()?.clone();
    let second = words.get(1).map(String::as_str).unwrap_or_default();
    let hit = match first.as_str() {
        "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE" => {
            true
        }
        "PREPARE" => second == "TRANSACTION",
        _ => false,
    };
    hit.then(|| {
        words.truncate(if first == "PREPARE" { 2 } else { 1 });
        words.join(" ")
    })
}

/// Whether `sql` may change the schema (DDL and friends); used to keep the
/// schema cache fresh. Judged by its first word (`CREATE`, `ALTER`, …,
/// and `DO`/`CALL`, which may run anything), and for a `SELECT` (also one
/// after `WITH …`) by an `INTO` at its top level: `SELECT … INTO new_table`
/// creates a table. DDL hidden inside a function a `SELECT` calls is not
/// seen; `invalidate_schema_cache` covers that.
pub fn may_change_schema(sql: &str) -> bool {
    let words = top_level_words(sql, usize::MAX);
    let Some(first) = words.first() else {
        return false;
    };
    match first.as_str() {
        "CREATE" | "ALTER" | "DROP" | "COMMENT" | "GRANT" | "REVOKE" | "SECURITY" | "IMPORT"
        | "REINDEX" | "DO" | "CALL" => true,
        "SELECT" | "WITH" => {
            // The statement's own verb: the first top-level one (a WITH's
            // queries are in parentheses).
            let mut rest = words.iter().skip_while(|w| {
                !matches!(
                    w.as_str(),
                    "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "VALUES" | "TABLE"
                )
            });
            rest.next().is_some_and(|verb| verb == "SELECT") && rest.any(|w| w == "INTO")
        }
        _ => false,
    }
}

/// The first `max` words of `sql` outside parentheses, upper-cased,
/// skipping comments, string literals (also `E'…'` and dollar-quoted ones)
/// and quoted identifiers, so that `SELECT 'into'` or `"into"` is not a
/// keyword.
fn top_level_words(sql: &str, max: usize) -> Vec<String> {
    let b = sql.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    let mut words = Vec::new();
    // Skips a quoted run starting at b[i] (the quote), with the quote
    // doubled inside; `backslash` also skips a backslash's next byte.
    let skip_quoted = |mut i: usize, quote: u8, backslash: bool| {
        i += 1;
        while i < b.len() {
            if backslash && b[i] == b'\\' {
                i += 2;
            } else if b[i] == quote {
                if b.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            } else {
                i += 1;
            }
        }
        i
    };
    while i < b.len() && words.len() < max {
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut nested = 0usize;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        nested += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        nested -= 1;
                        i += 2;
                        if nested == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'\'' => i = skip_quoted(i, b'\'', false),
            b'"' => i = skip_quoted(i, b'"', false),
            b'$' => {
                // `$tag$ … $tag$` (tag possibly empty); `$1` is a parameter.
                let mut j = i + 1;
                if b.get(j)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
                {
                    while b
                        .get(j)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    {
                        j += 1;
                    }
                }
                if b.get(j) == Some(&b'$') {
                    let tag = &sql[i..=j];
                    i = sql[j + 1..]
                        .find(tag)
                        .map_or(b.len(), |at| j + 1 + at + tag.len());
                } else {
                    i += 1;
                }
            }
            b'(' | b'[' => {
                depth += 1;
                i += 1;
            }
            b')' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$')
                {
                    i += 1;
                }
                let word = &sql[start..i];
                if b.get(i) == Some(&b'\'') {
                    // A prefixed literal: E'…' takes backslash escapes; B'…', X'…', U&'…' do not.
                    i = skip_quoted(i, b'\'', word.eq_ignore_ascii_case("e"));
                } else if depth == 0 {
                    words.push(word.to_ascii_uppercase());
                }
            }
            _ => i += 1,
        }
    }
    words
}

/// Refuses writes on a target that is not in read-write mode.
pub fn require_writable(target: &Target) -> Result<(), WorkerError> {
    if target.mode == Mode::ReadWrite {
        return Ok(());
    }
    Err(WorkerError::new(
        ErrorKind::ReadOnly,
        format!(
            "database `{0}` is read-only (mode read-only), so this tool cannot run against it; \
             an operator enables writes by starting its workers with --mode {0}=read-write",
            target.name
        ),
    ))
}

/// A prepared statement with its parameters bound.
pub struct Prepared {
    /// Result columns as the contract describes them.
    pub columns: Vec<Column>,
    /// Result column types, for decoding.
    pub types: Vec<PgTypeInfo>,
    /// Bound parameters.
    pub args: PgArguments,
}

/// Prepares `sql` (one statement) and binds `params` for the parameter types
/// PostgreSQL inferred.
pub async fn prepare(
    target: &Target,
    conn: &mut PgConnection,
    sql: &str,
    params: &[Param],
) -> Result<Prepared, WorkerError> {
    let stmt = (&mut *conn)
        .prepare_with(AssertSqlSafe(sql.to_string()).into_sql_str(), &[])
        .await
        .map_err(one_statement_hint)?;
    let param_types: Vec<PgTypeInfo> = match stmt.parameters() {
        Some(Either::Left(types)) => types.to_vec(),
        _ => Vec::new(),
    };
    let pg_columns: Vec<PgColumn> = stmt.columns().to_vec();
    let types: Vec<PgTypeInfo> = pg_columns.iter().map(|c| c.type_info().clone()).collect();
    let names = target.type_names.names(conn, &types).await?;
    let columns = pg_columns
        .iter()
        .zip(names)
        .map(|(c, type_name)| Column {
            name: c.name().to_string(),
            type_name,
            type_oid: c.type_info().oid().map_or(0, |o| o.0),
        })
        .collect();
    let args = params::bind(conn, params, &param_types).await?;
    Ok(Prepared {
        columns,
        types,
        args,
    })
}

/// Runs a prepared statement to completion and keeps the returned rows
/// within `max_rows` and `max_bytes` (rows beyond are read and dropped:
/// a write must finish whatever it returns).
pub async fn collect(
    target: &Target,
    conn: &mut PgConnection,
    sql: &str,
    prepared: Prepared,
    max_rows: u64,
    max_bytes: u64,
) -> Result<StatementResult, WorkerError> {
    let mut result = StatementResult {
        columns: prepared.columns,
        ..StatementResult::default()
    };
    let mut bytes = 0u64;
    let query = sqlx::query_with(AssertSqlSafe(sql.to_string()), prepared.args);
    let mut stream = (&mut *conn).fetch_many(query);
    while let Some(item) = stream.next().await {
        match item? {
            Either::Left(done) => result.rows_affected += done.rows_affected(),
            Either::Right(row) => {
                if result.truncated {
                    continue;
                }
                if result.rows.len() as u64 >= max_rows {
                    result.truncated = true;
                    result.truncation_reason = TruncationReason::MaxRows as i32;
                    continue;
                }
                let json = encode_row(target, &row, &prepared.types).await?;
                if bytes + json.len() as u64 > max_bytes {
                    result.truncated = true;
                    result.truncation_reason = TruncationReason::MaxBytes as i32;
                    continue;
                }
                bytes += json.len() as u64;
                result.rows.push(json);
            }
        }
    }
    Ok(result)
}

/// Encodes one row as a JSON array.
pub async fn encode_row(
    target: &Target,
    row: &sqlx::postgres::PgRow,
    types: &[PgTypeInfo],
) -> Result<Vec<u8>, WorkerError> {
    let mut out = Vec::with_capacity(16 * types.len() + 2);
    out.push(b'[');
    for (i, ty) in types.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let raw = row.try_get_raw(i)?;
        let bytes = if raw.is_null() {
            None
        } else {
            Some(raw.as_bytes().map_err(|e| {
                WorkerError::new(ErrorKind::Internal, format!("cannot read column {i}: {e}"))
            })?)
        };
        if decode::write_value(&mut out, ty, bytes) == Outcome::NeedsText {
            let text = text_form(target, ty, bytes.unwrap_or_default()).await?;
            decode::write_json_string(&mut out, &text);
        }
    }
    out.push(b']');
    Ok(out)
}

/// The PostgreSQL text form of a binary value, computed by the server
/// (`SELECT $1::text` runs the type's output function). Used for types
/// the decoder does not know, such as those of extensions. Runs on the
/// target's side connection, since the call holds its pooled one.
///
/// The statement is prepared once per type and kept (its SQL names the
/// OID, so each type gets its own statement): an unnamed statement would
/// be lost when the driver looks up an unknown type between Parse and Bind.
async fn text_form(target: &Target, ty: &PgTypeInfo, bytes: &[u8]) -> Result<String, WorkerError> {
    let oid = ty.oid().map_or(0, |o| o.0);
    let sql = format!("SELECT $1::text /* pgmcp text form of type {oid} */");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(Bound::new(ty.clone(), Some(bytes.to_vec())))
        .fetch_one(&target.side)
        .await
        .map_err(|e| {
            let mut err = WorkerError::from(e);
            if oid == RECORD_OID {
                err.0.message = format!(
                    "cannot decode an anonymous record (ROW(…)) holding a value of a user-defined type ({}); \
                     cast the value to text, or to a named composite type",
                    err.0.message
                );
                err.0.hint.clear();
            }
            err
        })?;
    Ok(row.try_get::<String, _>(0)?)
}

/// OID of the anonymous `record` type.
const RECORD_OID: u32 = 2249;

/// Several statements in one call fail at Parse; say what to do.
fn one_statement_hint(err: sqlx::Error) -> WorkerError {
    let mut err = WorkerError::from(err);
    if err
        .0
        .message
        .contains("cannot insert multiple commands into a prepared statement")
    {
        err.0.message =
            "only one SQL statement per call is allowed; send each statement in its own call"
                .into();
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_changes_are_recognised() {
        for sql in [
            "CREATE TABLE t (id int)",
            "  alter table t add column x int",
            "/* c */ -- c\n drop view v",
            "comment on table t is 'x'",
            "DO $$ BEGIN EXECUTE 'CREATE TABLE t ()'; END $$",
            "SELECT * INTO new_table FROM t",
            "select id, name into temp copy from t where id > 1",
            "SELECT a.* INTO \"New Table\" FROM (SELECT 1 AS x) a",
            "WITH src AS (SELECT * FROM t) SELECT * INTO copy FROM src",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n INTO nums FROM r",
        ] {
            assert!(may_change_schema(sql), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "INSERT INTO t VALUES (1)",
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
            "UPDATE t SET x = 1",
            "SELECT 'into' FROM t",
            "SELECT \"into\" FROM t",
            "SELECT E'it\\'s into' FROM t",
            "SELECT $$ into $$, $tag$ x into y $tag$ FROM t WHERE id = $1",
            "SELECT (SELECT 1) -- into\nFROM t",
            "SELECT /* into */ 1",
            "WITH moved AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM moved",
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
            "",
        ] {
            assert!(!may_change_schema(sql), "{sql}");
        }
    }

    #[test]
    fn transaction_control_is_recognised() {
        for (sql, word) in [
            ("COMMIT", "COMMIT"),
            ("  commit;", "COMMIT"),
            (
                "/* a /* nested */ comment */ -- x\n rollback to savepoint a",
                "ROLLBACK",
            ),
            ("begin isolation level serializable", "BEGIN"),
            ("START TRANSACTION", "START"),
            ("end", "END"),
            ("prepare transaction 'x'", "PREPARE TRANSACTION"),
        ] {
            assert_eq!(transaction_control(sql).as_deref(), Some(word), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "PREPARE p AS SELECT 1",
            "with commit as (select 1) select * from commit",
            "",
            "-- only",
        ] {
            assert_eq!(transaction_control(sql), None, "{sql}");
        }
    }
}
