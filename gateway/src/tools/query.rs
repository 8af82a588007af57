//! `query`: one read-only SQL statement.

use std::time::Duration;

use pgmcp_proto::v1::{QueryRequest, TruncationReason};
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use rmcp::tool;
use rmcp::tool_router;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::errors::GatewayError;
use crate::fleet::QueryOutcome;
use crate::render;
use crate::server::PgMcp;
use crate::tools::{error_result, parse_args, to_params};

/// Arguments of `query`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryArgs {
    /// Exactly one SQL statement, e.g. `SELECT * FROM orders WHERE customer_id = $1`.
    /// It runs in a read-only transaction.
    pub sql: String,
    /// Values for `$1`, `$2`, … in order. Strings, numbers, booleans and null;
    /// JSON objects/arrays for json/jsonb or array parameters. PostgreSQL
    /// infers each parameter's type from the statement.
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
    /// Most rows to return; further rows are cut off and `truncated` is set.
    /// Default 100.
    pub max_rows: Option<u64>,
    /// Statement timeout in milliseconds. Default 30000.
    pub timeout_ms: Option<u32>,
    /// Database to query; needed only when several databases are served.
    pub database: Option<String>,
}

/// Extra time the gateway waits beyond the statement timeout, so the
/// database's own timeout (with its clear error) fires first.
const DEADLINE_SLACK: Duration = Duration::from_millis(2_000);

#[tool_router(router = query_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "query",
        description = "Run one read-only SQL statement (SELECT, WITH, VALUES, SHOW, EXPLAIN …) and return its rows. \
Use $1, $2, … placeholders with `params`. The statement runs in a read-only transaction that is rolled back, \
so it cannot change anything. Results are capped by `max_rows`; `truncated` tells when rows were left out.",
        input_schema = schema_for_type::<QueryArgs>(),
        meta = crate::auth::requires(crate::auth::Access::Read),
        annotations(title = "Run a read-only SQL query", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn query(&self, args: JsonObject, ct: CancellationToken) -> CallToolResult {
        let args: QueryArgs = match parse_args(args) {
            Ok(a) => a,
            Err(e) => return error_result(&e, None),
        };
        let limits = &self.shared.limits;
        if let Err(e) = crate::limits::check_statement(&args.sql, args.params.len(), limits) {
            return error_result(&e, None);
        }
        let max_rows = match args.max_rows {
            None => limits.default_max_rows,
            Some(0) => {
                return error_result(&GatewayError::invalid("max_rows must be at least 1"), None);
            }
            Some(n) if n > limits.max_rows => {
                return error_result(
                    &GatewayError::invalid(format!(
                        "max_rows is {n}, over the limit of {}; ask for fewer rows or page with LIMIT/OFFSET",
                        limits.max_rows
                    )),
                    None,
                );
            }
            Some(n) => n,
        };
        let timeout_ms = match args.timeout_ms {
            None => limits.default_timeout_ms,
            Some(0) => {
                return error_result(
                    &GatewayError::invalid("timeout_ms must be at least 1"),
                    None,
                );
            }
            Some(t) if t > limits.max_timeout_ms => {
                return error_result(
                    &GatewayError::invalid(format!(
                        "timeout_ms is {t}, over the limit of {} ms",
                        limits.max_timeout_ms
                    )),
                    None,
                );
            }
            Some(t) => t,
        };
        let req = QueryRequest {
            database: args.database.clone().unwrap_or_default(),
            sql: args.sql.clone(),
            params: to_params(&args.params),
            max_rows,
            max_bytes: limits.max_result_bytes,
            timeout_ms,
        };
        let deadline = Duration::from_millis(u64::from(timeout_ms)) + DEADLINE_SLACK;
        let outcome = tokio::select! {
            r = self.shared.fleet.query(req, deadline) => r,
            _ = ct.cancelled() => {
                // The client went away; dropping the call cancels it on the worker.
                return error_result(&GatewayError::new(pgmcp_proto::error::ErrorKind::Cancelled, "the client cancelled the call"), None);
            }
        };
        match outcome {
            Ok(out) => success(out, max_rows),
            Err(e) => error_result(&e, Some(&args.sql)),
        }
    }
}

fn success(out: QueryOutcome, max_rows: u64) -> CallToolResult {
    let reason = TruncationReason::try_from(out.summary.truncation_reason)
        .unwrap_or(TruncationReason::Unspecified);
    let note = if out.summary.truncated {
        Some(match reason {
            TruncationReason::MaxBytes => format!(
                "Result truncated: only the first {} rows fit in the {}-byte result limit. Select fewer columns or rows (WHERE, LIMIT).",
                out.summary.row_count, out.summary.max_bytes
            ),
            _ => format!(
                "Result truncated: only the first {} rows are shown (max_rows={max_rows}); more rows exist. \
Narrow the query (WHERE, LIMIT, aggregates) or raise max_rows.",
                out.summary.row_count
            ),
        })
    } else {
        None
    };
    let text = render::table(
        &out.columns,
        &out.rows,
        out.summary.row_count,
        note.as_deref(),
    );
    let rows: Vec<serde_json::Value> = out
        .rows
        .iter()
        .map(|r| serde_json::from_slice(r).unwrap_or(serde_json::Value::Null))
        .collect();
    let mut structured = json!({
        "columns": out.columns.iter().map(|c| json!({"name": c.name, "type": c.type_name})).collect::<Vec<_>>(),
        "rows": rows,
        "row_count": out.summary.row_count,
        "truncated": out.summary.truncated,
    });
    if let Some(note) = note {
        structured["truncation"] = json!({
            "reason": match reason { TruncationReason::MaxBytes => "max_bytes", _ => "max_rows" },
            "max_rows": max_rows,
            "max_bytes": out.summary.max_bytes,
            "note": note,
        });
    }
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}
