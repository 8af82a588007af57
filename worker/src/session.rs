//! The life of one call on one pooled connection.
//!
//! [`Session::begin`] takes a connection from the target's pool and opens the
//! call's transaction with its access mode and timeouts; exactly one of the
//! ending methods gives the connection back. A connection returns to the pool
//! only after a clean end of its transaction and with no session state left
//! behind; whenever that is in doubt (rows left unread, a lost connection, a
//! failed ROLLBACK, state that cannot be reset) the backend is cancelled and
//! the connection closed instead.
//!
//! Session state that survives a ROLLBACK is reset or detected here:
//! session-level advisory locks are released, and SQL-level prepared
//! statements (`PREPARE`, which cannot be removed without also removing the
//! driver's own) get the connection discarded. After a COMMIT everything a
//! committed statement may have left is reset (`DISCARD ALL` less the
//! driver's prepared statements).

use std::time::Duration;

use futures::{FutureExt, StreamExt};

use pgmcp_proto::error::ErrorKind;
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, Row};

use crate::cancel;
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

/// The virtual transaction id of the current transaction: unique per
/// transaction, so a changed value means the caller's SQL ended ours.
const VXID: &str = "(SELECT virtualtransaction FROM pg_catalog.pg_locks \
                    WHERE pid = pg_catalog.pg_backend_pid() AND locktype = 'virtualxid')";

/// After ROLLBACK: release session-level advisory locks (they survive a
/// rollback) and report SQL-level prepared statements (they survive too).
const AFTER_ROLLBACK: &str = "ROLLBACK; SELECT pg_catalog.pg_advisory_unlock_all(), \
     EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE from_sql)";

/// ROLLBACK and release session-level advisory locks, for
/// [`Session::rollback_unawaited`]. Public, as [`begin_sql`], for the
/// benchmark's baseline of a call's statements without the worker.
pub const ROLLBACK_AND_UNLOCK: &str = "ROLLBACK; SELECT pg_catalog.pg_advisory_unlock_all()";

/// COMMIT, then reset what committed statements may have left on the
/// session: cursors, role, settings, LISTEN, advisory locks, temporary
/// tables, sequence state. Equivalent to `DISCARD ALL` without
/// `DEALLOCATE ALL`, which would drop the driver's prepared statements.
/// The timeouts come first: a session-level `statement_timeout` or
/// `lock_timeout` that the caller committed would otherwise bound the
/// reset's statements.
const COMMIT_AND_RESET: &str = "COMMIT; RESET statement_timeout; RESET lock_timeout; CLOSE ALL; \
     SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
     UNLISTEN *; DISCARD TEMP; DISCARD SEQUENCES; SELECT pg_catalog.pg_advisory_unlock_all(), \
     EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE from_sql)";

/// The last two columns of the BEGIN's SELECT: whether the session holds
/// SQL-level prepared statements (`PREPARE` survives a ROLLBACK and cannot
/// be removed without also removing the driver's own), and whether the
/// transaction began with this message — false when the connection came
/// back from an earlier call still inside its transaction, which BEGIN
/// would then only warn about. All statements of one simple-protocol
/// message share their start time. (Inside an earlier *failed*
/// transaction the BEGIN itself fails; see `in_failed_transaction`.)
const FITNESS: &str = "EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE from_sql), \
     pg_catalog.transaction_timestamp() = pg_catalog.statement_timestamp()";

/// The message that opens a call's transaction (one round trip): `BEGIN`
/// with the access mode, then one SELECT that sets the timeouts
/// (transaction-local, as `SET LOCAL`), reads the backend's pid and checks
/// that the connection is fit for the call (see `unfit`). The
/// transaction's identity comes from pg_locks, which costs more than the
/// rest together: only when `tracked`. Only numbers and fixed words are
/// spliced in.
pub fn begin_sql(access: Access, timeout_ms: u32, tracked: bool) -> String {
    let mode = match access {
        Access::ReadOnly => "READ ONLY",
        Access::ReadWrite => "READ WRITE",
    };
    let vxid = if tracked { VXID } else { "NULL::text" };
    format!(
        "BEGIN {mode}; SELECT pg_catalog.pg_backend_pid(), {vxid}, \
         pg_catalog.set_config('statement_timeout', '{timeout_ms}', true), \
         pg_catalog.set_config('lock_timeout', '{timeout_ms}', true), \
         {FITNESS}"
    )
}

/// Why the connection that answered the BEGIN must not serve the call.
fn unfit(row: &sqlx::postgres::PgRow) -> Option<&'static str> {
    if row.try_get::<bool, _>(4).ok() != Some(false) {
        return Some("it holds SQL-level prepared statements");
    }
    if row.try_get::<bool, _>(5).ok() != Some(true) {
        return Some("it was still inside an earlier transaction");
    }
    None
}

