//! The worker's memory of its recent calls: a bounded ring of
//! [`HistoryEntry`]s served by the `History` RPC.
//!
//! An entry keeps the statement text as sent (with its `$n` placeholders)
//! and the number of parameters, never their values. A call is recorded when
//! it ends: [`Call::ok`], [`Call::failed`], or dropped unfinished (the caller
//! went away), which records it as cancelled. [`record_stream`] does this
//! for a streamed `Query` result by watching its messages go by.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::Stream;
use pgmcp_proto::error::Error;
use pgmcp_proto::v1::{HistoryEntry, HistoryOutcome, QueryResponse, query_response::Part};
use tonic::Status;

/// Statement text kept per entry, in characters.
const MAX_SQL_CHARS: usize = 2048;

/// The ring of recent calls of one worker.
#[derive(Debug)]
pub struct History {
    ring: Mutex<VecDeque<HistoryEntry>>,
    capacity: usize,
    recorded: AtomicU64,
}

impl History {
    /// A ring keeping the last `capacity` calls (0 keeps none).
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(History {
            ring: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            capacity,
            recorded: AtomicU64::new(0),
        })
    }

    /// Starts recording a call of `operation` on `database`, made by the
    /// current caller (see [`crate::auth::current`]) in the current trace.
    pub fn start(
        self: &Arc<Self>,
        database: &str,
        operation: &str,
        sql: &str,
        param_count: usize,
    ) -> Call {
        let started_at_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        Call {
            history: self.clone(),
            started: Instant::now(),
            entry: Some(HistoryEntry {
                started_at_unix_us,
                database: database.to_string(),
                operation: operation.to_string(),
                sql: clip(sql),
                param_count: u32::try_from(param_count).unwrap_or(u32::MAX),
                principal: crate::auth::current()
                    .and_then(|c| c.principal.clone())
                    .unwrap_or_default(),
                trace_id: pgmcp_telemetry::propagation::current_trace_id().unwrap_or_default(),
                ..HistoryEntry::default()
            }),
        }
    }

    /// The most recent `limit` entries (all when 0), newest first.
    pub fn recent(&self, limit: usize) -> Vec<HistoryEntry> {
        let ring = match self.ring.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        let n = if limit == 0 {
            ring.len()
        } else {
            limit.min(ring.len())
        };
        ring.iter().rev().take(n).cloned().collect()
    }

    /// Most entries kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Calls recorded since start, dropped ones included.
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    fn push(&self, entry: HistoryEntry) {
        self.recorded.fetch_add(1, Ordering::Relaxed);
        if self.capacity == 0 {
            return;
        }
        let mut ring = match self.ring.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        while ring.len() >= self.capacity {
            ring.pop_front();
        }
        ring.push_back(entry);
    }
}

/// A call being recorded; see the module documentation.
#[derive(Debug)]
pub struct Call {
    history: Arc<History>,
    started: Instant,
    entry: Option<HistoryEntry>,
}

impl Call {
    /// The call succeeded with `rows` rows.
    pub fn ok(mut self, rows: u64, truncated: bool) {
        self.finish(HistoryOutcome::Ok, |e| {
            e.rows = rows;
            e.truncated = truncated;
        });
    }

    /// The call failed with `err`.
    pub fn failed(mut self, err: &Error) {
        self.finish(HistoryOutcome::Error, |e| {
            e.error_kind = err.kind;
            e.sqlstate = err.sqlstate.clone();
        });
    }

    fn finish(&mut self, outcome: HistoryOutcome, fill: impl FnOnce(&mut HistoryEntry)) {
        if let Some(mut entry) = self.entry.take() {
            entry.duration_us =
                u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
            entry.outcome = outcome as i32;
            fill(&mut entry);
            self.history.push(entry);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(HistoryOutcome::Cancelled, |_| {});
    }
}

/// Wraps a `Query` response stream so that the call is recorded when its
/// summary or error passes, or as cancelled when the stream is dropped
/// before either (the caller went away).
pub fn record_stream<S>(call: Call, stream: S) -> Recorded<S>
where
    S: Stream<Item = Result<QueryResponse, Status>> + Unpin,
{
    Recorded {
        inner: stream,
        call: Some(call),
    }
}

/// See [`record_stream`].
pub struct Recorded<S> {
    inner: S,
    call: Option<Call>,
}

impl<S> Stream for Recorded<S>
where
    S: Stream<Item = Result<QueryResponse, Status>> + Unpin,
{
    type Item = Result<QueryResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(item)) = &next {
            match item {
                Ok(QueryResponse {
                    part: Some(Part::Summary(s)),
                }) => {
                    if let Some(call) = self.call.take() {
                        call.ok(s.row_count, s.truncated);
                    }
                }
                Err(status) => {
                    if let Some(call) = self.call.take() {
                        call.failed(&Error::from_status(status));
                    }
                }
                Ok(_) => {}
            }
        }
        next
    }
}

/// `sql` cut to [`MAX_SQL_CHARS`] characters.
fn clip(sql: &str) -> String {
    match sql.char_indices().nth(MAX_SQL_CHARS) {
        None => sql.to_string(),
        Some((at, _)) => format!("{}…", &sql[..at]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgmcp_proto::error::ErrorKind;

    #[test]
    fn ring_is_bounded_and_newest_first() {
        let h = History::new(3);
        for i in 0..5 {
            h.start("db", "query", &format!("SELECT {i}"), 0)
                .ok(1, false);
        }
        let recent = h.recent(0);
        let sqls: Vec<&str> = recent.iter().map(|e| e.sql.as_str()).collect();
        assert_eq!(sqls, ["SELECT 4", "SELECT 3", "SELECT 2"]);
        assert_eq!(h.recorded(), 5);
        assert_eq!(h.recent(1).len(), 1);
    }

    #[test]
    fn outcomes() {
        let h = History::new(10);
        let mut err = Error::new(ErrorKind::Syntax, "bad");
        err.sqlstate = "42601".into();
        h.start("db", "query", "SELEC 1", 0).failed(&err);
        drop(h.start("db", "query", "SELECT pg_sleep(10)", 0));
        let recent = h.recent(0);
        assert_eq!(recent[0].outcome(), HistoryOutcome::Cancelled);
        assert_eq!(recent[1].outcome(), HistoryOutcome::Error);
        assert_eq!(recent[1].sqlstate, "42601");
        assert_eq!(recent[1].error_kind(), ErrorKind::Syntax);
    }

    #[test]
    fn disabled_ring_keeps_nothing() {
        let h = History::new(0);
        h.start("db", "query", "SELECT 1", 0).ok(1, false);
        assert!(h.recent(0).is_empty());
        assert_eq!(h.recorded(), 1);
    }

    #[test]
    fn long_sql_is_clipped() {
        let sql = "é".repeat(MAX_SQL_CHARS + 10);
        let clipped = clip(&sql);
        assert_eq!(clipped.chars().count(), MAX_SQL_CHARS + 1);
        assert!(clipped.ends_with('…'));
    }
}
