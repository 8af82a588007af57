//! Running one read-only statement and streaming its result.
//!
//! The call's life on its connection:
//! `BEGIN READ ONLY; SET LOCAL statement_timeout` → prepare (extended
//! protocol: exactly one statement) → bind → stream rows in batches →
//! `ROLLBACK`. When the result is cut short (a limit is reached or the caller
//! went away) the backend is cancelled with `pg_cancel_backend` from another
//! connection and our connection is discarded rather than drained, so
//! PostgreSQL stops working and the pool only ever holds clean connections.
//!
//! Messages are held until a batch is full or the call has ended: a result
//! that fits one batch (most do) leaves as one write — columns, rows,
//! summary and the end of the stream together — once the connection is
//! back in a clean state.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::{
    Columns, QueryRequest, QueryResponse, RowBatch, Summary, TruncationReason, query_response::Part,
};
use sqlx::AssertSqlSafe;
use sqlx::PgConnection;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::Instrument;

use crate::config::Limits;

use crate::error::WorkerError;
use crate::session::{Access, Session};
use crate::statement;
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
        Self::from_parts(
            req.max_rows,
            req.max_bytes,
            req.timeout_ms,
            limits,
            deadline,
        )
    }

    /// Applies defaults and caps to the limits a call asked for (0 = default).
    pub fn from_parts(
        max_rows: u64,
        max_bytes: u64,
        timeout_ms: u32,
        limits: &Limits,
        deadline: Option<Duration>,
    ) -> Self {
        let pick = |asked: u64, default: u64, max: u64| {
            if asked == 0 { default } else { asked.min(max) }
        };
        let mut timeout_ms = if timeout_ms == 0 {
            limits.default_timeout_ms
        } else {
            timeout_ms.min(limits.max_timeout_ms)
        };
        if let Some(d) = deadline {
            timeout_ms = timeout_ms.min(u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1));
        }
        Effective {
            max_rows: pick(max_rows, limits.default_max_rows, limits.max_rows),
            max_bytes: pick(max_bytes, limits.default_max_bytes, limits.max_bytes),
            timeout_ms,
        }
    }
}

/// Checks what can be checked before touching the database.
pub fn validate(req: &QueryRequest, limits: &Limits) -> Result<(), WorkerError> {
    statement::check(&req.sql, &req.params, limits)
}

/// Runs the query and sends its result to `tx`. Errors are sent too.
pub async fn run(target: Arc<Target>, req: QueryRequest, eff: Effective, tx: Sender) {
    if let Err(err) = run_inner(&target, &req, eff, &tx).await {
        let mut err = err.for_database(&target.name);
        crate::suggest::did_you_mean(&target, &req.sql, &mut err).await;
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
    let mut out = Outbox::new(tx);
    let outcome = stream_rows(target, session.conn(), req, eff, &mut out)
        .instrument(db.clone())
        .await;
    if let Err(err) = &outcome {
        TargetTelemetry::statement_failed(&db, err);
    }
    match &outcome {
        // Rows were left unread: stop the backend, drop the connection.
        Ok(Some(_)) => session.abandon(target).await,
        Ok(None) => session.rollback_unawaited(target),
        Err(err) => session.end_after(target, Some(err)).await,
    }
    match outcome {
        Ok(Some(Cut::CallerGone)) => Ok(()),
        Ok(_) => {
            out.flush().await;
            Ok(())
        }
        Err(err) => Err(err),
    }
}

/// The call's messages on their way to the caller: held until a batch is
/// full or the call has ended, so a small result leaves in one write.
struct Outbox<'a> {
    tx: &'a Sender,
    held: Vec<QueryResponse>,
}

impl<'a> Outbox<'a> {
    fn new(tx: &'a Sender) -> Self {
        Outbox {
            tx,
            held: Vec::with_capacity(3),
        }
    }

    fn hold(&mut self, part: Part) {
        self.held.push(QueryResponse { part: Some(part) });
    }

    /// Sends what is held; false when the caller has gone away.
    async fn flush(&mut self) -> bool {
        for msg in self.held.drain(..) {
            if self.tx.send(Ok(msg)).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// Prepares, binds and streams. Returns `Some(cut)` when it stopped early,
/// leaving unread rows on the connection. The last batch and the summary
/// stay in `out` for the caller to send once the connection is clean.
async fn stream_rows(
    target: &Target,
    conn: &mut PgConnection,
    req: &QueryRequest,
    eff: Effective,
    out: &mut Outbox<'_>,
) -> Result<Option<Cut>, WorkerError> {
    let prepared = statement::prepare(target, conn, &req.sql, &req.params).await?;
    let types = prepared.types.clone();
    out.hold(Part::Columns(Columns {
        columns: prepared.columns.clone(),
    }));
    let tx = out.tx;

    // With tracing on, the text carries a SQLCommenter comment (see
    // telemetry::db); the plain text stays prepared and cached.
    let (text, persistent) = target.telemetry.statement_text(&req.sql);
    let mut rows = sqlx::query_with(AssertSqlSafe(text), prepared.args)
        .persistent(persistent)
        .fetch(&mut *conn);
    let mut skip = req.skip_rows;
    let mut batch = RowBatch::default();
    let mut batch_bytes = 0usize;
    let mut summary = Summary {
        max_rows: eff.max_rows,
        max_bytes: eff.max_bytes,
        ..Summary::default()
    };
    let mut cut = None;
    // One waiter for the whole result, not one per row.
    let gone = tx.closed();
    tokio::pin!(gone);
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut gone => { cut = Some(Cut::CallerGone); break; }
            next = rows.next() => next,
        };
        let Some(row) = next else { break };
        let row = row?;
        if skip > 0 {
            skip -= 1;
            continue;
        }
        if summary.row_count >= eff.max_rows {
            cut = Some(Cut::Truncated(TruncationReason::MaxRows));
            break;
        }
        let json = statement::encode_row(target, &row, &types).await?;
        if summary.bytes + json.len() as u64 > eff.max_bytes {
            cut = Some(Cut::Truncated(TruncationReason::MaxBytes));
            break;
        }
        summary.row_count += 1;
        summary.bytes += json.len() as u64;
        batch_bytes += json.len();
        batch.rows.push(json);
        if batch.rows.len() >= BATCH_ROWS || batch_bytes >= BATCH_BYTES {
            out.hold(Part::Rows(std::mem::take(&mut batch)));
            batch_bytes = 0;
            if !out.flush().await {
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
        out.hold(Part::Rows(batch));
    }
    if let Some(Cut::Truncated(reason)) = &cut {
        summary.truncated = true;
        summary.truncation_reason = *reason as i32;
    }
    target.telemetry.returned(&summary);
    out.hold(Part::Summary(summary));
    Ok(cut)
}
