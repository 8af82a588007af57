//! The gateway's one error type, and how each kind of failure is explained
//! to the caller (usually a model): what happened and what to do next.

use pgmcp_proto::error::{Error, ErrorKind};
use serde_json::json;

/// A failed tool call. Wraps the contract's [`Error`] so workers and the
/// gateway share one taxonomy.
#[derive(Debug, Clone)]
pub struct GatewayError(pub Box<Error>);

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        GatewayError(Box::new(Error::new(kind, message)))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.0.kind()
    }

    /// The caller-facing explanation: the error, where it points, and the
    /// next step.
    pub fn explain(&self, sql: Option<&str>) -> String {
        let e = &self.0;
        let mut out = String::new();
        let headline = match e.kind() {
            ErrorKind::Syntax => "SQL syntax error",
            ErrorKind::UndefinedObject => "Undefined object",
            ErrorKind::ConstraintViolation => "Constraint violation",
            ErrorKind::PermissionDenied => "Permission denied",
            ErrorKind::ReadOnly => "Read-only",
            ErrorKind::Timeout => "Timed out",
            ErrorKind::Cancelled => "Cancelled",
            ErrorKind::Connection => "Database connection lost",
            ErrorKind::PoolExhausted => "Database busy",
            ErrorKind::Overloaded => "Overloaded",
            ErrorKind::Unavailable => "Worker unavailable",
            ErrorKind::UnknownDatabase => "Unknown database",
            ErrorKind::InvalidRequest => "Invalid request",
            ErrorKind::Data => "Invalid data",
            ErrorKind::Statement => "Statement error",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::Database => "Database error",
            ErrorKind::Internal | ErrorKind::Unspecified => "Internal error",
        };
        out.push_str(headline);
        out.push_str(": ");
        out.push_str(&e.message);
        if !e.sqlstate.is_empty() {
            out.push_str(&format!(" (SQLSTATE {})", e.sqlstate));
        }
        if let (Some(sql), true) = (sql, e.position > 0)
            && let Some(pointer) = point_at(sql, e.position as usize)
        {
            out.push('\n');
            out.push_str(&pointer);
        }
        if !e.detail.is_empty() {
            out.push_str("\nDetail: ");
            out.push_str(&e.detail);
        }
        if !e.hint.is_empty() {
            out.push_str("\nHint: ");
            out.push_str(&e.hint);
        }
        let next = match e.kind() {
            ErrorKind::Syntax => "Fix the SQL near the marked position and call again. Send exactly one statement per call.".to_string(),
            ErrorKind::UndefinedObject => "Check the spelling and schema of the name; mixed-case names need double quotes. \
                 Look up what exists with the list_tables and describe_table tools (or query \
                 information_schema.tables and information_schema.columns).".to_string(),
            ErrorKind::ConstraintViolation => constraint_next_step(e),
            // Refused by pgmcp's own access control (no SQLSTATE): the caller's credentials.
            ErrorKind::PermissionDenied if e.sqlstate.is_empty() => "Your credentials (token or scopes) do not allow this call; \
                 use a tool and database they cover, or ask the pgmcp operators for the permission named above.".to_string(),
            ErrorKind::PermissionDenied => "The database role pgmcp uses lacks this privilege. Query objects it can read, \
                 or ask a database administrator to GRANT access.".to_string(),
            ErrorKind::ReadOnly => "This call runs in a read-only transaction, so it cannot change data or schema; \
                 nothing was changed. Use a SELECT, or a write tool against a database configured read-write \
                 (worker flag --mode NAME=read-write).".to_string(),
            ErrorKind::Timeout => "The statement took too long and was cancelled in the database. Make it cheaper \
                 (filter with WHERE, add LIMIT, aggregate) or pass a larger timeout_ms.".to_string(),
            ErrorKind::Cancelled => "The statement was cancelled before it finished; nothing was changed. Call again if still needed.".to_string(),
            ErrorKind::Connection => "The worker's connection to PostgreSQL failed. Retry shortly; if it keeps failing the database may be down or unreachable.".to_string(),
            ErrorKind::PoolExhausted => "All database connections are busy. Retry in a moment.".to_string(),
            ErrorKind::Overloaded => "Too many calls are running at once; nothing was run. Retry in a moment, \
                 or wait for your other calls to finish.".to_string(),
            ErrorKind::Unavailable => "No worker answered. Retry shortly; if it persists, the pgmcp workers are down or unreachable from the gateway.".to_string(),
            ErrorKind::UnknownDatabase => "Pass one of the available names as `database`.".to_string(),
            ErrorKind::InvalidRequest => "Fix the arguments and call again.".to_string(),
            ErrorKind::Data => "A value does not fit its type or format. Check the values and casts.".to_string(),
            ErrorKind::Statement => "Check the statement's types and names; add explicit casts where types do not match.".to_string(),
            ErrorKind::Conflict => "The transaction conflicted with another one; it is safe to retry.".to_string(),
            ErrorKind::Database => "The database reported an error; see the message above.".to_string(),
            ErrorKind::Internal | ErrorKind::Unspecified => "This is a fault in pgmcp, not in your SQL; the operators can find details in the logs.".to_string(),
        };
        out.push('\n');
        out.push_str(&next);
        out
    }

    /// Machine-readable form for `structuredContent`.
    pub fn to_json(&self) -> serde_json::Value {
        let e = &self.0;
        let mut v = json!({
            "kind": e.kind().snake_name(),
            "message": e.message,
            "retry_safe": e.retry_safe,
        });
        let fields = [
            ("sqlstate", &e.sqlstate),
            ("detail", &e.detail),
            ("hint", &e.hint),
            ("database", &e.database),
            ("schema", &e.schema_name),
            ("table", &e.table_name),
            ("column", &e.column_name),
            ("constraint", &e.constraint_name),
        ];
        for (k, val) in fields {
            if !val.is_empty() {
                v[k] = json!(val);
            }
        }
        if e.position > 0 {
            v["position"] = json!(e.position);
        }
        json!({ "error": v })
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind().snake_name(), self.0.message)
    }
}