/// A call's connection with its transaction open.
pub struct Session {
    conn: PoolConnection<Postgres>,
    /// Backend process id, for cancelling from another connection.
    pid: i32,
    /// Virtual transaction id of the call's transaction, when the call runs
    /// several statements and must check that none ended it.
    vxid: Option<String>,
    /// Set when the caller's SQL ended the call's transaction: whatever it
    /// committed may have changed the session, so the connection is closed.
    tainted: bool,
    /// The backend's registration with a watched unary call (see
    /// `cancel.rs`): if the caller goes away, the backend is terminated and
    /// the connection closed when the session ends.
    watched: Option<cancel::Entered>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(entered) = self.watched.take()
            && entered.leave()
        {
            self.conn.close_on_drop();
        }
    }
}

impl Session {
    /// Acquires a connection and opens the transaction with its statement
    /// and lock timeouts (one round trip).
    pub async fn begin(
        target: &Target,
        access: Access,
        timeout_ms: u32,
    ) -> Result<Self, WorkerError> {
        Self::open(target, access, timeout_ms, false).await
    }

    /// As [`Session::begin`], also noting the transaction's identity for
    /// [`Session::still_ours`]: for calls that run several statements (one
    /// statement alone cannot run anything after ending the transaction).
    pub async fn begin_tracked(
        target: &Target,
        access: Access,
        timeout_ms: u32,
    ) -> Result<Self, WorkerError> {
        Self::open(target, access, timeout_ms, true).await
    }

    async fn open(
        target: &Target,
        access: Access,
        timeout_ms: u32,
        tracked: bool,
    ) -> Result<Self, WorkerError> {
        let begin = begin_sql(access, timeout_ms, tracked);
        // A pooled connection the server has closed (it restarted, or an
        // administrator ended the session) fails here, before anything of
        // the call ran: drop it and take another, up to the pool's size.
        // So does one that is unfit for a call.
        let mut broken = 0;
        let (conn, row) = loop {
            let mut conn = target.acquire().await?;
            match sqlx::raw_sql(AssertSqlSafe(begin.clone()))
                .fetch_one(&mut *conn)
                .await
            {
                Ok(row) => match unfit(&row) {
                    None => break (conn, row),
                    Some(why) => {
                        // Its transaction (if it began one) ends with it.
                        drop(conn.detach());
                        tracing::debug!(target = %target.name, why, "discarding a pooled connection");
                        if broken < target.pool.options().get_max_connections() {
                            broken += 1;
                            continue;
                        }
                        return Err(WorkerError::new(
                            ErrorKind::Internal,
                            format!("no pooled connection was fit for a call: {why}"),
                        ));
                    }
                },
                Err(e) => {
                    drop(conn.detach());
                    if broken < target.pool.options().get_max_connections() {
                        if connection_gone(&e) {
                            broken += 1;
                            tracing::info!(target = %target.name, error = %e, "pooled connection was closed by the server; taking another");
                            continue;
                        }
                        if in_failed_transaction(&e) {
                            broken += 1;
                            tracing::debug!(target = %target.name, "discarding a pooled connection: it was still inside a failed transaction");
                            continue;
                        }
                    }
                    return Err(e.into());
                }
            }
        };
        let pid: i32 = row.try_get(0)?;
        let vxid: Option<String> = row.try_get(1)?;
        let watched = match cancel::enter(pid, &target.side) {
            Ok(watched) => watched,
            Err(cancel::Gone) => {
                let mut conn = conn;
                conn.close_on_drop();
                return Err(WorkerError::new(
                    ErrorKind::Cancelled,
                    "the caller went away before the call began; nothing was run",
                ));
            }
        };
        Ok(Session {
            conn,
            pid,
            vxid,
            tainted: false,
            watched,
        })
    }

    /// The connection, for running the call's statements.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Backend process id of the connection.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Checks that the call's transaction is still the open one: a caller's
    /// statement such as COMMIT, ROLLBACK or END would have ended it, and
    /// whatever ran next would run outside the call's access mode. Needs a
    /// session opened with [`Session::begin_tracked`] (others always fail).
    pub async fn still_ours(&mut self) -> Result<(), WorkerError> {
        let row = sqlx::raw_sql(AssertSqlSafe(format!("SELECT {VXID}")))
            .fetch_one(&mut *self.conn)
            .await?;
        let now: Option<String> = row.try_get(0)?;
        if now.is_some() && now == self.vxid {
            return Ok(());
        }
        self.tainted = true;
        Err(WorkerError::invalid(
            "a statement ended the call's transaction (COMMIT, ROLLBACK, END and the like are not allowed: \
             each call runs in a transaction of its own); nothing after it was run",
        ))
    }

