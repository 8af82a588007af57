//! Running one read-only statement and streaming its result.
//!
//! The call's life on its connection:
//! `BEGIN READ ONLY; SET LOCAL statement_timeout` → prepare (extended
//! protocol: exactly one statement) → bind → stream rows in batches →
//! `ROLLBACK`. When the result is cut short (a limit is reached or the caller
//! went away) the backend is cancelled with `pg_cancel_backend` from another
//! connection and our connection is discarded rather than drained, so
//! PostgreSQL stops working and the pool only ever holds clean connections.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::{
    Column, Columns, QueryRequest, QueryResponse, RowBatch, Summary, TruncationReason,
    query_response::Part,
};
use sqlx::PgConnection;
use sqlx::postgres::{PgColumn, PgTypeInfo};
use sqlx::{AssertSqlSafe, Column as _, Either, Executor, Row, SqlSafeStr, Statement, ValueRef};
use tokio::sync::mpsc;
use tonic::Status;
use tracing::Instrument;

use crate::config::Limits;
use crate::decode::{self, Outcome};
use crate::error::WorkerError;
use crate::params::{self, Bound};
use crate::session::{Access, Session};
use crate::targets::Target;
use crate::telemetry::TargetTelemetry;

/// Rows are sent in batches of at most this many rows …
const BATCH_ROWS: usize = 1_000;
/// … or this many bytes, whichever comes first.
const BATCH_BYTES: usize = 256 * 1024;

pub type Sender = mpsc::Sender<Result<QueryResponse, Status>>;

/// The limits that apply to one call, after defaults and caps.
#[derive(Debug, Clone, Copy)]
pub struct Effective {
    pub max_rows: u64,
    pub max_bytes: u64,
    pub timeout_ms: u32,
}

impl Effective {
    /// Applies defaults and caps to what the request asked for.
    /// `deadline` is what remains of the gRPC deadline, if one was sent.
    pub fn new(req: &QueryRequest, limits: &Limits, deadline: Option<Duration>) -> Self {
        let pick = |asked: u64, default: u64, max: u64| {
            if asked == 0 { default } else { asked.min(max) }
        };
        let mut timeout_ms = if req.timeout_ms == 0 {
            limits.default_timeout_ms
        } else {
            req.timeout_ms.min(limits.max_timeout_ms)
        };
        if let Some(d) = deadline {
            timeout_ms = timeout_ms.min(u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1));
        }
        Effective {
            max_rows: pick(req.max_rows, limits.default_max_rows, limits.max_rows),
            max_bytes: pick(req.max_bytes, limits.default_max_bytes, limits.max_bytes),
            timeout_ms,
        }
    }
}

/// Checks what can be checked before touching the database.
pub fn validate(req: &QueryRequest, limits: &Limits) -> Result<(), WorkerError> {
    if req.sql.trim().is_empty() {
        return Err(WorkerError::invalid("the SQL statement is empty"));
    }
    if req.sql.len() > limits.max_sql_bytes {
        return Err(WorkerError::new(
            ErrorKind::InvalidRequest,
            format!(
                "the SQL statement is {} bytes, over this worker's limit of {} bytes (max_sql_bytes)",
                req.sql.len(),
                limits.max_sql_bytes
            ),
        ));
    }
    if req.params.len() > limits.max_params {
        return Err(WorkerError::new(
            ErrorKind::InvalidRequest,
            format!(
                "{} params given, over this worker's limit of {} (max_params)",
                req.params.len(),
                limits.max_params
            ),
        ));
    }
    Ok(())
}

/// Runs the query and sends its result to `tx`. Errors are sent too.
pub async fn run(target: Arc<Target>, req: QueryRequest, eff: Effective, tx: Sender) {
    if let Err(err) = run_inner(&target, &req, eff, &tx).await {
        let err = err.for_database(&target.name);
        target.telemetry.failed(&err);
        if err.kind() == ErrorKind::Internal {
            tracing::error!(target = %target.name, error = %err, "query failed");
        } else {
            tracing::debug!(target = %target.name, error = %err, "query failed");
        }
        let _ = tx.send(Err(err.into_status())).await;
    }
}

/// Why streaming stopped before the end of the result.
enum Cut {
    Truncated(TruncationReason),
    CallerGone,
}

