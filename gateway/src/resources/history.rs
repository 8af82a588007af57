//! `query-history://recent`: the recent calls of every worker, merged,
//! newest first. Statement texts carry their `$n` placeholders; parameter
//! values are never recorded.

use std::time::Duration;

use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::{HistoryEntry, HistoryOutcome};
use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource};
use serde_json::{Value, json};

use crate::fleet::Fleet;

pub const URI: &str = "query-history://recent";

/// Most entries in the merged document.
const MAX_ENTRIES: usize = 500;
/// How long each worker has to answer.
const WITHIN: Duration = Duration::from_secs(2);

pub fn static_resources() -> Vec<Resource> {
    vec![
        Resource::new(URI, "query-history")
            .with_title("Recent statements")
            .with_description(
                "The most recent calls served by every worker, newest first: time, database, statement text \
                 (with $n placeholders, never parameter values), duration, rows, outcome (ok, or the error kind \
                 and SQLSTATE), worker. Useful to see what was already tried and what failed.",
            )
            .with_mime_type("application/json"),
    ]
}

pub async fn read(uri: &str, fleet: &Fleet) -> Option<Result<ReadResourceResult, ErrorData>> {
    if uri != URI {
        return None;
    }
    let answers = fleet
        .histories(u32::try_from(MAX_ENTRIES).unwrap_or(u32::MAX), WITHIN)
        .await;
    let mut workers = Vec::new();
    let mut entries: Vec<(String, String, HistoryEntry)> = Vec::new();
    for (url, answer) in answers {
        match answer {
            Ok(h) => {
                workers.push(json!({
                    "url": url,
                    "worker_id": h.worker_id,
                    "reachable": true,
                    "capacity": h.capacity,
                    "recorded": h.recorded,
                }));
                // Only calls on databases the caller may read.
                for e in h
                    .entries
                    .into_iter()
                    .filter(|e| crate::call::may(crate::auth::Access::Read, &e.database))
                {
                    entries.push((h.worker_id.clone(), url.clone(), e));
                }
            }
            Err(err) => workers.push(json!({
                "url": url,
                "reachable": false,
                "error": err.0.message,
            })),
        }
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.2.started_at_unix_us));
    let truncated = entries.len() > MAX_ENTRIES;
    entries.truncate(MAX_ENTRIES);
    let doc = json!({
        "entries": entries.iter().map(|(id, url, e)| entry(id, url, e)).collect::<Vec<_>>(),
        "workers": workers,
        "truncated": truncated,
    });
    Some(super::json_contents(URI, &doc))
}

fn entry(worker_id: &str, url: &str, e: &HistoryEntry) -> Value {
    let started_at = chrono::DateTime::from_timestamp_micros(e.started_at_unix_us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default();
    let mut v = json!({
        "started_at": started_at,
        "worker_id": worker_id,
        "worker_url": url,
        "database": e.database,
        "operation": e.operation,
        "sql": e.sql,
        "param_count": e.param_count,
        "duration_ms": e.duration_us as f64 / 1000.0,
        "rows": e.rows,
        "truncated": e.truncated,
        "outcome": match e.outcome() {
            HistoryOutcome::Ok => "ok",
            HistoryOutcome::Error => "error",
            HistoryOutcome::Cancelled => "cancelled",
            HistoryOutcome::Unspecified => "unknown",
        },
        "principal": e.principal,
        "trace_id": e.trace_id,
    });
    if e.outcome() == HistoryOutcome::Error {
        v["error_kind"] = json!(
            ErrorKind::try_from(e.error_kind)
                .unwrap_or(ErrorKind::Unspecified)
                .snake_name()
        );
        if !e.sqlstate.is_empty() {
            v["sqlstate"] = json!(e.sqlstate);
        }
    }
    v
}
