//! `BulkInsert`: rows into a table through `COPY … FROM STDIN`, in one
//! transaction. The table is resolved by PostgreSQL (`to_regclass`) and
//! named in the COPY statement the way PostgreSQL prints it; column names are
//! checked against the catalog and quoted; values travel as COPY text data,
//! never as SQL.

use std::sync::Arc;

use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::{BulkInsertRequest, BulkInsertResponse};
use sqlx::postgres::PgDatabaseError;
use sqlx::{PgConnection, Row};

use crate::error::WorkerError;
use crate::params::array_literal;
use crate::query::Effective;
use crate::session::{Access, Session};
use crate::statement;
use crate::targets::Target;

/// COPY data is sent in chunks of about this size.
const CHUNK_BYTES: usize = 256 * 1024;

pub async fn run(
    target: Arc<Target>,
    req: BulkInsertRequest,
    eff: Effective,
    max_rows: usize,
) -> Result<BulkInsertResponse, WorkerError> {
    statement::require_writable(&target)?;
    if req.columns.is_empty() {
        return Err(WorkerError::invalid(
            "name at least one column to insert into",
        ));
    }
    if req.rows.is_empty() {
        return Err(WorkerError::invalid("no rows given"));
    }
    if req.rows.len() > max_rows {
        return Err(WorkerError::invalid(format!(
            "{} rows given, over this worker's limit of {max_rows} rows per call (max_bulk_rows); split the load",
            req.rows.len()
        )));
    }
    let mut session = Session::begin(&target, Access::ReadWrite, eff.timeout_ms).await?;
    let outcome = load(session.conn(), &req).await;
    match outcome {
        Ok(resp) => {
            session.commit(&target).await?;
            Ok(resp)
        }
        Err(err) => {
            session.end_after(&target, Some(&err)).await;
            Err(err)
        }
    }
}

async fn load(
    conn: &mut PgConnection,
    req: &BulkInsertRequest,
) -> Result<BulkInsertResponse, WorkerError> {
    let table = sqlx::query(
        "SELECT c.oid::int8, c.oid::regclass::text FROM pg_catalog.pg_class c \
         WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'f', 'v')",
    )
    .bind(&req.table)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| {
        let mut err = WorkerError::from(e);
        err.0.message = format!(
            "`{}` is not a valid table name: {}",
            req.table, err.0.message
        );
        err
    })?;
    let Some(table) = table else {
        return Err(WorkerError::new(
            ErrorKind::UndefinedObject,
            format!(
                "table `{}` does not exist (names are case-sensitive when quoted; qualify with the schema if it is not on the search_path)",
                req.table
            ),
        ));
    };
    let oid: i64 = table.try_get(0)?;
    let table_name: String = table.try_get(1)?;

    let known = sqlx::query(
        "SELECT a.attname::text, t.typcategory = 'A' FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await?;
    let known: Vec<(String, bool)> = known
        .iter()
        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<bool, _>(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let mut is_array = Vec::with_capacity(req.columns.len());
    for c in &req.columns {
        match known.iter().find(|(name, _)| name == c) {
            Some((_, arr)) => is_array.push(*arr),
            None => {
                let names: Vec<&str> = known.iter().map(|(n, _)| n.as_str()).collect();
                return Err(WorkerError::new(
                    ErrorKind::UndefinedObject,
                    format!(
                        "table {table_name} has no column `{c}`; its columns are: {}",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    let columns: Vec<String> = req.columns.iter().map(|c| quote_ident(c)).collect();
    let copy = format!("COPY {table_name} ({}) FROM STDIN", columns.join(", "));

    let mut data = Vec::with_capacity(CHUNK_BYTES + 4096);
    let mut copy_in = conn.copy_in_raw(&copy).await?;
    for (i, row) in req.rows.iter().enumerate() {
        if let Err(msg) = encode_row(&mut data, row, &is_array) {
            let _ = copy_in.abort("invalid row").await;
            let mut err = WorkerError::invalid(format!("row {}: {msg}", i + 1));
            err.0.statement_index = u32::try_from(i + 1).unwrap_or(u32::MAX);
            return Err(err);
        }
        if data.len() >= CHUNK_BYTES {
            copy_in
                .send(std::mem::take(&mut data))
                .await
                .map_err(copy_error)?;
            data.reserve(CHUNK_BYTES + 4096);
        }
    }
    if !data.is_empty() {
        copy_in.send(data).await.map_err(copy_error)?;
    }
    let rows_inserted = copy_in.finish().await.map_err(copy_error)?;
    Ok(BulkInsertResponse {
        rows_inserted,
        table: table_name,
    })
}

/// A COPY failure, with the row it names ("COPY t, line 5, column x: …").
fn copy_error(e: sqlx::Error) -> WorkerError {
    let line = match &e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<PgDatabaseError>()
            .and_then(|pg| pg.r#where())
            .and_then(|w| w.split("line ").nth(1))
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u32>().ok()),
        _ => None,
    };
    let mut err = WorkerError::from(e);
    if let Some(line) = line {
        err.0.statement_index = line;
        err.0.message = format!("row {line}: {}; nothing was inserted", err.0.message);
    }
    err
}

/// `"name"` with embedded quotes doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Appends one row (a JSON array) as a line of COPY text format.
fn encode_row(out: &mut Vec<u8>, row: &[u8], is_array: &[bool]) -> Result<(), String> {
    let values: Vec<serde_json::Value> =
        serde_json::from_slice(row).map_err(|e| format!("not a JSON array of values: {e}"))?;
    if values.len() != is_array.len() {
        return Err(format!(
            "{} values for {} columns",
            values.len(),
            is_array.len()
        ));
    }
    for (i, (v, arr)) in values.iter().zip(is_array).enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match v {
            serde_json::Value::Null => out.extend_from_slice(b"\\N"),
            serde_json::Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
            serde_json::Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
            serde_json::Value::String(s) => escape(out, s),
            serde_json::Value::Array(_) if *arr => escape(out, &array_literal(v)),
            other => escape(out, &other.to_string()),
        }
    }
    out.push(b'\n');
    Ok(())
}

/// COPY text-format escaping.
fn escape(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_copy_text() {
        let mut out = Vec::new();
        let row = br#"[1, "a\tb\\c\nd", null, true, [1, 2], {"k": "v"}]"#;
        assert!(encode_row(&mut out, row, &[false, false, false, false, true, false]).is_ok());
        assert_eq!(
            String::from_utf8_lossy(&out),
            "1\ta\\tb\\\\c\\nd\t\\N\tt\t{\"1\",\"2\"}\t{\"k\":\"v\"}\n"
        );
        assert!(encode_row(&mut out, b"[1]", &[false, false]).is_err());
        assert!(encode_row(&mut out, b"{}", &[false]).is_err());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
    }
}