impl From<tonic::Status> for GatewayError {
    fn from(status: tonic::Status) -> Self {
        let mut err = Error::from_status(&status);
        // tonic's own message-size errors: name the setting to change.
        if status.details().is_empty() && status.message().contains("message length too large") {
            err.kind = ErrorKind::InvalidRequest as i32;
            err.message = format!(
                "a gRPC message between gateway and worker is over the size limit ({}); \
                 ask for fewer rows or smaller values, or raise --max-message-bytes on the gateway and the worker",
                status.message()
            );
        }
        // The connection closed under a call that had not been sent: the
        // worker went away, or closed an aged connection (GOAWAY).
        if never_sent(&status) {
            err.kind = ErrorKind::Unavailable as i32;
            err.message = format!(
                "the connection to the worker closed before it answered ({})",
                status.message()
            );
            err.retry_safe = true;
        }
        GatewayError(Box::new(err))
    }
}

/// True for a call the worker never processed, so it may be sent again — a
/// write too. Two cases, both seen when the worker closes an aged
/// connection (GOAWAY) or goes away:
/// - hyper failed a request it had not yet sent when the connection closed
///   or refused new streams ("operation was canceled"); tonic raises that
///   as CANCELLED with hyper's error in its source chain. Other CANCELLEDs
///   are deadlines: the worker's arrives over the wire (no source), the
///   channel's own carries tonic's `TimeoutExpired`.
/// - the request was sent, but on a stream the worker's GOAWAY declared
///   unprocessed (above its last stream id), or on a connection that had
///   already received that GOAWAY: h2 fails it with the GOAWAY's own error,
///   NO_ERROR from the remote, which tonic raises as INTERNAL. HTTP/2
///   guarantees such a stream was not processed (RFC 9113, section 6.8);
///   a GOAWAY with an error code ends processed streams too, and does not
///   count.
pub fn never_sent(status: &tonic::Status) -> bool {
    if !status.details().is_empty() {
        return false;
    }
    let mut next = std::error::Error::source(status);
    while let Some(e) = next {
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && h.is_canceled()
        {
            return status.code() == tonic::Code::Cancelled;
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return unprocessed_by_goaway(h2);
        }
        next = e.source();
    }
    false
}

/// A stream the peer's graceful GOAWAY left unprocessed.
fn unprocessed_by_goaway(e: &h2::Error) -> bool {
    e.is_go_away() && e.is_remote() && e.reason() == Some(h2::Reason::NO_ERROR)
}

/// What to do about a constraint violation, by SQLSTATE.
fn constraint_next_step(e: &Error) -> String {
    let on = match (e.constraint_name.is_empty(), e.table_name.is_empty()) {
        (false, false) => format!(
            " (constraint `{}` on `{}`)",
            e.constraint_name, e.table_name
        ),
        (false, true) => format!(" (constraint `{}`)", e.constraint_name),
        _ => String::new(),
    };
    let what = match e.sqlstate.as_str() {
        "23505" => format!(
            "A row with the same key already exists{on}. Use a different value, update the existing row instead, \
             or use INSERT … ON CONFLICT to decide what happens on duplicates."
        ),
        "23503" => format!(
            "A foreign key does not match{on}: either the referenced row does not exist, or other rows still \
             reference the row being changed or deleted. Insert the referenced row first, or change/delete the \
             referencing rows first."
        ),
        "23502" => {
            let col = if e.column_name.is_empty() {
                "a column".to_string()
            } else {
                format!("column `{}`", e.column_name)
            };
            format!(
                "{col} cannot be NULL. Provide a value for it (or rely on its default by leaving it out of the column list)."
            )
        }
        "23514" => format!(
            "A value fails a CHECK constraint{on}. Look at the constraint's condition and adjust the value."
        ),
        "23P01" => format!(
            "The row overlaps an existing one under an exclusion constraint{on}. Choose values that do not conflict."
        ),
        _ => format!("The data violates a constraint{on}."),
    };
    format!("{what} Nothing was changed: the failing statement was rolled back.")
}