async fn run_inner(
    target: &Target,
    req: &QueryRequest,
    eff: Effective,
    tx: &Sender,
) -> Result<(), WorkerError> {
    let mut session = Session::begin(target, Access::ReadOnly, eff.timeout_ms).await?;
    let db = target.telemetry.db_call(&req.sql);
    let outcome = stream_rows(target, session.conn(), req, eff, tx)
        .instrument(db.clone())
        .await;
    if let Err(err) = &outcome {
        TargetTelemetry::statement_failed(&db, err);
    }
    match &outcome {
        // Rows were left unread: stop the backend, drop the connection.
        Ok(Some(_)) => session.abandon(target).await,
        Ok(None) => session.rollback(target).await,
        Err(err) => session.end_after(target, Some(err)).await,
    }
    outcome.map(|_| ())
}

/// Prepares, binds and streams. Returns `Some(cut)` when it stopped early,
/// leaving unread rows on the connection.
async fn stream_rows(
    target: &Target,
    conn: &mut PgConnection,
    req: &QueryRequest,
    eff: Effective,
    tx: &Sender,
) -> Result<Option<Cut>, WorkerError> {
    let stmt = (&mut *conn)
        .prepare_with(AssertSqlSafe(req.sql.clone()).into_sql_str(), &[])
        .await
        .map_err(one_statement_hint)?;
    let param_types: Vec<PgTypeInfo> = match stmt.parameters() {
        Some(Either::Left(types)) => types.to_vec(),
        _ => Vec::new(),
    };
    let columns: Vec<PgColumn> = stmt.columns().to_vec();
    let types: Vec<PgTypeInfo> = columns.iter().map(|c| c.type_info().clone()).collect();
    let names = target.type_names.names(conn, &types).await?;
    let header = Columns {
        columns: columns
            .iter()
            .zip(names)
            .map(|(c, type_name)| Column {
                name: c.name().to_string(),
                type_name,
                type_oid: c.type_info().oid().map_or(0, |o| o.0),
            })
            .collect(),
    };
    if tx
        .send(Ok(QueryResponse {
            part: Some(Part::Columns(header)),
        }))
        .await
        .is_err()
    {
        return Ok(Some(Cut::CallerGone));
    }

    let args = params::bind(conn, &req.params, &param_types).await?;

    // With tracing on, the text carries a SQLCommenter comment (see telemetry::db).
    let (text, persistent) = target.telemetry.statement_text(&req.sql);
    let mut rows = sqlx::query_with(AssertSqlSafe(text), args)
        .persistent(persistent)
        .fetch(&mut *conn);
    let mut batch = RowBatch::default();
    let mut batch_bytes = 0usize;
    let mut summary = Summary {
        max_rows: eff.max_rows,
        max_bytes: eff.max_bytes,
        ..Summary::default()
    };
    let mut cut = None;
    loop {
        let next = tokio::select! {
            biased;
            _ = tx.closed() => { cut = Some(Cut::CallerGone); break; }
            next = rows.next() => next,
        };
        let Some(row) = next else { break };
        let row = row?;
        if summary.row_count >= eff.max_rows {
            cut = Some(Cut::Truncated(TruncationReason::MaxRows));
            break;
        }
        let json = encode_row(target, &row, &types).await?;
        if summary.bytes + json.len() as u64 > eff.max_bytes {
            cut = Some(Cut::Truncated(TruncationReason::MaxBytes));
            break;
        }
        summary.row_count += 1;
        summary.bytes += json.len() as u64;
        batch_bytes += json.len();
        batch.rows.push(json);
        if batch.rows.len() >= BATCH_ROWS || batch_bytes >= BATCH_BYTES {
            let full = std::mem::take(&mut batch);
            batch_bytes = 0;
            if tx
                .send(Ok(QueryResponse {
                    part: Some(Part::Rows(full)),
                }))
                .await
                .is_err()
            {
                cut = Some(Cut::CallerGone);
                break;
            }
        }
    }
    drop(rows);
    if let Some(Cut::CallerGone) = cut {
        return Ok(cut);
    }
    if !batch.rows.is_empty() {
        let _ = tx
            .send(Ok(QueryResponse {
                part: Some(Part::Rows(batch)),
            }))
            .await;
    }
    if let Some(Cut::Truncated(reason)) = &cut {
        summary.truncated = true;
        summary.truncation_reason = *reason as i32;
    }
    target.telemetry.returned(&summary);
    let _ = tx
        .send(Ok(QueryResponse {
            part: Some(Part::Summary(summary)),
        }))
        .await;
    Ok(cut)
}

/// Encodes one row as a JSON array.
async fn encode_row(
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
