//! `batch_query`: independent read-only queries, run concurrently.

use futures::StreamExt;
use pgmcp_proto::v1::QueryRequest;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::errors::GatewayError;
use crate::render;
use crate::server::PgMcp;
use crate::tools::query::check_timeout;
use crate::tools::{
    ColumnOut, StatementArg, call_deadline, error_result, parse_args, rows_json, structured_result,
};

/// Arguments of `batch_query`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchQueryArgs {
    /// Independent read-only statements, each {sql, params}.
    pub queries: Vec<StatementArg>,
    /// Rows per query at most (default 100).
    pub max_rows: Option<u64>,
    /// Timeout of each query in milliseconds. Default 30000.
    pub timeout_ms: Option<u32>,
    /// Database to query; needed only when several databases are served.
    pub database: Option<String>,
}

/// Result of `batch_query`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BatchQueryOutput {
    /// One entry per query, in the order given.
    pub results: Vec<BatchItem>,
    /// How many queries failed.
    pub failed: usize,
}

/// The outcome of one query of a batch: rows, or an error.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BatchItem {
    /// True when this query succeeded.
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<ColumnOut>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// The error, when this query failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

#[tool_router(router = batch_query_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "batch_query",
        description = "Run several independent read-only queries at once (each {sql, params}) and get every \
result in the order given. Each query succeeds or fails on its own: one failure does not affect the others. \
Use it to gather several facts in one call (counts from different tables, a few lookups). Each runs like \
`query` (read-only, rolled back, rows capped by max_rows); for statements that depend on each other use \
`transaction`.",
        input_schema = schema_for_type::<BatchQueryArgs>(),
        meta = crate::auth::requires(crate::auth::Access::Read),
        output_schema = crate::tools::output_schema::<BatchQueryOutput>(),
        annotations(title = "Run several read-only queries", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn batch_query(&self, args: JsonObject) -> CallToolResult {
        let args: BatchQueryArgs = match parse_args(args) {
            Ok(a) => a,
            Err(e) => return error_result(&e, None),
        };
        let limits = &self.shared.limits;
        if args.queries.is_empty() {
            return error_result(&GatewayError::invalid("give at least one query"), None);
        }
        if args.queries.len() > limits.max_batch_queries {
            return error_result(
                &GatewayError::invalid(format!(
                    "{} queries given, over this gateway's limit of {} queries per batch \
                     (--max-batch-queries); split the batch into several calls, or an operator raises \
                     --max-batch-queries",
                    args.queries.len(),
                    limits.max_batch_queries
                )),
                None,
            );
        }
        for (i, q) in args.queries.iter().enumerate() {
            let item = format!("query {}", i + 1);
            if let Err(e) =
                crate::limits::check_statement_in(Some(&item), &q.sql, q.params.len(), limits)
            {
                return error_result(&e, None);
            }
        }
        let timeout_ms = match check_timeout(
            args.timeout_ms,
            limits.default_timeout_ms,
            limits.max_timeout_ms,
        ) {
            Ok(t) => t,
            Err(e) => return error_result(&e, None),
        };
        let max_rows = args
            .max_rows
            .unwrap_or(limits.default_max_rows)
            .clamp(1, limits.max_rows);
        let database = args.database.clone().unwrap_or_default();
        let deadline = call_deadline(timeout_ms);
        let requests: Vec<QueryRequest> = args
            .queries
            .iter()
            .map(|q| QueryRequest {
                database: database.clone(),
                sql: q.sql.clone(),
                params: crate::tools::to_params(&q.params),
                max_rows,
                max_bytes: limits.max_result_bytes,
                timeout_ms,
                skip_rows: 0,
            })
            .collect();
        let fleet = &self.shared.fleet;
        let outcomes: Vec<_> = futures::stream::iter(requests)
            .map(|req| fleet.query(req, deadline))
            .buffered(limits.batch_concurrency)
            .collect()
            .await;

        let mut text = String::new();
        let mut results = Vec::with_capacity(outcomes.len());
        let mut failed = 0;
        for (i, (outcome, q)) in outcomes.into_iter().zip(&args.queries).enumerate() {
            text.push_str(&format!("-- query {}\n", i + 1));
            match outcome {
                Ok(out) => {
                    let note = out
                        .summary
                        .truncated
                        .then_some("More rows exist; use `query` with paging for this one.");
                    text.push_str(&render::table(
                        &out.columns,
                        &out.rows,
                        out.summary.row_count,
                        note,
                    ));
                    results.push(BatchItem {
                        ok: true,
                        columns: Some(out.columns.iter().map(ColumnOut::from).collect()),
                        rows: Some(rows_json(&out.rows)),
                        row_count: Some(out.summary.row_count),
                        truncated: Some(out.summary.truncated),
                        error: None,
                    });
                }
                Err(e) => {
                    failed += 1;
                    text.push_str(&e.explain(Some(&q.sql)));
                    results.push(BatchItem {
                        ok: false,
                        columns: None,
                        rows: None,
                        row_count: None,
                        truncated: None,
                        error: Some(e.to_json()["error"].clone()),
                    });
                }
            }
            text.push('\n');
        }
        text.push_str(&format!("{} of {} queries failed", failed, results.len()));
        structured_result(text, &BatchQueryOutput { results, failed })
    }
}