/// The line of `sql` holding 1-based character `position`, with a caret
/// under it.
fn point_at(sql: &str, position: usize) -> Option<String> {
    let idx = position.checked_sub(1)?;
    let mut line_start_char = 0;
    for (line_no, line) in sql.split('\n').enumerate() {
        let len = line.chars().count();
        if idx <= line_start_char + len {
            let col = idx - line_start_char;
            let shown: String = line.chars().collect();
            return Some(format!(
                "At line {}, column {}:\n  {}\n  {}^",
                line_no + 1,
                col + 1,
                shown,
                " ".repeat(col)
            ));
        }
        line_start_char += len + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_points_at_position() {
        let p = point_at("SELECT *\nFORM t", 10).unwrap_or_default();
        assert!(p.contains("line 2, column 1"), "{p}");
        assert!(p.ends_with("  ^"), "{p}");
    }

    #[test]
    fn explanation_has_next_step() {
        let mut e = Error::new(ErrorKind::Syntax, "syntax error at or near \"FORM\"");
        e.sqlstate = "42601".into();
        e.position = 10;
        let text = GatewayError(Box::new(e)).explain(Some("SELECT * FORM t"));
        assert!(
            text.starts_with("SQL syntax error: syntax error at or near \"FORM\" (SQLSTATE 42601)")
        );
        assert!(text.contains("column 10"));
        assert!(text.contains("Fix the SQL"));
    }

    /// A call that never left the gateway is recognised by hyper's own
    /// error, which only a real connection produces: the fleet tests cover it
    /// (a worker SIGKILLed, a worker closing aged connections), and the
    /// GOAWAY tests below. Here: what must not pass for it.
    #[test]
    fn deadlines_are_not_calls_that_were_never_sent() {
        // The worker's own deadline, as it arrives over the wire.
        let wire = tonic::Status::cancelled("Timeout expired");
        assert!(!never_sent(&wire));
        assert_eq!(GatewayError::from(wire).kind(), ErrorKind::Timeout);

        // The channel's deadline, raised inside the gateway.
        let local = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(local.code(), tonic::Code::Cancelled);
        assert!(std::error::Error::source(&local).is_some());
        assert!(!never_sent(&local));
        assert_eq!(GatewayError::from(local).kind(), ErrorKind::Timeout);
    }

    /// A peer that speaks just enough HTTP/2 to refuse a call: it reads the
    /// client's preface and frames until the call's HEADERS, answers with
    /// its SETTINGS and a GOAWAY (NO_ERROR, last stream id `last`), then
    /// closes the connection. Returns its address.
    async fn goaway_peer(last: u32) -> anyhow::Result<std::net::SocketAddr> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut preface = [0u8; 24];
            if sock.read_exact(&mut preface).await.is_err() {
                return;
            }
            // Frames: 3 bytes length, type, flags, 4 bytes stream id.
            loop {
                let mut head = [0u8; 9];
                if sock.read_exact(&mut head).await.is_err() {
                    return;
                }
                let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                let mut payload = vec![0u8; len];
                if sock.read_exact(&mut payload).await.is_err() {
                    return;
                }
                if head[3] == 0x1 {
                    break;
                }
            }
            let mut frames = vec![0, 0, 0, 0x4, 0, 0, 0, 0, 0]; // SETTINGS
            frames.extend([0, 0, 8, 0x7, 0, 0, 0, 0, 0]); // GOAWAY
            frames.extend(last.to_be_bytes());
            frames.extend(0u32.to_be_bytes()); // NO_ERROR
            let _ = sock.write_all(&frames).await;
            let _ = sock.flush().await;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        });
        Ok(addr)
    }

    async fn info_from(addr: std::net::SocketAddr) -> anyhow::Result<tonic::Status> {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy();
        let mut client = pgmcp_proto::v1::worker_client::WorkerClient::new(channel);
        let mut request = tonic::Request::new(pgmcp_proto::v1::InfoRequest {});
        request.set_timeout(std::time::Duration::from_secs(5));
        match client.info(request).await {
            Ok(_) => anyhow::bail!("the peer answered Info"),
            Err(status) => Ok(status),
        }
    }

    /// A call on a stream the peer's GOAWAY declared unprocessed (above its
    /// last stream id) was not processed, whatever tonic's code for it.
    #[tokio::test]
    async fn a_stream_refused_by_goaway_was_never_sent() -> anyhow::Result<()> {
        let status = info_from(goaway_peer(0).await?).await?;
        assert!(never_sent(&status), "{status:?}");
        let err = GatewayError::from(status);
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.0.retry_safe);
        Ok(())
    }

    /// A stream the GOAWAY counted as processed, on a connection that then
    /// closed without an answer, may have run: it is not sent again.
    #[tokio::test]
    async fn a_stream_within_the_goaway_may_have_run() -> anyhow::Result<()> {
        let status = info_from(goaway_peer(1).await?).await?;
        assert!(!never_sent(&status), "{status:?}");
        Ok(())
    }
}
