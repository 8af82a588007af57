//! `execute`: one statement that changes data or schema.

use pgmcp_proto::v1::ExecuteRequest;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::fleet::Retry;
use crate::server::PgMcp;
use crate::tools::query::check_timeout;
use crate::tools::{
    StatementOut, call_deadline, error_result, parse_args, statement_text, structured_result,
    to_params,
};

/// Arguments of `execute`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteArgs {
    /// Exactly one INSERT, UPDATE, DELETE, MERGE or DDL statement; `$1`, `$2`, …
    /// for parameters. Add RETURNING to get rows back.
    pub sql: String,
    /// Values for `$1`, `$2`, … in order.
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
    /// Returned rows to include at most (default 100). The statement always
    /// runs completely.
    pub max_rows: Option<u64>,
    /// Statement timeout in milliseconds. Default 30000.
    pub timeout_ms: Option<u32>,
    /// Database to change; needed only when several databases are served.
    pub database: Option<String>,
}

#[tool_router(router = execute_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "execute",
        description = "Run one statement that changes data or schema (INSERT, UPDATE, DELETE, MERGE, CREATE, ALTER, \
DROP …) and commit it. Returns the number of rows affected and any RETURNING rows. Only works on databases \
configured read-write; read-only databases refuse it. Use `query` for reads, `transaction` for several statements \
that must succeed or fail together, `bulk_insert` for many rows. Pass values as `params` ($1, $2, …). \
A failed call is never retried automatically.",
        input_schema = schema_for_type::<ExecuteArgs>(),
        meta = crate::auth::requires(crate::auth::Access::Write),
        output_schema = crate::tools::output_schema::<StatementOut>(),
        annotations(title = "Change data or schema", read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    pub async fn execute(&self, args: JsonObject) -> CallToolResult {
        let args: ExecuteArgs = match parse_args(args) {
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
        let req = ExecuteRequest {
            database: args.database.clone().unwrap_or_default(),
            statement: Some(pgmcp_proto::v1::Statement {
                sql: args.sql.clone(),
                params: to_params(&args.params),
            }),
            max_rows: args
                .max_rows
                .unwrap_or(limits.default_max_rows)
                .min(limits.max_rows),
            max_bytes: limits.max_result_bytes,
            timeout_ms,
        };
        let deadline = call_deadline(timeout_ms);
        let outcome = self
            .shared
            .fleet
            .unary(
                Retry::Never,
                req.clone(),
                deadline,
                |mut client, r| async move { client.execute(r).await },
            )
            .await;
        match outcome {
            Ok(resp) => {
                if resp.schema_changed {
                    self.schema_changed(&req.database).await;
                }
                let result = resp.result.unwrap_or_default();
                structured_result(statement_text(&result), &StatementOut::from(&result))
            }
            Err(e) => error_result(&e, Some(&args.sql)),
        }
    }
}