    /// Ends a call that is complete or failed with a statement error:
    /// rolls back, releases advisory locks, and returns the connection to the
    /// pool unless it carries state that cannot be reset.
    pub async fn rollback(mut self, target: &Target) {
        if self.tainted {
            self.conn.close_on_drop();
            return;
        }
        match sqlx::raw_sql(AFTER_ROLLBACK)
            .fetch_one(&mut *self.conn)
            .await
        {
            Ok(row) if row.try_get::<bool, _>(1).ok() == Some(false) => {}
            Ok(_) => {
                tracing::debug!(target = %target.name, "SQL-level prepared statements left behind; discarding the connection");
                self.conn.close_on_drop();
            }
            Err(e) => {
                tracing::warn!(target = %target.name, error = %e, "ROLLBACK failed; discarding the connection");
                self.conn.close_on_drop();
            }
        }
    }

    /// Ends a read-only call whose answer is complete and whose statement
    /// ran to its end, without waiting for the database: the ROLLBACK and
    /// the release of advisory locks are written now, and their answer is
    /// read when the pool checks the returned connection (its one round
    /// trip on every release), so the caller's answer does not wait for
    /// them and they cost no round trip of their own. If they fail, that
    /// check fails and the pool closes the connection; if they never left,
    /// the next BEGIN finds the connection inside this transaction and
    /// closes it (see `FITNESS`). SQL-level prepared statements are
    /// caught by the next BEGIN as well.
    pub fn rollback_unawaited(mut self, target: &Target) {
        if self.tainted {
            self.conn.close_on_drop();
            return;
        }
        // One poll writes the message (the connection has nothing else
        // pending: the statement's result was read to its end); the
        // answer is left for the pool's check.
        let written = sqlx::raw_sql(ROLLBACK_AND_UNLOCK)
            .execute(&mut *self.conn)
            .now_or_never();
        match written {
            None | Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::warn!(target = %target.name, error = %e, "ROLLBACK failed; discarding the connection");
                self.conn.close_on_drop();
            }
        }
    }

    /// Commits and resets the session. On failure nothing was committed; the
    /// error says why. When the reset after a successful COMMIT fails, the
    /// call succeeded and the connection is closed instead of pooled.
    pub async fn commit(mut self, target: &Target) -> Result<(), WorkerError> {
        if self.tainted {
            self.conn.close_on_drop();
            return Err(WorkerError::invalid(
                "the call's transaction was ended by its own SQL",
            ));
        }
        // The first statement to complete is the COMMIT: an error after it
        // comes from the reset, and the call's work is committed all the same.
        let mut committed = false;
        let mut clean = false;
        let failed = {
            let mut results = sqlx::raw_sql(COMMIT_AND_RESET).fetch_many(&mut *self.conn);
            loop {
                match results.next().await {
                    None => break None,
                    Some(Ok(sqlx::Either::Left(_))) => committed = true,
                    Some(Ok(sqlx::Either::Right(row))) => {
                        clean = row.try_get::<bool, _>(1).ok() == Some(false);
                    }
                    Some(Err(e)) => break Some(e),
                }
            }
        };
        match failed {
            None => {
                if !clean {
                    self.conn.close_on_drop();
                }
                Ok(())
            }
            Some(e) if committed => {
                // What the reset did not get to may still be on the session.
                tracing::warn!(target = %target.name, error = %e, "resetting the session after COMMIT failed; discarding the connection");
                self.conn.close_on_drop();
                Ok(())
            }
            Some(e) => {
                let err = WorkerError::from(e);
                // The COMMIT itself failed (e.g. a deferred constraint): the
                // transaction is gone; a clean connection goes back to the pool.
                if err.kind() == ErrorKind::Connection {
                    self.conn.close_on_drop();
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
    pub async fn abandon(mut self, target: &Target) {
        let cancel = sqlx::query("SELECT pg_catalog.pg_cancel_backend($1)").bind(self.pid);
        match tokio::time::timeout(Duration::from_secs(2), cancel.execute(&target.side)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(target = %target.name, pid = self.pid, error = %e, "could not cancel backend")
            }
            Err(_) => {
                tracing::warn!(target = %target.name, pid = self.pid, "cancelling backend timed out")
            }
        }
        self.conn.close_on_drop();
    }

    /// Ends a call whose connection failed: closes it.
    pub fn lost(mut self) {
        self.conn.close_on_drop();
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

/// True when `e` says the BEGIN found the connection inside an earlier,
/// failed transaction (`in_failed_sql_transaction`).
fn in_failed_transaction(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("25P02"))
}

/// True when `e` says the connection itself is gone (closed by the server,
/// or the network), not that the statement failed.
fn connection_gone(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        // admin_shutdown, crash_shutdown, cannot_connect_now, and the
        // connection exception class.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("57P0") || c.starts_with("08")),
        _ => false,
    }
}
