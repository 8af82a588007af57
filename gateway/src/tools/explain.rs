//! `explain`: how PostgreSQL runs a statement.

use pgmcp_proto::v1::ExplainRequest;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fleet::Retry;
use crate::server::PgMcp;
use crate::tools::query::check_timeout;
use crate::tools::{call_deadline, error_result, parse_args, structured_result, to_params};

/// Arguments of `explain`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainArgs {
    /// The statement to explain (one statement; `$1`, `$2`, … for parameters).
    pub sql: String,
    /// Values for `$1`, `$2`, … in order.
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
    /// Also run the statement and report actual times and row counts. It runs
    /// in a read-only transaction that is rolled back, so it cannot write.
    #[serde(default)]
    pub analyze: bool,
    /// Report shared-buffer hits and reads (with `analyze`).
    #[serde(default)]
    pub buffers: bool,
    /// Statement timeout in milliseconds. Default 30000.
    pub timeout_ms: Option<u32>,
    /// Database to use; needed only when several databases are served.
    pub database: Option<String>,
}

/// Result of `explain`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExplainOutput {
    /// The plan as `EXPLAIN (FORMAT JSON)` gives it.
    pub plan: serde_json::Value,
    /// Headline numbers of the top plan node.
    pub summary: ExplainSummary,
}

/// Headline numbers of a plan.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExplainSummary {
    /// Top node type, e.g. "Hash Join".
    pub node_type: String,
    /// Estimated total cost.
    pub total_cost: f64,
    /// Estimated rows.
    pub estimated_rows: f64,
    /// True when the statement was run (analyze).
    pub analyzed: bool,
    /// With analyze: actual rows of the top node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_rows: Option<f64>,
    /// With analyze: planning time in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planning_time_ms: Option<f64>,
    /// With analyze: execution time in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_time_ms: Option<f64>,
}

#[tool_router(router = explain_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "explain",
        description = "Show how PostgreSQL executes a statement: EXPLAIN (FORMAT JSON), with a summary of the top \
plan node (type, estimated cost and rows). With `analyze` the statement really runs — inside a read-only \
transaction that is rolled back, so writes are refused — and actual rows and times are reported; `buffers` adds \
cache hits/reads. Use it to find why a query is slow (sequential scans on big tables, bad row estimates, missing \
indexes).",
        input_schema = schema_for_type::<ExplainArgs>(),
        meta = crate::auth::requires(crate::auth::Access::Read),
        output_schema = crate::tools::output_schema::<ExplainOutput>(),
        annotations(title = "Explain a query plan", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn explain(&self, args: JsonObject) -> CallToolResult {
        let args: ExplainArgs = match parse_args(args) {
            Ok(a) => a,
            Err(e) => return error_result(&e, None),
        };
        let limits = &self.shared.limits;
        if let Err(e) = crate::limits::check_statement(&args.sql, args.params.len(), limits) {
            return error_result(&e, None);
        }
        let timeout_ms = match check_timeout(
            args.timeout_ms,
            limits.default_timeout_ms,
            limits.max_timeout_ms,
        ) {
            Ok(t) => t,
            Err(e) => return error_result(&e, None),
        };
        let req = ExplainRequest {
            database: args.database.clone().unwrap_or_default(),
            statement: Some(pgmcp_proto::v1::Statement {
                sql: args.sql.clone(),
                params: to_params(&args.params),
            }),
            analyze: args.analyze,
            buffers: args.buffers,
            timeout_ms,
        };
        let deadline = call_deadline(timeout_ms);
        let outcome = self
            .shared
            .fleet
            .unary(
                Retry::OnUnreachable,
                req.clone(),
                deadline,
                |mut client, r| async move { client.explain(r).await },
            )
            .await;
        match outcome {
            Ok(resp) => {
                let plan: serde_json::Value =
                    serde_json::from_str(&resp.plan_json).unwrap_or(serde_json::Value::Null);
                let analyzed = resp.analyzed;
                let summary = ExplainSummary {
                    node_type: resp.node_type.clone(),
                    total_cost: resp.total_cost,
                    estimated_rows: resp.plan_rows,
                    analyzed,
                    actual_rows: analyzed.then_some(resp.actual_rows),
                    planning_time_ms: analyzed.then_some(resp.planning_time_ms),
                    execution_time_ms: analyzed.then_some(resp.execution_time_ms),
                };
                let mut text = format!(
                    "{}: estimated cost {:.2}, estimated rows {}",
                    summary.node_type, summary.total_cost, summary.estimated_rows
                );
                if analyzed {
                    text.push_str(&format!(
                        "; actual rows {}, planning {:.3} ms, execution {:.3} ms",
                        resp.actual_rows, resp.planning_time_ms, resp.execution_time_ms
                    ));
                }
                text.push('\n');
                text.push_str(&serde_json::to_string_pretty(&plan).unwrap_or_default());
                structured_result(text, &ExplainOutput { plan, summary })
            }
            Err(e) => error_result(&e, Some(&args.sql)),
        }
    }
}
