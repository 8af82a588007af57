//! The life of one call on one pooled connection.
//!
//! [`Session::begin`] takes a connection from the target's pool and opens the
//! call's transaction with its access mode and timeout; exactly one of the
//! ending methods gives the connection back. A connection returns to the pool
//! only after a clean end of its transaction; whenever that is in doubt (rows
//! left unread, a lost connection, a failed ROLLBACK) the backend is
//! cancelled and the connection closed instead.

use std::time::Duration;

use pgmcp_proto::error::ErrorKind;
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, Row};

use crate::error::WorkerError;
use crate::targets::Target;

/// The transaction mode of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `BEGIN READ ONLY`; always rolled back.
    ReadOnly,
    /// `BEGIN READ WRITE`; committed by [`Session::commit`].
    ReadWrite,
}

/// A call's connection with its transaction open.
pub struct Session {
    conn: PoolConnection<Postgres>,
    /// Backend process id, for cancelling from another connection.
    pid: i32,
}

impl Session {
    /// Acquires a connection and opens the transaction (one round trip).
    pub async fn begin(
        target: &Target,
        access: Access,
        timeout_ms: u32,
    ) -> Result<Self, WorkerError> {
        let mut conn = target.telemetry.acquire(&target.pool).await?;
        let mode = match access {
            Access::ReadOnly => "READ ONLY",
            Access::ReadWrite => "READ WRITE",
        };
        // Only numbers and fixed words are spliced here.
        let begin = format!(
            "BEGIN {mode}; SET LOCAL statement_timeout = {timeout_ms}; SELECT pg_backend_pid()"
        );
        let pid: i32 = match sqlx::raw_sql(AssertSqlSafe(begin))
            .fetch_one(&mut *conn)
            .await
        {
            Ok(row) => row.try_get(0)?,
            Err(e) => {
                drop(conn.detach());
                return Err(e.into());
            }
        };
        Ok(Session { conn, pid })
    }

    /// The connection, for running the call's statements.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Backend process id of the connection.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Ends a call that is complete or failed with a statement error:
    /// rolls back and returns the connection to the pool.
    pub async fn rollback(mut self, target: &Target) {
        if let Err(e) = sqlx::raw_sql("ROLLBACK").execute(&mut *self.conn).await {
            tracing::warn!(target = %target.name, error = %e, "ROLLBACK failed; discarding the connection");
            drop(self.conn.detach());
        }
    }

    /// Commits. On failure nothing was committed; the error says why.
    pub async fn commit(mut self, target: &Target) -> Result<(), WorkerError> {
        match sqlx::raw_sql("COMMIT").execute(&mut *self.conn).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = WorkerError::from(e);
                if err.kind() == ErrorKind::Connection {
                    drop(self.conn.detach());
                } else {
                    self.rollback(target).await;
                }
                Err(err)
            }
        }
    }

    /// Ends a call whose statement may still be running or whose rows were
    /// left unread: cancels the backend from the side connection and closes
    /// the connection instead of draining it.
    pub async fn abandon(self, target: &Target) {
        let cancel = sqlx::query("SELECT pg_cancel_backend($1)").bind(self.pid);
        match tokio::time::timeout(Duration::from_secs(2), cancel.execute(&target.side)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(target = %target.name, pid = self.pid, error = %e, "could not cancel backend")
            }
            Err(_) => {
                tracing::warn!(target = %target.name, pid = self.pid, "cancelling backend timed out")
            }
        }
        drop(self.conn.detach());
    }

    /// Ends a call whose connection failed: closes it.
    pub fn lost(self) {
        drop(self.conn.detach());
    }

    /// Ends the call as its outcome requires: rolls back after a complete
    /// result or a statement error, closes the connection after a lost one.
    pub async fn end_after(self, target: &Target, err: Option<&WorkerError>) {
        match err {
            Some(e) if e.kind() == ErrorKind::Connection => self.lost(),
            _ => self.rollback(target).await,
        }
    }
}
