//! Turning database and worker failures into the contract's [`Error`].
//!
//! SQLSTATE decides the [`ErrorKind`]; PostgreSQL's message, detail, hint and
//! position travel unchanged. Internal failures are logged here and reach the
//! caller only as a generic message.

use pgmcp_proto::error::{Error, ErrorKind};
use sqlx::postgres::{PgDatabaseError, PgErrorPosition};
use tonic::Status;

/// The worker's error type: a contract error ready to be sent.
#[derive(Debug, Clone)]
pub struct WorkerError(pub Box<Error>);

impl WorkerError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        WorkerError(Box::new(Error::new(kind, message)))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// Attaches the target name.
    pub fn for_database(mut self, database: &str) -> Self {
        if self.0.database.is_empty() {
            self.0.database = database.to_string();
        }
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.0.kind()
    }

    pub fn into_status(self) -> Status {
        (*self.0).into_status()
    }
}

impl std::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.0.kind(), self.0.message)
    }
}

impl From<sqlx::Error> for WorkerError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Database(db) => match db.try_downcast_ref::<PgDatabaseError>() {
                Some(pg) => WorkerError(Box::new(from_pg(pg))),
                None => WorkerError::new(ErrorKind::Database, db.message().to_string()),
            },
            sqlx::Error::PoolTimedOut => {
                let mut e = Error::new(
                    ErrorKind::PoolExhausted,
                    "every database connection of this worker is busy and none became free in time",
                );
                e.retry_safe = true;
                WorkerError(Box::new(e))
            }
            sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
                let mut e = Error::new(ErrorKind::Unavailable, "the worker is shutting down");
                e.retry_safe = true;
                WorkerError(Box::new(e))
            }
            sqlx::Error::Io(io) => WorkerError::new(
                ErrorKind::Connection,
                format!("lost the connection to PostgreSQL: {io}"),
            ),
            sqlx::Error::Tls(_) => WorkerError::new(
                ErrorKind::Connection,
                "TLS negotiation with PostgreSQL failed",
            ),
            // The driver cannot describe multirange types (pg_type.typtype 'm')
            // when it meets one among a statement's columns or parameters.
            sqlx::Error::ColumnDecode { ref source, .. }
                if source.to_string().contains("unknown type code 109") =>
            {
                WorkerError::new(
                    ErrorKind::Statement,
                    "the statement uses a multirange type, which pgmcp cannot read directly; \
                     cast it to text (col::text) or expand it with unnest(col)",
                )
            }
            sqlx::Error::Protocol(msg) => {
                tracing::error!(error = %msg, "protocol error talking to PostgreSQL");
                WorkerError::new(
                    ErrorKind::Connection,
                    "the connection to PostgreSQL broke (protocol error)",
                )
            }
            other => {
                tracing::error!(error = %other, "unexpected database driver error");
                WorkerError::new(
                    ErrorKind::Internal,
                    "internal error in the worker; see its logs",
                )
            }
        }
    }
}

/// Maps a PostgreSQL error (with its SQLSTATE) to a contract error.
pub fn from_pg(pg: &PgDatabaseError) -> Error {
    let code = pg.code();
    let mut err = Error::new(kind_for_sqlstate(code, pg.message()), pg.message());
    err.sqlstate = code.to_string();
    err.detail = pg.detail().unwrap_or_default().to_string();
    err.hint = pg.hint().unwrap_or_default().to_string();
    err.position = match pg.position() {
        Some(PgErrorPosition::Original(p)) => u32::try_from(p).unwrap_or(0),
        _ => 0,
    };
    err.schema_name = pg.schema().unwrap_or_default().to_string();
    err.table_name = pg.table().unwrap_or_default().to_string();
    err.column_name = pg.column().unwrap_or_default().to_string();
    err.constraint_name = pg.constraint().unwrap_or_default().to_string();
    err.retry_safe = matches!(err.kind(), ErrorKind::Conflict | ErrorKind::Connection);
    err
}

/// The error kind for a SQLSTATE (see Appendix A of the PostgreSQL manual).
pub fn kind_for_sqlstate(code: &str, message: &str) -> ErrorKind {
    let class = code.get(..2).unwrap_or("");
    match (class, code) {
        (_, "42601") | (_, "42602") | (_, "42622") | (_, "42939") => ErrorKind::Syntax,
        (_, "42P01") | (_, "42703") | (_, "42883") | (_, "42P02") | (_, "42704") | (_, "3F000") => {
            ErrorKind::UndefinedObject
        }
        (_, "42501") => ErrorKind::PermissionDenied,
        (_, "25006") => ErrorKind::ReadOnly,
        (_, "57014") => {
            if message.contains("statement timeout") || message.contains("lock timeout") {
                ErrorKind::Timeout
            } else {
                ErrorKind::Cancelled
            }
        }
        (_, "55P03") => ErrorKind::Timeout,
        (_, "40001") | (_, "40P01") => ErrorKind::Conflict,
        (_, "53300") => ErrorKind::PoolExhausted,
        // The server ended the session (admin shutdown, crash, restart).
        (_, "57P01") | (_, "57P02") | (_, "57P03") => ErrorKind::Connection,
        ("23", _) => ErrorKind::ConstraintViolation,
        ("28", _) => ErrorKind::PermissionDenied,
        ("08", _) => ErrorKind::Connection,
        ("57", _) => ErrorKind::Cancelled,
        ("22", _) => ErrorKind::Data,
        ("42", _) => ErrorKind::Statement,
        ("0A", _) | ("21", _) | ("26", _) | ("34", _) => ErrorKind::Statement,
        _ => ErrorKind::Database,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_classes() {
        assert_eq!(kind_for_sqlstate("42601", ""), ErrorKind::Syntax);
        assert_eq!(kind_for_sqlstate("42P01", ""), ErrorKind::UndefinedObject);
        assert_eq!(
            kind_for_sqlstate("23505", ""),
            ErrorKind::ConstraintViolation
        );
        assert_eq!(kind_for_sqlstate("25006", ""), ErrorKind::ReadOnly);
        assert_eq!(
            kind_for_sqlstate("57014", "canceling statement due to statement timeout"),
            ErrorKind::Timeout
        );
        assert_eq!(
            kind_for_sqlstate("57014", "canceling statement due to user request"),
            ErrorKind::Cancelled
        );
        assert_eq!(kind_for_sqlstate("22P02", ""), ErrorKind::Data);
        assert_eq!(kind_for_sqlstate("XX000", ""), ErrorKind::Database);
        assert_eq!(kind_for_sqlstate("40001", ""), ErrorKind::Conflict);
        assert_eq!(kind_for_sqlstate("40P01", ""), ErrorKind::Conflict);
        assert_eq!(kind_for_sqlstate("57P01", ""), ErrorKind::Connection);
    }
}
