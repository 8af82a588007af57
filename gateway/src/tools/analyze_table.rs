//! `analyze_table` (dba toolset): ANALYZE of one table.

use pgmcp_proto::v1::MaintenanceOperation;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::server::PgMcp;
use crate::tools::maintenance::Maintained;
use crate::tools::{error_result, output_schema, parse_args};

/// Arguments of `analyze_table`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeArgs {
    /// The table, written as in SQL: `orders`, `sales.orders`, `"Mixed Case"`.
    pub table: String,
    /// Database; needed only when several databases are served.
    pub database: Option<String>,
    /// Statement timeout in milliseconds. Default 30000.
    pub timeout_ms: Option<u32>,
}

#[tool_router(router = analyze_table_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "analyze_table",
        description = "Refresh the PostgreSQL planner's statistics for one table (ANALYZE), so that plans and row \
estimates match the data, e.g. after a bulk load or when explain's estimates are far off, or when database_health \
reports stale statistics. Changes no data; allowed on read-only databases too (PostgreSQL permits ANALYZE in a \
read-only transaction). Needs the role to own the table (or the database). Returns the statement, its duration and \
the table's statistics before and after.",
        input_schema = schema_for_type::<AnalyzeArgs>(),
        meta = crate::auth::requires(crate::auth::Access::Dba),
        output_schema = output_schema::<Maintained>(),
        annotations(title = "ANALYZE a table", read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn analyze_table(&self, args: JsonObject) -> CallToolResult {
        let args: AnalyzeArgs = match parse_args(args) {
            Ok(a) => a,
            Err(e) => return error_result(&e, None),
        };
        self.maintain(
            args.database,
            args.table,
            MaintenanceOperation::Analyze,
            args.timeout_ms,
        )
        .await
    }
}
